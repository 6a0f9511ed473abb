// Crafted resources the policy tests feed to the rules: each with no links to others.
import { Resource } from "../policy/rules";

/** A crafted resource with no links. */
export const crafted = (
  type: string,
  props: Record<string, unknown>,
  name = "crafted",
): Resource => ({
  type,
  name,
  props,
  linked: () => [],
});

/** An app node's instance that every instance rule accepts. */
export const GOOD_INSTANCE = {
  metadataOptions: { httpTokens: "required" },
  rootBlockDevice: { encrypted: true },
  associatePublicIpAddress: false,
  tags: { Role: "replica" },
};
