// IAM policy documents built in code, so tests and reviewers read the real statements.
import {
  ParameterScope,
  RELEASE_PREFIX,
  appSecretsPath,
  bundlePrefix,
  bundleStatusName,
  parameterPath,
  releaseCommandStatusName,
} from "../model/naming";
import { AppNodeName, NodeName, NodeSpec, PRIMARY_NODE } from "../model/topology";
import { AwsAccount } from "../model/aws";
import {
  BACKUP_NODE,
  BACKUP_PREFIX,
  BINLOG_NODE,
  FULL_BACKUP_PREFIX,
  RESTORE_NODE,
  binlogPrefix,
} from "../model/backups";

export interface PolicyStatement {
  readonly Sid?: string;
  readonly Effect: "Allow" | "Deny";
  readonly Principal?: "*" | Record<string, string | string[]>;
  readonly Action: string | string[];
  readonly Resource?: string | string[];
  readonly Condition?: Record<string, Record<string, string | string[]>>;
}

export interface PolicyDocument {
  readonly Version: "2012-10-17";
  readonly Statement: readonly PolicyStatement[];
}

export function policy(...statements: PolicyStatement[]): PolicyDocument {
  return { Version: "2012-10-17", Statement: statements };
}

/** Lets the EC2 service hand this role to an instance. */
export function ec2AssumeRolePolicy(): PolicyDocument {
  return policy({
    Effect: "Allow",
    Principal: { Service: "ec2.amazonaws.com" },
    Action: "sts:AssumeRole",
  });
}

/**
 * What the SSM agent needs for Session Manager (SSM.1, no SSH): registering the instance and
 * opening Session Manager's control and data channels, as AWS documents for a custom instance
 * profile ("Create a custom IAM instance profile for Session Manager"). Not
 * AmazonSSMManagedInstanceCore: that also lets the node read every String parameter in the account
 * (ssm:GetParameter(s) on "*") and serves Run Command (ec2messages:*), which the stack does not
 * use. The node reads its own parameters through nodeParameterPolicy only.
 */
export const SESSION_MANAGER_ACTIONS = [
  "ssm:UpdateInstanceInformation",
  "ssmmessages:CreateControlChannel",
  "ssmmessages:CreateDataChannel",
  "ssmmessages:OpenControlChannel",
  "ssmmessages:OpenDataChannel",
] as const;

export function sessionManagerPolicy(): PolicyDocument {
  return policy({
    Sid: "SessionManagerAgent",
    Effect: "Allow",
    Action: [...SESSION_MANAGER_ACTIONS],
    // IAM cannot scope these: ssmmessages has no resource type, and the agent calls
    // UpdateInstanceInformation for the instance it runs on, which the policy cannot name (the
    // role exists before the instance). Resource "*" is the only form that works.
    Resource: "*",
  });
}

/** Writing log events into some log groups (their streams), as the agents do: nothing else. */
function writeLogGroups(
  sid: string,
  account: AwsAccount,
  names: readonly string[],
): PolicyStatement {
  return {
    Sid: sid,
    Effect: "Allow",
    Action: ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
    // DescribeLogStreams is authorised on the group (":*"), the others on its streams.
    Resource: names.flatMap((name) => [
      `${logGroupArn(account, name)}:*`,
      `${logGroupArn(account, name)}:log-stream:*`,
    ]),
  };
}

function logGroupArn(account: AwsAccount, name: string): string {
  return `arn:${account.partition}:logs:${account.region}:${account.accountId}:log-group:${name}`;
}

/**
 * What the CloudWatch agent and the node's own tool write: log events into the node's own log
 * groups (Pulumi creates them and sets their retention: no logs:CreateLogGroup and no
 * logs:PutRetentionPolicy), and metrics into the namespaces the node writes. Not
 * CloudWatchAgentServerPolicy: that allows creating any log group, changing any group's
 * retention (the flow logs' included) and writing metrics in any namespace.
 *
 * No ec2:DescribeTags or ec2:DescribeVolumes: the agent needs them only for tag-based dimensions
 * (ec2_metadata_tags, AutoScalingGroupName) and EBS volume dimensions, which its config does not
 * ask for; the InstanceId dimension comes from the instance metadata (IMDS).
 */
