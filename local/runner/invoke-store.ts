/**
 * The per-invocation store a Lambda runtime provides when one execution environment runs several
 * invocations at once (`AWS_LAMBDA_MAX_CONCURRENCY`, Lambda Managed Instances): an
 * `AsyncLocalStorage` exposed as `globalThis.awslambda.InvokeStore`. Powertools keeps its
 * per-invocation state there (the Lambda context on every log line, the log level), so that
 * concurrent invocations of the local runner, which all share one container, do not log with each
 * other's function name and request id.
 */
import { AsyncLocalStorage } from 'node:async_hooks';

type Store = Map<string | symbol, unknown>;

const REQUEST_ID = Symbol.for('_AWS_LAMBDA_REQUEST_ID');
const storage = new AsyncLocalStorage<Store>();

/** The interface the runtime's InvokeStore offers and Powertools uses. */
const invokeStore = {
  getContext: (): Store | undefined => storage.getStore(),
  hasContext: (): boolean => storage.getStore() !== undefined,
  get: (key: string | symbol): unknown => storage.getStore()?.get(key),
  set: (key: string | symbol, value: unknown): void => {
    const store = storage.getStore();
    if (store === undefined) throw new Error('No context available');
    store.set(key, value);
  },
  run: <T>(context: Store, fn: () => T): T => storage.run(context, fn),
  getRequestId: (): string => String(storage.getStore()?.get(REQUEST_ID) ?? '-'),
  getXRayTraceId: (): string | undefined => undefined,
  getTenantId: (): string | undefined => undefined,
};

declare global {
  // The Lambda runtime's global (`var` is how a global is declared).
  var awslambda: { InvokeStore?: unknown } | undefined;
}

let installed = false;

/** Makes this process look like an environment that runs up to `maxConcurrency` invocations at once. */
export function installInvokeStore(maxConcurrency = 64): void {
  if (installed) return;
  installed = true;
  process.env.AWS_LAMBDA_MAX_CONCURRENCY = String(maxConcurrency);
  globalThis.awslambda ??= {};
  globalThis.awslambda.InvokeStore = invokeStore;
}

/** Runs one invocation with its own store, as the runtime does. */
export function withInvocation<T>(requestId: string, fn: () => T): T {
  return storage.run(new Map<string | symbol, unknown>([[REQUEST_ID, requestId]]), fn);
}

/** The request id of the invocation whose work is running now (also inside its timers and promises). */
export function currentRequestId(): string | undefined {
  const id = storage.getStore()?.get(REQUEST_ID);
  return typeof id === 'string' ? id : undefined;
}
