// What the lab takes from the plan and how it lays out its network: pure, no root needed.
import * as fs from "fs";
import { createHash } from "crypto";
import * as YAML from "yaml";
import { parseConfig } from "../model/config";
import { decodeUserData } from "../cloud-init/userDataEncoding";
import { PATCHING_PACKAGES } from "../cloud-init/patching";
import {
  LAB_CONFIG,
  LAB_DOMAIN,
  LabNode,
  labNetwork,
  labNodes,
  BROKEN_BOOT_MARKER,
  packagesOf,
  planFirewallRules,
  ssmParameters,
  s3Objects,
  s3Scopes,
  ssmScopes,
  metricNamespaces,
  withBrokenBundleFile,
  withFailingBootStep,
  labRefusal,
  LAB_TOPOLOGY,
  labTopology,
} from "../lab/labPlan";
import { ebsDevicePath } from "../model/aws";
import { METRIC_NAMESPACE } from "../model/naming";
import { AGENT_METRIC_NAMESPACE } from "../cloud-init/monitoring";
import { realOutputs } from "../lab/realOutputs";
import {
  medianOfH2Rounds,
  medianOfMaxRounds,
  medianOfRounds,
  medianReplicaRound,
  naiveHaproxyConfig,
  NGINX_PEER_PORT,
  parseH2load,
  rateRatio,
  tunedNginxConfig,
} from "../lab/bench";
import { renderNftables, unfilteredAddresses } from "../lab/nftables";
import { Plan, runPlan } from "../plan/plan";
import { SecurityGroupRule, buildTopology, mapNodes, securityGroupRules } from "../model/topology";
import { T, bundleFile, bundleOf, ofType, one } from "./harness";

let plan: Plan;
let nodes: LabNode[];
beforeAll(async () => {
  plan = await runPlan({ stack: "lab", config: LAB_CONFIG, override: realOutputs });
  nodes = labNodes(plan, LAB_TOPOLOGY.nodeNames);
}, 60_000);

const node = (name: string) => nodes.find((n) => n.name === name)!;

test("the lab's configuration is valid: MariaDB, Let's Encrypt against the lab's Pebble", () => {
  const config = parseConfig(LAB_CONFIG);
  expect(config.dbEngine).toBe("mariadb");
  expect(config.certificate).toBe("letsencrypt");
  expect(config.acmeDirectory).toBe("https://acme.lab.test/dir");
});

test("each node boots exactly the user-data the plan gives its instance", () => {
  expect(nodes.map((n) => n.name)).toEqual(["lb", "s1", "s2"]);
  for (const n of nodes) {
    const instance = one(plan, T.instance, `${n.name}-instance`);
    expect(n.userData).toBe(decodeUserData(instance.inputs));
    expect(n.userData.startsWith("#cloud-config\n")).toBe(true);
    expect(n.instanceId).toBe(instance.id);
  }
});

test("the packages the mirror must hold are the user-data's and the bundles' package lists", () => {
  for (const n of nodes)
    expect([...n.packages].sort()).toEqual(
      [...new Set([...YAML.parse(n.userData).packages, ...bundleOf(plan, n.name).packages])].sort(),
    );
  // The LB's patching packages are in its bundle only (its user-data would replace it).
  expect(YAML.parse(node("lb").userData).packages).not.toContain("needrestart");
  expect(node("lb").packages).toEqual(expect.arrayContaining(["haproxy", "certbot"]));
  expect(node("s2").packages).toEqual(expect.arrayContaining(["nginx", "mariadb-server"]));
  // Patching's packages are in every node's list, so in the mirror.
  for (const n of nodes) expect(n.packages).toEqual(expect.arrayContaining([...PATCHING_PACKAGES]));
  expect(packagesOf("#cloud-config\nhostname: x\n")).toEqual([]);
});

test("app nodes get their data volume at the NVMe path their user-data waits for; the LB none", () => {
  expect(node("lb").dataVolumeId).toBeUndefined();
  for (const name of ["s1", "s2"]) {
    const volume = one(plan, T.volumeAttachment, `${name}-data-attachment`).inputs.volumeId;
    expect(node(name).dataVolumeId).toBe(volume);
    expect(node(name).userData).toContain(ebsDevicePath(String(volume)));
  }
  expect(ebsDevicePath("vol-0abc")).toBe("/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0abc");
});

