// `npm run plan -- --stack dev [--json | --diagram] [--set key=value]…`: the offline plan for reviewers without AWS.
import * as path from "path";
import { ConfigError } from "../model/config";
import { DiagramError, renderDiagram } from "./diagram";
import { Plan, PlanError, PlannedResource, runPlan } from "./plan";
import { readStackConfig, StackConfigError, stackFile } from "./stackConfig";
import { redactSecrets } from "./secrets";

const USAGE =
  "usage: npm run plan -- --stack <name> [--json | --diagram] [--set key=value]... [--stack-file FILE]";

interface CliArgs {
  readonly stack: string;
  /** What to print: the resource tree and outputs, the JSON, or a Mermaid diagram of the stack. */
  readonly format: "tree" | "json" | "diagram";
  readonly sets: string[];
  /** Config file to read instead of Pulumi.<stack>.yaml. */
  readonly stackFile?: string;
}

class UsageError extends Error {}

export function parseArgs(argv: readonly string[]): CliArgs {
  let stack: string | undefined;
  let json = false;
  let diagram = false;
  let file: string | undefined;
  const sets: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const next = argv[++i];
      if (next === undefined) throw new UsageError(`${arg} needs a value`);
      return next;
    };
    if (arg === "--stack") stack = value();
    else if (arg.startsWith("--stack=")) stack = arg.slice("--stack=".length);
    else if (arg === "--json") json = true;
    else if (arg === "--diagram") diagram = true;
    else if (arg === "--set") sets.push(value());
    else if (arg.startsWith("--set=")) sets.push(arg.slice("--set=".length));
    else if (arg === "--stack-file") file = value();
    else throw new UsageError(`unknown argument ${arg}`);
  }
  if (!stack) throw new UsageError("--stack is required");
  if (json && diagram) throw new UsageError("--json and --diagram are two outputs: choose one");
  return { stack, format: json ? "json" : diagram ? "diagram" : "tree", sets, stackFile: file };
}

/** The resource tree, one line per resource: type and name, indented under its parent. */
export function renderTree(resources: readonly PlannedResource[]): string {
  const children = new Map<string | undefined, PlannedResource[]>();
  for (const r of resources) children.set(r.parent, [...(children.get(r.parent) ?? []), r]);
  const lines: string[] = [];
  const walk = (parent: string | undefined, prefix: string) => {
    const kids = children.get(parent) ?? [];
    kids.forEach((r, i) => {
      const last = i === kids.length - 1;
      const branch = parent === undefined ? "" : last ? "└─ " : "├─ ";
      lines.push(`${prefix}${branch}${r.type}  ${r.name}`);
      walk(r.urn, parent === undefined ? "" : prefix + (last ? "   " : "│  "));
    });
  };
  walk(undefined, "");
  return lines.join("\n");
}

/** The resource tree, the outputs, and the program's warnings and the placeholders when there are any. */
export function renderHuman(plan: Plan, placeholders: readonly string[]): string {
  const redacted = redactSecrets(plan);
  const outputs = Object.entries(redacted.outputs).map(([k, v]) => `  ${k}: ${JSON.stringify(v)}`);
  const warnings = redacted.warnings.map((w) => `  ${w}`);
  const notes = placeholders.map((k) => `  ${k}: placeholder (the real value is a Pulumi secret)`);
  return [
    `Stack ${plan.stack}: ${plan.resources.length} resources (offline plan, mocked AWS)`,
    "",
    renderTree(plan.resources),
    "",
    "Outputs:",
    ...outputs,
    ...(warnings.length > 0 ? ["", "Warnings:", ...warnings] : []),
    ...(notes.length > 0 ? ["", "Placeholders:", ...notes] : []),
    "",
  ].join("\n");
}

export async function main(argv: readonly string[]): Promise<number> {
  try {
    const args = parseArgs(argv);
    const file = args.stackFile ?? stackFile(path.resolve(__dirname, ".."), args.stack);
    const config = readStackConfig(file, args.sets);
    const plan = await runPlan({
      stack: args.stack,
      config: config.values,
      secretKeys: config.secretKeys,
    });
    const text =
      args.format === "json"
        ? JSON.stringify({ ...redactSecrets(plan), placeholders: config.placeholders }, null, 2) +
          "\n"
        : args.format === "diagram"
          ? renderDiagram(redactSecrets(plan))
          : renderHuman(plan, config.placeholders);
    process.stdout.write(text);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`plan: ${err.message}\n${USAGE}\n`);
      return 2;
    }
    if (
      err instanceof ConfigError ||
      err instanceof StackConfigError ||
      err instanceof PlanError ||
      err instanceof DiagramError
    ) {
      process.stderr.write(`plan: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.stdout.write("", () => process.exit(code)),
    (err) => {
      process.stderr.write(
        `plan: unexpected failure: ${err instanceof Error ? err.stack : String(err)}\n`,
      );
      process.exit(1);
    },
  );
}
