// Artifact checks: the documents the program renders, through their real consumers — cloud-init's
// schema on each bootstrap; shellcheck, nginx -t, rsyslogd, apt-config, needrestart's reading (Perl),
// Python and the nodes' own servers on each node's effective document (its bootstrap with its bundle's files) — and a broken input for
// each check, to show it can fail.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import YAML from "yaml";
import { UNIT_EXPOSURE } from "../model/exposure";
import { NEEDRESTART_PATH, UNATTENDED_UPGRADES_PATH } from "../cloud-init/patching";
import {
  CloudConfigDocument,
  IS_ROOT,
  PROJECT_DIR,
  bundleOf,
  commandWorks,
  effectiveDocument,
  planConfig,
  testNeeding,
  userDataText,
  writtenFile,
} from "./harness";
import { readmeExposureColumn, scoresByUnit } from "./readmeTables";

const ARTIFACTS = path.join(PROJECT_DIR, "tests", "artifacts");
const PYTHON = "/usr/bin/python3"; // Debian's: the only one that imports cloudinit and boto3
const SCRATCH = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-artifacts-"));
afterAll(() => fs.rmSync(SCRATCH, { recursive: true, force: true }));
/** The primary's bundle as the program renders it (MariaDB): the node tool's Python tests read its
 * files (the app's sysusers.d and tmpfiles.d files, `app.sandbox`) here, never a re-typed copy. */
const RENDERED_BUNDLE = path.join(SCRATCH, "rendered-bundle-s2.json");

function run(command: string, args: string[], input?: string) {
  const result = spawnSync(command, args, {
    input,
    encoding: "utf8",
    timeout: 120_000,
    env: {
      ...process.env,
      PYTHONDONTWRITEBYTECODE: "1",
      WEBSTACK_RENDERED_BUNDLE: RENDERED_BUNDLE,
    },
  });
  return { code: result.status, output: `${result.stdout ?? ""}${result.stderr ?? ""}` };
}

const TOOLS = {
  "cloud-init":
    commandWorks(PYTHON, ["-c", "import cloudinit, yaml"]) &&
    commandWorks("cloud-init", ["--version"]),
  shellcheck: commandWorks("shellcheck", ["--version"]),
  nginx: commandWorks("nginx", ["-v"]) && commandWorks("openssl", ["version"]) && IS_ROOT,
  rsyslog: commandWorks("rsyslogd", ["-v"]),
  // The nodes' own OS, built (or reused from its cache) by lab/rootfs.sh; see the last describe.
  "debian-13-rootfs": IS_ROOT && commandWorks("debootstrap", ["--version"]),
  "python3-boto3": commandWorks(PYTHON, ["-c", "import boto3"]),
  openssl: commandWorks("openssl", ["version"]),
  "apt-config": commandWorks("apt-config", ["--version"]),
  perl: commandWorks("perl", ["-v"]),
};

/** A test that needs a Debian tool: skipped with a note where it is missing, failed under CI. */
const withTool = (tool: keyof typeof TOOLS): jest.It =>
  testNeeding(`${tool} (scripts/setup.sh installs it; the server checks run as root)`, TOOLS[tool]);

interface Rendered {
  readonly name: string;
  /** The bootstrap, as EC2 hands it to cloud-init, and where it is written. */
  readonly text: string;
  readonly file: string;
  /** The bootstrap with the bundle's files: what the node holds after its first apply. */
  readonly effective: string;
  readonly effectiveFile: string;
  readonly doc: CloudConfigDocument;
}

const documents: Rendered[] = [];

// Which documents each configuration contributes: both engines' app nodes, the LB in each mode,
// with and without the per-client limit, on a small and a large instance (its connection limits),
// a galera stack's three nodes and an rds stack's app nodes.
const DATADOG = { datadog: "true", datadogApiKey: "0123456789abcdef0123456789abcdef" };
const VARIANTS: {
  config: Record<string, string>;
  take: Record<string, string>;
  secretKeys?: string[];
}[] = [
  {
    config: { dbEngine: "mariadb" },
    take: { s1: "mariadb-s1", s2: "mariadb-s2", lb: "self-signed-lb" },
  },
  { config: { dbEngine: "mysql" }, take: { s1: "mysql-s1", s2: "mysql-s2" } },
  // database galera: the members' db scripts take their Galera branches, the LB runs garbd.
  {
    config: { database: "galera" },
    take: { s1: "galera-s1", s2: "galera-s2", lb: "galera-lb" },
  },
  // database rds: app nodes with no database of their own, their scripts reaching RDS's.
  { config: { database: "rds" }, take: { s1: "rds-s1", s2: "rds-s2" } },
  {
    config: { certificate: "letsencrypt", acmeEmail: "ops@example.com" },
    take: { lb: "letsencrypt-lb" },
  },
  {
    config: { certificate: "acm", hostedZone: "example.com", rateLimitPerClient: "0" },
    take: { lb: "acm-lb" },
  },
  {
    config: { ...DATADOG, lbInstanceType: "m7i.large" },
    take: { s2: "datadog-s2", lb: "datadog-lb" },
    secretKeys: ["webstack:datadogApiKey"],
  },
];

