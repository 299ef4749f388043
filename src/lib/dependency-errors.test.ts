import net from 'node:net';
import { sql } from 'drizzle-orm';
import { Redis } from 'ioredis';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { openTestDatabase } from '../../test/helpers/app.js';
import { asDependencyError, dependencyFailureMessage, unavailableDependency } from './dependency-errors.js';
import { ConflictError } from './errors.js';

/** A port nothing listens on (bound, then released). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function rejection(work: () => Promise<unknown>): Promise<unknown> {
  try {
    await work();
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

// The errors are the drivers' own, produced for real, not imitations of their shape.
describe('dependency errors', () => {
  it('a PostgreSQL server that refuses connections is the database', async () => {
    const client = new pg.Client({ host: '127.0.0.1', port: await closedPort(), user: 'postgres', connectionTimeoutMillis: 2_000 });
    const error = await rejection(() => client.connect());
    expect(unavailableDependency(error)).toBe('database');
  });

  it('a closed embedded database is the database, through the ORM wrapper, and the log line leaves the statement out', async () => {
    const database = await openTestDatabase();
    await database.close();
    const error = await rejection(() => database.db.execute(sql`select ${'secret-parameter'}::text`));
    const mapped = asDependencyError(error);
    expect(mapped).toMatchObject({ status: 503, extensions: { dependency: 'database' }, headers: { 'Retry-After': '5' } });
    expect(dependencyFailureMessage(error)).not.toContain('secret-parameter');
  });

  it('Redis that is down, with the offline queue off, is Redis', async () => {
    const redis = new Redis({ host: '127.0.0.1', port: await closedPort(), enableOfflineQueue: false, lazyConnect: true, retryStrategy: () => null });
    redis.on('error', () => undefined);
    try {
      const error = await rejection(() => redis.get('key'));
      expect(unavailableDependency(error)).toBe('redis');
      expect(asDependencyError(error)?.message).toContain('Redis');
    } finally {
      redis.disconnect();
    }
  });

  it('other errors are not dependency failures', async () => {
    expect(unavailableDependency(new Error('something else'))).toBeUndefined();
    expect(unavailableDependency(new ConflictError('taken'))).toBeUndefined();
    expect(unavailableDependency(new TypeError("Cannot read properties of undefined (reading 'x')"))).toBeUndefined();
  });
});
