import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AssetHashType, AssetStaging, Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { METRICS_NAMESPACE } from '../lambdas/core/metric-names.js';
import { DEFAULT_MEMORY_MB, nodeOptions } from '../lambdas/functions.js';
import {
  type BundleFiles,
  type BundleRequest,
  LUA_SCRIPTS,
  LUA_SOURCE,
  PROJECT_ROOT,
} from './bundle.js';
import type { BundledSink } from './bundle-options.js';

export { LUA_SOURCE, PROJECT_ROOT };

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
  /** Files the function reads, copied beside its bundle (its Lua scripts always are). @default - none */
  readonly bundleFiles?: readonly BundleFiles[];
}

/**
 * The one wrapper around `lambda.Function` for Spillway's functions, with the project's defaults:
 * its code bundled by `buildBundle` (`bundle.ts`: esbuild with `BUNDLE_OPTIONS`, ESM with a
 * `require` shim, minified keeping names, source maps, what no function runs left out), with the
 * buffer's Lua scripts beside it; handler `index.handler`, ARM64, the newest Node.js runtime, and
 * a log group of bounded retention.
 *
 * Not `NodejsFunction`, which runs esbuild's command line and so cannot take the plugin that
 * leaves files of ioredis and pg out (issue 9: `read` under 300 KB). What it did that matters is
 * done here the same way: the code is an asset of the project root bundled locally, hashed by its
 * output (so a change of code, options or dependencies changes the asset), and for the Node.js 18+
 * runtimes it sets no environment variable of its own (`AWS_NODEJS_CONNECTION_REUSE_ENABLED` is
 * for the AWS SDK v2 only).
 */
export class SpillwayFunction extends lambda.Function {
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
    const memorySize = props.memorySize ?? DEFAULT_MEMORY_MB;
    super(scope, id, {
      code: bundledCode({
        entry: props.entry,
        sink: props.bundledSink,
        // Every function reaches the buffer, whose Lua scripts are read from `lua/` beside the bundle.
        files: [LUA_SCRIPTS, ...(props.bundleFiles ?? [])],
      }),
      // The `handler` export of the bundle's module (BUNDLE_MODULE, index.mjs).
      handler: 'index.handler',
      description: props.description,
      runtime: NODE_RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      timeout: props.timeout ?? Duration.seconds(30),
      memorySize,
      reservedConcurrentExecutions: props.reservedConcurrentExecutions,
      logGroup,
      role,
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

/** The child process that builds a bundle (`buildBundle`) for `cdk synth`. */
const BUNDLE_CLI = 'lib/bundle-cli.ts';

/**
 * A function's code: the project root as an asset, bundled by `buildBundle` into the directory
 * CDK stages, and hashed by what the bundle holds (as NodejsFunction's assets are), so the asset
 * changes exactly when the bundle does. The build runs locally; CDK's Docker fallback never runs,
 * because `tryBundle` either builds or throws (the image is named only because CDK requires one).
 */
function bundledCode(request: Omit<BundleRequest, 'outdir'>): lambda.AssetCode {
  return lambda.Code.fromAsset(PROJECT_ROOT, {
    assetHashType: AssetHashType.OUTPUT,
    bundling: {
      image: NODE_RUNTIME.bundlingImage,
      // What the build runs, as CDK would in Docker. CDK also keys its cache of staged assets by
      // these options (functions are dropped), so each function's must differ: the request does.
      command: bundleCommand({ ...request, outdir: AssetStaging.BUNDLING_OUTPUT_DIR }),
      local: {
        tryBundle(outputDir) {
          bundleSynchronously({ ...request, outdir: outputDir });
          return true;
        },
      },
    },
  });
}

function bundleCommand(request: BundleRequest): string[] {
  return ['node', '--import', 'tsx', BUNDLE_CLI, JSON.stringify(request)];
}

/**
 * Runs `buildBundle` in a child process and waits for it: CDK's local bundling is synchronous,
 * esbuild's plugins run only in its asynchronous API. esbuild's warnings go to stderr.
 */
function bundleSynchronously(request: BundleRequest): void {
  const [, ...args] = bundleCommand(request);
  const child = spawnSync(process.execPath, args, {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    encoding: 'utf8',
  });
  const output = `${child.stdout ?? ''}${child.stderr ?? ''}`.trim();
  if (child.status !== 0) {
    throw new Error(
      `bundling ${request.entry} failed (${child.error?.message ?? `exit ${child.status ?? child.signal}`}):\n${output}`,
    );
  }
  if (output !== '') process.stderr.write(`${output}\n`);
}
