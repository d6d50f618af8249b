import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { settingsEnvironment } from '../lambdas/core/settings.js';
import {
  FUNCTION_NAMES,
  FUNCTIONS,
  type FunctionName,
  WRITER_FUNCTIONS,
} from '../lambdas/functions.js';
import type { SpillwaySettings } from './config.js';
import { SpillwayFunction } from './function.js';
import { SpillwayMigrations } from './migrations.js';
import { SpillwayMonitoring } from './monitoring.js';
import { functionSpecs, pascal } from './spillway-stack.js';

export interface SpillwayLocalStackStackProps extends StackProps {
  readonly settings: SpillwaySettings;
  /** Where the handler files are, relative to the project root. @default 'lambdas/handlers' */
  readonly handlersDirectory?: string;
}

/**
 * What of Spillway runs on LocalStack's free plan: every function (outside any VPC), the
 * migrations custom resource, and the alarms and dashboard. Its ElastiCache and RDS are paid
 * features, its ElastiCache has neither TLS nor AUTH, its RDS has no proxy and does not check IAM
 * authentication, and its EventBridge Scheduler does not trigger targets. So the functions reach
 * a Valkey and a PostgreSQL behind PgBouncer in transaction mode (standing in for RDS Proxy)
 * that run beside LocalStack (`localstack/compose.yaml`), through `REDIS_URL` and `DATABASE_URL`,
 * and whoever drives the stack invokes `sync` itself.
 *
 * Each function is named by its logical name (`write`, `sync`, ...), as the local runner names
 * them, so that the same end-to-end tests run against both.
 */
export class SpillwayLocalStackStack extends Stack {
  readonly settings: SpillwaySettings;
  readonly functions: Readonly<Record<FunctionName, SpillwayFunction>>;
  readonly migrations: SpillwayMigrations;
  readonly monitoring: SpillwayMonitoring;

  constructor(scope: Construct, id: string, props: SpillwayLocalStackStackProps) {
    super(scope, id, props);
    const { settings } = props;
    const local = settings.localstack;
    if (local === undefined) {
      throw new Error('SpillwayLocalStackStack needs the localstack shape (-c shape=localstack)');
    }
    this.settings = settings;
    const handlers = props.handlersDirectory ?? 'lambdas/handlers';
    const logRetention = settings.functions.logRetentionDays as logs.RetentionDays;
    const f = settings.functions;
    const specs = functionSpecs(f);

    const environment: Record<string, string> = {
      ...settingsEnvironment(f.engine),
      // No schedule here: sync runs when invoked, so it drains and returns instead of idling.
      SYNC_IDLE_WAIT_MS: '0',
      REDIS_URL: local.redisUrl,
    };

    const functions = {} as Record<FunctionName, SpillwayFunction>;
    for (const name of FUNCTION_NAMES) {
      const spec = specs[name];
      functions[name] = new SpillwayFunction(this, pascal(name), {
        entry: `${handlers}/${FUNCTIONS[name].handler}`,
        serviceName: settings.serviceName,
        logRetention,
        placement: 'outside-vpc',
        ...spec,
        environment: {
          ...environment,
          ...(FUNCTIONS[name].reachesDatabase ? { DATABASE_URL: local.databaseUrl } : {}),
          ...spec.environment,
        },
      });
      // The contract's names, as the local runner serves them.
      (functions[name].node.defaultChild as lambda.CfnFunction).functionName = name;
    }
    this.functions = functions;

    this.migrations = new SpillwayMigrations(this, 'Migrations', {
      migrateFunction: functions.migrate,
      logRetention,
    });

    this.monitoring = new SpillwayMonitoring(this, 'Monitoring', {
      serviceName: settings.serviceName,
      syncFunction: functions.sync,
      syncTimeout: specs.sync.timeout,
      writeFunction: functions.write,
      readFunction: functions.read,
      functions,
      writerFunctions: WRITER_FUNCTIONS.map((name) => functions[name]),
      cacheClusterIds: [],
      backlogLimit: f.engine.backlogLimit,
      oldestPendingMinutes: settings.alarms.oldestPendingMinutes,
      alarmEmail: settings.alarms.email,
      // KMS is not among LocalStack's free services.
      encryptTopic: false,
    });

    for (const [name, fn] of Object.entries(functions)) {
      new CfnOutput(this, `${pascal(name)}FunctionName`, { value: fn.functionName });
    }
  }
}
