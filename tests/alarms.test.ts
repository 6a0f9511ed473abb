// Alarms, metric filters, dashboard: config thresholds, silence as failure, an encrypted topic.
import { METRIC_FILTERS, alarmSpecs, dashboardBody } from "../components/metrics";
import { METRIC_NAMESPACE, logGroupName } from "../model/naming";
import { NODE_NAMES } from "../model/topology";
import { logSources } from "../cloud-init/logSources";
import { Plan, PlannedResource } from "../plan/plan";
import { T, TOPOLOGY, grantsOf, ofType, one, planConfig } from "./harness";

const IDS = { lb: "i-lb", s1: "i-s1", s2: "i-s2" };
/** Not the mocks' default account: what names the account must come from the stack's own. */
const ACCOUNT_ID = "111122223333";

let plan: Plan;
beforeAll(async () => {
  plan = await planConfig(
    {
      domain: "www.example.com",
      qpsAlarmThreshold: "750",
      replicaLagAlarmSeconds: "45",
      alarmEmail: "oncall@example.com",
    },
    { accountId: ACCOUNT_ID },
  );
});

const alarm = (key: string): PlannedResource => one(plan, T.metricAlarm, `monitoring-${key}`);
const topic = (): PlannedResource => ofType(plan, T.snsTopic)[0];

describe("alarm rows", () => {
  const specs = alarmSpecs({ instanceIds: IDS, qpsThreshold: 750, replicaLagSeconds: 45 });

  test("every alarm the issue asks for exists, once", () => {
    expect(specs.map((s) => s.key).sort()).toEqual(
      [
        "lb-qps-high",
        "lb-5xx-rate",
        "lb-backend-down",
        "s1-replica-not-running",
        "s1-replica-lag",
        "s1-database-down",
        "s2-database-down",
        ...NODE_NAMES.flatMap((n) => [
          `${n}-cpu-high`,
          `${n}-status-check`,
          `${n}-no-metrics`,
          `${n}-boot-failed`,
          `${n}-bundle-refused`,
        ]),
        "s1-release-failed",
        "s2-release-failed",
      ].sort(),
    );
  });

  test("heartbeats treat silence as failure; event counts do not", () => {
    const missing = Object.fromEntries(specs.map((s) => [s.key, s.missing]));
    for (const key of [
      "lb-backend-down",
      "s1-replica-not-running",
      "lb-no-metrics",
      "s1-no-metrics",
      "s2-no-metrics",
    ]) {
      expect([key, missing[key]]).toEqual([key, "breaching"]);
    }
    for (const key of ["lb-qps-high", "lb-5xx-rate", "s1-replica-lag", "lb-boot-failed"]) {
      expect([key, missing[key]]).toEqual([key, "notBreaching"]);
    }
  });

  test("only the LB recovers automatically (its state is none; the databases are pets)", () => {
    expect(specs.filter((s) => s.recover).map((s) => s.key)).toEqual(["lb-status-check"]);
  });

  test("every custom metric an alarm reads is published by a metric filter or the nodes' collector", () => {
    const collected = [
      "BackendsUp",
      "BackendUp",
      "DatabaseUp",
      "ReplicaRunning",
      "ReplicaLagSeconds",
      "BootFailed",
      // webstack-aws apply (issue 17), per node; a refused release on the app nodes (issue 18).
      "BundleRefused",
      "ReleaseFailed",
    ];
    const published = new Set([...METRIC_FILTERS.map((f) => f.metric), ...collected]);
    for (const spec of specs) {
      for (const m of spec.metrics.filter((m) => m.namespace === METRIC_NAMESPACE))
        expect(published).toContain(m.name);
    }
  });

  test("metric filters read logs the nodes ship", () => {
    for (const f of METRIC_FILTERS)
      expect(logSources(TOPOLOGY.nodes[f.node].role).map((s) => s.key)).toContain(f.log);
  });
});

