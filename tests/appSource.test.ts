// The app directory (issue 18): what the parser refuses in it, and the release packed from it —
// deterministic, and read back by Python's tarfile as the nodes extract it.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
  AppSourceListing,
  appSourceProblems,
  normalizeDistributionName,
  requirementNames,
  wheelDistribution,
} from "../model/appSource";
import { ConfigError, parseConfig } from "../model/config";
import {
  readAppSource,
  releaseArchiveDir,
  releaseArchivePath,
  releaseIdOf,
} from "../platform/appArchive";
import { commandWorks, IS_ROOT, PROJECT_DIR, testNeeding } from "./harness";

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-app-source-"));
});
afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Writes files (path → content; a mode with `[content, mode]`) under a new directory of tmp. */
function appDir(files: Record<string, string | [string, number]>, name = "app"): string {
  const root = path.join(tmp, name);
  fs.mkdirSync(root, { recursive: true });
  for (const [file, spec] of Object.entries(files)) {
    const [content, mode] = typeof spec === "string" ? [spec, 0o644] : spec;
    fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    fs.writeFileSync(path.join(root, file), content);
    fs.chmodSync(path.join(root, file), mode);
  }
  return root;
}

/** What parseConfig says about an app directory, for appModule `module`. */
function problemsFor(dir: string, module = "app:application"): string[] {
  try {
    parseConfig(
      {
        "webstack:domain": "www.example.com",
        "webstack:appSource": dir,
        "webstack:appModule": module,
      },
      { appSource: readAppSource(dir).listing },
    );
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

const ACCEPTED_SOURCE =
  "expected a directory, relative to the project directory or absolute, holding the module of " +
  "`appModule`, wheels/ for requirements.txt, and no symlinks";

describe("what the parser refuses in an app directory", () => {
  test("the repository's own app/ is accepted", () => {
    expect(problemsFor(path.join(PROJECT_DIR, "app"))).toEqual([]);
  });

  test("a missing directory", () => {
    const dir = path.join(tmp, "nowhere");
    expect(problemsFor(dir)).toEqual([
      `webstack:appSource: ${JSON.stringify(dir)} (${dir}) is not a directory; ${ACCEPTED_SOURCE}`,
    ]);
  });

  test("a file where the directory should be", () => {
    fs.writeFileSync(path.join(tmp, "app.py"), "");
    expect(problemsFor(path.join(tmp, "app.py"))[0]).toMatch(/ is not a directory; /);
  });

  test.each([
    ["shop.wsgi:application", { "shop/wsgi.py": "" }],
    ["shop.wsgi:application", { "shop/wsgi/__init__.py": "" }],
    ["app:application", { "app.py": "" }],
  ])("%s is found in %j", (module, files) => {
    expect(problemsFor(appDir(files), module)).toEqual([]);
  });

  test("no module file for appModule", () => {
    const dir = appDir({ "shop/web.py": "" });
    expect(problemsFor(dir, "shop.wsgi:application")).toEqual([
      `webstack:appModule: "shop.wsgi:application" has no module file in ${JSON.stringify(dir)} ` +
        `(${dir}): expected shop/wsgi.py or shop/wsgi/__init__.py; expected module.path:callable ` +
        'of Python identifiers, such as "shop.wsgi:application"',
    ]);
  });

  test("requirements without their wheels, by normalized name", () => {
    const dir = appDir({
      "app.py": "",
      "requirements.txt": [
        "# the web part",
        "Flask-SQLAlchemy>=3.1  # ORM",
        "requests[socks] == 2.32.3 ; python_version >= '3.11'",
        "--hash=sha256:0000",
        "zope.interface",
        "",
      ].join("\n"),
      "wheels/flask_sqlalchemy-3.1.1-py3-none-any.whl": "",
      "wheels/README": "",
    });
    expect(problemsFor(dir)).toEqual([
      `webstack:appSource: ${JSON.stringify(dir)} (${dir}): requirements.txt asks for requests, ` +
        "zope.interface, which wheels/ holds no wheel of; build them with pip wheel -r " +
        `requirements.txt -w wheels; ${ACCEPTED_SOURCE}`,
    ]);
  });

  test("requirements all in wheels/, and a requirements.txt of comments only, are accepted", () => {
    expect(
      problemsFor(
        appDir({
          "app.py": "",
          "requirements.txt": "Zope.Interface==7.2\n",
          "wheels/zope_interface-7.2-cp313-cp313-manylinux_2_17_x86_64.whl": "",
        }),
      ),
    ).toEqual([]);
    expect(problemsFor(appDir({ "app.py": "", "requirements.txt": "# none\n" }, "b"))).toEqual([]);
  });

  test("a requirement by URL cannot be installed from wheels/", () => {
    const dir = appDir({
      "app.py": "",
      "requirements.txt": "git+https://example.com/shop.git\n",
    });
    expect(problemsFor(dir)).toEqual([
      `webstack:appSource: ${JSON.stringify(dir)} (${dir}): requirements.txt asks for ` +
        '"git+https://example.com/shop.git", which is not a distribution by name; expected names ' +
        `(with versions) that wheels/ provides; ${ACCEPTED_SOURCE}`,
    ]);
  });

  test("an editable install of the app itself is refused at config: it cannot build on the node", () => {
    const dir = appDir({ "app.py": "", "setup.py": "", "requirements.txt": "-e .\n" }, "c");
    expect(problemsFor(dir)).toEqual([
      `webstack:appSource: ${JSON.stringify(dir)} (${dir}): requirements.txt asks for ` +
        '"-e .", which is not a distribution by name; expected names ' +
        `(with versions) that wheels/ provides; ${ACCEPTED_SOURCE}`,
    ]);
  });

  test("symlinks and special files", () => {
    const dir = appDir({ "app.py": "", "static/logo.svg": "<svg/>" });
    fs.symlinkSync("/etc/passwd", path.join(dir, "static", "passwd"));
    fs.symlinkSync("static", path.join(dir, "assets"));
    spawnSync("mkfifo", [path.join(dir, "pipe")]);
    expect(problemsFor(dir)).toEqual([
      `webstack:appSource: ${JSON.stringify(dir)} (${dir}) holds symlinks or special files ` +
        "(assets, pipe, static/passwd), which a release cannot carry; expected regular files " +
        `and directories only; ${ACCEPTED_SOURCE}`,
    ]);
  });

  test("an archive over the limit", () => {
    const listing: AppSourceListing = {
      path: "/w/app",
      isDirectory: true,
      files: ["app.py"],
      unsupported: [],
      archiveBytes: 100 * 1024 * 1024 + 1,
    };
    expect(appSourceProblems(listing, "app", "app:application")).toEqual([
      { key: "appSource", message: '"app" (/w/app) packs to 100.0 MiB, over the 100 MiB limit' },
    ]);
    expect(
      appSourceProblems({ ...listing, archiveBytes: 100 * 1024 * 1024 }, "app", "app:application"),
    ).toEqual([]);
  });
});

describe("requirements and wheels, by name", () => {
  test.each([
    ["Flask_SQLAlchemy", "flask-sqlalchemy"],
    ["zope.interface", "zope-interface"],
    ["A-_.b", "a-b"],
  ])("%s normalizes to %s", (name, normalized) => {
    expect(normalizeDistributionName(name)).toBe(normalized);
  });

  test.each([
    ["flask_sqlalchemy-3.1.1-py3-none-any.whl", "flask-sqlalchemy"],
    ["cryptography-44.0.0-1-cp39-abi3-manylinux_2_28_x86_64.whl", "cryptography"],
    ["not-a-wheel.whl", undefined],
  ])("%s holds %s", (file, name) => {
    expect(wheelDistribution(file)).toBe(name);
  });

  test("names, continued lines, options and URLs", () => {
    expect(
      requirementNames(
        "a==1 \\\n  --hash=sha256:00\nb>2;python_version>'3'\n-r more.txt\n./local\n",
      ),
    ).toEqual({ names: ["a", "b"], unnamed: ["./local"] });
  });

  test.each(["-e .", "--editable=./shop", "-e git+https://example.com/shop.git#egg=shop"])(
    "an editable install (%s) is no distribution by name: it would build in the read-only release",
    (line) => {
      expect(requirementNames(`a==1\n${line}\n`)).toEqual({ names: ["a"], unnamed: [line] });
    },
  );
});

/**
 * A Python whose tarfile has the "data" extraction filter, which the nodes' Python (Debian 13's
 * 3.13) applies to a release: the first on PATH that has it (by feature: 3.12 and 3.11.4 on have
 * it, Debian 12's /usr/bin/python3 3.11.2 has not), the newest first within a directory.
 */
function pythonWithDataFilter(searchPath = process.env.PATH ?? ""): string {
  const dirs = searchPath
    .split(path.delimiter)
    .filter((dir) => path.isAbsolute(dir) && fs.existsSync(dir))
    .map((dir) => fs.realpathSync(dir));
  const candidates = [...new Set(dirs)].flatMap((dir) =>
    fs
      .readdirSync(dir)
      .filter((name) => /^python3(\.\d+)?$/.test(name))
      .sort((a, b) => b.localeCompare(a, "en", { numeric: true }))
      .map((name) => path.join(dir, name)),
  );
  const found = candidates.find((python) =>
    commandWorks(python, ["-c", "import tarfile; tarfile.data_filter"]),
  );
  if (!found)
    throw new Error(
      "no Python on PATH has tarfile's data filter (tarfile.data_filter: Python 3.12, or 3.11.4 " +
        `and later), which the nodes apply to a release; tried: ${candidates.join(", ") || "none"}`,
    );
  return found;
}

/**
 * The nodes' own Python (Debian 13's, in the rootfs lab/rootfs.sh built and cached), as root: the
 * command's argv to run a script in it, reading the archive on stdin; a tmpfs on its /tmp in a
 * private mount namespace, so the cached rootfs stays as it is (built if missing, as the artifact
 * checks do; `scripts/setup.sh` builds it). Undefined when not root or when it cannot be built.
 */
function nodesPython(script: string): string[] | undefined {
  if (!IS_ROOT || !commandWorks("unshare", ["--version"])) return undefined;
  const built = spawnSync("bash", [path.join(PROJECT_DIR, "lab", "rootfs.sh")], {
    encoding: "utf8",
    timeout: 600_000,
  });
  const rootfs = built.status === 0 ? built.stdout.trim() : "";
  if (!rootfs || !fs.existsSync(path.join(rootfs, "usr/bin/python3"))) return undefined;
  return [
    "unshare",
    "--mount",
    "--fork",
    "sh",
    "-c",
    'mount -t tmpfs tmpfs "$1/tmp" && exec chroot "$1" /usr/bin/python3 -c "$2"',
    "sh",
    rootfs,
    script,
  ];
}

/** The archive's entries as Python's tarfile reads them, extracted with the nodes' filter. */
function pythonList(archive: string): unknown {
  const script = [
    "import io, json, sys, tarfile, tempfile",
    "with tarfile.open(fileobj=io.BytesIO(sys.stdin.buffer.read()), mode='r:gz') as t:",
    "    members = t.getmembers()",
    "    rows = [[m.name, m.type.decode(), oct(m.mode), m.uid, m.gid, m.uname, m.gname, m.mtime, m.pax_headers, m.size] for m in members]",
    "    t.extractall(tempfile.mkdtemp(), filter='data')",
    "print(json.dumps(rows))",
  ].join("\n");
  // The nodes' own Python where this runs as root with the rootfs cached (CI), else one on PATH.
  const argv = nodesPython(script) ?? [pythonWithDataFilter(), "-c", script];
  const run = spawnSync(argv[0], argv.slice(1), {
    encoding: "utf8",
    input: fs.readFileSync(archive),
  });
  if (run.status !== 0) throw new Error(run.stderr);
  return JSON.parse(run.stdout);
}

describe("the Python that reads a release as the nodes do", () => {
  /** Directories of stand-in Pythons: each answers the feature check as told. */
  function pythons(dirs: Record<string, Record<string, boolean>>): string {
    return Object.entries(dirs)
      .map(([dir, names]) => {
        fs.mkdirSync(path.join(tmp, dir));
        for (const [name, hasFilter] of Object.entries(names))
          fs.writeFileSync(path.join(tmp, dir, name), `#!/bin/sh\nexit ${hasFilter ? 0 : 1}\n`, {
            mode: 0o755,
          });
        return path.join(tmp, dir);
      })
      .join(path.delimiter);
  }

  test("the first on PATH with tarfile's data filter, newest first within a directory", () => {
    const searchPath = pythons({
      debian12: { python3: false, "python3.11": false },
      other: { python3: true, "python3.9": true, "python3.13": true, "python3-config": true },
    });
    expect(pythonWithDataFilter(searchPath)).toBe(
      path.join(fs.realpathSync(tmp), "other", "python3.13"),
    );
  });

  test("none with it: an error naming what is missing and what was tried", () => {
    const searchPath = pythons({ debian12: { python3: false } });
    expect(() => pythonWithDataFilter(searchPath)).toThrow(
      `no Python on PATH has tarfile's data filter (tarfile.data_filter: Python 3.12, or 3.11.4 ` +
        `and later), which the nodes apply to a release; tried: ${path.join(fs.realpathSync(tmp), "debian12", "python3")}`,
    );
  });
});

describe("the release archive", () => {
  const FILES: Record<string, string | [string, number]> = {
    "app.py": "def application(environ, start_response): ...\n",
    "bin/migrate": ["#!/bin/sh\n", 0o700],
    "shop/__init__.py": "",
    "shop/__pycache__/x.cpython-313.pyc": "byte code",
    "shop/old.pyc": "byte code",
    ".git/HEAD": "ref: refs/heads/main\n",
    "venv/bin/python": "",
    ".venv/pyvenv.cfg": "",
    "static/site.css": ["body {}\n", 0o664],
  };

  test("entries sorted, relative, skipped ones out; modes 0644/0755, owner 0:0, mtime 0, no pax", () => {
    const { archive } = readAppSource(appDir(FILES));
    const file = path.join(tmp, "release.tar.gz");
    fs.writeFileSync(file, archive!);
    const row = (name: string, type: string, mode: string, size: number) => [
      name,
      type,
      mode,
      0,
      0,
      "",
      "",
      0,
      {},
      size,
    ];
    expect(pythonList(file)).toEqual([
      row("app.py", "0", "0o644", 46),
      row("bin", "5", "0o755", 0),
      row("bin/migrate", "0", "0o755", 10),
      row("shop", "5", "0o755", 0),
      row("shop/__init__.py", "0", "0o644", 0),
      row("static", "5", "0o755", 0),
      row("static/site.css", "0", "0o644", 8),
    ]);
  });

  test("the same directory packs to the same id, wherever it is and whatever its times", () => {
    const first = readAppSource(appDir(FILES, "one")).archive!;
    const elsewhere = appDir(FILES, "two");
    fs.utimesSync(path.join(elsewhere, "app.py"), new Date(2001, 1, 1), new Date(2001, 1, 1));
    expect(releaseIdOf(readAppSource(elsewhere).archive!)).toBe(releaseIdOf(first));
    expect(releaseIdOf(first)).toMatch(/^[0-9a-f]{64}$/);
  });

  test.each([
    ["a changed file", (dir: string) => fs.appendFileSync(path.join(dir, "app.py"), "#\n")],
    ["a new file", (dir: string) => fs.writeFileSync(path.join(dir, "shop/db.py"), "")],
    ["a file made executable", (dir: string) => fs.chmodSync(path.join(dir, "app.py"), 0o755)],
  ])("%s is another id", (_, change) => {
    const dir = appDir(FILES);
    const before = releaseIdOf(readAppSource(dir).archive!);
    change(dir);
    expect(releaseIdOf(readAppSource(dir).archive!)).not.toBe(before);
  });

  test("byte code and local venvs do not change the id", () => {
    const dir = appDir(FILES);
    const before = releaseIdOf(readAppSource(dir).archive!);
    fs.writeFileSync(path.join(dir, "shop/__pycache__/y.pyc"), "more");
    fs.writeFileSync(path.join(dir, "venv/bin/pip"), "");
    expect(releaseIdOf(readAppSource(dir).archive!)).toBe(before);
  });
});

describe("where a packed release is written: a directory per user (issue 16)", () => {
  const APP = { "app.py": "def application(environ, start_response): ...\n" };
  const NOBODY = 65534;
  const UID = process.getuid!();
  // Each test its own temporary directory (TMPDIR), which everyone may write to, as /tmp.
  let shared: string;
  beforeEach(() => {
    shared = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-shared-tmp-"));
    fs.chmodSync(shared, 0o1777);
  });
  afterEach(() => fs.rmSync(shared, { recursive: true, force: true }));

  /** Packs the app in a process of its own, as `npm run plan` does, as uid; what it wrote. */
  function packAs(uid: number) {
    const script =
      'const a = require("./platform/appArchive");' +
      "console.log(JSON.stringify(a.writeReleaseArchive(a.readAppSource(process.argv[1]).archive)));";
    const app = appDir(APP);
    fs.chmodSync(tmp, 0o755); // another user reads the app too
    const r = spawnSync(
      path.join(PROJECT_DIR, "node_modules", ".bin", "tsx"),
      ["-e", script, app],
      {
        cwd: PROJECT_DIR,
        ...(uid !== UID && { uid, gid: uid }),
        env: { PATH: process.env.PATH, TMPDIR: shared, HOME: shared },
        encoding: "utf8",
      },
    );
    if (r.status !== 0) return { error: r.stderr };
    return JSON.parse(r.stdout) as { id: string; path: string };
  }
  const archive = () => readAppSource(appDir(APP, "again")).archive!;

  test("this user's directory of the temporary directory, closed to others; named by its id", () => {
    const written = packAs(UID);
    const id = releaseIdOf(archive());
    const file = path.join(shared, `webstack-releases-${UID}`, `${id}.tar.gz`);
    expect(written).toEqual({ id, path: file });
    expect(fs.readFileSync(file).equals(archive())).toBe(true);
    expect(fs.statSync(path.dirname(file)).mode & 0o777).toBe(0o700);
    // The same place as this process names it, under its own temporary directory.
    const dir = path.join(os.tmpdir(), `webstack-releases-${UID}`);
    expect(releaseArchiveDir()).toBe(dir);
    expect(releaseArchivePath(id)).toBe(path.join(dir, `${id}.tar.gz`));
  });

  testNeeding("root (to pack as another user after it)", IS_ROOT)(
    "after root packed a release, another user packs it too, in a directory of their own",
    () => {
      const id = releaseIdOf(archive());
      const asRoot = packAs(0);
      // A developer's `npm run plan` after a CI run as root on the same machine.
      const asUser = packAs(NOBODY);
      expect(asUser).toEqual({
        id,
        path: path.join(shared, `webstack-releases-${NOBODY}`, `${id}.tar.gz`),
      });
      expect(asRoot).toEqual({
        id,
        path: path.join(shared, "webstack-releases-0", `${id}.tar.gz`),
      });
    },
  );

  const REFUSED = (dir: string) =>
    `${dir}: not a directory this user owns and alone can write to (the release is packed ` +
    "there before its upload); remove it";

  test("a directory of that name that others may write to is refused", () => {
    const dir = path.join(shared, `webstack-releases-${UID}`);
    fs.mkdirSync(dir);
    fs.chmodSync(dir, 0o777);
    expect(packAs(UID)).toEqual({ error: expect.stringContaining(REFUSED(dir)) });
  });

  testNeeding("root (to give a directory to another user)", IS_ROOT)(
    "a directory of that name that another user made first is refused",
    () => {
      const dir = path.join(shared, "webstack-releases-0");
      fs.mkdirSync(dir, { mode: 0o700 });
      fs.chownSync(dir, NOBODY, NOBODY);
      expect(packAs(0)).toEqual({ error: expect.stringContaining(REFUSED(dir)) });
    },
  );
});
