import { Aws, CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { settingsEnvironment } from '../lambdas/core/settings.js';
import {
  DATABASE_FUNCTIONS,
  FUNCTION_NAMES,
  FUNCTIONS,
  type FunctionManifestEntry,
  type FunctionName,
  WRITER_FUNCTIONS,
} from '../lambdas/functions.js';
import { SpillwayAuroraDatabase } from './aurora-database.js';
import { type BundleFiles, MIGRATION_FILES } from './bundle.js';
import { SpillwayCache } from './cache.js';
import type { FunctionSettings, SpillwaySettings } from './config.js';
import { SpillwayDatabase } from './database.js';
import { SpillwayDatabaseUser } from './database-user.js';
import { SpillwayFunction } from './function.js';
import { MIGRATIONS_DIR, SpillwayMigrations } from './migrations.js';
import { SpillwayMonitoring } from './monitoring.js';
import { SpillwayNetwork } from './network.js';
import { type SpillwayCore, SpillwayPipelineFunction } from './pipeline-function.js';
import { SyncSchedule } from './schedule.js';

export { DATABASE_FUNCTIONS, FUNCTION_NAMES, type FunctionName };

/** What the CDK app gives a function, from the manifest (`lambdas/functions.ts`) and the settings. */
export interface FunctionSpec {
  readonly description: string;
  readonly timeout: Duration;
  readonly memorySize?: number;
  readonly reservedConcurrentExecutions?: number;
  readonly environment?: Record<string, string>;
  readonly bundleFiles?: readonly BundleFiles[];
}

/** What only the CDK app adds to some functions. */
function deploymentExtras(
  f: FunctionSettings,
): Partial<Record<FunctionName, Partial<FunctionSpec>>> {
  return {
    // Reserved concurrency 1: the drainer holds a Redis lease, so a second invocation could only
    // wait for it; a long timeout: one drain spans several ticks and idles for new work in between.
    sync: {
      timeout: Duration.seconds(f.syncTimeoutSeconds),
      memorySize: f.syncMemoryMb,
      reservedConcurrentExecutions: 1,
    },
    migrate: { environment: { MIGRATIONS_DIR }, bundleFiles: [MIGRATION_FILES] },
  };
}

/** Every function's description, timeout and extras: the manifest's, then the settings'. */
export function functionSpecs(f: FunctionSettings): Record<FunctionName, FunctionSpec> {
  const extras = deploymentExtras(f);
  const specs = {} as Record<FunctionName, FunctionSpec>;
  for (const name of FUNCTION_NAMES) {
    const entry: FunctionManifestEntry = FUNCTIONS[name];
    specs[name] = {
      description: entry.description,
      timeout: Duration.seconds(entry.timeoutSeconds),
      ...(entry.memoryMb !== undefined ? { memorySize: entry.memoryMb } : {}),
      ...extras[name],
    };
  }
  return specs;
}

export interface SpillwayStackProps extends StackProps {
  readonly settings: SpillwaySettings;
  /** Where the manifest's handler files are, relative to the project root. @default 'lambdas/handlers' */
  readonly handlersDirectory?: string;
}

/**
 * Spillway in one stack: network, cache, database (behind RDS Proxy, or Aurora through the RDS
 * Data API), the functions (from the
 * manifest, `lambdas/functions.ts`), the sync schedule, migrations on deploy and monitoring. What
 * it deploys and why: docs/design.md and docs/deploy.md.
 */
export class SpillwayStack extends Stack {
  readonly settings: SpillwaySettings;
  readonly network: SpillwayNetwork;
  readonly cache: SpillwayCache;
  /** RDS Proxy in front of PostgreSQL (`new`, `existing`), or the Data API (`*-aurora`). */
  readonly database: SpillwayDatabase | SpillwayAuroraDatabase;
  /** @default - undefined when `bootstrapDbUser` is false, and in the Aurora shapes */
  readonly databaseUser: SpillwayDatabaseUser | undefined;
  readonly functions: Readonly<Record<FunctionName, SpillwayFunction>>;
  readonly schedule: SyncSchedule;
  readonly migrations: SpillwayMigrations;
  readonly monitoring: SpillwayMonitoring;
  /** A managed policy that lets a pipeline outside AWS invoke `write`, `read` and `health`. */
  readonly pipelineClientPolicy: iam.ManagedPolicy;
  /** What `SpillwayPipelineFunction` needs to add a pipeline step of your own. */
  readonly core: SpillwayCore;

  constructor(scope: Construct, id: string, props: SpillwayStackProps) {
    super(scope, id, props);
    const settings = props.settings;
    this.settings = settings;
    const handlers = props.handlersDirectory ?? 'lambdas/handlers';
    const logRetention = settings.functions.logRetentionDays as logs.RetentionDays;
    const serviceName = settings.serviceName;

    this.network = new SpillwayNetwork(this, 'Network', {
      settings: settings.network,
      logRetention,
    });
    this.cache = new SpillwayCache(this, 'Cache', {
      network: this.network,
      settings: settings.cache,
    });
    const aurora =
      settings.database.kind === 'new-aurora' || settings.database.kind === 'existing-aurora';
    const database = aurora
      ? new SpillwayAuroraDatabase(this, 'Database', {
          network: this.network,
          settings: settings.database,
          logRetention,
        })
      : new SpillwayDatabase(this, 'Database', {
          network: this.network,
          settings: settings.database,
          dbUser: settings.dbUser,
          logRetention,
        });
    this.database = database;

    const f = settings.functions;
    const environment = settingsEnvironment(f.engine);
    this.core = {
      network: this.network,
      cache: this.cache,
      serviceName,
      logRetention,
      environment,
    };

    const engineFunction = (name: FunctionName, options: FunctionSpec): SpillwayFunction => {
      const reachesDatabase = FUNCTIONS[name].reachesDatabase;
      const fn = new SpillwayFunction(this, pascal(name), {
        entry: `${handlers}/${FUNCTIONS[name].handler}`,
        serviceName,
        logRetention,
        placement: {
          vpc: this.network.vpc,
          subnets: this.network.functionSubnets,
          securityGroups: reachesDatabase
            ? [this.network.functionsSecurityGroup, this.network.databaseClientsSecurityGroup]
            : [this.network.functionsSecurityGroup],
        },
        paramsAndSecrets: this.cache.secretsExtension,
        bundledSink: reachesDatabase ? (aurora ? 'data-api' : 'postgres') : undefined,
        ...options,
        environment: { ...environment, ...options.environment },
      });
      this.cache.grantAccess(fn);
      if (reachesDatabase) this.database.grantAccess(fn);
      return fn;
    };

    // The example steps are deployed the way a pipeline step of your own is.
    const exampleStep = (name: FunctionName, spec: FunctionSpec): SpillwayFunction =>
      new SpillwayPipelineFunction(this, pascal(name), {
        spillway: this.core,
        entry: `${handlers}/${FUNCTIONS[name].handler}`,
        description: spec.description,
        timeout: spec.timeout,
      });

    const specs = functionSpecs(f);
    const functions = {} as Record<FunctionName, SpillwayFunction>;
    for (const name of FUNCTION_NAMES) {
      functions[name] = FUNCTIONS[name].exampleStep
        ? exampleStep(name, specs[name])
        : engineFunction(name, specs[name]);
    }
    this.functions = functions;

    // The Aurora shapes sign in with the cluster's secret: there is no IAM user to create.
    this.databaseUser =
      settings.bootstrapDbUser && database instanceof SpillwayDatabase
        ? new SpillwayDatabaseUser(this, 'DatabaseUser', {
            network: this.network,
            database,
            schema: settings.dbSchema,
            serviceName,
            logRetention,
          })
        : undefined;

    if (
      this.databaseUser &&
      settings.database.kind === 'new' &&
      database instanceof SpillwayDatabase
    ) {
      // A new proxy target registers as soon as its target group exists; with the role not there
      // yet, IAM authentication to it fails until the proxy retries. Register it after the role.
      database.proxyTargetGroup.node.addDependency(this.databaseUser.resource);
    }

    this.migrations = new SpillwayMigrations(this, 'Migrations', {
      migrateFunction: this.functions.migrate,
      logRetention,
    });
    if (database instanceof SpillwayDatabase) {
      // migrate signs in through the proxy as the bootstrapped user; both must be there first.
      this.migrations.resource.node.addDependency(database.proxy);
    } else {
      // migrate calls the Data API through the endpoint; the cluster's writer must be up.
      this.migrations.resource.node.addDependency(...database.dataApiDependencies);
    }
    if (this.databaseUser) this.migrations.resource.node.addDependency(this.databaseUser.resource);

    this.schedule = new SyncSchedule(this, 'SyncSchedule', { syncFunction: this.functions.sync });
    // Draining before the tables exist would only fail.
    this.schedule.node.addDependency(this.migrations.resource);

    this.monitoring = new SpillwayMonitoring(this, 'Monitoring', {
      serviceName,
      syncFunction: this.functions.sync,
      syncTimeout: Duration.seconds(f.syncTimeoutSeconds),
      writeFunction: this.functions.write,
      readFunction: this.functions.read,
      functions: this.functions,
      writerFunctions: WRITER_FUNCTIONS.map((name) => this.functions[name]),
      cacheClusterIds: this.cache.cacheClusterIds,
      backlogLimit: f.engine.backlogLimit,
      oldestPendingMinutes: settings.alarms.oldestPendingMinutes,
      alarmEmail: settings.alarms.email,
    });

    this.pipelineClientPolicy = new iam.ManagedPolicy(this, 'PipelineClientPolicy', {
      description: 'Lets a pipeline invoke Spillway write, read and health',
      statements: [
        new iam.PolicyStatement({
          actions: ['lambda:InvokeFunction'],
          resources: [
            this.functions.write.functionArn,
            this.functions.read.functionArn,
            this.functions.health.functionArn,
          ],
        }),
      ],
    });

    this.addOutputs();
  }

  private addOutputs(): void {
    for (const [name, fn] of Object.entries(this.functions) as [FunctionName, lambda.IFunction][]) {
      new CfnOutput(this, `${pascal(name)}FunctionName`, {
        description: `${name} function name`,
        value: fn.functionName,
      });
      new CfnOutput(this, `${pascal(name)}FunctionArn`, {
        description: `${name} function ARN`,
        value: fn.functionArn,
      });
    }
    new CfnOutput(this, 'RedisEndpoint', {
      description: 'Cache primary endpoint (TLS, AUTH token in RedisAuthSecretArn)',
      value: `${this.cache.endpointAddress}:${this.cache.port}`,
    });
    new CfnOutput(this, 'RedisAuthSecretArn', {
      description: 'Secrets Manager secret holding the cache AUTH token',
      value: this.cache.authTokenSecret.secretArn,
    });
    if (this.database instanceof SpillwayDatabase) {
      new CfnOutput(this, 'ProxyEndpoint', {
        description: 'RDS Proxy endpoint (TLS and IAM authentication required, port 5432)',
        value: this.database.proxy.endpoint,
      });
      new CfnOutput(this, 'DatabaseMasterSecretArn', {
        description:
          "The database master user's secret: read only by the user bootstrap; break-glass access",
        value: this.database.masterSecret.secretArn,
      });
    } else {
      new CfnOutput(this, 'DatabaseClusterArn', {
        description: 'Aurora cluster the functions reach through the RDS Data API',
        value: this.database.clusterArn,
      });
      new CfnOutput(this, 'DatabaseSecretArn', {
        description: 'Secret the Data API signs in with (the functions may read it, nothing else)',
        value: this.database.secretArn,
      });
    }
    new CfnOutput(this, 'PipelineClientPolicyArn', {
      description: 'Managed policy to attach to a pipeline that invokes write, read and health',
      value: this.pipelineClientPolicy.managedPolicyArn,
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      description: 'SNS topic of the Spillway alarms',
      value: this.monitoring.topic.topicArn,
    });
    new CfnOutput(this, 'DashboardUrl', {
      description: 'CloudWatch dashboard',
      value: `https://${Aws.REGION}.console.aws.amazon.com/cloudwatch/home?region=${Aws.REGION}#dashboards:name=${this.monitoring.dashboard.dashboardName}`,
    });
  }
}

/** `process-document` → `ProcessDocument`. */
export function pascal(name: string): string {
  return name
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
}
