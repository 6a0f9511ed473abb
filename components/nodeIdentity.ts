// One node's identity: an IAM role and instance profile with least privilege.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { DatabaseMode, NodeSpec, appNodesHoldData } from "../model/topology";
import { AwsAccount } from "../model/aws";
import { Tagger } from "../model/tags";
import { METRIC_NAMESPACE, sessionLogGroupName } from "../model/naming";
import { AGENT_METRIC_NAMESPACE } from "../cloud-init/monitoring";
import {
  PolicyDocument,
  ec2AssumeRolePolicy,
  handlesBackups,
  nodeAgentPolicy,
  nodeBackupPolicy,
  nodeBundlePolicy,
  nodeDatabaseAdminPolicy,
  nodeParameterPolicy,
  nodeReleasePolicy,
  nodeSessionLogPolicy,
  sessionManagerPolicy,
} from "./iamPolicies";
import { nodeLogGroupNames } from "./logGroups";

export interface NodeIdentityArgs {
  /** The node this identity belongs to. */
  readonly node: NodeSpec;
  readonly stack: string;
  /** Where the stack runs; parameter ARNs are built from it. */
  readonly account: pulumi.Input<AwsAccount>;
  /** ARN of the KMS key that encrypts the stack's parameters (and its bucket's objects). */
  readonly parameterKeyArn: pulumi.Input<string>;
  /** ARN of the stack's bucket, where the node's bundles (and the database's backups) are. */
  readonly bucketArn: pulumi.Input<string>;
  /** How the data is held: with `rds` no node ships or restores backups, none has database logs. */
  readonly database: DatabaseMode;
  /**
   * With `rds`, on the node that writes the schema and users: the RDS master user's secret, which
   * it alone may read.
   */
  readonly databaseAdminSecretArn?: pulumi.Input<string>;
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
    // SSM.1: Session Manager instead of SSH. No AWS-managed policy: this document names nothing
    // from the account, so it is known at preview (the policy pack checks it there).
    new aws.iam.RolePolicy(
      `${name}-session-manager`,
      { role: role.id, policy: JSON.stringify(sessionManagerPolicy()) },
      child,
    );
    // One inline policy per concern, most built from the account, the bucket and the key.
    const rolePolicy = (concern: string, document: pulumi.Output<PolicyDocument>) =>
      new aws.iam.RolePolicy(
        `${name}-${concern}`,
        { role: role.id, policy: document.apply((d) => JSON.stringify(d)) },
        child,
      );
    const inlinePolicy = (
      concern: string,
      document: (account: AwsAccount, bucketArn: string, keyArn: string) => PolicyDocument,
    ) =>
      rolePolicy(
        concern,
        pulumi
          .all([args.account, args.bucketArn, args.parameterKeyArn])
          .apply(([account, bucketArn, keyArn]) => document(account, bucketArn, keyArn)),
      );
    inlinePolicy("parameters", (account, _, keyArn) =>
      nodeParameterPolicy(account, args.stack, node.name, keyArn),
    );
    // The CloudWatch agent's logs and metrics, and the node tool's metrics (METRIC_NAMESPACE).
    inlinePolicy("agent", (account) =>
      nodeAgentPolicy(account, Object.values(nodeLogGroupNames(args.stack, node, args.database)), [
        AGENT_METRIC_NAMESPACE,
        METRIC_NAMESPACE,
      ]),
    );
    // Session Manager's sessions on this node, streamed by its SSM agent (sessionManager.ts).
    inlinePolicy("session-logs", (account) =>
      nodeSessionLogPolicy(account, sessionLogGroupName(args.stack)),
    );
    inlinePolicy("bundles", (account, bucketArn, keyArn) =>
      nodeBundlePolicy(account, args.stack, node, bucketArn, keyArn),
    );
    // The app's releases and secret variables: the app nodes only.
    const appNode = node.name;
    if (appNode !== "lb") {
      inlinePolicy("releases", (account, bucketArn, keyArn) =>
        nodeReleasePolicy(account, args.stack, appNode, bucketArn, keyArn),
      );
    }
    // The database's backups: the nodes that take, ship or restore them (model/backups.ts); with
    // rds, RDS's own.
    if (appNodesHoldData(args.database) && handlesBackups(node.name)) {
      inlinePolicy("backups", (account, bucketArn, keyArn) =>
        nodeBackupPolicy(account, node.name, bucketArn, keyArn),
      );
    }
    if (args.databaseAdminSecretArn !== undefined) {
      rolePolicy(
        "database-admin",
        pulumi
          .all([args.account, args.databaseAdminSecretArn, args.parameterKeyArn])
          .apply(([account, secretArn, keyArn]) =>
            nodeDatabaseAdminPolicy(account, secretArn, keyArn),
          ),
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
