import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { METRICS_NAMESPACE } from '../lambdas/core/metric-names.js';
import { DEFAULT_MEMORY_MB, nodeOptions } from '../lambdas/functions.js';
import { BUNDLE_OPTIONS, type BundledSink, sinkDefine } from './bundle-options.js';

/** The repository root: entries, the lock file and the migrations are found from here. */
export const PROJECT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The newest Node.js runtime aws-cdk-lib knows; `BUNDLE_OPTIONS` targets the same version. */
export const NODE_RUNTIME = lambda.Runtime.NODEJS_24_X;

/** Where a function runs inside the VPC. */
export interface FunctionPlacement {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly securityGroups: readonly ec2.ISecurityGroup[];
}

export interface SpillwayFunctionProps {
  /** The handler file, relative to the project root; it exports `handler`. */
  readonly entry: string;
  readonly description?: string;
  /** `POWERTOOLS_SERVICE_NAME`: the `service` dimension of the function's metrics. */
  readonly serviceName: string;
  readonly logRetention: logs.RetentionDays;
  /**
   * VPC placement. Every Spillway function runs in the VPC; only deploy-time helpers that call
   * AWS APIs the VPC has no endpoint for run outside it.
   */
  readonly placement: FunctionPlacement | 'outside-vpc';
  /** @default Duration.seconds(30) */
  readonly timeout?: Duration;
  /** @default DEFAULT_MEMORY_MB; V8's heap is bounded by it too (`nodeOptions`) */
  readonly memorySize?: number;
  /** @default - no reservation */
  readonly reservedConcurrentExecutions?: number;
  /** @default - none besides the common variables */
  readonly environment?: Readonly<Record<string, string>>;
  /**
   * The sink the function opens, if it reaches the database: its bundle then leaves the other
   * sink's client out (`sinkDefine`). @default - both sinks' clients are bundled
   */
  readonly bundledSink?: BundledSink;
  /**
   * The AWS Parameters and Secrets Lambda Extension, for a function that reads a secret through
   * it: `SpillwayCache.secretsExtension` for every function that reaches the cache.
   * @default - none
   */
  readonly paramsAndSecrets?: lambda.ParamsAndSecretsLayerVersion;
  /**
   * Shell commands run after esbuild, with the project root and the bundle directory, to add
   * files to the bundle. @default - none
   */
  readonly afterBundling?: (inputDir: string, outputDir: string) => string[];
}

/**
 * The one wrapper around `NodejsFunction`, with the project's defaults: esbuild with
 * `BUNDLE_OPTIONS` (ESM with a `require` shim, minified keeping names, source maps), ARM64, the
 * newest Node.js runtime, and a log group of bounded retention.
 */
export class SpillwayFunction extends nodejs.NodejsFunction {
  /** The function's log group. */
  readonly logGroupResource: logs.LogGroup;
  /**
   * The execution role: writes to its own log group only (not the managed
   * AWSLambdaBasicExecutionRole, which may write to every log group), manages the function's VPC
   * network interfaces when it has any, and holds what grants add.
   */
  readonly executionRole: iam.Role;
  /**
   * The EC2 network-interface statement of a VPC function, in a policy of its own so that its
   * `Resource: *` can be acknowledged (cdk-nag IAM5) without acknowledging the whole role.
   * @default - undefined outside a VPC
   */
  readonly vpcAccessPolicy: iam.Policy | undefined;
  readonly inVpc: boolean;
  /** The Parameters and Secrets extension the function carries, if any. */
  readonly paramsAndSecrets: lambda.ParamsAndSecretsLayerVersion | undefined;

