#!/usr/bin/python3
"""A bounded, open-loop HTTPS load from a lab namespace: a fixed request rate, capped in count and
duration, over a few keep-alive connections, as browsers make them.

Each request is due at a fixed time (start + i / rate); its latency counts from then, so a stall
delays every request queued behind it instead of hiding them. Connections open lazily, at a
worker's first request (whose latency then includes the handshake), or with --connect-first all
before the clock starts: a benchmark of steady keep-alive traffic. A request whose reused connection
turns out closed before any byte of the answer is sent again once on a new connection, as HTTP
clients do (RFC 9112, 9.3.1); it is counted under "resent". With --limited-ok, a 429 that says when
to come back (a Retry-After in seconds) and why (a JSON body with an "error") is counted under
"limited": the LB's per-client limit answering as it should. Everything else that is not the
expected status is a failure, a 429 without --limited-ok too.
With --keyed-writes S, each write carries an Idempotency-Key (issue 21) and is sent again, with the
same key, on a new connection, whenever its outcome is unknown: no answer within S seconds, a
connection that fails, or a 502/503/504; until --timeout seconds after it was due. The key makes
that safe: the app answers a write it already made with that row. Such sends count as "retried".

Prints one JSON object: sent, ok, limited, failed, resent, longest stall and percentiles (ms), the
answers by status, the first failures, the rows written (id and note), which backend answered how
often and which app release (the "release" of each answer), and for the 429s their Retry-After
values, errors and nodes and when the first was due.
Usage: load.py --host NAME --cafile FILE --rate N --duration S --count N
               [--mix root=1,read=1,write=1] [--read-ids 1,2,3] [--connections N] [--stop-file F]
               [--source ADDRESS] [--port N] [--limited-ok] [--keyed-writes S] [--connect-first]
"""
import argparse
import http.client
import json
import os
import queue
import hashlib
import random
import socket
import ssl
import threading
import time


def parse_mix(text):
    mix = {}
    for part in text.split(","):
        kind, weight = part.split("=")
        if kind not in ("root", "read", "write"):
            raise SystemExit(f"load.py: unknown request kind {kind} (root, read or write)")
        mix[kind] = int(weight)
    return mix


def rate_limited(retry_after, payload):
    """What a 429 says: {retry_after, error, node}, or None when it lacks a Retry-After in seconds
    or a JSON body with an error (a client could not tell when to come back, or why)."""
    try:
        answer = json.loads(payload)
    except ValueError:
        return None
    if not (retry_after or "").isdigit() or not isinstance(answer, dict) or not answer.get("error"):
        return None
    return {"retry_after": int(retry_after), "error": answer["error"], "node": answer.get("node")}


