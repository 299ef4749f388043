import { Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import pino, { type LoggerOptions } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loggerOptions } from '../../src/app.js';
import { buildTestApp, type TestApp } from '../helpers/app.js';

/**
 * A failed statement reaches the log through the error handler and the job runner as `err`. Its bound parameters
 * (password hashes, e-mail addresses, secret names) must not: the log gets the statement and the SQLSTATE only — on
 * the embedded database and on node-postgres (the PostgreSQL pass runs this file against DATABASE_URL).
 */
describe('failed SQL statements in the log', () => {
  let t: TestApp;
  const lines: string[] = [];
  let log: pino.Logger;

  beforeAll(async () => {
    t = await buildTestApp();
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString('utf8'));
        done();
      },
    });
    log = pino({ ...(loggerOptions(t.config) as LoggerOptions), level: 'info' }, sink);
  });
  afterAll(async () => {
    await t.close();
  });

  const HASH = '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA';
  const EMAIL = 'jane.roe@example.com';

  async function failure(statement: ReturnType<typeof sql>): Promise<unknown> {
    return t.app.infra.database.db.execute(statement).then(
      () => {
        throw new Error('the statement was expected to fail');
      },
      (error: unknown) => error,
    );
  }

  it.each([
    ['a value the column type refuses (the value is echoed in the message)', sql`select ${EMAIL}::uuid, ${HASH}::text`],
    ['a NUL in a text parameter', sql`select ${`${EMAIL}\u0000`}::text, ${HASH}::text`],
    ['a unique violation (the value is echoed in the detail)', sql`insert into users (username, email, password_hash) values ('dup_a', ${EMAIL}, ${HASH}), ('dup_b', ${EMAIL}, ${HASH})`],
  ])('%s: statement and code are logged, parameters never', async (_case, statement) => {
    lines.length = 0;
    const error = await failure(statement);
    log.error({ err: error }, 'unhandled error');
    const text = lines.join('');
    expect(text).not.toContain(EMAIL);
    expect(text).not.toContain('jane.roe');
    expect(text).not.toContain(HASH);
    expect(text).not.toContain('aGFzaGhhc2hoYXNoaGFzaA');
    const entry = JSON.parse(lines[0]!) as { err: { query?: string; cause?: { code?: string } } };
    expect(entry.err.query).toMatch(/^(select|insert)/);
    expect(entry.err.cause?.code).toMatch(/^[0-9A-Z]{5}$/);
  });

  it('an ordinary error keeps its message and stack', () => {
    lines.length = 0;
    log.error({ err: new TypeError('something else broke') }, 'unhandled error');
    const entry = JSON.parse(lines[0]!) as { err: { type: string; message: string; stack: string } };
    expect(entry.err).toMatchObject({ type: 'TypeError', message: 'something else broke' });
    expect(entry.err.stack).toContain('at ');
  });
});
