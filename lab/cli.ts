// `npm run lab -- up [--set key=value …] | status | down | bench [--json] | security [--json] | apply [--set key=value …]
// | release DIR [--set …]`: the stack on this machine, booted for real (see lab/lab.ts), changed in
// place as `pulumi up` would, its benchmark (lab/bench.ts) and its services' exposure (lab/security.ts).
import { bench } from "./bench";
import { LabError } from "./commands";
import { apply, down, release, status, up } from "./lab";
import { security } from "./security";
import { ConfigError } from "../model/config";

const COMMANDS: Record<string, (args: readonly string[]) => Promise<void>> = {
  up,
  status,
  down,
  bench,
  security,
  apply,
  release,
};
/** The options each command takes. */
const OPTIONS: Record<string, readonly string[]> = { bench: ["--json"], security: ["--json"] };
/** Commands whose options are their own to check (apply's --set key=value pairs, release's DIR). */
const FREE_OPTIONS = new Set(["up", "apply", "release"]);
const USAGE =
  "usage: npm run lab -- up [--set key=value …] | status | down | bench [--json] | security [--json] | apply [--set key=value …] | release DIR [--set key=value …]   (as root, on Linux)";

export async function main(argv: readonly string[]): Promise<number> {
  const command = COMMANDS[argv[0] ?? ""];
  const options = argv.slice(1);
  const checked = !FREE_OPTIONS.has(argv[0] ?? "");
  if (!command || (checked && options.some((o) => !(OPTIONS[argv[0]] ?? []).includes(o)))) {
    console.error(USAGE);
    return 2;
  }
  try {
    await command(options);
    return 0;
  } catch (err) {
    if (err instanceof LabError || err instanceof ConfigError) {
      console.error(`lab: ${err.message}`);
      if (argv[0] === "up") console.error("lab: `npm run lab -- down` removes what was set up");
      return 1;
    }
    throw err;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
