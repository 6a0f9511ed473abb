// Alarms (to an SNS topic, optionally e-mailed), EC2 auto-recovery of the LB, and the dashboard.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { DatabaseMode, NodeName } from "../model/topology";
import { AwsAccount } from "../model/aws";
import { Tagger } from "../model/tags";
import { alarmTopicKeyPolicy } from "./iamPolicies";
import { AlarmSpec, PERIOD, RdsWatch, alarmSpecs, dashboardBody } from "./metrics";

export interface MonitoringArgs {
  readonly stack: string;
  readonly account: pulumi.Input<AwsAccount>;
  readonly instanceIds: Readonly<Record<NodeName, pulumi.Input<string>>>;
  readonly qpsThreshold: number;
  readonly replicaLagSeconds: number;
  /**
   * How the databases hold the data (config `database`): replica alarms, Galera's, or with `rds`
   * the instance's in place of the nodes' database alarms.
   */
  readonly cluster: DatabaseMode;
  /** With `rds`: the instance. */
  readonly rds?: RdsWatch;
  /** Subscribed to the alarm topic when given. */
  readonly alarmEmail?: string;
  readonly tags: Tagger;
}

const PERCENTILE = /^p\d+(\.\d+)?$/;

/** A spec's metric(s) as MetricAlarm arguments: one metric, or metric math over m1, m2 … */
function alarmMetricArgs(
  spec: AlarmSpec<pulumi.Input<string>>,
): Partial<aws.cloudwatch.MetricAlarmArgs> {
  if (!spec.expression) {
    const [m] = spec.metrics;
    return {
      namespace: m.namespace,
      metricName: m.name,
      dimensions: m.dimensions,
      period: PERIOD,
      ...(PERCENTILE.test(m.stat) ? { extendedStatistic: m.stat } : { statistic: m.stat }),
    };
  }
  return {
    metricQueries: [
      ...spec.metrics.map((m, i) => ({
        id: `m${i + 1}`,
        metric: {
          namespace: m.namespace,
          metricName: m.name,
          dimensions: m.dimensions,
          period: PERIOD,
          stat: m.stat,
        },
        returnData: false,
      })),
      { id: "e1", expression: spec.expression, label: spec.description, returnData: true },
    ],
  };
}

export class Monitoring extends pulumi.ComponentResource {
  readonly alarmTopicArn: pulumi.Output<string>;
  readonly dashboardName: string;
  readonly dashboardUrl: pulumi.Output<string>;

  constructor(name: string, args: MonitoringArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:monitoring:Monitoring", name, {}, opts);
    const child = { parent: this };
    const tags = (what: string) => args.tags("shared", what);

    // SNS.1: the topic is encrypted at rest, with a key CloudWatch is allowed to use.
    const topicKey = new aws.kms.Key(
      `${name}-alarms-key`,
      {
        description: `webstack ${args.stack}: encrypts the alarm topic`,
        enableKeyRotation: true,
        deletionWindowInDays: 30,
        policy: pulumi.output(args.account).apply((a) => JSON.stringify(alarmTopicKeyPolicy(a))),
        tags: tags("alarms-key"),
      },
      child,
    );
    const topic = new aws.sns.Topic(
      `${name}-alarms`,
      { kmsMasterKeyId: topicKey.arn, tags: tags("alarms") },
      child,
    );
    if (args.alarmEmail) {
      // AWS e-mails a confirmation link first; nothing arrives until it is followed.
      new aws.sns.TopicSubscription(
        `${name}-alarms-email`,
        { topic: topic.arn, protocol: "email", endpoint: args.alarmEmail },
        child,
      );
    }

    const recoverArn = pulumi
      .output(args.account)
      .apply((a) => `arn:${a.partition}:automate:${a.region}:ec2:recover`);
    const specs = alarmSpecs<pulumi.Input<string>>({
      instanceIds: args.instanceIds,
      qpsThreshold: args.qpsThreshold,
      replicaLagSeconds: args.replicaLagSeconds,
      cluster: args.cluster,
      ...(args.rds ? { rds: args.rds } : {}),
    });
    const alarmResources = specs.map(
      (spec) =>
        new aws.cloudwatch.MetricAlarm(
          `${name}-${spec.key}`,
          {
            name: `webstack-${args.stack}-${spec.key}`,
            alarmDescription: spec.description,
            comparisonOperator: spec.comparison,
            threshold: spec.threshold,
            evaluationPeriods: spec.evaluationPeriods,
            datapointsToAlarm: spec.evaluationPeriods,
            treatMissingData: spec.missing,
            ...alarmMetricArgs(spec),
            alarmActions: spec.recover ? [topic.arn, recoverArn] : [topic.arn],
            okActions: [topic.arn],
            tags: tags(`alarm-${spec.key}`),
          },
          child,
        ),
    );

    this.dashboardName = `webstack-${args.stack.replace(/[^A-Za-z0-9_-]/g, "-")}`;
    new aws.cloudwatch.Dashboard(
      `${name}-dashboard`,
      {
        dashboardName: this.dashboardName,
        dashboardBody: pulumi
          .all([
            pulumi.output(args.instanceIds),
            args.account,
            pulumi.all(alarmResources.map((a) => a.arn)),
          ])
          .apply(([instanceIds, account, alarmArns]) =>
            dashboardBody({
              region: account.region,
              instanceIds,
              alarmArns,
              cluster: args.cluster,
              ...(args.rds ? { rds: args.rds } : {}),
            }),
          ),
      },
      child,
    );
    this.alarmTopicArn = topic.arn;
    this.dashboardUrl = pulumi
      .output(args.account)
      .apply(
        (a) =>
          `https://${a.region}.console.aws.amazon.com/cloudwatch/home?region=${a.region}#dashboards:name=${this.dashboardName}`,
      );
    this.registerOutputs({ alarmTopicArn: this.alarmTopicArn, dashboardUrl: this.dashboardUrl });
  }
}
