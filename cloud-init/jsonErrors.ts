// The errors the servers answer themselves — Nginx on the app nodes, HAProxy on the LB — in the
// app's own JSON: {"node", "role", "error"}, with a generic message and never a detail.

/** What each error status says to a client, whichever server answers it. */
export const ERROR_MESSAGES: Readonly<Record<number, string>> = {
  400: "bad request",
  401: "authentication required",
  403: "forbidden",
  404: "no such route",
  405: "method not allowed",
  407: "proxy authentication required",
  408: "request timeout",
  410: "gone",
  413: "request body too large",
  414: "request URI too long",
  425: "too early",
  429: "too many requests",
  500: "internal error",
  501: "not implemented",
  502: "the app is unavailable",
  503: "the app is unavailable",
  504: "the app did not answer in time",
};

/** The body of an error a server answers itself, naming the node as the app's answers do. */
export function jsonErrorBody(node: string, role: string, status: number): string {
  const error = ERROR_MESSAGES[status];
  if (error === undefined) throw new Error(`no JSON error message for status ${status}`);
  return JSON.stringify({ node, role, error });
}
