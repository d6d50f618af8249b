/**
 * How Spillway classifies a database failure (G7): the one place that decides, used by the sink
 * (and so the drainer) and the migrator.
 *
 * By SQLSTATE class (the first two characters), with a few codes decided on their own:
 *
 * | SQLSTATE | meaning | kind | why |
 * |---|---|---|---|
 * | none | socket closed, connect or query timeout, pool error | transient | the database or the way to it is away; nothing was refused |
 * | 08 | connection exception | transient | |
 * | 25 | invalid transaction state (25006 read-only during a failover, 25P03 idle timeout) | transient | a failover or a timed-out session passes |
 * | 40 | transaction rollback (40001 serialization, 40P01 deadlock) | transient | the same transaction passes when tried again |
 * | 53 | insufficient resources (disk full, out of memory, too many connections) | transient | the database's state, not the change's; retried behind the breaker, whose alarm fires |
 * | 55 | object not in prerequisite state (55P03 lock not available, 55006 object in use) | transient | a lock or a concurrent operation passes |
 * | 57 | operator intervention (57014 query canceled by statement_timeout, 57P01–57P03 shutdown, restart) | transient | except 57P04 |
 * | 57P04 | database dropped | systemic | |
 * | 58, XX, 72 | system, internal, snapshot errors | transient | nothing says the change is at fault |
 * | 21, 22, 23, 27 | cardinality, data exception, integrity constraint, triggered data change | refused | this change's values |
 * | 09, 20, 2F, 38, 39, P0 | triggered action, case not found, SQL and external routine exceptions, PL/pgSQL (P0001 `RAISE EXCEPTION` in a trigger) | refused | a routine ran on this change's values and refused it |
 * | 44 | WITH CHECK OPTION violation | refused | this row leaves the view |
 * | 54 | program limit exceeded (row or index entry too big, statement too complex) | refused | raised by this row's size or shape |
 * | 42 | syntax error or access rule violation (42703 undefined column, 42P01 undefined table, 42501 insufficient privilege, 42883 undefined function) | systemic | the statements are the same for every row of a table: the schema or the grants changed |
 * | 0A | feature not supported (an insert into a view that cannot take it) | systemic | depends on the table and the statement, not on the values |
 * | 28, 0L, 0P | authorization, grantor, role | systemic | credentials or roles; an operator must act |
 * | 3D, 3F | missing database, missing schema | systemic | |
 * | F0 | configuration file error | systemic | |
 * | anything else | | transient | uncertainty delays a change instead of dead-lettering it (G1) |
 *
 * Through the RDS Data API (`DataApiSink`) PostgreSQL's own errors arrive as a
 * `DatabaseErrorException` (older clusters: `BadRequestException`) whose message ends in
 * `; SQLState: XXXXX`; they are classified by that SQLSTATE as above. The Data API's other
 * exceptions, by name:
 *
 * | exception | kind | why |
 * |---|---|---|
 * | DatabaseResumingException | transient | an auto-paused Aurora Serverless v2 instance is waking up (seconds); the call started it |
 * | StatementTimeoutException, TransactionNotFoundException | transient | the call or its transaction ran out of time (45 s a call, 3 minutes idle): the batch is tried again |
 * | DatabaseUnavailableException, InternalServerErrorException, ServiceUnavailableError, throttling, network | transient | |
 * | AccessDeniedException, ForbiddenException, HttpEndpointNotEnabledException, InvalidSecretException, SecretsErrorException, DatabaseNotFoundException, NotFoundException | systemic | grants, the secret or the cluster's settings: an operator must act |
 * | BadRequestException, UnsupportedResultException without a SQLSTATE | systemic | the request itself is wrong (too large, unsupported type): the same for every try |
 *
 * A refusal is the class's verdict on one statement; the drainer also asks bisection (a refusal
 * that every changeset of a batch meets alike is treated as systemic, see `drainer.ts`), and a
 * systemic fault is the verdict for everything it touches.
 */

import {
  RejectedChangeError,
  SpillwayError,
  SystemicDatabaseError,
  UnavailableError,
} from './errors.js';
import { databaseReason } from './reasons.js';

/** What a database failure says about the change that met it. */
export type DatabaseFailureKind = 'refused' | 'systemic' | 'transient';

const REFUSED_CLASSES = new Set([
  '09',
  '20',
  '21',
  '22',
  '23',
  '27',
  '2F',
  '38',
  '39',
  '44',
  '54',
  'P0',
]);
const SYSTEMIC_CLASSES = new Set(['0A', '0L', '0P', '28', '3D', '3F', '42', 'F0']);
/** Codes decided against their class. */
const SYSTEMIC_CODES = new Set(['57P04']);

const SQLSTATE = /^[0-9A-Z]{5}$/;

/** The kind of a SQLSTATE (undefined: no answer from PostgreSQL at all). See the table above. */
export function classifySqlState(sqlState: string | undefined): DatabaseFailureKind {
  if (sqlState === undefined || !SQLSTATE.test(sqlState)) return 'transient';
  if (SYSTEMIC_CODES.has(sqlState)) return 'systemic';
  const kind = sqlState.slice(0, 2);
  if (REFUSED_CLASSES.has(kind)) return 'refused';
  if (SYSTEMIC_CLASSES.has(kind)) return 'systemic';
  return 'transient';
}

