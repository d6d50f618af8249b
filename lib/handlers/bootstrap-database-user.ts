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
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import pg from 'pg';
import {
  type CustomResourceEvent,
  type CustomResourceResult,
  stringProperty,
} from './custom-resource.js';

/** The Amazon RDS certificate authorities shipped with the Lambda Node.js runtime. */
const RDS_CA_BUNDLE = '/var/runtime/ca-cert.pem';

const secrets = new SecretsManagerClient({});

export async function handler(event: CustomResourceEvent): Promise<CustomResourceResult> {
  const user = stringProperty(event, 'DbUser');
  const physicalResourceId = `spillway-db-user-${user}`;
  if (event.RequestType === 'Delete') return { PhysicalResourceId: physicalResourceId };

  const database = stringProperty(event, 'DatabaseName');
  const schema = stringProperty(event, 'Schema');
  const master = await masterCredentials(stringProperty(event, 'MasterSecretArn'));
  const client = new pg.Client({
    host: stringProperty(event, 'Host'),
    port: Number(stringProperty(event, 'Port')),
    database,
    user: master.username,
    password: master.password,
    // Verified TLS to the instance itself (not the proxy): that needs the RDS CA bundle.
    ssl: { rejectUnauthorized: true, ca: readFileSync(RDS_CA_BUNDLE, 'utf8') },
    connectionTimeoutMillis: 15_000,
    statement_timeout: 30_000,
  });
  await client.connect();
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
