/**
 * Every error Spillway raises on purpose. Callers branch with `instanceof`, never on messages.
 * The `name` of each class is the `errorType` a Lambda caller sees.
 */
export abstract class SpillwayError extends Error {
  /** Whether the same call may succeed if tried again later. */
  abstract readonly retryable: boolean;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** G6: the input is malformed; nothing of it was buffered. `path` names the offending part. */
export class ValidationError extends SpillwayError {
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
  readonly retryable = false;
}

/**
 * G7: the database refused a change for a reason that will not go away by retrying
 * (constraint, data type, a patch of a missing row). The drainer isolates it and dead-letters it.
 */
export class RejectedChangeError extends SpillwayError {
  readonly retryable = false;
  constructor(
    message: string,
    readonly sqlState: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Another drainer holds a newer lease: this one must stop without touching the backlog. */
export class FencedError extends SpillwayError {
  readonly retryable = true;
}

/**
 * A migration could not be applied: PostgreSQL refused it, or its file changed after it was
 * applied; nothing of that migration is in the database. Or every migration is applied but the
 * tables do not match their definitions (tables that existed before Spillway, say): `problems`
 * lists what is wrong.
 */
export class MigrationError extends SpillwayError {
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
