import { Duration } from 'aws-cdk-lib';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import type { SpillwayCache } from './cache.js';
import { SpillwayFunction } from './function.js';
import type { SpillwayNetwork } from './network.js';

/** What a function needs from a Spillway deployment to write to its buffer. */
export interface SpillwayCore {
  readonly network: SpillwayNetwork;
  readonly cache: SpillwayCache;
  readonly serviceName: string;
  readonly logRetention: logs.RetentionDays;
  /** The engine settings every function reads (`SPILLWAY_PREFIX`, `BACKLOG_LIMIT`, ...). */
  readonly environment: Readonly<Record<string, string>>;
}

export interface SpillwayPipelineFunctionProps {
  /** The deployment to write to: `SpillwayStack.core`. */
  readonly spillway: SpillwayCore;
  /** The handler file, relative to the project root; it exports `handler`. */
  readonly entry: string;
  readonly description?: string;
  /** @default Duration.seconds(60) */
  readonly timeout?: Duration;
  /** @default 512 */
  readonly memorySize?: number;
  /** Extra variables for the step itself. @default - none */
  readonly environment?: Readonly<Record<string, string>>;
}

/**
 * A pipeline step of your own, in one line: it runs in Spillway's VPC with the functions'
 * security group, may read the cache's AUTH token, and gets every variable the Spillway client
 * (`lambdas/spillway.ts`, bundled from your imports) needs. It gets no database access: pipeline
 * steps write through the buffer, and `sync` alone drains it.
 *
 * @example
 * new SpillwayPipelineFunction(stack, 'ClassifyDocument', {
 *   spillway: stack.core,
 *   entry: 'pipeline/classify-document.ts',
 * });
 */
export class SpillwayPipelineFunction extends SpillwayFunction {
  constructor(scope: Construct, id: string, props: SpillwayPipelineFunctionProps) {
    const { spillway } = props;
    super(scope, id, {
      entry: props.entry,
      description: props.description,
      serviceName: spillway.serviceName,
      logRetention: spillway.logRetention,
      placement: {
        vpc: spillway.network.vpc,
        subnets: spillway.network.functionSubnets,
        securityGroups: [spillway.network.functionsSecurityGroup],
      },
      timeout: props.timeout ?? Duration.seconds(60),
      memorySize: props.memorySize,
      environment: { ...spillway.environment, ...props.environment },
      paramsAndSecrets: spillway.cache.secretsExtension,
    });
    spillway.cache.grantAccess(this);
  }
}
