/**
 * Draws the benchmark's figures as one SVG with Vega-Lite (rendered headless by Vega, no
 * browser): the drain rate by method and workload beside COPY, and the draining process's
 * resident memory over the first drain of each workload.
 */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** What the chart needs of one workload's results (see drain.ts). */
export interface DrainChartInput {
  readonly workload: string;
  readonly methods: readonly { method: string; rowsPerSecond: number; ratioToCopy: number }[];
  readonly drainRssTimeline: readonly { ms: number; rssMiB: number }[];
}

export async function drainChart(results: readonly DrainChartInput[]): Promise<string> {
  const rates = results.flatMap((r) =>
    r.methods.map((m) => ({
      workload: r.workload,
      method: m.method,
      rowsPerSecond: m.rowsPerSecond,
      label: `${m.ratioToCopy.toFixed(2)} x COPY`,
    })),
  );
  const memory = results.flatMap((r) =>
    r.drainRssTimeline.map((p) => ({
      workload: r.workload,
      seconds: p.ms / 1000,
      rssMiB: p.rssMiB,
    })),
  );
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    hconcat: [
      {
        title: 'Rows landed per second, by method',
        data: { values: rates },
        width: 320,
        height: 220,
        layer: [
          {
            mark: 'bar',
            encoding: {
              y: { field: 'method', type: 'nominal', title: null },
              yOffset: { field: 'workload' },
              x: { field: 'rowsPerSecond', type: 'quantitative', title: 'rows/s' },
              color: { field: 'workload', type: 'nominal' },
            },
          },
          {
            mark: { type: 'text', align: 'left', dx: 3 },
            encoding: {
              y: { field: 'method', type: 'nominal' },
              yOffset: { field: 'workload' },
              x: { field: 'rowsPerSecond', type: 'quantitative' },
              text: { field: 'label' },
            },
          },
        ],
      },
      {
        title: 'Resident memory of the draining process',
        data: { values: memory },
        width: 320,
        height: 220,
        mark: 'line',
        encoding: {
          x: { field: 'seconds', type: 'quantitative', title: 'seconds into the drain' },
          y: { field: 'rssMiB', type: 'quantitative', title: 'RSS (MiB)' },
          color: { field: 'workload', type: 'nominal' },
        },
      },
    ],
  };
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  return await view.toSVG();
}

/** What the backlog chart needs of one run (see backlog.ts). */
export interface BacklogChartInput {
  /** E.g. "1000000 changes, changesets of 1". */
  readonly label: string;
  readonly rssTimeline: readonly { ms: number; rssMiB: number }[];
  /** Changes applied so far, after each committed batch. */
  readonly progress: readonly { ms: number; applied: number }[];
}

/** Per-second drain rate from cumulative progress, over windows of `windowMs`. */
function windowedRate(
  progress: readonly { ms: number; applied: number }[],
  windowMs: number,
): { seconds: number; changesPerSecond: number }[] {
  const rates: { seconds: number; changesPerSecond: number }[] = [];
  let from = { ms: 0, applied: 0 };
  for (const point of progress) {
    if (point.ms - from.ms < windowMs) continue;
    rates.push({
      seconds: point.ms / 1000,
      changesPerSecond: Math.round(((point.applied - from.applied) * 1000) / (point.ms - from.ms)),
    });
    from = point;
  }
  return rates;
}

/**
 * The draining process of the backlog benchmark over its drain: its resident memory, and the
 * changes it applies per second (over 2-second windows), one line per run.
 */
export async function backlogChart(runs: readonly BacklogChartInput[]): Promise<string> {
  const memory = runs.flatMap((r) =>
    r.rssTimeline.map((p) => ({ run: r.label, seconds: p.ms / 1000, rssMiB: p.rssMiB })),
  );
  const rates = runs.flatMap((r) =>
    windowedRate(r.progress, 2_000).map((p) => ({ run: r.label, ...p })),
  );
  const panel = (title: string, values: object[], field: string, axis: string) => ({
    title,
    data: { values },
    width: 320,
    height: 220,
    mark: 'line' as const,
    encoding: {
      x: { field: 'seconds', type: 'quantitative' as const, title: 'seconds into the drain' },
      y: { field, type: 'quantitative' as const, title: axis },
      color: { field: 'run', type: 'nominal' as const, title: null },
    },
  });
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    hconcat: [
      panel('Resident memory of the draining process', memory, 'rssMiB', 'RSS (MiB)'),
      panel('Drain rate', rates, 'changesPerSecond', 'changes/s'),
    ],
  };
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  return await view.toSVG();
}

