/**
 * The one way Spillway talks to PostgreSQL: a transaction bounded on the server as well as on
 * the client (G7).
 *
 * A query that times out only on the client keeps running on the server. Behind a lock, every
 * abandoned query is a backend left waiting, and a caller that retries opens another one: 20
 * readers behind one `LOCK TABLE ... ACCESS EXCLUSIVE` left 200 waiting backends in a minute,
 * after which the database refused every connection. So every transaction opens with
 * `SET LOCAL statement_timeout`, `lock_timeout` and `idle_in_transaction_session_timeout`: the
 * server cancels its own work, and a client that vanishes mid-transaction (a frozen or killed
 * Lambda) holds no lock past the bound. `SET LOCAL` ends with the transaction and does not pin an
 * RDS Proxy session; a session-level `SET` (or pg's `statement_timeout` connection option) would,
 * and must not be used.
 *
 * Each query also carries a client-side timeout, a little longer than the server's, so that the
 * server cancels first and the client's timeout only fires when the server cannot answer at all
 * (a proxy that lost its database holds queries instead of failing them).
 */
import type { QueryConfig, QueryResult, QueryResultRow } from 'pg';

/**
 * The connection of a transaction: what `inTransaction` uses of a `pg.PoolClient`, so that the
 * Data API's session (`data-api-connection.ts`) can stand in for one.
 */
export interface TransactionClient {
  query<R extends QueryResultRow = QueryResultRow>(config: QueryConfig): Promise<QueryResult<R>>;
  on(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  release(destroy?: boolean): void;
}

/** Where transactions get their connection: a `pg.Pool`, or the Data API's `DataApiPool`. */
export interface TransactionPool {
  connect(): Promise<TransactionClient>;
}

/** Runs one statement of the transaction; `values` are bind parameters (none: the simple protocol). */
export type TransactionQuery = <R extends QueryResultRow = QueryResultRow>(
  text: string,
  values?: readonly unknown[],
) => Promise<QueryResult<R>>;

export interface TransactionBounds {
  /**
   * Longest the transaction may take. Every statement gets it as its `statement_timeout` on the
   * server; the client gives up on the whole transaction a little after it (`clientTimeoutMs`).
   */
  readonly timeoutMs: number;
  /** Longest one statement waits for a lock (`lock_timeout`). @default timeoutMs */
  readonly lockTimeoutMs?: number;
}

/**
 * How much longer the client waits than the server: a tenth of the bound, between 100 ms and
 * 1 s, so that the server's cancellation (with its SQLSTATE) arrives before the client gives up.
 */
export function clientGraceMs(timeoutMs: number): number {
  return Math.min(1_000, Math.max(100, Math.ceil(timeoutMs / 10)));
}

/** The client-side timeout that goes with a server-side bound of `timeoutMs`. */
export function clientTimeoutMs(timeoutMs: number): number {
  return timeoutMs + clientGraceMs(timeoutMs);
}

/** The statement that opens every transaction: one round trip, nothing that outlives it. */
export function openingStatement(bounds: TransactionBounds): string {
  const statementMs = wholeMs(bounds.timeoutMs, 'timeoutMs');
  const lockMs = wholeMs(bounds.lockTimeoutMs ?? bounds.timeoutMs, 'lockTimeoutMs');
  return [
    'BEGIN',
    `SET LOCAL statement_timeout = ${statementMs}`,
    `SET LOCAL lock_timeout = ${Math.min(lockMs, statementMs)}`,
    `SET LOCAL idle_in_transaction_session_timeout = ${clientTimeoutMs(statementMs)}`,
  ].join('; ');
}

/**
 * Runs `work` in one transaction bounded as `bounds` says, on a client of `pool`, and commits.
 * On any failure it rolls back (or, when the connection's state is unknown, discards the
 * connection) and rethrows the error as pg raised it: callers classify it.
 */
export async function inTransaction<T>(
  pool: TransactionPool,
  bounds: TransactionBounds,
  work: (query: TransactionQuery) => Promise<T>,
): Promise<T> {
  const opening = openingStatement(bounds);
  const until = Date.now() + clientTimeoutMs(bounds.timeoutMs);
  const client: TransactionClient = await pool.connect();
  const run = <R extends QueryResultRow>(
    text: string,
    values: readonly unknown[] | undefined,
    timeoutMs: number,
  ): Promise<QueryResult<R>> =>
    // pg honours query_timeout per query; its types only know it per client.
    client.query<R>({
      text,
      ...(values !== undefined && values.length > 0 ? { values: [...values] } : {}),
      query_timeout: Math.max(1, timeoutMs),
    } as QueryConfig);
  const query: TransactionQuery = (text, values) => run(text, values, until - Date.now());
  let broken = false;
  // A connection that dies mid-transaction also emits 'error' on the client: the failing query
  // reports it, so the event only marks the client as not reusable.
  const onError = (): void => {
    broken = true;
  };
  client.on('error', onError);
  try {
    await query(opening);
    const result = await work(query);
    await query('COMMIT');
    return result;
  } catch (error) {
    broken = true;
    try {
      // Briefly: after a client-side timeout the server may still be busy, and then the
      // connection is discarded instead (the server ends the transaction itself).
      await run('ROLLBACK', undefined, clientGraceMs(bounds.timeoutMs));
      broken = false;
    } catch {
      // The connection is gone or still busy; release(true) below discards it.
    }
    throw error;
  } finally {
    client.off('error', onError);
    client.release(broken);
  }
}

function wholeMs(value: number, name: string): number {
  if (!Number.isFinite(value) || value < 1) {
    throw new RangeError(`${name} must be a positive number of milliseconds, got ${value}`);
  }
  return Math.ceil(value);
}
