// The VPC's endpoints (config `vpcEndpoints`): the nodes' AWS traffic stays in the VPC — S3 through
// a gateway on every route table, SSM, Session Manager, KMS and CloudWatch through interface endpoints
// (and Secrets Manager with `database: rds`).
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import {
  GATEWAY_ENDPOINT_SERVICE,
  INTERFACE_ENDPOINT_SERVICES,
  InterfaceEndpointService,
  endpointServiceName,
} from "../model/aws";
import { Tagger } from "../model/tags";

export interface VpcEndpointsArgs {
  readonly vpcId: pulumi.Input<string>;
  /** The stack's region: each service's endpoint name carries it. */
  readonly region: pulumi.Input<string>;
  /** Every route table of the VPC (public and private): S3's gateway adds its routes to each. */
  readonly routeTableIds: readonly pulumi.Input<string>[];
  /** One private subnet per AZ: each interface endpoint gets an address in each. */
  readonly subnetIds: readonly pulumi.Input<string>[];
  /** The endpoints' own group: 443 from the nodes' groups only (the flow table's `endpoints`). */
  readonly securityGroupId: pulumi.Input<string>;
  /**
   * The interface endpoints (`interfaceEndpointServices`: with rds, Secrets Manager's too).
   * @default INTERFACE_ENDPOINT_SERVICES
   */
  readonly services?: readonly InterfaceEndpointService[];
  readonly tags: Tagger;
}

// Endpoint policies are left at AWS's default (full access); the nodes' roles decide what each
// node may do, as they do through NAT. Restricting S3's to the stack's bucket would break the
// nodes' other S3 downloads in the stack's region — the CloudWatch agent from an AWS-owned bucket
// (`cloudWatchAgentUrl`; the region's own bucket, as the README's example, goes through the
// gateway) — and would stop no exfiltration: a node still reaches S3 in any other region through
// NAT on 443.
export class VpcEndpoints extends pulumi.ComponentResource {
  /** Endpoint id per service (s3 and the interface services). */
  readonly endpointIds: Readonly<Record<string, pulumi.Output<string>>>;

  constructor(name: string, args: VpcEndpointsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:network:VpcEndpoints", name, {}, opts);
    const child = { parent: this };
    const serviceName = (service: string) =>
      pulumi.output(args.region).apply((region) => endpointServiceName(region, service));

    // A gateway endpoint is routes, not addresses: no security group, no charge.
    const s3 = new aws.ec2.VpcEndpoint(
      `${name}-${GATEWAY_ENDPOINT_SERVICE}`,
      {
        vpcId: args.vpcId,
        serviceName: serviceName(GATEWAY_ENDPOINT_SERVICE),
        vpcEndpointType: "Gateway",
        routeTableIds: [...args.routeTableIds],
        tags: args.tags("network", `vpce-${GATEWAY_ENDPOINT_SERVICE}`),
      },
      child,
    );
    // Private DNS: the services' own hostnames resolve to the endpoints inside the VPC, so the
    // nodes' tools need no endpoint setting; the LB in the public subnet reaches them there too.
    const interfaces = (args.services ?? INTERFACE_ENDPOINT_SERVICES).map((service) => {
      const endpoint = new aws.ec2.VpcEndpoint(
        `${name}-${service}`,
        {
          vpcId: args.vpcId,
          serviceName: serviceName(service),
          vpcEndpointType: "Interface",
          privateDnsEnabled: true,
          subnetIds: [...args.subnetIds],
          securityGroupIds: [args.securityGroupId],
          tags: args.tags("network", `vpce-${service}`),
        },
        child,
      );
      return [service, endpoint.id] as const;
    });

    this.endpointIds = Object.fromEntries([[GATEWAY_ENDPOINT_SERVICE, s3.id], ...interfaces]);
    this.registerOutputs({ endpointIds: this.endpointIds });
  }
}
