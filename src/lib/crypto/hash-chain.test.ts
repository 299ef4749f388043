import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { canonicalJson } from '../canonical-json.js';
import {
  ChainEventError,
  GENESIS_HASH,
  HASHED_EVENT_FIELDS,
  canonicalEventJson,
  computeEventHash,
  hashedEventFields,
  createChainVerifier,
  verifyChain,
  type ChainEvent,
  type HashedEventFields,
} from './hash-chain.js';

const USER = '5f0c1c7e-3f0a-4d8e-9b3c-7a2e1d4c5b6a';

const first: HashedEventFields = {
  id: '0b7e3c52-9a51-4f0e-8d1f-2f3c4b5a6d7e',
  seq: 1,
  event_type: 'LOGIN_SUCCEEDED',
  user_id: USER,
  session_id: null,
  resource_type: 'user',
  resource_id: USER,
  details: { method: 'password', mfa: false, attempts: 1 },
  ip_address: '203.0.113.7',
  user_agent: 'curl/8.5.0',
  created_at: '2025-01-02T03:04:05.678Z',
};

type NumberedEvent = ChainEvent & { seq: number };

function eventFields(seq: number): HashedEventFields & { seq: number } {
  return {
    id: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
    seq,
    event_type: seq % 2 === 0 ? 'USER_QUERY' : 'LLM_REQUEST',
    user_id: USER,
    session_id: null,
    resource_type: 'chat_session',
    resource_id: `session-${seq % 5}`,
    details: { prompt_length: seq * 3, model: 'local/llama3', tags: ['a', seq] },
    ip_address: '198.51.100.1',
    user_agent: 'vitest',
    created_at: new Date(Date.UTC(2025, 0, 1) + seq * 1000).toISOString(),
  };
}

function buildChain(length: number): NumberedEvent[] {
  const events: NumberedEvent[] = [];
  let prev = GENESIS_HASH;
  for (let seq = 1; seq <= length; seq++) {
    const fields = eventFields(seq);
    const hash = computeEventHash(prev, fields);
    events.push({ ...fields, prev_hash: prev, hash });
    prev = hash;
  }
  return events;
}

async function* streamed(events: ChainEvent[]): AsyncGenerator<ChainEvent> {
  for (const event of events) yield await Promise.resolve(event);
}

