import { Signer } from '@aws-sdk/rds-signer';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { credentialsFromEnv, IamTokenSigner } from '../../lambdas/io/iam-token-signer.js';

const AT = new Date('2026-03-14T15:09:26.535Z');

/** What `@aws-sdk/rds-signer` signs for the same endpoint, user, credentials and clock. */
async function sdkToken(
  options: { hostname: string; port: number; username: string; region: string },
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
): Promise<string> {
  vi.useFakeTimers({ now: AT, toFake: ['Date'] });
  try {
    return await new Signer({ ...options, credentials }).getAuthToken();
  } finally {
    vi.useRealTimers();
  }
}

describe('IamTokenSigner (fake credentials, signed locally; compared with @aws-sdk/rds-signer)', () => {
  afterEach(() => vi.useRealTimers());

  it.each([
    [
      'a proxy endpoint with session credentials, as in Lambda',
      {
        hostname: 'spillway.proxy-abc123.eu-west-1.rds.amazonaws.com',
        port: 5432,
        username: 'spillway_sync',
        region: 'eu-west-1',
      },
      {
        accessKeyId: 'ASIAIOSFODNN7EXAMPLE',
        secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
        sessionToken: 'IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+token/with=chars',
      },
    ],
    [
      'long-term credentials and a user name that needs escaping',
      {
        hostname: 'pipeline-db.abcdefghijkl.us-east-1.rds.amazonaws.com',
        port: 5433,
        username: "o'brien (etl)*!",
        region: 'us-east-1',
      },
      { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'fake/secret+key=' },
    ],
  ])('signs the same token as the SDK for %s', async (_label, options, credentials) => {
    const ours = await new IamTokenSigner({
      ...options,
      credentials: () => credentials,
      now: () => AT,
    }).getAuthToken();
    expect(ours).toBe(await sdkToken(options, credentials));
    expect(ours).toMatch(/X-Amz-Date=20260314T150926Z/);
  });

  it('reads the credentials Lambda puts in the environment', () => {
    expect(
      credentialsFromEnv({
        AWS_ACCESS_KEY_ID: 'ASIA',
        AWS_SECRET_ACCESS_KEY: 'secret',
        AWS_SESSION_TOKEN: 'session',
      }),
    ).toEqual({ accessKeyId: 'ASIA', secretAccessKey: 'secret', sessionToken: 'session' });
  });

  it('says what is missing when there are no credentials', async () => {
    const signer = new IamTokenSigner({
      hostname: 'h',
      port: 5432,
      username: 'u',
      region: 'eu-west-1',
      credentials: () => credentialsFromEnv({}),
    });
    await expect(signer.getAuthToken()).rejects.toThrow(
      /no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set/,
    );
  });
});
