/**
 * The local runner turns any failure of an invocation into that invocation's error, as Lambda
 * does, and serves on: a thrown RangeError, a rejected promise nobody awaited, an exception
 * thrown in a timer, a result that is not JSON. Driven with @aws-sdk/client-lambda against a
 * runner process serving functions that fail on purpose (`test/support/failing-functions.ts`).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  invoke,
  lambdaClient,
  type RunnerProcess,
  startRunnerProcess,
} from '../support/local-runner.js';

const FUNCTIONS = fileURLToPath(new URL('../support/failing-functions.ts', import.meta.url));

let runner: RunnerProcess;
let lambda: ReturnType<typeof lambdaClient>;
beforeAll(async () => {
  runner = await startRunnerProcess({}, [FUNCTIONS]);
  lambda = lambdaClient(runner.url);
});
afterAll(async () => {
  lambda?.destroy();
  await runner?.stop();
});

/** The runner still answers: the failure took only its own invocation down. */
async function stillServing(): Promise<void> {
  const echo = await invoke(lambda, 'echo', { still: 'here' });
  expect(echo).toMatchObject({ functionError: undefined, payload: { still: 'here' } });
}

describe('the local runner when an invocation fails', () => {
  it('a RangeError thrown by the handler is that invocation error, and the runner serves on', async () => {
    const failed = await invoke(lambda, 'stack-overflow', {});
    expect(failed.functionError).toBe('Unhandled');
    expect(failed.payload).toEqual({
      errorType: 'RangeError',
      errorMessage: 'Maximum call stack size exceeded',
    });
    await stillServing();
  });

  it('a rejected promise of the handler nobody awaited fails that invocation as Runtime.UnhandledPromiseRejection', async () => {
    const failed = await invoke(lambda, 'unhandled-rejection', {});
    expect(failed.functionError).toBe('Unhandled');
    expect(failed.payload).toEqual({
      errorType: 'Runtime.UnhandledPromiseRejection',
      errorMessage: 'RangeError: Maximum call stack size exceeded',
    });
    await stillServing();
  });

  it('an exception thrown in a timer of the handler fails that invocation with its own type', async () => {
    const [failed, concurrent] = await Promise.all([
      invoke(lambda, 'uncaught-exception', {}),
      invoke(lambda, 'echo', { alongside: true }),
    ]);
    expect(failed.functionError).toBe('Unhandled');
    expect(failed.payload).toEqual({ errorType: 'TypeError', errorMessage: 'thrown in a timer' });
    expect(concurrent.payload).toEqual({ alongside: true });
    await stillServing();
  });

  it('a result that cannot become JSON fails the invocation, not the request', async () => {
    const failed = await invoke(lambda, 'bigint-result', {});
    expect(failed.functionError).toBe('Unhandled');
    expect(failed.payload).toMatchObject({ errorType: 'Runtime.MarshalError' });
    await stillServing();
  });

  it('a result over 6 MB fails the invocation as Function.ResponseSizeTooLarge, as Lambda answers', async () => {
    const failed = await invoke(lambda, 'oversized-result', {});
    expect(failed.functionError).toBe('Unhandled');
    expect(failed.payload).toEqual({
      errorType: 'Function.ResponseSizeTooLarge',
      errorMessage: 'Response payload size exceeded maximum allowed payload size (6291456 bytes).',
    });
    await stillServing();
  });

  it('a request over 6 MB is refused with RequestTooLargeException before the function runs', async () => {
    const error = await invoke(lambda, 'echo', { text: 'x'.repeat(6 * 1024 * 1024) }).catch(
      (e: unknown) => e,
    );
    expect((error as { name?: string }).name).toBe('RequestTooLargeException');
    await stillServing();
  });
});
