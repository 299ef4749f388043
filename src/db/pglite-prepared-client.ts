import { parse, protocol, type PGlite, type QueryOptions, type Results, type Transaction } from '@electric-sql/pglite';
import { LruMap } from '../lib/lru-map.js';

/**
 * The client drizzle uses on the embedded database: PGlite with each statement kept as a named prepared statement.
 *
 * `PGlite.query` runs every statement through six calls into the WebAssembly backend (Parse, Describe statement, Bind,
 * Describe portal, Execute, Sync), parsing and planning it again each time; that was most of a login's or a chat
 * turn's CPU time on the embedded database. Here a statement is parsed and described once (its parameter types are
 * kept), and each execution is one call carrying Bind, Describe, Execute and Sync together, on a statement whose plan
 * PostgreSQL can reuse. Values are still sent as bind parameters, never spliced into SQL; they are serialized exactly
 * as `PGlite.query` does (by the parameter type PostgreSQL reported), and results are parsed by PGlite's own parser.
 *
 * Locking follows `PGlite.query`: a statement outside a transaction waits for running transactions, one inside runs
 * on the transaction's turn. A statement that fails leaves no state behind (Sync travels in the same call), and a
 * prepared statement that PostgreSQL no longer accepts (dropped, or its result shape changed by DDL) is forgotten and,
 * outside a transaction, prepared again once.
 */

/** The members of PGlite this client drives; they are part of its published JavaScript, not of its typings. */
interface PgliteInternals {
  readonly closed: boolean;
  readonly serializers: Record<number, (value: unknown) => string>;
  readonly parsers: Record<number, ParserFunction>;
  _checkReady(): Promise<void>;
  _runExclusiveQuery<T>(fn: () => Promise<T>): Promise<T>;
  _runExclusiveTransaction<T>(fn: () => Promise<T>): Promise<T>;
  execProtocolStream(message: Uint8Array, options: { syncToFs?: boolean }): Promise<Parameters<typeof parse.parseResults>[0]>;
  syncToFs(): Promise<void>;
}

type ParserFunction = (value: string, typeId?: number) => unknown;

interface PreparedStatement {
  name: string;
  parameterTypes: number[];
}

