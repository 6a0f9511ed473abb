// `npm run plan`'s loader (`node --require`): the project's TypeScript compiled once per content.
"use strict";
// Plain JavaScript: it is what lets Node load the TypeScript. What it does, and why each part (the
// measurements are in the README, "The offline plan"):
// - `.ts` files are compiled by esbuild, with tsconfig.json's options, and the output kept in
//   .cache/plan/ under a hash of everything it depends on: the source, the file's path, esbuild's
//   version, the options and this file. A changed source is a new key, so an entry is never stale;
//   an entry is written whole (a temporary file, renamed) and one that cannot be read is compiled
//   anew. Other JavaScript is Node's own business: no hook looks at it.
// - Stack traces show the TypeScript's lines and columns (the source maps esbuild writes) for the
//   project's files; other frames are Node's own, unmapped, as Node prints them without source maps.
//   Node's own source-map support would map every frame of every stack, and Pulumi takes a stack
//   for each promise it makes.
// - Pulumi's closure serializer (TypeScript's compiler and npm's Arborist, most of the time
//   `require("@pulumi/pulumi")` takes) is loaded when the program first uses it, if ever.
const crypto = require("crypto");
const fs = require("fs");
const Module = require("module");
const path = require("path");

const ROOT = path.resolve(__dirname, "..");
/**
 * One entry per compiled file: `<path, URI-encoded>.<key>.json` holding `{ code, map }`; a folder
 * per user, so that root's runs (the lab, the tests under sudo) leave nothing a user cannot update.
 */
const CACHE_DIR = path.join(ROOT, ".cache", "plan", String(process.getuid?.() ?? "any"));

const tsconfig = JSON.parse(fs.readFileSync(path.join(ROOT, "tsconfig.json"), "utf8"));
/** As tsx compiles (its `keepNames` included: a class keeps its name), with a separate map. */
const OPTIONS = {
  loader: "ts",
  format: "cjs",
  platform: "node",
  target: `node${process.versions.node}`,
  keepNames: true,
  sourcemap: "external",
  sourcesContent: false,
  tsconfigRaw: { compilerOptions: tsconfig.compilerOptions },
};
/** What every key starts with: whatever besides the source decides the output. */
const KEY_BASE = JSON.stringify([
  require("esbuild/package.json").version,
  OPTIONS,
  crypto.createHash("sha256").update(fs.readFileSync(__filename)).digest("hex"),
]);

let esbuild;
/** The compiled file, from the cache when it holds this source's output. */
function compiled(filename, source) {
  const rel = path.relative(ROOT, filename);
  if (rel.startsWith("..") || rel.split(path.sep).includes("node_modules")) {
    return transform(filename, source);
  }
  // The absolute path: the source map names it.
  const key = crypto
    .createHash("sha256")
    .update(`${KEY_BASE}\n${filename}\n${source}`)
    .digest("hex");
  const prefix = `${encodeURIComponent(rel)}.`;
  const entry = path.join(CACHE_DIR, `${prefix}${key}.json`);
  try {
    const hit = JSON.parse(fs.readFileSync(entry, "utf8"));
    if (typeof hit.code === "string" && typeof hit.map === "string") return hit;
  } catch {
    // Not there yet, or unreadable: compiled anew below.
  }
  const out = transform(filename, source);
  try {
    fs.mkdirSync(CACHE_DIR, { recursive: true });
    writeWhole(entry, JSON.stringify(out));
    // The file's older entries: an edited file leaves one, not one per edit.
    for (const name of fs.readdirSync(CACHE_DIR)) {
      if (name.startsWith(prefix) && /^[0-9a-f]{64}\.json$/.test(name.slice(prefix.length))) {
        if (name !== path.basename(entry)) fs.rmSync(path.join(CACHE_DIR, name), { force: true });
      }
    }
  } catch {
    // A checkout this user cannot write to (or a full disk) plans all the same, uncached.
  }
  return out;
}

