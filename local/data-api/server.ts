/**
 * A stand-in for the RDS Data API over a local PostgreSQL, as PgBouncer stands in for RDS Proxy:
 * `@aws-sdk/client-rds-data` talks to it through its `endpoint` option, with the real wire shapes
 * (restJson1: POST /Execute, /BatchExecute, /BeginTransaction, /CommitTransaction,
 * /RollbackTransaction; typed `Field`s, `formatRecordsAs: 'JSON'`, `transactionId`; errors as
 * `x-amzn-errortype` with the status codes of the SDK's own error table) and the limits
 * enforced: 4 MiB a request, 1 MiB a response, 64 KB a row, 45 s a call, a transaction idle 3
 * minutes rolled back. Every statement is prepared, as by the real service, so SQL of several
 * statements is refused (DatabaseErrorException, SQLState 42601). It is not Aurora: no IAM, no
 * secret, one PostgreSQL.
 *
 * PostgreSQL's errors go out as DatabaseErrorException, "ERROR: <message>; SQLState: <code>"
 * (the form clients of the real service parse); a PostgreSQL out of reach as
 * DatabaseUnavailableException. Parameters are bound with the type their Field says (a string
 * as varchar), so SQL that needs another type must cast, as on the real service.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';

export interface DataApiLimits {
  readonly requestBytes: number;
  readonly responseBytes: number;
  readonly rowBytes: number;
  readonly callMs: number;
  readonly idleTransactionMs: number;
}

export const DATA_API_LIMITS: DataApiLimits = {
  requestBytes: 4 * 1024 * 1024,
  responseBytes: 1024 * 1024,
  rowBytes: 64 * 1024,
  callMs: 45_000,
  idleTransactionMs: 180_000,
};

/** The `application_name` of the stand-in's connections to PostgreSQL. */
export const DATA_API_APPLICATION_NAME = 'spillway-data-api-stand-in';

export interface LocalDataApi {
  /** For the client's `endpoint` option. */
  readonly url: string;
  /**
   * The next `requests` requests answer DatabaseResumingException, as the Data API does while
   * an auto-paused Aurora Serverless v2 instance resumes.
   */
  simulateResuming(requests: number): void;
  close(): Promise<void>;
}