test("the SSM stand-in scopes each node as its role's policy does", () => {
  expect([...node("s1").ssmScopes].sort()).toEqual(
    [
      "/webstack/lab/s1",
      "/webstack/lab/s1/",
      "/webstack/lab/s1/bundle-status",
      "/webstack/lab/shared",
      "/webstack/lab/shared/",
      // The app's secret variables and the primary's release command status (issue 18).
      "/webstack/lab/app-secrets/",
      "/webstack/lab/s2/release-command",
    ].sort(),
  );
  expect(node("s1").ssmScopes).not.toContain("/webstack/lab/s2/");
  // The primary applies after the replica: it reads the replica's bundle status.
  expect(node("s2").ssmScopes).toContain("/webstack/lab/s1/bundle-status");
  // The LB may also store the certificate it obtains (Let's Encrypt mode).
  expect(node("lb").ssmScopes).toContain("/webstack/lab/lb/");
  expect(
    ssmScopes(
      JSON.stringify({
        Statement: [
          { Action: "kms:Decrypt", Resource: "arn:aws:kms:eu-west-1:1:key/k" },
          { Action: ["ssm:PutParameter"], Resource: ["arn:aws:ssm:eu-west-1:1:parameter/a/b"] },
          // Session Manager's registration names no parameter: "*" is no read scope.
          {
            Action: ["ssm:UpdateInstanceInformation", "ssmmessages:CreateControlChannel"],
            Resource: "*",
          },
          { Action: "ssm:DescribeParameters", Resource: "*" },
        ],
      }),
    ),
  ).toEqual(["/a/b"]);
  for (const n of ["lb", "s1", "s2"]) expect(node(n).ssmScopes).not.toContain("*");
});

test("the CloudWatch stand-in takes each node's metrics in its role's namespaces, and no other", () => {
  for (const n of ["lb", "s1", "s2"])
    expect(node(n).metricNamespaces).toEqual([AGENT_METRIC_NAMESPACE, METRIC_NAMESPACE]);
  const statement = (condition?: object) => ({
    Action: "cloudwatch:PutMetricData",
    Resource: "*",
    ...(condition ? { Condition: condition } : {}),
  });
  expect(
    metricNamespaces(
      JSON.stringify({
        Statement: [
          { Action: "logs:PutLogEvents", Resource: "arn:aws:logs:eu-west-1:1:log-group:g:*" },
          statement({ StringEquals: { "cloudwatch:namespace": "A" } }),
          statement({ StringEquals: { "cloudwatch:namespace": ["B", "C"] } }),
        ],
      }),
    ),
  ).toEqual(["A", "B", "C"]);
  // What the stand-in would not reproduce faithfully, the lab refuses rather than guess: without
  // the condition a role may write every namespace; a Deny, or a pattern, it does not model.
  const refused =
    (...statements: object[]) =>
    () =>
      metricNamespaces(JSON.stringify({ Statement: statements }));
  expect(refused(statement())).toThrow(
    "a cloudwatch:PutMetricData statement without a namespace condition",
  );
  expect(
    refused({ ...statement({ StringEquals: { "cloudwatch:namespace": "B" } }), Effect: "Deny" }),
  ).toThrow(
    "takes only Allow statements naming cloudwatch:PutMetricData, not Deny cloudwatch:PutMetricData",
  );
  expect(refused({ Action: "cloudwatch:Put*", Resource: "*" })).toThrow(
    "not Allow cloudwatch:Put*",
  );
});