/**
 * What PostgreSQL reported, when `error` is its error report (pg's `DatabaseError`: a SQLSTATE
 * `code` and a `severity`); undefined for anything else, such as a Node socket error whose `code`
 * (`EPIPE`) merely looks like one.
 */
export interface DatabaseReport {
  readonly sqlState: string;
  readonly message: string;
  readonly detail: string | undefined;
  /** The table PostgreSQL named in the report (constraint errors do; 42703 does not). */
  readonly table: string | undefined;
}

export function databaseReportOf(error: unknown): DatabaseReport | undefined {
  if (!(error instanceof Error)) return undefined;
  if (isDataApiException(error)) return dataApiReportOf(error);
  const { code, severity, detail, table } = error as Error & Record<string, unknown>;
  if (typeof code !== 'string' || !SQLSTATE.test(code) || typeof severity !== 'string') {
    return undefined;
  }
  return {
    sqlState: code,
    message: error.message,
    detail: typeof detail === 'string' && detail !== '' ? detail : undefined,
    table: typeof table === 'string' && table !== '' ? table : undefined,
  };
}

/** The kind of any failure met while talking to the database. */
export function classifyDatabaseError(error: unknown): DatabaseFailureKind {
  const report = databaseReportOf(error);
  if (report === undefined && isDataApiException(error)) {
    return DATA_API_KINDS[error.name] ?? 'transient';
  }
  return classifySqlState(report?.sqlState);
}

/** The kinds of the Data API's exceptions that carry no SQLSTATE (see the table above). */
const DATA_API_KINDS: Readonly<Record<string, DatabaseFailureKind>> = {
  AccessDeniedException: 'systemic',
  ForbiddenException: 'systemic',
  HttpEndpointNotEnabledException: 'systemic',
  InvalidSecretException: 'systemic',
  SecretsErrorException: 'systemic',
  DatabaseNotFoundException: 'systemic',
  NotFoundException: 'systemic',
  BadRequestException: 'systemic',
  UnsupportedResultException: 'systemic',
  DatabaseErrorException: 'transient',
  DatabaseResumingException: 'transient',
  StatementTimeoutException: 'transient',
  TransactionNotFoundException: 'transient',
};

/**
 * An exception of `@aws-sdk/client-rds-data` (a service exception carries `$fault` and
 * `$metadata`). Recognised by shape and name so that this pure module needs no AWS SDK.
 */
function isDataApiException(error: unknown): error is Error & { $fault: string } {
  return error instanceof Error && '$fault' in error && '$metadata' in error;
}

/** `; SQLState: 23505` at the end of a Data API message that relays PostgreSQL's error. */
const DATA_API_SQLSTATE = /;\s*SQLState:\s*([0-9A-Z]{5})\s*$/;

function dataApiReportOf(error: Error): DatabaseReport | undefined {
  const match = DATA_API_SQLSTATE.exec(error.message);
  if (match?.[1] === undefined) return undefined;
  const text = error.message.slice(0, match.index).replace(/^ERROR:\s*/, '');
  const [message = '', ...rest] = text.split(/\n\s*Detail:\s*/);
  const detail = rest.join(' ').trim();
  return {
    sqlState: match[1],
    message: message.trim(),
    detail: detail || undefined,
    table: undefined,
  };
}

/**
 * A failure met while talking to the database, as the error of its kind: RejectedChangeError
 * (refused), SystemicDatabaseError (systemic) or UnavailableError (transient). Spillway's own
 * errors pass through unchanged.
 */
export function toDatabaseError(error: unknown): SpillwayError {
  if (error instanceof SpillwayError) return error;
  const report = databaseReportOf(error);
  // Bounded, and without the rows PostgreSQL quotes: the reason is stored and logged.
  const message =
    report !== undefined && isDataApiException(error)
      ? databaseReason(
          Object.assign(new Error(report.message), {
            code: report.sqlState,
            detail: report.detail,
          }),
        )
      : isDataApiException(error)
        ? dataApiReason(error)
        : databaseReason(error);
  switch (classifyDatabaseError(error)) {
    case 'refused':
      return new RejectedChangeError(message, report?.sqlState, { cause: error });
    case 'systemic':
      return new SystemicDatabaseError(message, report?.sqlState, report?.table, { cause: error });
    default:
      return new UnavailableError('database', message, { cause: error });
  }
}

/** What health and logs say of a Data API exception without a SQLSTATE. */
function dataApiReason(error: Error): string {
  if (error.name === 'DatabaseResumingException') {
    return 'the Aurora Serverless v2 database is resuming from auto-pause (Data API DatabaseResumingException); drains retry until it answers, usually within 15 s';
  }
  return databaseReason(Object.assign(new Error(`Data API ${error.name}: ${error.message}`), {}));
}
