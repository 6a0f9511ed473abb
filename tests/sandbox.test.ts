// Issue 19, the app's sandbox: its own user and where it comes from, its secrets out of every
// environment block, and each service's exposure as `systemd-analyze security` scores the rendered
// unit files offline (this machine's systemd; the nodes' own scores them in artifacts.test.ts).
import { spawnSync } from "child_process";
import * as fs from "fs";
import { isIP } from "net";
import * as os from "os";
import * as path from "path";
import {
  APP_DB_PASSWORD_PATH,
  APP_ENVIRONMENT_PATH,
  APP_SANDBOX,
  APP_USER,
  RELEASE_COMMAND_PATH,
  toolSandbox,
} from "../cloud-init/appNode";
import { Plan } from "../plan/plan";
import { EXPOSURE_GOAL, UNIT_EXPOSURE, parseExposure } from "../model/exposure";
import { bundleOf, commandWorks, planConfig, PlannedBundle, testNeeding } from "./harness";
import { readmeExposureColumn, scoresByUnit } from "./readmeTables";

const UNIT_DIR = "/etc/systemd/system/";
const SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-sandbox-"));
afterAll(() => fs.rmSync(SCRATCH, { recursive: true, force: true }));

const plans: Plan[] = [];
beforeAll(async () => {
  // Every service a bundle can carry: the certificate's comes with Let's Encrypt and ACM only.
  const modes: Record<string, string>[] = [
    {},
    { certificate: "letsencrypt", acmeEmail: "ops@example.com" },
    { certificate: "acm", hostedZone: "example.com" },
  ];
  for (const certificate of modes)
    plans.push(await planConfig({ domain: "www.example.com", ...certificate }));
}, 120_000);

const bundles = (): PlannedBundle[] =>
  plans.flatMap((plan) => ["lb", "s1", "s2"].map((node) => bundleOf(plan, node)));

/** Each distinct rendered service file, by unit name and the nodes that carry it. */
function renderedServices() {
  const found = new Map<string, { unit: string; nodes: Set<string>; content: string }>();
  for (const bundle of bundles())
    for (const file of bundle.files.filter(
      (f) => f.path.startsWith(UNIT_DIR) && f.path.endsWith(".service"),
    )) {
      const unit = file.path.slice(UNIT_DIR.length);
      const key = `${unit}\n${file.content}`;
      const entry = found.get(key) ?? { unit, nodes: new Set<string>(), content: file.content };
      entry.nodes.add(bundle.node);
      found.set(key, entry);
    }
  return [...found.values()];
}

