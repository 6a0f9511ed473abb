// The one tagging helper: every taggable resource gets Project, Stack, Role, ManagedBy and Name;
// the database volumes also get the tag their snapshot policy selects them by.
import { NodeRole } from "./topology";
import { PROJECT } from "./naming";

/** The tag that puts a volume in its stack's daily snapshots (components/backups.ts). */
export const SNAPSHOT_TAG_KEY = "Snapshots";

/** Tags webstack sets itself; config may not set them (on every resource, they would reach them all). */
export const RESERVED_TAG_KEYS = [
  "Project",
  "Stack",
  "Role",
  "ManagedBy",
  "Name",
  SNAPSHOT_TAG_KEY,
] as const;

/** What a resource serves: one node's role, the RDS database (`database` rds), or the stack as a whole. */
export type TagRole = NodeRole | "database" | "network" | "shared";

export type Tagger = (role: TagRole, name: string) => Record<string, string>;

/** Extra tags come first so the reserved ones always win (the config parser rejects them anyway). */
export function makeTagger(stack: string, extra: Readonly<Record<string, string>>): Tagger {
  return (role, name) => ({
    ...extra,
    Project: PROJECT,
    Stack: stack,
    Role: role,
    ManagedBy: "pulumi",
    Name: `${PROJECT}-${stack}-${name}`,
  });
}

/**
 * The tag a stack's snapshot policy targets: DLM snapshots every volume carrying any of a policy's
 * target tags, so it is one tag whose value names the stack alone (Project or Stack would reach
 * other stacks' volumes, Name only one volume).
 */
export function snapshotTags(stack: string): Record<string, string> {
  return { [SNAPSHOT_TAG_KEY]: `${PROJECT}-${stack}` };
}
