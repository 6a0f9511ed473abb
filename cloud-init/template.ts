// Shipped files beside their renderers, filled from typed values: every {{NAME}} must be given, every value used.
import * as fs from "fs";
import * as path from "path";

const FILES_DIR = path.join(__dirname, "files");

/** The text of a shipped file in cloud-init/files/. */
export function shippedFile(name: string): string {
  return fs.readFileSync(path.join(FILES_DIR, name), "utf8");
}

/** Replaces each {{NAME}} in the template; throws on a placeholder without a value or a value without a use. */
export function fillTemplate(
  template: string,
  values: Readonly<Record<string, string | number>>,
): string {
  const used = new Set<string>();
  const text = template.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_, key: string) => {
    if (!(key in values)) throw new Error(`template placeholder {{${key}}} has no value`);
    used.add(key);
    return String(values[key]);
  });
  const unused = Object.keys(values).filter((key) => !used.has(key));
  if (unused.length > 0) throw new Error(`template values never used: ${unused.join(", ")}`);
  return text;
}

/** A shipped template, filled. */
export function renderShipped(
  name: string,
  values: Readonly<Record<string, string | number>>,
): string {
  return fillTemplate(shippedFile(name), values);
}
