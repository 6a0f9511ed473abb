// Issue 18 under mocks: the app directory uploaded as a release, the app's secret variables, what
// each node's role may do with them, and what the app nodes' bundles say about the release.
import * as fs from "fs";
import * as path from "path";
import { APP_SANDBOX } from "../cloud-init/appNode";
import { Plan } from "../plan/plan";
import { redactSecrets } from "../plan/secrets";
import { readAppSource, releaseArchivePath, releaseIdOf } from "../platform/appArchive";
import {
  ACCOUNT_ID,
  PROJECT_DIR,
  T,
  bundleFile,
  bundleOf,
  grantsOf,
  ofType,
  one,
  planConfig,
  userDataDocument,
} from "./harness";

const BASE = { domain: "www.example.com" };
const SECRET = "sk_live_0123456789abcdef";
const WITH_APP = {
  ...BASE,
  appModule: "app:application",
  appEnv: JSON.stringify({ SHOP_CURRENCY: "EUR" }),
  appSecrets: JSON.stringify({ SHOP_API_KEY: SECRET, SHOP_SIGNING_KEY: "another-secret-value" }),
  releaseCommand: "python -m shop.migrate",
};
/** The release the repository's own app/ packs to. */
const RELEASE = releaseIdOf(readAppSource(path.join(PROJECT_DIR, "app")).archive!);

let plain: Plan;
let withApp: Plan;
beforeAll(async () => {
  plain = await planConfig(BASE);
  withApp = await planConfig(WITH_APP, { secretKeys: ["webstack:appSecrets"] });
});

const ssm = (name: string) => `arn:aws:ssm:eu-west-1:${ACCOUNT_ID}:parameter${name}`;

describe("the release", () => {
  test("uploaded from the packed file under its id, SSE-KMS with the stack's key", () => {
    const object = one(plain, T.bucketObject, "app-release-archive");
    expect(object.inputs).toEqual({
      bucket: one(plain, T.bucket, "files-bucket").outputs.bucket,
      key: `releases/${RELEASE}.tar.gz`,
      // The plan gives a file asset as its path (plan/plan.ts): the file the program packed.
      source: { asset: "file", path: releaseArchivePath(RELEASE) },
      contentType: "application/gzip",
      serverSideEncryption: "aws:kms",
      kmsKeyId: one(plain, T.kmsKey, "parameters-key").outputs.arn,
      bucketKeyEnabled: true,
    });
    expect(releaseIdOf(fs.readFileSync(releaseArchivePath(RELEASE)))).toBe(RELEASE);
  });

  test("the stack output appRelease is its id", () => {
    expect(plain.outputs.appRelease).toBe(RELEASE);
  });

  test("no app secrets: no parameter under app-secrets/", () => {
    expect(
      ofType(plain, T.ssmParameter).filter((p) => String(p.inputs.name).includes("/app-secrets/")),
    ).toEqual([]);
  });
});

describe("the app's secret variables", () => {
  test("one SecureString each, under app-secrets/, encrypted with the stack's key", () => {
    const keyId = one(withApp, T.kmsKey, "parameters-key").outputs.keyId;
    const params = ofType(withApp, T.ssmParameter).filter((p) =>
      p.name.startsWith("app-variables-"),
    );
    expect(
      params.map((p) => [p.name, p.inputs.name, p.inputs.type, p.inputs.keyId, p.inputs.value]),
    ).toEqual([
      [
        "app-variables-SHOP_API_KEY",
        "/webstack/test/app-secrets/SHOP_API_KEY",
        "SecureString",
        keyId,
        SECRET,
      ],
      [
        "app-variables-SHOP_SIGNING_KEY",
        "/webstack/test/app-secrets/SHOP_SIGNING_KEY",
        "SecureString",
        keyId,
        "another-secret-value",
      ],
    ]);
  });

  test("their values are Pulumi secrets, and never in user-data, bundles, pointers or outputs", () => {
    const raw = withApp.resources.find((r) => r.name === "app-variables-SHOP_API_KEY")!;
    expect(redactSecrets(raw).inputs.value).toBe("[secret]");
    const documents = [
      ...ofType(withApp, T.instance).map((i) => JSON.stringify(i.inputs)),
      ...ofType(withApp, T.bucketObject).map((o) => String(o.inputs.content ?? "")),
      ...ofType(withApp, T.ssmParameter)
        .filter((p) => p.name.endsWith("-pointer"))
        .map((p) => String(p.inputs.value)),
      JSON.stringify(withApp.outputs),
    ];
    for (const doc of documents) {
      expect(doc).not.toContain(SECRET);
      expect(doc).not.toContain("another-secret-value");
    }
  });
});

