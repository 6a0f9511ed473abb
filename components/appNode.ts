// One app node (s1 replica or s2 primary): the instance on its own data volume (none with
// `database: rds`), booted by the bootstrap; what it runs (Nginx, Gunicorn, the database) comes from
// its bundle.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { DbEngine } from "../model/config";
import { AppNodeSpec, DatabaseMode, DbRole, appNodesHoldData } from "../model/topology";
import { Tagger, snapshotTags } from "../model/tags";
import { renderAppNodeBootstrap } from "../cloud-init/appNode";
import { encodeUserData } from "../cloud-init/userDataEncoding";
import { instanceDefaults } from "./instanceDefaults";

export interface AppNodeArgs {
  readonly stack: string;
  /** This node (s1 or s2); its role says primary or replica. */
  readonly node: AppNodeSpec;
  /** The database engine: its packages and server settings are installed at first boot. */
  readonly engine: DbEngine;
  /** How the databases hold the data: the server settings at first boot follow it; `rds`: no volume. */
  readonly cluster: DatabaseMode;
  readonly instanceType: string;
  /** The image, as the stack recorded or configured it (components/nodeImage.ts). */
  readonly ami: pulumi.Input<string>;
  readonly subnetId: pulumi.Input<string>;
  /** The subnet's availability zone (the data volume must be in it). */
  readonly availabilityZone: pulumi.Input<string>;
  readonly securityGroupId: pulumi.Input<string>;
  readonly instanceProfileName: pulumi.Input<string>;
  /** The node's bundle pointer (components/nodeBundles.ts): its first boot fetches what it names. */
  readonly bundlePointer: pulumi.Resource;
  /** Protect instance and data volume from deletion and replacement. */
  readonly protectData: boolean;
  /** Size of the database volume in GiB (`dataVolumeGiB`): a change resizes it in place. */
  readonly dataVolumeGiB: number;
  readonly tags: Tagger;
}

export class AppNode extends pulumi.ComponentResource {
  readonly instanceId: pulumi.Output<string>;
  readonly privateIp: pulumi.Output<string>;
  readonly internalName: string;
  readonly role: DbRole;
  /** The database's own volume; none with `database: rds`. */
  readonly dataVolumeId?: pulumi.Output<string>;

  constructor(name: string, args: AppNodeArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:app:AppNode", name, {}, opts);
    const { node } = args;
    const tags = (what: string) => args.tags(node.role, `${node.name}-${what}`);
    // Stateful: the data outlives any instance, and neither goes away by accident.
    const stateful = { parent: this, protect: args.protectData };

    // With rds the node holds no data: no volume, and its bootstrap waits for none.
    const volume = appNodesHoldData(args.cluster)
      ? new aws.ebs.Volume(
          `${name}-data`,
          {
            availabilityZone: args.availabilityZone,
            // In place: the provider modifies a volume's size (ModifyVolume), it never replaces it
            // for one; AWS refuses a shrink. The node grows its filesystem (cloud-init/dataVolume.ts).
            size: args.dataVolumeGiB,
            type: "gp3",
            encrypted: true, // EC2.7
            // In the stack's daily snapshots (components/backups.ts).
            tags: { ...tags("data"), ...snapshotTags(args.stack) },
          },
          stateful,
        )
      : undefined;

    const bootstrap = (dataVolumeId?: string) =>
      encodeUserData(
        renderAppNodeBootstrap({
          stack: args.stack,
          node,
          engine: args.engine,
          cluster: args.cluster,
          ...(dataVolumeId !== undefined ? { dataVolumeId } : {}),
        }),
      );
    const userData = volume ? volume.id.apply(bootstrap) : pulumi.output(bootstrap());

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
      // A pet: what it runs changes through its bundle, in place. A new bootstrap must not replace
      // it unnoticed (a replacement, whatever its cause, boots the current one). Its image is the
      // stack's record, so it changes only when appAmi does, as a replacement the preview shows;
      // the README's runbooks roll either out one node at a time (the data volume re-attaches to
      // the new instance). The fixed address cannot be held by two instances: a replacement
      // deletes the old one first. Its first boot fetches its bundle: the pointer must exist.
      {
        ...stateful,
        ignoreChanges: ["userData", "userDataBase64"],
        deleteBeforeReplace: true,
        dependsOn: [args.bundlePointer],
      },
    );

    if (volume) {
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
    }

    this.instanceId = instance.id;
    this.privateIp = instance.privateIp;
    this.internalName = node.internalName;
    this.role = node.role;
    this.dataVolumeId = volume?.id;
    this.registerOutputs({
      instanceId: this.instanceId,
      privateIp: this.privateIp,
      dataVolumeId: this.dataVolumeId,
    });
  }
}
