/**
 * The local runner: the Lambda invoke API on 127.0.0.1, wire-compatible with
 * `@aws-sdk/client-lambda`'s `InvokeCommand` (and boto3's `invoke`):
 * `POST /2015-03-31/functions/{name}/invocations`.
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
 * (see `runner/invoke-store.ts`). Each invocation gets a Lambda-like context whose remaining time
 * counts down to the function's timeout.
 *
 * This file composes the parts in `runner/`: `invoke-api.ts` (the HTTP API), `invocations.ts`
 * (running one invocation), `crash-isolation.ts` and `invoke-store.ts`. The `sync` schedule is
 * `start.ts`'s.
 */
import { listenForCrashes } from './runner/crash-isolation.js';
import { type InvocationOutcome, Invocations, type LocalFunction } from './runner/invocations.js';
import { createInvokeServer, listen } from './runner/invoke-api.js';
import { installInvokeStore } from './runner/invoke-store.js';

export type { InvocationOutcome, LocalFunction } from './runner/invocations.js';

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

/** Starts serving; resolves once the port is bound. */
export async function startRunner(options: RunnerOptions): Promise<Runner> {
  // One container serves concurrent invocations: each keeps its own log context.
  installInvokeStore();
  const stopListening = listenForCrashes();
  const region = options.region ?? 'us-east-1';
  const accountId = options.accountId ?? '000000000000';
  const arnOf = (name: string, qualifier?: string) =>
    `arn:aws:lambda:${region}:${accountId}:function:${name}${qualifier ? `:${qualifier}` : ''}`;
  const invocations = new Invocations(arnOf);
  let closing: Promise<void> | undefined;

  const server = createInvokeServer({
    functions: options.functions,
    arnOf,
    run: (name, fn, event) => invocations.run(name, fn, event),
    closing: () => closing !== undefined,
  });
  const host = options.host ?? '127.0.0.1';
  const port = await listen(server, options.port ?? 3001, host);
  return {
    url: `http://${host}:${port}`,
    port,
    functions: Object.keys(options.functions),
    invoke: (name, event) => {
      const fn = options.functions[name];
      if (fn === undefined) throw new Error(`no function named ${name}`);
      if (closing !== undefined) throw new Error('the local runner is shutting down');
      return invocations.run(name, fn, event);
    },
    close: () => {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        server.closeIdleConnections();
        await invocations.endAll();
        // Responses of finished invocations are written by now; keep-alive sockets may linger.
        server.closeAllConnections();
        await stopped;
        stopListening();
      })();
      return closing;
    },
  };
}
