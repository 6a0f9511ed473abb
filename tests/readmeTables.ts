// The README's tables as cells, for the tests that hold them to the code and to what they measure.
import * as fs from "fs";
import * as path from "path";
import { PROJECT_DIR } from "./harness";

export const README = fs.readFileSync(path.join(PROJECT_DIR, "README.md"), "utf8");

const cells = (line: string) =>
  line
    .split("|")
    .slice(1, -1)
    .map((c) => c.trim());

/** The header and body rows of the first table after a heading (or after a line starting with `marker`). */
export function tableWithHeaderAfter(marker: string): { header: string[]; rows: string[][] } {
  const lines = README.slice(README.indexOf(marker)).split("\n");
  const start = lines.findIndex((l) => l.startsWith("| "));
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith("|")) break;
    rows.push(cells(line));
  }
  return { header: cells(lines[start]), rows };
}

/** The body rows of the first table after a heading (or after a line starting with `marker`). */
export const tableAfter = (marker: string): string[][] => tableWithHeaderAfter(marker).rows;

/**
 * The README's exposure figures (The app's sandbox, **Exposure**) as the given systemd version scores
 * the units offline: unit → figure; undefined when the table has no column for that version.
 */
export function readmeExposureColumn(systemdVersion: number): Record<string, number> | undefined {
  const { header, rows } = tableWithHeaderAfter("**Exposure**");
  const column = header.indexOf(`systemd ${systemdVersion}`);
  if (column < 0) return undefined;
  return Object.fromEntries(rows.map((row) => [row[0].replace(/`/g, ""), Number(row[column])]));
}

/**
 * What a test scored, in the README column's shape: each unit's score, or its distinct scores where
 * its files (which differ by node or mode) score differently, which one figure cannot state.
 */
export function scoresByUnit(
  scored: readonly { readonly unit: string; readonly exposure: number }[],
): Record<string, number | number[]> {
  const found: Record<string, Set<number>> = {};
  for (const { unit, exposure } of scored) (found[unit] ??= new Set()).add(exposure);
  return Object.fromEntries(
    Object.entries(found).map(([unit, set]) => [
      unit,
      set.size === 1 ? [...set][0] : [...set].sort(),
    ]),
  );
}
