// The app's secret variables (issue 18): one SecureString each under app-secrets/, which the app
// nodes read and the LB does not; never in user-data, bundles or outputs.
import * as pulumi from "@pulumi/pulumi";
import { SecretValue } from "../model/config";
import { appSecretName } from "../model/naming";
import { Tagger } from "../model/tags";
import { AppSecretRef } from "../cloud-init/appNode";
import { ssmParameter } from "./parameter";

export interface AppSecretVariablesArgs {
  readonly stack: string;
  /** The app's secret variables by name (config `appSecrets`). */
  readonly secrets: Readonly<Record<string, SecretValue>>;
  /** KMS key id that encrypts the SecureString parameters. */
  readonly parameterKeyId: pulumi.Input<string>;
  readonly tags: Tagger;
}

export class AppSecretVariables extends pulumi.ComponentResource {
  /** Each variable's parameter and version, by name: what the nodes' fetch manifest lists. */
  readonly refs: pulumi.Output<AppSecretRef[]>;

  constructor(name: string, args: AppSecretVariablesArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:secrets:AppSecretVariables", name, {}, opts);
    const refs = Object.entries(args.secrets)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([variable, value]) => {
        const parameter = appSecretName(args.stack, variable);
        const created = ssmParameter(
          `${name}-${variable}`,
          {
            name: parameter,
            description: `webstack ${args.stack}: the app's secret variable ${variable}`,
            value: value.reveal(),
            keyId: args.parameterKeyId,
            tags: args.tags("shared", `app-secret-${variable}`),
          },
          { parent: this },
        );
        // The version moves with each new value: the manifest changes, and the nodes fetch again.
        return created.version.apply((version) => ({ name: variable, parameter, version }));
      });
    this.refs = pulumi.all(refs);
    this.registerOutputs({});
  }
}
