import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import { Construct, type IDependable } from 'constructs';
import type { AuroraDatabaseSettings } from './config.js';
import type { SpillwayNetwork } from './network.js';

/** What a function may do with the Data API: run statements and transactions, nothing else. */
export const DATA_API_ACTIONS = [
  'rds-data:ExecuteStatement',
  'rds-data:BatchExecuteStatement',
  'rds-data:BeginTransaction',
  'rds-data:CommitTransaction',
  'rds-data:RollbackTransaction',
] as const;

export interface SpillwayAuroraDatabaseProps {
  readonly network: SpillwayNetwork;
  readonly settings: AuroraDatabaseSettings;
  readonly logRetention: logs.RetentionDays;
}

/**
 * Aurora PostgreSQL reached through the RDS Data API (`SINK=data-api`), with no proxy and no
 * network path to the database port: the functions call the Data API over HTTPS, through an
 * interface endpoint in the VPC, and the Data API signs in with the cluster's secret.
 *
 * New shape: a Serverless v2 cluster (one writer, Data API on, encrypted, IAM authentication on,
 * non-default port, deletion protection and backups on, master password managed and rotated by
 * RDS), whose security group admits no one. Existing shape: the cluster and its secret are named
 * by ARN; Spillway changes nothing of them.
 */
export class SpillwayAuroraDatabase extends Construct {
  /** The cluster ARN the Data API calls name (`DATA_API_RESOURCE_ARN`). */
  readonly clusterArn: string;
  /** The secret the Data API signs in with (`DATA_API_SECRET_ARN`). */
  readonly secretArn: string;
  readonly databaseName: string;
  /** @default - undefined in the existing shape */
  readonly cluster: rds.DatabaseCluster | undefined;
  /** @default - undefined in the existing shape */
  readonly clusterSecurityGroup: ec2.SecurityGroup | undefined;
  /** @default - none when the existing VPC brings its own way to the Data API */
  readonly dataApiEndpoint: ec2.InterfaceVpcEndpoint | undefined;
  /**
   * What a resource that calls the Data API during a deployment (the migrations) must wait for:
   * the cluster and its writer, the endpoint and its security group with the admitting rules.
   */
  readonly dataApiDependencies: readonly IDependable[];

  private readonly clientSecurityGroup: ec2.ISecurityGroup;

