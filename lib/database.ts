import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as rds from 'aws-cdk-lib/aws-rds';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import type { ExistingDatabaseSettings, NewDatabaseSettings } from './config.js';
import type { SpillwayNetwork } from './network.js';

/** RDS Proxy listens on the engine's default port, whatever port the instance uses. */
export const PROXY_PORT = 5432;

export interface SpillwayDatabaseProps {
  readonly network: SpillwayNetwork;
  readonly settings: NewDatabaseSettings | ExistingDatabaseSettings;
  /** The one database user every Spillway function connects as. */
  readonly dbUser: string;
  readonly logRetention: logs.RetentionDays;
}

/**
 * PostgreSQL behind RDS Proxy, with IAM authentication end to end.
 *
 * New shape: an RDS instance (encrypted, IAM authentication on, non-default port, deletion
 * protection and backups on, Multi-AZ switchable, master password managed and rotated by RDS).
 * Existing shape: the instance is imported by attributes, without a lookup.
 *
 * The proxy requires TLS, and authenticates clients and itself to the database with IAM
 * (`DefaultAuthScheme: IAM_AUTH`): no password exists for the Spillway user anywhere. The proxy's
 * security group is the only one Spillway admits to the database port (besides the one-time user
 * bootstrap, see `SpillwayDatabaseUser`), and it admits only the database clients' group.
 */
export class SpillwayDatabase extends Construct {
  readonly proxy: rds.DatabaseProxy;
  /** The proxy's target group: registering it makes the proxy connect to the database. */
  readonly proxyTargetGroup: rds.CfnDBProxyTargetGroup;
  readonly proxySecurityGroup: ec2.SecurityGroup;
  /** The role the proxy signs in to PostgreSQL with (end-to-end IAM). */
  readonly proxyRole: iam.Role;
  /** The instance's security group (imported in the existing shape). */
  readonly instanceSecurityGroup: ec2.ISecurityGroup;
  /** @default - undefined in the existing shape */
  readonly instance: rds.DatabaseInstance | undefined;
  readonly instanceEndpoint: string;
  readonly instancePort: number;
  /** The master user's secret (`username`, `password`), read only by the user bootstrap. */
  readonly masterSecret: secretsmanager.ISecret;
  readonly databaseName: string;
  readonly dbUser: string;

  private readonly clientSecurityGroup: ec2.ISecurityGroup;

