// Alarms, metric filters, dashboard: config thresholds, silence as failure, an encrypted topic.
import { backupAges, monitoredDisks } from "../cloud-init/monitoring";
import { shippedFile } from "../cloud-init/template";
import { galeraMember } from "../cloud-init/database";
import { alarmSpecs, dashboardBody, metricFilters } from "../components/metrics";
import { METRIC_NAMESPACE, logGroupName } from "../model/naming";
import { NodeName, DEFAULT_APP_NODE_COUNT, galeraClusterSize, nodeNames } from "../model/topology";
import { logSources } from "../cloud-init/logSources";
import { Plan, PlannedResource } from "../plan/plan";
import { T, TOPOLOGY, bundleFile, grantsOf, ofType, one, planConfig } from "./harness";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);

const IDS: Record<NodeName, string> = { lb: "i-lb", s1: "i-s1", s2: "i-s2" };
/** The default stack's metric filters. */
const METRIC_FILTERS = metricFilters(TOPOLOGY.appNodes);
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

const alarm = (key: string, of = plan): PlannedResource =>
  one(of, T.metricAlarm, `monitoring-${key}`);
const topic = (): PlannedResource => ofType(plan, T.snsTopic)[0];
/** What an alarm watches and when it fires: every input but its name, texts, actions and tags. */
const watched = (key: string, of = plan) => {
  const { name, alarmDescription, alarmActions, okActions, tags, ...rest } = alarm(key, of).inputs;
  expect([name, alarmDescription, alarmActions, okActions, tags]).not.toContain(undefined);
  return rest;
};
/** What the collectors publish (webstack-aws collect), besides the metric filters' metrics. */
const COLLECTED = [
  "BackendsUp",
  "BackendUp",
  "DatabaseUp",
  "ReplicaRunning",
  "ReplicaLagSeconds",
  // A Galera member's (collect member …).
  "GaleraReady",
  "GaleraClusterSize",
  // The collector (issue 20); which node publishes which: "the collector publishes …" below.
  "CertificateDaysLeft",
  "RebootRequired",
  "BackupAgeSeconds",
  "BinlogShipAgeSeconds",
  // The LB's (issue 22): the request-log lines HAProxy dropped since the collector's previous run.
  "LogLinesDropped",
];

