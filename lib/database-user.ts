import { type CustomResource, Duration } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as logs from 'aws-cdk-lib/aws-logs';
import type * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import type { SpillwayDatabase } from './database.js';
import { SpillwayFunction } from './function.js';
import { addFunctionCustomResource } from './function-custom-resource.js';
import { RDS_CA_BUNDLE_FILE } from './handlers/rds-ca-bundle.js';
import type { SpillwayNetwork } from './network.js';

export interface SpillwayDatabaseUserProps {
  readonly network: SpillwayNetwork;
  readonly database: SpillwayDatabase;
  /** The schema of the user tables: the role gets USAGE and CREATE on it when it exists. */
  readonly schema: string;
  readonly serviceName: string;
  readonly logRetention: logs.RetentionDays;
}

/**
 * Creates the database role the functions sign in as (`CREATE ROLE ... LOGIN`, `GRANT rds_iam`,
 * CONNECT and CREATE on the database, USAGE and CREATE on the schema), once, at deploy time.
 *
 * Its function connects straight to the instance with the master password, so its own security
 * group is the one exception to "only the proxy reaches the database port". It runs only during
 * deployments; set `bootstrapDbUser=false` after the first deployment to remove it and that rule.
 */
export class SpillwayDatabaseUser extends Construct {
  readonly function: SpillwayFunction;
  readonly securityGroup: ec2.SecurityGroup;
  readonly resource: CustomResource;
  /** The Provider framework (a CDK-made Lambda function that calls `function`). */
  readonly provider: cr.Provider;

  constructor(scope: Construct, id: string, props: SpillwayDatabaseUserProps) {
    super(scope, id);
    const { network, database } = props;

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: network.vpc,
      description: 'Spillway database user bootstrap: reaches the database directly, once',
      allowAllOutbound: false,
    });
    this.securityGroup.connections.allowTo(
      database.instanceSecurityGroup,
      ec2.Port.tcp(database.instancePort),
      'Spillway user bootstrap to the database',
    );
    network.allowSecretsManager(this.securityGroup);

    this.function = new SpillwayFunction(this, 'Function', {
      entry: 'lib/handlers/bootstrap-database-user.ts',
      description: 'Spillway: creates the IAM-authenticated database user (deploy time only)',
      serviceName: props.serviceName,
      logRetention: props.logRetention,
      placement: {
        vpc: network.vpc,
        subnets: network.functionSubnets,
        securityGroups: [this.securityGroup],
      },
      timeout: Duration.minutes(2),
      memorySize: 256,
      // It connects straight to the instance, whose certificate chains to the RDS CAs.
      bundleFiles: [{ from: `lib/handlers/${RDS_CA_BUNDLE_FILE}`, to: RDS_CA_BUNDLE_FILE }],
    });
    database.masterSecret.grantRead(this.function);

    ({ resource: this.resource, provider: this.provider } = addFunctionCustomResource(this, {
      onEventHandler: this.function,
      logRetention: props.logRetention,
      resourceType: 'Custom::SpillwayDatabaseUser',
      properties: {
        DbUser: database.dbUser,
        DatabaseName: database.databaseName,
        Schema: props.schema,
        Host: database.instanceEndpoint,
        Port: String(database.instancePort),
        MasterSecretArn: database.masterSecret.secretArn,
      },
    }));
    // The instance and both ends of the security group rule must exist before the role can be
    // created (depending on the groups' constructs covers rules CDK places under either group),
    // and the function reads the master secret through the Secrets Manager endpoint. Not the
    // whole database construct: the proxy's target group waits for this role instead (see
    // SpillwayStack), so that the proxy registers a target whose IAM user exists.
    this.resource.node.addDependency(
      database.instanceSecurityGroup,
      this.securityGroup,
      ...network.secretsManagerDependencies,
    );
    if (database.instance) this.resource.node.addDependency(database.instance);
    if (network.secretsManagerDependencies.length > 0) {
      this.function.node.addDependency(...network.secretsManagerDependencies);
    }
  }
}
