/**
 * ioredis's table of Redis commands (`@ioredis/commands/built/commands.json`: every command and
 * subcommand with its arity, flags and key positions, from which ioredis makes one method per
 * command) re-encoded for the functions' bundles: the same object, built at load from a compact
 * form (by the plugin of `lib/bundle-options.ts`). esbuild would emit the JSON as
 * an object literal of 43 KB, most of it the same five property names and twenty flag names
 * repeated; this is about 13 KB. Nothing is left out, so no command method can go missing: the
 * encoding is generated from the installed package's JSON whenever a bundle is built, and
 * `test/unit/ioredis-command-table.test.ts` checks that it builds an equal object, with the
 * commands, subcommands and each command's flags in the same order.
 */

/** One entry of the table, as the package's JSON has it. */
type CommandSpec = Readonly<Record<string, unknown>>;

/** The properties every entry has; the encoding relies on them. */
const COMMON = ['arity', 'flags', 'keyStart', 'keyStop', 'step'] as const;

/**
 * The source of a CommonJS module whose `module.exports` equals `table`. Each entry that has the
 * `COMMON` properties becomes `c(arity, flags, keys?, rest?)`: its flags as one letter each (an
 * index into the table's flag names), its key positions as an index into the table's distinct
 * `[keyStart, keyStop, step]` (0: none, omitted), and its other properties (`subcommands`, encoded
 * the same way; request and response policies). An entry of any other shape stays JSON. Nothing
 * reads an entry's properties in order, so the common ones come first.
 */
export function compactCommandTable(table: Readonly<Record<string, CommandSpec>>): string {
  const flagNames: string[] = [];
  const keyTriples: string[] = ['[0,0,0]'];
  const collect = (entries: Readonly<Record<string, CommandSpec>>): void => {
    for (const spec of Object.values(entries)) {
      if (!hasCommonShape(spec)) continue;
      for (const flag of spec.flags) if (!flagNames.includes(flag)) flagNames.push(flag);
      const keys = keyTriple(spec);
      if (!keyTriples.includes(keys)) keyTriples.push(keys);
      if (isTable(spec.subcommands)) collect(spec.subcommands);
    }
  };
  collect(table);
  if (flagNames.length > 26) throw new Error('the command table has more flags than letters');

  const encodeTable = (entries: Readonly<Record<string, CommandSpec>>): string =>
    `{${Object.entries(entries)
      .map(([name, spec]) => `${JSON.stringify(name)}:${encodeEntry(spec)}`)
      .join(',')}}`;
  const encodeEntry = (spec: CommandSpec): string => {
    if (!hasCommonShape(spec)) return JSON.stringify(spec);
    const rest = Object.entries(spec)
      .filter(([key]) => !(COMMON as readonly string[]).includes(key))
      .map(
        ([key, value]) =>
          `${JSON.stringify(key)}:${key === 'subcommands' && isTable(value) ? encodeTable(value) : JSON.stringify(value)}`,
      );
    const flags = spec.flags.map((flag) => String.fromCharCode(97 + flagNames.indexOf(flag)));
    const keys = keyTriples.indexOf(keyTriple(spec));
    const args = [String(spec.arity), JSON.stringify(flags.join(''))];
    if (keys !== 0 || rest.length > 0) args.push(String(keys));
    if (rest.length > 0) args.push(`{${rest.join(',')}}`);
    return `c(${args.join(',')})`;
  };

  return [
    `const F=${JSON.stringify(flagNames)},K=[${keyTriples.join(',')}];`,
    'const c=(arity,flags,keys=0,rest)=>{const[keyStart,keyStop,step]=K[keys];',
    'return{arity,flags:Array.from(flags,(f)=>F[f.charCodeAt(0)-97]),keyStart,keyStop,step,...rest}};',
    `module.exports=${encodeTable(table)};`,
  ].join('\n');
}

interface CommonShape extends CommandSpec {
  readonly arity: number;
  readonly flags: readonly string[];
  readonly keyStart: number;
  readonly keyStop: number;
  readonly step: number;
}

function hasCommonShape(spec: CommandSpec): spec is CommonShape {
  const keys = Object.keys(spec);
  return (
    COMMON.every((key) => keys.includes(key)) &&
    Array.isArray(spec.flags) &&
    spec.flags.every((flag) => typeof flag === 'string') &&
    [spec.arity, spec.keyStart, spec.keyStop, spec.step].every(Number.isInteger)
  );
}

function keyTriple(spec: CommonShape): string {
  return JSON.stringify([spec.keyStart, spec.keyStop, spec.step]);
}

function isTable(value: unknown): value is Readonly<Record<string, CommandSpec>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
