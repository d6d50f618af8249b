/**
 * The deployed functions as the local runner serves them, with the timeouts the CDK app gives
 * them (`lib/spillway-stack.ts`).
 */
import { handler as admin } from '../lambdas/handlers/admin.js';
import { handler as extractEntities } from '../lambdas/handlers/extract-entities.js';
import { handler as health } from '../lambdas/handlers/health.js';
import { handler as migrate } from '../lambdas/handlers/migrate.js';
import { handler as processDocument } from '../lambdas/handlers/process-document.js';
import { handler as read } from '../lambdas/handlers/read.js';
import { handler as sync } from '../lambdas/handlers/sync.js';
import { handler as write } from '../lambdas/handlers/write.js';
import type { LocalFunction } from './runner.js';

/** Every function of DESIGN.md's contract, by its logical name. */
export function localFunctions(options: {
  /** Timeout of `sync` in ms; the CDK default is 240 s. */
  readonly syncTimeoutMs: number;
}): Record<string, LocalFunction> {
  return {
    write: { handler: write, timeoutMs: 15_000 },
    read: { handler: read, timeoutMs: 15_000 },
    sync: { handler: sync, timeoutMs: options.syncTimeoutMs },
    health: { handler: health, timeoutMs: 20_000 },
    migrate: { handler: migrate, timeoutMs: 300_000 },
    admin: { handler: admin, timeoutMs: 60_000 },
    'process-document': { handler: processDocument, timeoutMs: 60_000 },
    'extract-entities': { handler: extractEntities, timeoutMs: 60_000 },
  };
}