export function nodeAgentPolicy(
  account: AwsAccount,
  logGroupNames: readonly string[],
  metricNamespaces: readonly string[],
): PolicyDocument {
  return policy(writeLogGroups("WriteOwnLogGroups", account, logGroupNames), {
    Sid: "PutMetricsInOwnNamespaces",
    Effect: "Allow",
    Action: "cloudwatch:PutMetricData",
    // PutMetricData has no resource type: the namespace is the only scope IAM offers, and no
    // condition key reaches the metric's dimensions (a node can write another node's
    // InstanceId or Node dimension in these namespaces).
    Resource: "*",
    Condition: { StringEquals: { "cloudwatch:namespace": [...metricNamespaces] } },
  });
}

/**
 * What the SSM agent needs to stream a session into the stack's sessions log group (issue 20), as
 * its shell plugin does it (aws/amazon-ssm-agent, agent/session/shell/shell.go): DescribeLogGroups
 * to find the group and check that it is KMS-encrypted (the preferences demand it), then a stream
 * per session. DescribeLogGroups is authorised on the account's log groups as a whole (the ARN with
 * an empty group name), not on one group: the region's log group names and settings, never their
 * events. No KMS permission: CloudWatch Logs encrypts with the group's key itself, as its key
 * policy allows (sessionLogKeyPolicy).
 */
export function nodeSessionLogPolicy(account: AwsAccount, logGroupName: string): PolicyDocument {
  return policy(writeLogGroups("StreamSessions", account, [logGroupName]), {
    Sid: "FindSessionLogGroup",
    Effect: "Allow",
    Action: "logs:DescribeLogGroups",
    Resource: logGroupArn(account, "*"),
  });
}

/**
 * Key policy of the sessions log group's KMS key: the account administers it through IAM, and
 * CloudWatch Logs of this region may use it for that one log group only (the encryption context
 * CloudWatch Logs sets is the group's ARN), as AWS's "Encrypt log data in CloudWatch Logs using AWS
 * KMS" shows.
 */
export function sessionLogKeyPolicy(account: AwsAccount, logGroupName: string): PolicyDocument {
  return policy(
    {
      Sid: "AccountAdministersThroughIam",
      Effect: "Allow",
      Principal: { AWS: `arn:${account.partition}:iam::${account.accountId}:root` },
      Action: "kms:*",
      Resource: "*",
    },
    {
      Sid: "CloudWatchLogsEncryptsSessions",
      Effect: "Allow",
      Principal: { Service: `logs.${account.region}.${account.dnsSuffix}` },
      Action: [
        "kms:Encrypt*",
        "kms:Decrypt*",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:Describe*",
      ],
      Resource: "*",
      Condition: {
        ArnEquals: { "kms:EncryptionContext:aws:logs:arn": logGroupArn(account, logGroupName) },
      },
    },
  );
}

function parameterArn(account: AwsAccount, path: string): string {
  return `arn:${account.partition}:ssm:${account.region}:${account.accountId}:parameter${path}`;
}

/**
 * Decryption of some parameters' values only, scoped by the encryption context SSM sets
 * (PARAMETER_ARN): no other parameter, and no other service, gets the key's help.
 */
function decryptParametersThroughSsm(
  sid: string,
  account: AwsAccount,
  parameterKeyArn: string,
  parameterArns: string | string[],
): PolicyStatement {
  return {
    Sid: sid,
    Effect: "Allow",
    Action: "kms:Decrypt",
    Resource: parameterKeyArn,
    Condition: {
      StringEquals: { "kms:ViaService": `ssm.${account.region}.${account.dnsSuffix}` },
      StringLike: { "kms:EncryptionContext:PARAMETER_ARN": parameterArns },
    },
  };
}

/**
 * Read access to one node's parameters and the shared ones, nothing else. Decryption is scoped
 * by the encryption context SSM sets (PARAMETER_ARN), so a node cannot decrypt another's values
 * even through another API path.
 */
