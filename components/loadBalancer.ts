// The HAProxy load balancer: an EC2 instance behind an Elastic IP, its certificate's permissions,
// and its DNS name; what it runs (HAProxy, the certificate's timers) comes from its bundle.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { NodeSpec } from "../model/topology";
import { Tagger } from "../model/tags";
import { renderLoadBalancerBootstrap } from "../cloud-init/loadBalancer";
import { encodeUserData } from "../cloud-init/userDataEncoding";
import { PublicCertificate } from "./publicCertificate";
import { instanceDefaults } from "./instanceDefaults";

export interface LoadBalancerArgs {
  readonly stack: string;
  /** The lb node: its fixed address and name. */
  readonly node: NodeSpec;
  /** The FQDN served. */
  readonly domain: string;
  readonly instanceType: string;
  /** The image, as the stack recorded or configured it (components/nodeImage.ts). */
  readonly ami: pulumi.Input<string>;
  readonly subnetId: pulumi.Input<string>;
  readonly securityGroupId: pulumi.Input<string>;
  readonly instanceProfileName: pulumi.Input<string>;
  /** The LB's role: gets this certificate mode's extra permissions. */
  readonly roleName: pulumi.Input<string>;
  readonly certificate: PublicCertificate;
  /** The LB's bundle pointer (components/nodeBundles.ts): its first boot fetches what it names. */
  readonly bundlePointer: pulumi.Resource;
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

    const userData = encodeUserData(
      renderLoadBalancerBootstrap({
        stack: args.stack,
        node: args.node,
        domain: args.domain,
        certificateMode: args.certificate.mode,
      }),
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
        // Cattle: the LB holds no state, so a new bootstrap (a new domain or certificate mode)
        // means a new instance; everything else changes in place through its bundle.
        userDataReplaceOnChange: true,
        tags: tags("instance"),
      },
      // One interface, one instance: the interface with the fixed address and the Elastic IP is
      // the instance's primary one, which EC2 never detaches from a live instance, so a
      // replacement (a new bootstrap or lbAmi) terminates the old LB first: a short outage. Its
      // first boot fetches its bundle: the pointer must exist.
      {
        parent: this,
        dependsOn: [association, args.bundlePointer],
        deleteBeforeReplace: true,
      },
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
