#!/usr/bin/python3
"""Replica visibility delay, measured on the replica node: rows inserted on the primary at a fixed
rate (as the app does, over TLS as the app user), the replica polled every millisecond from the
same process (one clock); prints the delays' percentiles as JSON. Bounded: rate <= 500/s,
duration <= 60 s. The probe rows' notes start with the printed tag (the app user cannot delete:
the caller removes them on the primary).
Usage (on the replica node): replica-delay.py RATE SECONDS
"""
import json
import os
import sys
import threading
import time

import pymysql

rate, seconds = float(sys.argv[1]), float(sys.argv[2])
if not (0 < rate <= 500 and 0 < seconds <= 60):
    raise SystemExit("replica-delay.py: rate <= 500/s, duration <= 60 s")
env = dict(line.rstrip("\n").split("=", 1) for line in open("/etc/webstack/app.env") if "=" in line)
password = open("/etc/webstack/secrets/db-app-password").read().strip()
common = dict(user="app", password=password, database="webstack", autocommit=True)
primary = pymysql.connect(host=env["DB_PRIMARY"], port=3306,
                          ssl={"ca": env["DB_CA_FILE"], "check_hostname": True}, **common)
replica = pymysql.connect(unix_socket=env.get("DB_SOCKET", "/run/mysqld/mysqld.sock"), **common)
tag = f"delay-probe-{os.getpid()}-"
written, seen = {}, {}
done = threading.Event()


def poll():
    last = 0
    with replica.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM items")
        last = cursor.fetchone()[0]
        while not done.is_set() or len(seen) < len(written):
            cursor.execute("SELECT id FROM items WHERE id > %s AND note LIKE %s", (last, tag + "%"))
            now = time.monotonic()
            for (row_id,) in cursor.fetchall():
                seen[row_id] = now
                last = max(last, row_id)
            if done.is_set() and time.monotonic() > finished + 10:
                break
            time.sleep(0.001)


finished = float("inf")
poller = threading.Thread(target=poll)
poller.start()
start = time.monotonic()
count = int(rate * seconds)
with primary.cursor() as cursor:
    for i in range(count):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        cursor.execute("INSERT INTO items (note, written_by) VALUES (%s, 'bench')", (f"{tag}{i}",))
        written[cursor.lastrowid] = time.monotonic()
finished = time.monotonic()
done.set()
poller.join()
achieved = count / (finished - start)
delays = sorted((seen[i] - t) * 1000 for i, t in written.items() if i in seen)
pct = lambda p: round(delays[min(len(delays) - 1, int(p * len(delays)))], 2) if delays else None
print(json.dumps({"tag": tag, "writes": count, "write_rate": round(achieved, 1), "seen": len(delays),
                  "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": round(delays[-1], 2) if delays else None}))
