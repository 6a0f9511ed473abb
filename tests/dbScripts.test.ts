// The database's boot scripts (db-late-config.sh, db-bootstrap.sh, db-bootstrap-rds.sh) run by bash against stand-in
// tools: the node's paths moved under a scratch root, its node.env the renderer's own, and
// systemctl, install, timeout (the group-port probe), galera_new_cluster, sleep and the database
// client recording what they are asked. The lab runs them for real.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { shippedFile } from "../cloud-init/template";
import { DatabaseMode, DbRole } from "../model/topology";
import { TOPOLOGY } from "./harness";
import { renderedAppNode } from "./rendererFixtures";

const S1 = TOPOLOGY.nodes.s1.privateIp;
const S2 = TOPOLOGY.nodes.s2.privateIp;

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-db-scripts-"));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

function write(file: string, content: string, mode = 0o644): void {
  fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
  fs.writeFileSync(path.join(root, file), content, { mode });
}

/** A stand-in that records its call (`name args…`) in $ROOT/calls, then runs `body`. */
function stub(name: string, body = ""): void {
  write(`bin/${name}`, `#!/bin/bash\necho "${name} $*" >>"$ROOT/calls"\n${body}\n`, 0o755);
}

/**
 * The stand-ins every run has. `timeout 3 bash -c ": >/dev/tcp/IP/4567"` (the group-port probe)
 * answers from $ROOT/listening: "IP N" lines, that address listening from its Nth probe on.
 */
function standIns(): void {
  for (const name of ["install", "systemctl", "galera_new_cluster", "sleep"]) stub(name);
  stub(
    "timeout",
    [
      'target=$(sed -E "s#^: >/dev/tcp/([^/]+)/([0-9]+)\\$#\\1 \\2#" <<<"$4")',
      'read -r ip port <<<"$target"',
      '[ "$1 $2 $3 $port" = "3 bash -c 4567" ] || exit 2',
      'n=$(( $(cat "$ROOT/probes-$ip" 2>/dev/null || echo 0) + 1 ))',
      'echo "$n" >"$ROOT/probes-$ip"',
      'from=$(awk -v ip="$ip" \'$1 == ip { print $2 }\' "$ROOT/listening" 2>/dev/null)',
      '[ -n "$from" ] && [ "$n" -ge "$from" ]',
    ].join("\n"),
  );
}

/** Addresses whose group port answers, each from its Nth probe on (1: at once). */
function listening(from: Record<string, number>): void {
  write(
    "listening",
    Object.entries(from)
      .map(([ip, n]) => `${ip} ${n}\n`)
      .join(""),
  );
}

/** The node's environment as the renderer writes it for a galera member (or a replication node). */
function nodeEnv(role: DbRole, cluster: DatabaseMode, extra = ""): void {
  const env = renderedAppNode("mariadb", role, cluster).file("/etc/webstack/node.env");
  // Later lines win when the script sources it: fewer attempts, the stand-in client.
  write(
    "etc/webstack/node.env",
    `${env}DB_WAIT_ATTEMPTS=3\nDB_CLIENT=${root}/bin/mariadb\n${extra}`,
  );
}

/** Runs a shipped script with the node's paths (and any more given) under the scratch root. */
function run(script: string, morePaths: readonly string[] = []) {
  let text = shippedFile(script);
  for (const nodePath of ["/etc/webstack/", "/var/lib/mysql/", ...morePaths])
    text = text.split(nodePath).join(`${root}${nodePath}`);
  write(script, text, 0o755);
  const r = spawnSync("bash", [path.join(root, script)], {
    env: { PATH: `${root}/bin:/usr/bin:/bin`, ROOT: root },
    encoding: "utf8",
  });
  const callsFile = path.join(root, "calls");
  const calls = fs.existsSync(callsFile)
    ? fs.readFileSync(callsFile, "utf8").trim().split("\n")
    : [];
  return { status: r.status, stderr: r.stderr, calls };
}

const probe = (ip: string) => `timeout 3 bash -c : >/dev/tcp/${ip}/4567`;
const installs = () => [
  `install -D -m 0644 ${root}/etc/webstack/tls/ca.crt /etc/mysql/webstack/ca.crt`,
  "install -d -m 2750 -o mysql -g adm /var/log/mysql",
  `install -m 0644 ${root}/etc/webstack/db/61-webstack-late.cnf /etc/mysql/mariadb.conf.d/61-webstack-late.cnf`,
];

