// The Galera arbitrator's identity on the LB (`database: galera`, an even number of app nodes): its
// certificate from the private CA and its key, as SSM parameters under the LB's own path (the LB's
// role reads nothing else).
import * as pulumi from "@pulumi/pulumi";
import { parameterName } from "../model/naming";
import { NodeSpec } from "../model/topology";
import { Tagger } from "../model/tags";
import { NodeCertificate } from "./pki";
import { ssmParameter } from "./parameter";

export interface ArbitratorTlsArgs {
  readonly stack: string;
  /** The LB, where garbd runs. */
  readonly node: NodeSpec;
  readonly certificate: NodeCertificate;
  /** KMS key that encrypts the key's SecureString. */
  readonly parameterKeyId: pulumi.Input<string>;
  readonly tags: Tagger;
}

/** The parameters' names: plain strings, safe for a bundle. */
export interface ArbitratorParameters {
  readonly cert: string;
  readonly key: string;
}

export class ArbitratorTls extends pulumi.ComponentResource {
  readonly parameters: ArbitratorParameters;

  constructor(name: string, args: ArbitratorTlsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:secrets:ArbitratorTls", name, {}, opts);
    const child = { parent: this };
    const node = args.node.name;
    const parameters = {
      cert: parameterName(args.stack, node, "galera-tls-cert"),
      key: parameterName(args.stack, node, "galera-tls-key"),
    };
    ssmParameter(
      `${name}-cert`,
      {
        name: parameters.cert,
        description: `webstack ${args.stack} ${node}: the Galera arbitrator's TLS certificate (public)`,
        value: args.certificate.certPem,
        tags: args.tags(args.node.role, `${node}-galera-tls-cert`),
      },
      child,
    );
    ssmParameter(
      `${name}-key`,
      {
        name: parameters.key,
        description: `webstack ${args.stack} ${node}: private key of the Galera arbitrator's TLS certificate`,
        value: args.certificate.keyPem,
        keyId: args.parameterKeyId,
        tags: args.tags(args.node.role, `${node}-galera-tls-key`),
      },
      child,
    );
    this.parameters = parameters;
    this.registerOutputs({});
  }
}
