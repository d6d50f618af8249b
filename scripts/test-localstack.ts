/**
 * `npm run test:localstack`: deploys the LocalStack shape with cdklocal and runs the end-to-end
 * tests of the functions (test/e2e/functions.test.ts) against LocalStack's Lambda endpoint; the
 * tests invoke `sync` themselves, as LocalStack's scheduler triggers nothing.
 *
 * Needs LocalStack and the services of localstack/compose.yaml running (Docker and a LocalStack
 * auth token). Fails at once, saying what to start, when LocalStack does not answer.
 *
 *   LOCALSTACK_ENDPOINT   LocalStack's gateway (default http://127.0.0.1:4566)
 *   LAMBDA_DATABASE_URL   the compose PostgreSQL, for the tests' own look at rows
 *                         (default postgres://spillway:spillway@127.0.0.1:55432/spillway)
 */
import { spawnSync } from 'node:child_process';

const endpoint = process.env.LOCALSTACK_ENDPOINT?.trim() || 'http://127.0.0.1:4566';
const databaseUrl =
  process.env.LAMBDA_DATABASE_URL?.trim() ||
  'postgres://spillway:spillway@127.0.0.1:55432/spillway';

const START =
  'Start it and the services beside it (Docker and a LocalStack auth token are needed):\n' +
  '  LOCALSTACK_AUTH_TOKEN=... docker compose -f localstack/compose.yaml up -d\n' +
  'or set LOCALSTACK_ENDPOINT to where yours listens.';

async function checkLocalStack(): Promise<void> {
  let health: { services?: Record<string, string> };
  try {
    const response = await fetch(`${endpoint}/_localstack/health`, {
      signal: AbortSignal.timeout(3_000),
    });
    health = (await response.json()) as typeof health;
  } catch (error) {
    fail(`LocalStack is not reachable at ${endpoint} (${String(error)}).\n${START}`);
  }
  const missing = ['lambda', 'cloudformation', 'iam', 'logs', 'sns', 'cloudwatch'].filter(
    (service) => !['available', 'running'].includes(health.services?.[service] ?? ''),
  );
  if (missing.length > 0) {
    fail(`LocalStack at ${endpoint} does not offer ${missing.join(', ')}.\n${START}`);
  }
}

function fail(message: string): never {
  console.error(`test:localstack: ${message}`);
  process.exit(1);
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): void {
  console.log(`\n$ ${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { stdio: 'inherit', env });
  if (result.status !== 0) fail(`${command} ${args.join(' ')} failed (exit ${result.status})`);
}

await checkLocalStack();
// LocalStack's default account and region: the function ARNs the tests expect.
const env: NodeJS.ProcessEnv = {
  ...process.env,
  AWS_ENDPOINT_URL: endpoint,
  AWS_ACCESS_KEY_ID: process.env.AWS_ACCESS_KEY_ID ?? 'test',
  AWS_SECRET_ACCESS_KEY: process.env.AWS_SECRET_ACCESS_KEY ?? 'test',
  AWS_REGION: 'us-east-1',
  AWS_DEFAULT_REGION: 'us-east-1',
};
const cdkOut = ['-o', 'cdk.out/localstack', '-c', 'shape=localstack', '--no-notices'];
run('npx', ['cdklocal', 'bootstrap', ...cdkOut], env);
run('npx', ['cdklocal', 'deploy', ...cdkOut, '--require-approval', 'never'], env);
run('npx', ['vitest', 'run', 'test/e2e/functions.test.ts'], {
  ...env,
  LAMBDA_ENDPOINT: endpoint,
  LAMBDA_DATABASE_URL: databaseUrl,
});