describe("the app's own user", () => {
  test("its user and its secrets' directory come first in an app node's bundle: the user applied as its check, the directory's rule only dry-run (it changes owners)", () => {
    for (const bundle of bundles().filter((b) => b.node !== "lb")) {
      expect(bundle.files.slice(0, 2)).toEqual([
        {
          path: "/etc/sysusers.d/webstack.conf",
          content: expect.stringMatching(
            /^u\s+webstack-app\s+-\s+"webstack app \(Gunicorn\)"\s+\/nonexistent\s+\/usr\/sbin\/nologin$/m,
          ),
          mode: "0644",
          owner: "root:root",
          validate: ["systemd-sysusers", "/etc/sysusers.d/webstack.conf"],
        },
        {
          path: "/etc/tmpfiles.d/webstack.conf",
          content: expect.stringMatching(
            /^d\s+\/etc\/webstack\/app-secrets\s+0750\s+root\s+webstack-app\s+-$/m,
          ),
          mode: "0644",
          owner: "root:root",
          // The applier applies the rule once every file is checked; an older applier, which does
          // not, applies it as the file's action, before the app restarts as its user.
          validate: ["systemd-tmpfiles", "--dry-run", "--create", "/etc/tmpfiles.d/webstack.conf"],
          onChange: ["systemd-tmpfiles", "--create", "/etc/tmpfiles.d/webstack.conf"],
        },
      ]);
      // A node booted before: its www-data secret files become the app's user's.
      expect(bundle.files[1].content).toMatch(
        /^z\s+\/etc\/webstack\/app-secrets\/\*\s+0400\s+webstack-app\s+webstack-app\s+-$/m,
      );
    }
    expect(bundleOf(plans[0], "lb").files.map((f) => f.path)).not.toContain(
      "/etc/sysusers.d/webstack.conf",
    );
  });

  test("a node booted before: the password is fetched, then the app restarted as its user, then reloaded, then its secrets fetched again", () => {
    // The applier runs each distinct onChange in bundle order; the old (www-data) Gunicorn must
    // never be reloaded with a config that reads files only the new user may read.
    const bundle = bundleOf(plans[0], "s2");
    const actions = [
      ...new Set(bundle.files.filter((f) => f.onChange).map((f) => f.onChange!.join(" "))),
    ];
    const at = (action: string) => {
      expect(actions).toContain(action);
      return actions.indexOf(action);
    };
    const handOver = at("systemd-tmpfiles --create /etc/tmpfiles.d/webstack.conf");
    const fetchPassword = at("/usr/local/sbin/webstack-aws fetch /etc/webstack/secrets.json");
    const restart = at("/usr/local/sbin/webstack-unit-changed try-restart webstack-app.service");
    expect(handOver).toBeLessThan(restart);
    const reload = at("systemctl reload webstack-app.service");
    const fetchSecrets = at(
      "/usr/local/sbin/webstack-aws fetch /etc/webstack/app-secrets.json --reload webstack-app.service",
    );
    expect(fetchPassword).toBeLessThan(restart);
    expect(restart).toBeLessThan(reload);
    expect(reload).toBeLessThan(fetchSecrets);
  });

  test("nothing on the app nodes is www-data's but Nginx's side of Gunicorn's socket", () => {
    for (const bundle of bundles().filter((b) => b.node !== "lb")) {
      const naming = bundle.files.flatMap((f) =>
        f.content
          .split("\n")
          .filter((line) => /www-data/.test(line) && !line.trim().startsWith("#"))
          .map((line) => `${f.path}: ${line}`),
      );
      expect(naming).toEqual([
        "/etc/tmpfiles.d/webstack.conf: d     /run/webstack               0750 webstack-app www-data     -",
      ]);
    }
  });

  test("the database password is in no environment the unit passes: not in app.env, unset if a node still has it", () => {
    const bundle = bundleOf(plans[0], "s1");
    const file = (at: string) => bundle.files.find((f) => f.path === at)!.content;
    const boot = file("/usr/local/sbin/webstack-boot");
    const appEnv = /\{\n([\s\S]*?)\n\} >\/etc\/webstack\/app\.env/.exec(boot)?.[1] ?? "";
    expect(appEnv).toContain("WEBSTACK_NODE=");
    expect(appEnv).not.toContain("PASSWORD");
    const unit = file("/etc/systemd/system/webstack-app.service").split("\n");
    expect(unit).toEqual(
      expect.arrayContaining([
        "EnvironmentFile=/etc/webstack/app.env",
        "UnsetEnvironment=DB_APP_PASSWORD",
      ]),
    );
    expect(unit.filter((l) => /^Environment=/.test(l))).toEqual([]);
    // Gunicorn's config reads it from the app's own copy, which the node's manifest fetches, by
    // the rule the release command follows too.
    expect(file("/etc/webstack/gunicorn.conf.py")).toContain(
      `app_environment = runpy.run_path("${APP_ENVIRONMENT_PATH}")["app_environment"]`,
    );
    expect(file(APP_ENVIRONMENT_PATH)).toContain(`DB_PASSWORD_FILE = "${APP_DB_PASSWORD_PATH}"`);
    expect(file(RELEASE_COMMAND_PATH)).toContain(`/usr/bin/python3 -I ${APP_ENVIRONMENT_PATH})`);
    // The node's tool cannot be a template (its Python tests import it): its names are checked here.
    const tool = file("/usr/local/sbin/webstack-aws");
    expect(tool).toMatch(new RegExp(`^APP_USER = "${APP_USER}"$`, "m"));
    expect(tool).toMatch(new RegExp(`^APP_DB_PASSWORD = "${APP_DB_PASSWORD_PATH}"$`, "m"));
  });

  test("whatever runs the release's code runs in the app unit's own sandbox, rendered from one list", () => {
    // What each does with it, the Python tests run: release-command.sh by bash, the preflight and pip
    // through the applier (tests/artifacts/test_webstack_release.py).
    for (const node of ["s1", "s2"]) {
      const bundle = bundleOf(plans[0], node);
      const file = (at: string) => bundle.files.find((f) => f.path === at)!.content;
      const unit = file("/etc/systemd/system/webstack-app.service").split("\n");
      const from = unit.findIndex((l) => l.startsWith("# The list is appNode.ts's APP_SANDBOX"));
      const to = unit.findIndex((l) => l.startsWith("# Not set: PrivateUsers="));
      expect(unit.slice(from + 1, to)).toEqual(APP_SANDBOX);
      expect(bundle.app?.sandbox).toEqual(APP_SANDBOX);
      // The node tool's own copy (its Python tests import it as is, so it is no template): what it
      // runs a release's code in when a bundle has no sandbox or an older applier names none.
      const tool = /^APP_SANDBOX = \[\n([\s\S]*?)\n\]$/m.exec(
        file("/usr/local/sbin/webstack-aws"),
      )?.[1];
      expect(
        (tool ?? "")
          .split("\n")
          .filter((line) => !line.trim().startsWith("#"))
          .map((line) => JSON.parse(line.trim().replace(/,$/, "")) as string),
      ).toEqual(APP_SANDBOX);
      const script = file(RELEASE_COMMAND_PATH);
      const started = /\/usr\/bin\/systemd-run (.*?) -- \/bin\/bash/s.exec(script)?.[1] ?? "";
      expect([...started.matchAll(/--property='([^']*)'/g)].map((m) => m[1])).toEqual([
        ...APP_SANDBOX,
      ]);
      expect(started).toMatch(new RegExp(`--uid=${APP_USER} --gid=${APP_USER} `));
    }
    expect(APP_SANDBOX.filter((d) => d.includes("'"))).toEqual([]); // quoted as is in the script
  });

  test("the list is read from the node tool's APP_SANDBOX, comment lines left out; anything else there is refused", () => {
    expect(toolSandbox('x = 1\nAPP_SANDBOX = [\n    # why\n    "A=1",\n    "B=",\n]\n')).toEqual([
      "A=1",
      "B=",
    ]);
    expect(() => toolSandbox("APP_SANDBOX = []\n")).toThrow(/no APP_SANDBOX/);
    expect(() => toolSandbox('APP_SANDBOX = [\n    "A=1", "B=2",\n]\n')).toThrow(
      /one quoted string/,
    );
  });

  test("the sandbox's address lists are prefixes, which systemd-run's property parser takes (not keywords such as link-local)", () => {
    const lists = APP_SANDBOX.filter((d) => /^IPAddress(Allow|Deny)=/.test(d));
    expect(lists).not.toEqual([]);
    const words = lists.flatMap((d) => d.slice(d.indexOf("=") + 1).split(/\s+/));
    const prefix = (w: string) => {
      const [address, length, ...rest] = w.split("/");
      const bits = isIP(address) === 4 ? 32 : isIP(address) === 6 ? 128 : 0;
      const n = length === undefined ? bits : Number(length);
      return bits > 0 && rest.length === 0 && Number.isInteger(n) && n >= 0 && n <= bits;
    };
    expect(words.filter((w) => !prefix(w))).toEqual([]);
    // Instance metadata, IPv4 and IPv6, is among what it denies.
    expect(words).toEqual(expect.arrayContaining(["169.254.0.0/16", "fd00:ec2::254"]));
  });
});

