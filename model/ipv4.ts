// IPv4 arithmetic on dotted quads and CIDR blocks: the one place addresses are computed.

/** "10.40.0.10" → 170393610. */
export function ipv4ToInt(address: string): number {
  return address.split(".").reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

/** 170393610 → "10.40.0.10". */
export function intToIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join(".");
}

/** A CIDR block's network address and prefix length: "10.40.0.0/16" → { base, prefix: 16 }. */
export function splitCidr(cidr: string): { readonly base: string; readonly prefix: number } {
  const [base, prefix] = cidr.split("/");
  return { base, prefix: Number(prefix) };
}

/** The `index`-th of the `2 ** extraBits` equal parts of `cidr`. */
export function subnetOf(cidr: string, extraBits: number, index: number): string {
  const { base, prefix: outer } = splitCidr(cidr);
  const prefix = outer + extraBits;
  return `${intToIpv4(ipv4ToInt(base) + index * 2 ** (32 - prefix))}/${prefix}`;
}

/** The address `offset` hosts above a block's network address. */
export function hostOf(cidr: string, offset: number): string {
  return intToIpv4(ipv4ToInt(splitCidr(cidr).base) + offset);
}

/**
 * A strictly written CIDR ("a.b.c.d/n", no leading zeros, octets ≤ 255), or undefined. The network
 * address is `address` with the host bits cleared.
 */
export function parseCidr(
  text: string,
): { readonly address: number; readonly prefix: number; readonly network: number } | undefined {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  if (!match) return undefined;
  const octets = match.slice(1, 5);
  if (octets.some((o) => Number(o) > 255 || String(Number(o)) !== o)) return undefined;
  const prefix = Number(match[5]);
  if (prefix > 32) return undefined;
  const address = ipv4ToInt(octets.join("."));
  const size = 2 ** (32 - prefix);
  return { address, prefix, network: address - (address % size) };
}

/** Whether an address lies in one of RFC 1918's private ranges. */
export function isPrivateIpv4(address: number): boolean {
  const [a, b] = intToIpv4(address).split(".").map(Number);
  return a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168);
}