test("the S3 stand-in: the plan's bundle objects as uploaded, each node scoped to its own prefix", () => {
  const objects = Object.entries(s3Objects(plan)).map(([name, body]) => ({
    bucket: name.slice(0, name.indexOf("/")),
    key: name.slice(name.indexOf("/") + 1),
    body,
  }));
  const bucket = String(one(plan, T.bucket, "files-bucket").outputs.bucket);
  expect(objects.map((o) => [o.bucket, o.key.replace(/[0-9a-f]{64}/, "<sha256>")])).toEqual([
    // The app's release (issue 18): a file asset, served from the file the plan wrote.
    [bucket, "releases/<sha256>.tar.gz"],
    [bucket, "bundles/lb/<sha256>.json"],
    [bucket, "bundles/s1/<sha256>.json"],
    [bucket, "bundles/s2/<sha256>.json"],
  ]);
  for (const o of objects.filter((o) => o.key.startsWith("bundles/"))) {
    if (typeof o.body !== "string") throw new Error(`${o.key}: a bundle is text`);
    expect(createHash("sha256").update(o.body, "utf8").digest("hex")).toBe(
      /([0-9a-f]{64})\.json$/.exec(o.key)![1],
    );
  }
  const release = objects.find((o) => o.key.startsWith("releases/"))!;
  if (typeof release.body === "string") throw new Error("a release is a file");
  const archive = fs.readFileSync(release.body.file);
  expect(`releases/${createHash("sha256").update(archive).digest("hex")}.tar.gz`).toBe(release.key);
  expect(release.key).toBe(`releases/${String(plan.outputs.appRelease)}.tar.gz`);
  for (const n of nodes)
    expect(n.s3Scopes).toEqual({
      get: [
        `${bucket}/bundles/${n.name}/*`,
        // The app nodes read the app's releases (issue 18).
        ...(n.name === "lb" ? [] : [`${bucket}/releases/*`]),
        // The replica restores from the backups (issue 20).
        ...(n.name === "s1" ? [`${bucket}/backups/*`] : []),
      ],
      // s1 puts the full backups, s2 its own binlogs (issue 20).
      put: { lb: [], s1: [`${bucket}/backups/full/*`], s2: [`${bucket}/backups/binlog/s2/*`] }[
        n.name as "lb" | "s1" | "s2"
      ],
      list: n.name === "s1" ? [`${bucket}/backups/*`] : [],
    });
  // The pointers the nodes read are plain parameters the SSM stand-in serves.
  const pointer = JSON.parse(ssmParameters(plan)["/webstack/lab/s1/bundle"].Value);
  expect(objects).toContainEqual(
    expect.objectContaining({ bucket: pointer.bucket, key: pointer.key }),
  );
});

test("the S3 stand-in's grants are each role's s3 Allow statements, as bucket/key patterns", () => {
  expect(
    s3Scopes(
      JSON.stringify({
        Statement: [
          { Action: "s3:GetObject", Resource: "arn:aws:s3:::bucket-1/bundles/s1/*" },
          { Action: ["s3:PutObject"], Resource: "arn:aws:s3:::bucket-1/elsewhere/*" },
          { Effect: "Deny", Action: "s3:GetObject", Resource: "arn:aws:s3:::bucket-1/*" },
          { Action: ["ssm:GetParameter"], Resource: "arn:aws:ssm:eu-west-1:1:parameter/a" },
          {
            Action: "s3:ListBucket",
            Resource: "arn:aws:s3:::bucket-1",
            Condition: { StringLike: { "s3:prefix": ["backups/*"] } },
          },
          { Effect: "Deny", Action: "s3:ListBucket", Resource: "arn:aws:s3:::bucket-2" },
        ],
      }),
    ),
  ).toEqual({
    get: ["bucket-1/bundles/s1/*"],
    put: ["bucket-1/elsewhere/*"],
    list: ["bucket-1/backups/*"],
  });
});

test("the SSM stand-in serves the plan's parameters with their real values", () => {
  const parameters = ssmParameters(plan);
  expect(Object.keys(parameters).sort()).toEqual(
    ofType(plan, T.ssmParameter)
      .map((p) => String(p.inputs.name))
      .sort(),
  );
  const app = parameters["/webstack/lab/s1/db-app-password"];
  expect(app.Type).toBe("SecureString");
  expect(app.Value).toBe(one(plan, T.randomPassword, "app-secrets-db-app").outputs.result);
  expect(app.Value).not.toMatch(/^mock-/);
  const key = parameters["/webstack/lab/s2/tls-key"].Value;
  expect(key).toContain("BEGIN");
  expect(key).not.toContain("mock-");
});

