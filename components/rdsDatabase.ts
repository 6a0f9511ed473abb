// The stack's database with `database: rds`: one Amazon RDS for MariaDB instance, Multi-AZ,
// encrypted with the stack's key, TLS required, its master password kept by RDS in Secrets Manager.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import * as random from "@pulumi/random";
import { PORTS } from "../model/topology";
import { Tagger } from "../model/tags";
import { RdsEndpoint } from "../cloud-init/database";
import {
  RDS_CA_IDENTIFIER,
  RDS_ENGINE,
  RDS_ENGINE_VERSION,
  RDS_LOG_EXPORTS,
  RDS_MASTER_USERNAME,
  RDS_PARAMETER_FAMILY,
  rdsIdentifier,
  rdsLogGroupName,
} from "../model/rds";

export interface RdsDatabaseArgs {
  readonly stack: string;
  /** The two private subnets, one per AZ: the instance and its Multi-AZ standby. */
  readonly subnetIds: readonly pulumi.Input<string>[];
  /** Its own security group, made from the flow table (components/firewalls.ts). */
  readonly securityGroupId: pulumi.Input<string>;
  /** The stack's KMS key (components/parameterKey.ts): the storage, its snapshots and the master secret. */
  readonly keyArn: pulumi.Input<string>;
  /** The instance class (config `rdsInstanceClass`). */
  readonly instanceClass: string;
  /** gp3 storage in GiB (config `dataVolumeGiB`). */
  readonly allocatedStorageGiB: number;
  /** Days RDS keeps automated backups (config `backupRetentionDays`). */
  readonly backupRetentionDays: number;
  /** Deletion protection, Pulumi's `protect`, and no deletion without a final snapshot either way. */
  readonly protectData: boolean;
  /** Retention of the instance's log groups (config `logRetentionDays`). */
  readonly logRetentionDays: number;
  readonly tags: Tagger;
}

export class RdsDatabase extends pulumi.ComponentResource {
  readonly identifier: string;
  readonly address: pulumi.Output<string>;
  readonly port: pulumi.Output<number>;
  readonly arn: pulumi.Output<string>;
  readonly adminSecretArn: pulumi.Output<string>;
  /** address, port and the admin secret, for the nodes' bundles. */
  readonly endpoint: pulumi.Output<RdsEndpoint>;

