/** PostgreSQL: its cluster (initdb, once per data dir) and the server in front of it. */
import { join } from 'node:path';
import { binary } from './binaries.js';
import { MAX_TEMP_DIR_LENGTH, type RunAs, serviceLogPath } from './data-dir.js';
import { PG_USER } from './names.js';
import { killTree, type LaunchSpec, type Running, spawnService, untilExit } from './processes.js';
import { postgresServes } from './readiness.js';
import { logTail, ServiceStartError } from './start-error.js';

const INITDB_TIMEOUT_MS = 60_000;

/** Where the cluster lives in the services' dir. */
export function pgDataDir(dir: string): string {
  return join(dir, 'pgdata');
}

/**
 * Creates the cluster in `<dir>/pgdata`. `track` is told the initdb process while it runs, so
 * that the process 'exit' hook can kill it too.
 */
export async function initdb(options: {
  readonly dir: string;
  readonly runAs: RunAs | undefined;
  readonly track: (running: Running | undefined) => void;
}): Promise<void> {
  const logPath = serviceLogPath(options.dir, 'initdb');
  const running = await spawnService({
    command: binary('initdb'),
    args: [
      '--pgdata',
      pgDataDir(options.dir),
      '--username',
      PG_USER,
      '--auth-local=trust',
      '--auth-host=trust',
      '--encoding=UTF8',
      '--no-locale',
      '--no-sync',
    ],
    runAs: options.runAs,
    cwd: options.dir,
    logPath,
    stopSignal: 'SIGTERM',
    answers: async () => true,
  });
  options.track(running);
  try {
    if (!(await untilExit(running, INITDB_TIMEOUT_MS))) {
      await killTree(running);
      throw new ServiceStartError(
        'initdb',
        `did not finish within ${INITDB_TIMEOUT_MS / 1000} s`,
        logPath,
        logTail(logPath),
      );
    }
  } finally {
    options.track(undefined);
  }
  if (running.exitDescription !== 'code 0') {
    throw new ServiceStartError(
      'initdb',
      `failed (${running.exitDescription})`,
      logPath,
      logTail(logPath),
    );
  }
}

/** The server on `port`, serving the cluster in `<dir>/pgdata`. */
export function postgresLaunch(
  port: number,
  options: { readonly dir: string; readonly runAs: RunAs | undefined },
): LaunchSpec {
  const { dir } = options;
  const dataDir = pgDataDir(dir);
  const settings = {
    listen_addresses: '127.0.0.1',
    // A kept data dir may sit at a path too long for a unix socket; clients use TCP anyway.
    unix_socket_directories: dir.length <= MAX_TEMP_DIR_LENGTH ? dir : '',
    max_connections: '200',
    // Survives a kill -9 of PostgreSQL (the OS still has the writes), not a machine crash.
    fsync: 'off',
    full_page_writes: 'off',
  };
  return {
    command: binary('postgres'),
    args: [
      '-D',
      dataDir,
      '-p',
      String(port),
      ...Object.entries(settings).flatMap(([key, value]) => ['-c', `${key}=${value}`]),
    ],
    runAs: options.runAs,
    cwd: dir,
    logPath: serviceLogPath(dir, 'postgres'),
    // Fast shutdown: SIGTERM ("smart") would wait for every client to disconnect.
    stopSignal: 'SIGINT',
    answers: () => postgresServes(port, dataDir),
  };
}