test("the lab network: nodes at their fixed addresses, the VPC's router and resolver, names for the stand-ins", () => {
  // A range of its own, so the network must follow the topology it is given.
  const topology = buildTopology("192.168.10.0/24");
  const network = labNetwork(topology);
  const ip = mapNodes(topology.nodeNames, (node) => topology.nodes[node].privateIp);
  expect(network.nodeNames).toEqual(["lb", "s1", "s2"]);
  expect(network.nodes).toEqual(ip);
  expect(network.router).toBe("192.168.10.1");
  expect(network.resolver).toBe("192.168.10.2");
  // The resolver is the address security groups never filter.
  expect(unfilteredAddresses(topology.vpcCidr)).toContain(network.resolver);
  expect(network.ranges).toEqual(["192.168.10.0/24", "10.41.0.0/24"]);
  expect(network.hosts).toEqual({
    "deb.debian.org": network.mirror,
    "security.debian.org": network.mirror,
    "ssm.eu-west-1.amazonaws.com": network.ssm,
    "s3.eu-west-1.amazonaws.com": network.s3,
    "monitoring.eu-west-1.amazonaws.com": network.cloudwatch,
    "acme.lab.test": network.pebble,
    [LAB_DOMAIN]: ip.lb,
    ...Object.fromEntries(topology.nodeNames.map((n) => [topology.nodes[n].internalName, ip[n]])),
  });
  const names = ["mirror", "ssm", "s3", "cloudwatch", "pebble", "client", "secondClient"] as const;
  const services = names.map((name) => network[name]);
  for (const address of services) expect(address).toMatch(/^10\.41\.0\.\d+$/);
  expect(new Set(services).size).toBe(services.length);
});

test("the lab's firewalls are the plan's security-group rules, which render as the flows do", () => {
  const topology = buildTopology("10.40.0.0/16");
  const rules = planFirewallRules(plan, LAB_TOPOLOGY.nodeNames);
  const shape = (r: SecurityGroupRule) =>
    `${r.group} ${r.direction} ${r.peer} ${r.protocol}/${r.port}`;
  expect(rules.map(shape).sort()).toEqual(securityGroupRules().map(shape).sort());
  expect(rules).toHaveLength(
    ofType(plan, T.ingressRule).length + ofType(plan, T.egressRule).length,
  );
  for (const node of ["lb", "s1", "s2"] as const) {
    expect(renderNftables(topology, node, rules)).toBe(renderNftables(topology, node));
  }
});

test("a security-group rule the lab cannot reproduce stops the lab instead of being dropped", () => {
  const widen = (change: Record<string, unknown>): Plan => ({
    ...plan,
    resources: plan.resources.map((r) =>
      r.name === "firewalls-s2-in-tcp3306-from-s1"
        ? { ...r, inputs: { ...r.inputs, ...change } }
        : r,
    ),
  });
  expect(() => planFirewallRules(widen({ toPort: 3310 }), LAB_TOPOLOGY.nodeNames)).toThrow(
    "lab: firewalls-s2-in-tcp3306-from-s1: port range 3306-3310 has no nftables equivalent in the lab",
  );
  expect(() =>
    planFirewallRules(
      widen({ referencedSecurityGroupId: undefined, cidrIpv4: "10.0.0.0/8" }),
      LAB_TOPOLOGY.nodeNames,
    ),
  ).toThrow("peer 10.0.0.0/8 has no nftables equivalent");
  expect(() =>
    planFirewallRules(widen({ securityGroupId: "sg-elsewhere" }), LAB_TOPOLOGY.nodeNames),
  ).toThrow("refers to sg-elsewhere, on no node's instance");
});

test("fault injection: a failing boot step appended to the user-data, the rest kept", () => {
  for (const n of nodes) {
    const broken = withFailingBootStep(n.userData);
    expect(broken.startsWith(n.userData.split("\n").slice(0, 2).join("\n") + "\n")).toBe(true);
    const original = YAML.parse(n.userData);
    const parsed = YAML.parse(broken);
    expect(parsed.runcmd).toEqual([...original.runcmd, `echo '${BROKEN_BOOT_MARKER}' >&2; exit 7`]);
    expect({ ...parsed, runcmd: undefined }).toEqual({ ...original, runcmd: undefined });
  }
});