class ApiError extends Error {
  constructor(
    readonly type: string,
    readonly status: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

interface Transaction {
  readonly client: pg.PoolClient;
  lastUsed: number;
  busy: boolean;
}

type Field = Record<string, unknown>;

/** Rows with PostgreSQL's text for what JSON does not carry as the Data API does. */
const TEXT_TYPES = [1082, 1083, 1114, 1184, 1700, 114, 3802, 2950];

function typeParser(oid: number, format?: string): (value: string) => unknown {
  if (oid === 1114 || oid === 1184) {
    return (v) =>
      new Date(
        oid === 1114
          ? `${v.replace(' ', 'T')}Z`
          : v.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00'),
      )
        .toISOString()
        .replace('T', ' ')
        .replace('Z', '');
  }
  if (TEXT_TYPES.includes(oid)) return (v) => v;
  if (oid === 20) return (v) => Number(v);
  return pg.types.getTypeParser(oid, format as 'text');
}

/** Serve the Data API for databases of the PostgreSQL at `postgresUrl` (any database name). */
export async function startLocalDataApi(options: {
  readonly postgresUrl: string;
  readonly port?: number;
  readonly limits?: Partial<DataApiLimits>;
}): Promise<LocalDataApi> {
  const limits = { ...DATA_API_LIMITS, ...options.limits };
  let resumingRequests = 0;
  const pools = new Map<string, pg.Pool>();
  const transactions = new Map<string, Transaction>();
  const poolFor = (database: string | undefined): pg.Pool => {
    const name = database ?? new URL(options.postgresUrl).pathname.slice(1);
    let pool = pools.get(name);
    if (pool === undefined) {
      const url = new URL(options.postgresUrl);
      url.pathname = `/${name}`;
      pool = new pg.Pool({
        connectionString: url.toString(),
        application_name: DATA_API_APPLICATION_NAME,
        max: 20,
        connectionTimeoutMillis: 5_000,
        types: { getTypeParser: typeParser as never },
      });
      pool.on('error', () => {});
      // A connection the database drops while checked out (a transaction idle between two
      // requests) emits 'error' with no query to report it; without a listener that crashes the
      // process. The next statement on it fails and reports the loss instead.
      pool.on('connect', (client) => client.on('error', () => {}));
      pools.set(name, pool);
    }
    return pool;
  };
  const sweep = setInterval(
    () => {
      const now = Date.now();
      for (const [id, tx] of transactions) {
        if (!tx.busy && now - tx.lastUsed > limits.idleTransactionMs) {
          transactions.delete(id);
          tx.client.query('ROLLBACK').then(
            () => tx.client.release(),
            () => tx.client.release(true),
          );
        }
      }
    },
    Math.min(1_000, limits.idleTransactionMs),
  );
  sweep.unref();

  const takeTransaction = (id: string): Transaction => {
    const tx = transactions.get(id);
    if (tx === undefined)
      throw new ApiError('TransactionNotFoundException', 404, `Transaction ${id} is not found`);
    return tx;
  };

  async function run(
    client: pg.PoolClient,
    sql: string,
    parameters: readonly { name?: string; value?: Field; typeHint?: string }[],
  ): Promise<pg.QueryResult> {
    const { text, values } = bind(sql, parameters);
    let timer: NodeJS.Timeout | undefined;
    const pid = (client as unknown as { processID?: number }).processID;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        if (pid !== undefined)
          poolFor(undefined)
            .query('SELECT pg_cancel_backend($1)', [pid])
            .catch(() => {});
        reject(
          new ApiError('StatementTimeoutException', 400, 'Request timed out', {
            dbConnectionId: pid ?? 0,
          }),
        );
      }, limits.callMs);
    });
    try {
      // Always the extended protocol, as the real service prepares every statement: SQL of more
      // than one statement is refused by PostgreSQL itself (42601, "cannot insert multiple
      // commands into a prepared statement").
      // (@types/pg does not know pg's `queryMode` yet.)
      const query = { text, values, queryMode: 'extended' } as pg.QueryConfig;
      return await Promise.race([client.query(query), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  const handlers: Record<string, (body: Record<string, unknown>) => Promise<unknown>> = {
    '/BeginTransaction': async (body) => {
      const client = await poolFor(body.database as string | undefined).connect();
      try {
        await client.query('BEGIN');
      } catch (error) {
        client.release(true);
        throw error;
      }
      const transactionId = randomUUID();
      transactions.set(transactionId, { client, lastUsed: Date.now(), busy: false });
      return { transactionId };
    },
    '/CommitTransaction': (body) =>
      finish(String(body.transactionId), 'COMMIT', 'Transaction Committed'),
    '/RollbackTransaction': (body) =>
      finish(String(body.transactionId), 'ROLLBACK', 'Rollback Complete'),
    '/Execute': async (body) => {
      const parameters = (body.parameters as never[] | undefined) ?? [];
      const result = await onConnection(body, (client) =>
        run(client, String(body.sql), parameters),
      );
      return response(result, body.formatRecordsAs === 'JSON');
    },
    '/BatchExecute': async (body) => {
      const sets = (body.parameterSets as never[][] | undefined) ?? [[]];
      const updateResults: unknown[] = [];
      await onConnection(body, async (client) => {
        for (const set of sets) {
          await run(client, String(body.sql), set);
          updateResults.push({ generatedFields: [] });
        }
      });
      return { updateResults };
    },
  };

  async function finish(id: string, sql: string, status: string): Promise<unknown> {
    const tx = takeTransaction(id);
    transactions.delete(id);
    try {
      await tx.client.query(sql);
      tx.client.release();
    } catch (error) {
      tx.client.release(true);
      throw error;
    }
    return { transactionStatus: status };
  }

  async function onConnection<T>(
    body: Record<string, unknown>,
    work: (client: pg.PoolClient) => Promise<T>,
  ): Promise<T> {
    if (typeof body.transactionId === 'string') {
      const tx = takeTransaction(body.transactionId);
      tx.busy = true;
      try {
        return await work(tx.client);
      } catch (error) {
        if (error instanceof ApiError && error.type === 'StatementTimeoutException') {
          transactions.delete(body.transactionId);
          tx.client.release(true);
        }
        throw error;
      } finally {
        tx.busy = false;
        tx.lastUsed = Date.now();
      }
    }
    const client = await poolFor(body.database as string | undefined).connect();
    let broken = false;
    try {
      return await work(client);
    } catch (error) {
      broken = error instanceof ApiError;
      throw error;
    } finally {
      client.release(broken);
    }
  }

  function response(result: pg.QueryResult, asJson: boolean): unknown {
    const hasRows = Array.isArray(result.fields) && result.fields.length > 0;
    const out: Record<string, unknown> = {
      numberOfRecordsUpdated: hasRows ? 0 : (result.rowCount ?? 0),
      generatedFields: [],
    };
    if (!hasRows) return out;
    let total = 0;
    for (const row of result.rows) {
      const bytes = Buffer.byteLength(JSON.stringify(row));
      if (bytes > limits.rowBytes) {
        throw new ApiError(
          'BadRequestException',
          400,
          'Database returned more than the allowed response size limit',
        );
      }
      total += bytes;
    }
    if (total > limits.responseBytes) {
      throw new ApiError('BadRequestException', 400, 'Database response exceeded size limit');
    }
    if (asJson) out.formattedRecords = JSON.stringify(result.rows);
    else
      out.records = result.rows.map((row: Record<string, unknown>) =>
        Object.values(row).map(toField),
      );
    return out;
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of req) {
        size += (chunk as Buffer).length;
        if (size > limits.requestBytes) {
          throw new ApiError(
            'BadRequestException',
            400,
            `Request size ${size} bytes exceeds the limit of ${limits.requestBytes} bytes`,
          );
        }
        chunks.push(chunk as Buffer);
      }
      const handler = handlers[new URL(req.url ?? '/', 'http://x').pathname];
      if (req.method !== 'POST' || handler === undefined)
        throw new ApiError('NotFoundException', 404, 'Unknown operation');
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as Record<
        string,
        unknown
      >;
      if (typeof body.resourceArn !== 'string' || typeof body.secretArn !== 'string') {
        throw new ApiError('BadRequestException', 400, 'resourceArn and secretArn are required');
      }
      if (resumingRequests > 0) {
        resumingRequests--;
        // The SDK's model gives the type and status; the wording is the model's description.
        throw new ApiError(
          'DatabaseResumingException',
          400,
          'The Aurora DB instance is resuming after being auto-paused. Wait a few seconds and try again.',
        );
      }
      send(res, 200, {}, await handler(body));
    } catch (error) {
      const api = toApiError(error);
      send(
        res,
        api.status,
        { 'x-amzn-errortype': api.type },
        { message: api.message, ...api.extra },
      );
    }
  }

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    simulateResuming: (requests) => {
      resumingRequests = requests;
    },
    close: async () => {
      clearInterval(sweep);
      for (const tx of transactions.values()) tx.client.release(true);
      transactions.clear();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await Promise.allSettled([...pools.values()].map((p) => p.end()));
    },
  };
}

