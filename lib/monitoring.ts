import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { METRICS_NAMESPACE, MetricName } from '../lambdas/core/metric-names.js';

/** The metrics the functions emit (namespace `Spillway`, dimension `service`). */
const SpillwayMetric = MetricName;

export interface SpillwayMonitoringProps {
  /** The `service` dimension value (`POWERTOOLS_SERVICE_NAME`). */
  readonly serviceName: string;
  readonly syncFunction: lambda.IFunction;
  /** `sync`'s timeout: it publishes its metrics when an invocation ends, so at least this often. */
  readonly syncTimeout: Duration;
  readonly writeFunction: lambda.IFunction;
  readonly readFunction: lambda.IFunction;
  /** Every function, for the dashboard's error row. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /**
   * The functions that buffer changesets (`write` and the pipeline steps): writes arriving while
   * `sync` is not invoked at all means the drain has stopped.
   */
  readonly writerFunctions: readonly lambda.IFunction[];
  /** The cache's node ids, for memory alarms. None: no cache memory alarm (LocalStack shape). */
  readonly cacheClusterIds: readonly string[];
  /**
   * Encrypt the alarm topic with a customer-managed KMS key (CloudWatch cannot publish to a topic
   * under the AWS-managed key). @default true
   */
  readonly encryptTopic?: boolean;
  readonly backlogLimit: number;
  readonly oldestPendingMinutes: number;
  /** @default - no subscription */
  readonly alarmEmail?: string;
}

/**
 * Alarms to an SNS topic (with an e-mail subscription when configured) and a dashboard with the
 * backlog, the lag, the throughput and the errors.
 */
export class SpillwayMonitoring extends Construct {
  readonly topic: sns.Topic;
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: {
    readonly oldestPendingAge: cloudwatch.Alarm;
    readonly deadLetters: cloudwatch.Alarm;
    readonly syncErrors: cloudwatch.Alarm;
    readonly breakerOpen: cloudwatch.Alarm;
    readonly systemicFault: cloudwatch.Alarm;
    readonly bufferNearFull: cloudwatch.Alarm;
    readonly unhealthy: cloudwatch.Alarm;
    readonly cacheDataLost: cloudwatch.Alarm;
    readonly syncStalled: cloudwatch.Alarm;
    /** @default - undefined without cache nodes (LocalStack shape) */
    readonly cacheMemory: cloudwatch.Alarm | undefined;
  };