test("the benchmark's naive peer: the LB's own certificate and verified backends, without our tuning", () => {
  const ours = bundleFile(plan, "lb", "/etc/haproxy/haproxy.cfg");
  const naive = naiveHaproxyConfig(ours).split("\n");
  const oursLines = ours.split("\n").map((l) => l.trim());
  expect(naive).toEqual(
    expect.arrayContaining([
      "    option http-server-close",
      "    timeout server 1m",
      expect.stringMatching(/^ {4}bind :443 ssl crt \S+$/),
      expect.stringMatching(/^ {4}default-server check ssl verify required ca-file \S+$/),
    ]),
  );
  // The same servers (names, addresses, SNI checks) as ours, without our tcp-ut.
  expect(naive.filter((l) => l.trim().startsWith("server ")).map((l) => l.trim())).toEqual(
    oursLines.filter((l) => /^server s\d /.test(l)).map((l) => l.replace(/ tcp-ut 2s$/, "")),
  );
  for (const tuning of [
    "retries",
    "retry-on",
    "option redispatch",
    "http-reuse safe",
    "option srvtcpka",
  ]) {
    expect(naive.some((l) => l.trim().startsWith(tuning))).toBe(false);
    expect(oursLines.some((l) => l.startsWith(tuning))).toBe(true);
  }
  expect(naive.join("\n")).not.toContain("tcp-ut");
  expect(oursLines).not.toContain("option http-server-close");
  expect(() => naiveHaproxyConfig("global\n")).toThrow("not the one the program renders");
});

test("the benchmark's tuned Nginx peer: the LB's certificate, the same backends, kept-alive TLS upstreams", () => {
  const ours = bundleFile(plan, "lb", "/etc/haproxy/haproxy.cfg");
  const peer = tunedNginxConfig(ours, 2)
    .split("\n")
    .map((l) => l.trim());
  const certificate = /^\s*bind :443 ssl crt (\S+)/m.exec(ours)![1];
  const backends = [...ours.matchAll(/^\s+server s\d+ (\S+) /gm)].map((m) => m[1]);
  expect(backends).toEqual(["10.40.192.10:443", "10.40.128.10:443"]);
  expect(peer).toEqual(
    expect.arrayContaining([
      "worker_processes 2;",
      `listen ${NGINX_PEER_PORT} ssl;`,
      `ssl_certificate ${certificate};`,
      `ssl_certificate_key ${certificate};`,
      ...backends.map((b) => `server ${b};`),
      "keepalive 32;",
      "proxy_pass https://app;",
      "proxy_http_version 1.1;",
      'proxy_set_header Connection "";',
      "proxy_ssl_session_reuse on;",
      // What it does not do, as the bench prints: no check of the backends' certificates.
      "proxy_ssl_verify off;",
    ]),
  );
  expect(peer.filter((l) => l.startsWith("access_log "))).toEqual([
    "access_log /var/lib/webstack-bench-nginx/access.log peer buffer=64k flush=1s;",
  ]);
  expect(() => tunedNginxConfig("global\n", 2)).toThrow("not the one the program renders");
});

test("the benchmark's maximum-rate (HTTP/1.1 and HTTP/2) and replica rows: the median round, every round, all errors", () => {
  const max = (requests_per_s: number, p99_ms: number, errors = 0, lb_cpu_ms_per_1000 = NaN) => ({
    requests_per_s,
    p50_ms: p99_ms / 4,
    p99_ms,
    errors,
    lb_cpu_ms_per_1000,
  });
  const runs = [max(2100, 30, 0, 120), max(2400, 20, 2, 95), max(1900, 40, 0, 130)];
  expect(medianOfMaxRounds(runs)).toEqual({
    requests_per_s: 2100,
    p50_ms: 7.5,
    p99_ms: 30,
    errors: 2,
    lb_cpu_ms_per_1000: 120,
    rounds_requests_per_s: [2100, 2400, 1900],
    rounds_lb_cpu_ms_per_1000: [120, 95, 130],
  });
  // Over HTTP/2 the same rate, errors and LB figures, and the median round's mean time.
  const { p50_ms, p99_ms, ...rates } = medianOfMaxRounds(runs);
  const h2 = runs.map((r) => ({ ...r, mean_ms: r.p99_ms / 2 }));
  expect(medianOfH2Rounds(h2)).toEqual({ ...rates, mean_ms: 15 });
  // Two rates compare only without errors: a proxy answering 503s (no server up) is faster.
  expect(rateRatio({ requests_per_s: 2100, errors: 0 }, { requests_per_s: 2800, errors: 0 })).toBe(
    0.75,
  );
  expect(
    rateRatio({ requests_per_s: 4700, errors: 47928 }, { requests_per_s: 1758, errors: 0 }),
  ).toBe(NaN);
  expect(rateRatio({ requests_per_s: 2100, errors: 0 }, { requests_per_s: 2800, errors: 3 })).toBe(
    NaN,
  );
  // s1 direct: no LB crossed, no LB figure.
  expect(medianOfMaxRounds([max(4000, 10), max(4200, 11), max(3900, 12)])).toMatchObject({
    lb_cpu_ms_per_1000: NaN,
  });
  const delay = (p99_ms: number, seen: number) => ({
    writes: 10000,
    writers: 4,
    write_rate: 999.5,
    seen,
    p50_ms: 3,
    p99_ms,
    max_ms: p99_ms * 2,
    commit_p50_ms: 1,
    commit_p99_ms: p99_ms / 4,
  });
  expect(medianReplicaRound([delay(17, 10000), delay(9, 9990), delay(12, 10000)])).toEqual({
    ...delay(12, 29990),
    writes: 30000,
    rounds_p99_ms: [17, 9, 12],
    rounds_commit_p99_ms: [4.25, 2.25, 3],
  });
});

