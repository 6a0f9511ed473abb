// The Datadog API key as a SecureString every node may read (shared/), never in user-data.
import * as pulumi from "@pulumi/pulumi";
import { SecretValue } from "../model/config";
import { parameterName } from "../model/naming";
import { Tagger } from "../model/tags";
import { ssmParameter } from "./parameter";

export interface DatadogApiKeyArgs {
  readonly stack: string;
  readonly apiKey: SecretValue;
  readonly parameterKeyId: pulumi.Input<string>;
  readonly tags: Tagger;
}

export class DatadogApiKey extends pulumi.ComponentResource {
  /** Name of the parameter the nodes read. */
  readonly parameterName: string;

  constructor(name: string, args: DatadogApiKeyArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:monitoring:DatadogApiKey", name, {}, opts);
    this.parameterName = parameterName(args.stack, "shared", "datadog-api-key");
    ssmParameter(
      `${name}-api-key`,
      {
        name: this.parameterName,
        description: `webstack ${args.stack}: the Datadog API key`,
        value: args.apiKey.reveal(),
        keyId: args.parameterKeyId,
        tags: args.tags("shared", "datadog-api-key"),
      },
      { parent: this },
    );
    this.registerOutputs({});
  }
}