describe('computeEventHash', () => {
  it('is SHA-256 of prev_hash followed by the RFC 8785 JSON of exactly the eleven documented fields', () => {
    const canonical =
      '{"created_at":"2025-01-02T03:04:05.678Z","details":{"attempts":1,"method":"password","mfa":false},' +
      '"event_type":"LOGIN_SUCCEEDED","id":"0b7e3c52-9a51-4f0e-8d1f-2f3c4b5a6d7e","ip_address":"203.0.113.7",' +
      `"resource_id":"${USER}","resource_type":"user","seq":1,"session_id":null,"user_agent":"curl/8.5.0","user_id":"${USER}"}`;
    const expected = createHash('sha256').update(GENESIS_HASH + canonical).digest('hex');
    expect(computeEventHash(GENESIS_HASH, first)).toBe(expected);
    // Frozen: changing the encoding would invalidate every stored chain.
    expect(expected).toBe('cde68322b8008294f46be4fabae8e17dd53983470158d96d87dffad11d853962');
    expect(GENESIS_HASH).toBe('0'.repeat(64));
    expect(HASHED_EVENT_FIELDS).toHaveLength(11);
  });

  it('encodes events exactly as the generic canonicalizer does', () => {
    const odd = { ...first, details: { 'ü': [1, { b: null, a: -0 }], '\u0001': 'x\ny', A: 1e21 }, user_agent: 'quote " and \\' };
    for (const event of [first, odd, eventFields(7)]) {
      expect(canonicalEventJson(event)).toBe(canonicalJson(hashedEventFields(event)));
    }
  });

  it('ignores fields outside the documented set and normalizes database representations', () => {
    const hash = computeEventHash(GENESIS_HASH, first);
    const extra = { ...first, prev_hash: 'x', hash: 'y', internal: 1 } as HashedEventFields;
    expect(computeEventHash(GENESIS_HASH, extra)).toBe(hash);
    expect(computeEventHash(GENESIS_HASH, { ...first, seq: '1' })).toBe(hash);
    expect(computeEventHash(GENESIS_HASH, { ...first, seq: 1n })).toBe(hash);
    expect(computeEventHash(GENESIS_HASH, { ...first, created_at: new Date('2025-01-02T03:04:05.678Z') })).toBe(hash);
    expect(computeEventHash(GENESIS_HASH, { ...first, details: { mfa: false, attempts: 1, method: 'password' } })).toBe(hash);
  });

  it('changes with every hashed field and with the previous hash', () => {
    const hash = computeEventHash(GENESIS_HASH, first);
    expect(computeEventHash('1'.repeat(64), first)).not.toBe(hash);
    const changes: Partial<HashedEventFields>[] = [
      { id: 'other' },
      { seq: 2 },
      { event_type: 'LOGOUT' },
      { user_id: null },
      { session_id: USER },
      { resource_type: null },
      { resource_id: 'x' },
      { details: { method: 'password', mfa: true, attempts: 1 } },
      { ip_address: '203.0.113.8' },
      { user_agent: null },
      { created_at: '2025-01-02T03:04:05.679Z' },
    ];
    for (const change of changes) expect(computeEventHash(GENESIS_HASH, { ...first, ...change })).not.toBe(hash);
  });

  it('refuses events it cannot hash unambiguously', () => {
    const { session_id: _omitted, ...missing } = first;
    expect(() => computeEventHash(GENESIS_HASH, missing as HashedEventFields)).toThrow(/'session_id' is missing/);
    expect(() => computeEventHash(GENESIS_HASH, { ...first, seq: 1.5 })).toThrow(ChainEventError);
    expect(() => computeEventHash(GENESIS_HASH, { ...first, created_at: 'yesterday' })).toThrow(/created_at/);
    expect(() => computeEventHash('abc', first)).toThrow(/prev_hash/);
    expect(() => computeEventHash(GENESIS_HASH, { ...first, details: { n: Number.NaN } })).toThrow(/not representable in JSON at \/details\/n /);
  });
});

