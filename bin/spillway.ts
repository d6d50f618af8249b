#!/usr/bin/env node
/**
 * The Spillway command line.
 *
 *   spillway local                          run everything on this machine (see local/start.ts)
 *   spillway status                         health of the buffer, the database and the drain
 *   spillway drain [--timeout-ms N]         drain the backlog now, until it is empty
 *   spillway watch [--interval-ms N]        a live view of the backlog and the drain
 *   spillway wait [--timeout-ms N] VERSION... until changesets are applied or dead-lettered
 *   spillway dead-letters list [--limit N]
 *   spillway dead-letters replay (--all | ID...)
 *   spillway dead-letters purge (--all | ID...)
 *
 * Every command but `local` calls the engine directly with `REDIS_URL` and `DATABASE_URL`;
 * unset, they point at the services `spillway local` starts.
 */
import { parseArgs } from 'node:util';
import { ConfigError, messageOf, SpillwayError } from '../lambdas/core/errors.js';
import { parseStatusRequest } from '../lambdas/core/status-request.js';
import { closeContainer, getSpillway } from '../lambdas/runtime/container.js';
import { LOCAL_DATABASE, LOCAL_PORTS, startLocal } from '../local/start.js';
import { watch } from './watch.js';

const USAGE = `usage:
  spillway local                          serve every function at http://127.0.0.1:$PORT (default 3001)
  spillway status                         health: backlog, oldest pending change, dead letters, breaker
  spillway drain [--timeout-ms N]         drain the backlog into the database now
  spillway watch [--interval-ms N]        a live view: backlog, drain rate and time to empty,
                                          oldest pending change, breaker, dead letters, errors
  spillway wait [--timeout-ms N] VERSION...  wait until these changesets (the versions write
                                          returned) are applied or dead-lettered; exit 1 if
                                          any is still pending when the time is up
  spillway dead-letters list [--limit N]
  spillway dead-letters replay (--all | CHANGESET_ID...)
  spillway dead-letters purge (--all | CHANGESET_ID...)

environment: REDIS_URL, DATABASE_URL (unset: the services 'spillway local' starts),
  PORT, SYNC_INTERVAL_MS, SYNC_TIMEOUT_MS (local only), and every variable of lambdas/io/config.ts;
  SINK=data-api with 'local': the functions reach the database through the local Data API stand-in`;

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'local':
      return await local();
    case 'status':
      return await withEngine(async (spillway) => {
        const health = await spillway.health();
        print(health);
        return health.status === 'down' ? 1 : 0;
      });
    case 'drain':
      return await drain(rest);
    case 'dead-letters':
      return await deadLetters(rest);
    case 'wait':
      return await wait(rest);
    case 'watch': {
      const { values } = parseArgs({
        args: [...rest],
        options: { 'interval-ms': { type: 'string', default: '1000' } },
      });
      const intervalMs = positive('--interval-ms', values['interval-ms']);
      return await withEngine(async (spillway) => {
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        await watch(() => spillway.health(), {
          intervalMs,
          signal: stop.signal,
          tty: process.stdout.isTTY === true,
        });
        return 0;
      });
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`unknown command '${command}'\n${USAGE}`);
      return 2;
  }
}

