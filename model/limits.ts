// How long a request may take and how large it may be, at each layer that handles it: HAProxy,
// Nginx, Gunicorn and the app. One configured value sets every layer, innermost first, so the
// layer closest to the cause gives up first and answers in JSON naming the node.

/** The smallest configurable LB server timeout: the app keeps two seconds of it for its database. */
export const MIN_LB_SERVER_TIMEOUT_SECONDS = 5;

/** The seconds each layer gives one request. */
export interface RequestTimeouts {
  /** HAProxy's `timeout server` and `timeout client`: the configured value. */
  readonly lbServerSeconds: number;
  /** Nginx's `proxy_read_timeout`: one second earlier, so Nginx's JSON 504 reaches the client. */
  readonly nginxReadSeconds: number;
  /**
   * Gunicorn's worker `timeout`: a sync worker silent this long (its request included) is killed
   * and replaced; by then HAProxy has given up on the request.
   */
  readonly gunicornWorkerSeconds: number;
  /**
   * The longest the app waits for its primary database (a statement, a write waiting out a
   * restart): two seconds before HAProxy gives up, so the app answers its own 503.
   */
  readonly appDatabaseSeconds: number;
}

export function requestTimeouts(lbServerSeconds: number): RequestTimeouts {
  if (!Number.isInteger(lbServerSeconds) || lbServerSeconds < MIN_LB_SERVER_TIMEOUT_SECONDS) {
    throw new Error(
      `an LB server timeout is a whole number of seconds from ${MIN_LB_SERVER_TIMEOUT_SECONDS}: ${lbServerSeconds}`,
    );
  }
  return {
    lbServerSeconds,
    nginxReadSeconds: lbServerSeconds - 1,
    gunicornWorkerSeconds: lbServerSeconds,
    appDatabaseSeconds: lbServerSeconds - 2,
  };
}

/** What one request may take and carry, as every layer is configured. */
export interface RequestLimits {
  readonly timeouts: RequestTimeouts;
  /** The largest request body Nginx accepts (`client_max_body_size`); larger gets a JSON 413. */
  readonly maxBodyMiB: number;
}