function send(
  res: ServerResponse,
  status: number,
  headers: Record<string, string>,
  body: unknown,
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function toApiError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const { code, message, detail } = (error ?? {}) as {
    code?: unknown;
    message?: unknown;
    detail?: unknown;
  };
  if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) {
    const details = typeof detail === 'string' && detail !== '' ? `\n  Detail: ${detail}` : '';
    return new ApiError(
      'DatabaseErrorException',
      400,
      `ERROR: ${String(message)}${details}; SQLState: ${code}`,
    );
  }
  if (error instanceof SyntaxError)
    return new ApiError('BadRequestException', 400, 'Malformed request body');
  // No answer from PostgreSQL at all: refused, reset, or a pool that cannot connect.
  return new ApiError('DatabaseUnavailableException', 504, 'The database is not available');
}

const CASTS: Record<string, string> = {
  stringValue: 'varchar',
  longValue: 'int8',
  doubleValue: 'float8',
  booleanValue: 'bool',
  blobValue: 'bytea',
};
const HINTS: Record<string, string> = {
  JSON: 'json',
  UUID: 'uuid',
  TIMESTAMP: 'timestamp',
  DATE: 'date',
  TIME: 'time',
  DECIMAL: 'numeric',
};

/** `:name` parameters as `$n` with the type their Field gives, outside quotes. */
function bind(
  sql: string,
  parameters: readonly { name?: string; value?: Field; typeHint?: string }[],
): { text: string; values: unknown[] } {
  if (parameters.length === 0) return { text: sql, values: [] };
  const byName = new Map(parameters.map((p) => [p.name ?? '', p]));
  const values: unknown[] = [];
  const numbers = new Map<string, number>();
  const text = sql.replace(
    /'(?:[^']|'')*'|"(?:[^"]|"")*"|(?<![:\w]):([A-Za-z_]\w*)/g,
    (all, name?: string) => {
      if (name === undefined) return all;
      const parameter = byName.get(name);
      if (parameter === undefined)
        throw new ApiError('BadRequestException', 400, `No value specified for parameter: ${name}`);
      const field = parameter.value ?? { isNull: true };
      const [kind, value] = Object.entries(field)[0] ?? ['isNull', true];
      if (kind === 'arrayValue')
        throw new ApiError('BadRequestException', 400, 'Array parameters are not supported');
      let n = numbers.get(name);
      if (n === undefined) {
        values.push(
          kind === 'isNull'
            ? null
            : kind === 'blobValue'
              ? Buffer.from(String(value), 'base64')
              : value,
        );
        n = values.length;
        numbers.set(name, n);
      }
      const cast =
        kind === 'isNull'
          ? undefined
          : ((parameter.typeHint && HINTS[parameter.typeHint]) ?? CASTS[kind]);
      return cast === undefined ? `$${n}` : `($${n}::${cast})`;
    },
  );
  return { text, values };
}

function toField(value: unknown): Field {
  if (value === null || value === undefined) return { isNull: true };
  if (typeof value === 'boolean') return { booleanValue: value };
  if (typeof value === 'number')
    return Number.isInteger(value) ? { longValue: value } : { doubleValue: value };
  return { stringValue: typeof value === 'string' ? value : JSON.stringify(value) };
}
