import { Duration, Names, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { CacheSettings } from './config.js';
import type { SpillwayFunction } from './function.js';
import type { SpillwayNetwork } from './network.js';

export interface SpillwayCacheProps {
  readonly network: SpillwayNetwork;
  readonly settings: CacheSettings;
}

/**
 * The buffer's home: an ElastiCache replication group (Valkey by default, Redis OSS selectable).
 *
 * Node-based, not Serverless, because Serverless fixes `maxmemory-policy` at `volatile-lru` and
 * Spillway must never lose a buffered change to eviction (G5): the parameter group sets
 * `noeviction`, so a full cache refuses writes (a visible error) instead of dropping them.
 * Multi-AZ with automatic failover and at least one replica; TLS required; encrypted at rest;
 * AUTH token generated into Secrets Manager; non-default port; only the functions' security
 * group is admitted.
 */
export class SpillwayCache extends Construct {
  readonly replicationGroup: elasticache.CfnReplicationGroup;
  readonly securityGroup: ec2.SecurityGroup;
  /** The AUTH token, a plain string (no JSON). */
  readonly authTokenSecret: secretsmanager.Secret;
  /**
   * The AWS Parameters and Secrets Lambda Extension, through which the functions read the AUTH
   * token (`lambdas/io/redis.ts`) with a plain HTTP request: no AWS SDK in their bundles. Give it
   * to every function that reaches the cache (`SpillwayFunctionProps.paramsAndSecrets`);
   * `grantAccess` checks. Its cache is off: a function reads the token once per container and
   * again only when Redis refuses it after a rotation, and that re-read must not be answered with
   * the old token (the extension would keep it for up to 5 minutes). Its own timeout for Secrets
   * Manager (2 s) is shorter than the functions' wait for it (`SECRET_READ_TIMEOUT_MS`, 3 s).
   */
  readonly secretsExtension: lambda.ParamsAndSecretsLayerVersion =
    lambda.ParamsAndSecretsLayerVersion.fromVersion(lambda.ParamsAndSecretsVersions.V1_0_103, {
      // Off, and a TTL of 0 (no caching) says so to a reader of the template too.
      cacheEnabled: false,
      secretsManagerTtl: Duration.seconds(0),
      secretsManagerTimeout: Duration.seconds(2),
      logLevel: lambda.ParamsAndSecretsLogLevel.WARN,
    });
  /** Primary endpoint host name. */
  readonly endpointAddress: string;
  readonly port: number;
  /** The node ids (`<group>-001`, ...), for per-node CloudWatch metrics. */
  readonly cacheClusterIds: readonly string[];

  private readonly clientSecurityGroup: ec2.ISecurityGroup;
  private readonly network: SpillwayNetwork;

  constructor(scope: Construct, id: string, props: SpillwayCacheProps) {
    super(scope, id);
    const { settings, network } = props;
    this.network = network;
    this.clientSecurityGroup = network.functionsSecurityGroup;
    this.port = settings.port;

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: network.vpc,
      description: 'Spillway cache: admits only the Spillway functions',
      allowAllOutbound: false,
    });
    this.securityGroup.connections.allowFrom(
      network.functionsSecurityGroup,
      ec2.Port.tcp(settings.port),
      'Spillway functions to the cache',
    );

    this.authTokenSecret = new secretsmanager.Secret(this, 'AuthToken', {
      description: 'Spillway cache AUTH token (plain string)',
      generateSecretString: {
        // ElastiCache accepts 16-128 printable characters without @, " or /; letters and digits only keep it simple.
        passwordLength: 64,
        excludePunctuation: true,
      },
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const parameterGroup = new elasticache.CfnParameterGroup(this, 'Parameters', {
      cacheParameterGroupFamily: settings.parameterGroupFamily,
      description: 'Spillway: never evict a buffered change',
      properties: { 'maxmemory-policy': 'noeviction' },
    });

    const subnetGroup = new elasticache.CfnSubnetGroup(this, 'Subnets', {
      description: 'Spillway cache subnets',
      subnetIds: network.vpc.selectSubnets(network.dataSubnets).subnetIds,
    });

    // A fixed id keeps node ids (and so the per-node alarms) predictable; unique per stack path.
    const replicationGroupId = Names.uniqueResourceName(this, { maxLength: 35 }).toLowerCase();
    this.replicationGroup = new elasticache.CfnReplicationGroup(this, 'ReplicationGroup', {
      replicationGroupId,
      replicationGroupDescription: 'Spillway buffer',
      engine: settings.engine,
      engineVersion: settings.engineVersion,
      cacheNodeType: settings.nodeType,
      // Cluster mode disabled: one shard, so multi-key Lua scripts need no hash tags.
      numCacheClusters: 1 + settings.replicas,
      automaticFailoverEnabled: true,
      multiAzEnabled: true,
      port: settings.port,
      // TLS only. TransitEncryptionMode is left out on purpose: AWS documents it for moving a
      // running group to TLS in two steps (`preferred`, then `required`), and a creation that asks
      // for `required` at once can fail. Created with TransitEncryptionEnabled and no mode, the
      // group accepts TLS connections only.
      transitEncryptionEnabled: true,
      atRestEncryptionEnabled: true,
      authToken: this.authTokenSecret.secretValue.unsafeUnwrap(),
      cacheParameterGroupName: parameterGroup.ref,
      cacheSubnetGroupName: subnetGroup.ref,
      securityGroupIds: [this.securityGroup.securityGroupId],
      autoMinorVersionUpgrade: true,
      // A daily snapshot: the buffer holds acknowledged changes the database does not have yet.
      snapshotRetentionLimit: 1,
    });
    // Replacing the group would lose the buffer: keep it when the stack or the resource goes.
    this.replicationGroup.applyRemovalPolicy(RemovalPolicy.SNAPSHOT);

    this.endpointAddress = this.replicationGroup.attrPrimaryEndPointAddress;
    this.cacheClusterIds = Array.from(
      { length: 1 + settings.replicas },
      (_, i) => `${replicationGroupId}-${String(i + 1).padStart(3, '0')}`,
    );
  }

  /**
   * Gives a function everything it needs to reach the buffer, in one call: read access to the
   * AUTH token and the `REDIS_*` variables that `lambdas/io/config.ts` reads (including how many
   * replicas must confirm a write). The network path
   * comes with the functions' security group, and the way to the token with `secretsExtension`,
   * which the function must carry.
   */
  grantAccess(fn: SpillwayFunction): void {
    if (!fn.connections.securityGroups.includes(this.clientSecurityGroup)) {
      throw new Error(
        `${fn.node.path} cannot reach the cache: it must carry the Spillway functions' security group (use SpillwayFunction)`,
      );
    }
    if (fn.paramsAndSecrets !== this.secretsExtension) {
      throw new Error(
        `${fn.node.path} cannot read the cache's AUTH token: it must carry the Parameters and Secrets extension (SpillwayFunctionProps.paramsAndSecrets: SpillwayCache.secretsExtension)`,
      );
    }
    this.authTokenSecret.grantRead(fn);
    // The function reads the AUTH token on its first invocation, which may come during this very
    // deployment (migrate, the schedule's first sync): the way to Secrets Manager must be there.
    if (this.network.secretsManagerDependencies.length > 0) {
      fn.node.addDependency(...this.network.secretsManagerDependencies);
    }
    fn.addEnvironment('REDIS_HOST', this.endpointAddress);
    fn.addEnvironment('REDIS_PORT', String(this.port));
    fn.addEnvironment('REDIS_TLS', 'true');
    fn.addEnvironment('REDIS_AUTH_SECRET_ARN', this.authTokenSecret.secretArn);
  }
}