// Real h2load 1.52 (Debian 12's nghttp2-client) output, `-t2 -c16 -m10 -D 8 --npn-list=h2` (the
// others -D 2) against a throwaway Nginx in a private network namespace: 200s; 404s from an Nginx
// that also ends each connection after 1000 requests (its default keepalive_requests, GOAWAY:
// h2load opens no new one, so that client's next request errors); and a server offering no h2.
const h2loadOutput = (name: string) =>
  fs.readFileSync(`${__dirname}/fixtures/h2load/${name}.txt`, "utf8");

test("the benchmark's HTTP/2 run: h2load's rate, mean time and errors, each failed request once", () => {
  expect(parseH2load(h2loadOutput("h2-ok"))).toEqual({
    requests_per_s: 41152.88,
    done: 329223,
    errors: 0,
    status: { "2xx": 329223, "3xx": 0, "4xx": 0, "5xx": 0 },
    mean_ms: 3.69,
  });
  // h2load's "failed" (16085) already counts its 85 errored and 16000 4xx: not 32170.
  expect(parseH2load(h2loadOutput("h2-404-goaway"))).toMatchObject({
    requests_per_s: 8000,
    done: 16085,
    errors: 16085,
    status: { "2xx": 0, "4xx": 16000 },
    mean_ms: 2.3,
  });
  // Times in microseconds and seconds, as h2load prints them below 1 ms and from 1 s.
  const ok = h2loadOutput("h2-ok");
  const withMean = (mean: string) =>
    ok.replace(/^(time for request:\s+\S+\s+\S+\s+)3\.69ms/m, `$1${mean}`);
  expect(withMean("1.05s")).not.toBe(ok);
  expect(parseH2load(withMean("850us")).mean_ms).toBe(0.85);
  expect(parseH2load(withMean("1.05s")).mean_ms).toBe(1050);
});

test("the benchmark's HTTP/2 run: refused without HTTP/2, without requests, or with a line missing", () => {
  // h2load exits 0 when the server offers no h2: no "Application protocol: h2", no request.
  expect(() => parseH2load(h2loadOutput("no-h2"))).toThrow("no request went over HTTP/2");
  const ok = h2loadOutput("h2-ok");
  expect(() =>
    parseH2load(ok.replace("Application protocol: h2", "Application protocol: http/1.1")),
  ).toThrow("no request went over HTTP/2");
  for (const [name, start] of [
    ["finished", "finished in "],
    ["requests", "requests: "],
    ["status codes", "status codes: "],
    ["time for request", "time for request: "],
  ]) {
    const without = ok
      .split("\n")
      .filter((l) => !l.startsWith(start))
      .join("\n");
    expect(without.length).toBeLessThan(ok.length);
    expect(() => parseH2load(without)).toThrow(`h2load printed no ${name} line`);
  }
});

test("the benchmark's fixed-rate row: the median round's percentiles, every round's p99, all requests", () => {
  const round = (p50_ms: number, p99_ms: number, failed = 0) => ({
    p50_ms,
    p99_ms,
    failed,
    sent: 1000,
  });
  expect(medianOfRounds([round(1.2, 9.5), round(1.0, 3.1, 1), round(1.4, 4.0)])).toEqual({
    p50_ms: 1.2,
    p99_ms: 4.0,
    failed: 1,
    sent: 3000,
    rounds_p99_ms: [9.5, 3.1, 4.0],
  });
});