/** The surface of a PGlite client that drizzle's PGlite driver calls. */
export interface PglitePreparedClient {
  query<T>(sql: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>>;
  transaction<T>(callback: (tx: Transaction) => Promise<T>): Promise<T>;
}

export interface PglitePreparedClientOptions {
  /** Prepared statements kept, least recently used closed first (default 512). */
  maxStatements?: number;
}

/** SQLSTATEs of a prepared statement PostgreSQL will not run any more: it does not exist, or DDL changed its result. */
const STALE_STATEMENT = new Set(['26000', '0A000']);

function isStale(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && STALE_STATEMENT.has(code);
}

export function createPglitePreparedClient(pglite: PGlite, options: PglitePreparedClientOptions = {}): PglitePreparedClient {
  const internals = pglite as unknown as PgliteInternals;
  const serialize = protocol.serialize;
  const maxStatements = options.maxStatements ?? 512;
  // SQL text → prepared statement.
  const statements = new LruMap<string, PreparedStatement>(maxStatements);
  let counter = 0;
  // Evicted statements whose Close did not go through (e.g. sent inside a failed transaction); retried later.
  let unclosed: string[] = [];

  async function closeStatements(names: string[]): Promise<void> {
    try {
      await internals.execProtocolStream(Buffer.concat([...names.map((name) => serialize.close({ type: 'S', name })), serialize.sync()]), { syncToFs: false });
    } catch {
      unclosed.push(...names);
    }
  }

  async function prepare(text: string, queryOptions: QueryOptions | undefined): Promise<PreparedStatement> {
    const name = `cdsa_s${++counter}`;
    const messages = await internals.execProtocolStream(
      Buffer.concat([serialize.parse({ name, text, types: queryOptions?.paramTypes }), serialize.describe({ type: 'S', name }), serialize.sync()]),
      { syncToFs: false },
    );
    const statement = { name, parameterTypes: parse.parseDescribeStatementResults(messages) };
    const evicted = statements.set(text, statement);
    if (evicted) await closeStatements([evicted[1].name]);
    return statement;
  }

  // PGlite merges a query's parsers into its ~300 defaults on every call. Drizzle passes a new but identical parser
  // object with every query, so merged sets are kept by what they contain (type ids and parser source).
  const merged = new LruMap<string, Record<number, ParserFunction>>(64);
  function mergedParsers(overrides: Record<number, ParserFunction>): Record<number, ParserFunction> {
    const key = Object.entries(overrides)
      .map(([type, parser]) => `${type}:${String(parser)}`)
      .join('\n');
    let parsers = merged.get(key);
    if (!parsers) {
      parsers = { ...internals.parsers, ...overrides };
      merged.set(key, parsers);
    }
    return parsers;
  }

  function values(params: unknown[], types: number[], queryOptions: QueryOptions | undefined): (string | null)[] {
    return params.map((param, i) => {
      if (param === null || param === undefined) return null;
      const type = types[i]!;
      const serializer = queryOptions?.serializers?.[type] ?? internals.serializers[type];
      return serializer ? serializer(param) : String(param);
    });
  }

  /** Runs one statement; the caller holds PGlite's query lock. */
  async function run<T>(text: string, params: unknown[], queryOptions: QueryOptions | undefined): Promise<Results<T>> {
    const statement = statements.get(text) ?? (await prepare(text, queryOptions));
    try {
      const messages = await internals.execProtocolStream(
        Buffer.concat([
          serialize.bind({ statement: statement.name, values: values(params, statement.parameterTypes, queryOptions) }),
          serialize.describe({ type: 'P' }),
          serialize.execute({}),
          serialize.sync(),
        ]),
        { syncToFs: false },
      );
      const parsers = queryOptions?.parsers ? mergedParsers(queryOptions.parsers) : internals.parsers;
      return parse.parseResults(messages, parsers, { rowMode: queryOptions?.rowMode })[0] as Results<T>;
    } catch (error) {
      if (isStale(error) && statements.get(text) === statement) statements.delete(text);
      throw error;
    }
  }

  async function query<T>(text: string, params: unknown[] = [], queryOptions?: QueryOptions): Promise<Results<T>> {
    await internals._checkReady();
    return internals._runExclusiveTransaction(() =>
      internals._runExclusiveQuery(async () => {
        if (unclosed.length > 0) {
          const names = unclosed;
          unclosed = [];
          await closeStatements(names);
        }
        let result: Results<T>;
        try {
          result = await run<T>(text, params, queryOptions);
        } catch (error) {
          // Outside a transaction nothing was changed by the failed attempt: prepare afresh once.
          if (!isStale(error)) throw error;
          result = await run<T>(text, params, queryOptions);
        }
        await internals.syncToFs();
        return result;
      }),
    );
  }

  function inTransaction(tx: Transaction): Transaction {
    const prepared: Transaction = {
      query: async <T>(text: string, params: unknown[] = [], queryOptions?: QueryOptions): Promise<Results<T>> => {
        if (tx.closed) throw new Error('Transaction is closed');
        return internals._runExclusiveQuery(() => run<T>(text, params, queryOptions));
      },
      sql: (strings, ...params) => tx.sql(strings, ...params),
      exec: (text, queryOptions) => tx.exec(text, queryOptions),
      rollback: () => tx.rollback(),
      listen: (channel, callback) => tx.listen(channel, callback),
      get closed() {
        return tx.closed;
      },
    };
    return prepared;
  }

  return {
    query,
    transaction: (callback) => pglite.transaction((tx) => callback(inTransaction(tx))),
  };
}