describe("db-late-config.sh", () => {
  beforeEach(standIns);

  test("replication: the settings installed, the server restarted, nothing probed", () => {
    nodeEnv("replica", "replication");
    const { status, calls } = run("db-late-config.sh");
    expect(status).toBe(0);
    expect(calls).toEqual([...installs(), "systemctl restart mariadb"]);
  });

  test("galera, the founder's first start (no grastate.dat), no other member listening: it founds the cluster", () => {
    nodeEnv("primary", "galera");
    const { status, stderr, calls } = run("db-late-config.sh");
    expect(status).toBe(0);
    expect(calls).toEqual([...installs(), probe(S1), "galera_new_cluster"]);
    expect(stderr).toBe("webstack-db-late-config: no cluster to join: founding webstack-t\n");
  });

  test("galera, the founder's first start while s1 is in a group: it joins it (a state transfer), never founds another", () => {
    nodeEnv("primary", "galera");
    listening({ [S1]: 1 });
    const { status, stderr, calls } = run("db-late-config.sh");
    expect(status).toBe(0);
    expect(calls).not.toContain("galera_new_cluster");
    expect(calls.slice(-1)).toEqual(["systemctl restart mariadb"]);
    expect(stderr).toContain("a member is up: joining its cluster (a full state transfer)\n");
    expect(stderr).toContain(`joined webstack-t (through ${S1})\n`);
  });

  test("galera, the founder with grastate.dat (a member before): it restarts into the group through s1, never founds again", () => {
    nodeEnv("primary", "galera");
    write("var/lib/mysql/grastate.dat", "# GALERA saved state\n");
    listening({ [S1]: 1 });
    const { status, stderr, calls } = run("db-late-config.sh");
    expect(status).toBe(0);
    expect(calls).toEqual([...installs(), probe(S1), "systemctl restart mariadb"]);
    expect(stderr).toBe(`webstack-db-late-config: joined webstack-t (through ${S1})\n`);
  });

  test("galera, the founder with grastate.dat, its own group port open and s1's closed: it waits for s1, never restarts through itself, and gives up bounded", () => {
    nodeEnv("primary", "galera");
    write("var/lib/mysql/grastate.dat", "# GALERA saved state\n");
    listening({ [S2]: 1 });
    const { status, stderr, calls } = run("db-late-config.sh");
    expect(status).toBe(1);
    expect(calls).not.toContain(probe(S2));
    expect(calls.filter((c) => c.startsWith("systemctl") || c === "galera_new_cluster")).toEqual(
      [],
    );
    expect(calls.filter((c) => c.startsWith("sleep"))).toEqual(["sleep 2", "sleep 4"]);
    expect(stderr).toContain(
      "webstack-db-late-config: no member of webstack-t took this node after 3 attempts\n",
    );
  });

  test("galera, s1: it waits until the founder listens, then restarts into its group", () => {
    nodeEnv("replica", "galera");
    listening({ [S2]: 5 });
    const { status, stderr, calls } = run("db-late-config.sh");
    expect(status).toBe(0);
    // Two probes of s2 per attempt (the founder, then the other data members: s2 again).
    expect(calls).toEqual([
      ...installs(),
      probe(S2),
      probe(S2),
      "sleep 2",
      probe(S2),
      probe(S2),
      "sleep 4",
      probe(S2),
      "systemctl restart mariadb",
    ]);
    expect(stderr).toBe(
      [
        "no member to join yet (attempt 1 of 3); retrying in 2 s",
        "no member to join yet (attempt 2 of 3); retrying in 4 s",
        `joined webstack-t (through ${S2})`,
        "",
      ]
        .map((l) => (l ? `webstack-db-late-config: ${l}` : l))
        .join("\n"),
    );
    expect(calls).not.toContain("galera_new_cluster");
  });

  test("galera, s1 with no founder ever listening: it fails after its attempts, the server not restarted", () => {
    nodeEnv("replica", "galera");
    const { status, stderr, calls } = run("db-late-config.sh");
    expect(status).toBe(1);
    expect(calls.filter((c) => c.startsWith("systemctl") || c === "galera_new_cluster")).toEqual(
      [],
    );
    expect(stderr).toContain("no member of webstack-t took this node after 3 attempts\n");
  });

  test("galera, s1 with grastate.dat: a non-founder never founds, whatever it finds", () => {
    nodeEnv("replica", "galera");
    write("var/lib/mysql/grastate.dat", "# GALERA saved state\n");
    const { calls } = run("db-late-config.sh");
    expect(calls).not.toContain("galera_new_cluster");
  });
});