/** Writes a file whole: a reader finds the old file or the new one, never a part. */
function writeWhole(file, text) {
  const temporary = `${file}.${process.pid}.tmp`;
  try {
    fs.writeFileSync(temporary, text);
    fs.renameSync(temporary, file);
  } finally {
    fs.rmSync(temporary, { force: true });
  }
}

function transform(filename, source) {
  esbuild ??= require("esbuild");
  const { code, map } = esbuild.transformSync(source, { ...OPTIONS, sourcefile: filename });
  return { code, map };
}

/** Each compiled file's source map, parsed when a stack first passes through the file. */
const sourceMaps = new Map();

Module._extensions[".ts"] = function compileTypeScript(module, filename) {
  const { code, map } = compiled(filename, fs.readFileSync(filename, "utf8"));
  sourceMaps.set(filename, map);
  module._compile(code, filename);
};

/** A call site in a compiled file, with the TypeScript's line and column. */
function mappedCallSite(site) {
  const file = site.getFileName();
  let map = sourceMaps.get(file);
  if (typeof map === "string") sourceMaps.set(file, (map = new Module.SourceMap(JSON.parse(map))));
  const line = site.getLineNumber();
  const column = site.getColumnNumber();
  const found = map.findEntry(line - 1, column - 1);
  if (found.originalLine === undefined) return site;
  const [ln, col] = [found.originalLine + 1, found.originalColumn + 1];
  const position = `${file}:${line}:${column}`;
  const text = String(site);
  const at = text.lastIndexOf(position);
  const mapped =
    at < 0 ? text : `${text.slice(0, at)}${file}:${ln}:${col}${text.slice(at + position.length)}`;
  return new Proxy(site, {
    get(target, key) {
      if (key === "toString") return () => mapped;
      if (key === "getLineNumber") return () => ln;
      if (key === "getColumnNumber") return () => col;
      const value = Reflect.get(target, key);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

const prepareStackTrace = Error.prepareStackTrace;
Error.prepareStackTrace = function prepareMappedStackTrace(error, trace) {
  const frames = trace.some((site) => sourceMaps.has(site.getFileName()))
    ? trace.map((site) => (sourceMaps.has(site.getFileName()) ? mappedCallSite(site) : site))
    : trace;
  if (typeof prepareStackTrace === "function") return prepareStackTrace(error, frames);
  const message = Error.prototype.toString.call(error);
  return frames.length === 0 ? message : `${message}\n    at ${frames.join("\n    at ")}`;
};

/**
 * Modules @pulumi/pulumi requires at load time for its closure serializer only
 * (`runtime.serializeFunction`, which the program does not call), as "requiring file|request":
 * each stands in as a proxy that loads it on first use. `__esModule` answers without loading (the
 * compiled TypeScript asks it at import time): Arborist is imported with `import * as`, which
 * keeps a module that says true as it is; TypeScript with a plain `require`.
 */
const pulumiDir = path.dirname(require.resolve("@pulumi/pulumi/package.json"));
const LOADED_ON_USE = new Map([
  [
    `${path.join(pulumiDir, "runtime", "closure", "parseFunction.js")}|../../typescript-shim`,
    false,
  ],
  [`${path.join(pulumiDir, "runtime", "closure", "codePaths.js")}|@npmcli/arborist`, true],
]);
const load = Module._load;
Module._load = function loadOnUse(request, parent, isMain) {
  const esModule = parent ? LOADED_ON_USE.get(`${parent.filename}|${request}`) : undefined;
  if (esModule === undefined) return load.apply(this, arguments);
  let loaded;
  const real = () => (loaded ??= load.call(this, request, parent, isMain));
  return new Proxy(
    {},
    {
      get: (_, key) => (key === "__esModule" ? esModule || undefined : Reflect.get(real(), key)),
      has: (_, key) => Reflect.has(real(), key),
      ownKeys: () => Reflect.ownKeys(real()),
      getOwnPropertyDescriptor: (_, key) => {
        const descriptor = Reflect.getOwnPropertyDescriptor(real(), key);
        return descriptor && { ...descriptor, configurable: true };
      },
    },
  );
};
