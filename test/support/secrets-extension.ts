/**
 * A stand-in for the AWS Parameters and Secrets Lambda Extension (a mock of an AWS API): an HTTP
 * server on 127.0.0.1 answering `GET /secretsmanager/get?secretId=<arn>` with GetSecretValue's
 * reply as JSON, as the extension does, and refusing a request without the session token in
 * `X-Aws-Parameters-Secrets-Token`. Secrets it does not hold are answered as the extension passes
 * on Secrets Manager's ResourceNotFoundException.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SecretsExtension } from '../../lambdas/io/redis.js';

export interface SecretsExtensionStandIn {
  /** What `createRedis` and `readRedisAuthToken` take to reach it. */
  readonly extension: SecretsExtension;
  /** Sets what a secret holds: its SecretString, or a reply without one (a binary secret). */
  setSecret(arn: string, value: string | { readonly binary: true }): void;
  /** The next `count` reads of `arn` are answered with this status and body. */
  failNext(arn: string, status: number, body: string, count?: number): void;
  /** How many times `arn` was asked for, answered or not. */
  reads(arn: string): number;
  close(): Promise<void>;
}

export const STAND_IN_SESSION_TOKEN = 'stand-in-session-token';

export async function startSecretsExtension(): Promise<SecretsExtensionStandIn> {
  const secrets = new Map<string, string | { readonly binary: true }>();
  const failures = new Map<string, { status: number; body: string; count: number }>();
  const reads = new Map<string, number>();

  const server: Server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const answer = (status: number, body: string) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(body);
    };
    if (request.headers['x-aws-parameters-secrets-token'] !== STAND_IN_SESSION_TOKEN) {
      answer(401, 'Unauthorized: missing or wrong X-Aws-Parameters-Secrets-Token');
      return;
    }
    const arn = url.searchParams.get('secretId');
    if (url.pathname !== '/secretsmanager/get' || arn === null) {
      answer(400, 'Bad request: expected /secretsmanager/get?secretId=...');
      return;
    }
    reads.set(arn, (reads.get(arn) ?? 0) + 1);
    const failure = failures.get(arn);
    if (failure !== undefined && failure.count > 0) {
      failure.count--;
      answer(failure.status, failure.body);
      return;
    }
    const value = secrets.get(arn);
    if (value === undefined) {
      answer(400, "ResourceNotFoundException: Secrets Manager can't find the specified secret.");
      return;
    }
    const reply: Record<string, unknown> = { ARN: arn, Name: arn.split(':').at(-1) };
    if (typeof value === 'string') reply.SecretString = value;
    else reply.SecretBinary = 'AQID';
    answer(200, JSON.stringify(reply));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    extension: { url: `http://127.0.0.1:${port}`, sessionToken: STAND_IN_SESSION_TOKEN },
    setSecret: (arn, value) => secrets.set(arn, value),
    failNext: (arn, status, body, count = 1) => failures.set(arn, { status, body, count }),
    reads: (arn) => reads.get(arn) ?? 0,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
