// The stack's configuration as Pulumi holds it, read once and handed to the pure parser.
import * as pulumi from "@pulumi/pulumi";
import { WebstackConfig, parseConfig } from "../model/config";

/** Reads the stack's Pulumi config once; the only place that touches pulumi.Config. */
export function loadConfig(): WebstackConfig {
  const raw = pulumi.runtime.allConfig();
  // isConfigSecret is marked internal; without it every secret key is taken as encrypted.
  const isSecret = (pulumi.runtime as { isConfigSecret?: (key: string) => boolean }).isConfigSecret;
  const secretKeys = isSecret
    ? new Set(Object.keys(raw).filter((key) => isSecret(key)))
    : undefined;
  return parseConfig(raw, { secretKeys });
}
