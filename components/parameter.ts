// One SSM parameter of the stack: encrypted with the stack's key when it holds a secret.
import * as pulumi from "@pulumi/pulumi";
import * as aws from "@pulumi/aws";

export interface ParameterArgs {
  /** The parameter's name, under the path convention (see model/naming.ts). */
  readonly name: string;
  readonly description: string;
  readonly value: pulumi.Input<string>;
  /**
   * KMS key that encrypts it: the parameter is then a SecureString and its value a Pulumi secret.
   * Without one it is a plain String, for public values only.
   */
  readonly keyId?: pulumi.Input<string>;
  readonly tags: Record<string, string>;
}

export function ssmParameter(
  resourceName: string,
  args: ParameterArgs,
  opts: pulumi.CustomResourceOptions,
): aws.ssm.Parameter {
  const secret = args.keyId !== undefined;
  return new aws.ssm.Parameter(
    resourceName,
    {
      name: args.name,
      description: args.description,
      type: secret ? "SecureString" : "String",
      keyId: args.keyId,
      value: secret ? pulumi.secret(args.value) : args.value,
      tier: "Standard",
      tags: args.tags,
    },
    opts,
  );
}
