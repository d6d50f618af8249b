/**
 * Whether a service answers, and is the very process we started: raw RESP for Redis (no client
 * library retrying in the background), one `pg` query over a fresh connection for PostgreSQL and
 * PgBouncer.
 */
import { connect } from 'node:net';
import pg from 'pg';
import { pgUrl } from './names.js';

/**
 * Whether the Redis on the port is process `pid` and has loaded its data (and, for a replica
 * that follows its primary, has its link to it up): raw RESP `INFO`, no client library retrying
 * in the background.
 */
export async function redisAnswers(
  port: number,
  pid: number,
  following: boolean,
): Promise<boolean> {
  const reply = await redisCommand(port, ['INFO']);
  // An error (-LOADING while an append-only file is read back, say) is not ready.
  if (reply?.kind !== 'bulk') return false;
  const info = reply.text;
  return (
    new RegExp(`^process_id:${pid}\\r?$`, 'm').test(info) &&
    /^loading:0\r?$/m.test(info) &&
    (!following || /^master_link_status:up\r?$/m.test(info))
  );
}

export type RedisReply =
  | { readonly kind: 'bulk' | 'status' | 'error'; readonly text: string }
  | { readonly kind: 'other' };

/** One command over a fresh connection; undefined when Redis does not answer within 1 s. */
export function redisCommand(
  port: number,
  args: readonly string[],
): Promise<RedisReply | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let reply = '';
    const finish = (result: RedisReply | undefined) => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(1_000, () => finish(undefined));
    socket.on('error', () => finish(undefined));
    socket.on('close', () => finish(undefined));
    socket.on('connect', () => {
      const parts = args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`);
      socket.write(`*${args.length}\r\n${parts.join('')}`);
    });
    socket.on('data', (chunk) => {
      // latin1: one character per byte, so the bulk string's byte length counts characters.
      reply += chunk.toString('latin1');
      const headerEnd = reply.indexOf('\r\n');
      if (headerEnd === -1) return;
      const header = reply.slice(1, headerEnd);
      if (reply.startsWith('+')) return finish({ kind: 'status', text: header });
      if (reply.startsWith('-')) return finish({ kind: 'error', text: header });
      if (!reply.startsWith('$')) return finish({ kind: 'other' });
      const body = reply.slice(headerEnd + 2);
      if (body.length < Number(header)) return;
      finish({ kind: 'bulk', text: body.slice(0, Number(header)) });
    });
  });
}

export type QueryOutcome =
  | { readonly ok: true; readonly rows: readonly Record<string, unknown>[] }
  | { readonly ok: false; readonly error: unknown };

/** Connects and runs one simple query. */
export async function queryOnce(url: string, sql: string): Promise<QueryOutcome> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1_000 });
  // A probe's failure is its answer; the 'error' event must not crash the worker.
  client.on('error', () => undefined);
  try {
    await client.connect();
    const { rows } = await client.query<Record<string, unknown>>(sql);
    return { ok: true, rows };
  } catch (error) {
    return { ok: false, error };
  } finally {
    await client.end();
  }
}

export async function postgresAnswers(url: string): Promise<boolean> {
  return (await queryOnce(url, 'SELECT 1')).ok;
}

/** Whether the PostgreSQL on the port is the one serving `dataDir`. */
export async function postgresServes(port: number, dataDir: string): Promise<boolean> {
  const outcome = await queryOnce(
    pgUrl(port, 'postgres'),
    "SELECT current_setting('data_directory') AS value",
  );
  return outcome.ok && outcome.rows[0]?.value === dataDir;
}

/**
 * Whether the PgBouncer on the port runs with `configPath`. Its admin console answers without
 * PostgreSQL, so PgBouncer can restart while PostgreSQL is down.
 */
export async function pgbouncerRuns(port: number, configPath: string): Promise<boolean> {
  const outcome = await queryOnce(pgUrl(port, 'pgbouncer'), 'SHOW CONFIG');
  return (
    outcome.ok && outcome.rows.some((row) => row.key === 'conffile' && row.value === configPath)
  );
}

/** SQLSTATE of a `pg` error, if it has one. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}
