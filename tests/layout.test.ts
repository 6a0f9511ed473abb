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
  "platform/": ["model/", "@pulumi/*"],
  "components/": ["model/", "platform/", "cloud-init/", "@pulumi/*"],
  "cloud-init/": ["model/", "yaml"],
  "plan/": ["index.ts", "model/", "cloud-init/", "@pulumi/*", "yaml"],
  "policy/": ["cloud-init/", "@pulumi/*"],
  "lab/": ["plan/", "model/", "@pulumi/*", "yaml"],
};

/** One import of one file: the file, the specifier as written. */
interface Import {
  readonly file: string;
  readonly specifier: string;
}

const IMPORT =
  /(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+["']([^"']+)["']|\b(?:require|import)\(\s*["']([^"']+)["']\s*\)|(?:^|\n)\s*import\s+["']([^"']+)["']/g;

/** Every module specifier a TypeScript source imports, type-only imports included. */
export function importsOf(source: string): string[] {
  return [...source.matchAll(IMPORT)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** The place a project file belongs to: its top-level folder, or the file itself at the root. */
function placeOf(file: string): Place {
  const [first, ...rest] = file.split("/");
  return rest.length === 0 ? first : `${first}/`;
}

/** What an import reaches: a place in the tree, a package (scope/name), or undefined for Node's own. */
function targetOf(imp: Import): { place: Place } | { pkg: string } | undefined {
  if (imp.specifier.startsWith(".")) {
    const resolved = path.posix.normalize(
      path.posix.join(path.posix.dirname(imp.file), imp.specifier),
    );
    return { place: placeOf(resolved.includes("/") ? resolved : `${resolved}.ts`) };
  }
  const bare = imp.specifier.replace(/^node:/, "");
  if (builtinModules.includes(bare.split("/")[0])) return undefined;
  const parts = imp.specifier.split("/");
  return { pkg: imp.specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0] };
}

const allowedPackage = (allowed: readonly string[], pkg: string) =>
  allowed.includes(pkg) || allowed.some((a) => a.endsWith("/*") && pkg.startsWith(a.slice(0, -1)));

/** Each import that breaks the rules, as "file imports specifier". */
export function importViolations(
  imports: readonly Import[],
  rules: Readonly<Record<Place, readonly string[]>> = IMPORT_RULES,
): string[] {
  return imports.flatMap((imp) => {
    const from = placeOf(imp.file);
    const allowed = rules[from];
    const target = targetOf(imp);
    if (!allowed || !target) return [];
    const ok =
      "place" in target
        ? target.place === from || allowed.includes(target.place)
        : allowedPackage(allowed, target.pkg);
    return ok ? [] : [`${imp.file} imports ${imp.specifier}`];
  });
}

/** The project's own TypeScript sources under the ruled places (never node_modules). */
function projectSources(): string[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(path.join(PROJECT_DIR, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory() && entry.name !== "node_modules") walk(rel);
      else if (entry.isFile() && rel.endsWith(".ts")) files.push(rel);
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

test("nothing at the root but index.ts is TypeScript: the model, look-ups and documents have folders", () => {
  const rootTs = fs.readdirSync(PROJECT_DIR).filter((f) => f.endsWith(".ts"));
  expect(rootTs).toEqual(["index.ts"]);
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
  for (const [place, allowed] of Object.entries(IMPORT_RULES)) {
    expect({ place, allowed: [...(stated[place] ?? ["(not in the README)"])].sort() }).toEqual({
      place,
      allowed: [...allowed].sort(),
    });
  }
});
