import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBundle, PROJECT_ROOT } from '../../lib/bundle.js';
import { compactCommandTable } from '../../lib/ioredis-command-table.js';

const require = createRequire(import.meta.url);
type Commands = typeof import('@ioredis/commands');
const original = require('@ioredis/commands') as Commands;
const TABLE_FILE = require.resolve('@ioredis/commands/built/commands.json');
const table = JSON.parse(readFileSync(TABLE_FILE, 'utf8')) as Record<string, Spec>;
type Spec = { readonly subcommands?: Record<string, Spec> } & Record<string, unknown>;

const workDir = join(PROJECT_ROOT, '.tmp/ioredis-command-table');
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** Every command and subcommand name, in the table's order, as `command` or `command|sub`. */
function namesOf(commands: Record<string, Spec>, parent = ''): string[] {
  return Object.entries(commands).flatMap(([name, spec]) => [
    `${parent}${name}`,
    ...(spec.subcommands ? namesOf(spec.subcommands, `${parent}${name}|`) : []),
  ]);
}

describe("ioredis's command table in the bundles", () => {
  it("builds an object equal to the package's JSON, commands, subcommands and flags in the same order", () => {
    const module = { exports: {} as Record<string, Spec> };
    new Function('module', compactCommandTable(table))(module);
    expect(module.exports).toStrictEqual(table);
    expect(namesOf(module.exports)).toEqual(namesOf(table));
    expect(namesOf(table).length).toBeGreaterThan(400);
  });

  it('answers every command as the package does once bundled: the method list, flags and key positions', async () => {
    mkdirSync(workDir, { recursive: true });
    const entry = join(workDir, 'entry.mjs');
    // Named, because `export *` cannot see a CommonJS module's names.
    writeFileSync(
      entry,
      "import * as c from '@ioredis/commands'; export const { list, exists, hasFlag, getKeyIndexes } = c;",
    );
    const built = await buildBundle({ entry, outdir: join(workDir, 'bundle') });
    const bundled = (await import(pathToFileURL(built.file).href)) as Commands;

    expect(bundled.list).toEqual(original.list);
    const flags = [
      ...new Set(Object.values(table).flatMap((spec) => spec.flags as string[])),
    ].sort();
    const args = ['a', 'b', 'c', 'd', 'e', 'f'];
    const outcome = (f: () => unknown) => {
      try {
        return { value: f() };
      } catch (error) {
        return { error: String(error) };
      }
    };
    for (const name of original.list) {
      expect(bundled.exists(name), name).toBe(true);
      for (const flag of flags) {
        expect(bundled.hasFlag(name, flag), `${name} ${flag}`).toBe(original.hasFlag(name, flag));
      }
      const subcommands = Object.keys(table[name]?.subcommands ?? {});
      for (const first of [...subcommands, '2']) {
        const withFirst = [first, ...args];
        expect(
          outcome(() => bundled.getKeyIndexes(name, withFirst)),
          `${name} ${first}`,
        ).toEqual(outcome(() => original.getKeyIndexes(name, withFirst)));
      }
    }
    expect(bundled.exists('no-such-command')).toBe(false);
  });
});
