// The test and setup scripts as the pull-request check runs them (issue 16): as root through
// `sudo env "PATH=$PATH"`, so with a Debian user's PATH, which lacks the sbin directories where
// root's tools live. Each script runs in a scratch copy of the repository with stand-ins for
// npm, the package installer and the rootfs build: nothing is installed or built.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { LAB_CLI, PROJECT_DIR, testNeeding } from "./harness";

/** Debian's PATH for users (/etc/profile): no sbin directory. */
const USER_PATH = "/usr/local/bin:/usr/bin:/bin";
/** Root's tools the artifact checks and the lab run, all in /usr/sbin on Debian and Ubuntu. */
const ROOT_TOOLS = ["nginx", "rsyslogd", "debootstrap", "nft"];

let scratch: string;
beforeEach(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-scripts-"));
});
afterEach(() => fs.rmSync(scratch, { recursive: true, force: true }));

function write(file: string, content: string, mode = 0o755): void {
  fs.mkdirSync(path.dirname(path.join(scratch, file)), { recursive: true });
  fs.writeFileSync(path.join(scratch, file), content, { mode });
}

/** The repository's own copy of a script, in the scratch copy. */
const copy = (file: string) => write(file, fs.readFileSync(path.join(PROJECT_DIR, file), "utf8"));

/**
 * A shell command with exactly the environment given. Its stdin is /dev/null: Debian's bash reads
 * ~/.bashrc when its stdin is a socket (as if run by sshd), and Node's pipes are sockets.
 */
const shell = (command: string[], cwd: string, env: Record<string, string>) =>
  spawnSync(command[0], command.slice(1), {
    cwd,
    env,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });

/** Runs a command in the scratch copy as the check would: a user's PATH, stand-ins first. */
function runAsCheck(command: string[], env: Record<string, string> = {}) {
  const PATH = `${scratch}/bin:${path.dirname(process.execPath)}:${USER_PATH}`;
  const r = shell(command, scratch, { PATH, ...env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("scripts/root-tools-path.sh", () => {
  test.each(["bash", "sh"])(
    "sourced by %s, adds root's tool directories a user's PATH lacks, after it, once",
    (sh) => {
      const pathAfter = (given: string) =>
        shell([sh, "-c", '. ./scripts/root-tools-path.sh && printf "%s" "$PATH"'], PROJECT_DIR, {
          PATH: given,
        }).stdout;
      expect(pathAfter(USER_PATH)).toBe(`${USER_PATH}:/usr/local/sbin:/usr/sbin:/sbin`);
      const rootPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
      expect(pathAfter(rootPath)).toBe(rootPath);
      expect(pathAfter("/usr/bin:/bin:/usr/sbin")).toBe(
        "/usr/bin:/bin:/usr/sbin:/usr/local/sbin:/sbin",
      );
    },
  );

  testNeeding(
    `${ROOT_TOOLS.join(", ")} (scripts/setup.sh installs them)`,
    ROOT_TOOLS.every((tool) => fs.existsSync(`/usr/sbin/${tool}`)),
  )("with a user's PATH, root's tools resolve only once it is sourced", () => {
    const resolve = (prefix: string) =>
      shell(["bash", "-c", `${prefix}command -v ${ROOT_TOOLS.join(" ")}`], PROJECT_DIR, {
        PATH: USER_PATH,
      });
    expect(resolve("").status).not.toBe(0);
    const found = resolve(". ./scripts/root-tools-path.sh && ");
    expect(found.status).toBe(0);
    expect(found.stdout.trim().split("\n")).toEqual(ROOT_TOOLS.map((t) => `/usr/sbin/${t}`));
  });
});

describe("scripts/test.sh", () => {
  test("every step runs with root's tool directories on PATH", () => {
    copy("scripts/test.sh");
    copy("scripts/root-tools-path.sh");
    const record = `#!/bin/sh\nprintf '%s %s\\n' "$*" "$PATH" >> ${scratch}/steps\n`;
    write("scripts/setup.sh", record);
    write("bin/npm", record);
    expect(runAsCheck(["bash", "scripts/test.sh", "--ci"])).toMatchObject({ status: 0 });
    const steps = fs.readFileSync(path.join(scratch, "steps"), "utf8").trim().split("\n");
    expect(steps.map((s) => s.split(" ").slice(0, -1).join(" "))).toEqual([
      "",
      "run typecheck",
      "run format:check",
      "test -- --ci",
    ]);
    for (const step of steps) expect(step.split(" ").at(-1)).toMatch(/:\/usr\/sbin(:|$)/);
  });
});

describe("scripts/setup.sh", () => {
  /** setup.sh with stand-ins: `id -u` answers uid, npm and the installer do nothing. */
  function setUp(uid: number, rootfsBuild = "echo /var/cache/webstack-lab/rootfs-checkers-x") {
    copy("scripts/setup.sh");
    copy("scripts/root-tools-path.sh");
    write("scripts/install-debian-packages.sh", "#!/bin/bash\nexit 0\n");
    write("lab/rootfs.sh", `#!/bin/bash\n${rootfsBuild}\n`);
    write("bin/id", `#!/bin/sh\necho ${uid}\n`);
    write("bin/npm", "#!/bin/sh\nexit 0\n");
  }

  testNeeding(
    "debootstrap in /usr/sbin (scripts/setup.sh installs it)",
    fs.existsSync("/usr/sbin/debootstrap"),
  )("as root with a user's PATH, it finds debootstrap and builds the rootfs", () => {
    setUp(0);
    const r = runAsCheck(["bash", "scripts/setup.sh"], { CI: "true" });
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain(
      "setup: Debian 13 rootfs at /var/cache/webstack-lab/rootfs-checkers-x\n",
    );
    expect(r.status).toBe(0);
  });

  test("a failed rootfs build fails the setup", () => {
    setUp(0, "echo 'debootstrap: no network' >&2; exit 1");
    const r = runAsCheck(["bash", "scripts/setup.sh"]);
    expect(r.stderr).toContain("debootstrap: no network");
    expect(r.stdout).not.toContain("rootfs at");
    expect(r.status).not.toBe(0);
  });

  test("as a user, it says why there is no rootfs; under CI that fails the setup", () => {
    setUp(1000);
    const why = "setup: no Debian 13 rootfs: building it needs root";
    const local = runAsCheck(["bash", "scripts/setup.sh"]);
    expect(local.stderr).toContain(
      `${why}; the artifact checks with the nodes' versions are skipped`,
    );
    expect(local.status).toBe(0);
    const ci = runAsCheck(["bash", "scripts/setup.sh"], { CI: "true" });
    expect(ci.stderr).toContain(`${why}; CI runs every check`);
    expect(ci.status).toBe(1);
  });
});

test("the lab's npm scripts run with root's tool directories on PATH", () => {
  const scripts = JSON.parse(fs.readFileSync(path.join(PROJECT_DIR, "package.json"), "utf8"))
    .scripts as Record<string, string>;
  for (const name of ["lab", "test:lab"])
    expect(scripts[name]).toMatch(/^\. \.\/scripts\/root-tools-path\.sh && /);
  // The lab's tests start its CLI as the script does (tests/harness.ts).
  const words = scripts.lab.replace(/^.* && /, "").split(" ");
  expect(words.map((w) => (w.includes("/") ? path.resolve(PROJECT_DIR, w) : w))).toEqual([
    "node",
    ...LAB_CLI,
  ]);
});
