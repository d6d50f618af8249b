/**
 * The database user bootstrap connects straight to the instance with TLS verified against the
 * Amazon RDS CA bundle it ships. Here a server that speaks PostgreSQL's SSLRequest and then TLS
 * with a certificate of its own stands in for an instance whose certificate the bundle cannot
 * verify.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../lib/function.js';
import { connectVerified } from '../../lib/handlers/bootstrap-database-user.js';
import { RDS_CA_BUNDLE_FILE } from '../../lib/handlers/rds-ca-bundle.js';

const BUNDLE = join(PROJECT_ROOT, 'lib/handlers', RDS_CA_BUNDLE_FILE);

let dir: string;
let server: net.Server;
let port: number;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'spillway-tls-'));
  execFileSync('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=127.0.0.1',
    '-addext',
    'subjectAltName=IP:127.0.0.1',
    '-keyout',
    join(dir, 'key.pem'),
    '-out',
    join(dir, 'cert.pem'),
  ]);
  const key = readFileSync(join(dir, 'key.pem'));
  const cert = readFileSync(join(dir, 'cert.pem'));
  server = net.createServer((socket) => {
    // PostgreSQL's SSLRequest (8 bytes), answered 'S': then the TLS handshake.
    socket.once('data', () => {
      socket.write('S');
      const secure = new tls.TLSSocket(socket, { isServer: true, key, cert });
      secure.on('error', () => {
        // The client refused our certificate, as it should.
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

describe('database user bootstrap: TLS to the instance', () => {
  it('refuses a certificate the RDS CA bundle does not verify, with a message that says what to do', async () => {
    const connecting = connectVerified({
      host: '127.0.0.1',
      port,
      database: 'spillway',
      user: 'spillway_admin',
      password: 'unused',
    });
    await expect(connecting).rejects.toThrow(
      new RegExp(
        `^cannot verify the TLS certificate of 127\\.0\\.0\\.1:${port} against the Amazon RDS CA bundle shipped with this function \\(.*${RDS_CA_BUNDLE_FILE}\\): DEPTH_ZERO_SELF_SIGNED_CERT\\. .*global-bundle\\.pem`,
      ),
    );
  });

  it('says so when the bundle is missing from the function', async () => {
    await expect(
      connectVerified({
        host: '127.0.0.1',
        port,
        database: 'spillway',
        user: 'spillway_admin',
        password: 'unused',
        caFile: join(dir, 'nothing-here.pem'),
      }),
    ).rejects.toThrow(/^the RDS CA bundle .*nothing-here\.pem is missing from the function/);
  });

  it('ships the RDS root CA of the default instance certificate (rds-ca-rsa2048-g1), every certificate readable', () => {
    const pems = readFileSync(BUNDLE, 'utf8')
      .split('-----BEGIN CERTIFICATE-----')
      .slice(1)
      .map(
        (body) =>
          `-----BEGIN CERTIFICATE-----${body.split('-----END CERTIFICATE-----')[0]}-----END CERTIFICATE-----\n`,
      );
    expect(pems.length).toBe(115);
    const subjects = pems.map((pem) => new X509Certificate(pem).subject);
    expect(subjects.some((s) => s.includes('CN=Amazon RDS us-east-1 Root CA RSA2048 G1'))).toBe(
      true,
    );
    expect(subjects.some((s) => s.includes('CN=Amazon RDS eu-west-1 Root CA RSA2048 G1'))).toBe(
      true,
    );
  });
});
