import { afterEach, beforeEach, describe, expect, it, type MockInstance, vi } from 'vitest';

type Telemetry = typeof import('../../lambdas/io/telemetry.js') &
  typeof import('../../lambdas/io/metrics.js');

/** The JSON lines written through `write` (a spy on stdout or stderr), parsed. */
function jsonLinesOf(...writes: MockInstance[]): Record<string, unknown>[] {
  return writes
    .flatMap((w) => w.mock.calls)
    .map(([chunk]) => String(chunk))
    .flatMap((text) => text.split('\n'))
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

interface Emf {
  _aws: {
    Timestamp: number;
    CloudWatchMetrics: {
      Namespace: string;
      Dimensions: string[][];
      Metrics: { Name: string; Unit: string }[];
    }[];
  };
  [key: string]: unknown;
}

function emfLines(write: MockInstance): Emf[] {
  return jsonLinesOf(write).filter((line) => '_aws' in line) as unknown as Emf[];
}

/** The logs (`telemetry.ts`) and the metrics (`metrics.ts`), imported afresh. */
async function importTelemetry(): Promise<Telemetry> {
  return {
    ...(await import('../../lambdas/io/telemetry.js')),
    ...(await import('../../lambdas/io/metrics.js')),
  };
}

describe('telemetry', () => {
  let write: MockInstance;
  let writeErr: MockInstance;
  let telemetry: Telemetry;
  const saved = { ...process.env };

  beforeEach(async () => {
    // Powertools prints nothing in dev mode; the deployed functions do not run in it.
    delete process.env.POWERTOOLS_DEV;
    delete process.env.POWERTOOLS_METRICS_DISABLED;
    delete process.env.POWERTOOLS_SERVICE_NAME;
    vi.resetModules();
    telemetry = await importTelemetry();
    write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    writeErr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  });

  afterEach(() => {
    write.mockRestore();
    writeErr.mockRestore();
    process.env = { ...saved };
  });

  it('emits the drain counts as EMF in the Spillway namespace, zeros included', () => {
    telemetry.publishDrainMetrics({
      applied: 42,
      coalesced: 7,
      deadLettered: 0,
      transientErrors: 3,
      cacheLost: true,
      failover: false,
    });

    const [emf, ...rest] = emfLines(write);
    expect(rest).toEqual([]);
    const directive = emf?._aws.CloudWatchMetrics[0];
    expect(directive?.Namespace).toBe('Spillway');
    expect(directive?.Dimensions).toEqual([['service']]);
    expect(directive?.Metrics).toEqual([
      { Name: 'ChangesApplied', Unit: 'Count' },
      { Name: 'ChangesCoalesced', Unit: 'Count' },
      { Name: 'ChangesDeadLettered', Unit: 'Count' },
      { Name: 'DrainErrors', Unit: 'Count' },
      { Name: 'CacheDataLost', Unit: 'Count' },
      { Name: 'CacheFailover', Unit: 'Count' },
    ]);
    expect(emf).toMatchObject({
      CacheDataLost: 1,
      CacheFailover: 0,
      service: 'spillway',
      ChangesApplied: 42,
      ChangesCoalesced: 7,
      ChangesDeadLettered: 0,
      DrainErrors: 3,
    });
  });

  it('emits the backlog gauges, with BreakerOpen 1 only while the breaker is open', () => {
    telemetry.publishBacklogMetrics({
      backlog: 1234,
      oldestPendingMs: 56_789,
      breaker: 'open',
      status: 'degraded',
      buffer: { percentFull: 93 },
    });
    telemetry.publishBacklogMetrics({
      backlog: 0,
      oldestPendingMs: 0,
      breaker: 'half-open',
      status: 'ok',
      buffer: { percentFull: 0 },
    });
    telemetry.publishBacklogMetrics({
      backlog: 5,
      oldestPendingMs: 10,
      breaker: 'closed',
      status: 'ok',
      buffer: { percentFull: -1 },
    });

    const lines = emfLines(write);
    expect(lines).toHaveLength(3);
    expect(lines[0]?._aws.CloudWatchMetrics[0]?.Metrics).toEqual([
      { Name: 'BacklogSize', Unit: 'Count' },
      { Name: 'OldestPendingAgeMs', Unit: 'Milliseconds' },
      { Name: 'BreakerOpen', Unit: 'Count' },
      { Name: 'BufferPercentFull', Unit: 'Percent' },
      { Name: 'Unhealthy', Unit: 'Count' },
    ]);
    expect(lines[0]).toMatchObject({
      BacklogSize: 1234,
      OldestPendingAgeMs: 56_789,
      BreakerOpen: 1,
    });
    expect(lines[0]).toMatchObject({ BufferPercentFull: 93, Unhealthy: 1 });
    expect(lines[1]).toMatchObject({ BacklogSize: 0, OldestPendingAgeMs: 0, BreakerOpen: 0 });
    expect(lines[1]).toMatchObject({ BufferPercentFull: 0, Unhealthy: 0 });
    expect(lines[2]).toMatchObject({ BacklogSize: 5, OldestPendingAgeMs: 10, BreakerOpen: 0 });
  });

  it('does not carry one publication over into the next', () => {
    telemetry.publishDrainMetrics({
      applied: 1,
      coalesced: 0,
      deadLettered: 0,
      transientErrors: 0,
      cacheLost: false,
      failover: false,
    });
    telemetry.publishBacklogMetrics({
      backlog: 0,
      oldestPendingMs: 0,
      breaker: 'closed',
      status: 'ok',
      buffer: { percentFull: -1 },
    });
    const [, backlog] = emfLines(write);
    expect(backlog).not.toHaveProperty('ChangesApplied');
  });

  it('names every metric the CDK alarms expect, and no other', () => {
    expect(Object.values(telemetry.MetricName).sort()).toEqual([
      'BacklogSize',
      'BreakerOpen',
      'BufferPercentFull',
      'CacheDataLost',
      'CacheFailover',
      'ChangesApplied',
      'ChangesCoalesced',
      'ChangesDeadLettered',
      'DrainErrors',
      'OldestPendingAgeMs',
      'SystemicFault',
      'Unhealthy',
    ]);
  });

  it('emits SystemicFault 1 while a systemic fault stops the drain, else 0', () => {
    telemetry.publishSystemicFault(true);
    telemetry.publishSystemicFault(false);

    const lines = emfLines(write);
    expect(lines[0]?._aws.CloudWatchMetrics[0]?.Metrics).toEqual([
      { Name: 'SystemicFault', Unit: 'Count' },
    ]);
    expect(lines.map((line) => line.SystemicFault)).toEqual([1, 0]);
  });

  it('takes the service name from POWERTOOLS_SERVICE_NAME', async () => {
    process.env.POWERTOOLS_SERVICE_NAME = 'spillway-sync';
    vi.resetModules();
    const named: Telemetry = await importTelemetry();
    named.logger.info('hello');
    named.publishBacklogMetrics({
      backlog: 1,
      oldestPendingMs: 1,
      breaker: 'closed',
      status: 'ok',
      buffer: { percentFull: 0 },
    });

    const lines = jsonLinesOf(write);
    expect(lines.find((line) => line.message === 'hello')).toMatchObject({
      service: 'spillway-sync',
    });
    expect(lines.find((line) => '_aws' in line)).toMatchObject({ service: 'spillway-sync' });
  });

  it('logs an error without the row data or command arguments its properties and cause carry', () => {
    const pgError = Object.assign(new Error('new row violates check constraint "c"'), {
      code: '23514',
      detail: 'Failing row contains (secret-ssn-123-45-6789).',
    });
    const redisError = Object.assign(new Error('Command timed out'), {
      command: { name: 'evalsha', args: ['sha', '1', 'secret-ssn-123-45-6789'] },
    });
    const wrapped = new Error('database unavailable: timeout', { cause: pgError });
    for (const error of [pgError, redisError, wrapped]) {
      telemetry.logger.error('failed', { error: telemetry.loggableError(error) });
    }
    const lines = jsonLinesOf(write, writeErr).filter((l) => l.message === 'failed');
    expect(lines).toHaveLength(3);
    expect(JSON.stringify(lines)).not.toContain('secret-ssn');
    expect(lines[0]).toMatchObject({ error: { name: 'Error', code: '23514' } });
  });

  it('logs structured JSON, and a changeset logger puts the changeset id on every line', () => {
    const log = telemetry.changesetLogger('cs-0001');
    log.info('buffered', { changes: 3 });
    log.warn('dead-lettered');
    telemetry.logger.info('unrelated');

    // Lambda sends both streams to CloudWatch Logs; Powertools writes warnings to stderr.
    const lines = jsonLinesOf(write, writeErr);
    expect(lines.find((l) => l.message === 'buffered')).toMatchObject({
      level: 'INFO',
      service: 'spillway',
      changesetId: 'cs-0001',
      changes: 3,
    });
    expect(lines.find((l) => l.message === 'dead-lettered')).toMatchObject({
      level: 'WARN',
      changesetId: 'cs-0001',
    });
    expect(lines.find((l) => l.message === 'unrelated')).not.toHaveProperty('changesetId');
  });
});
