import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { buildBundle, LUA_SCRIPTS } from '../../lib/bundle.js';
import type { BundledSink } from '../../lib/bundle-options.js';

const workDir = mkdtempSync(join(tmpdir(), 'spillway-bundled-sink-'));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

const saved = { ...process.env };
afterEach(() => {
  process.env = { ...saved };
});

/** `lambdas/runtime/container.ts` bundled for one sink, as `cdk synth` bundles a function. */
async function containerBundledFor(sink: BundledSink): Promise<{ code: string; url: string }> {
  const { file } = await buildBundle({
    entry: 'lambdas/runtime/container.ts',
    outdir: join(workDir, `container-${sink}`),
    sink,
    // The buffer reads its Lua scripts from beside the bundle, as in a deployed function.
    files: [LUA_SCRIPTS],
  });
  return { code: readFileSync(file, 'utf8'), url: pathToFileURL(file).href };
}

const DATA_API = {
  SINK: 'data-api',
  AWS_REGION: 'eu-west-1',
  DATA_API_RESOURCE_ARN: 'arn:aws:rds:eu-west-1:123456789012:cluster:spillway',
  DATA_API_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:spillway/db-AbCdEf',
  DATA_API_DATABASE: 'spillway',
};

describe('a bundle built for one sink', () => {
  it('carries only that sink’s database client', async () => {
    // Class names survive minification (keepNames); `expect(code)` would print the bundle.
    const has = (code: string, name: string) => code.includes(`"${name}"`);
    const postgres = await containerBundledFor('postgres');
    expect(has(postgres.code, 'IamTokenSigner')).toBe(true);
    expect(has(postgres.code, 'RDSDataClient')).toBe(false);
    const dataApi = await containerBundledFor('data-api');
    expect(has(dataApi.code, 'RDSDataClient')).toBe(true);
    expect(has(dataApi.code, 'IamTokenSigner')).toBe(false);
  });

  it('refuses the other sink with a ConfigError naming SINK and what to do', async () => {
    const { url } = await containerBundledFor('postgres');
    const container = (await import(url)) as typeof import('../../lambdas/runtime/container.js');
    process.env = { ...saved, ...DATA_API, REDIS_URL: 'redis://127.0.0.1:1' };
    const failure = await container.getDatabase().catch((error: unknown) => error as Error);
    expect(failure).toMatchObject({
      name: 'ConfigError',
      variable: 'SINK',
      message:
        'SINK: data-api, but this function was bundled for the postgres sink: deploy it with the stack shape of its sink instead of changing SINK',
    });
  });
});
