/**
 * `npm run demo`: Spillway keeping a document pipeline writing through a database outage.
 *
 * Starts its own Redis, PostgreSQL and PgBouncer (in a temp dir, on free ports) and its own local
 * runner, then pushes a few hundred generated legal documents through `process-document` and
 * `extract-entities` with the real @aws-sdk/client-lambda, as a pipeline would. A while in, it
 * kills PostgreSQL for several seconds while the writes go on, starts it again, waits for every
 * changeset the steps wrote to be applied (by the versions they returned, `read` `{ changesets }`),
 * and finally checks the rows in PostgreSQL against what the
 * pipeline wrote.
 *
 * Settings (environment): DEMO_DOCUMENTS (default 300), DEMO_RATE (documents per second, 30),
 * DEMO_OUTAGE_MS (6000).
 */
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import pg from 'pg';
import { type RunnerProcess, spawnRunner } from '../local/runner-process.js';
import { type Services, startServices } from '../local/services/index.js';

const DOCUMENTS = setting('DEMO_DOCUMENTS', 300);
const RATE = setting('DEMO_RATE', 30);
const OUTAGE_MS = setting('DEMO_OUTAGE_MS', 6_000);
const CONCURRENCY = 8;
const SAMPLE = 12;
/** Versions per `read` `{ changesets }` (its limit is 500). */
const STATUS_BATCH = 500;

interface Chunk {
  chunk_uuid: string;
  chunk_index: number;
  text: string;
}
interface Processed {
  document_uuid: string;
  chunks: Chunk[];
  /** The versions of the changesets it wrote. */
  versions: string[];
}
interface Extracted {
  entities: number;
  relationships: number;
  task_id: string;
  version: string;
}
interface Written {
  readonly filename: string;
  readonly processed: Processed;
  readonly extracted: Extracted;
}

async function main(): Promise<number> {
  // Node 20 is what this project supports; the SDK's notice about its future releases would only
  // push the demo's output off the screen.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';
  const tty = process.stdout.isTTY === true;
  console.log('Spillway demo: a document pipeline writing through a PostgreSQL outage\n');

  const services = await startServices({ redis: { appendOnly: true } });
  let runner: RunnerProcess | undefined;
  const cleanup = async () => {
    await runner?.stop();
    await services.stop();
  };
  process.once('SIGINT', () => {
    void cleanup().then(() => process.exit(130));
  });

  try {
    const database = await services.createDatabase();
    // Kept after the demo (the services' temp dir is not), in a folder git ignores.
    mkdirSync('.tmp', { recursive: true });
    const logPath = resolve('.tmp', 'demo-runner.log');
    runner = await spawnRunner({
      env: {
        REDIS_URL: services.redis.url,
        DATABASE_URL: database.url,
        SYNC_INTERVAL_MS: '200',
        SYNC_IDLE_WAIT_MS: '2000',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      },
      logPath,
    });
    console.log(
      `  services   Redis :${services.redis.port}, PostgreSQL :${services.postgres.port} behind PgBouncer :${services.pgbouncer.port} (transaction mode)`,
    );
    console.log(`  runner     ${runner.url}  (its log: ${logPath})\n`);

    const lambda = new LambdaClient({
      endpoint: runner.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDLOCAL', secretAccessKey: 'local-secret' },
    });
    const direct = new pg.Pool({ connectionString: database.directUrl, max: 2 });
    direct.on('error', () => {
      // PostgreSQL is killed on purpose; the pool replaces the connection.
    });

    const result = await runPipeline(lambda, services, tty);
    const report = await verify(direct, result.written, result.deadLetters);
    await direct.end();
    lambda.destroy();

    console.log(`\nReport`);
    console.log(
      `  documents through the pipeline   ${result.written.length} in ${seconds(result.writeMs)}, none failed`,
    );
    console.log(
      `  PostgreSQL down                  ${seconds(result.outageMs)} (kill -9, then restart); ${result.writtenDuringOutage} documents written meanwhile`,
    );
    console.log(`  largest backlog                  ${result.maxBacklog} changes`);
    console.log(
      `  every changeset applied          ${seconds(result.drainMs)} after the last write`,
    );
    console.log(`  dead letters                     ${report.deadLetters}`);
    console.log(
      `  ${report.ok ? 'OK: every row written is in PostgreSQL' : 'MISMATCH: see above'}`,
    );
    return report.ok ? 0 : 1;
  } finally {
    await cleanup();
  }
}

