import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createChainVerifier, GENESIS_HASH, hashEvent, type StoredAuditEvent } from './audit.chain.js';
import { createAuditMacKeyring } from './audit.mac.js';

const key = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;

function keyedChain(keys: string, times: number[]): StoredAuditEvent[] {
  const keyring = createAuditMacKeyring(keys);
  let prev = GENESIS_HASH;
  return times.map((time, index) => {
    const fields = {
      id: `00000000-0000-4000-8000-${String(index + 1).padStart(12, '0')}`,
      seq: index + 1,
      event_type: 'USER_QUERY',
      user_id: null,
      session_id: null,
      resource_type: null,
      resource_id: null,
      details: {},
      ip_address: null,
      user_agent: null,
      created_at: new Date(time).toISOString(),
    };
    const hash = hashEvent(prev, fields);
    const event = { ...fields, prev_hash: prev, hash, mac: keyring.mac(hash) };
    prev = hash;
    return event;
  });
}

describe('audit MAC keyring', () => {
  it('MACs with the first key, verifies with any configured one, and tells why a MAC fails', () => {
    const old = key('m1');
    const current = key('m2');
    const before = createAuditMacKeyring(old);
    const after = createAuditMacKeyring(`${current},${old}`);
    const hash = 'a'.repeat(64);
    expect(after.mac(hash)).toMatch(/^m2:[0-9a-f]{64}$/);
    expect(after.check(hash, before.mac(hash))).toBe('valid');
    expect(after.check('b'.repeat(64), after.mac(hash))).toBe('invalid');
    expect(createAuditMacKeyring(key('m1')).check(hash, before.mac(hash))).toBe('invalid');
    expect(createAuditMacKeyring(key('m9')).check(hash, before.mac(hash))).toBe('unknown_key');
    expect(after.check(hash, null)).toBe('missing');
    expect(after.check(hash, 'not a mac')).toBe('invalid');
  });

  it('makes the chain verifier require MACs and time that never goes back', () => {
    const keys = key('m1');
    const keyring = createAuditMacKeyring(keys);
    const t0 = Date.UTC(2026, 10, 26, 9);
    const run = (events: StoredAuditEvent[]) => {
      const verifier = createChainVerifier(undefined, [], { keyring });
      for (const event of events) if (!verifier.push(event)) break;
      return verifier.finish();
    };
    expect(run(keyedChain(keys, [t0, t0, t0 + 1, t0 + 5]))).toMatchObject({ valid: true, checked: 4 });
    expect(run(keyedChain(keys, [t0, t0 + 5, t0 + 4]))).toMatchObject({ valid: false, first_invalid_seq: 3, reason: expect.stringMatching(/backwards/) });
    expect(run(keyedChain(key('m1'), [t0, t0 + 1]))).toMatchObject({ valid: false, first_invalid_seq: 1, reason: expect.stringMatching(/MAC/) });
    const unkeyed = keyedChain(keys, [t0, t0 + 1]).map((event) => ({ ...event, mac: null }));
    expect(run(unkeyed)).toMatchObject({ valid: false, first_invalid_seq: 1, reason: expect.stringMatching(/carries no MAC/) });
    // Exports carry no MAC: without a keyring only the hash chain and the times are checked.
    const verifier = createChainVerifier();
    expect(unkeyed.every((event) => verifier.push(event))).toBe(true);
  });
});
