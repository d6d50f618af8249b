/**
 * What every handler does around its own work: log with the invocation's context, and let
 * failures leave as the typed errors whose `name` callers see as `errorType`.
 */
import { SpillwayError } from '../core/errors.js';
import { isRedisUnavailable, toUnavailable } from '../io/redis.js';
import { loggableError, logger } from '../io/telemetry.js';

/**
 * The part of the Lambda context Spillway uses. The Node.js runtime passes more; the local runner
 * passes this much.
 */
export interface LambdaContext {
  readonly functionName: string;
  readonly functionVersion: string;
  readonly invokedFunctionArn: string;
  readonly memoryLimitInMB: string;
  readonly awsRequestId: string;
  /** Milliseconds until the invocation times out. */
  getRemainingTimeInMillis(): number;
}

/** A Lambda handler as Spillway writes them. */
export type Handler<Result> = (event: unknown, context: LambdaContext) => Promise<Result>;

/**
 * Wraps a handler's work: adds the invocation's context to every log line, and makes sure a
 * failure leaves as a typed error. Redis errors that reach this far untyped (a client that lost
 * its connection mid-call) become UnavailableError('redis'), never a raw stack; the database
 * paths (sink, migrator, pool) type their errors themselves. Anything else is a bug: logged with
 * its stack and rethrown as it is.
 */
export function lambdaHandler<Result>(work: Handler<Result>): Handler<Result> {
  return async (event, context) => {
    logger.addContext(context);
    try {
      return await work(event, context);
    } catch (error) {
      throw reported(error);
    }
  };
}

function reported(error: unknown): Error {
  const typed = error instanceof SpillwayError ? error : toUnavailableIfRedis(error);
  if (typed instanceof SpillwayError) {
    // Bad input and outages are the caller's to handle; they are not this function's faults.
    logger.warn('invocation failed', {
      errorType: typed.name,
      errorMessage: typed.message,
      retryable: typed.retryable,
    });
    return typed;
  }
  logger.error('invocation failed unexpectedly', { error: loggableError(typed) });
  return typed instanceof Error ? typed : new Error(String(typed));
}

function toUnavailableIfRedis(error: unknown): unknown {
  return isRedisUnavailable(error) ? toUnavailable(error) : error;
}
