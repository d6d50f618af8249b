import { type Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { addAlarms, type SpillwayAlarms } from './alarms.js';
import { addDashboard } from './dashboard.js';
import { SpillwayMetrics } from './monitoring-metrics.js';

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
 * Alarms (`alarms.ts`) to an SNS topic, with an e-mail subscription when configured, and a
 * dashboard (`dashboard.ts`) with the backlog, the lag, the throughput and the errors.
 */
export class SpillwayMonitoring extends Construct {
  readonly topic: sns.Topic;
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarms: SpillwayAlarms;

  constructor(scope: Construct, id: string, props: SpillwayMonitoringProps) {
    super(scope, id);
    this.topic = this.alarmTopic(props);

    const metrics = new SpillwayMetrics(props.serviceName, props.syncTimeout);
    this.alarms = addAlarms(this, { ...props, metrics });
    const alarms = Object.values(this.alarms).filter((a): a is cloudwatch.Alarm => a !== undefined);
    const action = new actions.SnsAction(this.topic);
    for (const alarm of alarms) {
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }

    this.dashboard = addDashboard(this, {
      ...props,
      metrics,
      alarms,
      oldestPendingAlarmMs: props.oldestPendingMinutes * 60_000,
    });
  }

  private alarmTopic(props: SpillwayMonitoringProps): sns.Topic {
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
    const topic = new sns.Topic(this, 'Topic', {
      displayName: 'Spillway alarms',
      masterKey: key,
      enforceSSL: true,
    });
    if (props.alarmEmail) {
      topic.addSubscription(new subscriptions.EmailSubscription(props.alarmEmail));
    }
    return topic;
  }
}