beforeAll(async () => {
  for (const { config, take, secretKeys } of VARIANTS) {
    const plan = await planConfig({ domain: "www.example.com", ...config }, { secretKeys });
    if (config.dbEngine === "mariadb")
      fs.writeFileSync(RENDERED_BUNDLE, JSON.stringify(bundleOf(plan, "s2")));
    for (const [node, name] of Object.entries(take)) {
      const text = userDataText(plan, node);
      const file = path.join(SCRATCH, `bootstrap-${name}.yaml`);
      fs.writeFileSync(file, text);
      const effective = effectiveDocument(text, bundleOf(plan, node));
      const effectiveFile = path.join(SCRATCH, `${name}.yaml`);
      fs.writeFileSync(effectiveFile, effective);
      documents.push({ name, text, file, effective, effectiveFile, doc: YAML.parse(effective) });
    }
  }
  expect(documents.map((d) => d.name).sort()).toEqual([
    "acm-lb",
    "datadog-lb",
    "datadog-s2",
    "galera-lb",
    "galera-s1",
    "galera-s2",
    "letsencrypt-lb",
    "mariadb-s1",
    "mariadb-s2",
    "mysql-s1",
    "mysql-s2",
    "rds-s1",
    "rds-s2",
    "self-signed-lb",
  ]);
});

const appDocuments = () => documents.filter((d) => !d.name.endsWith("-lb"));
const lbDocuments = () => documents.filter((d) => d.name.endsWith("-lb"));

