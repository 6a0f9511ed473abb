// Issue 17 under mocks: each node's bundle as the contract fixes it, released together, pointed at;
// node-level settings change bundles and pointers only; every bootstrap within 4 KB as sent.
import { PATCHING_PACKAGES } from "../cloud-init/patching";
import { GARBD_PACKAGE } from "../cloud-init/loadBalancer";
import { createHash } from "crypto";
import YAML from "yaml";
import { DEBIAN_SOURCES_TEMPLATE } from "../model/aptSources";
import { decodeUserData, shippedSize } from "../cloud-init/userDataEncoding";
import { DEFAULT_APP_NODE_COUNT, nodeNames } from "../model/topology";
import { Plan, PlannedResource } from "../plan/plan";
import { revealSecrets } from "../plan/secrets";
import {
  T,
  bundleObject,
  bundleOf,
  generatedSecrets,
  ofType,
  one,
  planConfig,
  planStack,
  userDataDocument,
} from "./harness";

/** The default stack's nodes: the LB, s1 and s2. */
const NODES = nodeNames(DEFAULT_APP_NODE_COUNT);

const BASE = { domain: "www.example.com" };
const DATADOG_KEY = "0123456789abcdef0123456789abcdef";
const withDatadog = (config: Record<string, string>) =>
  planConfig(
    { ...config, datadog: "true", datadogApiKey: DATADOG_KEY },
    { secretKeys: ["webstack:datadogApiKey"] },
  );

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

let plan: Plan;
beforeAll(async () => {
  plan = await planConfig(BASE);
});

