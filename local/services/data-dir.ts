/**
 * The dir the services keep their data and logs in (a fresh temp dir, or a kept `dataDir`), and
 * the user they run as: under root, PostgreSQL and PgBouncer run as `postgres`, who must be able
 * to use that dir.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PG_USER } from './names.js';

/** Unix socket paths are limited to 107 bytes; the socket lives in the temp dir. */
export const MAX_TEMP_DIR_LENGTH = 80;

/** Where a service (or initdb) writes its stdout and stderr: `<dir>/<name>.log`. */
export function serviceLogPath(dir: string, name: string): string {
  return join(dir, `${name}.log`);
}

export interface RunAs {
  readonly uid: number;
  readonly gid: number;
}

/**
 * PostgreSQL and PgBouncer refuse to run as root (CI runs as root): then they run as the
 * `postgres` system user that Debian's postgresql package creates. Redis may stay root.
 */
export function serviceUser(): RunAs | undefined {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const id = (flag: string) =>
      Number(execFileSync('id', [flag, PG_USER], { encoding: 'utf8' }).trim());
    return { uid: id('-u'), gid: id('-g') };
  } catch (error) {
    throw new Error(
      `services: running as root, PostgreSQL and PgBouncer must run as the "${PG_USER}" system user, which does not exist (apt-get install postgresql creates it)`,
      { cause: error },
    );
  }
}

/**
 * A fresh temp dir the services' user can write. Under root it belongs to `postgres`; a
 * TMPDIR that user cannot reach (or one too long for a unix socket path) falls back to /tmp.
 */
export function createTempDir(runAs: RunAs | undefined): string {
  const bases = [...new Set([tmpdir(), '/tmp'])];
  for (const base of bases) {
    const dir = mkdtempSync(join(base, 'spillway-'));
    if (dir.length <= MAX_TEMP_DIR_LENGTH && (runAs === undefined || handOver(dir, runAs))) {
      return dir;
    }
    rmSync(dir, { recursive: true, force: true });
  }
  throw new Error(`services: no temp dir under ${bases.join(' or ')} is usable by user ${PG_USER}`);
}

/** The `dataDir`, created if missing; under root it must be usable by `postgres` too. */
export function prepareDataDir(dataDir: string, runAs: RunAs | undefined): string {
  const dir = resolve(dataDir);
  mkdirSync(dir, { recursive: true });
  if (runAs !== undefined && !handOver(dir, runAs)) {
    throw new Error(
      `services: ${dir} is not usable by user ${PG_USER}, whom PostgreSQL runs as under root: every folder above it must be searchable by others (chmod o+x)`,
    );
  }
  return dir;
}

function handOver(dir: string, runAs: RunAs): boolean {
  chownSync(dir, runAs.uid, runAs.gid);
  const probe = spawnSync('/bin/sh', ['-c', 'test -w "$0" && test -x "$0"', dir], {
    uid: runAs.uid,
    gid: runAs.gid,
    stdio: 'ignore',
  });
  return probe.status === 0;
}
