// What runs on each node (issue 17): every node's bundle rendered, released together, uploaded
// content-addressed to the stack's bucket, and pointed at by the node's SSM parameter.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { bundlePointerName } from "../model/naming";
import { NodeName, byNodeOrder, nodeRole } from "../model/topology";
import { Tagger } from "../model/tags";
import { AppNodeParams, AppReleaseParams, renderAppNodeBundle } from "../cloud-init/appNode";
import { publishBundles, renderBundlePointer } from "../cloud-init/bundle";
import { RdsEndpoint } from "../cloud-init/database";
import {
  CertificateSetup,
  LoadBalancerParams,
  renderLoadBalancerBundle,
} from "../cloud-init/loadBalancer";
import { ssmParameter } from "./parameter";

export interface NodeBundlesArgs {
  readonly stack: string;
  /** The stack's bucket (components/stackBucket.ts). */
  readonly bucketName: pulumi.Input<string>;
  /** The key the bucket encrypts with: each object says so itself too. */
  readonly keyArn: pulumi.Input<string>;
  /** PEM of the private CA (public): every node's bundle carries it. */
  readonly caCertPem: pulumi.Input<string>;
  /** What each app node runs, but the CA, the app release, the SSM agent's package and RDS. */
  readonly appNodes: readonly Omit<
    AppNodeParams,
    "caCertPem" | "release" | "ssmAgentUrl" | "rds"
  >[];
  /** With `database: rds`: the instance (known once RDS created it), for every app node. */
  readonly rds?: pulumi.Input<RdsEndpoint>;
  /** The app release every app node runs (known once its archive and secrets are). */
  readonly release: { readonly [K in keyof AppReleaseParams]: pulumi.Input<AppReleaseParams[K]> };
  /** What the LB runs, but the CA, its certificate's setup and the SSM agent's package. */
  readonly loadBalancer: Omit<LoadBalancerParams, "caCertPem" | "certificate" | "ssmAgentUrl">;
  /** The SSM agent's package in the stack's region (`ssmAgentPackageUrl`), for every node. */
  readonly ssmAgentUrl: pulumi.Input<string>;
  /** How the LB's certificate arrives (known once the certificate's resources are). */
  readonly certificate: pulumi.Input<CertificateSetup>;
  readonly tags: Tagger;
}

/** Where a node's current bundle is: what ops look at, and what the node reads. */
export interface BundleRef {
  readonly pointer: string;
  readonly key: pulumi.Output<string>;
  readonly sha256: pulumi.Output<string>;
}

export class NodeBundles extends pulumi.ComponentResource {
  /** Each node's pointer parameter: its instance is created once its bundle is published. */
  readonly pointers: Readonly<Record<NodeName, aws.ssm.Parameter>>;
  readonly refs: Readonly<Record<NodeName, BundleRef>>;
  /** The release every node's current bundle names: one rollout, whichever nodes it changes. */
  readonly release: pulumi.Output<string>;

  constructor(name: string, args: NodeBundlesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:bundles:NodeBundles", name, {}, opts);
    const child = { parent: this };

    const published = pulumi
      .all([
        args.caCertPem,
        args.certificate,
        pulumi.output(args.release),
        args.ssmAgentUrl,
        pulumi.output(args.rds),
      ])
      .apply(([caCertPem, certificate, release, ssmAgentUrl, rds]) =>
        publishBundles([
          renderLoadBalancerBundle({ ...args.loadBalancer, caCertPem, certificate, ssmAgentUrl }),
          ...args.appNodes.map((n) =>
            renderAppNodeBundle({ ...n, caCertPem, release, ssmAgentUrl, ...(rds ? { rds } : {}) }),
          ),
        ]),
      );

    const pointers = {} as Record<NodeName, aws.ssm.Parameter>;
    const refs = {} as Record<NodeName, BundleRef>;
    // The LB first, then the app nodes by name (s1, s2, …), as the stack's outputs list them.
    const nodes = [
      args.loadBalancer.node.name,
      ...args.appNodes.map((n) => n.node.name).sort(byNodeOrder),
    ];
    for (const node of nodes) {
      const bundle = published.apply(({ bundles }) => {
        const found = bundles.find((b) => b.node === node);
        if (!found) throw new Error(`no bundle rendered for ${node}`);
        return found;
      });
      // A new key per content: the object is replaced (the old one deleted once the pointer
      // moved) and S3 never serves one key with two contents. No tags: S3 objects take ten at
      // most; the bucket's say whose they are.
      const object = new aws.s3.BucketObjectv2(
        `${name}-${node}`,
        {
          bucket: args.bucketName,
          key: bundle.key,
          content: bundle.text,
          contentType: "application/json",
          serverSideEncryption: "aws:kms",
          kmsKeyId: args.keyArn,
          bucketKeyEnabled: true,
        },
        child,
      );
      const pointer = bundlePointerName(args.stack, node);
      pointers[node] = ssmParameter(
        `${name}-${node}-pointer`,
        {
          name: pointer,
          description: `webstack ${args.stack} ${node}: its current bundle (bucket, key, sha256)`,
          // From the object's key: the pointer moves only once the object exists.
          value: pulumi
            .all([args.bucketName, object.key, bundle.sha256])
            .apply(([bucket, key, sha256]) => renderBundlePointer(bucket, key, sha256)),
          tags: args.tags(nodeRole(node), `${node}-bundle-pointer`),
        },
        child,
      );
      refs[node] = { pointer, key: object.key, sha256: bundle.sha256 };
    }

    this.pointers = pointers;
    this.refs = refs;
    this.release = published.release;
    this.registerOutputs({ release: this.release });
  }
}