/** This machine's `systemd-analyze security --offline`, where it has one (systemd 250 or newer). */
function offlineExposure(files: { name: string; content: string }[]) {
  const dir = fs.mkdtempSync(path.join(SCRATCH, "units-"));
  const paths = files.map(({ name, content }) => {
    fs.writeFileSync(path.join(dir, name), content);
    return path.join(dir, name);
  });
  const result = spawnSync("systemd-analyze", ["security", "--offline=yes", ...paths], {
    encoding: "utf8",
  });
  if (result.status !== 0) throw new Error(`systemd-analyze failed: ${result.stderr}`);
  // A directive systemd does not know, or a value it cannot parse, is ignored with a warning.
  const warnings = result.stderr.split("\n").filter((l) => /Unknown key|Failed to parse/.test(l));
  if (warnings.length > 0)
    throw new Error(`systemd ignores part of a unit:\n${warnings.join("\n")}`);
  return parseExposure(result.stdout);
}

const OFFLINE = (() => {
  if (!commandWorks("systemd-analyze", ["--version"])) return false;
  const probe = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-probe-"));
  const unit = path.join(probe, "probe.service");
  fs.writeFileSync(unit, "[Service]\nExecStart=/bin/true\n");
  const works = commandWorks("systemd-analyze", ["security", "--offline=yes", unit]);
  fs.rmSync(probe, { recursive: true, force: true });
  return works;
})();
const withOffline = testNeeding(
  "systemd-analyze security --offline (systemd 250 or newer; the systemd package)",
  OFFLINE,
);

