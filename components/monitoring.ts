// Alarms (to an SNS topic, optionally e-mailed), EC2 auto-recovery of the LB, and the dashboard.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";
import { NodeName } from "../topology";
import { Tagger } from "../tags";
import { AwsAccount, alarmTopicKeyPolicy } from "../iamPolicies";
import { AlarmSpec, PERIOD, alarmSpecs, dashboardBody } from "../metrics";

export interface MonitoringArgs {
  readonly stack: string;
  readonly account: pulumi.Input<AwsAccount>;
  readonly instanceIds: Readonly<Record<NodeName, pulumi.Input<string>>>;
  readonly qpsThreshold: number;
  readonly replicaLagSeconds: number;
  /** Subscribed to the alarm topic when given. */
  readonly alarmEmail?: string;
  readonly tags: Tagger;
}

const PERCENTILE = /^p\d+(\.\d+)?$/;

interface AlarmMetricArgs {
  readonly namespace?: string;
  readonly metricName?: string;
  readonly dimensions?: Readonly<Record<string, string>>;
  readonly period?: number;
  readonly statistic?: string;
  readonly extendedStatistic?: string;
  readonly metricQueries?: {
    id: string;
    expression?: string;
    label?: string;
    returnData: boolean;
    metric?: {
      namespace: string;
      metricName: string;
      dimensions: Record<string, string>;
      period: number;
      stat: string;
    };
  }[];
}

/** A spec's metric(s) as MetricAlarm arguments: one metric, or metric math over m1, m2 … */
function alarmMetricArgs(spec: AlarmSpec): AlarmMetricArgs {
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

    const alarms = pulumi
      .all([pulumi.output(args.instanceIds), args.account])
      .apply(([instanceIds, account]) => ({
        specs: alarmSpecs({
          instanceIds,
          qpsThreshold: args.qpsThreshold,
          replicaLagSeconds: args.replicaLagSeconds,
        }),
        recoverArn: `arn:${account.partition}:automate:${account.region}:ec2:recover`,
      }));
    // Alarm rows are known without the instance ids (only dimensions need them): one resource each.
    const keys = alarmSpecs({
      instanceIds: { lb: "", s1: "", s2: "" },
      qpsThreshold: args.qpsThreshold,
      replicaLagSeconds: args.replicaLagSeconds,
    }).map((spec) => spec.key);
    const alarmResources = keys.map((key) => {
      const spec = alarms.apply((a) => a.specs.find((s) => s.key === key)!);
      const metricArgs = spec.apply(alarmMetricArgs);
      return new aws.cloudwatch.MetricAlarm(
        `${name}-${key}`,
        {
          name: `webstack-${args.stack}-${key}`,
          alarmDescription: spec.description,
          comparisonOperator: spec.comparison,
          threshold: spec.threshold,
          evaluationPeriods: spec.evaluationPeriods,
          datapointsToAlarm: spec.evaluationPeriods,
          treatMissingData: spec.missing,
          namespace: metricArgs.namespace,
          metricName: metricArgs.metricName,
          dimensions: metricArgs.dimensions,
          period: metricArgs.period,
          statistic: metricArgs.statistic,
          extendedStatistic: metricArgs.extendedStatistic,
          metricQueries: metricArgs.metricQueries,
          alarmActions: pulumi
            .all([spec, alarms, topic.arn])
            .apply(([s, a, topicArn]) => (s.recover ? [topicArn, a.recoverArn] : [topicArn])),
          okActions: [topic.arn],
          tags: tags(`alarm-${key}`),
        },
        child,
      );
    });

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
            dashboardBody({ region: account.region, instanceIds, alarmArns }),
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