  constructor(name: string, args: RdsDatabaseArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:database:RdsDatabase", name, {}, opts);
    const child = { parent: this };
    const tags = (what: string) => args.tags("database", what);
    const identifier = rdsIdentifier(args.stack);

    const subnets = new aws.rds.SubnetGroup(
      `${name}-subnets`,
      {
        description: `webstack ${args.stack}: the RDS instance's private subnets, one per AZ`,
        subnetIds: [...args.subnetIds],
        tags: tags("rds-subnets"),
      },
      child,
    );
    // Dynamic parameters: they apply without a reboot. MariaDB 11.8 on RDS speaks TLS 1.2 and 1.3
    // only, so no tls_version is set (see the README).
    const parameters = new aws.rds.ParameterGroup(
      `${name}-parameters`,
      {
        family: RDS_PARAMETER_FAMILY,
        description: `webstack ${args.stack}: TLS required, slow queries logged to CloudWatch`,
        parameters: [
          // TLS only: a plain connection is refused, whatever the user.
          { name: "require_secure_transport", value: "1" },
          // The slow query log as the nodes keep theirs (1 s), in a file RDS publishes.
          { name: "slow_query_log", value: "1" },
          { name: "long_query_time", value: "1" },
          { name: "log_output", value: "FILE" },
        ],
        tags: tags("rds-parameters"),
      },
      child,
    );
    // Created first, with their retention: RDS would create them itself, kept forever.
    const logGroups = RDS_LOG_EXPORTS.map(
      (log) =>
        new aws.cloudwatch.LogGroup(
          `${name}-log-${log}`,
          {
            name: rdsLogGroupName(identifier, log),
            retentionInDays: args.logRetentionDays,
            tags: tags(`rds-log-${log}`),
          },
          child,
        ),
    );

    // The instance's inputs whose change replaces it (AWS cannot modify them in place).
    const replacedBy = {
      identifier,
      engine: RDS_ENGINE,
      storageEncrypted: true, // RDS.3
      kmsKeyId: args.keyArn,
      username: RDS_MASTER_USERNAME,
    };
    // A final snapshot's name must be new at each deletion: RDS refuses one it already holds
    // (DBSnapshotAlreadyExists), and a stack made again under its name gets the same identifier. As
    // terraform-aws-modules/rds does, a random suffix: a destroy deletes it too, so the stack made
    // again draws another, and it is drawn again whenever the instance is replaced (its keepers are
    // what replaces it); the deletion uses the name in the deleted instance's state.
    const snapshotSuffix = new random.RandomId(
      `${name}-final-snapshot-suffix`,
      {
        byteLength: 4,
        keepers: { ...replacedBy, storageEncrypted: String(replacedBy.storageEncrypted) },
      },
      child,
    );
    const instance = new aws.rds.Instance(
      `${name}-instance`,
      {
        ...replacedBy,
        // The major version: RDS applies minor versions itself, and the plan shows no drift.
        engineVersion: RDS_ENGINE_VERSION,
        autoMinorVersionUpgrade: true, // RDS.13
        instanceClass: args.instanceClass,
        multiAz: true, // RDS.5
        dbSubnetGroupName: subnets.name,
        vpcSecurityGroupIds: [args.securityGroupId],
        publiclyAccessible: false, // RDS.2
        port: PORTS.mysql,
        parameterGroupName: parameters.name,
        caCertIdentifier: RDS_CA_IDENTIFIER,
        storageType: "gp3",
        // `dataVolumeGiB`, the one knob: no storage autoscaling (maxAllocatedStorage would need
        // ignoreChanges on this, and the config would stop saying the size); the rds-storage-low
        // alarm (components/metrics.ts) pages at 10% free instead.
        allocatedStorage: args.allocatedStorageGiB,
        // No password in the program, its state or SSM: RDS keeps it in Secrets Manager, encrypted
        // with the stack's key, and rotates it.
        manageMasterUserPassword: true,
        masterUserSecretKmsKeyId: args.keyArn,
        backupRetentionPeriod: args.backupRetentionDays, // RDS.11
        copyTagsToSnapshot: true, // RDS.17
        // The automated backups outlive the instance, for their retention.
        deleteAutomatedBackups: false,
        deletionProtection: args.protectData, // RDS.8
        // At `pulumi up`, so the stack says what the instance is: a new class is a Multi-AZ failover
        // then (a minute or two), a storage raise runs online. Deferred to the maintenance window,
        // the storage alarm's threshold would be the new size's while the old one fills.
        applyImmediately: true,
        // A deletion (a destroy, a replacement) always leaves a snapshot, named with the suffix.
        skipFinalSnapshot: false,
        finalSnapshotIdentifier: pulumi.interpolate`${identifier}-final-${snapshotSuffix.hex}`,
        // Error and slow query logs only: RDS.9 as configured by default (audit, error, general,
        // slowquery for MariaDB) flags it; why not the other two: RDS_LOG_EXPORTS.
        enabledCloudwatchLogsExports: [...RDS_LOG_EXPORTS],
        tags: tags("rds"),
      },
      // Stateful: like the app nodes' data volumes, never deleted or replaced unnoticed (protect
      // refuses a replacement too). Its identifier is fixed, so a replacement must delete the old
      // instance (leaving its final snapshot) before it creates the new one under the same name.
      { parent: this, protect: args.protectData, deleteBeforeReplace: true, dependsOn: logGroups },
    );

    this.identifier = identifier;
    this.address = instance.address;
    this.port = instance.port;
    this.arn = instance.arn;
    this.adminSecretArn = instance.masterUserSecrets.apply((secrets) => {
      const arn = secrets?.[0]?.secretArn;
      if (!arn) throw new Error(`RDS gave ${identifier} no master user secret`);
      return arn;
    });
    this.endpoint = pulumi
      .all([this.address, this.port, this.adminSecretArn])
      .apply(([address, port, adminSecretArn]) => ({ address, port, adminSecretArn }));
    this.registerOutputs({
      address: this.address,
      port: this.port,
      arn: this.arn,
      adminSecretArn: this.adminSecretArn,
    });
  }
}