describe("the nodes' roles", () => {
  const bucketArn = () => String(one(withApp, T.bucket, "files-bucket").outputs.arn);
  const keyArn = () => one(withApp, T.kmsKey, "parameters-key").outputs.arn;
  const shared = () => [
    { actions: ["s3:GetObject"], resources: [`${bucketArn()}/releases/*`] },
    {
      actions: ["ssm:GetParameter", "ssm:GetParameters"],
      resources: [ssm("/webstack/test/app-secrets/*")],
    },
    {
      actions: ["kms:Decrypt"],
      resources: [keyArn()],
      condition: {
        StringEquals: { "kms:ViaService": "ssm.eu-west-1.amazonaws.com" },
        StringLike: {
          "kms:EncryptionContext:PARAMETER_ARN": ssm("/webstack/test/app-secrets/*"),
        },
      },
    },
  ];
  const sorted = (grants: object[]) =>
    grants.sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

  test.each([
    ["s2", "primary", "reports its release command", "ssm:PutParameter"],
    ["s1", "replica", "and the primary's release command status", "ssm:GetParameter"],
  ])("%s (%s): reads releases and app secrets, %s", (node, _role, _what, commandAction) => {
    expect(grantsOf(one(withApp, T.rolePolicy, `${node}-identity-releases`).inputs.policy)).toEqual(
      sorted([
        ...shared(),
        { actions: [commandAction], resources: [ssm("/webstack/test/s2/release-command")] },
      ]),
    );
  });

  test("the LB: no release policy, and nothing of releases or app secrets in any of its policies", () => {
    expect(ofType(withApp, T.rolePolicy).filter((p) => p.name === "lb-identity-releases")).toEqual(
      [],
    );
    for (const p of ofType(withApp, T.rolePolicy).filter((p) => p.name.startsWith("lb-"))) {
      expect(String(p.inputs.policy)).not.toMatch(/releases\/|app-secrets|release-command/);
    }
  });
});

describe("the app nodes' bundles", () => {
  const app = (release: string) => ({
    release,
    bucket: String(one(withApp, T.bucket, "files-bucket").outputs.bucket),
    key: `releases/${release}.tar.gz`,
    module: "app:application",
    sandbox: [...APP_SANDBOX],
  });
  const status = "/webstack/test/s2/release-command";

  test("with a release command: the primary runs it, the replica waits for it", () => {
    expect(bundleOf(withApp, "s2").app).toEqual({
      ...app(RELEASE),
      command: { run: "python -m shop.migrate", status },
    });
    expect(bundleOf(withApp, "s1").app).toEqual({
      ...app(RELEASE),
      awaitCommand: { node: "s2", status },
    });
  });

  test("without one: the release alone, on both", () => {
    for (const node of ["s1", "s2"]) expect(bundleOf(plain, node).app).toEqual(app(RELEASE));
  });

  test("the LB's bundle has no app", () => {
    expect("app" in bundleOf(withApp, "lb")).toBe(false);
  });

  test("the app's settings, its secrets' manifest (with versions), the module in the unit", () => {
    for (const node of ["s1", "s2"]) {
      expect(JSON.parse(bundleFile(withApp, node, "/etc/webstack/app-settings.json"))).toEqual({
        env: { SHOP_CURRENCY: "EUR" },
      });
      expect(JSON.parse(bundleFile(withApp, node, "/etc/webstack/app-secrets.json"))).toEqual(
        ["SHOP_API_KEY", "SHOP_SIGNING_KEY"].map((name) => ({
          parameter: `/webstack/test/app-secrets/${name}`,
          path: `/etc/webstack/app-secrets/${name}`,
          mode: "0400",
          owner: "webstack-app:webstack-app",
          version: 1,
        })),
      );
      expect(bundleFile(plain, node, "/etc/webstack/app-secrets.json")).toBe("[]\n");
      expect(bundleFile(withApp, node, "/etc/systemd/system/webstack-app.service")).toContain(
        "\nExecStart=/usr/bin/gunicorn --config /etc/webstack/gunicorn.conf.py app:application\n",
      );
    }
  });

  test("another appModule is another unit (a restart); no app.py in any bundle any more", async () => {
    // The repository's app/ has app.py: any callable of module app is accepted.
    const moved = await planConfig({ ...BASE, appModule: "app:other" });
    expect(bundleFile(moved, "s1", "/etc/systemd/system/webstack-app.service")).toContain(
      "/etc/webstack/gunicorn.conf.py app:other\n",
    );
    // The bundle's app names it too: what the node's preflight of a new release serves.
    expect(bundleOf(moved, "s1").app).toMatchObject({ module: "app:other" });
    for (const node of ["lb", "s1", "s2"])
      expect(bundleOf(plain, node).files.map((f) => f.path)).not.toContain("/srv/webstack/app.py");
  });

  test("the release command's runner, for the engine's client; python3-venv installed", async () => {
    expect(bundleFile(plain, "s2", "/usr/local/sbin/webstack-release-command")).toContain(
      '\n  /usr/bin/mariadb --protocol=socket --user=root "$@"\n',
    );
    const mysql = await planConfig({ ...BASE, dbEngine: "mysql" });
    expect(bundleFile(mysql, "s2", "/usr/local/sbin/webstack-release-command")).toContain(
      '\n  /usr/bin/mysql --protocol=socket --user=root "$@"\n',
    );
    for (const node of ["s1", "s2"])
      expect(userDataDocument(plain, node).packages).toContain("python3-venv");
  });

  test("the migrate user's password: a parameter per app node, fetched root-only", () => {
    for (const node of ["s1", "s2"]) {
      expect(
        one(plain, T.ssmParameter, `app-secrets-${node}-db-migrate-password`).inputs,
      ).toMatchObject({
        name: `/webstack/test/${node}/db-migrate-password`,
        type: "SecureString",
      });
      expect(JSON.parse(bundleFile(plain, node, "/etc/webstack/secrets.json"))).toContainEqual({
        parameter: `/webstack/test/${node}/db-migrate-password`,
        path: "/etc/webstack/secrets/db-migrate-password",
        mode: "0600",
        owner: "root:root",
      });
    }
  });
});
