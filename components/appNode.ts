// One app node (s1 replica or s2 primary): Nginx + Gunicorn + the database, on its own data volume.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { Architecture } from "../model/aws";
import { DbEngine } from "../model/config";
import { AppNodeSpec, DbRole } from "../model/topology";
import { Tagger } from "../model/tags";
import { AppNodeParameterNames, renderAppNodeUserData } from "../cloud-init/appNode";
import { NodeMonitoring } from "../cloud-init/monitoring";
import { RequestLimits } from "../model/limits";
import { encodeUserData } from "../cloud-init/userDataEncoding";
import { instanceDefaults } from "./instanceDefaults";

export interface AppNodeArgs {
  /** This node (s1 or s2); its role says primary or replica. */
  readonly node: AppNodeSpec;
  /** The primary's and the replica's fixed addresses. */
  readonly primaryIp: string;
  readonly replicaIp: string;
  /** Both app nodes' addresses (database users for each). */
  readonly appNodeIps: readonly string[];
  readonly engine: DbEngine;
  /** How long a request may take and how large it may be, at every layer. */
  readonly limits: RequestLimits;
  readonly instanceType: string;
  /** The instance type's architecture, as EC2 reports it: the packages' (the image is chosen for it). */
  readonly architecture: Architecture;
  /** The image, as the stack recorded or configured it (components/nodeImage.ts). */
  readonly ami: pulumi.Input<string>;
  readonly subnetId: pulumi.Input<string>;
  /** The subnet's availability zone (the data volume must be in it). */
  readonly availabilityZone: pulumi.Input<string>;
  readonly securityGroupId: pulumi.Input<string>;
  readonly instanceProfileName: pulumi.Input<string>;
  /** PEM of the private CA (public). */
  readonly caCertPem: pulumi.Input<string>;
  readonly parameterNames: AppNodeParameterNames;
  /** Protect instance and data volume from deletion and replacement. */
  readonly protectData: boolean;
  /** Size of the database volume. @default 20 */
  readonly dataVolumeGiB?: number;
  /** Logs and metrics of this node. */
  readonly monitoring: NodeMonitoring;
  readonly tags: Tagger;
}

export class AppNode extends pulumi.ComponentResource {
  readonly instanceId: pulumi.Output<string>;
  readonly privateIp: pulumi.Output<string>;
  readonly internalName: string;
  readonly role: DbRole;
  readonly dataVolumeId: pulumi.Output<string>;

  constructor(name: string, args: AppNodeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:app:AppNode", name, {}, opts);
    const { node } = args;
    const tags = (what: string) => args.tags(node.role, `${node.name}-${what}`);
    // Stateful: the data outlives any instance, and neither goes away by accident.
    const stateful = { parent: this, protect: args.protectData };

    const volume = new aws.ebs.Volume(
      `${name}-data`,
      {
        availabilityZone: args.availabilityZone,
        size: args.dataVolumeGiB ?? 20,
        type: "gp3",
        encrypted: true, // EC2.7
        tags: tags("data"),
      },
      stateful,
    );

    const userData = pulumi.all([args.caCertPem, volume.id]).apply(([caCertPem, dataVolumeId]) =>
      encodeUserData(
        renderAppNodeUserData({
          node,
          primaryIp: args.primaryIp,
          replicaIp: args.replicaIp,
          appNodeIps: args.appNodeIps,
          engine: args.engine,
          limits: args.limits,
          caCertPem,
          dataVolumeId,
          parameters: args.parameterNames,
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
          rootVolumeGiB: 16,
          rootTags: tags("root"),
          userData,
        }),
        subnetId: args.subnetId,
        privateIp: node.privateIp,
        associatePublicIpAddress: false, // EC2.9
        vpcSecurityGroupIds: [args.securityGroupId],
        iamInstanceProfile: args.instanceProfileName,
        ebsOptimized: true,
        disableApiTermination: args.protectData,
        tags: tags("instance"),
      },
      // A pet: a new user-data must not replace it unnoticed (a replacement, whatever its cause,
      // boots the current one). Its image is the stack's record, so it changes only when appAmi
      // does, as a replacement the preview shows; the README's runbooks roll either out one node
      // at a time (the data volume re-attaches to the new instance). The fixed address cannot be
      // held by two instances: a replacement deletes the old one first.
      { ...stateful, ignoreChanges: ["userData", "userDataBase64"], deleteBeforeReplace: true },
    );

    new aws.ec2.VolumeAttachment(
      `${name}-data-attachment`,
      {
        deviceName: "/dev/sdf",
        volumeId: volume.id,
        instanceId: instance.id,
        stopInstanceBeforeDetaching: true,
      },
      { parent: this },
    );

    this.instanceId = instance.id;
    this.privateIp = instance.privateIp;
    this.internalName = node.internalName;
    this.role = node.role;
    this.dataVolumeId = volume.id;
    this.registerOutputs({
      instanceId: this.instanceId,
      privateIp: this.privateIp,
      dataVolumeId: this.dataVolumeId,
    });
  }
}
