// EC2 takes at most 16 KB of user-data; a bootstrap aims at 4 KB as sent: past that it ships gzipped
// (cloud-init unpacks it), so a readable document stays plain where it fits.
import * as zlib from "zlib";

export const USER_DATA_LIMIT_BYTES = 16 * 1024;
/** What every node's bootstrap should take as sent (issue 17): its bundle carries the rest. */
export const USER_DATA_GOAL_BYTES = 4 * 1024;
export const GZIP_ABOVE_BYTES = USER_DATA_GOAL_BYTES;

export type EncodedUserData = { userData: string } | { userDataBase64: string };

export function encodeUserData(document: string): EncodedUserData {
  if (Buffer.byteLength(document, "utf8") <= GZIP_ABOVE_BYTES) return { userData: document };
  const gzipped = zlib.gzipSync(Buffer.from(document, "utf8"), { level: 9 });
  if (gzipped.length > USER_DATA_LIMIT_BYTES) {
    throw new Error(
      `user-data is ${gzipped.length} bytes even gzipped; EC2 allows ${USER_DATA_LIMIT_BYTES}`,
    );
  }
  return { userDataBase64: gzipped.toString("base64") };
}

/** The plain document from an instance's inputs, whichever way it was shipped. */
export function decodeUserData(inputs: { userData?: unknown; userDataBase64?: unknown }): string {
  if (typeof inputs.userData === "string") return inputs.userData;
  if (typeof inputs.userDataBase64 === "string") {
    return zlib.gunzipSync(Buffer.from(inputs.userDataBase64, "base64")).toString("utf8");
  }
  throw new Error("no user-data");
}

/** Bytes EC2 counts: the document, or the gzipped bytes behind the base64. */
export function shippedSize(encoded: EncodedUserData): number {
  return "userData" in encoded
    ? Buffer.byteLength(encoded.userData, "utf8")
    : Buffer.from(encoded.userDataBase64, "base64").length;
}
