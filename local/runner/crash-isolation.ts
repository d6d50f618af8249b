/**
 * Crash isolation: a failure of an invocation's work outside its handler's promise (an exception
 * thrown in its timers or callbacks, a promise of its work rejected with nobody listening) ends
 * that invocation, as Lambda reports it, instead of the runner process. The invoke store
 * (`invoke-store.ts`) follows the work's timers and promises, so the failing work names its
 * invocation.
 */
import { loggableError, logger } from '../../lambdas/io/telemetry.js';
import { currentRequestId } from './invoke-store.js';

/** Invocations running in this process, by request id: how to end each with a crash. */
const crashes = new Map<string, (error: Error) => void>();
let runnersListening = 0;

/**
 * From now on a crash of invocation `requestId`'s work calls `end`; returns what forgets it once
 * the invocation is over.
 */
export function onCrash(requestId: string, end: (error: Error) => void): () => void {
  crashes.set(requestId, end);
  return () => {
    crashes.delete(requestId);
  };
}

/**
 * Installs the process's `uncaughtException` and `unhandledRejection` listeners (once for all
 * runners in the process); returns what removes them again when the last runner stops.
 */
export function listenForCrashes(): () => void {
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

/**
 * Ends the invocation whose work failed outside its handler's promise. A failure no running
 * invocation owns is logged, never fatal.
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
