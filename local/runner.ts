/**
 * The Lambda invoke API on 127.0.0.1, wire-compatible with `@aws-sdk/client-lambda`'s
 * `InvokeCommand` (and boto3's `invoke`): `POST /2015-03-31/functions/{name}/invocations`.
 *
 * - `X-Amz-Invocation-Type: RequestResponse` (the default): 200 with the result as JSON; a failed
 *   invocation answers 200 with `X-Amz-Function-Error: Unhandled` and `{ errorType, errorMessage }`.
 * - `Event`: 202 at once, the function runs afterwards; its failure is logged.
 * - `DryRun`: 204.
 * - An unknown function: 404 `ResourceNotFoundException` in AWS's shape (`x-amzn-ErrorType`
 *   header, `{ Type: 'User', Message }` body), which the SDK raises as that exception.
 *
 * A failure of an invocation never takes the runner down: an error its handler throws or rejects
 * with, an exception thrown in its timers or callbacks, or a promise of its work rejected with
 * nobody listening, each ends that invocation with its error payload, as Lambda reports it
 * (`Runtime.UnhandledPromiseRejection` for the last), and the runner serves on. (Lambda would
 * also restart the execution environment; here the other invocations run on.)
 *
 * All functions run in this process and share one container (`lambdas/runtime/container.ts`), as if
 * every function were one warm Lambda execution environment running invocations concurrently
 * (see `invoke-store.ts`). Each invocation gets a Lambda-like context whose remaining time counts
 * down to the function's timeout.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { messageOf } from '../lambdas/core/errors.js';
import { loggableError, logger } from '../lambdas/io/telemetry.js';
import type { Handler, LambdaContext } from '../lambdas/runtime/invocation.js';
import { currentRequestId, installInvokeStore, withInvocation } from './invoke-store.js';

/** One function the runner serves. */
export interface LocalFunction {
  readonly handler: Handler<unknown>;
  /** As deployed: past it the invocation fails with `Sandbox.Timedout`. */
  readonly timeoutMs: number;
  /** @default 1024 */
  readonly memoryMb?: number;
}

export interface RunnerOptions {
  /** The functions, by name. */
  readonly functions: Readonly<Record<string, LocalFunction>>;
  /** 0 picks a free port. @default 3001 */
  readonly port?: number;
  /** @default '127.0.0.1' */
  readonly host?: string;
  /** Used in ARNs only. @default 'us-east-1' */
  readonly region?: string;
  /** Used in ARNs only. @default '000000000000' */
  readonly accountId?: string;
}

export type InvocationType = 'RequestResponse' | 'Event';

/** What an invocation ended with, as the invoke API reports it. */
export type InvocationOutcome =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly errorType: string; readonly errorMessage: string };

export interface Runner {
  /** `http://127.0.0.1:<port>`: the endpoint for the SDK. */
  readonly url: string;
  readonly port: number;
  /** Names of the functions served. */
  readonly functions: readonly string[];
  /** Invokes a function in-process, as the scheduler would (no HTTP). */
  invoke(name: string, event: unknown): Promise<InvocationOutcome>;
  /**
   * Stops taking invocations, tells running ones their time is up (`getRemainingTimeInMillis()`
   * returns 0, so `sync` stops after the drain in flight), and waits for them to finish.
   */
  close(): Promise<void>;
}

/** Largest RequestResponse payload Lambda accepts (6 MB). */
const MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024;
/** Largest Event payload Lambda accepts (1 MB). */
const MAX_EVENT_PAYLOAD_BYTES = 1024 * 1024;
const INVOKE_PATH = /^\/2015-03-31\/functions\/([^/]+)\/invocations\/?$/;

interface Running {
  readonly done: Promise<unknown>;
  /** Makes the context report no time left. */
  expire(): void;
}

/** Invocations running in this process, by request id: how to end each with a crash. */
const crashes = new Map<string, (error: Error) => void>();
let runnersListening = 0;

/**
 * Ends the invocation whose work failed outside its handler's promise (the invoke store follows
 * its timers and promises). A failure no running invocation owns is logged, never fatal.
 */
function onUncaughtException(error: unknown): void {
  crashed(error instanceof Error ? error : new Error(String(error)));
}

function onUnhandledRejection(reason: unknown): void {
  const error = new Error(
    reason instanceof Error ? `${reason.name}: ${reason.message}` : String(reason),
  );
  error.name = 'Runtime.UnhandledPromiseRejection';
  crashed(error);
}

function crashed(error: Error): void {
  const requestId = currentRequestId();
  const end = requestId === undefined ? undefined : crashes.get(requestId);
  if (end !== undefined) {
    end(error);
    return;
  }
  logger.error('local runner: a failure outside any running invocation', {
    error: loggableError(error),
    requestId,
  });
}

