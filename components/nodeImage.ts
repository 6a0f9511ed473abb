// The image a kind of node runs: recorded at the stack's first deploy, moved only by lbAmi/appAmi,
// and compared on every run with the newest official Debian 13 image.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { Architecture } from "../model/aws";
import { NodeName } from "../model/topology";
import { ImageKind, imageRecordName } from "../model/naming";
import { Tagger, TagRole } from "../model/tags";
import { newestDebian13AmiId } from "../platform/ami";

/** Where a kind's image comes from: the stack's record, or the config key that overrides it. */
export type ImageSource = "recorded" | "config";

/** What the `images` output says of one kind of node. */
export interface ImageReport {
  /** The AMI its instances run, or are created from. */
  readonly running: string;
  /** The newest official Debian 13 AMI for their architecture, looked up on this run. */
  readonly latest: string;
  readonly source: ImageSource;
}

/** Per kind: the key that moves its nodes, the record's tag role. */
export const IMAGE_KINDS: Readonly<
  Record<ImageKind, { configKey: "lbAmi" | "appAmi"; role: TagRole }>
> = {
  lb: { configKey: "lbAmi", role: "loadbalancer" },
  app: { configKey: "appAmi", role: "shared" },
};

/** A kind's nodes as the record's description and the warning name them: "the app nodes (s1, s2)". */
export function imageUsers(kind: ImageKind, nodes: readonly NodeName[]): string {
  return kind === "lb" ? "the LB" : `the app nodes (${nodes.join(", ")})`;
}

/** Where ops read how to roll an image out. */
export const IMAGE_RUNBOOK = 'README, Runbooks, "Rolling out a new image, node by node"';

/** The warning a run prints when Debian's newest image is not the one a kind of node runs. */
export function newerImageWarning(
  kind: ImageKind,
  nodes: readonly NodeName[],
  report: ImageReport,
): string | undefined {
  if (report.running === report.latest) return undefined;
  const { configKey } = IMAGE_KINDS[kind];
  const from = report.source === "config" ? `${configKey} in the stack's config` : "its record";
  return (
    `${imageUsers(kind, nodes)} run ${report.running} (${from}); the newest Debian 13 image is ${report.latest}. ` +
    `Nothing changes until you move to it: pulumi config set ${configKey} ${report.latest}, ` +
    `then roll it out as ${IMAGE_RUNBOOK} says.`
  );
}

export interface NodeImageArgs {
  readonly stack: string;
  /** Whose image: the LB's, or the app nodes'. */
  readonly kind: ImageKind;
  /** The nodes that run it (the topology's), as its record and warning name them. */
  readonly nodes: readonly NodeName[];
  /** The nodes' architecture, as EC2 reports their instance type: the newest image is looked up for it. */
  readonly architecture: Architecture;
  /**
   * The image the stack's config sets (lbAmi, appAmi): it wins and is written over the record.
   * @default the record's
   */
  readonly configured?: string;
  readonly tags: Tagger;
}

export class NodeImage extends pulumi.ComponentResource {
  /** The AMI the nodes are created from. */
  readonly amiId: pulumi.Output<string>;
  /** For the `images` output; resolving it has warned when Debian's newest image is another. */
  readonly report: pulumi.Output<ImageReport>;

  constructor(name: string, args: NodeImageArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:images:NodeImage", name, {}, opts);
    const { role } = IMAGE_KINDS[args.kind];
    // An invoke on every run, not a resource: it only ever reports.
    const latest = newestDebian13AmiId(args.architecture, { parent: this });

    // The stack's own record, in its state: a program cannot write its stack's config. Without a
    // configured image, ignoreChanges keeps the first look-up's value whatever Debian publishes
    // later; a configured one is written over it, so after a full `pulumi up` the record names what
    // the nodes run and removing the key moves nothing. `insecureValue`: `value` is always a secret
    // output, and an AMI id is not one (nor may the stack's outputs be).
    const record = new aws.ssm.Parameter(
      `${name}-record`,
      {
        name: imageRecordName(args.stack, args.kind),
        description: `webstack ${args.stack}: the AMI ${imageUsers(args.kind, args.nodes)} run`,
        type: "String",
        insecureValue: args.configured ?? latest,
        tier: "Standard",
        tags: args.tags(role, `image-${args.kind}`),
      },
      { parent: this, ...(args.configured ? {} : { ignoreChanges: ["insecureValue"] }) },
    );

    this.amiId = args.configured ? pulumi.output(args.configured) : record.insecureValue;
    const source: ImageSource = args.configured ? "config" : "recorded";
    this.report = pulumi.all([this.amiId, latest]).apply(([running, newest]) => {
      const report: ImageReport = { running, latest: newest, source };
      const warning = newerImageWarning(args.kind, args.nodes, report);
      if (warning) pulumi.log.warn(warning, this);
      return report;
    });
    this.registerOutputs({ amiId: this.amiId, report: this.report });
  }
}
