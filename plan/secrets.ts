// Secret values in a recorded plan: Pulumi's wire form, shown redacted or revealed.
import { specialSecretSig, specialSigKey } from "@pulumi/pulumi/runtime/rpc";

// Pulumi's wire form of a secret is internal: were it gone, no secret would be recognised and every
// one would print. Stop instead.
if (!specialSigKey || !specialSecretSig || typeof specialSigKey !== "string")
  throw new Error(
    "@pulumi/pulumi/runtime/rpc no longer exports specialSigKey and specialSecretSig: the plan " +
      "cannot tell secrets apart and stops (keep @pulumi/pulumi at the version package.json pins)",
  );

export const REDACTED = "[secret]";

export interface WrappedSecret {
  readonly [specialSigKey]: typeof specialSecretSig;
  readonly value: unknown;
}

export function isWrappedSecret(value: unknown): value is WrappedSecret {
  return (
    typeof value === "object" &&
    value !== null &&
    (value as Record<string, unknown>)[specialSigKey] === specialSecretSig
  );
}

export function wrapSecret(value: unknown): WrappedSecret {
  return { [specialSigKey]: specialSecretSig, value } as WrappedSecret;
}

function mapSecrets(value: unknown, onSecret: (secret: WrappedSecret) => unknown): unknown {
  if (isWrappedSecret(value)) return onSecret(value);
  if (Array.isArray(value)) return value.map((v) => mapSecrets(v, onSecret));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, mapSecrets(v, onSecret)]));
  }
  return value;
}

/** A copy with every secret replaced by "[secret]": what may be printed or stored. */
export function redactSecrets<T>(value: T): T {
  return mapSecrets(value, () => REDACTED) as T;
}

/** A copy with every secret unwrapped to its value: for in-process consumers (tests, the lab). */
export function revealSecrets<T>(value: T): T {
  return mapSecrets(value, (secret) => revealSecrets(secret.value)) as T;
}

/** Every secret value (as text) found anywhere in `value`. */
export function collectSecrets(value: unknown): string[] {
  const found: string[] = [];
  mapSecrets(value, (secret) => {
    const inner = revealSecrets(secret.value);
    found.push(typeof inner === "string" ? inner : JSON.stringify(inner));
    return undefined;
  });
  return found;
}
