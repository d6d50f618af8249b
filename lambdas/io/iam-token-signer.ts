/**
 * RDS IAM auth tokens, signed with `node:crypto`: what `@aws-sdk/rds-signer`'s `Signer` makes,
 * without the AWS SDK's core and credential providers in the bundle (they were most of `read`'s
 * and `sync`'s bundles). A token is a SigV4-presigned `connect` request to the endpoint, valid
 * for 15 minutes, without its `https://`. `test/unit/iam-token-signer.test.ts` holds it equal to
 * the SDK signer's output.
 *
 * The credentials are the Lambda execution role's, which Lambda puts in the environment
 * (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`) for the container's life.
 */
import { createHash, createHmac } from 'node:crypto';

export interface AwsCredentials {
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
  readonly sessionToken?: string;
}

export interface IamTokenSignerOptions {
  /** The RDS Proxy (or instance) endpoint the token is for. */
  readonly hostname: string;
  readonly port: number;
  /** The database user the token signs in as. */
  readonly username: string;
  readonly region: string;
  /** @default the Lambda environment's (`credentialsFromEnv`) */
  readonly credentials?: () => AwsCredentials;
  /** @default () => new Date() */
  readonly now?: () => Date;
}

/** What Lambda gives every function: its role's credentials, in the environment. */
export function credentialsFromEnv(env: NodeJS.ProcessEnv = process.env): AwsCredentials {
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new Error(
      'no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set (Lambda sets them from the execution role; outside Lambda, set DATABASE_URL instead)',
    );
  }
  return { accessKeyId, secretAccessKey, sessionToken: env.AWS_SESSION_TOKEN || undefined };
}

/** How long a token is valid, in seconds: RDS accepts at most 15 minutes. */
const EXPIRES_SECONDS = 900;
const SERVICE = 'rds-db';
const ALGORITHM = 'AWS4-HMAC-SHA256';
/** The SHA-256 of an empty payload: a presigned GET carries none. */
const EMPTY_PAYLOAD_HASH = createHash('sha256').update('').digest('hex');

/** Signs IAM auth tokens for one endpoint and user (the `AuthTokenSigner` of `postgres.ts`). */
export class IamTokenSigner {
  constructor(private readonly options: IamTokenSignerOptions) {}

  async getAuthToken(): Promise<string> {
    const { hostname, port, username, region } = this.options;
    const credentials = (this.options.credentials ?? credentialsFromEnv)();
    const amzDate = (this.options.now?.() ?? new Date())
      .toISOString()
      .replace(/[-:]/g, '')
      .replace(/\.\d{3}/, '');
    const day = amzDate.slice(0, 8);
    const scope = `${day}/${region}/${SERVICE}/aws4_request`;
    const host = `${hostname}:${port}`;

    const query: Record<string, string> = {
      Action: 'connect',
      DBUser: username,
      'X-Amz-Algorithm': ALGORITHM,
      'X-Amz-Credential': `${credentials.accessKeyId}/${scope}`,
      'X-Amz-Date': amzDate,
      'X-Amz-Expires': String(EXPIRES_SECONDS),
      'X-Amz-SignedHeaders': 'host',
    };
    if (credentials.sessionToken) query['X-Amz-Security-Token'] = credentials.sessionToken;
    const canonicalQuery = queryString(query);
    const canonicalRequest = [
      'GET',
      '/',
      canonicalQuery,
      `host:${host}`,
      '',
      'host',
      EMPTY_PAYLOAD_HASH,
    ].join('\n');
    const stringToSign = [ALGORITHM, amzDate, scope, sha256Hex(canonicalRequest)].join('\n');
    let key: Buffer = hmac(`AWS4${credentials.secretAccessKey}`, day);
    for (const part of [region, SERVICE, 'aws4_request']) key = hmac(key, part);
    const signature = createHmac('sha256', key).update(stringToSign).digest('hex');
    return `${host}/?${queryString({ ...query, 'X-Amz-Signature': signature })}`;
  }
}

/** Sorted by name, each part URI-encoded as SigV4 asks (RFC 3986: `!'()*` too). */
function queryString(query: Readonly<Record<string, string>>): string {
  return Object.keys(query)
    .sort()
    .map((name) => `${escapeUri(name)}=${escapeUri(query[name] ?? '')}`)
    .join('&');
}

function escapeUri(text: string): string {
  return encodeURIComponent(text).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}