describe("each service's exposure, scored offline from the rendered unit files", () => {
  test("every service the bundles ship has a ceiling, and every ceiling a service", () => {
    const shipped = new Set(renderedServices().map((s) => s.unit));
    expect([...shipped].sort()).toEqual(UNIT_EXPOSURE.map((u) => u.unit).sort());
    for (const u of UNIT_EXPOSURE)
      expect({ unit: u.unit, why: u.ceiling > EXPOSURE_GOAL ? !!u.why : true }).toEqual({
        unit: u.unit,
        why: true,
      });
  });

  withOffline(
    "each meets its ceiling: the goal (2.0) for the app and the helpers but the three that are root's job",
    () => {
      // Each distinct file once (the collector's arguments, the certificate's mode differ by node).
      const services = renderedServices().map((s, i) => ({ ...s, file: `${i}-${s.unit}` }));
      const exposure = offlineExposure(services.map((s) => ({ name: s.file, content: s.content })));
      const rows = services.map((s) => ({
        unit: s.unit,
        nodes: [...s.nodes].sort().join(","),
        exposure: exposure[s.file],
        ceiling: UNIT_EXPOSURE.find((u) => u.unit === s.unit)!.ceiling,
      }));
      const version = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" }).stdout;
      console.log(
        [
          `systemd-analyze security --offline, ${version.split("\n")[0]}:`,
          ...[...rows]
            .sort((a, b) => a.unit.localeCompare(b.unit) || a.nodes.localeCompare(b.nodes))
            .map(
              (r) =>
                `  ${r.unit.padEnd(34)} ${r.nodes.padEnd(9)} ${r.exposure.toFixed(1)}  (ceiling ${r.ceiling.toFixed(1)})`,
            ),
        ].join("\n"),
      );
      for (const row of rows) expect(row).toEqual({ ...row, exposure: expect.any(Number) });
      expect(rows.filter((r) => !(r.exposure <= r.ceiling))).toEqual([]);
      // The README's column for this systemd states these figures (README, The app's sandbox).
      const systemd = Number(/^systemd (\d+)/.exec(version)?.[1]);
      const stated = readmeExposureColumn(systemd);
      if (stated === undefined)
        console.log(`The README has no column for systemd ${systemd}: its figures not compared.`);
      else expect(scoresByUnit(rows)).toEqual(stated);
      expect(rows.filter((r) => r.ceiling === EXPOSURE_GOAL).map((r) => r.unit)).toEqual(
        expect.arrayContaining([
          "webstack-app.service",
          "webstack-collector.service",
          "webstack-boot-status.service",
          "webstack-certificate.service",
          "webstack-refresh-tls.service",
        ]),
      );
    },
  );

  withOffline("the same score fails a service without its sandbox", () => {
    const app = renderedServices().find((s) => s.unit === "webstack-app.service")!;
    const bare = app.content.slice(0, app.content.indexOf("\n# The sandbox")) + "\n";
    const exposure = offlineExposure([{ name: "webstack-app.service", content: bare }]);
    expect(exposure["webstack-app.service"]).toBeGreaterThan(EXPOSURE_GOAL);
  });
});
