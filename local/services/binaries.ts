/**
 * Where the service binaries are: redis-server, PostgreSQL's initdb and postgres, pgbouncer.
 * Each is looked up once per process; a missing one fails with the package that provides it.
 */
import { accessSync, constants, existsSync, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface Binaries {
  readonly redisServer: string;
  readonly initdb: string;
  readonly postgres: string;
  readonly pgbouncer: string;
}

const binaryCache = new Map<keyof Binaries, string>();

export function binary(name: keyof Binaries): string {
  let path = binaryCache.get(name);
  if (path === undefined) {
    path = findBinary(name);
    binaryCache.set(name, path);
  }
  return path;
}

function findBinary(name: keyof Binaries): string {
  switch (name) {
    case 'redisServer':
      return (
        findOnPath('redis-server', ['/usr/bin', '/usr/local/bin']) ??
        missing('redis-server', 'on PATH', 'redis-server')
      );
    case 'pgbouncer':
      return (
        findOnPath('pgbouncer', ['/usr/sbin', '/usr/bin', '/usr/local/bin']) ??
        missing('pgbouncer', 'in /usr/sbin or on PATH', 'pgbouncer')
      );
    case 'initdb':
    case 'postgres':
      return join(postgresBinDir(), name);
  }
}

/**
 * Debian's newest /usr/lib/postgresql/<major>/bin first: that is what apt installs, and
 * /usr/local/bin/initdb and friends, where present, are symlinks into it. `PG_BINDIR` overrides.
 */
function postgresBinDir(): string {
  const hasBoth = (dir: string) =>
    isExecutable(join(dir, 'initdb')) && isExecutable(join(dir, 'postgres'));
  const override = process.env.PG_BINDIR;
  if (override !== undefined && override !== '') {
    if (hasBoth(override)) return override;
    throw new Error(`PG_BINDIR=${override} holds no initdb and postgres`);
  }
  const debianRoot = '/usr/lib/postgresql';
  const majors = existsSync(debianRoot)
    ? readdirSync(debianRoot)
        .filter((entry) => /^\d+(\.\d+)?$/.test(entry))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  for (const major of majors) {
    const dir = join(debianRoot, major, 'bin');
    if (hasBoth(dir)) return dir;
  }
  for (const dir of pathDirs()) {
    if (hasBoth(dir)) return dir;
  }
  return missing('initdb and postgres', `in ${debianRoot}/<major>/bin or on PATH`, 'postgresql');
}

function pathDirs(): string[] {
  return (process.env.PATH ?? '').split(delimiter).filter((dir) => dir !== '');
}

function findOnPath(name: string, fallbackDirs: readonly string[]): string | undefined {
  for (const dir of [...pathDirs(), ...fallbackDirs]) {
    const candidate = join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function missing(what: string, where: string, aptPackage: string): never {
  throw new Error(`services: found no ${what} ${where} (apt-get install ${aptPackage})`);
}
