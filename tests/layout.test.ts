// The layout's import rules: what each folder may import, as the README's "Layout" table states it.
import * as fs from "fs";
import { builtinModules } from "module";
import * as path from "path";
import { PROJECT_DIR } from "./harness";

/** A place in the tree: a top-level folder ("model/") or a root file ("index.ts"). */
type Place = string;

/**
 * What each place may import besides itself and Node's built-ins: other places, and packages
 * (`@pulumi/*` stands for every package of that scope). tests/ may import anything.
 */
export const IMPORT_RULES: Readonly<Record<Place, readonly string[]>> = {
  "index.ts": ["model/", "platform/", "components/", "cloud-init/", "@pulumi/*"],
  "model/": [],
  "platform/": ["model/", "@pulumi/*", "tar"],
  "components/": ["model/", "platform/", "cloud-init/", "@pulumi/*"],
  "cloud-init/": ["model/", "yaml"],
  "plan/": ["index.ts", "model/", "cloud-init/", "@pulumi/*", "yaml", "esbuild"],
  "policy/": ["model/", "cloud-init/", "@pulumi/*"],
  "lab/": ["plan/", "model/", "@pulumi/*", "yaml"],
};

/** The Node built-ins a place may import, where not all of them: the model does no I/O. */
const BUILTINS: Readonly<Record<Place, readonly string[]>> = { "model/": ["util"] };

/** Source files the scan reads: TypeScript and JavaScript in all their module flavours. */
const SOURCE = /\.(ts|tsx|mts|cts|js|mjs|cjs)$/;

