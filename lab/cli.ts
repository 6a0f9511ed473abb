// `npm run lab -- up | status | down | bench [--json]`: the stack on this machine, booted for real
// (see lab/lab.ts), and its benchmark (lab/bench.ts).
import { bench } from "./bench";
import { LabError } from "./commands";
import { down, status, up } from "./lab";
import { ConfigError } from "../model/config";

const COMMANDS: Record<string, (args: readonly string[]) => Promise<void>> = {
  up,
  status,
  down,
  bench,
};
/** The options each command takes. */
const OPTIONS: Record<string, readonly string[]> = { bench: ["--json"] };
const USAGE = "usage: npm run lab -- up | status | down | bench [--json]   (as root, on Linux)";

export async function main(argv: readonly string[]): Promise<number> {
  const command = COMMANDS[argv[0] ?? ""];
  const options = argv.slice(1);
  if (!command || options.some((o) => !(OPTIONS[argv[0]] ?? []).includes(o))) {
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
