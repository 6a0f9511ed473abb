// The app tier's secrets: generated DB passwords and the nodes' TLS keys, as SSM parameters per node.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { AppNodeParameter, appNodeParameters, parameterName } from "../model/naming";
import { AppNodeParameterNames } from "../cloud-init/appNode";
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
  /**
   * The app nodes run a database server of their own (`appNodesHoldData`): without one (`rds`), no
   * replication or monitoring password is made. @default true
   */
  readonly holdsData?: boolean;
  /** KMS key id that encrypts the SecureString parameters. */
  readonly parameterKeyId: pulumi.Input<string>;
  readonly tags: Tagger;
}

/** Database users whose passwords are generated; `migrate` runs a release's command (issue 18). */
const DB_USERS = ["app", "replication", "monitor", "migrate"] as const;
type DbUser = (typeof DB_USERS)[number];

/** What each parameter holds: a password, or the node's certificate or key. */
const PARAMETERS: Readonly<
  Record<AppNodeParameter, { readonly user?: DbUser; readonly what: string }>
> = {
  "db-app-password": { user: "app", what: "password of the app database user" },
  "db-replication-password": { user: "replication", what: "password of the replication user" },
  "db-monitor-password": { user: "monitor", what: "password of the monitoring user" },
  "db-migrate-password": {
    user: "migrate",
    what: "password of the release command's database user",
  },
  "tls-key": { what: "private key of the node's TLS certificate" },
  "tls-cert": { what: "the node's TLS certificate (public)" },
};

/**
 * Copies per node rather than one shared parameter: a node's role reads only its own path (and
 * `shared/`, which the LB may read too), so database passwords never reach the LB.
 */
export class AppSecrets extends pulumi.ComponentResource {
  /** Parameter names per node: plain strings, safe for user-data. */
  readonly parameterNames: Readonly<Partial<Record<NodeName, AppNodeParameterNames>>>;

  constructor(name: string, args: AppSecretsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("webstack:secrets:AppSecrets", name, {}, opts);
    const child = { parent: this };
    const keys = appNodeParameters(args.holdsData ?? true);
    const users = DB_USERS.filter((user) => keys.some((key) => PARAMETERS[key].user === user));

    // Letters and digits only, 32 of them (~190 bits): never needs escaping in SQL or shell.
    const passwords = new Map(
      users.map((user) => [
        user,
        new random.RandomPassword(
          `${name}-db-${user}`,
          { length: 32, special: false, minLower: 4, minUpper: 4, minNumeric: 4 },
          child,
        ).result,
      ]),
    );

    const names: Partial<Record<NodeName, AppNodeParameterNames>> = {};
    for (const node of args.nodes) {
      const cert = args.certificates[node.name];
      if (!cert) throw new Error(`AppSecrets: no certificate for ${node.name}`);
      const valueOf = (key: AppNodeParameter): pulumi.Output<string> => {
        const user = PARAMETERS[key].user;
        if (user) return passwords.get(user)!;
        return key === "tls-key" ? cert.keyPem : cert.certPem;
      };
      const nodeNames: Partial<Record<AppNodeParameter, string>> = {};
      for (const key of keys) {
        const parameter = parameterName(args.stack, node.name, key);
        ssmParameter(
          `${name}-${node.name}-${key}`,
          {
            name: parameter,
            description: `webstack ${args.stack} ${node.name}: ${PARAMETERS[key].what}`,
            value: valueOf(key),
            // Everything but the certificate is secret.
            keyId: key === "tls-cert" ? undefined : args.parameterKeyId,
            tags: args.tags(node.role, `${node.name}-${key}`),
          },
          child,
        );
        nodeNames[key] = parameter;
      }
      names[node.name] = nodeNames as AppNodeParameterNames;
    }
    this.parameterNames = names;
    this.registerOutputs({});
  }
}
