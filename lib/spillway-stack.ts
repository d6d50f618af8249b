import { Aws, CfnOutput, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { settingsEnvironment } from '../lambdas/settings.js';
import { SpillwayCache } from './cache.js';
import type { FunctionSettings, SpillwaySettings } from './config.js';
import { SpillwayDatabase } from './database.js';
import { SpillwayDatabaseUser } from './database-user.js';
import { copySqlFiles, SpillwayFunction } from './function.js';
import { MIGRATIONS_DIR, MIGRATIONS_SOURCE, SpillwayMigrations } from './migrations.js';
import { SpillwayMonitoring } from './monitoring.js';
import { SpillwayNetwork } from './network.js';
import { type SpillwayCore, SpillwayPipelineFunction } from './pipeline-function.js';
import { SyncSchedule } from './schedule.js';

/** The deployed functions, by their logical name (DESIGN.md's contract). */
export const FUNCTION_NAMES = [
  'write',
  'read',
  'sync',
  'health',
  'migrate',
  'admin',
  'process-document',
  'extract-entities',
] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** The functions that reach the database; every other one gets the buffer only. */
export const DATABASE_FUNCTIONS: readonly FunctionName[] = [
  'read',
  'sync',
  'health',
  'migrate',
  'admin',
];

/** What differs between the functions, whatever the shape. */
export interface FunctionSpec {
  readonly description: string;
  readonly timeout: Duration;
  readonly memorySize?: number;
  readonly reservedConcurrentExecutions?: number;
  readonly environment?: Record<string, string>;
  readonly afterBundling?: (inputDir: string, outputDir: string) => string[];
}

/** Every function's description, timeout and extras, from the settings. */
export function functionSpecs(f: FunctionSettings): Record<FunctionName, FunctionSpec> {
  return {
    write: { description: 'Spillway: buffer a changeset', timeout: Duration.seconds(15) },
    // read overlays pending changes on the synced row, so it needs the database as well as Redis (G4).
    read: {
      description: 'Spillway: read the latest acknowledged state of a key',
      timeout: Duration.seconds(15),
    },
    // Reserved concurrency 1: the drainer holds a Redis lease, so a second invocation could only
    // wait for it; 4-minute timeout: one drain spans several ticks and idles for new work in between.
    sync: {
      description: 'Spillway: drain the buffer into the database',
      timeout: Duration.seconds(f.syncTimeoutSeconds),
      memorySize: f.syncMemoryMb,
      reservedConcurrentExecutions: 1,
    },
    health: {
      description: 'Spillway: health of the buffer, the database and the drain',
      timeout: Duration.seconds(20),
    },
    migrate: {
      description: 'Spillway: apply SQL migrations',
      timeout: Duration.minutes(5),
      environment: { MIGRATIONS_DIR },
      afterBundling: copySqlFiles(MIGRATIONS_SOURCE),
    },
    admin: {
      description: 'Spillway: dead letters (list, replay, purge) and operator actions',
      timeout: Duration.seconds(60),
    },
    'process-document': {
      description: 'Spillway example pipeline step: register a document and its chunks',
      timeout: Duration.seconds(60),
    },
    'extract-entities': {
      description: 'Spillway example pipeline step: extract entities and relationships from chunks',
      timeout: Duration.seconds(60),
    },
  };
}

export interface SpillwayStackProps extends StackProps {
  readonly settings: SpillwaySettings;
  /** Where the handler files are, relative to the project root. @default 'lambdas/handlers' */
  readonly handlersDirectory?: string;
}

/**
 * Spillway in one stack: network, cache, database behind RDS Proxy, the functions, the sync
 * schedule, migrations on deploy and monitoring.
 */
export class SpillwayStack extends Stack {
  readonly settings: SpillwaySettings;
  readonly network: SpillwayNetwork;
  readonly cache: SpillwayCache;
  readonly database: SpillwayDatabase;
  /** @default - undefined when `bootstrapDbUser` is false */
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
    this.database = new SpillwayDatabase(this, 'Database', {
      network: this.network,
      settings: settings.database,
      dbUser: settings.dbUser,
      logRetention,
    });

    const f = settings.functions;
    const environment = settingsEnvironment(f.engine);
    this.core = {
      network: this.network,
      cache: this.cache,
      serviceName,
      logRetention,
      environment,
    };

    const coreFunction = (name: FunctionName, options: FunctionSpec): SpillwayFunction => {
      const reachesDatabase = DATABASE_FUNCTIONS.includes(name);
      const fn = new SpillwayFunction(this, pascal(name), {
        entry: `${handlers}/${name}.ts`,
        serviceName,
        logRetention,
        placement: {
          vpc: this.network.vpc,
          subnets: this.network.functionSubnets,
          securityGroups: reachesDatabase
            ? [this.network.functionsSecurityGroup, this.network.databaseClientsSecurityGroup]
            : [this.network.functionsSecurityGroup],
        },
        ...options,
        environment: { ...environment, ...options.environment },
      });
      this.cache.grantAccess(fn);
      if (reachesDatabase) this.database.grantAccess(fn);
      return fn;
    };

    const pipelineStep = (name: FunctionName, description: string): SpillwayFunction =>
      new SpillwayPipelineFunction(this, pascal(name), {
        spillway: this.core,
        entry: `${handlers}/${name}.ts`,
        description,
      });

    const specs = functionSpecs(f);
    this.functions = {
      write: coreFunction('write', specs.write),
      read: coreFunction('read', specs.read),
      sync: coreFunction('sync', specs.sync),
      health: coreFunction('health', specs.health),
      migrate: coreFunction('migrate', specs.migrate),
      admin: coreFunction('admin', specs.admin),
      'process-document': pipelineStep('process-document', specs['process-document'].description),
      'extract-entities': pipelineStep('extract-entities', specs['extract-entities'].description),
    };

    this.databaseUser = settings.bootstrapDbUser
      ? new SpillwayDatabaseUser(this, 'DatabaseUser', {
          network: this.network,
          database: this.database,
          schema: settings.dbSchema,
          serviceName,
          logRetention,
        })
      : undefined;

    if (this.databaseUser && settings.database.kind === 'new') {
      // A new proxy target registers as soon as its target group exists; with the role not there
      // yet, IAM authentication to it fails until the proxy retries. Register it after the role.
      this.database.proxyTargetGroup.node.addDependency(this.databaseUser.resource);
    }

    this.migrations = new SpillwayMigrations(this, 'Migrations', {
      migrateFunction: this.functions.migrate,
      logRetention,
    });
    // migrate signs in through the proxy as the bootstrapped user; both must be there first.
    this.migrations.resource.node.addDependency(this.database.proxy);
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
      writerFunctions: [
        this.functions.write,
        this.functions['process-document'],
        this.functions['extract-entities'],
      ],
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
    new CfnOutput(this, 'ProxyEndpoint', {
      description: 'RDS Proxy endpoint (TLS and IAM authentication required, port 5432)',
      value: this.database.proxy.endpoint,
    });
    new CfnOutput(this, 'DatabaseMasterSecretArn', {
      description:
        "The database master user's secret: read only by the user bootstrap; break-glass access",
      value: this.database.masterSecret.secretArn,
    });
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