export function nodeParameterPolicy(
  account: AwsAccount,
  stack: string,
  node: NodeName,
  parameterKeyArn: string,
): PolicyDocument {
  const scopes: ParameterScope[] = [node, "shared"];
  const below = scopes.map((scope) => parameterArn(account, `${parameterPath(stack, scope)}/*`));
  const paths = scopes.map((scope) => parameterArn(account, parameterPath(stack, scope)));
  return policy(
    {
      Sid: "ReadOwnAndSharedParameters",
      Effect: "Allow",
      Action: ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"],
      // GetParametersByPath is authorised on the path itself; the others on each parameter.
      Resource: [...paths, ...below],
    },
    decryptParametersThroughSsm("DecryptOwnAndSharedParameters", account, parameterKeyArn, below),
  );
}

/**
 * The stack's key, for one action, only as S3 uses it for the stack's bucket: through S3, with the
 * encryption context S3 sets with a bucket key (the bucket's ARN, so the prefix is S3's to enforce).
 */
function useKeyThroughS3(
  sid: string,
  action: string,
  account: AwsAccount,
  bucketArn: string,
  keyArn: string,
): PolicyStatement {
  return {
    Sid: sid,
    Effect: "Allow",
    Action: action,
    Resource: keyArn,
    Condition: {
      StringEquals: {
        "kms:ViaService": `s3.${account.region}.${account.dnsSuffix}`,
        "kms:EncryptionContext:aws:s3:arn": bucketArn,
      },
    },
  };
}

/**
 * A node's share of the bundles (issue 17), against a compromised node too: it reads its own
 * bundles only (no listing), decrypts only through S3 for this bucket (with the bucket key, S3's
 * encryption context is the bucket's ARN, so the prefix is S3's to enforce), reports its own status
 * only, and reads the status of the nodes it waits for. Its pointer is under its own parameter
 * path, which nodeParameterPolicy already lets it read.
 */
export function nodeBundlePolicy(
  account: AwsAccount,
  stack: string,
  node: Pick<NodeSpec, "name" | "appliesAfter">,
  bucketArn: string,
  keyArn: string,
): PolicyDocument {
  const waitsFor = node.appliesAfter;
  return policy(
    {
      Sid: "ReadOwnBundles",
      Effect: "Allow",
      Action: "s3:GetObject",
      Resource: `${bucketArn}/${bundlePrefix(node.name)}*`,
    },
    useKeyThroughS3("DecryptBundlesThroughS3", "kms:Decrypt", account, bucketArn, keyArn),
    {
      Sid: "ReportOwnBundleStatus",
      Effect: "Allow",
      Action: "ssm:PutParameter",
      Resource: parameterArn(account, bundleStatusName(stack, node.name)),
    },
    ...(waitsFor.length > 0
      ? [
          {
            Sid: "ReadStatusOfNodesAppliedFirst",
            Effect: "Allow" as const,
            Action: "ssm:GetParameter",
            Resource: waitsFor.map((other) =>
              parameterArn(account, bundleStatusName(stack, other)),
            ),
          },
        ]
      : []),
  );
}

/**
 * An app node's share of the app's releases (issue 18): it reads every release (no listing; the
 * bundle's policy already lets S3 decrypt for it) and the app's secret variables, decrypted
 * through SSM for those parameters only. The primary reports its release command's outcome; the
 * replica reads it before it takes a release. The LB gets none of this.
 */
export function nodeReleasePolicy(
  account: AwsAccount,
  stack: string,
  node: AppNodeName,
  bucketArn: string,
  parameterKeyArn: string,
): PolicyDocument {
  const secrets = parameterArn(account, `${appSecretsPath(stack)}/*`);
  const commandStatus = parameterArn(account, releaseCommandStatusName(stack, PRIMARY_NODE));
  return policy(
    {
      Sid: "ReadAppReleases",
      Effect: "Allow",
      Action: "s3:GetObject",
      Resource: `${bucketArn}/${RELEASE_PREFIX}*`,
    },
    {
      Sid: "ReadAppSecrets",
      Effect: "Allow",
      Action: ["ssm:GetParameter", "ssm:GetParameters"],
      Resource: secrets,
    },
    decryptParametersThroughSsm("DecryptAppSecrets", account, parameterKeyArn, secrets),
    node === PRIMARY_NODE
      ? {
          Sid: "ReportReleaseCommand",
          Effect: "Allow",
          Action: "ssm:PutParameter",
          Resource: commandStatus,
        }
      : {
          Sid: "ReadReleaseCommandStatus",
          Effect: "Allow",
          Action: "ssm:GetParameter",
          Resource: commandStatus,
        },
  );
}

