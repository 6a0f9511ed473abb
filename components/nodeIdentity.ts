// One node's identity: an IAM role and instance profile with least privilege.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { NodeSpec } from "../model/topology";
import { AwsAccount } from "../model/aws";
import { Tagger } from "../model/tags";
import {
  NODE_MANAGED_POLICIES,
  PolicyDocument,
  ec2AssumeRolePolicy,
  managedPolicyArn,
  nodeBundlePolicy,
  nodeParameterPolicy,
  nodeReleasePolicy,
} from "./iamPolicies";

export interface NodeIdentityArgs {
  /** The node this identity belongs to. */
  readonly node: NodeSpec;
  readonly stack: string;
  /** Where the stack runs; parameter ARNs are built from it. */
  readonly account: pulumi.Input<AwsAccount>;
  /** ARN of the KMS key that encrypts the stack's parameters (and its bucket's objects). */
  readonly parameterKeyArn: pulumi.Input<string>;
  /** ARN of the stack's bucket, where the node's bundles are. */
  readonly bucketArn: pulumi.Input<string>;
  readonly tags: Tagger;
}

export class NodeIdentity extends pulumi.ComponentResource {
  readonly roleArn: pulumi.Output<string>;
  readonly roleName: pulumi.Output<string>;
  /** Name to pass as an instance's `iamInstanceProfile`. */
  readonly instanceProfileName: pulumi.Output<string>;

  constructor(name: string, args: NodeIdentityArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:identity:NodeIdentity", name, {}, opts);
    const child = { parent: this };
    const { node } = args;
    const tags = args.tags(node.role, `${node.name}-role`);

    const role = new aws.iam.Role(
      `${name}-role`,
      {
        description: `webstack ${args.stack} ${node.name} (${node.role}): instance role`,
        assumeRolePolicy: JSON.stringify(ec2AssumeRolePolicy()),
        tags,
      },
      child,
    );
    // SSM.1 (Session Manager instead of SSH) and the CloudWatch agent.
    for (const policyName of NODE_MANAGED_POLICIES) {
      new aws.iam.RolePolicyAttachment(
        `${name}-${policyName}`,
        {
          role: role.name,
          policyArn: pulumi
            .output(args.account)
            .apply((a) => managedPolicyArn(a.partition, policyName)),
        },
        child,
      );
    }
    // One inline policy per concern, each built from the account, the bucket and the key.
    const inlinePolicy = (
      concern: string,
      document: (account: AwsAccount, bucketArn: string, keyArn: string) => PolicyDocument,
    ) =>
      new aws.iam.RolePolicy(
        `${name}-${concern}`,
        {
          role: role.id,
          policy: pulumi
            .all([args.account, args.bucketArn, args.parameterKeyArn])
            .apply(([account, bucketArn, keyArn]) =>
              JSON.stringify(document(account, bucketArn, keyArn)),
            ),
        },
        child,
      );
    inlinePolicy("parameters", (account, _, keyArn) =>
      nodeParameterPolicy(account, args.stack, node.name, keyArn),
    );
    inlinePolicy("bundles", (account, bucketArn, keyArn) =>
      nodeBundlePolicy(account, args.stack, node.name, bucketArn, keyArn),
    );
    // The app's releases and secret variables: the app nodes only.
    const appNode = node.name;
    if (appNode !== "lb") {
      inlinePolicy("releases", (account, bucketArn, keyArn) =>
        nodeReleasePolicy(account, args.stack, appNode, bucketArn, keyArn),
      );
    }
    const profile = new aws.iam.InstanceProfile(
      `${name}-profile`,
      { role: role.name, tags },
      child,
    );

    this.roleArn = role.arn;
    this.roleName = role.name;
    this.instanceProfileName = profile.name;
    this.registerOutputs({
      roleArn: this.roleArn,
      roleName: this.roleName,
      instanceProfileName: this.instanceProfileName,
    });
  }
}