describe("db-bootstrap.sh, a galera member", () => {
  /** The client answers each wsrep_ready query with the next value in $ROOT/states. */
  function client(states: string[]): void {
    write("states", states.map((s) => `${s}\n`).join(""));
    stub(
      "mariadb",
      [
        'if [[ "$*" == *wsrep_ready* ]]; then',
        '  state=$(head -n 1 "$ROOT/states"); sed -i 1d "$ROOT/states"',
        '  [ -n "$state" ] || exit 1',
        '  printf "wsrep_ready\\t%s\\n" "$state"',
        "else",
        '  cat >>"$ROOT/sql"',
        "fi",
      ].join("\n"),
    );
    for (const secret of ["app", "replication", "monitor", "migrate"])
      write(`etc/webstack/secrets/db-${secret}-password`, `pw-${secret}`);
  }
  const sqlRun = () =>
    fs.existsSync(path.join(root, "sql")) ? fs.readFileSync(path.join(root, "sql"), "utf8") : "";

  beforeEach(() => {
    stub("sleep");
    write(
      "etc/webstack/db/primary.sql",
      renderedAppNode("mariadb", "primary", "galera").file("/etc/webstack/db/primary.sql"),
      0o600,
    );
  });

  test("s1: nothing to run, the schema and users come with the cluster's state", () => {
    nodeEnv("replica", "galera");
    client(["ON"]);
    const { status, stderr, calls } = run("db-bootstrap.sh");
    expect(status).toBe(0);
    expect(calls).toEqual([]);
    expect(stderr).toBe(
      "webstack-db-bootstrap: a Galera member: schema and users come with the cluster's state\n",
    );
  });

  test("the founder: once its member is ready, the schema and users with the passwords put in", () => {
    nodeEnv("primary", "galera");
    client(["OFF", "", "ON"]);
    const { status, stderr, calls } = run("db-bootstrap.sh");
    expect(status).toBe(0);
    const query =
      "mariadb --protocol=socket --user=root --skip-column-names --execute=SHOW STATUS LIKE 'wsrep_ready'";
    expect(calls).toEqual([
      query,
      "sleep 1",
      query,
      "sleep 1",
      query,
      "mariadb --protocol=socket --user=root",
    ]);
    const sql = sqlRun();
    expect(sql).toContain("IDENTIFIED BY 'pw-app'");
    expect(sql).not.toMatch(/@[A-Z_]+_PASSWORD@/);
    expect(sql).not.toMatch(/'replication'/);
    expect(stderr).toBe(
      "webstack-db-bootstrap: schema and users in place (the cluster's members get them)\n",
    );
  });

  test("the founder never ready: no SQL, a failure that says why after 60 tries", () => {
    nodeEnv("primary", "galera");
    client(Array<string>(60).fill("OFF"));
    const { status, stderr, calls } = run("db-bootstrap.sh");
    expect(status).toBe(1);
    expect(calls.filter((c) => c === "sleep 1")).toHaveLength(59);
    expect(sqlRun()).toBe("");
    expect(stderr).toBe(
      "webstack-db-bootstrap: this member is not ready in webstack-t (wsrep_ready OFF): schema and users not written\n",
    );
  });
});