/** Whether a node takes, ships or restores the database's backups, and so has a backups policy. */
export function handlesBackups(node: NodeName): boolean {
  return [BACKUP_NODE, BINLOG_NODE, RESTORE_NODE].includes(node as AppNodeName);
}

/**
 * A node's share of the database's backups (issue 20, model/backups.ts), against a compromised node
 * too. BACKUP_NODE writes full backups, BINLOG_NODE its own binlogs, each under its prefix only:
 * neither can write the other's, and nobody deletes (the bucket is versioned: an overwritten backup
 * stays an old version). RESTORE_NODE reads and lists the backups, nothing else of the bucket's.
 * Writing with SSE-KMS takes kms:GenerateDataKey, through S3 for this bucket only; reading (and a
 * multipart upload's completion) takes kms:Decrypt, which nodeBundlePolicy already grants every node
 * on the same terms.
 */
export function nodeBackupPolicy(
  account: AwsAccount,
  node: NodeName,
  bucketArn: string,
  keyArn: string,
): PolicyDocument {
  if (!handlesBackups(node)) throw new Error(`${node} has no part in the backups`);
  const writes: PolicyStatement[] = [
    ...(node === BACKUP_NODE
      ? [
          {
            Sid: "WriteFullBackups",
            Effect: "Allow" as const,
            Action: "s3:PutObject",
            Resource: `${bucketArn}/${FULL_BACKUP_PREFIX}*`,
          },
        ]
      : []),
    ...(node === BINLOG_NODE
      ? [
          {
            Sid: "ShipOwnBinlogs",
            Effect: "Allow" as const,
            Action: "s3:PutObject",
            Resource: `${bucketArn}/${binlogPrefix(BINLOG_NODE)}*`,
          },
        ]
      : []),
  ];
  const restores: PolicyStatement[] =
    node === RESTORE_NODE
      ? [
          {
            Sid: "ReadBackups",
            Effect: "Allow",
            Action: "s3:GetObject",
            Resource: `${bucketArn}/${BACKUP_PREFIX}*`,
          },
          {
            Sid: "ListBackups",
            Effect: "Allow",
            Action: "s3:ListBucket",
            Resource: bucketArn,
            // A listing without this prefix (the whole bucket) is refused.
            Condition: { StringLike: { "s3:prefix": `${BACKUP_PREFIX}*` } },
          },
        ]
      : [];
  return policy(
    ...writes,
    ...(writes.length > 0
      ? [
          useKeyThroughS3(
            "EncryptBackupsThroughS3",
            "kms:GenerateDataKey",
            account,
            bucketArn,
            keyArn,
          ),
        ]
      : []),
    ...restores,
  );
}

/**
 * With `database: rds`, the node that writes the schema and users (s2) reads the RDS master user's
 * secret, that one secret only, and decrypts it only through Secrets Manager for that secret (the
 * encryption context Secrets Manager sets is the secret's ARN). No DescribeSecret, no listing, no
 * write: RDS alone rotates it.
 */
export function nodeDatabaseAdminPolicy(
  account: AwsAccount,
  secretArn: string,
  keyArn: string,
): PolicyDocument {
  return policy(
    {
      Sid: "ReadDatabaseAdminSecret",
      Effect: "Allow",
      Action: "secretsmanager:GetSecretValue",
      Resource: secretArn,
    },
    {
      Sid: "DecryptDatabaseAdminSecretThroughSecretsManager",
      Effect: "Allow",
      Action: "kms:Decrypt",
      Resource: keyArn,
      Condition: {
        StringEquals: {
          "kms:ViaService": `secretsmanager.${account.region}.${account.dnsSuffix}`,
          "kms:EncryptionContext:SecretARN": secretArn,
        },
      },
    },
  );
}

