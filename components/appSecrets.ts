// The app tier's secrets: generated DB passwords and the nodes' TLS keys, as SSM parameters per node.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { APP_NODE_PARAMETERS, AppNodeParameter, parameterName } from "../model/naming";
import { NodeName, NodeSpec } from "../model/topology";
import { Tagger } from "../model/tags";
import { NodeCertificate } from "./pki";
import { ssmParameter } from "./parameter";

export interface AppSecretsArgs {
  readonly stack: string;
  /** The app nodes; each gets its own copy of every parameter under its own path. */
  readonly nodes: readonly NodeSpec[];
  /** Each app node's certificate (the key is secret). */
  readonly certificates: Readonly<Partial<Record<NodeName, NodeCertificate>>>;
  /** KMS key id that encrypts the SecureString parameters. */
  readonly parameterKeyId: pulumi.Input<string>;
  readonly tags: Tagger;
}

/** Database users whose passwords are generated; `migrate` runs a release's command (issue 18). */
const DB_USERS = ["app", "replication", "monitor", "migrate"] as const;

/**
 * Copies per node rather than one shared parameter: a node's role reads only its own path (and
 * `shared/`, which the LB may read too), so database passwords never reach the LB.
 */
export class AppSecrets extends pulumi.ComponentResource {
  /** Parameter names per node: plain strings, safe for user-data. */
  readonly parameterNames: Readonly<Partial<Record<NodeName, Record<AppNodeParameter, string>>>>;

  constructor(name: string, args: AppSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:secrets:AppSecrets", name, {}, opts);
    const child = { parent: this };

    // Letters and digits only, 32 of them (~190 bits): never needs escaping in SQL or shell.
    const passwords = Object.fromEntries(
      DB_USERS.map((user) => [
        user,
        new random.RandomPassword(
          `${name}-db-${user}`,
          { length: 32, special: false, minLower: 4, minUpper: 4, minNumeric: 4 },
          child,
        ).result,
      ]),
    ) as Record<(typeof DB_USERS)[number], pulumi.Output<string>>;

    const names: Partial<Record<NodeName, Record<AppNodeParameter, string>>> = {};
    for (const node of args.nodes) {
      const cert = args.certificates[node.name];
      if (!cert) throw new Error(`AppSecrets: no certificate for ${node.name}`);
      const values: Record<
        AppNodeParameter,
        { value: pulumi.Output<string>; secret: boolean; what: string }
      > = {
        "db-app-password": {
          value: passwords.app,
          secret: true,
          what: "password of the app database user",
        },
        "db-replication-password": {
          value: passwords.replication,
          secret: true,
          what: "password of the replication user",
        },
        "db-monitor-password": {
          value: passwords.monitor,
          secret: true,
          what: "password of the monitoring user",
        },
        "db-migrate-password": {
          value: passwords.migrate,
          secret: true,
          what: "password of the release command's database user",
        },
        "tls-key": {
          value: cert.keyPem,
          secret: true,
          what: "private key of the node's TLS certificate",
        },
        "tls-cert": {
          value: cert.certPem,
          secret: false,
          what: "the node's TLS certificate (public)",
        },
      };
      names[node.name] = {} as Record<AppNodeParameter, string>;
      for (const key of APP_NODE_PARAMETERS) {
        const parameter = parameterName(args.stack, node.name, key);
        const { value, secret, what } = values[key];
        ssmParameter(
          `${name}-${node.name}-${key}`,
          {
            name: parameter,
            description: `webstack ${args.stack} ${node.name}: ${what}`,
            value,
            keyId: secret ? args.parameterKeyId : undefined,
            tags: args.tags(node.role, `${node.name}-${key}`),
          },
          child,
        );
        names[node.name]![key] = parameter;
      }
    }
    this.parameterNames = names;
    this.registerOutputs({});
  }
}
