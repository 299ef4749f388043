import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPglitePreparedClient, type PglitePreparedClient } from './pglite-prepared-client.js';

describe('PGlite prepared-statement client', () => {
  let pglite: PGlite;
  let client: PglitePreparedClient;
  /** Protocol calls into the database since the last reset, to show a prepared statement costs one call. */
  let calls = 0;

  beforeAll(async () => {
    pglite = await PGlite.create();
    const raw = pglite.execProtocolStream.bind(pglite);
    pglite.execProtocolStream = (...args) => {
      calls += 1;
      return raw(...args);
    };
    client = createPglitePreparedClient(pglite, { maxStatements: 4 });
    await pglite.exec('CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, at timestamptz, data jsonb)');
  });

  afterAll(async () => {
    await pglite.close();
  });

  it('binds values as parameters, serialized by the type PostgreSQL reports, and parses results like PGlite', async () => {
    const at = new Date('2026-01-02T03:04:05.678Z');
    await client.query('INSERT INTO items (id, name, at, data) VALUES ($1, $2, $3, $4)', [1, "Robert'); DROP TABLE items;--", at, { tags: ['a'] }]);
    const { rows } = await client.query<{ id: number; name: string; at: Date; data: unknown }>('SELECT * FROM items WHERE id = $1', [1]);
    expect(rows).toEqual([{ id: 1, name: "Robert'); DROP TABLE items;--", at, data: { tags: ['a'] } }]);
    const same = await pglite.query('SELECT * FROM items WHERE id = $1', [1]);
    expect(same.rows).toEqual(rows);
  });

  it('prepares a statement once, then runs it in one call, with row mode and per-query parsers honoured', async () => {
    const text = 'SELECT id, at FROM items WHERE id = $1';
    await client.query(text, [1]);
    calls = 0;
    const { rows } = await client.query(text, [1], { rowMode: 'array', parsers: { 1184: (value: string) => `raw:${value}` } });
    expect(calls).toBe(1);
    expect(rows).toEqual([[1, expect.stringMatching(/^raw:2026-01-02 03:04:05\.678/)]]);
    // PGlite's own query pays six calls for the same statement.
    calls = 0;
    await pglite.query(text, [1]);
    expect(calls).toBeGreaterThanOrEqual(5);
  });

  it('reports database errors with their SQLSTATE and stays usable afterwards', async () => {
    await expect(client.query('INSERT INTO items (id, name) VALUES ($1, $2)', [1, 'again'])).rejects.toMatchObject({ code: '23505' });
    await expect(client.query('SELECT * FROM missing WHERE id = $1', [1])).rejects.toMatchObject({ code: '42P01' });
    expect((await client.query<{ n: number }>('SELECT count(*)::int AS n FROM items WHERE id > $1', [0])).rows).toEqual([{ n: 1 }]);
  });

  it('runs statements inside transactions, which commit or roll back as a whole', async () => {
    await client.transaction(async (tx) => {
      await tx.query('INSERT INTO items (id, name) VALUES ($1, $2)', [2, 'two']);
      await tx.query('INSERT INTO items (id, name) VALUES ($1, $2)', [3, 'three']);
    });
    await expect(
      client.transaction(async (tx) => {
        await tx.query('INSERT INTO items (id, name) VALUES ($1, $2)', [4, 'four']);
        throw new Error('abandon');
      }),
    ).rejects.toThrow('abandon');
    const { rows } = await client.query<{ id: number }>('SELECT id FROM items WHERE id >= $1 ORDER BY id', [2]);
    expect(rows.map((row) => row.id)).toEqual([2, 3]);
    // A statement first prepared in the rolled-back transaction still works.
    await client.query('INSERT INTO items (id, name) VALUES ($1, $2)', [4, 'four']);
    await expect(
      client.transaction(async (tx) => {
        await tx.query('INSERT INTO items (id, name) VALUES ($1, $2)', [4, 'dup']).catch(() => undefined);
        await tx.query('SELECT id FROM items WHERE id = $1', [4]);
      }),
    ).rejects.toMatchObject({ code: '25P02' });
  });

  it('keeps statements, transactions and queries in order when they are issued concurrently', async () => {
    const results = await Promise.all([
      client.query<{ n: number }>('SELECT $1::int AS n', [1]),
      client.transaction(async (tx) => (await tx.query<{ n: number }>('SELECT $1::int AS n', [2])).rows[0]!.n),
      client.query<{ n: number }>('SELECT $1::int AS n', [3]),
    ]);
    expect([results[0].rows[0]!.n, results[1], results[2].rows[0]!.n]).toEqual([1, 2, 3]);
  });

  it('closes the least recently used statements beyond its limit', async () => {
    for (let i = 0; i < 10; i++) await client.query(`SELECT $1::int + ${i} AS n`, [i]);
    const { rows } = await pglite.query<{ n: number }>("SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'cdsa_s%'");
    expect(rows[0]!.n).toBeLessThanOrEqual(4);
    expect((await client.query<{ n: number }>('SELECT $1::int + 0 AS n', [7])).rows).toEqual([{ n: 7 }]);
  });

  it('prepares again when DDL changed what a kept statement returns', async () => {
    const text = 'SELECT * FROM items WHERE id = $1';
    await client.query(text, [2]);
    await pglite.exec('ALTER TABLE items ADD COLUMN extra int');
    const { rows } = await client.query<Record<string, unknown>>(text, [2]);
    expect(rows[0]).toMatchObject({ id: 2, name: 'two', extra: null });
  });
});
