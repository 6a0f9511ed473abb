// `npm run lab -- up | status | down`: the stack on this machine, booted for real (see lab/lab.ts).
import { down, LabError, status, up } from "./lab";
import { ConfigError } from "../config";

const COMMANDS: Record<string, () => Promise<void>> = { up, status, down };
const USAGE = "usage: npm run lab -- up | status | down   (as root, on Linux)";

export async function main(argv: readonly string[]): Promise<number> {
  const command = COMMANDS[argv[0] ?? ""];
  if (!command || argv.length !== 1) {
    console.error(USAGE);
    return 2;
  }
  try {
    await command();
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