interface PipelineResult {
  readonly written: Written[];
  readonly writeMs: number;
  readonly outageMs: number;
  readonly writtenDuringOutage: number;
  readonly maxBacklog: number;
  readonly drainMs: number;
  readonly deadLetters: number;
}

async function runPipeline(
  lambda: LambdaClient,
  services: Services,
  tty: boolean,
): Promise<PipelineResult> {
  const documents = generateDocuments(DOCUMENTS);
  const written: Written[] = [];
  const state: MonitorState & { database: 'up' | 'down' | 'restarting' } = {
    backlog: 0,
    maxBacklog: 0,
    breaker: 'closed',
    database: 'up',
  };
  let next = 0;
  const start = Date.now();

  console.log(
    `Pushing ${DOCUMENTS} documents through process-document, then extract-entities (${RATE}/s, ${CONCURRENCY} at a time)`,
  );
  const monitor = startMonitor(lambda, state);
  const render = () =>
    `  ${bar(written.length, DOCUMENTS)} ${String(written.length).padStart(4)}/${DOCUMENTS} documents   backlog ${String(state.backlog).padStart(5)}   PostgreSQL ${state.database}`;
  const progress = startProgress(render, tty);

  const worker = async () => {
    for (;;) {
      const index = next++;
      const document = documents[index];
      if (document === undefined) return;
      // Paced like a steady pipeline, so that the outage happens in the middle of it.
      const due = start + (index * 1000) / RATE;
      if (due > Date.now()) await sleep(due - Date.now());
      const processed = await invoke<Processed>(lambda, 'process-document', document);
      const extracted = await invoke<Extracted>(lambda, 'extract-entities', processed);
      written.push({ filename: document.filename, processed, extracted });
    }
  };

  const outage = (async () => {
    while (written.length < Math.floor(DOCUMENTS / 4)) await sleep(20);
    await services.postgres.kill();
    const downAt = Date.now();
    const before = written.length;
    state.database = 'down';
    progress.note(
      `PostgreSQL killed (kill -9) after ${before} documents; the pipeline keeps writing`,
    );
    await sleep(OUTAGE_MS);
    state.database = 'restarting';
    await services.postgres.restart();
    state.database = 'up';
    const outageMs = Date.now() - downAt;
    progress.note(
      `PostgreSQL back after ${seconds(outageMs)}; ${written.length - before} documents were written while it was down`,
    );
    return { outageMs, during: written.length - before };
  })();

  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const writeMs = Date.now() - start;
  const { outageMs, during } = await outage;
  progress.stop();

  // As a pipeline waits for what it needs in the database: by the versions the steps returned.
  console.log('Waiting for every changeset the pipeline wrote to reach PostgreSQL');
  const drainStart = Date.now();
  const waiting = new Set(written.flatMap((w) => [...w.processed.versions, w.extracted.version]));
  const total = waiting.size;
  const drainProgress = startProgress(
    () =>
      `  ${bar(total - waiting.size, total)} ${String(total - waiting.size).padStart(5)}/${total} changesets applied   circuit breaker ${state.breaker}`,
    tty,
  );
  let deadLetters = 0;
  await waitFor(async () => {
    const versions = [...waiting];
    for (let at = 0; at < versions.length; at += STATUS_BATCH) {
      const { changesets } = await invoke<{ changesets: { version: string; status: string }[] }>(
        lambda,
        'read',
        { changesets: versions.slice(at, at + STATUS_BATCH) },
      );
      for (const { version, status } of changesets) {
        if (status === 'dead-lettered') deadLetters += 1;
        if (status === 'applied' || status === 'dead-lettered') waiting.delete(version);
      }
    }
    return waiting.size === 0;
  }, 120_000);
  drainProgress.stop();
  await monitor.stop();
  return {
    written,
    writeMs,
    outageMs,
    writtenDuringOutage: during,
    maxBacklog: state.maxBacklog,
    drainMs: Date.now() - drainStart,
    deadLetters,
  };
}

interface MonitorState {
  backlog: number;
  maxBacklog: number;
  breaker: string;
}

/** Polls `health` for the backlog size and the breaker. */
function startMonitor(lambda: LambdaClient, state: MonitorState): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const health = await invoke<{ backlog: number; breaker: string }>(lambda, 'health', {});
        state.backlog = health.backlog;
        state.breaker = health.breaker;
        state.maxBacklog = Math.max(state.maxBacklog, health.backlog);
      } catch {
        // The next poll will tell.
      }
      await sleep(200);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** A progress line redrawn in place on a terminal, printed every few seconds otherwise. */
