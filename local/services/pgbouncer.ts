/**
 * PgBouncer in transaction mode in front of PostgreSQL: RDS Proxy's stand-in, with the timeouts
 * that make a PostgreSQL outage show as errors instead of queued queries.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { binary } from './binaries.js';
import { type RunAs, serviceLogPath } from './data-dir.js';
import { READY_TIMEOUT_MS } from './managed-service.js';
import { PG_USER, pgUrl } from './names.js';
import type { LaunchSpec } from './processes.js';
import { pgbouncerRuns, queryOnce, sqlState } from './readiness.js';
import { logTail, ServiceStartError } from './start-error.js';

/** PgBouncer on `port`, routing every database name to the PostgreSQL on `postgresPort`. */
export function pgbouncerLaunch(
  port: number,
  options: {
    readonly dir: string;
    readonly runAs: RunAs | undefined;
    readonly postgresPort: number;
  },
): LaunchSpec {
  const { dir } = options;
  const configPath = join(dir, 'pgbouncer.ini');
  const authFile = join(dir, 'pgbouncer-users.txt');
  writeFileSync(authFile, `"${PG_USER}" ""\n`);
  // No `logfile`: PgBouncer reports config errors only on stderr, which goes to pgbouncer.log.
  writeFileSync(
    configPath,
    [
      '[databases]',
      // Any database name routes to the database of the same name.
      `* = host=127.0.0.1 port=${options.postgresPort}`,
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'pool_mode = transaction',
      'auth_type = trust',
      `auth_file = ${authFile}`,
      `admin_users = ${PG_USER}`,
      'ignore_startup_parameters = extra_float_digits,options',
      'max_client_conn = 1000',
      'default_pool_size = 20',
      // While PostgreSQL is down, PgBouncer 1.18 (Debian 12) queues a query instead of
      // failing it (so does RDS Proxy, up to its borrow timeout) until query_wait_timeout,
      // 120 s by default: fault tests need the error sooner. After a failed login PgBouncer
      // waits server_login_retry (default 15 s) before it tries PostgreSQL again.
      'query_wait_timeout = 5',
      'server_login_retry = 0.2',
      '',
    ].join('\n'),
  );
  return {
    command: binary('pgbouncer'),
    args: [configPath],
    runAs: options.runAs,
    cwd: dir,
    logPath: serviceLogPath(dir, 'pgbouncer'),
    // SIGINT would wait for clients' transactions to end; SIGTERM is PgBouncer's immediate shutdown.
    stopSignal: 'SIGTERM',
    answers: () => pgbouncerRuns(port, configPath),
  };
}

/**
 * After PostgreSQL restarts, PgBouncer turns clients away ("server login has been failing")
 * until each of its pools has connected again, which a client's attempt triggers once
 * server_login_retry passed. Nudge every pool here, so that restart() means usable.
 */
export async function untilPgBouncerReconnects(
  bouncer: { readonly pid: number | undefined; readonly port: number },
  dir: string,
): Promise<void> {
  if (bouncer.pid === undefined) return;
  const admin = new pg.Client({ connectionString: pgUrl(bouncer.port, 'pgbouncer') });
  await admin.connect();
  let pools: { database: string }[];
  try {
    pools = (await admin.query<{ database: string }>('SHOW POOLS')).rows;
  } finally {
    await admin.end();
  }
  const databases = new Set(
    pools.map((pool) => pool.database).filter((name) => name !== 'pgbouncer'),
  );
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (const database of databases) {
    for (;;) {
      const outcome = await queryOnce(pgUrl(bouncer.port, database), 'SELECT 1');
      // 3D000: a test dropped that database; its pool will never connect again.
      if (outcome.ok || sqlState(outcome.error) === '3D000') break;
      if (Date.now() >= deadline) {
        const logPath = serviceLogPath(dir, 'pgbouncer');
        throw new ServiceStartError(
          `pgbouncer on 127.0.0.1:${bouncer.port}`,
          `does not reach database ${database} again after PostgreSQL restarted: ${String(outcome.error)}`,
          logPath,
          logTail(logPath),
        );
      }
      await sleep(50);
    }
  }
}
