// webstack's rules as CrossGuard policies (types only from @pulumi/policy: tests load this file).
import type {
  PolicyResource,
  ResourceValidationPolicy,
  StackValidationPolicy,
} from "@pulumi/policy";
import {
  DEFAULT_SECRET_PATTERNS,
  RESOURCE_RULES,
  Resource,
  RuleConfig,
  STACK_RULES,
} from "./rules";

/** One adapted resource per URN, so rules can compare resources by identity. */
function adapter(): (r: PolicyResource) => Resource {
  const seen = new Map<string, Resource>();
  const adapt = (r: PolicyResource): Resource => {
    let adapted = seen.get(r.urn);
    if (!adapted) {
      adapted = {
        type: r.type,
        name: r.name,
        props: r.props,
        linked: (prop) => (r.propertyDependencies[prop] ?? []).map(adapt),
      };
      seen.set(r.urn, adapted);
    }
    return adapted;
  };
  return adapt;
}

export const resourcePolicies: ResourceValidationPolicy[] = RESOURCE_RULES.map((rule) => ({
  name: rule.id,
  description: `${rule.description} (${rule.control})`,
  enforcementLevel: "mandatory",
  validateResource: (args, reportViolation) => {
    if (!rule.types.includes(args.type)) return;
    const resource: Resource = {
      type: args.type,
      name: args.name,
      props: args.props,
      linked: () => [],
    };
    for (const message of rule.check(resource))
      reportViolation(`${args.name}: ${message} (${rule.control})`);
  },
}));

export const stackPolicies: StackValidationPolicy[] = STACK_RULES.map((rule) => ({
  name: rule.id,
  description: `${rule.description} (${rule.control})`,
  enforcementLevel: "mandatory",
  ...(rule.id === "no-secrets-in-user-data"
    ? {
        configSchema: {
          properties: {
            secretPatterns: {
              type: "array",
              items: { type: "string" },
              default: [...DEFAULT_SECRET_PATTERNS],
            },
          },
        },
      }
    : {}),
  validateStack: (args, reportViolation) => {
    const config: RuleConfig = {
      secretPatterns:
        args.getConfig<{ secretPatterns?: string[] }>().secretPatterns ?? DEFAULT_SECRET_PATTERNS,
    };
    const adapt = adapter();
    for (const v of rule.check(args.resources.map(adapt), config)) {
      reportViolation(`${v.resource}: ${v.message} (${rule.control})`);
    }
  },
}));