describe("alarm rows", () => {
  const inputs = {
    instanceIds: IDS,
    qpsThreshold: 750,
    replicaLagSeconds: 45,
    cluster: "replication",
  } as const;
  const specs = alarmSpecs(inputs);

  test("every alarm the issue asks for exists, once", () => {
    expect(specs.map((s) => s.key).sort()).toEqual(
      [
        "lb-qps-high",
        "lb-5xx-rate",
        "lb-backend-down",
        "lb-log-lines-dropped",
        "lb-log-count-unread",
        "s1-replica-not-running",
        "s1-replica-lag",
        "s1-database-down",
        "s2-database-down",
        ...NODES.flatMap((n) => [
          `${n}-cpu-high`,
          `${n}-status-check`,
          `${n}-no-metrics`,
          `${n}-boot-failed`,
          `${n}-bundle-refused`,
          // Issue 20: the alarms people need.
          `${n}-memory-high`,
          `${n}-root-disk-high`,
        ]),
        "s1-release-failed",
        "s2-release-failed",
        "s1-data-disk-high",
        "s2-data-disk-high",
        "lb-certificate-public-expiring",
        "s1-certificate-node-expiring",
        "s1-certificate-database-expiring",
        "s2-certificate-node-expiring",
        "s2-certificate-database-expiring",
        "s1-backup-old",
        "s2-binlog-shipping-behind",
      ].sort(),
    );
  });

  test("each backup age is collected on the node whose job it times, and nowhere else", () => {
    expect(backupAges("s1").map((a) => a.metric)).toEqual(["BackupAgeSeconds"]);
    expect(backupAges("s2").map((a) => a.metric)).toEqual(["BinlogShipAgeSeconds"]);
    expect(backupAges("lb")).toEqual([]);
  });

  test("heartbeats treat silence as failure; event counts do not", () => {
    const missing = Object.fromEntries(specs.map((s) => [s.key, s.missing]));
    for (const key of [
      "lb-backend-down",
      // The collector pushes the dropped-line count on every run: its silence is a count unread.
      "lb-log-count-unread",
      "s1-replica-not-running",
      "lb-no-metrics",
      "s1-no-metrics",
      "s2-no-metrics",
      // A backup age, or a certificate's days, that stop arriving are not known to be fine.
      "s1-backup-old",
      "s2-binlog-shipping-behind",
      "lb-certificate-public-expiring",
      "s2-certificate-database-expiring",
    ]) {
      expect([key, missing[key]]).toEqual([key, "breaching"]);
    }
    // The agent's silence is its own alarm (no-metrics): memory and disk judge only what it says.
    for (const key of [
      "lb-qps-high",
      "lb-5xx-rate",
      // The count's silence is lb-log-count-unread's, as the replica's is replica-not-running's.
      "lb-log-lines-dropped",
      "s1-replica-lag",
      "lb-boot-failed",
      "lb-memory-high",
      "lb-root-disk-high",
      "s2-data-disk-high",
    ]) {
      expect([key, missing[key]]).toEqual([key, "notBreaching"]);
    }
  });

  test("only the LB recovers automatically (its state is none; the databases are pets)", () => {
    expect(specs.filter((s) => s.recover).map((s) => s.key)).toEqual(["lb-status-check"]);
  });

  test("every custom metric an alarm reads is published by a metric filter, the nodes' collector or their applier", () => {
    const published = new Set([
      ...METRIC_FILTERS.map((f) => f.metric),
      ...COLLECTED,
      // The boot report; webstack-aws apply (issue 17), per node; a refused release (issue 18).
      "BootFailed",
      "BundleRefused",
      "ReleaseFailed",
    ]);
    const galera = alarmSpecs({ ...inputs, cluster: "galera" });
    for (const spec of [...specs, ...galera]) {
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

  /** The LB's count of the request-log lines HAProxy dropped, per minute: both its alarms read it. */
  const logLinesDropped = {
    namespace: "Webstack",
    metricName: "LogLinesDropped",
    dimensions: { Node: "lb" },
    period: 60,
  };

  test("any request-log line HAProxy dropped in a minute alarms at once; the LB's collector publishes it", () => {
    expect(watched("lb-log-lines-dropped")).toEqual({
      ...logLinesDropped,
      statistic: "Sum",
      comparisonOperator: "GreaterThanThreshold",
      threshold: 0,
      evaluationPeriods: 1,
      datapointsToAlarm: 1,
      treatMissingData: "notBreaching",
    });
    expect(bundleFile(plan, "lb", "/etc/systemd/system/webstack-collector.service")).toContain(
      "ExecStart=/usr/local/sbin/webstack-aws collect loadbalancer lb ",
    );
  });

  test("no count of dropped request-log lines for 5 minutes alarms: the collector pushes one every run, 0 included", () => {
    expect(watched("lb-log-count-unread")).toEqual({
      ...logLinesDropped,
      statistic: "SampleCount",
      comparisonOperator: "LessThanThreshold",
      threshold: 1,
      evaluationPeriods: 5,
      datapointsToAlarm: 5,
      treatMissingData: "breaching",
    });
    const topicArn = topic().outputs.arn;
    expect(alarm("lb-log-count-unread").inputs).toMatchObject({
      name: "webstack-test-lb-log-count-unread",
      alarmActions: [topicArn],
      okActions: [topicArn],
    });
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
    ["bundle-refused", "BundleRefused", NODES],
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
    for (const node of NODES) {
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

describe("the alarms people need (issue 20)", () => {
  const instanceId = (node: NodeName) => one(plan, T.instance, `${node}-instance`).id;

  test("memory above 90% for 5 minutes, per node, as the agent publishes it (InstanceId alone)", () => {
    for (const node of NODES)
      expect(watched(`${node}-memory-high`)).toEqual({
        namespace: "CWAgent",
        metricName: "mem_used_percent",
        dimensions: { InstanceId: instanceId(node) },
        period: 60,
        statistic: "Average",
        comparisonOperator: "GreaterThanThreshold",
        threshold: 90,
        evaluationPeriods: 5,
        datapointsToAlarm: 5,
        treatMissingData: "notBreaching",
      });
  });

  test.each([
    ["lb", "root", "/"],
    ["s1", "root", "/"],
    ["s2", "root", "/"],
    ["s1", "data", "/var/lib/mysql"],
    ["s2", "data", "/var/lib/mysql"],
  ] as const)("%s: its %s filesystem (%s) more than 80%% used", (node, disk, mountpoint) => {
    expect(watched(`${node}-${disk}-disk-high`)).toEqual({
      namespace: "CWAgent",
      metricName: "disk_used_percent",
      dimensions: { InstanceId: instanceId(node), path: mountpoint, fstype: "ext4" },
      period: 60,
      statistic: "Maximum",
      comparisonOperator: "GreaterThanThreshold",
      threshold: 80,
      evaluationPeriods: 5,
      datapointsToAlarm: 5,
      treatMissingData: "notBreaching",
    });
  });

  test("the disk alarms' dimensions are exactly those the node's agent publishes the path with", () => {
    for (const node of NODES) {
      const agent = JSON.parse(bundleFile(plan, node, "/etc/webstack/cloudwatch-agent.json"));
      // No host (omitted), no device (dropped), InstanceId appended, no aggregation: path and fstype.
      expect(agent.agent.omit_hostname).toBe(true);
      expect(agent.metrics.append_dimensions).toEqual({ InstanceId: "${aws:InstanceId}" });
      expect(agent.metrics.aggregation_dimensions).toBeUndefined();
      const disk = agent.metrics.metrics_collected.disk;
      expect(disk).toMatchObject({ measurement: ["used_percent"], drop_device: true });
      const alarmed = ofType(plan, T.metricAlarm)
        .filter((a) => a.name.startsWith(`monitoring-${node}-`) && a.name.endsWith("-disk-high"))
        .map((a) => a.inputs.dimensions as Record<string, string>);
      expect(alarmed.map((d) => Object.keys(d).sort())).toEqual(
        disk.resources.map(() => ["InstanceId", "fstype", "path"]),
      );
      expect(alarmed.map((d) => d.path)).toEqual(disk.resources);
    }
  });

  test.each([
    ["lb", "public"],
    ["s1", "node"],
    ["s1", "database"],
    ["s2", "node"],
    ["s2", "database"],
  ] as const)(
    "%s: its %s certificate with fewer than 20 days left, or not reported",
    (node, certificate) => {
      expect(watched(`${node}-certificate-${certificate}-expiring`)).toEqual({
        namespace: "Webstack",
        metricName: "CertificateDaysLeft",
        dimensions: { Node: node, Certificate: certificate },
        period: 60,
        statistic: "Minimum",
        comparisonOperator: "LessThanThreshold",
        threshold: 20,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        treatMissingData: "breaching",
      });
    },
  );

  test.each([
    // A nightly backup missed by two hours; binlog shipping two runs behind.
    ["s1-backup-old", "BackupAgeSeconds", "s1", 26 * 3600],
    ["s2-binlog-shipping-behind", "BinlogShipAgeSeconds", "s2", 600],
  ])("%s: %s of %s above %d s, or not reported", (key, metricName, node, threshold) => {
    expect(watched(key)).toEqual({
      namespace: "Webstack",
      metricName,
      dimensions: { Node: node },
      period: 60,
      statistic: "Maximum",
      comparisonOperator: "GreaterThanThreshold",
      threshold,
      evaluationPeriods: 3,
      datapointsToAlarm: 3,
      treatMissingData: "breaching",
    });
  });

  test("the collector publishes what they read, on the node they read it from", () => {
    const collector = (node: string) =>
      bundleFile(plan, node, "/etc/systemd/system/webstack-collector.service");
    for (const a of ofType(plan, T.metricAlarm).filter(
      (a) => a.inputs.namespace === "Webstack" && a.inputs.metricName !== undefined,
    )) {
      const { Node: node, Certificate: certificate } = a.inputs.dimensions as Record<
        string,
        string
      >;
      if (a.inputs.metricName === "CertificateDaysLeft")
        expect(collector(node)).toMatch(new RegExp(`--certificate ${certificate}=/`));
      if (/AgeSeconds$/.test(String(a.inputs.metricName)))
        expect(collector(node)).toContain(`--age ${a.inputs.metricName}=/`);
    }
    // No other node claims an age it does not have.
    expect(collector("lb")).not.toContain("--age");
    expect(collector("s2")).not.toContain("BackupAgeSeconds");
    expect(collector("s1")).not.toContain("BinlogShipAgeSeconds");
  });

  test("no alarm on a pending reboot: it is planned (the staggered reboot), never automatic", () => {
    expect(
      ofType(plan, T.metricAlarm).filter((a) => a.inputs.metricName === "RebootRequired"),
    ).toEqual([]);
  });
});

describe("the dashboard", () => {
  test("is valid JSON with QPS, 5xx, latency, backend health, replication, CPU, memory, disk, certificates, reboots, backups and alarms", () => {
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
      "Disk used (%): root, and the data volume on the app nodes",
      "Bundles applied and refused, app releases failed (count per minute)",
      "Requests refused by the per-client limit (429, count per minute)",
      "Certificates: days left",
      "Reboot required (1 = an update waits for a reboot)",
      "Hours since the last full backup (s1)",
      "Seconds since the binlogs were last shipped (s2)",
      "Request-log lines HAProxy dropped (count per minute)",
      "Alarms",
    ]);
    // Two widgets a row, none overlapping; the alarms below all, across the whole width.
    const cells = body.widgets.map((w: { x: number; y: number }) => `${w.x},${w.y}`);
    expect(new Set(cells).size).toBe(cells.length);
    expect(body.widgets.at(-1)).toMatchObject({ x: 0, width: 24 });
    expect(body.widgets.at(-1).y).toBe(Math.max(...body.widgets.map((w: { y: number }) => w.y)));
    expect(body.widgets.at(-1).properties.alarms).toEqual(
      ofType(plan, T.metricAlarm).map((a) => a.outputs.arn),
    );
    expect(plan.outputs.dashboardUrl).toBe(
      "https://eu-west-1.console.aws.amazon.com/cloudwatch/home?region=eu-west-1#dashboards:name=webstack-test",
    );
  });

  test("graphs only metrics something publishes, per node", () => {
    const body = JSON.parse(
      dashboardBody({
        region: "eu-west-1",
        instanceIds: IDS,
        alarmArns: [],
        cluster: "replication",
      }),
    );
    const published = new Set([
      ...METRIC_FILTERS.map((f) => `${METRIC_NAMESPACE}/${f.metric}`),
      ...[...COLLECTED, "BundleApplied", "BundleRefused", "ReleaseFailed"].map(
        (m) => `${METRIC_NAMESPACE}/${m}`,
      ),
      "AWS/EC2/CPUUtilization",
      "CWAgent/mem_used_percent",
      "CWAgent/disk_used_percent",
    ]);
    const galera = JSON.parse(
      dashboardBody({ region: "eu-west-1", instanceIds: IDS, alarmArns: [], cluster: "galera" }),
    );
    for (const widget of [...body.widgets, ...galera.widgets].filter(
      (w: { type: string }) => w.type === "metric",
    )) {
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

test("the data disk's alarm looks for the filesystem the node makes on the volume (mkfs.ext4 → fstype ext4)", () => {
  const made = /\bmkfs\.(\w+) /.exec(shippedFile("data-volume.sh"));
  expect(made?.[1]).toBe("ext4");
  const data = monitoredDisks("replica").find((d) => d.name === "data");
  expect(data?.fstype).toBe(made?.[1]);
});

test("the dashboard graphs the request-log lines HAProxy dropped, as a count per minute, in a row of its own", () => {
  const body = JSON.parse(
    dashboardBody({ region: "eu-west-1", instanceIds: IDS, alarmArns: [], cluster: "replication" }),
  );
  const dropped = body.widgets.find(
    (w: { properties: { title: string } }) =>
      w.properties.title === "Request-log lines HAProxy dropped (count per minute)",
  );
  expect(dropped).toMatchObject({ type: "metric", x: 0, y: 42, width: 12, height: 6 });
  expect(dropped.properties.metrics).toEqual([
    ["Webstack", "LogLinesDropped", "Node", "lb", { stat: "Sum", label: "lb" }],
  ]);
  expect(body.widgets.filter((w: { y: number }) => w.y === 42)).toEqual([dropped]);
});

describe("the dashboard's rows for issue 20", () => {
  const body = JSON.parse(
    dashboardBody({ region: "eu-west-1", instanceIds: IDS, alarmArns: [], cluster: "replication" }),
  );
  const widget = (title: string) =>
    body.widgets.find((w: { properties: { title: string } }) => w.properties.title === title)
      .properties;

  test("disk: every node's root and the app nodes' data volume, under the alarms' dimensions, with the 80% line", () => {
    const disk = widget("Disk used (%): root, and the data volume on the app nodes");
    const line = (node: NodeName, mountpoint: string) => [
      "CWAgent",
      "disk_used_percent",
      "InstanceId",
      IDS[node],
      "path",
      mountpoint,
      "fstype",
      "ext4",
      { stat: "Maximum", label: `${node} ${mountpoint}` },
    ];
    expect(disk.metrics).toEqual([
      line("lb", "/"),
      line("s1", "/"),
      line("s1", "/var/lib/mysql"),
      line("s2", "/"),
      line("s2", "/var/lib/mysql"),
    ]);
    expect(disk.annotations).toEqual({ horizontal: [{ label: "alarm", value: 80 }] });
    expect(widget("Memory used (%)").annotations).toEqual({
      horizontal: [{ label: "alarm", value: 90 }],
    });
  });

  test("certificates, each node's each, with the 20-day line; reboots per node, with no line (no alarm)", () => {
    const certificates = widget("Certificates: days left");
    expect(certificates.metrics.map((m: unknown[]) => m.slice(3, 6))).toEqual([
      ["lb", "Certificate", "public"],
      ["s1", "Certificate", "node"],
      ["s1", "Certificate", "database"],
      ["s2", "Certificate", "node"],
      ["s2", "Certificate", "database"],
    ]);
    expect(certificates.annotations).toEqual({ horizontal: [{ label: "alarm", value: 20 }] });
    const reboots = widget("Reboot required (1 = an update waits for a reboot)");
    expect(reboots.metrics.map((m: unknown[]) => m.slice(1, 4))).toEqual(
      NODES.map((node) => ["RebootRequired", "Node", node]),
    );
    expect(reboots.annotations).toBeUndefined();
  });

  test("backups: the full backup's age in hours with the 26 h line, binlog shipping's in seconds with the 600 s line", () => {
    const full = widget("Hours since the last full backup (s1)");
    expect(full.metrics).toEqual([
      ["Webstack", "BackupAgeSeconds", "Node", "s1", { id: "b", stat: "Maximum", visible: false }],
      [{ expression: "b / 3600", label: "s1 hours", id: "h" }],
    ]);
    expect(full.annotations).toEqual({ horizontal: [{ label: "alarm", value: 26 }] });
    const binlog = widget("Seconds since the binlogs were last shipped (s2)");
    expect(binlog.metrics).toEqual([
      ["Webstack", "BinlogShipAgeSeconds", "Node", "s2", { stat: "Maximum", label: "s2 seconds" }],
    ]);
    expect(binlog.annotations).toEqual({ horizontal: [{ label: "alarm", value: 600 }] });
  });
});

describe("a galera stack (database: galera): each member's alarms and graph instead of the replica's", () => {
  let galera: Plan;
  beforeAll(async () => {
    galera = await planConfig({
      domain: "www.example.com",
      database: "galera",
      qpsAlarmThreshold: "750",
      replicaLagAlarmSeconds: "45",
    });
  });
  const keys = (of: Plan) =>
    ofType(of, T.metricAlarm).map((a) => a.name.replace(/^monitoring-/, ""));
  const body = (of: Plan) => JSON.parse(String(ofType(of, T.dashboard)[0].inputs.dashboardBody));
  const titles = (of: Plan) =>
    body(of).widgets.map((w: { properties: { title: string } }) => w.properties.title);

  test("no replica alarms; per member not-ready and cluster-degraded; every other alarm as replication's, in its place", () => {
    const replica = ["s1-replica-not-running", "s1-replica-lag"];
    const members = [
      "s1-galera-not-ready",
      "s1-galera-cluster-degraded",
      "s2-galera-not-ready",
      "s2-galera-cluster-degraded",
    ];
    const replication = keys(plan);
    const at = replication.indexOf(replica[0]);
    expect(replication.slice(at, at + 2)).toEqual(replica);
    expect(keys(galera)).toEqual([
      ...replication.slice(0, at),
      ...members,
      ...replication.slice(at + 2),
    ]);
  });

  test.each(["s1", "s2"] as const)(
    "%s: not ready (GaleraReady below 1) for 3 minutes, or silent; seeing fewer than 3 members for 3 minutes",
    (node) => {
      const of = { namespace: "Webstack", dimensions: { Node: node }, period: 60 };
      const threeMinutes = { evaluationPeriods: 3, datapointsToAlarm: 3 };
      expect(watched(`${node}-galera-not-ready`, galera)).toEqual({
        ...of,
        metricName: "GaleraReady",
        statistic: "Minimum",
        comparisonOperator: "LessThanThreshold",
        threshold: 1,
        ...threeMinutes,
        treatMissingData: "breaching",
      });
      expect(watched(`${node}-galera-cluster-degraded`, galera)).toEqual({
        ...of,
        metricName: "GaleraClusterSize",
        statistic: "Minimum",
        comparisonOperator: "LessThanThreshold",
        threshold: 3,
        ...threeMinutes,
        treatMissingData: "notBreaching",
      });
    },
  );

  test("a whole cluster is what each member is configured with: the other member and the LB's arbitrator, and itself", () => {
    for (const node of ["s1", "s2"] as const)
      expect(galeraMember("test", TOPOLOGY, node).peerIps.length + 1).toBe(
        galeraClusterSize(TOPOLOGY.appNodes.length),
      );
  });

  test("the members' collectors publish what the Galera alarms read: collect member <node>", () => {
    const galeraAlarms = ofType(galera, T.metricAlarm).filter((a) =>
      String(a.inputs.metricName).startsWith("Galera"),
    );
    expect(galeraAlarms).toHaveLength(4);
    for (const a of galeraAlarms) {
      const { Node: node } = a.inputs.dimensions as Record<string, string>;
      expect(bundleFile(galera, node, "/etc/systemd/system/webstack-collector.service")).toContain(
        `ExecStart=/usr/local/sbin/webstack-aws collect member ${node} mariadb `,
      );
    }
  });

  test("the dashboard graphs each member's cluster size and readiness where replication was, with the alarm's line", () => {
    expect(titles(galera)).toEqual(
      titles(plan).map((t: string) => (t === "Replication (s1)" ? "Galera cluster (s1, s2)" : t)),
    );
    const widgets = body(galera).widgets;
    const cluster = widgets.find(
      (w: { properties: { title: string } }) => w.properties.title === "Galera cluster (s1, s2)",
    );
    expect(cluster).toMatchObject({ type: "metric", x: 0, y: 12, width: 12, height: 6 });
    const member = (node: string) => [
      [
        "Webstack",
        "GaleraClusterSize",
        "Node",
        node,
        { stat: "Minimum", label: `${node} members seen` },
      ],
      [
        "Webstack",
        "GaleraReady",
        "Node",
        node,
        { stat: "Minimum", label: `${node} ready (1 = yes)` },
      ],
    ];
    expect(cluster.properties.metrics).toEqual([...member("s1"), ...member("s2")]);
    expect(cluster.properties.annotations).toEqual({
      horizontal: [{ label: "alarm: fewer members", value: 3 }],
    });
    expect(JSON.stringify(widgets)).not.toMatch(/Replica(Running|LagSeconds)/);
    expect(widgets.at(-1).properties.alarms).toEqual(
      ofType(galera, T.metricAlarm).map((a) => a.outputs.arn),
    );
  });
});