async function local(): Promise<number> {
  const port = integerFromEnv('PORT', 3001);
  const local = await startLocal({
    port,
    syncIntervalMs: integerFromEnv('SYNC_INTERVAL_MS', 1_000),
    syncTimeoutMs: integerFromEnv('SYNC_TIMEOUT_MS', 60_000),
  });
  const where = local.services
    ? `; data in .local/, PostgreSQL at ${local.directDatabaseUrl ?? local.databaseUrl}`
    : '';
  const dataApi = local.dataApiUrl ? `; the Data API stand-in at ${local.dataApiUrl}` : '';
  console.log(
    `Spillway local runner ready at ${local.url} (functions: ${local.runner.functions.join(', ')}; Redis ${local.redisUrl}${where}${dataApi})`,
  );

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const shutdown = (signal: NodeJS.Signals) => {
      if (stopping) {
        // A second Ctrl-C: acknowledged writes are in Redis already; the services it started
        // are killed by their watchdog once this process is gone.
        console.error(`${signal} again: exiting without waiting`);
        process.exit(130);
      }
      stopping = true;
      console.error(`${signal}: finishing invocations in flight and stopping...`);
      local.stop().then(
        () => resolve(0),
        (error: unknown) => {
          console.error('shutdown failed:', error);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', shutdown);
    process.on('SIGTERM', shutdown);
  });
}

async function drain(args: readonly string[]): Promise<number> {
  const { values } = parseArgs({
    args: [...args],
    options: { 'timeout-ms': { type: 'string', default: '60000' } },
  });
  const timeoutMs = positive('--timeout-ms', values['timeout-ms']);
  return await withEngine(async (spillway) => {
    const result = await spillway.drain(Date.now() + timeoutMs);
    const stats = await spillway.stats();
    print({ ...result, backlog: stats.backlog, deadLetters: stats.deadLetters });
    return result.stoppedBy === 'empty' ? 0 : 1;
  });
}

async function wait(args: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...args],
    allowPositionals: true,
    options: { 'timeout-ms': { type: 'string', default: '60000' } },
  });
  const timeoutMs = positive('--timeout-ms', values['timeout-ms']);
  let versions: string[];
  try {
    versions = parseStatusRequest({ changesets: positionals });
  } catch (error) {
    console.error(`wait: ${messageOf(error)}\n${USAGE}`);
    return 2;
  }
  return await withEngine(async (spillway) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const statuses = await spillway.changesetStatus(versions);
      const pending = statuses.some((s) => s.status === 'pending');
      if (!pending || Date.now() >= until) {
        print(statuses);
        return pending ? 1 : 0;
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  });
}

async function deadLetters(args: readonly string[]): Promise<number> {
  const [action, ...rest] = args;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: { limit: { type: 'string', default: '100' }, all: { type: 'boolean' } },
  });
  switch (action) {
    case 'list': {
      const limit = positive('--limit', values.limit);
      return await withEngine(async (spillway) => {
        print(await spillway.listDeadLetters({ limit }));
        return 0;
      });
    }
    case 'replay':
    case 'purge': {
      if ((values.all === true) === positionals.length > 0) {
        console.error(`dead-letters ${action}: give either --all or changeset ids\n${USAGE}`);
        return 2;
      }
      const selection =
        values.all === true ? { all: true as const } : { changesetIds: positionals };
      return await withEngine(async (spillway) => {
        const ids =
          action === 'replay'
            ? await spillway.replayDeadLetters(selection)
            : await spillway.purgeDeadLetters(selection);
        print({ [action === 'replay' ? 'replayed' : 'purged']: ids });
        return 0;
      });
    }
    default:
      console.error(`dead-letters: expected list, replay or purge\n${USAGE}`);
      return 2;
  }
}

/** Runs `work` with the engine of `REDIS_URL` and `DATABASE_URL` (default: the local services). */
async function withEngine(
  work: (spillway: Awaited<ReturnType<typeof getSpillway>>) => Promise<number>,
): Promise<number> {
  process.env.REDIS_URL ||= `redis://127.0.0.1:${LOCAL_PORTS.redis}`;
  process.env.DATABASE_URL ||= `postgres://postgres@127.0.0.1:${LOCAL_PORTS.pgbouncer}/${LOCAL_DATABASE}`;
  try {
    return await work(await getSpillway());
  } finally {
    await closeContainer();
  }
}

function print(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

function integerFromEnv(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw))
    throw new ConfigError(name, `must be a non-negative integer, got '${raw}'`);
  return Number(raw);
}

function positive(flag: string, raw: string | undefined): number {
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(flag, `must be a positive integer, got '${raw}'`);
  }
  return value;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    if (error instanceof SpillwayError) console.error(`${error.name}: ${error.message}`);
    else console.error(error);
    process.exit(1);
  },
);
