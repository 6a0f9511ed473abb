// How the lab runs things on the host: its error, its log line, commands that must succeed, waits.
import { spawnSync, SpawnSyncOptions } from "child_process";
import * as path from "path";

export const LAB_DIR = __dirname;
export const PROJECT_DIR = path.dirname(LAB_DIR);
export const PYTHON = "/usr/bin/python3"; // Debian's: its modules (boto3) import only here

export class LabError extends Error {}

export const log = (message: string) => console.log(`lab: ${message}`);

export function run(command: string, args: string[], options: SpawnSyncOptions = {}): string {
  const result = spawnSync(command, args, { encoding: "utf8", ...options });
  if (result.status !== 0) {
    const output = `${result.stderr ?? ""}${result.stdout ?? ""}`.trim();
    throw new LabError(`${command} ${args.join(" ")} failed (${result.status}): ${output}`);
  }
  return String(result.stdout ?? "");
}

export async function waitFor(what: string, seconds: number, check: () => boolean): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!check()) {
    if (Date.now() > deadline)
      throw new LabError(`timed out after ${seconds} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
