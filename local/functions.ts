/**
 * The deployed functions as the local runner serves them: each handler by its logical name, with
 * the timeout of the manifest (`lambdas/functions.ts`). A function of the manifest without a
 * handler here fails to compile.
 */
import { FUNCTION_NAMES, FUNCTIONS, type FunctionName } from '../lambdas/functions.js';
import { handler as admin } from '../lambdas/handlers/admin.js';
import { handler as extractEntities } from '../lambdas/handlers/extract-entities.js';
import { handler as health } from '../lambdas/handlers/health.js';
import { handler as migrate } from '../lambdas/handlers/migrate.js';
import { handler as processDocument } from '../lambdas/handlers/process-document.js';
import { handler as read } from '../lambdas/handlers/read.js';
import { handler as sync } from '../lambdas/handlers/sync.js';
import { handler as write } from '../lambdas/handlers/write.js';
import type { LocalFunction } from './runner.js';

const HANDLERS: Record<FunctionName, LocalFunction['handler']> = {
  write,
  read,
  sync,
  health,
  migrate,
  admin,
  'process-document': processDocument,
  'extract-entities': extractEntities,
};

/** Every function of the invoke contract (docs/design.md), by its logical name. */
export function localFunctions(options: {
  /** Timeout of `sync` in ms, shorter locally than the deployed one. */
  readonly syncTimeoutMs: number;
}): Record<FunctionName, LocalFunction> {
  const functions = {} as Record<FunctionName, LocalFunction>;
  for (const name of FUNCTION_NAMES) {
    functions[name] = {
      handler: HANDLERS[name],
      timeoutMs: name === 'sync' ? options.syncTimeoutMs : FUNCTIONS[name].timeoutSeconds * 1000,
    };
  }
  return functions;
}
