// The demo app's database handling — kept connections, write retries, replica fallback and
// backoff, health checks — run in Python (tests/app_test.py) against a scripted pymysql, on
// app/app.py (the default release) and the database targets the program renders for each node.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { NODE_ENV_PATH } from "../cloud-init/appNode";
import { PROJECT_DIR, planStack, bundleFile } from "./harness";

const PYTHON_TESTS = path.join(PROJECT_DIR, "tests", "app_test.py");
const NAMES = [...fs.readFileSync(PYTHON_TESTS, "utf8").matchAll(/^ {4}def (test_\w+)\(/gm)].map(
  (m) => m[1],
);

let outcomes: Record<string, string | null>;

beforeAll(async () => {
  const plan = await planStack("dev");
  // A Galera member's targets too (database: galera), as "s1-galera".
  const galera = await planStack("dev", ["database=galera"]);
  const app = fs.readFileSync(path.join(PROJECT_DIR, "app", "app.py"), "utf8");
  const targets = (p: typeof plan, node: string) => {
    const env = bundleFile(p, node, NODE_ENV_PATH);
    const value = (key: string) => new RegExp(`^${key}=(.*)$`, "m").exec(env)?.[1];
    // Gunicorn hands the app its database wait (its config's raw_env).
    const gunicorn = bundleFile(p, node, "/etc/webstack/gunicorn.conf.py");
    return {
      role: value("DB_ROLE"),
      primary: value("APP_DB_PRIMARY"),
      replica: value("APP_DB_REPLICA"),
      db_wait: /"WEBSTACK_DB_WAIT_S": "(\d+)"/.exec(gunicorn)?.[1],
    };
  };
  const nodes = {
    s1: targets(plan, "s1"),
    s2: targets(plan, "s2"),
    "s1-galera": targets(galera, "s1"),
  };
  const serverTimeout = /^\s*timeout server (\d+)s$/m.exec(
    bundleFile(plan, "lb", "/etc/haproxy/haproxy.cfg"),
  )?.[1];
  const nginxReadTimeout = /^\s*proxy_read_timeout (\d+)s;$/m.exec(
    bundleFile(plan, "s1", "/etc/nginx/sites-available/webstack"),
  )?.[1];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-app-"));
  try {
    fs.writeFileSync(path.join(dir, "app.py"), app);
    const run = spawnSync("/usr/bin/python3", [PYTHON_TESTS], {
      encoding: "utf8",
      env: {
        PATH: process.env.PATH,
        APP_PY: path.join(dir, "app.py"),
        NODES: JSON.stringify(nodes),
        LB_SERVER_TIMEOUT_S: String(serverTimeout),
        NGINX_READ_TIMEOUT_S: String(nginxReadTimeout),
      },
      timeout: 60_000,
    });
    if (run.status !== 0) throw new Error(`app_test.py failed: ${run.stderr}${run.stdout}`);
    outcomes = JSON.parse(run.stdout) as Record<string, string | null>;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 60_000);

test("every Python test ran", () => {
  expect(NAMES.length).toBeGreaterThan(10);
  expect(Object.keys(outcomes).sort()).toEqual([...NAMES].sort());
});

test.each(NAMES)("%s", (name) => {
  expect({ name, failure: outcomes[name] }).toEqual({ name, failure: null });
});