test("a broken bundle for the lab's tests: one file spoilt, re-addressed and pointed to", () => {
  const bundle = { format: 1, node: "lb", files: [{ path: "/etc/x.cfg", content: "good" }] };
  const content = JSON.stringify(bundle);
  const sha = createHash("sha256").update(content).digest("hex");
  const published = {
    parameters: {
      "/webstack/lab/lb/bundle": {
        Type: "String",
        Value: JSON.stringify({ bucket: "b", key: `bundles/lb/${sha}.json`, sha256: sha }),
      },
    },
    objects: { [`b/bundles/lb/${sha}.json`]: content },
  };
  withBrokenBundleFile(published, "/webstack/lab/lb/bundle", "/etc/x.cfg");
  const pointer = JSON.parse(published.parameters["/webstack/lab/lb/bundle"].Value) as {
    key: string;
    sha256: string;
  };
  expect(pointer.sha256).not.toBe(sha);
  expect(pointer.key).toBe(`bundles/lb/${pointer.sha256}.json`);
  const spoilt = published.objects[`b/${pointer.key}`];
  expect(createHash("sha256").update(spoilt).digest("hex")).toBe(pointer.sha256);
  expect(JSON.parse(spoilt).files[0].content).toMatch(/^good\n.*no program accepts/);
  // The good one is still there, as an older object version would be.
  expect(published.objects[`b/bundles/lb/${sha}.json`]).toBe(content);
  expect(() => withBrokenBundleFile(published, "/webstack/lab/lb/bundle", "/etc/none")).toThrow(
    "has no /etc/none",
  );
});

test("database rds is refused before the lab starts, and its firewall rules can never render", () => {
  const refusal =
    "database rds (Amazon RDS for MariaDB) has no lab equivalent; it is proven by the offline " +
    "plan only: npm run plan -- --stack dev --set database=rds";
  expect(labRefusal({ "webstack:database": "rds" })).toBe(refusal);
  for (const database of ["replication", "galera"])
    expect(labRefusal({ "webstack:database": database })).toBeUndefined();
  expect(labRefusal({})).toBeUndefined();
  const topology = buildTopology("10.40.0.0/16", { vpcEndpoints: false, database: "rds" });
  expect(() => renderNftables(topology, "s1")).toThrow(`lab: ${refusal}`);
});

test("the lab's topology follows up's --set: appNodeCount boots s3 at its address, in the other AZ's subnet from s2", () => {
  expect(LAB_TOPOLOGY.nodeNames).toEqual(["lb", "s1", "s2"]);
  const three = labTopology({ "webstack:appNodeCount": "3" });
  expect(three.nodeNames).toEqual(["lb", "s1", "s2", "s3"]);
  const network = labNetwork(three);
  expect(network.nodeNames).toEqual(["lb", "s1", "s2", "s3"]);
  // s3 beside s1 in private-b, the next address.
  expect(three.nodes.s3.subnet).toBe(three.nodes.s1.subnet);
  expect(network.nodes.s3).toBe(three.nodes.s3.privateIp);
  expect(network.nodes.s3).not.toBe(network.nodes.s1);
  expect(network.hosts[three.nodes.s3.internalName]).toBe(network.nodes.s3);
  // The flows the firewalls enforce are that stack's: the LB reaches s3's Nginx.
  expect(three.flows).toContainEqual(expect.objectContaining({ from: "lb", to: "s3", port: 443 }));
  expect(
    labTopology({ "webstack:database": "galera", "webstack:appNodeCount": "3" }).flows,
  ).not.toContainEqual(expect.objectContaining({ from: "lb", port: 4567 }));
});

test("apply refuses what only up can build: another node count, database or VPC range", () => {
  const up = { "webstack:appNodeCount": "3" };
  expect(labRefusal({ ...up, "webstack:logRetentionDays": "30" }, up)).toBeUndefined();
  expect(labRefusal({}, up)).toBe(
    "webstack:appNodeCount changes the lab's nodes or their network, which only up builds: " +
      "npm run lab -- up --set appNodeCount=",
  );
  expect(labRefusal({ "webstack:appNodeCount": "4", "webstack:database": "galera" }, up)).toBe(
    "webstack:appNodeCount, webstack:database changes the lab's nodes or their network, which only up builds: " +
      "npm run lab -- up --set appNodeCount=4 --set database=galera",
  );
});