/** One import of one file: the file, the specifier as written. */
interface Import {
  readonly file: string;
  readonly specifier: string;
}

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+["']([^"']+)["']|\b(?:require|require\.resolve|import)\(\s*["'`]([^"'`]+)["'`]\s*\)|(?:^|\n)\s*import\s+["']([^"']+)["']/g;

/** Every module specifier a TypeScript source imports, type-only imports included. */
function importsOf(source: string): string[] {
  return [...source.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** The place a project file belongs to: its top-level folder, or the file itself at the root. */
function placeOf(file: string): Place {
  const [first, ...rest] = file.split("/");
  return rest.length === 0 ? first : `${first}/`;
}

/** What an import reaches: a place in the tree, a package (scope/name), or one of Node's own. */
function targetOf(imp: Import): { place: Place } | { pkg: string } | { builtin: string } {
  if (imp.specifier.startsWith(".")) {
    const resolved = path.posix.normalize(
      path.posix.join(path.posix.dirname(imp.file), imp.specifier),
    );
    return { place: placeOf(resolved.includes("/") ? resolved : `${resolved}.ts`) };
  }
  const bare = imp.specifier.replace(/^node:/, "");
  if (builtinModules.includes(bare.split("/")[0])) return { builtin: bare.split("/")[0] };
  const parts = imp.specifier.split("/");
  return { pkg: imp.specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0] };
}

const allowedPackage = (allowed: readonly string[], pkg: string) =>
  allowed.includes(pkg) || allowed.some((a) => a.endsWith("/*") && pkg.startsWith(a.slice(0, -1)));

/** Each import that breaks the rules, as "file imports specifier". */
function importViolations(
  imports: readonly Import[],
  rules: Readonly<Record<Place, readonly string[]>> = IMPORT_RULES,
): string[] {
  return imports.flatMap((imp) => {
    const from = placeOf(imp.file);
    const allowed = rules[from];
    const target = targetOf(imp);
    if (!allowed) return [];
    const ok =
      "builtin" in target
        ? !BUILTINS[from] || BUILTINS[from].includes(target.builtin)
        : "place" in target
          ? target.place === from || allowed.includes(target.place)
          : allowedPackage(allowed, target.pkg);
    return ok ? [] : [`${imp.file} imports ${imp.specifier}`];
  });
}

/** The project's own sources under the ruled places (never node_modules). */
function projectSources(): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(path.join(PROJECT_DIR, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory() && entry.name !== "node_modules") walk(rel);
      else if (entry.isFile() && SOURCE.test(rel)) files.push(rel);
    }
  };
  for (const place of Object.keys(IMPORT_RULES)) {
    if (place.endsWith("/")) walk(place.slice(0, -1));
    else files.push(place);
  }
  return files;
}

const projectImports = (): Import[] =>
  projectSources().flatMap((file) =>
    importsOf(fs.readFileSync(path.join(PROJECT_DIR, file), "utf8")).map((specifier) => ({
      file,
      specifier,
    })),
  );

test("every folder imports only what the layout allows", () => {
  const imports = projectImports();
  // The scan sees the real tree: renderers, components, the lab and the plan all import something.
  for (const place of ["cloud-init/", "components/", "lab/", "plan/", "model/"]) {
    expect(imports.some((i) => placeOf(i.file) === place)).toBe(true);
  }
  expect(importViolations(imports)).toEqual([]);
});

test("nothing at the root but index.ts is program source: the model, look-ups and documents have folders", () => {
  const rootSources = fs
    .readdirSync(PROJECT_DIR)
    .filter((f) => SOURCE.test(f) && !/^jest\..*config\.js$/.test(f));
  expect(rootSources).toEqual(["index.ts"]);
});

test("every folder that holds source has a rule (tests/ may import anything)", () => {
  const holdsSource = (dir: string): boolean =>
    fs
      .readdirSync(path.join(PROJECT_DIR, dir), { withFileTypes: true })
      .some((e) =>
        e.isDirectory()
          ? e.name !== "node_modules" && holdsSource(`${dir}/${e.name}`)
          : SOURCE.test(e.name),
      );
  const folders = fs
    .readdirSync(PROJECT_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory() && !e.name.startsWith(".") && e.name !== "node_modules")
    .map((e) => e.name)
    .filter(holdsSource)
    .map((name) => `${name}/`);
  expect(folders.filter((f) => f !== "tests/" && !(f in IMPORT_RULES))).toEqual([]);
});

describe("the checker", () => {
  test.each([
    ['import * as pulumi from "@pulumi/pulumi";', "cloud-init/haproxy.ts imports @pulumi/pulumi"],
    [
      'import type { Output } from "@pulumi/pulumi";',
      "cloud-init/haproxy.ts imports @pulumi/pulumi",
    ],
    [
      'import { AppNode } from "../components/appNode";',
      "cloud-init/haproxy.ts imports ../components/appNode",
    ],
    ['const x = require("../platform/ami");', "cloud-init/haproxy.ts imports ../platform/ami"],
    ['import ami = require("../platform/ami");', "cloud-init/haproxy.ts imports ../platform/ami"],
    [
      'export * from "../components/appNode";',
      "cloud-init/haproxy.ts imports ../components/appNode",
    ],
    ['const m = await import("@pulumi/aws");', "cloud-init/haproxy.ts imports @pulumi/aws"],
    ['require.resolve("../index");', "cloud-init/haproxy.ts imports ../index"],
  ])("catches a renderer that says %s", (line, violation) => {
    const imports = importsOf(line).map((specifier) => ({
      file: "cloud-init/haproxy.ts",
      specifier,
    }));
    expect(importViolations(imports)).toEqual([violation]);
  });

  test("allows a folder's own modules, the ones its rule names, and Node's built-ins", () => {
    const source = [
      'import { renderShipped } from "./template";',
      'import { PORTS } from "../model/topology";',
      'import YAML from "yaml";',
      'import * as fs from "fs";',
      'import * as zlib from "node:zlib";',
    ].join("\n");
    const imports = importsOf(source).map((specifier) => ({ file: "cloud-init/x.ts", specifier }));
    expect(imports).toHaveLength(5);
    expect(importViolations(imports)).toEqual([]);
  });

  test("the model may use util, and no other of Node's modules: it does no I/O", () => {
    const imports = ["util", "node:util", "fs", "node:child_process"].map((specifier) => ({
      file: "model/x.ts",
      specifier,
    }));
    expect(importViolations(imports)).toEqual([
      "model/x.ts imports fs",
      "model/x.ts imports node:child_process",
    ]);
  });

  test("the lab reaches the program only through plan/ and the model", () => {
    const imports = [
      "../plan/plan",
      "../model/topology",
      "../cloud-init/userDataEncoding",
      "../index",
    ].map((specifier) => ({ file: "lab/x.ts", specifier }));
    expect(importViolations(imports)).toEqual([
      "lab/x.ts imports ../cloud-init/userDataEncoding",
      "lab/x.ts imports ../index",
    ]);
  });
});

test("the README's Layout table states the same rules", () => {
  const readme = fs.readFileSync(path.join(PROJECT_DIR, "README.md"), "utf8");
  const section = readme.split("\n## Layout\n")[1]?.split("\n## ")[0] ?? "";
  const stated: Record<string, string[]> = {};
  for (const line of section.split("\n").filter((l) => l.startsWith("| `"))) {
    const cells = line.split("|").map((c) => c.trim());
    const place = /^`([^`]+)`/.exec(cells[1])?.[1];
    if (!place || cells.length < 5) continue;
    stated[place] = [...cells[3].matchAll(/`([^`]+)`/g)].map((m) => m[1]);
  }
  expect(Object.keys(stated).sort()).toEqual([...Object.keys(IMPORT_RULES), "tests/"].sort());
  for (const [place, allowed] of Object.entries(IMPORT_RULES)) {
    expect({ place, allowed: [...(stated[place] ?? ["(not in the README)"])].sort() }).toEqual({
      place,
      allowed: [...allowed].sort(),
    });
  }
});
