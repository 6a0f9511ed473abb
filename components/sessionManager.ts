// The stack's Session Manager preferences (issue 20): its own shell document, whose sessions stream
// into the stack's sessions log group, encrypted with a key of its own.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { AwsAccount } from "../model/aws";
import { PROJECT, sessionDocumentName, sessionLogGroupName } from "../model/naming";
import { Tagger } from "../model/tags";
import { sessionLogKeyPolicy } from "./iamPolicies";

export interface SessionManagerArgs {
  readonly stack: string;
  readonly account: pulumi.Input<AwsAccount>;
  /** Retention of the sessions log group, in days (the stack's `logRetentionDays`). */
  readonly retentionDays: number;
  readonly tags: Tagger;
}

/** How long an idle session stays open, in minutes: AWS's default. */
export const IDLE_SESSION_MINUTES = 20;

/**
 * The shell preferences, as a Session document (AWS's "Session document schema"): a standard shell
 * as `ssm-user` (no Run As), streamed to CloudWatch Logs as it happens. With
 * `cloudWatchEncryptionEnabled` the agent refuses a session when it cannot confirm that the group
 * is KMS-encrypted (it finds the group first), so a session it cannot log there does not start.
 * Nothing goes to S3 (no bucket).
 */
export function sessionPreferences(stack: string): Record<string, unknown> {
  return {
    schemaVersion: "1.0",
    description: `${PROJECT} ${stack}: a shell on a node, streamed to ${sessionLogGroupName(stack)}`,
    sessionType: "Standard_Stream",
    inputs: {
      s3BucketName: "",
      s3KeyPrefix: "",
      s3EncryptionEnabled: true,
      cloudWatchLogGroupName: sessionLogGroupName(stack),
      cloudWatchEncryptionEnabled: true,
      cloudWatchStreamingEnabled: true,
      kmsKeyId: "",
      runAsEnabled: false,
      runAsDefaultUser: "",
      idleSessionTimeout: String(IDLE_SESSION_MINUTES),
      shellProfile: { linux: "", windows: "" },
    },
  };
}

/**
 * Not AWS's account-wide `SSM-SessionManagerRunShell`: that one document holds the preferences of
 * every session in the account and region that names no other, so a stack owning it would take it
 * from every other stack and from whoever set it by hand. This stack's document is used by name
 * (`aws ssm start-session --document-name`); the account's default stays as it is.
 */
export class SessionManager extends pulumi.ComponentResource {
  /** The document to start a logged shell with (`--document-name`). */
  readonly documentName: pulumi.Output<string>;
  /** `/webstack/<stack>/sessions`: the sessions' streams. */
  readonly logGroupName: pulumi.Output<string>;

  constructor(name: string, args: SessionManagerArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:access:SessionManager", name, {}, opts);
    const child = { parent: this };
    const tags = (what: string) => args.tags("shared", what);
    const groupName = sessionLogGroupName(args.stack);

    // A session's transcript may show a secret typed or printed: the group is encrypted with a key
    // of its own, which CloudWatch Logs may use for this group only; rotated (KMS.4).
    const key = new aws.kms.Key(
      `${name}-key`,
      {
        description: `${PROJECT} ${args.stack}: encrypts the Session Manager sessions' log group`,
        enableKeyRotation: true,
        deletionWindowInDays: 30,
        policy: pulumi
          .output(args.account)
          .apply((a) => JSON.stringify(sessionLogKeyPolicy(a, groupName))),
        tags: tags("sessions-key"),
      },
      child,
    );
    const group = new aws.cloudwatch.LogGroup(
      `${name}-logs`,
      {
        name: groupName,
        retentionInDays: args.retentionDays,
        kmsKeyId: key.arn,
        tags: tags("log-sessions"),
      },
      child,
    );
    // A fixed name (users type it), so a replacement deletes the old document first: AWS updates
    // only documents of schema 2.0 or later in place (the provider's note on aws.ssm.Document), so
    // a change to this 1.0 document's content may replace it.
    const document = new aws.ssm.Document(
      `${name}-document`,
      {
        name: sessionDocumentName(args.stack),
        documentType: "Session",
        documentFormat: "JSON",
        content: JSON.stringify(sessionPreferences(args.stack), null, 2),
        tags: tags("session-document"),
      },
      { ...child, dependsOn: [group], deleteBeforeReplace: true },
    );

    this.documentName = document.name;
    this.logGroupName = group.name;
    this.registerOutputs({ documentName: this.documentName, logGroupName: this.logGroupName });
  }
}
