/**
 * Every error Spillway raises on purpose. Callers branch with `instanceof`, never on messages.
 * The `name` of each class is the `errorType` a Lambda caller sees: a literal in each class, not
 * the constructor's name, which a minifier may rename.
 */
export abstract class SpillwayError extends Error {
  abstract override readonly name: string;
  /** Whether the same call may succeed if tried again later. */
  abstract readonly retryable: boolean;
}

/** G6: the input is malformed; nothing of it was buffered. `path` names the offending part. */
export class ValidationError extends SpillwayError {
  override readonly name = 'ValidationError';
  readonly retryable = false;
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(path ? `${path}: ${problem}` : problem);
  }
}

/** G5: the backlog is at its limit; try again after the drainer has caught up. */
export class BackpressureError extends SpillwayError {
  override readonly name = 'BackpressureError';
  readonly retryable = true;
  constructor(
    readonly backlog: number,
    readonly limit: number,
    reason?: string,
  ) {
    super(
      `${reason ? `${reason}; the ` : ''}backlog holds ${backlog} pending changes; the limit is ${limit}. Retry after the backlog drains.`,
    );
  }
}

/** A dependency (Redis or the database) cannot be reached right now. */
export class UnavailableError extends SpillwayError {
  override readonly name = 'UnavailableError';
  readonly retryable = true;
  constructor(
    readonly dependency: 'redis' | 'database',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${dependency} unavailable: ${message}`, options);
  }
}

/** An environment variable or setting is missing or malformed. */
export class ConfigError extends SpillwayError {
  override readonly name = 'ConfigError';
  readonly retryable = false;
  constructor(
    readonly variable: string,
    problem: string,
  ) {
    super(`${variable}: ${problem}`);
  }
}

/** An operator asked for something that does not exist (a dead letter id, say). */
export class NotFoundError extends SpillwayError {
  override readonly name = 'NotFoundError';
  readonly retryable = false;
}

/**
 * G7: the database refused a change for a reason that will not go away by retrying
 * (constraint, data type, a patch of a missing row). The drainer isolates it and dead-letters it.
 */
export class RejectedChangeError extends SpillwayError {
  override readonly name = 'RejectedChangeError';
  readonly retryable = false;
  constructor(
    message: string,
    readonly sqlState: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * G7: a fault of the whole system rather than of one change (a missing column, table or
 * privilege, failed authentication): every change it touches would fail alike, so nothing is
 * dead-lettered; the drain stops before it, reports it, and tries again with backoff until it
 * is fixed. Retryable: the same call succeeds once an operator has fixed the cause.
 */
export class SystemicDatabaseError extends SpillwayError {
  override readonly name = 'SystemicDatabaseError';
  readonly retryable = true;
  constructor(
    message: string,
    readonly sqlState: string | undefined,
    /** The table it concerns, when known. */
    readonly table: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Another drainer holds a newer lease: this one must stop without touching the backlog. */
export class FencedError extends SpillwayError {
  override readonly name = 'FencedError';
  readonly retryable = true;
}

/**
 * A migration could not be applied: PostgreSQL refused it, or its file changed after it was
 * applied; nothing of that migration is in the database. Or every migration is applied but the
 * tables do not match their definitions (tables that existed before Spillway, say): `problems`
 * lists what is wrong.
 */
export class MigrationError extends SpillwayError {
  override readonly name = 'MigrationError';
  readonly retryable = false;
  /** The migration's file name; undefined when the tables failed the check after migrating. */
  readonly file: string | undefined;
  /** PostgreSQL's SQLSTATE, when PostgreSQL refused the migration. */
  readonly sqlState: string | undefined;
  /** Each mismatch between a table and its definition (`table.column: ...`); empty otherwise. */
  readonly problems: readonly string[];

  constructor(
    message: string,
    details: {
      readonly file?: string;
      readonly sqlState?: string;
      readonly problems?: readonly string[];
      readonly cause?: unknown;
    },
  ) {
    super(message, { cause: details.cause });
    this.file = details.file;
    this.sqlState = details.sqlState;
    this.problems = details.problems ?? [];
  }
}

/** The message of anything thrown: an Error's `message`, or the thing itself as text. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
