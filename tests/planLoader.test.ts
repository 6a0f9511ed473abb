// `npm run plan`'s loader (plan/loader.js): its cache of compiled TypeScript, stack traces, Pulumi's lazy parts.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PROJECT_DIR } from "./harness";

/**
 * A project of its own: the loader beside the project's tsconfig and packages, and one TypeScript
 * file; the loader caches what it compiles under the project's root.
 */
function scratchProject(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "webstack-loader-"));
  fs.mkdirSync(path.join(root, "plan"));
  fs.copyFileSync(
    path.join(PROJECT_DIR, "plan", "loader.js"),
    path.join(root, "plan", "loader.js"),
  );
  fs.copyFileSync(path.join(PROJECT_DIR, "tsconfig.json"), path.join(root, "tsconfig.json"));
  fs.symlinkSync(path.join(PROJECT_DIR, "node_modules"), path.join(root, "node_modules"));
  return root;
}

/** `node --require ./plan/loader.js FILE` in the project, as `npm run plan` starts. */
function run(root: string, file: string) {
  const r = spawnSync(process.execPath, ["--require", "./plan/loader.js", file], {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The cache of this user (root's runs keep theirs apart). */
const cacheDir = (root: string) => path.join(root, ".cache", "plan", String(process.getuid!()));
const cacheEntries = (root: string) => fs.readdirSync(cacheDir(root)).sort();

/** A source whose output names `word`; the same length and time for each word of four letters. */
function writeHello(root: string, word: string) {
  const file = path.join(root, "hello.ts");
  fs.writeFileSync(file, `const word: string = "${word}";\nconsole.log(word);\n`);
  const then = new Date("2026-01-01T00:00:00Z");
  fs.utimesSync(file, then, then);
}

let root: string;
beforeEach(() => {
  root = scratchProject();
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

test("a changed source is compiled anew, even with its size and time unchanged", () => {
  writeHello(root, "ones");
  expect(run(root, "hello.ts")).toEqual({ code: 0, stdout: "ones\n", stderr: "" });
  const [first] = cacheEntries(root);
  expect(first).toMatch(/^hello\.ts\.[0-9a-f]{64}\.json$/);

  writeHello(root, "twos");
  expect(run(root, "hello.ts").stdout).toBe("twos\n");
  // The older entry is gone: one entry a file, not one an edit.
  const entries = cacheEntries(root);
  expect(entries).toHaveLength(1);
  expect(entries[0]).not.toBe(first);
});

test("a cached file is run from the cache, not compiled again", () => {
  writeHello(root, "ones");
  run(root, "hello.ts");
  // Only a hit runs this edited output: a compile would print "ones".
  const [entry] = cacheEntries(root);
  const file = path.join(cacheDir(root), entry);
  const cached = JSON.parse(fs.readFileSync(file, "utf8"));
  fs.writeFileSync(file, JSON.stringify({ ...cached, code: cached.code.replace("ones", "hits") }));
  expect(run(root, "hello.ts").stdout).toBe("hits\n");
});

test("an entry that cannot be read (a write cut short) is compiled anew and written whole", () => {
  writeHello(root, "ones");
  run(root, "hello.ts");
  const [entry] = cacheEntries(root);
  const file = path.join(cacheDir(root), entry);
  fs.writeFileSync(file, "");
  expect(run(root, "hello.ts").stdout).toBe("ones\n");
  expect(JSON.parse(fs.readFileSync(file, "utf8")).code).toContain('"ones"');
  expect(cacheEntries(root)).toEqual([entry]);
});

test("a checkout it cannot cache in plans all the same", () => {
  writeHello(root, "ones");
  // A file where the cache's folder would be: nothing can be written under it.
  fs.writeFileSync(path.join(root, ".cache"), "");
  expect(run(root, "hello.ts")).toEqual({ code: 0, stdout: "ones\n", stderr: "" });
});

test("a stack trace gives the TypeScript's lines and columns", () => {
  // Type-only lines before the throw: the compiled file has none of them.
  fs.writeFileSync(
    path.join(root, "throws.ts"),
    [
      "interface Shape {",
      "  readonly sides: number;",
      "}",
      "type Named = Shape & { readonly name: string };",
      "",
      "function fail(shape: Named): never {",
      "  throw new Error(`no ${shape.name}`);",
      "}",
      "",
      'fail({ sides: 3, name: "triangle" });',
      "",
    ].join("\n"),
  );
  const r = run(root, "throws.ts");
  expect(r.code).toBe(1);
  const frames = r.stderr
    .split("\n")
    .filter((l) => l.startsWith("    at ") && l.includes("throws.ts:"));
  expect(frames.slice(0, 2)).toEqual([
    `    at fail (${path.join(root, "throws.ts")}:7:9)`,
    `    at Object.<anonymous> (${path.join(root, "throws.ts")}:10:1)`,
  ]);
});

test("Pulumi's closure serializer loads when first used, and serializes as before", () => {
  const script = [
    'const pulumi = require("@pulumi/pulumi");',
    "const loaded = () => Object.keys(require.cache).filter((f) =>",
    "  /node_modules\\/(typescript|@npmcli\\/arborist)\\//.test(f)).length > 0;",
    "const before = loaded();",
    "const n = 41;",
    "pulumi.runtime.serializeFunction(() => n + 1).then((s) =>",
    "  console.log(JSON.stringify({ before, after: loaded(), text: s.text })));",
  ].join("\n");
  fs.writeFileSync(path.join(root, "serialize.js"), script);
  const r = spawnSync(process.execPath, ["--require", "./plan/loader.js", "serialize.js"], {
    cwd: root,
    encoding: "utf8",
    timeout: 60_000,
  });
  expect(r.stderr).toBe("");
  const out = JSON.parse(r.stdout);
  expect({ before: out.before, after: out.after }).toEqual({ before: false, after: true });
  expect(out.text).toContain("with({ n: 41,");
  expect(out.text).toContain("return () => n + 1;");
});