  constructor(scope: Construct, id: string, props: SpillwayFunctionProps) {
    const entry = join(PROJECT_ROOT, props.entry);
    if (!existsSync(entry)) {
      throw new Error(
        `SpillwayFunction ${id}: handler file ${props.entry} does not exist (looked in ${PROJECT_ROOT})`,
      );
    }
    // A sibling, because a subclass cannot create children before super().
    const logGroup = new logs.LogGroup(scope, `${id}Logs`, {
      retention: props.logRetention,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const inVpc = props.placement !== 'outside-vpc' ? props.placement : undefined;
    const role = new iam.Role(scope, `${id}Role`, {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `Execution role of ${scope.node.path}/${id}`,
    });
    role.addToPolicy(
      new iam.PolicyStatement({
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn],
      }),
    );
    const vpcAccessPolicy = inVpc
      ? new iam.Policy(scope, `${id}VpcAccess`, {
          roles: [role],
          statements: [
            // What AWSLambdaVPCAccessExecutionRole grants; these EC2 actions take no narrower resource.
            new iam.PolicyStatement({
              actions: [
                'ec2:CreateNetworkInterface',
                'ec2:DescribeNetworkInterfaces',
                'ec2:DescribeSubnets',
                'ec2:DeleteNetworkInterface',
                'ec2:AssignPrivateIpAddresses',
                'ec2:UnassignPrivateIpAddresses',
              ],
              resources: ['*'],
            }),
          ],
        })
      : undefined;
    // Every function reaches the buffer, whose Lua scripts are read from `lua/` beside the bundle.
    const afterBundling = (inputDir: string, outputDir: string): string[] => [
      ...copyLuaScripts(inputDir, outputDir),
      ...(props.afterBundling?.(inputDir, outputDir) ?? []),
    ];

    const memorySize = props.memorySize ?? DEFAULT_MEMORY_MB;
    super(scope, id, {
      entry,
      handler: 'handler',
      description: props.description,
      runtime: NODE_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      timeout: props.timeout ?? Duration.seconds(30),
      memorySize,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      logGroup,
      role,
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: join(PROJECT_ROOT, 'package-lock.json'),
      vpc: inVpc?.vpc,
      vpcSubnets: inVpc?.subnets,
      securityGroups: inVpc ? [...inVpc.securityGroups] : undefined,
      paramsAndSecrets: props.paramsAndSecrets,
      environment: {
        NODE_OPTIONS: nodeOptions(memorySize),
        POWERTOOLS_SERVICE_NAME: props.serviceName,
        POWERTOOLS_METRICS_NAMESPACE: METRICS_NAMESPACE,
        ...props.environment,
      },
      bundling: {
        // BUNDLE_OPTIONS in NodejsFunction's terms; it adds --bundle and --platform=node itself.
        format: BUNDLE_OPTIONS.format as nodejs.OutputFormat,
        target: BUNDLE_OPTIONS.target,
        mainFields: BUNDLE_OPTIONS.mainFields,
        banner: BUNDLE_OPTIONS.banner.js,
        minify: BUNDLE_OPTIONS.minify,
        keepNames: BUNDLE_OPTIONS.keepNames,
        sourceMap: BUNDLE_OPTIONS.sourcemap,
        sourcesContent: BUNDLE_OPTIONS.sourcesContent,
        externalModules: BUNDLE_OPTIONS.external,
        esbuildArgs: {
          '--alias': Object.entries(BUNDLE_OPTIONS.alias).map(([from, to]) => `${from}=${to}`),
        },
        define: props.bundledSink === undefined ? undefined : sinkDefine(props.bundledSink),
        commandHooks: {
          beforeBundling: () => [],
          beforeInstall: () => [],
          afterBundling,
        },
      },
    });
    this.logGroupResource = logGroup;
    this.executionRole = role;
    this.vpcAccessPolicy = vpcAccessPolicy;
    this.inVpc = inVpc !== undefined;
    this.paramsAndSecrets = props.paramsAndSecrets;
    // Lambda checks at creation that the role may create the network interfaces; CDK orders the
    // role's default policy before the function, but not a separate policy.
    if (vpcAccessPolicy) this.node.addDependency(vpcAccessPolicy);
  }
}

/**
 * The shell commands that copy a directory's `*.sql` files into `<bundle>/migrations`.
 * @param from the directory, relative to the project root
 */
export function copySqlFiles(from: string): (inputDir: string, outputDir: string) => string[] {
  return (inputDir, outputDir) => [
    `mkdir -p "${outputDir}/migrations"`,
    `cp "${inputDir}/${from}"/*.sql "${outputDir}/migrations/"`,
  ];
}

/** Where the buffer's Lua scripts live, relative to the project root. */
export const LUA_SOURCE = 'lambdas/io/lua';

/** The shell commands that copy the buffer's Lua scripts into `<bundle>/lua`. */
function copyLuaScripts(inputDir: string, outputDir: string): string[] {
  return [
    `mkdir -p "${outputDir}/lua"`,
    `cp "${inputDir}/${LUA_SOURCE}"/*.lua "${outputDir}/lua/"`,
  ];
}
