import { describe, expect, it } from 'vitest';
import { LABELS, type Label } from '../../lib/labels.js';
import { decideRouting, isCloudMaxLabel, labelMayReachProvider, type RoutingInput } from './sensitivity-routing.js';

const cloud = { id: 'openai/gpt-4o-mini', isLocal: false };
const local = { id: 'ollama/llama3.1:8b', isLocal: true };
const fallback = { id: 'ollama/llama3.1:8b', isLocal: true, available: true };

function decide(overrides: Partial<RoutingInput>) {
  return decideRouting({ label: 'PUBLIC', target: cloud, cloudMaxLabel: 'INTERNAL', fallback, ...overrides });
}

describe('labelMayReachProvider', () => {
  it('lets a local provider receive every label', () => {
    for (const label of LABELS) expect(labelMayReachProvider(label, { isLocal: true }, 'PUBLIC')).toBe(true);
  });

  it('bounds a cloud provider by CLOUD_MAX_LABEL', () => {
    const allowed = (bound: Label) => LABELS.filter((label) => labelMayReachProvider(label, { isLocal: false }, bound));
    expect(allowed('PUBLIC')).toEqual(['PUBLIC']);
    expect(allowed('INTERNAL')).toEqual(['PUBLIC', 'INTERNAL']);
    expect(allowed('CONFIDENTIAL')).toEqual(['PUBLIC', 'INTERNAL', 'CONFIDENTIAL']);
  });

  it('never lets RESTRICTED content reach a cloud provider, even with a bound that slipped past validation', () => {
    expect(labelMayReachProvider('RESTRICTED', { isLocal: false }, 'RESTRICTED')).toBe(false);
    expect(labelMayReachProvider('CONFIDENTIAL', { isLocal: false }, 'RESTRICTED')).toBe(true);
  });
});

describe('decideRouting', () => {
  it('sends anything to a local model', () => {
    expect(decide({ target: local, label: 'RESTRICTED', fallback: undefined })).toMatchObject({ action: 'send', code: 'local_model' });
  });

  it('sends content within the bound to the cloud model asked for', () => {
    expect(decide({ label: 'INTERNAL' })).toMatchObject({ action: 'send', code: 'within_cloud_max' });
    expect(decide({ label: 'CONFIDENTIAL', cloudMaxLabel: 'CONFIDENTIAL' })).toMatchObject({ action: 'send' });
  });

  it('routes content above the bound to an available local fallback, naming label and policy', () => {
    const decision = decide({ label: 'CONFIDENTIAL' });
    expect(decision).toMatchObject({ action: 'route', to: 'ollama/llama3.1:8b', code: 'above_cloud_max' });
    expect(decision.reason).toContain('CONFIDENTIAL');
    expect(decision.reason).toContain('CLOUD_MAX_LABEL=INTERNAL');
  });

  it('routes RESTRICTED content away from the cloud whatever the bound', () => {
    const decision = decide({ label: 'RESTRICTED', cloudMaxLabel: 'RESTRICTED' });
    expect(decision).toMatchObject({ action: 'route', to: fallback.id });
    expect(decision.reason).toContain('RESTRICTED content never goes to a cloud model');
  });

  it('refuses when there is no fallback, or it is unavailable or not local', () => {
    const none = decide({ label: 'CONFIDENTIAL', fallback: undefined });
    expect(none).toMatchObject({ action: 'refuse', code: 'no_fallback' });
    expect(none.reason).toMatch(/CONFIDENTIAL.*CLOUD_MAX_LABEL=INTERNAL.*no LOCAL_FALLBACK_MODEL/);
    expect(decide({ label: 'CONFIDENTIAL', fallback: { ...fallback, available: false } })).toMatchObject({
      action: 'refuse',
      code: 'fallback_unavailable',
    });
    expect(decide({ label: 'CONFIDENTIAL', fallback: { id: 'openai/gpt-4o', isLocal: false, available: true } })).toMatchObject({
      action: 'refuse',
      code: 'fallback_unavailable',
    });
  });

  it('treats PUBLIC as the lowest bound: even INTERNAL context leaves the cloud', () => {
    expect(decide({ label: 'INTERNAL', cloudMaxLabel: 'PUBLIC' })).toMatchObject({ action: 'route' });
    expect(decide({ label: 'PUBLIC', cloudMaxLabel: 'PUBLIC' })).toMatchObject({ action: 'send' });
  });
});

describe('isCloudMaxLabel', () => {
  it('accepts the three cloud bounds only', () => {
    expect(LABELS.filter(isCloudMaxLabel)).toEqual(['PUBLIC', 'INTERNAL', 'CONFIDENTIAL']);
    expect(isCloudMaxLabel('internal')).toBe(false);
  });
});
