#!/usr/bin/python3
"""Replica visibility delay, measured on the replica node: rows inserted on the primary at a fixed
rate (as the app does, over TLS as the app user) by WRITERS processes at once (each its own
connection and its share of the rate, as app workers write; one Python process could not keep
1000 commits/s on time), the replica polled every millisecond by this process; one clock
(CLOCK_MONOTONIC, shared by the processes). A row's delay runs from its INSERT's answer (committed on
the primary) to the first poll that sees it. Prints the delays' percentiles as JSON, with the rate
the writers reached and the primary's commit time (an INSERT's round trip from the replica node:
the network, TLS and the primary's durable commit). Bounded: rate <= 2000/s, duration <= 60 s,
writers <= 16. The probe rows' notes start with the printed tag (the app user cannot delete: the
caller removes them on the primary).

The replica commits in the primary's order, which is not the order of the ids (writers take ids,
then commit, side by side): the poll looks back WINDOW ids below the highest it has seen, far more
than the writers can have in flight, and a row it never saw counts under "writes" but not "seen".
Usage (on the replica node): replica-delay.py RATE SECONDS [WRITERS]
"""
import json
import multiprocessing
import os
import sys
import threading
import time

import pymysql

WINDOW = 64

rate, seconds = float(sys.argv[1]), float(sys.argv[2])
writers = int(sys.argv[3]) if len(sys.argv) > 3 else 4
if not (0 < rate <= 2000 and 0 < seconds <= 60 and 1 <= writers <= 16):
    raise SystemExit("replica-delay.py: rate <= 2000/s, duration <= 60 s, 1 to 16 writers")
env = dict(line.rstrip("\n").split("=", 1) for line in open("/etc/webstack/app.env") if "=" in line)
password = open("/etc/webstack/secrets/db-app-password").read().strip()
common = dict(user="app", password=password, database="webstack", autocommit=True)
tag = f"delay-probe-{os.getpid()}-"
count = int(rate * seconds)


def write(k, start, out):
    """Writer k: rows k, k + writers, … each at its due time; sends [(id, committed at, sent at)]."""
    primary = pymysql.connect(host=env["DB_PRIMARY"], port=3306,
                              ssl={"ca": env["DB_CA_FILE"], "check_hostname": True}, **common)
    done = []
    with primary.cursor() as cursor:
        for i in range(k, count, writers):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = time.monotonic()
            cursor.execute("INSERT INTO items (note, written_by) VALUES (%s, 'bench')", (f"{tag}{i}",))
            done.append((cursor.lastrowid, time.monotonic(), sent))
    out.send(done)


# The writers first: a process forked while it runs threads could inherit a lock another held.
fork = multiprocessing.get_context("fork")
start = time.monotonic() + 1.0
pipes, processes = [], []
for k in range(writers):
    receive, send = fork.Pipe(duplex=False)
    process = fork.Process(target=write, args=(k, start, send))
    process.start()
    pipes.append(receive)
    processes.append(process)

replica = pymysql.connect(unix_socket=env.get("DB_SOCKET", "/run/mysqld/mysqld.sock"), **common)
seen = {}
stop = threading.Event()


def poll():
    with replica.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM items")
        top = cursor.fetchone()[0]
        while not stop.is_set():
            cursor.execute("SELECT id FROM items WHERE id > %s AND note LIKE %s",
                           (max(0, top - WINDOW), tag + "%"))
            now = time.monotonic()
            for (row_id,) in cursor.fetchall():
                if row_id not in seen:
                    seen[row_id] = now
                    top = max(top, row_id)
            time.sleep(0.001)


poller = threading.Thread(target=poll)
poller.start()
written, commits = {}, []
for receive in pipes:
    for row_id, committed, sent in receive.recv():
        written[row_id] = committed
        commits.append((committed - sent) * 1000)
for process in processes:
    process.join()
finished = max(written.values())
# The last rows' chance to arrive, bounded.
deadline = time.monotonic() + 10
while len([i for i in written if i in seen]) < len(written) and time.monotonic() < deadline:
    time.sleep(0.01)
stop.set()
poller.join()
achieved = count / (finished - start)
delays = sorted((seen[i] - t) * 1000 for i, t in written.items() if i in seen)
commits.sort()


def pct(values, p):
    return round(values[min(len(values) - 1, int(p * len(values)))], 2) if values else None


print(json.dumps({"tag": tag, "writes": count, "writers": writers, "write_rate": round(achieved, 1),
                  "seen": len(delays), "p50_ms": pct(delays, 0.5), "p99_ms": pct(delays, 0.99),
                  "max_ms": round(delays[-1], 2) if delays else None,
                  "commit_p50_ms": pct(commits, 0.5), "commit_p99_ms": pct(commits, 0.99)}))