  constructor(scope: Construct, id: string, props: SpillwayDatabaseProps) {
    super(scope, id);
    const { network, settings } = props;
    this.dbUser = props.dbUser;
    this.databaseName = settings.databaseName;
    this.instancePort = settings.port;
    this.clientSecurityGroup = network.databaseClientsSecurityGroup;

    let target: rds.IDatabaseInstance;
    let resourceId: string;
    if (settings.kind === 'new') {
      const securityGroup = new ec2.SecurityGroup(this, 'InstanceSecurityGroup', {
        vpc: network.vpc,
        description: 'Spillway database: admits only RDS Proxy (and the one-time user bootstrap)',
        allowAllOutbound: false,
      });
      // A known identifier lets the log group exist (with its retention) before RDS writes to it,
      // instead of a log-retention custom resource fixing it afterwards.
      const instanceIdentifier = `${Stack.of(this).stackName}-postgres`
        .toLowerCase()
        .replace(/[^a-z0-9-]/g, '')
        .replace(/-+/g, '-')
        .slice(0, 63);
      const logGroup = new logs.LogGroup(this, 'InstanceLogs', {
        logGroupName: `/aws/rds/instance/${instanceIdentifier}/postgresql`,
        retention: props.logRetention,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      const instance = new rds.DatabaseInstance(this, 'Instance', {
        instanceIdentifier,
        engine: rds.DatabaseInstanceEngine.postgres({
          version: rds.PostgresEngineVersion.of(settings.postgresVersion, settings.postgresVersion),
        }),
        instanceType: new ec2.InstanceType(settings.instanceType),
        vpc: network.vpc,
        vpcSubnets: network.dataSubnets,
        securityGroups: [securityGroup],
        port: settings.port,
        databaseName: settings.databaseName,
        credentials: rds.Credentials.fromUsername('spillway_admin'),
        // RDS keeps the master password in Secrets Manager and rotates it; no one types it.
        manageMasterUserPassword: true,
        iamAuthentication: true,
        storageEncrypted: true,
        storageType: rds.StorageType.GP3,
        allocatedStorage: settings.allocatedStorageGiB,
        maxAllocatedStorage: settings.allocatedStorageGiB * 5,
        multiAz: settings.multiAz,
        publiclyAccessible: false,
        deletionProtection: settings.deletionProtection,
        backupRetention: Duration.days(settings.backupRetentionDays),
        copyTagsToSnapshot: true,
        autoMinorVersionUpgrade: true,
        caCertificate: rds.CaCertificate.RDS_CA_RSA2048_G1,
        cloudwatchLogsExports: ['postgresql'],
        removalPolicy: RemovalPolicy.SNAPSHOT,
      });
      instance.node.addDependency(logGroup);
      const cfn = instance.node.defaultChild as rds.CfnDBInstance;
      this.masterSecret =
        instance.secret ??
        secretsmanager.Secret.fromSecretCompleteArn(
          this,
          'MasterSecret',
          cfn.attrMasterUserSecretSecretArn,
        );
      this.instance = instance;
      this.instanceSecurityGroup = securityGroup;
      this.instanceEndpoint = instance.dbInstanceEndpointAddress;
      target = instance;
      resourceId = instance.instanceResourceId ?? cfn.attrDbiResourceId;
    } else {
      this.instanceSecurityGroup = ec2.SecurityGroup.fromSecurityGroupId(
        this,
        'InstanceSecurityGroup',
        settings.securityGroupId,
      );
      target = rds.DatabaseInstance.fromDatabaseInstanceAttributes(this, 'Instance', {
        instanceIdentifier: settings.instanceIdentifier,
        instanceEndpointAddress: settings.endpoint,
        port: settings.port,
        securityGroups: [this.instanceSecurityGroup],
        instanceResourceId: settings.resourceId,
        engine: rds.DatabaseInstanceEngine.POSTGRES,
      });
      this.masterSecret = secretsmanager.Secret.fromSecretCompleteArn(
        this,
        'MasterSecret',
        settings.secretArn,
      );
      this.instance = undefined;
      this.instanceEndpoint = settings.endpoint;
      resourceId = settings.resourceId;
    }

    this.proxySecurityGroup = new ec2.SecurityGroup(this, 'ProxySecurityGroup', {
      vpc: network.vpc,
      description: 'Spillway RDS Proxy: admits only the Spillway database clients',
      allowAllOutbound: false,
    });
    this.proxySecurityGroup.connections.allowFrom(
      network.databaseClientsSecurityGroup,
      ec2.Port.tcp(PROXY_PORT),
      'Spillway database clients to RDS Proxy',
    );
    if (settings.kind === 'existing') {
      // For an instance it creates, DatabaseProxy adds this rule itself; a second, identical rule
      // would fail the deployment as a duplicate.
      this.proxySecurityGroup.connections.allowTo(
        this.instanceSecurityGroup,
        ec2.Port.tcp(settings.port),
        'RDS Proxy to the database',
      );
    }

    // End-to-end IAM: the proxy signs in to PostgreSQL as the Spillway user with its own role.
    const proxyRole = new iam.Role(this, 'ProxyRole', {
      assumedBy: new iam.ServicePrincipal('rds.amazonaws.com'),
      description: 'Spillway RDS Proxy: connects to the database as the Spillway user',
    });
    proxyRole.addToPolicy(
      new iam.PolicyStatement({
        actions: ['rds-db:connect'],
        resources: [
          Stack.of(this).formatArn({
            service: 'rds-db',
            resource: 'dbuser',
            resourceName: `${resourceId}/${props.dbUser}`,
            arnFormat: ArnFormat.COLON_RESOURCE_NAME,
          }),
        ],
      }),
    );

    this.proxyRole = proxyRole;
    this.proxy = new rds.DatabaseProxy(this, 'Proxy', {
      proxyTarget: rds.ProxyTarget.fromInstance(target),
      vpc: network.vpc,
      vpcSubnets: network.dataSubnets,
      securityGroups: [this.proxySecurityGroup],
      role: proxyRole,
      defaultAuthScheme: rds.DefaultAuthScheme.IAM_AUTH,
      iamAuth: true,
      requireTLS: true,
      // Leave half the database's connections to operators and other applications.
      maxConnectionsPercent: 50,
      borrowTimeout: Duration.seconds(30),
    });
    const targetGroup = this.proxy.node.children.find(
      (child): child is rds.CfnDBProxyTargetGroup => child instanceof rds.CfnDBProxyTargetGroup,
    );
    if (!targetGroup) throw new Error(`${this.proxy.node.path} has no target group`);
    this.proxyTargetGroup = targetGroup;
  }

  /**
   * Gives a function everything it needs to reach the database, in one call: `rds-db:connect`
   * through the proxy for the one Spillway user, and the `DB_*` variables that
   * `lambdas/io/config.ts` reads. The network path comes with the database clients' security
   * group, which the function must carry.
   */
  grantAccess(fn: lambda.Function): void {
    if (!fn.connections.securityGroups.includes(this.clientSecurityGroup)) {
      throw new Error(
        `${fn.node.path} cannot reach the database: it must carry the database clients' security group`,
      );
    }
    this.proxy.grantConnect(fn, this.dbUser);
    fn.addEnvironment('DB_HOST', this.proxy.endpoint);
    fn.addEnvironment('DB_PORT', String(PROXY_PORT));
    fn.addEnvironment('DB_NAME', this.databaseName);
    fn.addEnvironment('DB_USER', this.dbUser);
    fn.addEnvironment('DB_IAM_AUTH', 'true');
  }
}
