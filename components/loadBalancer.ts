// The HAProxy load balancer: an EC2 instance behind an Elastic IP, its certificate, and its DNS name.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { Architecture } from "../model/aws";
import { NodeSpec } from "../model/topology";
import { Tagger } from "../model/tags";
import { HaproxyBackend } from "../cloud-init/haproxy";
import { renderLoadBalancerUserData } from "../cloud-init/loadBalancer";
import { NodeMonitoring } from "../cloud-init/monitoring";
import { encodeUserData } from "../cloud-init/userDataEncoding";
import { PublicCertificate } from "./publicCertificate";
import { instanceDefaults } from "./instanceDefaults";

export interface LoadBalancerArgs {
  /** The lb node: its fixed address and name. */
  readonly node: NodeSpec;
  /** The FQDN served. */
  readonly domain: string;
  readonly instanceType: string;
  /** The instance type's architecture, as EC2 reports it: the packages' (the image is chosen for it). */
  readonly architecture: Architecture;
  /** The image, as the stack recorded or configured it (components/nodeImage.ts). */
  readonly ami: pulumi.Input<string>;
  readonly subnetId: pulumi.Input<string>;
  readonly securityGroupId: pulumi.Input<string>;
  readonly instanceProfileName: pulumi.Input<string>;
  /** The LB's role: gets this certificate mode's extra permissions. */
  readonly roleName: pulumi.Input<string>;
  /** PEM of the private CA (public): verifies the backends. */
  readonly caCertPem: pulumi.Input<string>;
  readonly backends: readonly HaproxyBackend[];
  /** How long HAProxy waits for a backend's answer, in seconds. */
  readonly serverTimeoutSeconds: number;
  readonly certificate: PublicCertificate;
  /** Logs and metrics of the LB. */
  readonly monitoring: NodeMonitoring;
  /** Route53 zone for the A record; no record without it. */
  readonly zoneId?: pulumi.Input<string>;
  readonly tags: Tagger;
}

export class LoadBalancer extends pulumi.ComponentResource {
  readonly instanceId: pulumi.Output<string>;
  readonly publicIp: pulumi.Output<string>;
  readonly url: string;
  readonly dnsName: string;

  constructor(name: string, args: LoadBalancerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:edge:LoadBalancer", name, {}, opts);
    const child = { parent: this };
    const tags = (what: string) => args.tags(args.node.role, `${args.node.name}-${what}`);

    // The address lives on its own interface, so the Elastic IP is there before the first boot
    // (cloud-init installs packages at once) and stays put when the instance is replaced.
    const eni = new aws.ec2.NetworkInterface(
      `${name}-eni`,
      {
        subnetId: args.subnetId,
        privateIps: [args.node.privateIp],
        securityGroups: [args.securityGroupId],
        description: `webstack ${args.node.name}: HAProxy`,
        tags: tags("eni"),
      },
      child,
    );
    const eip = new aws.ec2.Eip(`${name}-eip`, { domain: "vpc", tags: tags("eip") }, child);
    const association = new aws.ec2.EipAssociation(
      `${name}-eip-association`,
      { allocationId: eip.allocationId, networkInterfaceId: eni.id },
      child,
    );

    if (args.certificate.lbPolicy) {
      new aws.iam.RolePolicy(
        `${name}-certificate-access`,
        { role: args.roleName, policy: args.certificate.lbPolicy.apply((p) => JSON.stringify(p)) },
        child,
      );
    }

    const userData = pulumi
      .all([args.caCertPem, args.certificate.setup])
      .apply(([caCertPem, certificate]) =>
        encodeUserData(
          renderLoadBalancerUserData({
            node: args.node,
            domain: args.domain,
            backends: args.backends,
            caCertPem,
            certificate,
            serverTimeoutSeconds: args.serverTimeoutSeconds,
            architecture: args.architecture,
            monitoring: args.monitoring,
          }),
        ),
      );

    const instance = new aws.ec2.Instance(
      `${name}-instance`,
      {
        ...instanceDefaults({
          instanceType: args.instanceType,
          ami: args.ami,
          rootVolumeGiB: 8,
          rootTags: tags("root"),
          userData,
        }),
        primaryNetworkInterface: { networkInterfaceId: eni.id },
        iamInstanceProfile: args.instanceProfileName,
        // Cattle: the LB holds no state, so a new user-data means a new instance.
        userDataReplaceOnChange: true,
        tags: tags("instance"),
      },
      // One interface, one instance: the interface with the fixed address and the Elastic IP is
      // the instance's primary one, which EC2 never detaches from a live instance, so a
      // replacement (a new user-data or lbAmi) terminates the old LB first: a short outage.
      { parent: this, dependsOn: [association], deleteBeforeReplace: true },
    );

    if (args.zoneId) {
      new aws.route53.Record(
        `${name}-dns`,
        { zoneId: args.zoneId, name: args.domain, type: "A", ttl: 60, records: [eip.publicIp] },
        child,
      );
    }

    this.instanceId = instance.id;
    this.publicIp = eip.publicIp;
    this.url = `https://${args.domain}/`;
    this.dnsName = args.domain;
    this.registerOutputs({ instanceId: this.instanceId, publicIp: this.publicIp, url: this.url });
  }
}
