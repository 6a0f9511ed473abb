// webstack's policy pack: every rule mandatory, for `pulumi preview --policy-pack policy`.
// Constructing the pack starts its server, so this file does nothing else; see policies.ts.
import { PolicyPack } from "@pulumi/policy";
import { resourcePolicies, stackPolicies } from "./policies";

new PolicyPack("webstack", { policies: [...resourcePolicies, ...stackPolicies] });