/** Shell scripts in a document: shipped files with a shell shebang, and bash -c bodies in bootcmd. */
function shellScripts(d: Rendered): { where: string; script: string }[] {
  const files = d.doc.write_files
    .filter((f) => /^#!\/bin\/(ba)?sh\b/.test(f.content))
    .map((f) => ({ where: f.path, script: f.content }));
  const inline = (d.doc.bootcmd ?? [])
    .filter((c): c is string[] => Array.isArray(c) && c[0] === "bash" && c[1] === "-c")
    .map((c, i) => ({ where: `bootcmd[${i}]`, script: c[2] }));
  return [...files, ...inline];
}

const shellcheck = (script: string) =>
  run("shellcheck", ["--shell=bash", "--severity=style", "-"], script);

describe("cloud-init", () => {
  withTool("cloud-init")(
    "every bootstrap (and effective document) passes cloud-init's schema and has known top-level keys only",
    () => {
      const files = documents.flatMap((d) => [d.file, d.effectiveFile]);
      const result = run(PYTHON, [path.join(ARTIFACTS, "check-cloud-config.py"), ...files]);
      expect(result.output).toBe(files.map((f) => `${f}: valid\n`).join(""));
      expect(result.code).toBe(0);
    },
  );

  withTool("cloud-init")(
    "the same check fails on a misspelt top-level key and on a wrong type",
    () => {
      const typo = path.join(SCRATCH, "typo.yaml");
      fs.writeFileSync(typo, documents[0].text.replace("\nwrite_files:\n", "\nwrite_file:\n"));
      const wrongType = path.join(SCRATCH, "wrong-type.yaml");
      fs.writeFileSync(
        wrongType,
        documents[0].text.replace("\npackage_update: true\n", "\npackage_update: [yes]\n"),
      );
      const result = run(PYTHON, [path.join(ARTIFACTS, "check-cloud-config.py"), typo, wrongType]);
      expect(result.code).toBe(1);
      expect(result.output).toContain(`${typo}: unknown top-level keys: write_file`);
      expect(result.output).toContain(`${wrongType}: cloud-init schema failed`);
    },
  );
});

/** Text without its full-line comments (a shebang stays): a script inlined without them is the same code. */
const withoutComments = (text: string) =>
  text
    .split("\n")
    .filter((line) => !/^\s*#(?!!)/.test(line))
    .join("\n");

/** Every shipped file of a kind must reach some document: a check that sees none proves nothing. */
function expectShippedCovered(suffix: string, contents: string[]): void {
  const dir = path.join(PROJECT_DIR, "cloud-init", "files");
  const rendered = contents.map(withoutComments);
  for (const name of fs.readdirSync(dir).filter((f) => f.endsWith(suffix))) {
    // A template's {{PLACEHOLDERS}} stand for any text on their line.
    const shipped = withoutComments(fs.readFileSync(path.join(dir, name), "utf8")).split(
      /\{\{[A-Z_]+\}\}/,
    );
    // Without placeholders it is the same text (as a regular expression, a large file is too large for V8).
    const pattern =
      shipped.length > 1 &&
      new RegExp(
        `^${shipped.map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("[^\\n]*")}$`,
      );
    const matches = (c: string) => (pattern ? pattern.test(c) : c === shipped[0]);
    expect({ file: name, rendered: rendered.some(matches) }).toEqual({
      file: name,
      rendered: true,
    });
  }
}

describe("shell scripts", () => {
  withTool("shellcheck")("every script in every document passes shellcheck", () => {
    const scripts = documents.flatMap((d) =>
      shellScripts(d).map((s) => ({ ...s, where: `${d.name} ${s.where}` })),
    );
    expectShippedCovered(
      ".sh",
      scripts.map((s) => s.script),
    );
    for (const { where, script } of scripts) {
      const result = shellcheck(script);
      expect({ where, output: result.output, code: result.code }).toEqual({
        where,
        output: "",
        code: 0,
      });
    }
  });

  withTool("shellcheck")("shellcheck fails on a broken script", () => {
    const broken = shellScripts(documents[0])[0].script.replace(
      "set -euo pipefail\n",
      "set -euo pipefail\ncd $HOME/x\n",
    );
    expect(shellcheck(broken).code).not.toBe(0);
  });
});

const fileOf = (d: Rendered, at: string) => writtenFile(d.doc, at).content;

function checkServerConfig(kind: "nginx", content: string) {
  const file = path.join(SCRATCH, `${kind}-${Math.random().toString(36).slice(2)}.conf`);
  fs.writeFileSync(file, content);
  return run("bash", [path.join(ARTIFACTS, "server-config-check.sh"), kind, file]);
}

describe("nginx", () => {
  const siteOf = (d: Rendered) => fileOf(d, "/etc/nginx/sites-available/webstack");

  withTool("nginx")("nginx -t accepts every rendered site", () => {
    for (const d of appDocuments()) {
      const result = checkServerConfig("nginx", siteOf(d));
      expect({ node: d.name, code: result.code, output: result.output }).toMatchObject({
        node: d.name,
        code: 0,
      });
    }
  });

  withTool("nginx")("nginx -t rejects a broken site", () => {
    const site = siteOf(appDocuments()[0]).replace(
      "ssl_protocols TLSv1.2 TLSv1.3;",
      "ssl_protocols TLSv1.2 TLSv9;",
    );
    const result = checkServerConfig("nginx", site);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/TLSv9/);
  });
});

// HAProxy: the config is written for the nodes' HAProxy 3.0 (txn.conn_retries in the log format,
// for one), so only the nodes' own HAProxy judges it (the last describe); this machine's may be older.

describe("rsyslog", () => {
  const check = (snippet: string) => {
    const dir = fs.mkdtempSync(path.join(SCRATCH, "rsyslog-"));
    fs.writeFileSync(path.join(dir, "snippet.conf"), snippet);
    // The node's rsyslog.conf loads imuxsock before it includes /etc/rsyslog.d.
    fs.writeFileSync(
      path.join(dir, "rsyslog.conf"),
      `module(load="imuxsock")\n$IncludeConfig ${dir}/snippet.conf\n`,
    );
    return run("rsyslogd", ["-N1", "-f", path.join(dir, "rsyslog.conf")]);
  };
  const snippetOf = (d: Rendered) => fileOf(d, "/etc/rsyslog.d/48-webstack-haproxy.conf");

  withTool("rsyslog")("rsyslogd accepts the LB's log rule", () => {
    for (const d of lbDocuments())
      expect({ node: d.name, ...check(snippetOf(d)) }).toMatchObject({ node: d.name, code: 0 });
  });

  withTool("rsyslog")("rsyslogd rejects a broken rule", () => {
    expect(
      check(snippetOf(lbDocuments()[0]).replace('template="webstack-message-only"', "template="))
        .code,
    ).not.toBe(0);
  });
});

describe("apt (unattended-upgrades' settings)", () => {
  // Debian's own files, as unattended-upgrades 2.12 (Debian 13) installs them: its
  // 50unattended-upgrades' settings (comments left out) and its 20auto-upgrades, switched off here so
  // that only the rendered file can switch the daily run on.
  const DEBIAN_DEFAULTS = {
    "20auto-upgrades":
      'APT::Periodic::Update-Package-Lists "0";\nAPT::Periodic::Unattended-Upgrade "0";\n',
    "50unattended-upgrades": [
      "Unattended-Upgrade::Origins-Pattern {",
      '        "origin=Debian,codename=${distro_codename},label=Debian";',
      '        "origin=Debian,codename=${distro_codename},label=Debian-Security";',
      '        "origin=Debian,codename=${distro_codename}-security,label=Debian-Security";',
      "};",
      "Unattended-Upgrade::Package-Blacklist {",
      "};",
      "",
    ].join("\n"),
  };
  /** `apt-config dump` of Debian's files plus the rendered one, as apt reads /etc/apt/apt.conf.d. */
  const dump = (rendered: string) => {
    const dir = fs.mkdtempSync(path.join(SCRATCH, "apt-"));
    const parts = path.join(dir, "apt.conf.d");
    fs.mkdirSync(parts);
    for (const [name, text] of Object.entries(DEBIAN_DEFAULTS))
      fs.writeFileSync(path.join(parts, name), text);
    fs.writeFileSync(path.join(parts, path.basename(UNATTENDED_UPGRADES_PATH)), rendered);
    const config = path.join(dir, "apt.conf");
    fs.writeFileSync(config, `Dir::Etc::Parts "${parts}";\nDir::Etc::Main "/dev/null";\n`);
    const result = spawnSync("apt-config", ["dump"], {
      encoding: "utf8",
      env: { ...process.env, APT_CONFIG: config },
    });
    return { code: result.status, output: `${result.stdout}${result.stderr}` };
  };
  const settingsOf = (output: string, ...prefixes: string[]) =>
    output.split("\n").filter((l) => prefixes.some((p) => l.startsWith(p)));

  withTool("apt-config")(
    "apt reads every node's file after Debian's: security origin alone, MariaDB held, daily, no reboot",
    () => {
      for (const d of documents) {
        const { code, output } = dump(fileOf(d, UNATTENDED_UPGRADES_PATH));
        expect({ node: d.name, code }).toEqual({ node: d.name, code: 0 });
        expect({
          node: d.name,
          settings: settingsOf(
            output,
            "APT::Periodic::",
            "Unattended-Upgrade::Origins-Pattern",
            "Unattended-Upgrade::Allowed-Origins",
            "Unattended-Upgrade::Package-Blacklist",
            "Unattended-Upgrade::Automatic-Reboot",
            "DPkg::Options",
          ),
        }).toEqual({
          node: d.name,
          settings: [
            'APT::Periodic::Update-Package-Lists "1";',
            'APT::Periodic::Unattended-Upgrade "1";',
            'DPkg::Options "";',
            'DPkg::Options:: "--force-confdef";',
            'DPkg::Options:: "--force-confold";',
            'Unattended-Upgrade::Origins-Pattern "";',
            'Unattended-Upgrade::Origins-Pattern:: "origin=Debian,codename=trixie-security,label=Debian-Security";',
            'Unattended-Upgrade::Package-Blacklist "";',
            'Unattended-Upgrade::Package-Blacklist:: "mariadb-";',
            'Unattended-Upgrade::Package-Blacklist:: "libmariadb";',
            'Unattended-Upgrade::Automatic-Reboot "false";',
          ],
        });
      }
    },
  );

  withTool("apt-config")("apt refuses a broken file (the bundle's validate fails)", () => {
    const broken = fileOf(documents[0], UNATTENDED_UPGRADES_PATH).replace(
      'Unattended-Upgrade::Automatic-Reboot "false";',
      'Unattended-Upgrade::Automatic-Reboot "false"',
    );
    const { code, output } = dump(broken);
    expect(code).toBe(100);
    expect(output).toMatch(/E: Syntax error .*52webstack-unattended-upgrades/);
  });
});

describe("needrestart's settings", () => {
  const decisions = (conf: string, units: string[]) => {
    const file = path.join(SCRATCH, `needrestart-${Math.random().toString(36).slice(2)}.conf`);
    fs.writeFileSync(file, conf);
    return {
      compiles: run("perl", ["-c", file]).code,
      ...run("perl", [path.join(ARTIFACTS, "needrestart-decisions.pl"), file, ...units]),
    };
  };
  // What runs on the nodes, and what needrestart may do with it once a library it uses is replaced.
  const EXPECTED: Record<string, "restarted" | "deferred"> = {
    "mariadb.service": "deferred",
    "mysql.service": "deferred",
    "amazon-ssm-agent.service": "deferred",
    "webstack-applier.service": "deferred",
    "webstack-apply.service": "deferred",
    "webstack-datadog-agent.service": "deferred",
    "webstack-cloudwatch-agent.service": "deferred",
    "webstack-collector.service": "deferred",
    "webstack-certificate.service": "deferred",
    "webstack-app.service": "restarted",
    "nginx.service": "restarted",
    // By its restart.d file on the LB: a reload.
    "haproxy.service": "restarted",
    "rsyslog.service": "restarted",
    "amazon-cloudwatch-agent.service": "restarted",
    "datadog-agent.service": "restarted",
    "cron.service": "restarted",
    // Debian's own exceptions stay.
    "dbus.service": "deferred",
    "systemd-logind.service": "deferred",
  };

  withTool("perl")(
    "every node's file, read as needrestart reads it: restart without asking, these exceptions",
    () => {
      for (const d of documents) {
        const result = decisions(fileOf(d, NEEDRESTART_PATH), Object.keys(EXPECTED));
        expect({ node: d.name, ...result }).toEqual({
          node: d.name,
          compiles: 0,
          code: 0,
          output: [
            "restart=a",
            ...Object.entries(EXPECTED).map(([unit, what]) => `${unit} ${what}`),
            "",
          ].join("\n"),
        });
      }
    },
  );

  withTool("perl")(
    "a broken file fails perl -c (the bundle's validate) and needrestart's reading",
    () => {
      const broken = fileOf(documents[0], NEEDRESTART_PATH).replace("} = 0;", "} = 0");
      const result = decisions(broken, ["nginx.service"]);
      expect(result.compiles).not.toBe(0);
      expect(result.code).not.toBe(0);
      expect(result.output).toContain("Error parsing");
    },
  );
});

/** A Python test file of tests/artifacts, run by Debian's python: every test in it passes. */
function expectUnitTestsPass(file: string) {
  const result = run(PYTHON, ["-m", "unittest", "-v", path.join(ARTIFACTS, file)]);
  expect(result.output).toMatch(/Ran \d+ tests/);
  // Only the tests of handing a venv to another user may be skipped, and only for a user other
  // than root (CI runs as root).
  expect(result.output).toMatch(IS_ROOT ? /\nOK\s*$/ : /\nOK( \(skipped=\d+\))?\s*$/);
  expect(result.code).toBe(0);
}

describe("python", () => {
  const compile = (source: string) =>
    run(PYTHON, ["-c", "import ast, sys; ast.parse(sys.stdin.read())"], source);
  const pythonFiles = (d: Rendered) =>
    d.doc.write_files.filter(
      (f) => f.path.endsWith(".py") || f.content.startsWith("#!/usr/bin/python3"),
    );

  test("the app, the node AWS tool and the Gunicorn config parse as Python", () => {
    const files = documents.flatMap(pythonFiles);
    expectShippedCovered(
      ".py",
      files.map((f) => f.content),
    );
    for (const f of files) {
      expect({ path: f.path, ...compile(f.content) }).toMatchObject({ path: f.path, code: 0 });
    }
    // The demo app is the default release (app/), no longer a file of the bundles.
    const app = fs.readFileSync(path.join(PROJECT_DIR, "app", "app.py"), "utf8");
    expect({ path: "app/app.py", ...compile(app) }).toMatchObject({ path: "app/app.py", code: 0 });
    expect(compile("def broken(:\n").code).not.toBe(0);
  });

  withTool("python3-boto3").each([
    ["the node AWS tool's own unit tests", "test_webstack_aws.py"],
    ["the bundle applier's and the bootstrap's unit tests (issue 17)", "test_webstack_apply.py"],
    ["the release steps' unit tests (issue 18)", "test_webstack_release.py"],
    ["the backups' and the restore's unit tests (issue 20)", "test_webstack_backup.py"],
  ])("%s pass (no real metadata service, no real /etc)", (_, file) => expectUnitTestsPass(file));

  withTool("openssl")(
    "the TLS refresh's own tests pass: openssl refuses a bad pair before anything is installed (issue 19)",
    () => expectUnitTestsPass("test_refresh_tls.py"),
  );
});

describe("with the nodes' own versions (Debian 13: cloud-init 25.1, nginx 1.26, HAProxy 3.0, logrotate 3.22)", () => {
  const rootfs = () => {
    const built = spawnSync("bash", [path.join(PROJECT_DIR, "lab", "rootfs.sh")], {
      encoding: "utf8",
      timeout: 600_000,
    });
    if (built.status !== 0) throw new Error(`lab/rootfs.sh failed: ${built.stderr}`);
    return built.stdout.trim();
  };
  const check = (files: string[]) =>
    run("bash", [path.join(ARTIFACTS, "rootfs-check.sh"), rootfs(), ...files]);
  /** A package's major version in the rootfs, from dpkg's status file (nothing of the rootfs runs). */
  const installedVersion = (root: string, name: string) => {
    const status = fs.readFileSync(path.join(root, "var", "lib", "dpkg", "status"), "utf8");
    const stanza = status.split("\n\n").find((s) => s.startsWith(`Package: ${name}\n`)) ?? "";
    return Number(/^Version: (?:\d+:)?(\d+)/m.exec(stanza)?.[1]);
  };

  withTool("debian-13-rootfs")(
    "every effective document, site, HAProxy config, log rule, user and service passes",
    () => {
      const result = check(documents.map((d) => d.effectiveFile));
      const lines = result.output.trim().split("\n");
      expect(lines.filter((l) => !l.endsWith(" ok"))).toEqual([]);
      expect(result.code).toBe(0);
      // Each document's checks ran: cloud-init, logrotate and its services' exposure for all;
      // nginx, the app's user (sysusers) and its secrets' directory (tmpfiles) for app nodes;
      // HAProxy and rsyslog for the LB.
      expect(lines).toHaveLength(
        3 * documents.length + 3 * appDocuments().length + 2 * lbDocuments().length,
      );
      expect(lines.filter((l) => / logrotate ok$/.test(l))).toHaveLength(documents.length);
      // The nodes' own systemd (257) scores every service within its ceiling (issue 19).
      const scored = lines.flatMap((l) => {
        const [, doc, levels] = /^(\S+) security (.*) ok$/.exec(l) ?? [];
        return levels
          ? levels.split(" ").map((pair) => {
              const [unit, level] = pair.split("=");
              const ceiling = UNIT_EXPOSURE.find((u) => u.unit === unit)?.ceiling;
              return { doc, unit, exposure: Number(level), ceiling };
            })
          : [];
      });
      console.log(
        `systemd-analyze security --offline, Debian 13:\n${scored
          .map((s) => `  ${s.doc.padEnd(16)} ${s.unit.padEnd(34)} ${s.exposure.toFixed(1)}`)
          .join("\n")}`,
      );
      expect(new Set(scored.map((s) => s.doc)).size).toBe(documents.length);
      expect(scored.filter((s) => !(s.ceiling !== undefined && s.exposure <= s.ceiling))).toEqual(
        [],
      );
      // The README's column for the nodes' systemd states these figures (README, The app's sandbox).
      const stated = readmeExposureColumn(installedVersion(rootfs(), "systemd"));
      expect(stated).toBeDefined();
      expect(scoresByUnit(scored)).toEqual(stated);
    },
    600_000,
  );

  withTool("debian-13-rootfs")(
    "the same checks fail on a broken site, a broken HAProxy config and a broken log rule",
    () => {
      const broken = path.join(SCRATCH, "broken-lb.yaml");
      const lb = lbDocuments()[0].effective.replace("balance roundrobin", "balance nosuchalgo");
      fs.writeFileSync(broken, lb);
      const brokenApp = path.join(SCRATCH, "broken-app.yaml");
      fs.writeFileSync(
        brokenApp,
        appDocuments()[0]
          .effective.replace("ssl_protocols TLSv1.2 TLSv1.3;", "ssl_protocols TLSv9;")
          .replace("su webstack-app webstack-app", "su nosuchuser webstack-app"),
      );
      const result = check([broken, brokenApp]);
      expect(result.code).toBe(1);
      expect(result.output).toMatch(/^broken-lb haproxy FAILED/m);
      expect(result.output).toMatch(/^broken-app nginx FAILED/m);
      expect(result.output).toMatch(/^broken-app logrotate FAILED error: .*nosuchuser/m);
    },
    600_000,
  );
});
