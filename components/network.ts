// The VPC: a public subnet for the LB, private subnets in two AZs behind one NAT, flow logs on.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { SUBNET_NAMES, SubnetName, Topology } from "../model/topology";
import { AwsAccount } from "../model/aws";
import { Tagger } from "../model/tags";
import { flowLogsAssumeRolePolicy, flowLogsDeliveryPolicy } from "./iamPolicies";

export interface NetworkArgs {
  /** The VPC range and its subnets (from `buildTopology`). */
  readonly topology: Topology;
  /** Where the stack runs; scopes the flow-log role's trust. */
  readonly account: pulumi.Input<AwsAccount>;
  /** Name of the flow-log group (stable, so ops can find it). */
  readonly flowLogGroupName: string;
  /** Retention of the flow-log group, in days. */
  readonly logRetentionDays: number;
  readonly tags: Tagger;
}

/** The VPC's route tables: the public subnets' (internet gateway) and the private ones' (NAT). */
export type RouteTableKind = "public" | "private";

export class Network extends pulumi.ComponentResource {
  readonly vpcId: pulumi.Output<string>;
  readonly subnetIds: Readonly<Record<SubnetName, pulumi.Output<string>>>;
  readonly availabilityZones: Readonly<Record<SubnetName, pulumi.Output<string>>>;
  /** The route table of the public subnets and that of the private ones. */
  readonly routeTableIds: Readonly<Record<RouteTableKind, pulumi.Output<string>>>;
  /** Public address the private subnets reach the internet from (for allow-lists elsewhere). */
  readonly natPublicIp: pulumi.Output<string>;
  readonly flowLogGroupName: pulumi.Output<string>;

  constructor(name: string, args: NetworkArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:network:Network", name, {}, opts);
    const child = { parent: this };
    const tags = (what: string) => args.tags("network", what);

    const vpc = new aws.ec2.Vpc(
      `${name}-vpc`,
      {
        cidrBlock: args.topology.vpcCidr,
        enableDnsSupport: true,
        enableDnsHostnames: true,
        tags: tags("vpc"),
      },
      child,
    );

    // EC2.2: adopting the default group removes all its rules; nothing may use it.
    new aws.ec2.DefaultSecurityGroup(
      `${name}-default-sg`,
      { vpcId: vpc.id, tags: tags("default-sg-no-rules") },
      child,
    );

    const zones = aws
      .getAvailabilityZonesOutput(
        {
          state: "available",
          filters: [{ name: "opt-in-status", values: ["opt-in-not-required"] }],
        },
        child,
      )
      .names.apply((names) => {
        if (names.length < 2) {
          throw new Error(
            `webstack needs two availability zones; the region offers ${names.length}`,
          );
        }
        return names;
      });

    const subnets = {} as Record<SubnetName, aws.ec2.Subnet>;
    for (const subnetName of SUBNET_NAMES) {
      const spec = args.topology.subnets[subnetName];
      subnets[subnetName] = new aws.ec2.Subnet(
        `${name}-${subnetName}`,
        {
          vpcId: vpc.id,
          cidrBlock: spec.cidr,
          availabilityZone: zones[spec.azIndex],
          // EC2.15: no subnet hands out public addresses; the LB gets its Elastic IP explicitly.
          mapPublicIpOnLaunch: false,
          tags: tags(`subnet-${subnetName}`),
        },
        child,
      );
    }

    const igw = new aws.ec2.InternetGateway(
      `${name}-igw`,
      { vpcId: vpc.id, tags: tags("igw") },
      child,
    );

    // One NAT gateway: it carries only egress (packages, AWS APIs), so losing its AZ stops
    // boots and agents in the other AZ but never user traffic. Two NATs cost twice as much.
    const natIp = new aws.ec2.Eip(`${name}-nat-ip`, { domain: "vpc", tags: tags("nat-ip") }, child);
    const nat = new aws.ec2.NatGateway(
      `${name}-nat`,
      { allocationId: natIp.id, subnetId: subnets.public.id, tags: tags("nat") },
      { parent: this, dependsOn: [igw] },
    );

    const routeTables = {
      public: {
        target: { gatewayId: igw.id },
        subnets: SUBNET_NAMES.filter((s) => args.topology.subnets[s].public),
      },
      private: {
        target: { natGatewayId: nat.id },
        subnets: SUBNET_NAMES.filter((s) => !args.topology.subnets[s].public),
      },
    };
    const routeTableIds = {} as Record<RouteTableKind, pulumi.Output<string>>;
    for (const kind of Object.keys(routeTables) as RouteTableKind[]) {
      const { target, subnets: members } = routeTables[kind];
      const table = new aws.ec2.RouteTable(
        `${name}-${kind}-rt`,
        { vpcId: vpc.id, tags: tags(`rt-${kind}`) },
        child,
      );
      routeTableIds[kind] = table.id;
      new aws.ec2.Route(
        `${name}-${kind}-default-route`,
        { routeTableId: table.id, destinationCidrBlock: "0.0.0.0/0", ...target },
        child,
      );
      for (const member of members) {
        new aws.ec2.RouteTableAssociation(
          `${name}-${member}-rta`,
          { routeTableId: table.id, subnetId: subnets[member].id },
          child,
        );
      }
    }

    // EC2.6: VPC flow logs, all traffic, to a log group with retention.
    const flowLogGroup = new aws.cloudwatch.LogGroup(
      `${name}-flow-logs`,
      {
        name: args.flowLogGroupName,
        retentionInDays: args.logRetentionDays,
        tags: tags("flow-logs"),
      },
      child,
    );
    const flowLogRole = new aws.iam.Role(
      `${name}-flow-logs-role`,
      {
        description: "VPC flow logs deliver records to the stack's flow-log group",
        assumeRolePolicy: pulumi
          .output(args.account)
          .apply((a) => JSON.stringify(flowLogsAssumeRolePolicy(a))),
        tags: tags("flow-logs-role"),
      },
      child,
    );
    new aws.iam.RolePolicy(
      `${name}-flow-logs-delivery`,
      {
        role: flowLogRole.id,
        policy: flowLogGroup.arn.apply((arn) => JSON.stringify(flowLogsDeliveryPolicy(arn))),
      },
      child,
    );
    new aws.ec2.FlowLog(
      `${name}-flow-log`,
      {
        vpcId: vpc.id,
        trafficType: "ALL",
        logDestinationType: "cloud-watch-logs",
        logDestination: flowLogGroup.arn,
        iamRoleArn: flowLogRole.arn,
        maxAggregationInterval: 60,
        tags: tags("flow-log"),
      },
      child,
    );

    this.vpcId = vpc.id;
    this.subnetIds = Object.fromEntries(SUBNET_NAMES.map((s) => [s, subnets[s].id])) as Record<
      SubnetName,
      pulumi.Output<string>
    >;
    this.availabilityZones = Object.fromEntries(
      SUBNET_NAMES.map((s) => [s, subnets[s].availabilityZone]),
    ) as Record<SubnetName, pulumi.Output<string>>;
    this.routeTableIds = routeTableIds;
    this.natPublicIp = natIp.publicIp;
    this.flowLogGroupName = flowLogGroup.name;
    this.registerOutputs({
      vpcId: this.vpcId,
      subnetIds: this.subnetIds,
      natPublicIp: this.natPublicIp,
      flowLogGroupName: this.flowLogGroupName,
    });
  }
}
