/**
 * One-time custom resource: creates the PostgreSQL role Spillway's functions sign in as, with
 * IAM authentication (`GRANT rds_iam`) and the rights its migrations need. It connects straight
 * to the instance as the master user (password from the master secret), because the proxy only
 * admits IAM users and this role does not exist yet.
 *
 * Idempotent: re-running it grants what is already granted. Deleting the resource (or the stack)
 * never drops the role: the role owns Spillway's tables.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import {
  type CustomResourceEvent,
  type CustomResourceResult,
  stringProperty,
} from './custom-resource.js';
// The Amazon RDS certificate authorities, shipped beside the bundle (`lib/handlers/
// rds-ca-bundle.pem` says where they come from). Not the runtime's `/var/runtime/ca-cert.pem`,
// which AWS documents for Node.js 20 but not by name for later runtimes.
import { RDS_CA_BUNDLE_FILE } from './rds-ca-bundle.js';

/** TLS errors that mean the server's certificate did not verify against the CAs given. */
const VERIFICATION_FAILURES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

const secrets = new SecretsManagerClient({});

export async function handler(event: CustomResourceEvent): Promise<CustomResourceResult> {
  const user = stringProperty(event, 'DbUser');
  const physicalResourceId = `spillway-db-user-${user}`;
  if (event.RequestType === 'Delete') return { PhysicalResourceId: physicalResourceId };

  const database = stringProperty(event, 'DatabaseName');
  const schema = stringProperty(event, 'Schema');
  const master = await masterCredentials(stringProperty(event, 'MasterSecretArn'));
  const client = await connectVerified({
    host: stringProperty(event, 'Host'),
    port: Number(stringProperty(event, 'Port')),
    database,
    user: master.username,
    password: master.password,
  });
  try {
    const role = client.escapeIdentifier(user);
    const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [user]);
    if (exists.rowCount === 0) await client.query(`CREATE ROLE ${role} LOGIN`);
    // rds_iam makes the role sign in with IAM tokens only; it never has a password.
    await client.query(`GRANT rds_iam TO ${role}`);
    // CREATE on the database: the migrations create the `spillway` schema (and the user schema).
    await client.query(
      `GRANT CONNECT, CREATE ON DATABASE ${client.escapeIdentifier(database)} TO ${role}`,
    );
    const schemaExists = await client.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [
      schema,
    ]);
    if ((schemaExists.rowCount ?? 0) > 0) {
      // Since PostgreSQL 15 `public` no longer lets every role create tables in it.
      await client.query(
        `GRANT USAGE, CREATE ON SCHEMA ${client.escapeIdentifier(schema)} TO ${role}`,
      );
    }
  } finally {
    await client.end();
  }
  return { PhysicalResourceId: physicalResourceId, Data: { DbUser: user } };
}

async function masterCredentials(
  secretArn: string,
): Promise<{ username: string; password: string }> {
  const out = await secrets.send(new GetSecretValueCommand({ SecretId: secretArn }));
  const parsed: unknown = JSON.parse(out.SecretString ?? '{}');
  if (
    typeof parsed === 'object' &&
    parsed !== null &&
    'username' in parsed &&
    'password' in parsed &&
    typeof parsed.username === 'string' &&
    typeof parsed.password === 'string'
  ) {
    return { username: parsed.username, password: parsed.password };
  }
  throw new Error(`secret ${secretArn} is not JSON with a username and a password`);
}

export interface DirectConnection {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
  readonly password: string;
  /** The CA bundle file. @default the bundle shipped beside this function */
  readonly caFile?: string;
}

/**
 * Connects to the instance itself (not the proxy) with TLS verified against the RDS CA bundle.
 * @throws Error saying which bundle failed to verify which host, and what to do, when the
 *   certificate does not verify; or that the bundle is missing from the function.
 */
export async function connectVerified(connection: DirectConnection): Promise<pg.Client> {
  const caFile =
    connection.caFile ?? join(dirname(fileURLToPath(import.meta.url)), RDS_CA_BUNDLE_FILE);
  let ca: string;
  try {
    ca = readFileSync(caFile, 'utf8');
  } catch (error) {
    throw new Error(
      `the RDS CA bundle ${caFile} is missing from the function (the bundling step copies lib/handlers/${RDS_CA_BUNDLE_FILE}): ${String(error)}`,
      { cause: error },
    );
  }
  const client = new pg.Client({
    host: connection.host,
    port: connection.port,
    database: connection.database,
    user: connection.user,
    password: connection.password,
    ssl: { rejectUnauthorized: true, ca },
    connectionTimeoutMillis: 15_000,
    statement_timeout: 30_000,
  });
  try {
    await client.connect();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && VERIFICATION_FAILURES.has(code)) {
      throw new Error(
        `cannot verify the TLS certificate of ${connection.host}:${connection.port} against the Amazon RDS CA bundle shipped with this function (${caFile}): ${code}. ` +
          "Check the instance's certificate authority (rds-ca-rsa2048-g1 by default) and, if it is newer than the bundle, replace lib/handlers/rds-ca-bundle.pem with AWS's current global-bundle.pem and deploy again",
        { cause: error },
      );
    }
    throw error;
  }
  return client;
}
