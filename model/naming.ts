// Names other systems see (SSM paths, log groups): one convention, derived from project and stack.
import { NodeName } from "./topology";

/** The Pulumi project's name: also its config namespace, the SSM and log-group prefix, a tag. */
export const PROJECT = "webstack";

/** CloudWatch namespace of the custom metrics (log metric filters and the nodes' collector). */
export const METRIC_NAMESPACE = "Webstack";

/** Whose parameters: one node's, or the ones every node may read. */
export type ParameterScope = NodeName | "shared";

/** `/webstack/<stack>/<scope>`: the SSM path a node's secrets live under. */
export function parameterPath(stack: string, scope: ParameterScope): string {
  return `/${PROJECT}/${stack}/${scope}`;
}

/** `/webstack/<stack>/<parts…>`: a CloudWatch log group name ops can find without the stack's state. */
export function logGroupName(stack: string, ...parts: string[]): string {
  return `/${PROJECT}/${stack}/${parts.join("/")}`;
}

/**
 * `/webstack/<stack>/sessions`: the Session Manager sessions on the stack's nodes, one stream per
 * session (named by its session id), whichever node it reached.
 */
export function sessionLogGroupName(stack: string): string {
  return logGroupName(stack, "sessions");
}

/**
 * `webstack-<stack>-shell`: the stack's Session Manager document (`--document-name`), the shell
 * preferences that log to `sessionLogGroupName`; per stack, so no account-wide setting is taken.
 */
export function sessionDocumentName(stack: string): string {
  return `${PROJECT}-${stack}-shell`;
}

/** What an app node reads from its own SSM path at boot. */
export const APP_NODE_PARAMETERS = [
  "db-app-password",
  "db-replication-password",
  "db-monitor-password",
  "db-migrate-password",
  "tls-key",
  "tls-cert",
] as const;
export type AppNodeParameter = (typeof APP_NODE_PARAMETERS)[number];

/**
 * What only an app node with a database server of its own reads: none exist with `database: rds`
 * (RDS replicates to its standby itself, CloudWatch watches it).
 */
export const SERVER_ONLY_PARAMETERS = [
  "db-replication-password",
  "db-monitor-password",
] as const satisfies readonly AppNodeParameter[];
export type ServerOnlyParameter = (typeof SERVER_ONLY_PARAMETERS)[number];

/** The parameters an app node has: all, or without SERVER_ONLY_PARAMETERS when it holds no data. */
export function appNodeParameters(holdsData: boolean): AppNodeParameter[] {
  return APP_NODE_PARAMETERS.filter(
    (key) => holdsData || !(SERVER_ONLY_PARAMETERS as readonly string[]).includes(key),
  );
}

/** The kinds of node that share one image: the LB, and the app nodes (s1, s2, …). */
export type ImageKind = "lb" | "app";

/**
 * `/webstack/<stack>/images/<kind>`: the image a kind of node runs, as the stack recorded it; outside
 * every node's paths, so no node's role reads it.
 */
export function imageRecordName(stack: string, kind: ImageKind): string {
  return `/${PROJECT}/${stack}/images/${kind}`;
}

/** `/webstack/<stack>/<scope>/<key>`: one parameter's name. */
export function parameterName(stack: string, scope: ParameterScope, key: string): string {
  return `${parameterPath(stack, scope)}/${key}`;
}

/** `/webstack/<stack>/<node>/bundle`: Pulumi's pointer to the node's current bundle (String, JSON). */
export function bundlePointerName(stack: string, node: NodeName): string {
  return parameterName(stack, node, "bundle");
}

/** `/webstack/<stack>/<node>/bundle-status`: what the node reached with its last bundle (it writes it). */
export function bundleStatusName(stack: string, node: NodeName): string {
  return parameterName(stack, node, "bundle-status");
}

/** `bundles/<node>/`: the bucket prefix of a node's bundles; only that node's role reads below it. */
export function bundlePrefix(node: NodeName): string {
  return `bundles/${node}/`;
}

/** `releases/`: the bucket prefix of the app's releases; only the app nodes' roles read below it. */
export const RELEASE_PREFIX = "releases/";

/** `releases/<id>.tar.gz`: a release's object, named by the sha256 of its bytes. */
export function releaseKey(id: string): string {
  return `${RELEASE_PREFIX}${id}.tar.gz`;
}

/** `/webstack/<stack>/app-secrets`: the app's secret variables, which only the app nodes read. */
export function appSecretsPath(stack: string): string {
  return `/${PROJECT}/${stack}/app-secrets`;
}

/** `/webstack/<stack>/app-secrets/<NAME>`: one secret variable of the app. */
export function appSecretName(stack: string, name: string): string {
  return `${appSecretsPath(stack)}/${name}`;
}

/**
 * `/webstack/<stack>/<primary>/release-command`: how the release command went on the primary
 * (it writes it; the replica waits for it before taking the release).
 */
export function releaseCommandStatusName(stack: string, primary: NodeName): string {
  return parameterName(stack, primary, "release-command");
}