class Worker(threading.Thread):
    def __init__(self, args, context, jobs, results):
        super().__init__(daemon=True)
        self.args, self.context, self.jobs, self.results = args, context, jobs, results
        self.connection = None
        self.used = 0
        # Set once the first connection is open (with --connect-first) or made (lazily, without).
        self.ready = threading.Event()
        self.connect_error = None

    def connect(self):
        if self.connection is not None:
            self.connection.close()
        # From --source when given: the lab's client namespace holds more than one address.
        source = (self.args.source, 0) if self.args.source else None
        self.connection = http.client.HTTPSConnection(
            self.args.host, self.args.port, context=self.context, timeout=self.args.timeout,
            source_address=source,
        )
        self.used = 0

    def exchange(self, method, path, body, key=None):
        headers = {"Content-Type": "text/plain", **({"Idempotency-Key": key} if key else {})}
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        payload = response.read()
        self.used += 1
        retry_after = response.getheader("retry-after")
        if response.getheader("connection", "").lower() == "close":
            self.connect()
        return response.status, payload, retry_after

    def plain(self, method, path, body):
        """One send, and one more on a new connection when a kept-alive one turns out closed before
        any answer: (status, payload, retry after, whether it was sent again)."""
        reused = self.used > 0
        try:
            return (*self.exchange(method, path, body), False)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            if not reused:
                raise
            self.connect()
            return (*self.exchange(method, path, body), True)

    def wait_at_most(self, seconds):
        """The connection's timeout, for its next connect and on the socket it has."""
        self.connection.timeout = seconds
        if self.connection.sock is not None:
            self.connection.sock.settimeout(seconds)

    def keyed(self, due, method, path, body, key, result):
        """A write sent until its outcome is known (see --keyed-writes): (status, payload, retry
        after); the sends after the first counted in result["retried"] as they go."""
        payload, retry_after = b"", None
        result["retried"] = 0
        while True:
            self.wait_at_most(self.args.keyed_writes)
            try:
                status, payload, retry_after = self.exchange(method, path, body, key)
                if status not in (502, 503, 504):
                    return status, payload, retry_after
            except (OSError, http.client.HTTPException):
                if time.monotonic() - due > self.args.timeout:
                    raise
                status = None
            finally:
                self.wait_at_most(self.args.timeout)
            if time.monotonic() - due > self.args.timeout:
                return status, payload, retry_after
            result["retried"] += 1
            self.connect()

    def run(self):
        self.connect()
        if self.args.connect_first:
            try:
                self.connection.connect()
            except OSError as error:
                self.connect_error = f"connect: {type(error).__name__}: {error}"
        self.ready.set()
        while True:
            job = self.jobs.get()
            if job is None:
                return
            index, due, kind, method, path, body, expect = job
            result = {"index": index, "kind": kind, "due": due}
            resent = False
            try:
                if kind == "write" and self.args.keyed_writes:
                    # Its own resends, always with the key (never plain()'s, which has none); one
                    # key per note, as the note is one per write.
                    key = hashlib.sha256(body.encode()).hexdigest()
                    status, payload, retry_after = self.keyed(due, method, path, body, key, result)
                else:
                    status, payload, retry_after, resent = self.plain(method, path, body)
                result["status"] = status
                if status == 429 and self.args.limited_ok:
                    limited = rate_limited(retry_after, payload)
                    if limited is None:
                        result["error"] = (f"{method} {path}: HTTP 429 without a Retry-After in seconds "
                                           f"and a JSON error: {retry_after!r} {payload[:200]!r}")
                    else:
                        result["limited"] = limited
                elif status != expect:
                    result["error"] = f"{method} {path}: HTTP {status} {payload[:200]!r}"
                else:
                    answer = json.loads(payload)
                    result["node"] = answer.get("node")
                    result["release"] = answer.get("release")
                    if kind == "write":
                        result["row"] = {"id": answer["id"], "note": body}
                    if kind == "read":
                        result["read_from"] = answer.get("read_from")
            except (OSError, http.client.HTTPException, ValueError) as error:
                result["error"] = f"{method} {path}: {type(error).__name__}: {error}"
                self.connect()
            result["done"] = time.monotonic()
            result["resent"] = resent
            self.results.append(result)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--cafile", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--mix", default="root=1")
    parser.add_argument("--read-ids", default="")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=10)
    parser.add_argument("--stop-file")
    parser.add_argument("--tag", default=str(os.getpid()))
    parser.add_argument("--source", help="the local address every connection starts from")
    parser.add_argument("--port", type=int, default=443)
    parser.add_argument("--limited-ok", action="store_true",
                        help="count a 429 with a Retry-After and a JSON error as limited, not failed")
    parser.add_argument("--connect-first", action="store_true",
                        help="open every connection (TCP and TLS) before the first request is due")
    parser.add_argument("--keyed-writes", type=float, metavar="SECONDS",
                        help="writes carry an Idempotency-Key and are sent again while their outcome is unknown")
    args = parser.parse_args()
    if args.keyed_writes is not None and not 0 < args.keyed_writes < args.timeout:
        raise SystemExit("load.py: --keyed-writes must be above 0 and below --timeout")
    if args.rate <= 0 or args.rate > 1000 or args.duration > 300 or args.count > 100_000:
        raise SystemExit("load.py: bounds are rate <= 1000/s, duration <= 300 s, count <= 100000")
    mix = parse_mix(args.mix)
    read_ids = [int(i) for i in args.read_ids.split(",") if i]
    if mix.get("read") and not read_ids:
        raise SystemExit("load.py: reads need --read-ids")
    kinds = [kind for kind, weight in mix.items() for _ in range(weight)]

    context = ssl.create_default_context(cafile=args.cafile)
    jobs, results = queue.Queue(), []
    workers = [Worker(args, context, jobs, results) for _ in range(args.connections)]
    for worker in workers:
        worker.start()
    for worker in workers:
        if not worker.ready.wait(args.timeout) or worker.connect_error:
            raise SystemExit(f"load.py: --connect-first: {worker.connect_error or 'no connection in time'}")

    rng = random.Random(args.tag)
    start = time.monotonic()
    sent = 0
    while sent < args.count:
        due = start + sent / args.rate
        if due - start > args.duration or (args.stop_file and os.path.exists(args.stop_file)):
            break
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        kind = kinds[sent % len(kinds)]
        if kind == "root":
            job = ("GET", "/", None, 200)
        elif kind == "read":
            job = ("GET", f"/items/{rng.choice(read_ids)}", None, 200)
        else:
            job = ("POST", "/items", f"load-{args.tag}-{sent}", 201)
        jobs.put((sent, due, kind, *job))
        sent += 1
    for _ in workers:
        jobs.put(None)
    for worker in workers:
        worker.join(args.timeout * 2 + 5)

    latencies = sorted((r["done"] - r["due"]) * 1000 for r in results)
    failures = [r["error"] for r in results if "error" in r]
    limited = [r for r in results if "limited" in r]
    statuses = {}
    for r in results:
        if "status" in r:
            statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    nodes, releases = {}, {}
    for r in results:
        if r.get("node"):
            nodes[r["node"]] = nodes.get(r["node"], 0) + 1
        if r.get("release"):
            releases[r["release"]] = releases.get(r["release"], 0) + 1
    pct = lambda p: round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else None
    print(json.dumps({
        "sent": sent,
        "answered": len(results),
        "ok": len(results) - len(failures) - len(limited),
        "limited": len(limited),
        "failed": len(failures) + (sent - len(results)),
        "resent": sum(1 for r in results if r["resent"]),
        "retried": sum(r.get("retried", 0) for r in results),
        "seconds": round(time.monotonic() - start, 2),
        "longest_stall_ms": round(latencies[-1], 1) if latencies else None,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "statuses": statuses,
        "failures": failures[:10],
        "limited_retry_after": sorted({r["limited"]["retry_after"] for r in limited}),
        "limited_errors": sorted({r["limited"]["error"] for r in limited}),
        "limited_nodes": sorted({str(r["limited"]["node"]) for r in limited}),
        "first_limited_s": round(min(r["due"] for r in limited) - start, 2) if limited else None,
        "nodes": nodes,
        "releases": releases,
        "read_from": {
            source: sum(1 for r in results if r.get("read_from") == source)
            for source in ("replica", "primary")
        },
        "rows": sorted((r["row"] for r in results if "row" in r), key=lambda row: row["id"]),
    }))


if __name__ == "__main__":
    main()