describe("db-bootstrap-rds.sh", () => {
  /** webstack-aws prints the master user's options, or fails when $ROOT/no-secret exists. */
  function standInsForRds(clientFails = false): void {
    stub("sleep");
    stub(
      "webstack-aws",
      '[ -e "$ROOT/no-secret" ] && exit 1\nprintf \'[client]\\nuser="webstack_admin"\\npassword="pw-admin"\\n\'',
    );
    write(
      "usr/local/sbin/webstack-aws",
      `#!/bin/bash\nexec ${root}/bin/webstack-aws "$@"\n`,
      0o755,
    );
    // The client records its options file and its SQL; it fails when told.
    stub(
      "mariadb",
      [
        "options=${1#--defaults-extra-file=}",
        'cat "$options" >>"$ROOT/options"',
        'cat >>"$ROOT/sql"',
        clientFails ? "exit 1" : "",
      ].join("\n"),
    );
    for (const secret of ["app", "migrate"])
      write(`etc/webstack/secrets/db-${secret}-password`, `pw-${secret}`);
    const node = renderedAppNode("mariadb", "primary", "rds");
    for (const file of ["/etc/webstack/db/rds.sql", "/etc/webstack/db/rds-admin-secret"])
      write(file.slice(1), node.file(file), 0o600);
    write("etc/webstack/db/client-tls.cnf", node.file("/etc/webstack/db/client-tls.cnf"));
    nodeEnv("primary", "rds");
  }
  const read = (file: string) =>
    fs.existsSync(path.join(root, file)) ? fs.readFileSync(path.join(root, file), "utf8") : "";
  const runRds = () => run("db-bootstrap-rds.sh", ["/usr/local/sbin/"]);

  test("s2: the SQL with the passwords put in, as the master user over verified TLS", () => {
    standInsForRds();
    const { status, stderr, calls } = runRds();
    expect(status).toBe(0);
    expect(calls).toEqual([
      "webstack-aws db-admin-options rds!db-0123",
      expect.stringMatching(
        /^mariadb --defaults-extra-file=\/dev\/fd\/\d+ --host=webstack-t\.\S+ --port=3306 --connect-timeout=10$/,
      ),
    ]);
    expect(read("options")).toBe(
      `[client]\nuser="webstack_admin"\npassword="pw-admin"\nssl-ca=/etc/webstack/tls/rds-ca.pem\nssl-verify-server-cert\n`,
    );
    expect(read("sql")).toContain("IDENTIFIED BY 'pw-app' REQUIRE SSL;");
    expect(read("sql")).toContain("IDENTIFIED BY 'pw-migrate' REQUIRE SSL ACCOUNT LOCK;");
    expect(read("sql")).not.toMatch(/@[A-Z_]+_PASSWORD@/);
    expect(stderr).toMatch(/^webstack-db-bootstrap: done: the schema and users on /);
  });

  test.each([
    ["a missing password", "etc/webstack/secrets/db-migrate-password"],
    ["a missing SQL file", "etc/webstack/db/rds.sql"],
    ["a missing secret name", "etc/webstack/db/rds-admin-secret"],
  ])("%s stops the script before any SQL runs (never an empty password)", (_, file) => {
    standInsForRds();
    fs.rmSync(path.join(root, file));
    const { status, calls } = runRds();
    expect(status).not.toBe(0);
    expect(calls).toEqual([]);
    expect(read("sql")).toBe("");
  });

  test("an empty password stops it too", () => {
    standInsForRds();
    write("etc/webstack/secrets/db-app-password", "");
    const { status, stderr, calls } = runRds();
    expect(status).not.toBe(0);
    expect(stderr).toContain("webstack-db-bootstrap: the secret db-app-password is empty\n");
    expect(calls).toEqual([]);
  });

  test("no master user's options: no client runs without them; retried, then a failure", () => {
    standInsForRds();
    write("no-secret", "");
    const { status, stderr, calls } = runRds();
    expect(status).toBe(1);
    expect(calls.filter((c) => c.startsWith("mariadb"))).toEqual([]);
    expect(calls.filter((c) => c.startsWith("webstack-aws"))).toHaveLength(3);
    expect(stderr).toContain(
      "webstack-db-bootstrap: gave up after 3 attempts: the schema and users",
    );
  });

  test("the instance refusing: retried with backoff, then a failure", () => {
    standInsForRds(true);
    const { status, calls } = runRds();
    expect(status).toBe(1);
    expect(calls.filter((c) => c.startsWith("sleep"))).toEqual(["sleep 2", "sleep 4"]);
  });
});