describe("the bundle of each node (format 1)", () => {
  test.each(NODES)("%s: the contract's keys, in its order, and nothing else", (node) => {
    const bundle = bundleOf(plan, node);
    expect(Object.keys(bundle)).toEqual([
      "format",
      "node",
      "release",
      "after",
      "packages",
      "files",
      "firstApply",
      // The app nodes' release (issue 18).
      ...(node === "lb" ? [] : ["app"]),
      "healthCheck",
    ]);
    expect(bundle).toMatchObject({
      format: 1,
      node,
      release: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    for (const file of bundle.files) {
      expect(Object.keys(file)).toEqual(
        ["path", "content", "mode", "owner", "validate", "onChange"].filter((key) => key in file),
      );
      expect(file).toMatchObject({
        path: expect.stringMatching(/^\/[\w./-]+$/),
        mode: expect.stringMatching(/^0[0-7]{3}$/),
        owner: "root:root",
      });
      for (const argv of [file.validate, file.onChange].filter((a) => a !== undefined))
        expect(argv!.every((arg) => typeof arg === "string" && arg !== "")).toBe(true);
    }
    expect(new Set(bundle.files.map((f) => f.path)).size).toBe(bundle.files.length);
    // The node tool ships in the bundle: the bootstrap installs it from there.
    expect(bundle.files.find((f) => f.path === "/usr/local/sbin/webstack-aws")?.mode).toBe("0755");
    // The former runcmd, then the apply timer: from then on the node follows its pointer.
    expect(bundle.firstApply[bundle.firstApply.length - 1]).toEqual([
      "systemctl",
      "enable",
      "--now",
      "webstack-apply.timer",
    ]);
    expect(bundle.firstApply).toContainEqual([
      node === "lb" ? "/usr/local/sbin/webstack-lb-boot" : "/usr/local/sbin/webstack-boot",
    ]);
    expect(bundle.healthCheck?.[0]).toBe("curl");
  });

  test("only the primary waits, for the replica's status", () => {
    expect(bundleOf(plan, "lb").after).toEqual([]);
    expect(bundleOf(plan, "s1").after).toEqual([]);
    expect(bundleOf(plan, "s2").after).toEqual([
      { node: "s1", status: "/webstack/test/s1/bundle-status" },
    ]);
  });

  test.each(NODES)(
    "%s: uploaded content-addressed, SSE-KMS with the stack's key, and pointed at by a String parameter",
    (node) => {
      const object = bundleObject(plan, node);
      const content = String(object.inputs.content);
      const digest = sha256(content);
      const bucket = one(plan, T.bucket, "files-bucket");
      expect(object.inputs).toEqual({
        bucket: bucket.outputs.bucket,
        key: `bundles/${node}/${digest}.json`,
        content,
        contentType: "application/json",
        serverSideEncryption: "aws:kms",
        kmsKeyId: one(plan, T.kmsKey, "parameters-key").outputs.arn,
        bucketKeyEnabled: true,
      });
      const pointer = one(plan, T.ssmParameter, `bundles-${node}-pointer`);
      expect(pointer.inputs).toMatchObject({
        name: `/webstack/test/${node}/bundle`,
        type: "String",
        tier: "Standard",
      });
      expect(pointer.inputs.keyId).toBeUndefined();
      expect(pointer.inputs.value).toBe(
        JSON.stringify({
          bucket: bucket.outputs.bucket,
          key: `bundles/${node}/${digest}.json`,
          sha256: digest,
        }),
      );
    },
  );

  test("one release for all nodes: the sha256 of the sorted payload sha256s, one per line", () => {
    const bundles = NODES.map((node) => bundleOf(plan, node));
    const release = bundles[0].release;
    expect(bundles.every((b) => b.release === release)).toBe(true);
    const payloadSha = (node: string) => {
      const content = String(bundleObject(plan, node).inputs.content);
      return sha256(content.replace(`,"release":"${release}"`, ""));
    };
    expect(release).toBe(sha256(NODES.map(payloadSha).sort().join("\n")));
    expect(plan.outputs.bundleRelease).toBe(release);
  });

  test("the outputs name each node's pointer, status parameter, key and sha256, never contents", () => {
    expect(plan.outputs.bundleBucket).toBe(one(plan, T.bucket, "files-bucket").outputs.bucket);
    for (const node of NODES) {
      const object = bundleObject(plan, node);
      expect((plan.outputs.bundles as Record<string, unknown>)[node]).toEqual({
        pointer: `/webstack/test/${node}/bundle`,
        status: `/webstack/test/${node}/bundle-status`,
        key: object.inputs.key,
        sha256: sha256(String(object.inputs.content)),
      });
    }
  });
});

describe("each bundle names its bootstrap's packages, so a running node gets a new one", () => {
  test.each([
    ["self-signed, MariaDB", () => Promise.resolve(plan)],
    [
      "letsencrypt",
      () => planConfig({ ...BASE, certificate: "letsencrypt", acmeEmail: "ops@example.com" }),
    ],
    ["mysql", () => planConfig({ ...BASE, dbEngine: "mysql" })],
    ["galera", () => planConfig({ ...BASE, database: "galera" })],
  ])(
    "%s: exactly the bootstrap's list, sorted (the LB's: and those added since, patching's, and galera's arbitrator)",
    async (name, make) => {
      const p = await make();
      for (const node of NODES) {
        const bootstrap = userDataDocument(p, node).packages ?? [];
        // The arbitrator never enters the LB's bootstrap: a change to it would replace the LB.
        const added =
          node === "lb"
            ? [...PATCHING_PACKAGES, ...(name === "galera" ? [GARBD_PACKAGE] : [])]
            : [];
        expect(bootstrap.length).toBeGreaterThan(5);
        expect({ node, packages: bundleOf(p, node).packages }).toEqual({
          node,
          packages: [...bootstrap, ...added].sort(),
        });
      }
    },
  );

  test("the app nodes' include python3-venv (a release's venv), the LB's HAProxy", () => {
    for (const node of ["s1", "s2"])
      expect(bundleOf(plan, node).packages).toEqual(
        expect.arrayContaining(["python3-venv", "nginx", "gunicorn", "mariadb-server"]),
      );
    expect(bundleOf(plan, "lb").packages).toEqual(
      expect.arrayContaining(["haproxy", "rsyslog", "curl"]),
    );
    expect(bundleOf(plan, "lb").packages).not.toContain("python3-venv");
  });
});

/** Resources of `after` whose inputs differ from `before`'s, and those only one of them has. */
function compare(before: Plan, after: Plan) {
  const index = (p: Plan) =>
    new Map(revealSecrets(p.resources).map((r) => [r.urn, r] as [string, PlannedResource]));
  const [b, a] = [index(before), index(after)];
  const changed = [...a.values()].filter(
    (r) => b.has(r.urn) && JSON.stringify(b.get(r.urn)!.inputs) !== JSON.stringify(r.inputs),
  );
  const named = (r: PlannedResource) => `${r.type}::${r.name}`;
  const added = [...a.values()].filter((r) => !b.has(r.urn)).map(named);
  const gone = [...b.values()].filter((r) => !a.has(r.urn)).map(named);
  return { changed, added, gone };
}

const BUNDLE_RESOURCES = NODES.flatMap((node) => [
  `${T.bucketObject}::bundles-${node}`,
  `${T.ssmParameter}::bundles-${node}-pointer`,
]).sort();

describe("a node-level setting reaches the nodes through their bundles only", () => {
  test.each([
    ["lbServerTimeoutSeconds", { lbServerTimeoutSeconds: "120" }],
    ["maxBodyMiB", { maxBodyMiB: "50" }],
    ["rateLimitPerClient", { rateLimitPerClient: "0" }],
  ])("%s: only the bundle objects and pointers change; no instance input", async (_, setting) => {
    const changedPlan = await planConfig({ ...BASE, ...setting });
    const { changed, added, gone } = compare(plan, changedPlan);
    expect([added, gone]).toEqual([[], []]);
    expect(changed.map((r) => `${r.type}::${r.name}`).sort()).toEqual(BUNDLE_RESOURCES);
    expect(changed.filter((r) => r.type === T.instance)).toEqual([]);
  });

  test("maxBodyMiB changes the app nodes' payloads only; the release moves the LB's bundle too", async () => {
    const changedPlan = await planConfig({ ...BASE, maxBodyMiB: "50" });
    const files = (p: Plan, node: string) => JSON.stringify(bundleOf(p, node).files);
    expect(files(changedPlan, "lb")).toBe(files(plan, "lb"));
    for (const node of ["s1", "s2"]) expect(files(changedPlan, node)).not.toBe(files(plan, node));
    expect(bundleOf(changedPlan, "lb").release).not.toBe(bundleOf(plan, "lb").release);
  });

  test("Datadog on and off again: no instance input changes; the API key's parameter is added", async () => {
    const on = await withDatadog(BASE);
    const { changed, added, gone } = compare(plan, on);
    expect(gone).toEqual([]);
    expect(added.sort()).toEqual([
      "aws:ssm/parameter:Parameter::datadog-api-key",
      "webstack:monitoring:DatadogApiKey::datadog",
    ]);
    expect(changed.map((r) => `${r.type}::${r.name}`).sort()).toEqual(BUNDLE_RESOURCES);
    // Off again: the same bundles as before it was ever on (the datadog.env switch says off).
    const off = await planConfig(BASE);
    for (const node of NODES)
      expect(bundleObject(off, node).inputs).toEqual(bundleObject(plan, node).inputs);
  });
});

describe("every node's bootstrap: within 4 KB as sent, APT over HTTPS only, the same whatever a bundle changes", () => {
  const VARIANTS: [string, () => Promise<Plan>][] = [
    ["dev", () => planStack("dev")],
    ["prod", () => planStack("prod")],
    ["self-signed", () => planConfig(BASE)],
    [
      "letsencrypt",
      () => planConfig({ ...BASE, certificate: "letsencrypt", acmeEmail: "ops@example.com" }),
    ],
    ["acm", () => planConfig({ ...BASE, certificate: "acm", hostedZone: "example.com" })],
    ["datadog on", () => withDatadog(BASE)],
    ["mysql", () => planConfig({ ...BASE, dbEngine: "mysql" })],
    ["galera", () => planConfig({ ...BASE, database: "galera" })],
  ];

  test.each(VARIANTS)("%s", async (_, make) => {
    const p = await make();
    for (const instance of ofType(p, T.instance)) {
      const encoded =
        typeof instance.inputs.userData === "string"
          ? { userData: instance.inputs.userData }
          : { userDataBase64: String(instance.inputs.userDataBase64) };
      expect({ node: instance.name, withinGoal: shippedSize(encoded) <= 4096 }).toEqual({
        node: instance.name,
        withinGoal: true,
      });
      // Debian's archive and every extra source over HTTPS: the firewalls open no port 80 outbound.
      const apt = YAML.parse(decodeUserData(instance.inputs)).apt;
      expect({ node: instance.name, sourcesList: apt.sources_list }).toEqual({
        node: instance.name,
        sourcesList: DEBIAN_SOURCES_TEMPLATE,
      });
      const uris = [
        ...[...apt.primary, ...apt.security].map((m: { uri: string }) => m.uri),
        ...Object.values(apt.sources ?? {}).map(
          (s) => (s as { source: string }).source.split(" ")[2],
        ),
      ];
      expect(uris.filter((uri) => !uri.startsWith("https://"))).toEqual([]);
      expect(uris).toContain("https://deb.debian.org/debian");
    }
  });

  test("no secret in any bundle of prod (Datadog on, its key a placeholder; an app secret)", async () => {
    const prod = await planStack("prod", [
      'appSecrets={"SHOP_API_KEY": "sk_live_0123456789abcdef"}',
    ]);
    const secrets = [
      ...generatedSecrets(prod),
      ...ofType(prod, T.ssmParameter)
        .filter((p) => p.inputs.type === "SecureString")
        .map(
          (p) =>
            String(p.inputs.value)
              .split("\n")
              .find((l) => l.length >= 16) ?? "",
        ),
    ].filter((s) => s.length >= 16);
    expect(secrets.length).toBeGreaterThan(10);
    expect(secrets).toContain("sk_live_0123456789abcdef");
    for (const node of NODES) {
      const content = String(bundleObject(prod, node).inputs.content);
      for (const secret of secrets) expect(content).not.toContain(secret);
    }
  });
});