function listenForCrashes(): () => void {
  if (runnersListening === 0) {
    process.on('uncaughtException', onUncaughtException);
    process.on('unhandledRejection', onUnhandledRejection);
  }
  runnersListening += 1;
  let listening = true;
  return () => {
    if (!listening) return;
    listening = false;
    runnersListening -= 1;
    if (runnersListening > 0) return;
    process.off('uncaughtException', onUncaughtException);
    process.off('unhandledRejection', onUnhandledRejection);
  };
}

/** Starts serving; resolves once the port is bound. */
export async function startRunner(options: RunnerOptions): Promise<Runner> {
  // One container serves concurrent invocations: each keeps its own log context.
  installInvokeStore();
  const stopListening = listenForCrashes();
  const region = options.region ?? 'us-east-1';
  const accountId = options.accountId ?? '000000000000';
  const arnOf = (name: string, qualifier?: string) =>
    `arn:aws:lambda:${region}:${accountId}:function:${name}${qualifier ? `:${qualifier}` : ''}`;
  const running = new Set<Running>();
  let closing: Promise<void> | undefined;

  const run = (name: string, fn: LocalFunction, event: unknown): Promise<InvocationOutcome> => {
    const requestId = randomUUID();
    const started = Date.now();
    let deadline = started + fn.timeoutMs;
    const context: LambdaContext = {
      functionName: name,
      functionVersion: '$LATEST',
      invokedFunctionArn: arnOf(name),
      memoryLimitInMB: String(fn.memoryMb ?? 1024),
      awsRequestId: requestId,
      getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    };
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<InvocationOutcome>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            ok: false,
            errorType: 'Sandbox.Timedout',
            errorMessage: `RequestId: ${requestId} Error: Task timed out after ${(fn.timeoutMs / 1000).toFixed(2)} seconds`,
          }),
        fn.timeoutMs,
      );
    });
    const crash = new Promise<InvocationOutcome>((resolve) => {
      crashes.set(requestId, (error) => resolve({ ok: false, ...errorPayload(error) }));
    });
    const work = (async (): Promise<InvocationOutcome> => {
      try {
        const result = await withInvocation(requestId, () => fn.handler(event, context));
        try {
          JSON.stringify(result);
        } catch (error) {
          // What cannot become JSON fails the invocation, not the runner's response.
          return {
            ok: false,
            errorType: 'Runtime.MarshalError',
            errorMessage: `Unable to marshal response: ${messageOf(error)}`,
          };
        }
        return { ok: true, result };
      } catch (error) {
        return { ok: false, ...errorPayload(error) };
      }
    })();
    // A crashed invocation may never settle its own work: it ends with the crash.
    const ended = Promise.race([work, crash]);
    const outcome = Promise.race([ended, timedOut]).finally(() => {
      clearTimeout(timer);
      logger.debug('invocation', {
        function: name,
        requestId,
        durationMs: Date.now() - started,
      });
    });
    // Tracked until the work itself ends: a timed-out handler still runs (Lambda would freeze it).
    const entry: Running = {
      done: ended,
      expire: () => {
        deadline = Math.min(deadline, Date.now());
      },
    };
    running.add(entry);
    void ended.finally(() => {
      running.delete(entry);
      crashes.delete(requestId);
    });
    return outcome;
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      logger.error('local runner: request failed', { error: loggableError(error) });
      if (!response.headersSent) sendError(response, 500, 'ServiceException', 'internal error');
      else response.destroy();
    });
  });

  async function handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
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
        `Function not found: ${arnOf(name, qualifier)}`,
      );
      return;
    }
    if (closing !== undefined) {
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
      const outcome = await run(name, fn, event);
      if (!outcome.ok) {
        logger.error('asynchronous invocation failed', { function: name, ...outcome });
      }
      return;
    }
    const outcome = await run(name, fn, event);
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

  const port = await listen(server, options.port ?? 3001, options.host ?? '127.0.0.1');
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}`,
    port,
    functions: Object.keys(options.functions),
    invoke: (name, event) => {
      const fn = options.functions[name];
      if (fn === undefined) throw new Error(`no function named ${name}`);
      if (closing !== undefined) throw new Error('the local runner is shutting down');
      return run(name, fn, event);
    },
    close: () => {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        for (const entry of running) entry.expire();
        while (running.size > 0) await Promise.allSettled([...running].map((r) => r.done));
        // Responses of finished invocations are written by now; keep-alive sockets may linger.
        server.closeAllConnections();
        await stopped;
        stopListening();
      })();
      return closing;
    },
  };
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

/**
 * The error payload the Node.js runtime reports: the error's `name` as `errorType` (the typed
 * errors of `lambdas/core/errors.ts` set it), its message as `errorMessage`. No stack.
 */
function errorPayload(error: unknown): { errorType: string; errorMessage: string } {
  if (error instanceof Error) return { errorType: error.name, errorMessage: error.message };
  return { errorType: 'Error', errorMessage: String(error) };
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

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
