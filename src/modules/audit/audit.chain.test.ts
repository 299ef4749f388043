import { describe, expect, it } from 'vitest';
import { createChainVerifier, GENESIS_HASH, hashEvent, type AuditEvent } from './audit.chain.js';

function chain(length: number): AuditEvent[] {
  const events: AuditEvent[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= length; seq += 1) {
    const base = {
      id: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
      seq,
      event_type: 'USER_QUERY',
      user_id: null,
      session_id: null,
      resource_type: null,
      resource_id: null,
      details: { seq, text: 'é😀' },
      ip_address: null,
      user_agent: null,
      created_at: new Date(Date.UTC(2026, 10, 26, 9, 0, seq)).toISOString(),
      prev_hash: prev,
    };
    const hash = hashEvent(prev, base);
    events.push({ ...base, hash });
    prev = hash;
  }
  return events;
}

function run(events: AuditEvent[], ...args: Parameters<typeof createChainVerifier>) {
  const verifier = createChainVerifier(...args);
  for (const event of events) if (!verifier.push(event)) break;
  return verifier.finish();
}

describe('chain verifier', () => {
  it('accepts an intact chain and reports its end', () => {
    const events = chain(20);
    expect(run(events)).toEqual({ valid: true, checked: 20, last_seq: 20, last_hash: events[19]!.hash, first_invalid_seq: null, reason: null });
  });

  it('ignores fields outside the hashed set and covers every hashed one', () => {
    const events = chain(3);
    expect(run(events.map((event) => ({ ...event, extra: 1 }) as AuditEvent)).valid).toBe(true);
    for (const field of ['id', 'event_type', 'user_id', 'details', 'created_at', 'ip_address'] as const) {
      const altered = events.map((event) => (event.seq === 2 ? { ...event, [field]: field === 'details' ? {} : 'x' } : event));
      expect(run(altered), field).toMatchObject({ valid: false, first_invalid_seq: 2, checked: 1 });
    }
  });

  it('reports a missing event, a reordering and a broken link at the right seq', () => {
    const events = chain(10);
    expect(run(events.filter((event) => event.seq !== 4))).toMatchObject({ valid: false, first_invalid_seq: 4, reason: expect.stringMatching(/missing/) });
    const swapped = [...events];
    [swapped[5], swapped[6]] = [swapped[6]!, swapped[5]!];
    expect(run(swapped)).toMatchObject({ valid: false, first_invalid_seq: 6 });
    // A rewritten event with a recomputed hash breaks the next link.
    const forged = events.map((event) => ({ ...event }));
    forged[2]!.details = { forged: true };
    forged[2]!.hash = hashEvent(forged[2]!.prev_hash, forged[2]!);
    expect(run(forged)).toMatchObject({ valid: false, first_invalid_seq: 4, reason: expect.stringMatching(/prev_hash/) });
  });

  it('starts from an anchor other than the genesis', () => {
    const events = chain(10);
    expect(run(events.slice(5), { seq: 5, hash: events[4]!.hash })).toMatchObject({ valid: true, checked: 5 });
    expect(run(events.slice(5), { seq: 5, hash: GENESIS_HASH })).toMatchObject({ valid: false, first_invalid_seq: 6 });
  });

  it('compares with witnesses and detects a truncated tail', () => {
    const events = chain(10);
    const witness = { seq: 8, hash: events[7]!.hash, source: 'checkpoint' };
    expect(run(events, undefined, [witness]).valid).toBe(true);
    expect(run(events, undefined, [{ ...witness, hash: GENESIS_HASH }])).toMatchObject({ valid: false, first_invalid_seq: 8 });
    expect(run(events.slice(0, 6), undefined, [witness])).toMatchObject({ valid: false, first_invalid_seq: 7, reason: expect.stringMatching(/truncated/) });
    const partial = createChainVerifier(undefined, [witness]);
    events.slice(0, 6).forEach((event) => partial.push(event));
    expect(partial.finish({ beyondEnd: 'ignore' }).valid).toBe(true);
  });
});
