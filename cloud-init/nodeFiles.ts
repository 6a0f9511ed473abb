// What every node's user-data shares: the CA's place, the parameters manifest, env files.
import { ENV_FILE_VALUE } from "../model/envFile";

/** The node's own TLS pair (Nginx; the database keeps its own copy). */
export const NODE_CERT_PATH = "/etc/webstack/tls/node.crt";
export const NODE_KEY_PATH = "/etc/webstack/tls/node.key";
/** Where HAProxy finds the public certificate and its key (one PEM), whatever the certificate mode. */
export const SITE_PEM_PATH = "/etc/haproxy/certs/site.pem";
/** The one documented place of the private CA's certificate on every node. */
export const CA_CERT_PATH = "/etc/webstack/tls/ca.crt";
/** What the node's boot fetches from SSM, and where each value lands. */
export const SECRETS_MANIFEST_PATH = "/etc/webstack/secrets.json";

/** One parameter → file entry of a manifest the node tool (`webstack-aws fetch`) reads. */
export interface ManifestEntry {
  readonly parameter: string;
  readonly path: string;
  readonly mode: string;
  readonly owner: string;
  /** The parameter's version, where a new value must change the manifest (and so re-fetch it). */
  readonly version?: number;
}

/** A file only root reads (or anyone, with mode 0644 for public values). */
export function rootFile(parameter: string, path: string, mode = "0600"): ManifestEntry {
  return { parameter, path, mode, owner: "root:root" };
}

/** KEY=value lines a shell sources; values are plain words by construction, never secrets. */
export function renderEnvFile(values: Readonly<Record<string, string>>): string {
  return Object.entries(values)
    .map(([key, value]) => {
      if (!ENV_FILE_VALUE.test(value))
        throw new Error(`${key}: ${JSON.stringify(value)} is not a plain word`);
      return `${key}=${value}\n`;
    })
    .join("");
}