  constructor(scope: Construct, id: string, props: SpillwayMonitoringProps) {
    super(scope, id);

    // CloudWatch cannot publish to a topic under the AWS-managed SNS key: it needs a key whose
    // policy admits it.
    let key: kms.Key | undefined;
    if (props.encryptTopic ?? true) {
      key = new kms.Key(this, 'TopicKey', {
        description: 'Spillway alarm topic',
        enableKeyRotation: true,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      key.grant(
        new iam.ServicePrincipal('cloudwatch.amazonaws.com'),
        'kms:Decrypt',
        'kms:GenerateDataKey*',
      );
    }
    this.topic = new sns.Topic(this, 'Topic', {
      displayName: 'Spillway alarms',
      masterKey: key,
      enforceSSL: true,
    });
    if (props.alarmEmail) {
      this.topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }

    const metric = (
      name: keyof typeof SpillwayMetric,
      statistic: string,
      period: Duration = Duration.minutes(1),
    ) =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName: SpillwayMetric[name],
        dimensionsMap: { service: props.serviceName },
        statistic,
        period,
      });

    // sync publishes its gauges and counts once per invocation, when it ends: a window must be
    // longer than one invocation, or a long drain would read as missing data.
    const window = Duration.minutes(5 * Math.ceil((props.syncTimeout.toSeconds() + 60) / 300));
    const minutes = (n: number) => `${n * window.toMinutes()} minutes`;

    const thresholdMs = props.oldestPendingMinutes * 60_000;
    const oldestPendingAge = new cloudwatch.Alarm(this, 'OldestPendingAge', {
      alarmDescription: `The oldest pending change has waited more than ${props.oldestPendingMinutes} minutes for the database.`,
      metric: metric('OldestPendingAgeMs', 'Maximum', window),
      threshold: thresholdMs,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      // Only sync publishes this gauge, so silence says nothing about the lag: it is silent before
      // the first drain (during the first deployment) and whenever the schedule is off on purpose.
      // Counting silence as breaching alarmed on both; counting it as not breaching would turn a
      // lag alarm OK just because sync stopped. Missing data keeps the alarm's state, and a
      // stopped drain is the SyncStalled alarm's to report.
      treatMissingData: cloudwatch.TreatMissingData.MISSING,
    });

    const writerInvocations = Object.fromEntries(
      props.writerFunctions.map((fn, i) => [
        `writes${i}`,
        fn.metricInvocations({ period: window, statistic: 'Sum' }),
      ]),
    );
    const syncStalled = new cloudwatch.Alarm(this, 'SyncStalled', {
      alarmDescription: `Changesets were written but sync was not invoked in ${minutes(2)}: the backlog grows and nothing drains it. Is the schedule enabled, is sync throttled or failing to start?`,
      metric: new cloudwatch.MathExpression({
        label: 'writes without a sync invocation',
        // Quiet (no writes, e.g. the first deployment or a schedule turned off while nothing is
        // written) is 0, not an alarm; writes with no sync invocation in the window are 1.
        expression: `IF((${Object.keys(writerInvocations)
          .map((id) => `FILL(${id}, 0)`)
          .join(' + ')}) > 0 AND FILL(syncInvocations, 0) == 0, 1, 0)`,
        usingMetrics: {
          ...writerInvocations,
          syncInvocations: props.syncFunction.metricInvocations({
            period: window,
            statistic: 'Sum',
          }),
        },
        period: window,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const deadLetters = new cloudwatch.Alarm(this, 'DeadLetters', {
      alarmDescription:
        'A change was dead-lettered: the database rejected it permanently. List and replay with the admin function.',
      metric: metric('ChangesDeadLettered', 'Sum'),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const syncErrors = new cloudwatch.Alarm(this, 'SyncErrors', {
      alarmDescription: `sync failed, or met transient database errors, in 2 of the last 3 ${minutes(1)} windows (invocation errors + DrainErrors).`,
      metric: new cloudwatch.MathExpression({
        label: 'sync errors + drain errors',
        expression: 'FILL(invocationErrors, 0) + FILL(drainErrors, 0)',
        usingMetrics: {
          invocationErrors: props.syncFunction.metricErrors({ period: window, statistic: 'Sum' }),
          drainErrors: metric('DrainErrors', 'Sum', window),
        },
        period: window,
      }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 3,
      datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const breakerOpen = new cloudwatch.Alarm(this, 'BreakerOpen', {
      alarmDescription: `sync found the circuit breaker in front of the database open in two ${minutes(1)} windows running: writes are buffered, nothing reaches the database.`,
      metric: metric('BreakerOpen', 'Maximum', window),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const systemicFault = new cloudwatch.Alarm(this, 'SystemicFault', {
      alarmDescription:
        'A systemic database fault (a missing column, table or privilege) stops the drain; nothing is dead-lettered. The health function names it; the drain resumes by itself once it is fixed.',
      metric: metric('SystemicFault', 'Maximum', window),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const bufferNearFull = new cloudwatch.Alarm(this, 'BufferNearFull', {
      alarmDescription: `The buffer passed 80% of its limit (BACKLOG_LIMIT ${props.backlogLimit} changes, or BACKLOG_LIMIT_BYTES); at the limit, write fails with BackpressureError.`,
      metric: metric('BufferPercentFull', 'Maximum', window),
      threshold: 80,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const unhealthy = new cloudwatch.Alarm(this, 'Unhealthy', {
      alarmDescription: `health was not ok in two ${minutes(1)} windows running: the backlog is not draining, the drainer is fenced, the breaker is open, the buffer is filling, the cache lost its data, or a systemic fault stops the drain. The health function and the sync log say which.`,
      metric: metric('Unhealthy', 'Maximum', window),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 2,
      datapointsToAlarm: 2,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const cacheDataLost = new cloudwatch.Alarm(this, 'CacheDataLost', {
      alarmDescription:
        'The cache lost its data (a node replaced, a failover to an empty replica, a restore, FLUSHALL): changes it held that were not yet drained, and its dead letters, are gone. New writes drain normally. Acknowledge with the admin action acknowledge-cache-loss.',
      metric: metric('CacheDataLost', 'Maximum', window),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    const memoryMetrics = Object.fromEntries(
      props.cacheClusterIds.map((id, i) => [
        `node${i}`,
        new cloudwatch.Metric({
          namespace: 'AWS/ElastiCache',
          metricName: 'DatabaseMemoryUsagePercentage',
          dimensionsMap: { CacheClusterId: id },
          statistic: 'Maximum',
          period: Duration.minutes(5),
        }),
      ]),
    );
    const cacheMemory =
      props.cacheClusterIds.length === 0
        ? undefined
        : new cloudwatch.Alarm(this, 'CacheMemory', {
            alarmDescription:
              'Cache memory above 80% on a node. With noeviction a full cache refuses writes: drain, or choose a larger cacheNodeType.',
            metric: new cloudwatch.MathExpression({
              label: 'highest node memory %',
              expression: `MAX([${Object.keys(memoryMetrics).join(', ')}])`,
              usingMetrics: memoryMetrics,
              period: Duration.minutes(5),
            }),
            threshold: 80,
            comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            evaluationPeriods: 1,
            treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
          });

    this.alarms = {
      oldestPendingAge,
      deadLetters,
      syncErrors,
      breakerOpen,
      systemicFault,
      bufferNearFull,
      unhealthy,
      cacheDataLost,
      syncStalled,
      cacheMemory,
    };
    const alarms = Object.values(this.alarms).filter((a): a is cloudwatch.Alarm => a !== undefined);
    const action = new actions.SnsAction(this.topic);
    for (const alarm of alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      defaultInterval: Duration.hours(3),
    });
    const minutely = (name: keyof typeof SpillwayMetric, label: string) =>
      metric(name, 'Sum').with({ label });
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: 'Alarms',
        alarms,
        width: 24,
        height: 3,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Backlog (pending changes)',
        left: [metric('BacklogSize', 'Maximum').with({ label: 'backlog' })],
        leftAnnotations: [{ value: props.backlogLimit, label: 'BACKLOG_LIMIT' }],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Lag: age of the oldest pending change (ms)',
        left: [metric('OldestPendingAgeMs', 'Maximum').with({ label: 'oldest pending' })],
        leftAnnotations: [{ value: thresholdMs, label: 'alarm' }],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Throughput (changes per minute)',
        left: [
          minutely('ChangesApplied', 'applied'),
          minutely('ChangesCoalesced', 'coalesced'),
          props.writeFunction.metricInvocations({
            period: Duration.minutes(1),
            label: 'write calls',
          }),
        ],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Drain errors, dead letters, breaker',
        left: [
          minutely('DrainErrors', 'drain errors'),
          minutely('ChangesDeadLettered', 'dead-lettered'),
        ],
        right: [
          metric('BreakerOpen', 'Maximum').with({ label: 'breaker open' }),
          metric('Unhealthy', 'Maximum').with({ label: 'health not ok' }),
          metric('SystemicFault', 'Maximum').with({ label: 'systemic fault' }),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Function errors',
        left: Object.entries(props.functions).map(([name, fn]) =>
          fn.metricErrors({ period: Duration.minutes(1), label: name }),
        ),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Latency p99 (ms)',
        left: [
          props.writeFunction.metricDuration({ statistic: 'p99', label: 'write' }),
          props.readFunction.metricDuration({ statistic: 'p99', label: 'read' }),
        ],
        right: [props.syncFunction.metricDuration({ statistic: 'Maximum', label: 'sync (max)' })],
        width: 8,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Cache memory % (noeviction: full means writes fail)',
        left: Object.entries(memoryMetrics).map(([, m], i) =>
          m.with({ label: props.cacheClusterIds[i] ?? `node ${i}` }),
        ),
        leftAnnotations: [{ value: 80, label: 'alarm' }],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Buffer % full (the larger of changes and bytes; writes refused at 100)',
        left: [metric('BufferPercentFull', 'Maximum').with({ label: 'buffer full %' })],
        leftAnnotations: [{ value: 80, label: 'alarm' }],
        right: [metric('CacheDataLost', 'Maximum').with({ label: 'cache data lost' })],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'sync throttles (overlapping ticks, expected)',
        left: [props.syncFunction.metricThrottles({ period: Duration.minutes(1) })],
        width: 6,
      }),
    );
  }
}