describe("the program's alarms", () => {
  test("QPS at the LB as metric math (requests per minute / period), threshold from config", () => {
    const qps = alarm("lb-qps-high").inputs;
    expect(qps).toMatchObject({
      threshold: 750,
      comparisonOperator: "GreaterThanThreshold",
      name: "webstack-test-lb-qps-high",
    });
    expect(qps.metricQueries).toEqual([
      {
        id: "m1",
        metric: {
          namespace: "Webstack",
          metricName: "Requests",
          dimensions: { Node: "lb" },
          period: 60,
          stat: "Sum",
        },
        returnData: false,
      },
      { id: "e1", expression: "m1 / PERIOD(m1)", label: expect.any(String), returnData: true },
    ]);
  });

  test("replication lag threshold from config", () => {
    expect(alarm("s1-replica-lag").inputs).toMatchObject({
      threshold: 45,
      namespace: "Webstack",
      metricName: "ReplicaLagSeconds",
      dimensions: { Node: "s1" },
      statistic: "Maximum",
    });
  });

  test.each([
    // A refused bundle, per node; no bundle applied is no alarm.
    ["bundle-refused", "BundleRefused", NODE_NAMES],
    // A refused app release, per app node: the LB runs no release.
    ["release-failed", "ReleaseFailed", ["s1", "s2"]],
  ])("%s alarms at once on %s, on %j", (key, metric, nodes) => {
    for (const node of nodes) {
      expect(alarm(`${node}-${key}`).inputs).toMatchObject({
        namespace: "Webstack",
        metricName: metric,
        dimensions: { Node: node },
        statistic: "Maximum",
        comparisonOperator: "GreaterThanThreshold",
        threshold: 0,
        evaluationPeriods: 1,
        treatMissingData: "notBreaching",
      });
    }
    const alarmed = ofType(plan, T.metricAlarm).filter((a) => a.name.endsWith(key));
    expect(alarmed).toHaveLength(nodes.length);
  });

  test("per-node alarms follow the node's instance", () => {
    for (const node of NODE_NAMES) {
      const id = one(plan, T.instance, `${node}-instance`).id;
      expect(alarm(`${node}-cpu-high`).inputs.dimensions).toEqual({ InstanceId: id });
      expect(alarm(`${node}-no-metrics`).inputs).toMatchObject({
        namespace: "CWAgent",
        metricName: "mem_used_percent",
        dimensions: { InstanceId: id },
        treatMissingData: "breaching",
      });
    }
  });

  test("every alarm notifies the topic, on alarm and on recovery; the LB's status check also recovers it", () => {
    const topicArn = topic().outputs.arn;
    for (const a of ofType(plan, T.metricAlarm)) {
      expect(a.inputs.okActions).toEqual([topicArn]);
      const expected =
        a.name === "monitoring-lb-status-check"
          ? [topicArn, "arn:aws:automate:eu-west-1:ec2:recover"]
          : [topicArn];
      expect({ alarm: a.name, actions: a.inputs.alarmActions }).toEqual({
        alarm: a.name,
        actions: expected,
      });
    }
    expect(plan.outputs.alarmTopicArn).toBe(topicArn);
  });

  test("the topic is encrypted with a rotating key that CloudWatch may use for this account only (SNS.1)", () => {
    const key = one(plan, T.kmsKey, "monitoring-alarms-key");
    expect(topic().inputs.kmsMasterKeyId).toBe(key.outputs.arn);
    expect(key.inputs).toMatchObject({ enableKeyRotation: true, deletionWindowInDays: 30 });
    const grants = grantsOf(key.inputs.policy);
    const accountRoot = `AWS:arn:aws:iam::${ACCOUNT_ID}:root`;
    const cloudWatch = "Service:cloudwatch.amazonaws.com";
    // No one but this account and CloudWatch.
    expect([...new Set(grants.map((g) => g.principal))].sort()).toEqual([accountRoot, cloudWatch]);
    // The account administers the key through IAM: every KMS action, to its root principal.
    expect(grants.filter((g) => g.principal === accountRoot)).toEqual([
      { principal: accountRoot, actions: ["kms:*"], resources: ["*"] },
    ]);
    // CloudWatch only decrypts and makes data keys, and only for this account's alarms.
    const toCloudWatch = grants.filter((g) => g.principal === cloudWatch);
    expect(toCloudWatch.flatMap((g) => g.actions).sort()).toEqual([
      "kms:Decrypt",
      "kms:GenerateDataKey*",
    ]);
    for (const grant of toCloudWatch)
      expect(grant.condition).toEqual({ StringEquals: { "aws:SourceAccount": ACCOUNT_ID } });
  });

  test("the e-mail subscription exists only with alarmEmail", async () => {
    expect(ofType(plan, T.snsSubscription).map((s) => s.inputs)).toEqual([
      {
        topic: topic().outputs.arn,
        protocol: "email",
        endpoint: "oncall@example.com",
      },
    ]);
    const without = await planConfig({ domain: "www.example.com" });
    expect(ofType(without, T.snsSubscription)).toEqual([]);
  });

  test("metric filters count requests and 5xx at the LB and each web server, time the LB and count its 429s", () => {
    const filters = Object.fromEntries(
      ofType(plan, T.logMetricFilter).map((f) => [f.name, f.inputs]),
    );
    expect(Object.keys(filters).sort()).toEqual(
      [
        "logs-lb-requests",
        "logs-lb-5xx",
        "logs-lb-rate-limited",
        "logs-lb-response-time",
        "logs-s1-requests",
        "logs-s1-5xx",
        "logs-s2-requests",
        "logs-s2-5xx",
      ].sort(),
    );
    expect(filters["logs-lb-5xx"]).toEqual({
      logGroupName: logGroupName(plan.stack, "lb", "haproxy"),
      pattern: "{ $.status >= 500 }",
      metricTransformation: {
        namespace: "Webstack",
        name: "Http5xx",
        value: "1",
        unit: "Count",
        dimensions: { Node: "$.node" },
      },
    });
    // HAProxy's own 429s only (answered in the https frontend), as their own metric, not in 5xx.
    expect(filters["logs-lb-rate-limited"]).toEqual({
      logGroupName: logGroupName(plan.stack, "lb", "haproxy"),
      pattern: '{ ($.status = 429) && ($.backend = "https") }',
      metricTransformation: {
        namespace: "Webstack",
        name: "RateLimited",
        value: "1",
        unit: "Count",
        dimensions: { Node: "$.node" },
      },
    });
    expect(filters["logs-s2-requests"]).toMatchObject({
      logGroupName: logGroupName(plan.stack, "s2", "nginx-access"),
    });
  });
});

