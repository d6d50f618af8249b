/** Names the services share: the PostgreSQL superuser, connection URLs, unique suffixes. */
import { randomBytes } from 'node:crypto';

/** PostgreSQL superuser, and the system user PostgreSQL and PgBouncer run as under root. */
export const PG_USER = 'postgres';

/** `postgres://postgres@127.0.0.1:<port>/<database>`: PostgreSQL, or PgBouncer in front of it. */
export function pgUrl(port: number, database: string): string {
  return `postgres://${PG_USER}@127.0.0.1:${port}/${database}`;
}

let uniqueCounter = 0;

/** Unique across processes (pid), within one (counter) and across runs (random). */
export function uniqueSuffix(separator: string): string {
  uniqueCounter += 1;
  return [
    process.pid.toString(36),
    uniqueCounter.toString(36),
    randomBytes(3).toString('hex'),
  ].join(separator);
}
