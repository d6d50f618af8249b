/**
 * Running one invocation as Lambda does: a context whose remaining time counts down to the
 * function's timeout, its own invoke store, `Sandbox.Timedout` past the timeout, the error
 * payload the Node.js runtime reports, and a crash of its work (`crash-isolation.ts`) ending only
 * this invocation.
 */
import { randomUUID } from 'node:crypto';
import { messageOf } from '../../lambdas/core/errors.js';
import { logger } from '../../lambdas/io/telemetry.js';
import type { Handler, LambdaContext } from '../../lambdas/runtime/invocation.js';
import { onCrash } from './crash-isolation.js';
import { withInvocation } from './invoke-store.js';

/** One function the runner serves. */
export interface LocalFunction {
  readonly handler: Handler<unknown>;
  /** As deployed: past it the invocation fails with `Sandbox.Timedout`. */
  readonly timeoutMs: number;
  /** @default 1024 */
  readonly memoryMb?: number;
}

/** What an invocation ended with, as the invoke API reports it. */
export type InvocationOutcome =
  | { readonly ok: true; readonly result: unknown }
  | { readonly ok: false; readonly errorType: string; readonly errorMessage: string };

interface Running {
  readonly done: Promise<unknown>;
  /** Makes the context report no time left. */
  expire(): void;
}

/** The invocations of one runner, tracked until their work ends. */
export class Invocations {
  readonly #running = new Set<Running>();
  readonly #arnOf: (name: string) => string;

  /** `arnOf` names a function in its context (`invokedFunctionArn`). */
  constructor(arnOf: (name: string) => string) {
    this.#arnOf = arnOf;
  }

  /** Runs `fn` with `event`; resolves with its outcome once it ended, crashed or timed out. */
  run(name: string, fn: LocalFunction, event: unknown): Promise<InvocationOutcome> {
    const requestId = randomUUID();
    const started = Date.now();
    let deadline = started + fn.timeoutMs;
    const context: LambdaContext = {
      functionName: name,
      functionVersion: '$LATEST',
      invokedFunctionArn: this.#arnOf(name),
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
    let forgetCrash = () => {};
    const crash = new Promise<InvocationOutcome>((resolve) => {
      forgetCrash = onCrash(requestId, (error) => resolve({ ok: false, ...errorPayload(error) }));
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
    this.#running.add(entry);
    void ended.finally(() => {
      this.#running.delete(entry);
      forgetCrash();
    });
    return outcome;
  }

  /**
   * Tells running invocations their time is up (`getRemainingTimeInMillis()` returns 0, so
   * `sync` stops after the drain in flight) and resolves once all of them, and any they started
   * meanwhile, have ended.
   */
  async endAll(): Promise<void> {
    for (const entry of this.#running) entry.expire();
    while (this.#running.size > 0) await Promise.allSettled([...this.#running].map((r) => r.done));
  }
}

/**
 * The error payload the Node.js runtime reports: the error's `name` as `errorType` (the typed
 * errors of `lambdas/core/errors.ts` set it), its message as `errorMessage`. No stack.
 */
function errorPayload(error: unknown): { errorType: string; errorMessage: string } {
  if (error instanceof Error) return { errorType: error.name, errorMessage: error.message };
  return { errorType: 'Error', errorMessage: String(error) };
}
