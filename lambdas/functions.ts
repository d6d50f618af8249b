/**
 * The deployed functions, declared once: the CDK app (`lib/spillway-stack.ts`,
 * `lib/localstack-stack.ts`), the local runner (`local/functions.ts`) and the tests read them from
 * here, and each keys its own per-function record by `FunctionName`, so that a function added here
 * and missing there fails to compile. Imports nothing: the CDK app reads it without the handlers.
 */

export interface FunctionManifestEntry {
  /** The handler file (it exports `handler`), relative to the handlers directory. */
  readonly handler: string;
  /** As deployed; the local runner enforces the same. `sync`'s is the `syncTimeoutSeconds` setting. */
  readonly timeoutSeconds: number;
  /** @default 512 (the CDK app's; `sync`'s is the `syncMemoryMb` setting) */
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
