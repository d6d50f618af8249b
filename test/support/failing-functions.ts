/**
 * A local runner serving functions that fail in every way a handler can, for the test that the
 * runner survives them (`test/e2e/runner-failures.test.ts`). Run with tsx; serves on `PORT` and
 * prints `ready at <url>`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startRunner } from '../../local/runner.js';

/** Never settles: the work a crashed handler was waiting for. */
const forever = () => new Promise<never>(() => {});

function recurse(depth: number): number {
  return recurse(depth + 1) + 1;
}

const runner = await startRunner({
  port: Number(process.env.PORT ?? 0),
  functions: {
    echo: { handler: async (event) => event, timeoutMs: 5_000 },
    // Throws inside the handler: a RangeError from unbounded recursion.
    'stack-overflow': { handler: async () => recurse(0), timeoutMs: 5_000 },
    // A promise of its work rejects with nobody listening, while the handler waits on.
    'unhandled-rejection': {
      handler: async () => {
        void (async () => {
          await sleep(10);
          const args: number[] = [];
          args.push(...new Array<number>(10_000_000).fill(0));
        })();
        return await forever();
      },
      timeoutMs: 5_000,
    },
    // An exception thrown in a timer of the handler's, outside any promise.
    'uncaught-exception': {
      handler: async () => {
        setTimeout(() => {
          throw new TypeError('thrown in a timer');
        }, 10);
        return await forever();
      },
      timeoutMs: 5_000,
    },
    // A result larger than Lambda's synchronous response limit.
    'oversized-result': {
      handler: async () => ({ text: 'x'.repeat(6 * 1024 * 1024) }),
      timeoutMs: 5_000,
    },
    // A result that is not JSON.
    'bigint-result': { handler: async () => ({ n: 1n }), timeoutMs: 5_000 },
  },
});
process.stdout.write(`failing functions ready at ${runner.url}\n`);
process.once('SIGTERM', () => {
  void runner.close().then(() => process.exit(0));
});