function startProgress(render: () => string, tty: boolean) {
  let lastPrinted = 0;
  const draw = () => {
    if (tty) process.stdout.write(`\r\x1b[K${render()}`);
    else if (Date.now() - lastPrinted >= 2_000) {
      lastPrinted = Date.now();
      console.log(render());
    }
  };
  const timer = setInterval(draw, 100);
  draw();
  return {
    note(message: string) {
      if (tty) process.stdout.write('\r\x1b[K');
      console.log(`  ${message}`);
      draw();
    },
    stop() {
      clearInterval(timer);
      if (tty) process.stdout.write(`\r\x1b[K${render()}\n`);
      else console.log(render());
    },
  };
}

interface Report {
  readonly ok: boolean;
  readonly deadLetters: number;
}

/** Row counts and a sample of rows in PostgreSQL against what the pipeline returned. */
async function verify(
  direct: pg.Pool,
  written: readonly Written[],
  deadLetters: number,
): Promise<Report> {
  console.log('\nChecking PostgreSQL against what the pipeline wrote');
  const sum = (f: (w: Written) => number) => written.reduce((total, w) => total + f(w), 0);
  const expected: [string, number][] = [
    ['source_documents', written.length],
    ['document_chunks', sum((w) => w.processed.chunks.length)],
    ['entity_mentions', sum((w) => w.extracted.entities)],
    ['relationships', sum((w) => w.extracted.relationships)],
    ['processing_tasks', written.length],
  ];
  let ok = true;
  console.log(`  ${'table'.padEnd(20)}${'written'.padStart(9)}${'found'.padStart(9)}`);
  for (const [table, count] of expected) {
    const found = Number((await direct.query(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n);
    const match = found === count;
    ok &&= match;
    console.log(
      `  ${table.padEnd(20)}${String(count).padStart(9)}${String(found).padStart(9)}  ${match ? 'ok' : 'MISMATCH'}`,
    );
  }
  const notCompleted = Number(
    (await direct.query("SELECT count(*) AS n FROM source_documents WHERE status <> 'completed'"))
      .rows[0]?.n,
  );
  if (notCompleted > 0) {
    ok = false;
    console.log(`  ${notCompleted} documents are not 'completed'`);
  }

  const sample = [...written].sort(() => Math.random() - 0.5).slice(0, SAMPLE);
  let sampleOk = true;
  for (const w of sample) {
    const id = w.processed.document_uuid;
    const doc = (
      await direct.query('SELECT filename, status FROM source_documents WHERE document_uuid = $1', [
        id,
      ])
    ).rows[0];
    const chunks = (
      await direct.query(
        'SELECT chunk_uuid, chunk_index, text FROM document_chunks WHERE document_uuid = $1 ORDER BY chunk_index',
        [id],
      )
    ).rows as Chunk[];
    const mentions = (
      await direct.query(
        'SELECT chunk_uuid, text, start_offset, end_offset FROM entity_mentions WHERE document_uuid = $1',
        [id],
      )
    ).rows as { chunk_uuid: string; text: string; start_offset: number; end_offset: number }[];
    const texts = new Map(w.processed.chunks.map((c) => [c.chunk_uuid, c.text]));
    const problems = [
      doc?.filename === w.filename && doc?.status === 'completed' ? '' : 'document row',
      JSON.stringify(chunks) === JSON.stringify(w.processed.chunks) ? '' : 'chunks',
      mentions.length === w.extracted.entities ? '' : 'mention count',
      mentions.every((m) => texts.get(m.chunk_uuid)?.slice(m.start_offset, m.end_offset) === m.text)
        ? ''
        : 'mention offsets',
    ].filter((p) => p !== '');
    if (problems.length > 0) {
      sampleOk = false;
      console.log(`  ${w.filename} (${id}): ${problems.join(', ')} differ`);
    }
  }
  ok &&= sampleOk;
  console.log(
    `  a sample of ${sample.length} documents, row by row (document, chunks and their text, entity offsets): ${sampleOk ? 'ok' : 'MISMATCH'}`,
  );
  if (deadLetters > 0) {
    ok = false;
    console.log(`  ${deadLetters} changesets were dead-lettered`);
  }
  return { ok, deadLetters };
}

async function invoke<T>(lambda: LambdaClient, name: string, payload: unknown): Promise<T> {
  const out = await lambda.send(
    new InvokeCommand({
      FunctionName: name,
      Payload: new TextEncoder().encode(JSON.stringify(payload)),
    }),
  );
  const text = new TextDecoder().decode(out.Payload ?? new Uint8Array());
  if (out.FunctionError !== undefined) throw new Error(`${name} failed: ${text}`);
  return JSON.parse(text) as T;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up after ${seconds(timeoutMs)}`);
    await sleep(200);
  }
}

// -------------------------------------------------------------------------------------------
// Generated legal documents: deterministic, so every run writes the same corpus.
// -------------------------------------------------------------------------------------------

interface DocumentInput {
  readonly filename: string;
  readonly content_type: string;
  readonly text: string;
}

function generateDocuments(count: number): DocumentInput[] {
  const random = mulberry32(20240303);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const names = [
    'Acme',
    'Globex',
    'Initech',
    'Umbrella',
    'Stark',
    'Wayne',
    'Hooli',
    'Vandelay',
    'Soylent',
    'Tyrell',
    'Cyberdyne',
    'Wonka',
    'Oscorp',
    'Contoso',
    'Northwind',
    'Fabrikam',
  ];
  const kinds = [
    'Holdings',
    'Industries',
    'Capital',
    'Logistics',
    'Partners',
    'Systems',
    'Trading',
  ];
  const suffixes = ['Inc.', 'LLC', 'Ltd.', 'Corp.', 'LLP', 'GmbH'];
  const months = [
    'January',
    'February',
    'March',
    'April',
    'May',
    'June',
    'July',
    'August',
    'September',
    'October',
    'November',
    'December',
  ];
  const states = ['New York', 'Delaware', 'California', 'Texas', 'Illinois'];
  const org = () => `${pick(names)} ${pick(kinds)} ${pick(suffixes)}`;
  const date = () =>
    random() < 0.5
      ? `${pick(months)} ${1 + Math.floor(random() * 28)}, ${2021 + Math.floor(random() * 5)}`
      : `${2021 + Math.floor(random() * 5)}-${String(1 + Math.floor(random() * 12)).padStart(2, '0')}-${String(1 + Math.floor(random() * 28)).padStart(2, '0')}`;
  const money = () => {
    const amount = (1 + Math.floor(random() * 9_999)) * 250;
    return random() < 0.7
      ? `$${amount.toLocaleString('en-US')}`
      : `USD ${amount.toLocaleString('en-US')}`;
  };
  const email = (company: string) =>
    `${pick(['legal', 'counsel', 'notices', 'contracts'])}@${company.split(' ')[0]?.toLowerCase()}-law.com`;
  const phone = () =>
    `+1 (${200 + Math.floor(random() * 700)}) 555-${String(Math.floor(random() * 10_000)).padStart(4, '0')}`;
  const caseNumber = () =>
    `${String(19 + Math.floor(random() * 6))}-cv-${String(1000 + Math.floor(random() * 9000))}`;
  const fillers = [
    'Nothing in this document shall be construed as an admission of liability by either party.',
    'Each party shall bear its own costs and attorneys fees except as provided herein.',
    'The headings in this document are for convenience only and shall not affect its interpretation.',
    'This document may be executed in counterparts, each of which shall be deemed an original.',
    'Any amendment must be made in writing and signed by authorised representatives of both parties.',
    'The receiving party shall keep all confidential information in strict confidence.',
  ];

  return Array.from({ length: count }, (_, i) => {
    const a = org();
    const b = org();
    const sentences = [
      `This ${pick(['Settlement Agreement', 'Consent Order', 'Services Agreement', 'Letter of Intent'])} is entered into on ${date()} by and between ${a} and ${b}.`,
      `${a} shall pay ${money()} to ${b} no later than ${date()}.`,
      `All notices shall be sent to ${email(a)} or by telephone at ${phone()}.`,
      `This matter relates to Case No. ${caseNumber()} pending in the District of ${pick(states)}.`,
    ];
    const extra = 2 + Math.floor(random() * 10);
    for (let s = 0; s < extra; s++) {
      sentences.push(
        random() < 0.5
          ? pick(fillers)
          : pick([
              `${b} may be reached at ${email(b)} or at ${phone()}.`,
              `A further payment of ${money()} falls due on ${date()}.`,
              `${org()} joins this document as guarantor of the obligations of ${a}.`,
              `The parties agree that the laws of the State of ${pick(states)} govern this document.`,
            ]),
      );
    }
    return {
      filename: `matter-${String(i + 1).padStart(4, '0')}.pdf`,
      content_type: 'application/pdf',
      text: sentences.join(' '),
    };
  });
}

/** A small seeded PRNG (mulberry32). */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function bar(done: number, total: number, width = 30): string {
  const filled = Math.round((Math.min(done, total) / Math.max(1, total)) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer, got '${raw}'`);
  }
  return value;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error('\ndemo failed:', error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