describe('verifyChain', () => {
  const chain = buildChain(50);

  it('accepts an intact chain from a sync or async source', async () => {
    const expected = { valid: true, checked: 50, head_seq: 50, head_hash: chain[49]!.hash, first_invalid_seq: null, failure: null };
    expect(await verifyChain(chain)).toEqual(expected);
    expect(await verifyChain(streamed(chain))).toEqual(expected);
  });

  it('accepts an empty chain, reporting genesis as the head', async () => {
    expect(await verifyChain([])).toMatchObject({ valid: true, checked: 0, head_seq: 0, head_hash: GENESIS_HASH });
  });

  it('reports a row edited in place at its seq', async () => {
    const edited = chain.map((event) => (event.seq === 23 ? { ...event, details: { prompt_length: 1 } } : event));
    const result = await verifyChain(edited);
    expect(result).toMatchObject({ valid: false, first_invalid_seq: 23, checked: 23, head_seq: 22, head_hash: chain[21]!.hash });
    expect(result.failure?.kind).toBe('hash_mismatch');
  });

  it('reports an edited row whose own hash was recomputed at the next seq', async () => {
    const edited = chain.map((event) => {
      if (event.seq !== 23) return event;
      const forged = { ...event, user_id: null };
      return { ...forged, hash: computeEventHash(forged.prev_hash, forged) };
    });
    const result = await verifyChain(edited);
    expect(result).toMatchObject({ valid: false, first_invalid_seq: 24, head_seq: 23 });
    expect(result.failure?.kind).toBe('prev_hash_mismatch');
  });

  it('reports a deleted row as a gap at the missing seq', async () => {
    const result = await verifyChain(chain.filter((event) => event.seq !== 31));
    expect(result).toMatchObject({ valid: false, first_invalid_seq: 31, head_seq: 30 });
    expect(result.failure).toMatchObject({ kind: 'seq_gap', message: 'seq 31 is missing (next present is 32)' });
    const many = await verifyChain(chain.filter((event) => event.seq < 31 || event.seq > 33));
    expect(many.failure?.message).toBe('seqs 31-33 are missing (next present is 34)');
  });

  it('reports a deleted row even when later rows were renumbered to close the gap', async () => {
    const renumbered = chain.filter((event) => event.seq !== 31).map((event) => (event.seq > 31 ? { ...event, seq: event.seq - 1 } : event));
    const result = await verifyChain(renumbered);
    expect(result).toMatchObject({ valid: false, first_invalid_seq: 31 });
    expect(result.failure?.kind).toBe('prev_hash_mismatch');
  });

  it('reports duplicated or out-of-order rows', async () => {
    const duplicated = [...chain.slice(0, 10), chain[9]!, ...chain.slice(10)];
    expect((await verifyChain(duplicated)).failure).toMatchObject({ kind: 'seq_out_of_order', seq: 11 });
  });

  it('reports a first event that does not start from genesis', async () => {
    const rebased = chain.map((event) => (event.seq === 1 ? { ...event, prev_hash: '1'.repeat(64) } : event));
    expect(await verifyChain(rebased)).toMatchObject({ valid: false, first_invalid_seq: 1, head_seq: 0 });
  });

  it('reports an event that cannot be hashed as malformed instead of throwing', async () => {
    const broken = chain.map((event) => (event.seq === 5 ? { ...event, created_at: 'not a date' } : event));
    const result = await verifyChain(broken);
    expect(result).toMatchObject({ valid: false, first_invalid_seq: 5 });
    expect(result.failure?.kind).toBe('malformed_event');
  });

  it('cannot see a truncated tail on its own, but can against a checkpoint', async () => {
    const truncated = chain.slice(0, 45);
    expect((await verifyChain(truncated)).valid).toBe(true);
    const checkpoint = { seq: 48, hash: chain[47]!.hash };
    const result = await verifyChain(truncated, { checkpoint });
    expect(result).toMatchObject({ valid: false, first_invalid_seq: 46, head_seq: 45, checked: 45 });
    expect(result.failure?.kind).toBe('truncated');
    expect((await verifyChain(chain, { checkpoint })).valid).toBe(true);
  });

  it('catches a consistently rewritten chain against a checkpoint', async () => {
    // Someone with table access rewrites seq 10 and recomputes every hash after it: the chain is self-consistent.
    const rewritten: ChainEvent[] = [];
    let prev = GENESIS_HASH;
    for (const event of chain) {
      const fields = event.seq === 10 ? { ...event, details: {} } : event;
      const hash = computeEventHash(prev, fields);
      rewritten.push({ ...fields, prev_hash: prev, hash });
      prev = hash;
    }
    expect((await verifyChain(rewritten)).valid).toBe(true);
    const result = await verifyChain(rewritten, { checkpoint: { seq: 40, hash: chain[39]!.hash } });
    expect(result).toMatchObject({ valid: false, first_invalid_seq: 40, head_seq: 39 });
    expect(result.failure?.kind).toBe('checkpoint_mismatch');
  });

  it('verifies a range after a trusted anchor', async () => {
    const after = { seq: 20, hash: chain[19]!.hash };
    expect(await verifyChain(chain.slice(20, 30), { after })).toMatchObject({ valid: true, checked: 10, head_seq: 30 });
    expect((await verifyChain(chain.slice(21, 30), { after })).failure?.kind).toBe('seq_gap');
    expect((await verifyChain(chain.slice(20, 30), { after: { seq: 20, hash: chain[18]!.hash } })).first_invalid_seq).toBe(21);
    await expect(verifyChain(chain.slice(20, 30), { after, checkpoint: { seq: 5, hash: chain[4]!.hash } })).rejects.toThrow(RangeError);
  });

  it('stops counting after the first failure when fed incrementally', () => {
    const verifier = createChainVerifier();
    const edited = chain.map((event) => (event.seq === 3 ? { ...event, event_type: 'LOGOUT' } : event));
    const accepted = edited.map((event) => verifier.push(event));
    expect(accepted.slice(0, 3)).toEqual([true, true, false]);
    expect(accepted.slice(3).every((ok) => !ok)).toBe(true);
    expect(verifier.result()).toMatchObject({ valid: false, checked: 3, head_seq: 2, first_invalid_seq: 3 });
  });
});