/** The stack bucket answers over TLS only (S3.5): anything else is denied, whoever asks. */
export function tlsOnlyBucketPolicy(bucketArn: string): PolicyDocument {
  return policy({
    Sid: "DenyInsecureTransport",
    Effect: "Deny",
    Principal: "*",
    Action: "s3:*",
    Resource: [bucketArn, `${bucketArn}/*`],
    Condition: { Bool: { "aws:SecureTransport": "false" } },
  });
}

/** VPC flow logs assume this role only for this account's flow logs (confused-deputy guard). */
export function flowLogsAssumeRolePolicy(account: AwsAccount): PolicyDocument {
  return policy({
    Effect: "Allow",
    Principal: { Service: "vpc-flow-logs.amazonaws.com" },
    Action: "sts:AssumeRole",
    Condition: {
      StringEquals: { "aws:SourceAccount": account.accountId },
      ArnLike: {
        "aws:SourceArn": `arn:${account.partition}:ec2:${account.region}:${account.accountId}:vpc-flow-log/*`,
      },
    },
  });
}

/**
 * Data Lifecycle Manager assumes the stack's snapshot role. No condition: AWS's own default DLM role
 * trusts dlm.amazonaws.com alone, and a confused-deputy key DLM did not set would stop the
 * snapshots without an error anyone sees.
 */
export function dlmAssumeRolePolicy(): PolicyDocument {
  return policy({
    Effect: "Allow",
    Principal: { Service: "dlm.amazonaws.com" },
    Action: "sts:AssumeRole",
  });
}

/**
 * AWS's managed policy for DLM's snapshot policies (create, tag and delete snapshots), in the
 * stack's partition. AWS keeps it current as DLM changes.
 */
export function dlmServiceRolePolicyArn(account: AwsAccount): string {
  return `arn:${account.partition}:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole`;
}

/** Writing flow-log records into one log group. */
export function flowLogsDeliveryPolicy(logGroupArn: string): PolicyDocument {
  return policy({
    Sid: "DeliverFlowLogs",
    Effect: "Allow",
    Action: [
      "logs:CreateLogStream",
      "logs:PutLogEvents",
      "logs:DescribeLogGroups",
      "logs:DescribeLogStreams",
    ],
    Resource: [logGroupArn, `${logGroupArn}:*`],
  });
}

/** Let's Encrypt: the LB stores what it obtained in its own one parameter, encrypted with the stack's key. */
export function persistSiteCertificatePolicy(
  account: AwsAccount,
  parameterName: string,
  parameterKeyArn: string,
): PolicyDocument {
  const arn = parameterArn(account, parameterName);
  return policy(
    { Sid: "PersistSiteCertificate", Effect: "Allow", Action: "ssm:PutParameter", Resource: arn },
    {
      Sid: "EncryptSiteCertificate",
      Effect: "Allow",
      Action: ["kms:Encrypt", "kms:GenerateDataKey"],
      Resource: parameterKeyArn,
      Condition: {
        StringEquals: {
          "kms:ViaService": `ssm.${account.region}.${account.dnsSuffix}`,
          "kms:EncryptionContext:PARAMETER_ARN": arn,
        },
      },
    },
  );
}

/** ACM: the LB exports exactly one certificate. */
export function exportSiteCertificatePolicy(certificateArn: string): PolicyDocument {
  return policy({
    Sid: "ExportSiteCertificate",
    Effect: "Allow",
    Action: "acm:ExportCertificate",
    Resource: certificateArn,
  });
}

/**
 * Key policy of the alarm topic's KMS key: the account administers it through IAM, and CloudWatch
 * may use it to publish this account's alarms (the AWS-managed aws/sns key does not allow that).
 */
export function alarmTopicKeyPolicy(account: AwsAccount): PolicyDocument {
  return policy(
    {
      Sid: "AccountAdministersThroughIam",
      Effect: "Allow",
      Principal: { AWS: `arn:${account.partition}:iam::${account.accountId}:root` },
      Action: "kms:*",
      Resource: "*",
    },
    {
      Sid: "CloudWatchPublishesAlarms",
      Effect: "Allow",
      Principal: { Service: "cloudwatch.amazonaws.com" },
      Action: ["kms:Decrypt", "kms:GenerateDataKey*"],
      Resource: "*",
      Condition: { StringEquals: { "aws:SourceAccount": account.accountId } },
    },
  );
}
