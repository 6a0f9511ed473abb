// The one tagging helper: every taggable resource gets Project, Stack, Role, ManagedBy and Name.
import { NodeRole } from "./topology";
import { PROJECT } from "./naming";

/** Tags the tagging helper sets itself; config may not override them. */
export const RESERVED_TAG_KEYS = ["Project", "Stack", "Role", "ManagedBy", "Name"] as const;

/** What a resource serves: one node's role, or the stack as a whole. */
export type TagRole = NodeRole | "network" | "shared";

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
