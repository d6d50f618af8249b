/**
 * The Lambda invoke API over HTTP, wire-compatible with `@aws-sdk/client-lambda`'s
 * `InvokeCommand` (and boto3's `invoke`): `POST /2015-03-31/functions/{name}/invocations`, with
 * Lambda's payload limits and AWS's error shapes (see `runner.ts` for what each answer is).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { messageOf } from '../../lambdas/core/errors.js';
import { loggableError, logger } from '../../lambdas/io/telemetry.js';
import type { InvocationOutcome, LocalFunction } from './invocations.js';

/** Largest RequestResponse payload Lambda accepts (6 MB). */
const MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** Largest Event payload Lambda accepts (1 MB). */
const MAX_EVENT_PAYLOAD_BYTES = 1024 * 1024;
const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations\/?$/;

export interface InvokeApiOptions {
  /** The functions, by name. */
  readonly functions: Readonly<Record<string, LocalFunction>>;
  /** A function's ARN, for the not-found message. */
  readonly arnOf: (name: string, qualifier?: string) => string;
  /** Runs one invocation. */
  readonly run: (name: string, fn: LocalFunction, event: unknown) => Promise<InvocationOutcome>;
  /** Whether the runner is shutting down: new invocations are refused with 503. */
  readonly closing: () => boolean;
}

/** An HTTP server answering the invoke API; not listening yet (see `listen`). */
export function createInvokeServer(options: InvokeApiOptions): Server {
  return createServer((request, response) => {
    handle(options, request, response).catch((error: unknown) => {
      logger.error('local runner: request failed', { error: loggableError(error) });
      if (!response.headersSent) sendError(response, 500, 'ServiceException', 'internal error');
      else response.destroy();
    });
  });
}

/** Listens on `host:port` (0 picks a free port); resolves with the port bound. */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

async function handle(
  options: InvokeApiOptions,
  request: IncomingMessage,
  response: ServerResponse,
): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://localhost');
  const match = INVOKE_PATH.exec(url.pathname);
  if (request.method !== 'POST' || match === null) {
    request.resume();
    sendError(
      response,
      404,
      'UnknownOperationException',
      `${request.method} ${url.pathname} is not an operation of the local Lambda runner`,
    );
    return;
  }
  const { name, qualifier } = parseFunctionName(
    decodeURIComponent(match[1] ?? ''),
    url.searchParams.get('Qualifier') ?? undefined,
  );
  const fn = Object.hasOwn(options.functions, name) ? options.functions[name] : undefined;
  if (fn === undefined || (qualifier !== undefined && qualifier !== '$LATEST')) {
    request.resume();
    sendError(
      response,
      404,
      'ResourceNotFoundException',
      `Function not found: ${options.arnOf(name, qualifier)}`,
    );
    return;
  }
  if (options.closing()) {
    request.resume();
    sendError(response, 503, 'ServiceException', 'the local runner is shutting down');
    return;
  }

  const type = request.headers['x-amz-invocation-type'] ?? 'RequestResponse';
  if (type !== 'RequestResponse' && type !== 'Event' && type !== 'DryRun') {
    request.resume();
    sendError(
      response,
      400,
      'InvalidParameterValueException',
      `Invalid InvocationType: ${String(type)}`,
    );
    return;
  }
  const limit = type === 'Event' ? MAX_EVENT_PAYLOAD_BYTES : MAX_SYNC_PAYLOAD_BYTES;
  const body = await readBody(request, limit);
  if (body === undefined) {
    sendError(
      response,
      413,
      'RequestTooLargeException',
      `Request must be smaller than ${limit} bytes for the InvokeFunction operation`,
    );
    return;
  }
  let event: unknown;
  try {
    event = body.length === 0 ? {} : JSON.parse(body.toString('utf8'));
  } catch (error) {
    sendError(
      response,
      400,
      'InvalidRequestContentException',
      `Could not parse request body into json: ${messageOf(error)}`,
    );
    return;
  }

  const headers = { 'x-amzn-RequestId': randomUUID(), 'X-Amz-Executed-Version': '$LATEST' };
  if (type === 'DryRun') {
    response.writeHead(204, headers).end();
    return;
  }
  if (type === 'Event') {
    response.writeHead(202, headers).end();
    const outcome = await options.run(name, fn, event);
    if (!outcome.ok) {
      logger.error('asynchronous invocation failed', { function: name, ...outcome });
    }
    return;
  }
  const outcome = await options.run(name, fn, event);
  let payload = outcome.ok
    ? (JSON.stringify(outcome.result) ?? 'null')
    : JSON.stringify({ errorType: outcome.errorType, errorMessage: outcome.errorMessage });
  let failed = !outcome.ok;
  // Lambda refuses a synchronous answer over its limit, as a failure of the invocation.
  if (Buffer.byteLength(payload) > MAX_SYNC_PAYLOAD_BYTES) {
    payload = JSON.stringify({
      errorType: 'Function.ResponseSizeTooLarge',
      errorMessage: `Response payload size exceeded maximum allowed payload size (${MAX_SYNC_PAYLOAD_BYTES} bytes).`,
    });
    failed = true;
  }
  response.writeHead(200, {
    ...headers,
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(payload),
    ...(failed ? { 'X-Amz-Function-Error': 'Unhandled' } : {}),
  });
  response.end(payload);
}

/**
 * The function's name from what the SDK puts in the path: a name, `name:qualifier`, a partial
 * ARN (`123456789012:function:name`) or a full ARN, each with an optional qualifier.
 */
function parseFunctionName(
  raw: string,
  queryQualifier: string | undefined,
): { name: string; qualifier: string | undefined } {
  const parts = raw.split(':');
  const at = parts.indexOf('function');
  const [name = '', qualifier] = at >= 0 ? parts.slice(at + 1) : parts;
  return { name, qualifier: queryQualifier ?? qualifier };
}

function sendError(
  response: ServerResponse,
  status: number,
  errorType: string,
  message: string,
): void {
  const body = JSON.stringify({ Type: 'User', Message: message });
  response.writeHead(status, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(body),
    'x-amzn-RequestId': randomUUID(),
    'x-amzn-ErrorType': errorType,
  });
  response.end(body);
}

/** The request body, or undefined once it exceeds `limit` bytes (the rest is discarded). */
async function readBody(request: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of request) {
    const buffer = chunk as Buffer;
    size += buffer.length;
    if (size > limit) tooLarge = true;
    if (!tooLarge) chunks.push(buffer);
  }
  return tooLarge ? undefined : Buffer.concat(chunks);
}
