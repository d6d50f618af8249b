/**
 * The deployed functions, declared once: the CDK app (`lib/spillway-stack.ts`,
 * `lib/localstack-stack.ts`), the local runner (`local/functions.ts`) and the tests read them from
 * here, and each keys its own per-function record by `FunctionName`, so that a function added here
 * and missing there fails to compile. Imports nothing: the CDK app reads it without the handlers.
 */

/** A function's memory unless it says otherwise (MB); `sync`'s too, unless `syncMemoryMb` does. */
export const DEFAULT_MEMORY_MB = 512;

/**
 * The `NODE_OPTIONS` of a function with `memoryMb` of memory: source maps, and V8's old
 * generation bounded at three quarters of the memory. Without a bound V8 sizes its heap by the
 * machine's memory and, when that allows more than 1 GiB, lets the heap grow to four times what
 * is live before collecting; under 1 GiB it grows by 1.3 to 2 times (V8's heap controller), so
 * the heap follows what the function holds. A drain of 1,000-change changesets: 261 to 278 MiB
 * of RSS unbounded, about 175 with the bound, for some more CPU in garbage collection (README,
 * "A million-change backlog"). The bound is stated here rather than left to the Lambda
 * runtime's start-up script, whose flags are not documented; the backlog benchmark runs its
 * drainer with the same options as `sync`.
 */
export function nodeOptions(memoryMb: number): string {
  return `--enable-source-maps --max-old-space-size=${Math.floor((memoryMb * 3) / 4)}`;
}

export interface FunctionManifestEntry {
  /** The handler file (it exports `handler`), relative to the handlers directory. */
  readonly handler: string;
  /** As deployed; the local runner enforces the same. `sync`'s is the `syncTimeoutSeconds` setting. */
  readonly timeoutSeconds: number;
  /** @default DEFAULT_MEMORY_MB (the CDK app's; `sync`'s is the `syncMemoryMb` setting) */
  readonly memoryMb?: number;
  /**
   * Whether it reaches the database (its security group, IAM `rds-db:connect`, the `DB_*`
   * settings); every other function gets the buffer only.
   */
  readonly reachesDatabase: boolean;
  /**
   * An example pipeline step, deployed the way a pipeline step of your own is
   * (`SpillwayPipelineFunction`), rather than a function of the engine.
   */
  readonly exampleStep: boolean;
  readonly description: string;
}

export const FUNCTIONS = {
  write: {
    handler: 'write.ts',
    timeoutSeconds: 15,
    reachesDatabase: false,
    exampleStep: false,
    description: 'Spillway: buffer a changeset',
  },
  // read overlays pending changes on the synced row, so it needs the database as well as Redis (G4).
  read: {
    handler: 'read.ts',
    timeoutSeconds: 15,
    reachesDatabase: true,
    exampleStep: false,
    description: 'Spillway: read the latest acknowledged state of a key',
  },
  sync: {
    handler: 'sync.ts',
    timeoutSeconds: 240,
    reachesDatabase: true,
    exampleStep: false,
    description: 'Spillway: drain the buffer into the database',
  },
  health: {
    handler: 'health.ts',
    timeoutSeconds: 20,
    reachesDatabase: true,
    exampleStep: false,
    description: 'Spillway: health of the buffer, the database and the drain',
  },
  migrate: {
    handler: 'migrate.ts',
    timeoutSeconds: 300,
    reachesDatabase: true,
    exampleStep: false,
    description: 'Spillway: apply SQL migrations',
  },
  admin: {
    handler: 'admin.ts',
    timeoutSeconds: 60,
    reachesDatabase: true,
    exampleStep: false,
    description: 'Spillway: dead letters (list, replay, purge) and operator actions',
  },
  'process-document': {
    handler: 'process-document.ts',
    timeoutSeconds: 60,
    reachesDatabase: false,
    exampleStep: true,
    description: 'Spillway example pipeline step: register a document and its chunks',
  },
  'extract-entities': {
    handler: 'extract-entities.ts',
    timeoutSeconds: 60,
    reachesDatabase: false,
    exampleStep: true,
    description: 'Spillway example pipeline step: extract entities and relationships from chunks',
  },
} as const satisfies Record<string, FunctionManifestEntry>;

/** A deployed function's logical name (the contract's name, as the local runner serves it). */
export type FunctionName = keyof typeof FUNCTIONS;

/** Every function's name, in the manifest's order. */
export const FUNCTION_NAMES = Object.keys(FUNCTIONS) as FunctionName[];

/** The functions that reach the database. */
export const DATABASE_FUNCTIONS: readonly FunctionName[] = FUNCTION_NAMES.filter(
  (name) => FUNCTIONS[name].reachesDatabase,
);

/** The functions that write to the buffer without a database (`write` and the pipeline steps). */
export const WRITER_FUNCTIONS: readonly FunctionName[] = FUNCTION_NAMES.filter(
  (name) => !FUNCTIONS[name].reachesDatabase,
);
