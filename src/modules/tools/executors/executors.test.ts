import { describe, expect, it } from 'vitest';
import { createBuiltinRegistry } from '../builtins/index.js';
import { createAllowlist } from '../egress.js';
import { createBuiltinExecutor, createExecutorRegistry, createWebhookExecutor, type ToolExecutor } from './index.js';

const allowlist = createAllowlist(['hooks.example:8443']);

describe('executor registry', () => {
  it('holds one executor per kind and refuses a second one for the same kind', () => {
    const registry = createExecutorRegistry([createBuiltinExecutor(createBuiltinRegistry()), createWebhookExecutor()]);
    expect(registry.types()).toEqual(['builtin', 'webhook']);
    expect(registry.get('webhook')?.type).toBe('webhook');
    expect(registry.get('ftp')).toBeUndefined();
    const another: ToolExecutor = { type: 'webhook', validate: () => [], options: () => [], run: () => Promise.resolve(null) };
    expect(() => registry.register(another)).toThrow(/already registered/);
  });

  it('lets each kind judge its own configuration', () => {
    const webhook = createWebhookExecutor();
    expect(webhook.validate({ type: 'webhook', url: 'https://hooks.example:8443/x' }, { allowlist })).toEqual([]);
    expect(webhook.validate({ type: 'webhook', url: 'https://elsewhere.example/x' }, { allowlist })).toEqual([
      { pointer: '/implementation/url', detail: 'host elsewhere.example is not in TOOL_HTTP_ALLOWLIST' },
    ]);
    expect(webhook.validate({ type: 'webhook' }, { allowlist })[0]?.pointer).toBe('/implementation/url');

    const builtin = createBuiltinExecutor(createBuiltinRegistry());
    expect(builtin.validate({ type: 'builtin', builtin: 'redact_text' }, { allowlist })).toEqual([]);
    expect(builtin.validate({ type: 'builtin', builtin: 'nope' }, { allowlist })[0]?.pointer).toBe('/implementation/builtin');
    expect(builtin.validate({ type: 'builtin', builtin: 'redact_text', url: 'https://hooks.example:8443/' }, { allowlist })[0]?.pointer).toBe('/implementation/url');
    expect(builtin.defaults?.({ type: 'builtin', builtin: 'redact_text' }).inputSchema).toMatchObject({ type: 'object' });
  });
});