/** What the cold-start chart needs of one bundle (see cold.ts). */
export interface ColdChartInput {
  readonly bundle: string;
  readonly kb: number;
  /** Median time to import the bundle (Lambda's init), ms. */
  readonly importMs: number;
  /** Median time from the process spawned to its first answer, ms. */
  readonly coldMs: number;
}

/**
 * The bundles of the cold-start benchmark: their size, and the median import and cold start
 * (spawn to first answer) beside the baseline's, which is drawn as a rule.
 */
export async function coldChart(
  bundles: readonly ColdChartInput[],
  baseline: string,
): Promise<string> {
  const times = bundles.flatMap((b) => [
    { bundle: b.bundle, phase: 'import', ms: b.importMs },
    { bundle: b.bundle, phase: 'spawn to first answer', ms: b.coldMs },
  ]);
  const base = bundles.find((b) => b.bundle === baseline);
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    hconcat: [
      {
        title: 'Bundle size (KB)',
        data: { values: bundles.map((b) => ({ bundle: b.bundle, kb: b.kb })) },
        width: 240,
        height: 260,
        mark: 'bar',
        encoding: {
          y: { field: 'bundle', type: 'nominal', title: null, sort: null },
          x: { field: 'kb', type: 'quantitative', title: 'KB (minified)' },
        },
      },
      {
        title: 'Cold start, medians (the rule: 1.3 x the baseline import)',
        width: 320,
        height: 260,
        layer: [
          {
            data: { values: times },
            mark: 'bar',
            encoding: {
              y: { field: 'bundle', type: 'nominal', title: null, sort: null },
              yOffset: { field: 'phase' },
              x: { field: 'ms', type: 'quantitative', title: 'ms' },
              color: { field: 'phase', type: 'nominal', title: null },
            },
          },
          {
            data: { values: [{ ms: (base?.importMs ?? 0) * 1.3 }] },
            mark: { type: 'rule', strokeDash: [4, 4] },
            encoding: { x: { field: 'ms', type: 'quantitative' } },
          },
        ],
      },
    ],
  };
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  return await view.toSVG();
}

/** What the latency chart needs of one case (see latency.ts). */
export interface LatencyChartInput {
  readonly changes: number;
  readonly callers: number;
  readonly write: { readonly p50: number; readonly p99: number };
  readonly xadd: { readonly p50: number; readonly p99: number };
  /** The load average when the case ended. */
  readonly load: string;
}

/** p50 and p99 of `write` through the runner beside a bare XADD, per case. */
export async function latencyChart(cases: readonly LatencyChartInput[]): Promise<string> {
  const values = cases.flatMap((c) => {
    const label = `${c.changes} change${c.changes === 1 ? '' : 's'}, ${c.callers} caller${c.callers === 1 ? '' : 's'}`;
    return [
      { case: label, call: 'write p50', ms: c.write.p50 },
      { case: label, call: 'write p99', ms: c.write.p99 },
      { case: label, call: 'XADD p50', ms: c.xadd.p50 },
      { case: label, call: 'XADD p99', ms: c.xadd.p99 },
    ];
  });
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'write through the local runner beside a bare XADD',
    data: { values },
    width: 360,
    height: 260,
    mark: 'bar',
    encoding: {
      y: { field: 'case', type: 'nominal', title: null, sort: null },
      yOffset: { field: 'call', sort: null },
      x: { field: 'ms', type: 'quantitative', title: 'ms' },
      color: { field: 'call', type: 'nominal', title: null, sort: null },
    },
  };
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  return await view.toSVG();
}
