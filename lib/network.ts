import { Fn, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct, type IDependable } from 'constructs';
import type { ExistingNetworkSettings, NewNetworkSettings } from './config.js';

export interface SpillwayNetworkProps {
  readonly settings: NewNetworkSettings | ExistingNetworkSettings;
  /** Retention of the VPC flow log (new VPC only). */
  readonly logRetention: logs.RetentionDays;
}

/**
 * The VPC and the security groups every other construct attaches to.
 *
 * New shape: two Availability Zones, isolated subnets only (`data` for the database, cache and
 * proxy; `functions` for the Lambda ENIs and the endpoint), no NAT gateway, so the only way out
 * is the Secrets Manager interface endpoint. Existing shape: the VPC and subnets are imported by
 * id, without a lookup, so `cdk synth` needs no credentials.
 *
 * Every security group here denies all egress except what a grant opens.
 */
export class SpillwayNetwork extends Construct {
  readonly vpc: ec2.IVpc;
  /** Where the functions and the Secrets Manager endpoint go. */
  readonly functionSubnets: ec2.SubnetSelection;
  /** Where the database, its proxy and the cache go. */
  readonly dataSubnets: ec2.SubnetSelection;
  /** Attached to every Spillway function (and pipeline functions): the cache admits only it. */
  readonly functionsSecurityGroup: ec2.SecurityGroup;
  /** Attached in addition to the functions that reach the database: the proxy admits only it. */
  readonly databaseClientsSecurityGroup: ec2.SecurityGroup;
  /** @default - none when the existing VPC brings its own way to Secrets Manager */
  readonly secretsManagerEndpoint: ec2.InterfaceVpcEndpoint | undefined;
  /**
   * What a resource that calls Secrets Manager during a deployment must wait for: the endpoint
   * and its security group with the rules that admit the clients. Empty without an endpoint.
   */
  readonly secretsManagerDependencies: readonly IDependable[];

  constructor(scope: Construct, id: string, props: SpillwayNetworkProps) {
    super(scope, id);
    const { settings } = props;

    if (settings.kind === 'new') {
      const vpc = new ec2.Vpc(this, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr(settings.vpcCidr),
        maxAzs: 2,
        natGateways: 0,
        subnetConfiguration: [
          { name: 'data', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 24 },
          { name: 'functions', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: 22 },
        ],
      });
      vpc.addFlowLog('FlowLog', {
        destination: ec2.FlowLogDestination.toCloudWatchLogs(
          new logs.LogGroup(this, 'FlowLogGroup', {
            retention: props.logRetention,
            removalPolicy: RemovalPolicy.DESTROY,
          }),
        ),
        // Rejected traffic is what explains a function that cannot reach Redis or the proxy.
        trafficType: ec2.FlowLogTrafficType.REJECT,
      });
      this.vpc = vpc;
      this.functionSubnets = { subnetGroupName: 'functions' };
      this.dataSubnets = { subnetGroupName: 'data' };
    } else {
      this.vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
        vpcId: settings.vpcId,
        // Not used for placement (every selection names its subnets), but required: the region's
        // zones, resolved at deploy time, keep synth free of lookups.
        availabilityZones: Fn.getAzs(),
      });
      const subnets = settings.subnetIds.map((subnetId) =>
        ec2.Subnet.fromSubnetId(this, subnetId, subnetId),
      );
      this.functionSubnets = { subnets };
      this.dataSubnets = { subnets };
    }

    this.functionsSecurityGroup = new ec2.SecurityGroup(this, 'FunctionsSecurityGroup', {
      vpc: this.vpc,
      description: 'Spillway functions: admitted by the cache',
      allowAllOutbound: false,
    });
    this.databaseClientsSecurityGroup = new ec2.SecurityGroup(
      this,
      'DatabaseClientsSecurityGroup',
      {
        vpc: this.vpc,
        description: 'Spillway functions that reach the database: admitted by RDS Proxy',
        allowAllOutbound: false,
      },
    );

    const wantsEndpoint = settings.kind === 'new' || settings.createSecretsManagerEndpoint;
    if (wantsEndpoint) {
      const endpointSecurityGroup = new ec2.SecurityGroup(
        this,
        'SecretsManagerEndpointSecurityGroup',
        {
          vpc: this.vpc,
          description: 'Secrets Manager endpoint: admits Spillway functions on 443',
          allowAllOutbound: false,
        },
      );
      this.secretsManagerEndpoint = new ec2.InterfaceVpcEndpoint(this, 'SecretsManagerEndpoint', {
        vpc: this.vpc,
        service: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
        subnets: this.functionSubnets,
        privateDnsEnabled: true,
        // Not open to the whole VPC: allowSecretsManager admits each client group by name.
        open: false,
        securityGroups: [endpointSecurityGroup],
      });
      // The admitting rules are created under the endpoint's security group.
      this.secretsManagerDependencies = [this.secretsManagerEndpoint, endpointSecurityGroup];
    } else {
      this.secretsManagerEndpoint = undefined;
      this.secretsManagerDependencies = [];
    }
    this.allowSecretsManager(this.functionsSecurityGroup);
  }

  /**
   * Lets a security group reach Secrets Manager: through the endpoint when there is one, else
   * over HTTPS to wherever the existing VPC routes it (a NAT gateway or its own endpoint).
   */
  allowSecretsManager(client: ec2.ISecurityGroup): void {
    if (this.secretsManagerEndpoint) {
      this.secretsManagerEndpoint.connections.allowDefaultPortFrom(
        client,
        'Secrets Manager from Spillway',
      );
    } else {
      client.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'Secrets Manager over HTTPS');
    }
  }
}
