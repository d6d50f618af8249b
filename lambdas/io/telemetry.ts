/**
 * Structured logs for every function. The metrics are in `metrics.ts`, apart: only `sync`
 * publishes any, and a bundle that imports this module does not carry the Powertools metrics.
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { boundText } from '../core/reasons.js';

/** `POWERTOOLS_SERVICE_NAME`, or 'spillway'. */
export const serviceName = process.env.POWERTOOLS_SERVICE_NAME?.trim() || 'spillway';

/** The logger of this container; `POWERTOOLS_LOG_LEVEL` sets its level. */
export const logger = new Logger({ serviceName });

/**
 * An error as Spillway logs it: its name, its message cut short, and what classifies it (SQLSTATE,
 * a system error code), but none of the properties that carry row data or command arguments
 * (pg's `detail` "Failing row contains ...", ioredis's `command.args`), nor its `cause`, which
 * Powertools would log whole. The stack stays, for unexpected errors.
 */
export function loggableError(error: unknown): Record<string, string> {
  if (!(error instanceof Error)) return { name: 'Error', message: boundText(String(error)) };
  const code =
    (error as { code?: unknown; sqlState?: unknown }).sqlState ??
    (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: boundText(error.message),
    ...(typeof code === 'string' ? { code } : {}),
    ...(error.stack ? { stack: boundText(error.stack, 2_000) } : {}),
  };
}

/** A logger whose every line carries the changeset id, for everything said about one changeset. */
export function changesetLogger(changesetId: string, parent: Logger = logger): Logger {
  return parent.createChild({ persistentKeys: { changesetId } });
}
