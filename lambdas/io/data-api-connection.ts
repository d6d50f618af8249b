/**
 * Transactions through the RDS Data API: a `TransactionPool` whose sessions turn what
 * `inTransaction` sends into Data API calls, so that every statement Spillway runs through pg
 * runs unchanged through the Data API too (same SQL, same bounds, same classification).
 *
 * - the opening statement (`BEGIN; SET LOCAL ...`, `openingStatement`) becomes BeginTransaction
 *   and one ExecuteStatement of `set_config(..., true)`, which is what SET LOCAL does;
 * - `COMMIT` / `ROLLBACK` become CommitTransaction / RollbackTransaction;
 * - any other statement becomes ExecuteStatement in the transaction, `$n` parameters renamed
 *   `:pn` and sent as typed `Field`s, rows returned with `formatRecordsAs: 'JSON'`.
 *
 * The Data API binds a string as varchar, so SQL that compares a parameter with another type
 * casts it (`$2::bigint`). Each call is bounded on the client by the statement's timeout; the
 * service bounds it at 45 s and rolls back a transaction idle for 3 minutes.
 */
import {
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  type Field,
  type RDSDataClient,
  RollbackTransactionCommand,
  type SqlParameter,
} from '@aws-sdk/client-rds-data';
import type { QueryConfig, QueryResult, QueryResultRow } from 'pg';
import type { TransactionClient, TransactionPool } from './postgres-transaction.js';

/** Which database the Data API reaches: the Aurora cluster, its secret and the database name. */
export interface DataApiTarget {
  readonly resourceArn: string;
  readonly secretArn: string;
  readonly database: string;
}

/** The one command of the client used here. */
export type DataApiClient = Pick<RDSDataClient, 'send'>;

export class DataApiPool implements TransactionPool {
  constructor(
    private readonly client: DataApiClient,
    readonly target: DataApiTarget,
  ) {}

  async connect(): Promise<TransactionClient> {
    return new DataApiSession(this.client, this.target);
  }
}

const SET_LOCAL = /^SET LOCAL ([a-z_]+) = (\d+)$/;

class DataApiSession implements TransactionClient {
  private transactionId: string | undefined;

  constructor(
    private readonly client: DataApiClient,
    private readonly target: DataApiTarget,
  ) {}

  async query<R extends QueryResultRow = QueryResultRow>(
    config: QueryConfig,
  ): Promise<QueryResult<R>> {
    const timeoutMs = (config as { query_timeout?: number }).query_timeout ?? 45_000;
    const options = { abortSignal: AbortSignal.timeout(Math.max(1, timeoutMs)) };
    const { resourceArn, secretArn, database } = this.target;
    const text = config.text.trim();
    if (text === 'COMMIT' || text === 'ROLLBACK') {
      const transactionId = this.transactionId;
      this.transactionId = undefined;
      if (transactionId !== undefined) {
        const Command = text === 'COMMIT' ? CommitTransactionCommand : RollbackTransactionCommand;
        await this.client.send(new Command({ resourceArn, secretArn, transactionId }), options);
      }
      return result<R>([], 0);
    }
    if (text.startsWith('BEGIN')) {
      const settings = text
        .split(';')
        .slice(1)
        .map((part) => {
          const match = SET_LOCAL.exec(part.trim());
          if (match === null) throw new Error(`not a bounded opening statement: ${text}`);
          return `set_config('${match[1]}', '${match[2]}', true)`;
        });
      const begun = await this.client.send(
        new BeginTransactionCommand({ resourceArn, secretArn, database }),
        options,
      );
      this.transactionId = begun.transactionId;
      if (settings.length > 0) await this.execute(`SELECT ${settings.join(', ')}`, [], options);
      return result<R>([], 0);
    }
    return this.execute<R>(text, config.values ?? [], options);
  }

  private async execute<R extends QueryResultRow>(
    text: string,
    values: readonly unknown[],
    options: { abortSignal: AbortSignal },
  ): Promise<QueryResult<R>> {
    const { resourceArn, secretArn, database } = this.target;
    const parameters = values.map((value, i): SqlParameter => toParameter(`p${i + 1}`, value));
    const response = await this.client.send(
      new ExecuteStatementCommand({
        resourceArn,
        secretArn,
        database,
        sql: values.length > 0 ? text.replace(/\$(\d+)/g, ':p$1') : text,
        ...(parameters.length > 0 ? { parameters } : {}),
        ...(this.transactionId !== undefined ? { transactionId: this.transactionId } : {}),
        formatRecordsAs: 'JSON',
      }),
      options,
    );
    if (response.formattedRecords !== undefined) {
      const rows = JSON.parse(response.formattedRecords) as R[];
      return result(rows, rows.length);
    }
    return result<R>([], response.numberOfRecordsUpdated ?? 0);
  }

  // Nothing to listen to: a lost connection is the service's, and surfaces as a call's error.
  on(): this {
    return this;
  }
  off(): this {
    return this;
  }
  release(): void {
    // A transaction left open (a failed ROLLBACK) ends on the server: its
    // idle_in_transaction_session_timeout, or the Data API's 3 minutes.
    this.transactionId = undefined;
  }
}

/** A parameter as a typed Field. Strings go as varchar: the SQL casts them where needed. */
export function toParameter(name: string, value: unknown): SqlParameter {
  return { name, value: toField(value) };
}

function toField(value: unknown): Field {
  if (value === null || value === undefined) return { isNull: true };
  if (typeof value === 'boolean') return { booleanValue: value };
  if (typeof value === 'number') {
    return Number.isSafeInteger(value) ? { longValue: value } : { doubleValue: value };
  }
  if (typeof value === 'bigint') return { stringValue: value.toString() };
  if (typeof value === 'string') return { stringValue: value };
  // The Data API takes no array parameters: a PostgreSQL array literal, cast by the SQL.
  if (Array.isArray(value)) return { stringValue: arrayLiteral(value) };
  if (value instanceof Uint8Array) return { blobValue: value };
  return { stringValue: JSON.stringify(value) };
}

function arrayLiteral(values: readonly unknown[]): string {
  const items = values.map((v) =>
    v === null ? 'NULL' : `"${String(v).replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`,
  );
  return `{${items.join(',')}}`;
}

function result<R extends QueryResultRow>(rows: R[], rowCount: number): QueryResult<R> {
  return { rows, rowCount, command: '', oid: 0, fields: [] };
}