describe("the dashboard", () => {
  test("is valid JSON with QPS, 5xx, latency, backend health, replication, CPU, memory, disk and alarms", () => {
    const dashboard = ofType(plan, T.dashboard)[0];
    expect(dashboard.inputs.dashboardName).toBe("webstack-test");
    const body = JSON.parse(String(dashboard.inputs.dashboardBody));
    expect(body.widgets.map((w: { properties: { title: string } }) => w.properties.title)).toEqual([
      "Requests per second (LB and each web server)",
      "HTTP 5xx (count per minute)",
      "LB response time (ms)",
      "Backend health (1 = up)",
      "Replication (s1)",
      "CPU (%)",
      "Memory used (%)",
      "Root disk used (%)",
      "Bundles applied and refused, app releases failed (count per minute)",
      "Requests refused by the per-client limit (429, count per minute)",
      "Alarms",
    ]);
    expect(body.widgets.at(-1).properties.alarms).toEqual(
      ofType(plan, T.metricAlarm).map((a) => a.outputs.arn),
    );
    expect(plan.outputs.dashboardUrl).toBe(
      "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards:name=webstack-test",
    );
  });

  test("graphs only metrics something publishes, per node", () => {
    const body = JSON.parse(
      dashboardBody({ region: "eu-west-1", instanceIds: IDS, alarmArns: [] }),
    );
    const published = new Set([
      ...METRIC_FILTERS.map((f) => `${METRIC_NAMESPACE}/${f.metric}`),
      ...[
        "BackendUp",
        "ReplicaLagSeconds",
        "ReplicaRunning",
        "BundleApplied",
        "BundleRefused",
        "ReleaseFailed",
      ].map((m) => `${METRIC_NAMESPACE}/${m}`),
      "AWS/EC2/CPUUtilization",
      "CWAgent/mem_used_percent",
      "CWAgent/disk_used_percent",
    ]);
    for (const widget of body.widgets.filter((w: { type: string }) => w.type === "metric")) {
      for (const line of widget.properties.metrics as unknown[][]) {
        if (typeof line[0] !== "string") continue; // metric math
        expect(published).toContain(`${line[0]}/${line[1]}`);
      }
    }
    const qps = body.widgets[0].properties.metrics.filter(
      (l: unknown[]) => typeof l[0] !== "string",
    );
    expect(qps.map((l: { expression: string }[]) => l[0].expression)).toEqual([
      "r0 / PERIOD(r0)",
      "r1 / PERIOD(r1)",
      "r2 / PERIOD(r2)",
    ]);
  });
});