  constructor(scope: Construct, id: string, props: SpillwayAuroraDatabaseProps) {
    super(scope, id);
    const { network, settings } = props;
    this.databaseName = settings.databaseName;
    this.clientSecurityGroup = network.databaseClientsSecurityGroup;
    const dependencies: IDependable[] = [];

    if (settings.kind === 'new-aurora') {
      const securityGroup = new ec2.SecurityGroup(this, 'ClusterSecurityGroup', {
        vpc: network.vpc,
        description: 'Spillway Aurora cluster: admits no one (clients go through the Data API)',
        allowAllOutbound: false,
      });
      // A known identifier lets the log group exist (with its retention) before RDS writes to it,
      // instead of a log-retention custom resource fixing it afterwards.
      const clusterIdentifier = `${Stack.of(this).stackName}-aurora`
        .toLowerCase()
        .replace(/[^a-z0-9-]/g, '')
        .replace(/-+/g, '-')
        .slice(0, 63);
      const logGroup = new logs.LogGroup(this, 'ClusterLogs', {
        logGroupName: `/aws/rds/cluster/${clusterIdentifier}/postgresql`,
        retention: props.logRetention,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      const major = settings.auroraVersion.split('.')[0] as string;
      const cluster = new rds.DatabaseCluster(this, 'Cluster', {
        clusterIdentifier,
        engine: rds.DatabaseClusterEngine.auroraPostgres({
          version: rds.AuroraPostgresEngineVersion.of(settings.auroraVersion, major),
        }),
        writer: rds.ClusterInstance.serverlessV2('Writer', {
          autoMinorVersionUpgrade: true,
          caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
          publiclyAccessible: false,
        }),
        serverlessV2MinCapacity: settings.minCapacity,
        serverlessV2MaxCapacity: settings.maxCapacity,
        enableDataApi: true,
        vpc: network.vpc,
        vpcSubnets: network.dataSubnets,
        securityGroups: [securityGroup],
        port: settings.port,
        defaultDatabaseName: settings.databaseName,
        credentials: rds.Credentials.fromUsername('spillway_admin'),
        // RDS keeps the master password in Secrets Manager and rotates it; no one types it.
        manageMasterUserPassword: true,
        iamAuthentication: true,
        storageEncrypted: true,
        deletionProtection: settings.deletionProtection,
        backup: { retention: Duration.days(settings.backupRetentionDays) },
        copyTagsToSnapshot: true,
        cloudwatchLogsExports: ['postgresql'],
        removalPolicy: RemovalPolicy.SNAPSHOT,
      });
      cluster.node.addDependency(logGroup);
      const cfn = cluster.node.defaultChild as rds.CfnDBCluster;
      this.cluster = cluster;
      this.clusterSecurityGroup = securityGroup;
      this.clusterArn = cluster.clusterArn;
      this.secretArn = cfn.attrMasterUserSecretSecretArn;
      // The construct covers its writer instance: statements fail until one is available.
      dependencies.push(cluster);
    } else {
      this.cluster = undefined;
      this.clusterSecurityGroup = undefined;
      this.clusterArn = settings.clusterArn;
      this.secretArn = settings.secretArn;
    }

    if (settings.kind === 'new-aurora' || settings.createDataApiEndpoint) {
      const endpointSecurityGroup = new ec2.SecurityGroup(this, 'DataApiEndpointSecurityGroup', {
        vpc: network.vpc,
        description: 'RDS Data API endpoint: admits the Spillway database clients on 443',
        allowAllOutbound: false,
      });
      this.dataApiEndpoint = new ec2.InterfaceVpcEndpoint(this, 'DataApiEndpoint', {
        vpc: network.vpc,
        service: ec2.InterfaceVpcEndpointAwsService.RDS_DATA,
        subnets: network.functionSubnets,
        privateDnsEnabled: true,
        open: false,
        securityGroups: [endpointSecurityGroup],
      });
      this.dataApiEndpoint.connections.allowDefaultPortFrom(
        network.databaseClientsSecurityGroup,
        'RDS Data API from the Spillway database clients',
      );
      // The admitting rules are created under the endpoint's security group.
      dependencies.push(this.dataApiEndpoint, endpointSecurityGroup);
    } else {
      this.dataApiEndpoint = undefined;
      network.databaseClientsSecurityGroup.addEgressRule(
        ec2.Peer.anyIpv4(),
        ec2.Port.tcp(443),
        'RDS Data API over HTTPS',
      );
    }
    this.dataApiDependencies = dependencies;
  }

  /**
   * Gives a function everything it needs to reach the database, in one call: the Data API's
   * statement and transaction actions on this cluster only, reading this secret only, and the
   * `SINK` and `DATA_API_*` variables that `lambdas/io/config.ts` reads. The network path (the
   * endpoint) comes with the database clients' security group, which the function must carry.
   */
  grantAccess(fn: lambda.Function): void {
    if (!fn.connections.securityGroups.includes(this.clientSecurityGroup)) {
      throw new Error(
        `${fn.node.path} cannot reach the database: it must carry the database clients' security group`,
      );
    }
    fn.addToRolePolicy(
      new iam.PolicyStatement({ actions: [...DATA_API_ACTIONS], resources: [this.clusterArn] }),
    );
    // The Data API reads the secret with the caller's permissions.
    fn.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        resources: [this.secretArn],
      }),
    );
    fn.addEnvironment('SINK', 'data-api');
    fn.addEnvironment('DATA_API_RESOURCE_ARN', this.clusterArn);
    fn.addEnvironment('DATA_API_SECRET_ARN', this.secretArn);
    fn.addEnvironment('DATA_API_DATABASE', this.databaseName);
  }
}
