#!/usr/bin/python3
"""The AWS calls a node makes at boot and on timers, with its instance role as the only credential.

The region comes from instance metadata (IMDSv2), because the SDK does not read it from there.
Secret values are never printed, but for db-admin-options' into the pipe a database client reads.
Usage: webstack-aws fetch MANIFEST.json [--reload UNIT]     parameters into files, as the manifest says;
                                                            then UNIT reloaded if it is running
       webstack-aws put NAME FILE KMS_KEY_ID                one file stored as a SecureString parameter
       webstack-aws acm-export ARN PASSPHRASE_FILE OUT_DIR  an exportable ACM certificate into
                                                            cert.pem, chain.pem, key.enc.pem
       webstack-aws collect loadbalancer|primary|replica|member|client NODE [DB_CLIENT]
                    [--certificate NAME=PEM]... [--age METRIC=STATE.json:FIELD]...
                                                            what logs cannot say, as metrics: HAProxy's
                                                            backends and the log lines it dropped, or
                                                            the database (a Galera member's cluster
                                                            too; none on a client: an app node whose
                                                            database is RDS's), a pending reboot,
                                                            each certificate's days left, each state
                                                            file's age (issue 20: the backups')
       webstack-aws boot-status NODE                        cloud-init's result, as a metric
       webstack-aws rds-ca URL PATH CA_IDENTIFIER           Amazon's RDS CA bundle (`database: rds`), over
                                                            HTTPS checked against the node's public CAs,
                                                            into PATH if it holds certificates only,
                                                            each one openssl reads, among them the root
                                                            of CA_IDENTIFIER (rds-ca-rsa2048-g1) for
                                                            the node's region
       webstack-aws db-admin-options SECRET_ID              the RDS master user's [client] options from
                                                            its RDS-managed secret, for the database
                                                            client to read through a pipe; never on a
                                                            terminal, never on disk
       webstack-aws apply [--bundle PATH]                   this node's bundle (issue 17): verified, its missing
                                                            packages installed, written, validated, its
                                                            tmpfiles.d rules applied, acted on,
                                                            health-checked, reported;
                                                            PATH: one already verified (the bootstrap's)
       webstack-aws watch                                   apply, again every 30 s while its bundle is applied
                                                            or it waits for another node (the clients made
                                                            once), until a look that applies or refuses, the
                                                            tool on disk replaced, or an hour: the timer
                                                            starts it again 30 s later; a bundle it refused
                                                            is tried again after 1, 2, 4, 8 min, then every
                                                            15 min, while the pointer stays on it
       webstack-aws preflight RELEASE_DIR APP_MODULE [PROPERTY...]
                                                            a throwaway Gunicorn of a release, in the app's
                                                            sandbox (the bundle's app.sandbox; none given: the
                                                            tool's APP_SANDBOX), must answer GET /healthz
                                                            (issue 18; apply runs it)

Packages: a bundle names the Debian packages its files need (its node's bootstrap list); apply installs
any that is missing (apt-get) before it prepares a release or writes a file, so a package added after a
node was created reaches it too (the app nodes ignore new user-data).

Releases (issue 18): a bundle's `app` is a release of the team's WSGI app, an archive in S3 named by its
sha256, and the app's module.path:callable. apply unpacks it into /srv/webstack/releases/<id>/ with its
venv; the primary runs the release command once per release (webstack-release-command RELEASE_DIR
COMMAND) and says so in an SSM parameter the replica waits for; a preflight Gunicorn of it (serving
that callable) must answer; then /srv/webstack/current moves to it, Gunicorn reloads, every worker must
run in it and the health check pass, or current moves back.
"""
import contextlib
import csv
import datetime
import fcntl
import grp
import hashlib
import http.client
import io
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
import zlib

import boto3
import boto3.s3.transfer
import botocore.exceptions

IMDS = os.environ.get("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://169.254.169.254/").rstrip("/")
ATTEMPTS = 8  # bounded: about four minutes in all, while NAT and endpoints come up


def log(message):
    print(f"webstack-aws: {message}", file=sys.stderr, flush=True)


def region():
    """The instance's region, read with an IMDSv2 session token."""
    token_request = urllib.request.Request(
        f"{IMDS}/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
    )
    with urllib.request.urlopen(token_request, timeout=5) as response:
        token = response.read().decode()
    region_request = urllib.request.Request(
        f"{IMDS}/latest/meta-data/placement/region",
        headers={"X-aws-ec2-metadata-token": token},
    )
    with urllib.request.urlopen(region_request, timeout=5) as response:
        return response.read().decode().strip()


def fetch(client, names):
    """Decrypted values by name; fails naming every parameter that does not exist."""
    values = {}
    for start in range(0, len(names), 10):  # GetParameters takes ten names at a time
        batch = names[start : start + 10]
        result = client.get_parameters(Names=batch, WithDecryption=True)
        if result.get("InvalidParameters"):
            raise LookupError("missing parameters: " + ", ".join(sorted(result["InvalidParameters"])))
        values.update({p["Name"]: p["Value"] for p in result["Parameters"]})
    return values


def install(path, data, uid, gid, mode):
    """Writes bytes atomically: a temporary file with the final owner and mode, then a rename."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".fetch-")
    try:
        os.fchmod(fd, mode)
        # Only a change of owner is asked for (a sandbox may forbid the call itself).
        created = os.fstat(fd)
        if (created.st_uid, created.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.rename(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write(path, value, owner, group, mode):
    """Text, with its owner and group by name, written atomically."""
    install(path, value.encode(), pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid, mode)


RETRYABLE_CODES = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "InternalServerError",
                   "InternalFailure", "ServiceUnavailable", "RequestTimeout"}


def retryable(error):
    """Connection trouble and throttling pass; a refusal (access denied, bad input) never does."""
    if isinstance(error, botocore.exceptions.ClientError):
        return error.response.get("Error", {}).get("Code") in RETRYABLE_CODES
    return isinstance(error, (OSError, botocore.exceptions.BotoCoreError))


def with_retries(action, what):
    delay = 2
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return action()
        except (OSError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
            if attempt == ATTEMPTS or not retryable(error):
                raise
            log(f"{what} failed ({type(error).__name__}), attempt {attempt} of {ATTEMPTS}; retrying in {delay} s")
            time.sleep(delay)
            delay = min(delay * 2, 60)


def fetch_command(manifest_path, client, reload_unit=None, run=subprocess.run):
    """Entries: parameter, path, mode, owner; any other key (an app secret's `version`) only makes
    the manifest change when the value does. reload_unit: reloaded after, if it runs (at first boot
    the app does not yet)."""
    with open(manifest_path) as handle:
        manifest = json.load(handle)
    names = sorted({entry["parameter"] for entry in manifest})
    try:
        values = with_retries(lambda: fetch(client, names), "GetParameters")
    except LookupError as error:
        log(str(error))
        return 1
    for entry in manifest:
        owner, _, group = entry.get("owner", "root:root").partition(":")
        write(entry["path"], values[entry["parameter"]], owner, group or owner, int(entry["mode"], 8))
    log(f"wrote {len(manifest)} files from {len(names)} parameters")
    if reload_unit and capture(run, ["systemctl", "is-active", "--quiet", reload_unit])[0] == 0:
        code, output = capture(run, ["systemctl", "reload", reload_unit])
        if code != 0:
            log(f"systemctl reload {reload_unit} exited {code}: {output.strip()}")
            return 1
        log(f"reloaded {reload_unit}")
    return 0


def put_command(name, path, key_id, client):
    with open(path) as handle:
        value = handle.read()
    with_retries(
        lambda: client.put_parameter(Name=name, Value=value, Type="SecureString", KeyId=key_id, Overwrite=True),
        "PutParameter",
    )
    log(f"stored {name}")
    return 0


def acm_export_command(arn, passphrase_path, out_dir, client):
    with open(passphrase_path, "rb") as handle:
        passphrase = handle.read().strip()
    result = with_retries(
        lambda: client.export_certificate(CertificateArn=arn, Passphrase=passphrase), "ExportCertificate"
    )
    write(os.path.join(out_dir, "cert.pem"), result["Certificate"], "root", "root", 0o644)
    write(os.path.join(out_dir, "chain.pem"), result["CertificateChain"], "root", "root", 0o644)
    # The key comes encrypted with the passphrase; it stays encrypted on disk.
    write(os.path.join(out_dir, "key.enc.pem"), result["PrivateKey"], "root", "root", 0o600)
    log(f"exported {arn}")
    return 0


NAMESPACE = "Webstack"
HAPROXY_STATS = "http://127.0.0.1:8404/stats;csv"
# HAProxy's Prometheus exporter, its process's own metrics only (scope=global: not every proxy's and
# server's); the stats CSV has no process counters (HTML stats alone show `show info`'s).
HAPROXY_METRICS = "http://127.0.0.1:8404/metrics?scope=global"


def backends_up(stats_csv):
    """(server, up) for each server of HAProxy's `app` backend, from its CSV stats."""
    rows = csv.DictReader(io.StringIO(stats_csv.lstrip("# ")))
    return [
        (row["svname"], row["status"].startswith("UP"))
        for row in rows
        if row["pxname"] == "app" and row["svname"] not in ("FRONTEND", "BACKEND")
    ]


def vertical_fields(answer, separator=":"):
    """The fields of a `\\G` answer (one `Name: value` a line), e.g. SHOW REPLICA STATUS's; with a tab
    as separator, of a two-column --batch answer (one `name<TAB>value` a line), e.g. SHOW STATUS's."""
    fields = {}
    for line in answer.splitlines():
        key, sep, value = line.partition(separator)
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def replica_status(show_replica_status):
    """(running, lag seconds or None) from `SHOW REPLICA STATUS\\G`, MariaDB's or MySQL's names."""
    fields = vertical_fields(show_replica_status)
    io_running = fields.get("Slave_IO_Running", fields.get("Replica_IO_Running"))
    sql_running = fields.get("Slave_SQL_Running", fields.get("Replica_SQL_Running"))
    lag = fields.get("Seconds_Behind_Master", fields.get("Seconds_Behind_Source"))
    running = io_running == "Yes" and sql_running == "Yes"
    return running, (int(lag) if lag and lag != "NULL" else None)


# What a Galera member says of its cluster: how many members its component has, and whether it is a
# synced member of the primary component, the one that takes writes.
GALERA_STATUS = ("wsrep_cluster_size", "wsrep_ready", "wsrep_local_state_comment", "wsrep_cluster_status")


def galera_status(show_status):
    """(cluster size or None, ready) from SHOW GLOBAL STATUS's wsrep_ variables (--batch): ready when
    wsrep_ready is ON, the member Synced and its component the Primary one."""
    fields = vertical_fields(show_status, "\t")
    size = fields.get("wsrep_cluster_size")
    ready = (fields.get("wsrep_ready") == "ON" and fields.get("wsrep_local_state_comment") == "Synced"
             and fields.get("wsrep_cluster_status") == "Primary")
    return (int(size) if size else None), ready


def metric(name, node, value, unit="Count", **dimensions):
    return {
        "MetricName": name,
        "Dimensions": [{"Name": "Node", "Value": node}] + [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Value": value,
        "Unit": unit,
    }


def database_metrics(role, node, db_client, run=subprocess.run):
    def sql(query, *options):
        return run([db_client, "--protocol=socket", "--user=root", *options, "--execute", query],
                   capture_output=True, text=True, timeout=10)

    up = sql("SELECT 1").returncode == 0
    data = [metric("DatabaseUp", node, 1 if up else 0)]
    if role == "member":
        names = ", ".join(f"'{name}'" for name in GALERA_STATUS)
        query = f"SHOW GLOBAL STATUS WHERE Variable_name IN ({names})"
        size, ready = galera_status(sql(query, "--batch", "--skip-column-names").stdout) if up else (None, False)
        data.append(metric("GaleraReady", node, 1 if ready else 0))
        if size is not None:
            data.append(metric("GaleraClusterSize", node, size))
    if role == "replica":
        running, lag = replica_status(sql("SHOW REPLICA STATUS\\G").stdout) if up else (False, None)
        data.append(metric("ReplicaRunning", node, 1 if running else 0))
        if lag is not None:
            data.append(metric("ReplicaLagSeconds", node, lag, unit="Seconds"))
    return data


def loadbalancer_metrics(node, read_stats=None):
    read = read_stats or (lambda: urllib.request.urlopen(HAPROXY_STATS, timeout=5).read().decode())
    servers = backends_up(read())
    data = [metric("BackendsUp", node, sum(up for _, up in servers))]
    return data + [metric("BackendUp", node, 1 if up else 0, Server=name) for name, up in servers]


# The collector's own state (its unit's StateDirectory, the one place its sandbox lets it write).
COLLECTOR_STATE = "/var/lib/webstack/collector"
DROPPED_LOGS_STATE = os.path.join(COLLECTOR_STATE, "dropped-logs.json")
# HAProxy's worker counts each request-log line it could not hand to rsyslog's socket because the
# socket's queue was full (sendmsg: EAGAIN); a line it could not send for another reason (rsyslog
# stopped: no socket, or no process bound to it) is lost without a count (one alert per worker).
# The count is the worker's, so a reload (a new worker) or a restart starts again at 0, and the
# worker's start time tells one worker from the next; an old worker's drops after its last reading
# (while it finishes its connections after a reload) go unseen, since the new one answers the
# exporter.
DROPPED_LOGS = "haproxy_process_dropped_logs_total"
WORKER_STARTED = "haproxy_process_start_time_seconds"


def prometheus_value(text, name):
    """The value of the one unlabelled sample `name` in Prometheus' text format, a finite number not
    below 0; ValueError when there is none, more than one, or something else."""
    values = [line.split()[1:] for line in text.splitlines() if line.split()[:1] == [name]]
    if len(values) != 1 or len(values[0]) not in (1, 2):  # a sample may carry a timestamp
        raise ValueError(f"{len(values)} {name} samples in HAProxy's metrics, not one")
    value = float(values[0][0])
    if not 0 <= value < float("inf"):
        raise ValueError(f"{name} is {values[0][0]}")
    return int(value) if value.is_integer() else value


def dropped_since(previous, started, dropped):
    """Log lines dropped since the previous reading (its state, or None). The same worker: its count's
    growth. A new worker (a reload or a restart), or a count below the last (its 32 bits wrapped):
    the whole count, every line of it lost since that worker started. No previous reading (the LB's
    first run, or its state lost): the whole count too. Nothing has reported those lines, and at a
    first boot they are loss since boot: 0 would hide them, while the whole count at worst reports
    old loss once more after lost state."""
    same_worker = previous is not None and previous.get("started") == started
    return dropped - previous["dropped"] if same_worker and dropped >= previous["dropped"] else dropped


def dropped_logs_metrics(node, keep, read_metrics=None, root="/"):
    """LogLinesDropped: the request-log lines HAProxy dropped since the previous run. The reading it is
    counted from goes into keep, saved once CloudWatch has the count: a push that fails leaves the
    previous reading, so the next run counts these lines again instead of losing them."""
    read = read_metrics or (lambda: urllib.request.urlopen(HAPROXY_METRICS, timeout=5).read().decode())
    text = read()
    started, dropped = prometheus_value(text, WORKER_STARTED), prometheus_value(text, DROPPED_LOGS)
    path = under(root, DROPPED_LOGS_STATE)
    try:
        previous = read_json(path)
        if previous is not None and not (isinstance(previous, dict) and isinstance(previous.get("dropped"), int)):
            raise ValueError(f"not a reading: {previous!r}")
    except ValueError as error:  # the collector's own file: replaced, never a reason to stop counting
        log(f"{DROPPED_LOGS_STATE}: {error}; counting as a first run")
        previous = None
    keep.append((path, {"started": started, "dropped": dropped}))
    return [metric("LogLinesDropped", node, dropped_since(previous, started, dropped))]


# Left by unattended-upgrades' own kernel hook (/etc/kernel/postinst.d) when an update needs a reboot
# (a new kernel): nothing reboots a node by itself.
REBOOT_REQUIRED = "/run/reboot-required"


def certificate_days_left(path, now, run=subprocess.run):
    """Days until the first certificate in a PEM file expires (below 0 once it has), as openssl reads it:
    a site PEM holds the key too, and no Python module on the nodes parses certificates."""
    result = run(["openssl", "x509", "-noout", "-enddate", "-in", path], capture_output=True, text=True, timeout=10)
    field, _, value = result.stdout.strip().partition("=")
    if result.returncode != 0 or field != "notAfter":
        raise ValueError(f"openssl cannot read a certificate in {path}: {result.stderr.strip() or result.stdout.strip()}")
    return round((ssl.cert_time_to_seconds(value) - now) / 86400, 2)


def age_seconds(path, field, now, root="/"):
    """Seconds since the epoch time `field` of a JSON state file (found under root). Without the file,
    since the node's first apply or the backups' settings reached it, whichever is later: how long the
    node has gone without what the file records (a new node, or a running one the backups just
    reached, is not late at once; one that never writes it is; a reboot does not reset the count)."""
    state = read_json(under(root, path))
    if state is None:
        since = os.stat(os.path.join(under(root, BUNDLE_STATE), FIRST_APPLY_DONE)).st_mtime
        with contextlib.suppress(FileNotFoundError):
            since = max(since, os.stat(under(root, BACKUP_ENV)).st_mtime)
        log(f"no {path}: counting from this node's first apply or the backups' arrival")
    else:
        since = float(state[field])
    return max(0, round(now - since))


def gathered(what, produce):
    """(metrics, None), or ([], what) when it could not be read: the rest is still published, and the
    alarms of what is missing treat the silence as they must."""
    try:
        return produce(), None
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError) as error:
        log(f"{what}: {type(error).__name__}: {error}")
        return [], what


def collect_command(role, node, db_client, client, read_stats=None, run=subprocess.run,
                    certificates=(), ages=(), root="/", now=time.time, read_metrics=None):
    """certificates: (name, PEM path) pairs; ages: (metric, state file, field) triples; every file is
    read under root (tests); now: the clock; read_stats, read_metrics: HAProxy's stats CSV and
    metrics (tests)."""
    at = now()
    keep = []  # (path, state): the collector's own state, saved once the metrics are pushed
    if role == "loadbalancer":
        sources = [("HAProxy's stats", lambda: loadbalancer_metrics(node, read_stats)),
                   ("HAProxy's dropped log lines", lambda: dropped_logs_metrics(node, keep, read_metrics, root))]
    elif role == "client":
        sources = []  # its database is RDS's, which CloudWatch watches itself
    else:
        sources = [("the database", lambda: database_metrics(role, node, db_client, run))]
    for name, path, field in ages:
        age = lambda name=name, path=path, field=field: [  # noqa: E731
            metric(name, node, age_seconds(path, field, at, root), unit="Seconds")]
        sources.append((f"{name} ({path})", age))
    reboot = lambda: [metric("RebootRequired", node, int(os.path.exists(under(root, REBOOT_REQUIRED))))]  # noqa: E731
    sources.append(("the reboot flag", reboot))
    for name, path in certificates:
        days = lambda name=name, path=path: [  # noqa: E731
            metric("CertificateDaysLeft", node, certificate_days_left(under(root, path), at, run), unit="None", Certificate=name)]
        sources.append((f"the {name} certificate ({path})", days))
    data, failed = [], []
    for what, produce in sources:
        metrics, failure = gathered(what, produce)
        data += metrics
        failed += [failure] if failure else []
    # What it read, in its journal (the lab's tests read it there). A dimension
    # besides Node in brackets: BackendUp[s1]=1, CertificateDaysLeft[public]=89.5.
    def shown(m):
        extra = ",".join(d["Value"] for d in m["Dimensions"][1:])
        return f"{m['MetricName']}{f'[{extra}]' if extra else ''}={m['Value']}"
    log("collected " + " ".join(shown(m) for m in data))
    if data:
        with_retries(lambda: client.put_metric_data(Namespace=NAMESPACE, MetricData=data), "PutMetricData")
    for path, state in keep:
        try:
            save_state(path, state)
        except OSError as error:
            log(f"keeping {path}: {type(error).__name__}: {error}")
            failed.append(path)
    return 1 if failed else 0


def boot_status_command(node, client, run=subprocess.run):
    """cloud-init's own verdict once it is done: exit 1 means a step failed."""
    result = run(["cloud-init", "status", "--wait", "--long"], capture_output=True, text=True)
    failed = result.returncode == 1
    log(f"cloud-init finished {'with errors' if failed else 'cleanly'} (exit {result.returncode})")
    with_retries(
        lambda: client.put_metric_data(Namespace=NAMESPACE, MetricData=[metric("BootFailed", node, 1 if failed else 0)]),
        "PutMetricData",
    )
    return 0


BUNDLE_ENV = "/etc/webstack/bundle.env"
BUNDLE_STATE = "/var/lib/webstack/bundle"
# Written once, when a node's first apply has run (its mtime: when the node came up).
FIRST_APPLY_DONE = "first-apply.done"
HEALTH_ATTEMPTS = 5
HEALTH_DELAY = 6  # seconds: about half a minute in all for services to settle after a reload
OUTPUT_LINES = 5  # of a failed command's output, in the status's reason
REASON_CHARACTERS = 1000  # a String parameter holds 4 KB
# A node waiting for another (`after`) keeps looking this long within one look, so it follows within
# seconds instead of a look later; then the next look looks again.
AFTER_WAIT = 25
AFTER_POLL = 2
# What apply_bundle returns, besides 0 (applied) and 1 (refused), when it wrote none of the bundle's
# files (exit code 0): its bundle is applied, or it waits for another node (`after`, a release
# command; by then it may have installed packages and prepared the release).
IDLE, WAITING = "idle", "waiting"
# A bundle the watcher refused is tried again after 1, 2, 4 and 8 min, then every 15 min, while the
# pointer stays on it (a new bundle is tried at the next look): a refusal a retry can mend (a mirror
# down, a health check failing under a spike) still mends, and one it cannot (a config `validate`
# fails, an app that does not import) no longer costs a process, its apt, preflight and status write
# every 30 s. Every look at a bundle the watcher refused starts by sending BundleRefused (and
# ReleaseFailed) again, tried or not, so their alarms (one 60 s period, silence not breaching) stay in
# ALARM unless a single try runs longer than a minute. An apply started by hand tries it at once and
# leaves the watcher's count and schedule as they were.
REFUSED = "refused.json"
REFUSED_RETRY_FIRST, REFUSED_RETRY_MOST = 60, 900


def refusals_of(state, sha):
    """The watcher's record of its refusals of bundle `sha` ({tries, at, releaseFailed}), or None:
    also when the file names another bundle or cannot be read (cut short by a power loss), so a bad
    record costs a retry at once, never the watcher."""
    try:
        refused = read_json(os.path.join(state, REFUSED))
        if refused.get("sha256") == sha and refused["tries"] >= 1:
            tries, at, release_failed = int(refused["tries"]), float(refused["at"]), refused["releaseFailed"] is True
            return {"tries": tries, "at": at, "releaseFailed": release_failed}
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def refused_retry_due(refusals):
    """When the watcher tries the bundle again (epoch s): at once when the clock was stepped back
    past the longest wait."""
    due = refusals["at"] + min(REFUSED_RETRY_FIRST * 2 ** (refusals["tries"] - 1), REFUSED_RETRY_MOST)
    return due if due - time.time() <= REFUSED_RETRY_MOST else 0


def note_refusal(state, sha, tries, release_failed):
    note = {"sha256": sha, "tries": tries, "at": time.time(), "releaseFailed": release_failed}
    install(os.path.join(state, REFUSED), json.dumps(note).encode(), os.getuid(), os.getgid(), 0o600)


def forget_refusals(state):
    """The node is on a bundle it applied: the refusals of another are forgotten."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(os.path.join(state, REFUSED))


class Refused(Exception):
    """A bundle this node will not run; the message is the status's reason."""


class ReleaseRefused(Refused):
    """A bundle refused because of its release (issue 18): ReleaseFailed too, for its alarm."""


def under(root, path):
    return os.path.join(root, path.lstrip("/"))


def read_json(path):
    try:
        with open(path, "rb") as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None


def parameter_json(ssm, name):
    """A String parameter's JSON value; None while it does not exist."""
    try:
        return json.loads(with_retries(lambda: ssm.get_parameter(Name=name), "GetParameter")["Parameter"]["Value"])
    except botocore.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ParameterNotFound":
            return None
        raise


def copy_file(source, target):
    """Copies bytes, mode and owner atomically; False where there is no source."""
    try:
        status = os.stat(source)
        with open(source, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return False
    install(target, data, status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode))
    return True


def differs(path, data, uid, gid, mode):
    try:
        status = os.stat(path)
        with open(path, "rb") as handle:
            same = handle.read() == data
    except FileNotFoundError:
        return True
    return not same or (stat.S_IMODE(status.st_mode), status.st_uid, status.st_gid) != (mode, uid, gid)


def distinct(commands):
    unique = []
    for argv in commands:
        if argv and argv not in unique:
            unique.append(argv)
    return unique


def capture(run, argv):
    """(exit code, output) of an argv (no shell), stdout and stderr together."""
    try:
        result = run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        return result.returncode, result.stdout or ""
    except OSError as error:
        return 127, str(error)


def check(run, argv, what, refusal=Refused):
    """Runs an argv (no shell); its output goes to the log, and its last lines into a refusal."""
    log(f"{what}: {shlex.join(argv)}")
    code, output = capture(run, argv)
    sys.stderr.write(output)
    if code != 0:
        tail = "\n".join(output.strip().splitlines()[-OUTPUT_LINES:])
        raise refusal(f"{what} failed: {shlex.join(argv)} exited {code}: {tail}"[:REASON_CHARACTERS])


# A Debian package name (Debian policy 5.6.1), whole: never an option or anything apt reads as more.
PACKAGE_NAME = re.compile(r"[a-z0-9][a-z0-9+.-]+")
# Waits up to two minutes for a dpkg lock another apt holds (unattended upgrades, say) rather than
# refusing the bundle at once.
APT_GET = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", "DPkg::Lock::Timeout=120"]


def installed(run, name):
    """Whether dpkg has the package installed; a non-zero exit (an unknown package) says it is not."""
    code, output = capture(run, ["dpkg-query", "-W", "-f=${Status}", name])
    return code == 0 and output.strip() == "install ok installed"


def ensure_packages(packages, run):
    """The bundle's packages, the missing ones installed (after an apt-get update), before a release
    is prepared or a file written; a failure refuses the bundle. All installed: apt never runs."""
    if not isinstance(packages, list):
        raise Refused(f"packages: not a list: {packages!r}")
    for name in packages:
        if not isinstance(name, str) or not PACKAGE_NAME.fullmatch(name):
            raise Refused(f"packages: not a Debian package name: {name!r}")
    missing = [name for name in packages if not installed(run, name)]
    if not missing:
        return
    log(f"packages missing: {' '.join(missing)}")
    check(run, [*APT_GET, "update"], "apt-get update")
    check(run, [*APT_GET, "install", "-y", "--no-install-recommends", *missing], "apt-get install")


APT_SOURCES_DIR = "/etc/apt/sources.list.d"
# The sources this tool writes, by the bundle's names: the only ones it ever removes.
APT_SOURCE_FILE = re.compile(r"webstack-([a-z0-9][a-z0-9-]*)\.sources")


def tried_apt_source(file, data, root, run):
    """A source apt has not read yet, updated alone from a directory of its own: None when its lists
    came, else why not. One that fails never joins sources.list.d, where it would fail every apt-get
    update on the node (unattended-upgrades', the bundles' own)."""
    trial = under(root, os.path.join(BUNDLE_STATE, "apt-trial"))
    shutil.rmtree(trial, ignore_errors=True)
    os.makedirs(trial, mode=0o755)
    try:
        with open(os.path.join(trial, file), "wb") as handle:
            handle.write(data)
        code, output = capture(run, [*APT_GET, "-o", "Dir::Etc::SourceList=/dev/null", "-o",
                                     f"Dir::Etc::SourceParts={trial}", "-o", "APT::Get::List-Cleanup=0", "update"])
    finally:
        shutil.rmtree(trial, ignore_errors=True)
    return None if code == 0 else f"apt-get update exited {code}: {(output.strip().splitlines() or [''])[-1]}"


def ensure_apt_sources(sources, root, run):
    """The bundle's aptSources (a repository beyond Debian's, deb822 with its key inline, and the
    packages taken from it) as sources.list.d/webstack-<name>.sources, and the webstack-* ones it no
    longer names removed, before any package installs (ensure_packages updates apt's lists before it
    installs one). A new or changed one joins only once apt has read it alone; one that fails is left
    out, with its packages, until a later apply (its tools are optional: the node and the bundle go
    on, and what needs them says so). Returns the packages of the sources in place. Like the
    packages, they stay if a later step refuses the bundle: what the next bundle names or leaves out
    decides."""
    if not isinstance(sources, list):
        raise Refused(f"aptSources: not a list: {sources!r}")
    wanted, packages = {}, []
    for source in sources:
        name = source.get("name") if isinstance(source, dict) else None
        file = f"webstack-{name}.sources" if isinstance(name, str) else ""
        if not APT_SOURCE_FILE.fullmatch(file) or not isinstance(source.get("content"), str) or file in wanted:
            raise Refused(f"aptSources: not a source this tool writes: {source!r}")
        if not isinstance(source.get("packages"), list):
            raise Refused(f"aptSources: {name}'s packages: not a list: {source.get('packages')!r}")
        wanted[file] = (source["content"].encode(), source["packages"])
    directory = under(root, APT_SOURCES_DIR)
    for entry in sorted(os.listdir(directory)) if os.path.isdir(directory) else []:
        if APT_SOURCE_FILE.fullmatch(entry) and entry not in wanted:
            os.unlink(os.path.join(directory, entry))
            log(f"removed the apt source {entry}")
    for file, (data, theirs) in wanted.items():
        if differs(os.path.join(directory, file), data, 0, 0, 0o644):
            failed = tried_apt_source(file, data, root, run)
            if failed:
                log(f"apt source {file} not added ({failed}); {', '.join(theirs)} wait for a later apply")
                continue
            install(os.path.join(directory, file), data, 0, 0, 0o644)
            log(f"wrote the apt source {file}")
        packages += theirs
    return packages


SYSUSERS_DIR = "/etc/sysusers.d/"


def ensure_users(bundle, run):
    """The users the bundle's sysusers.d files declare, made before anything else (systemd-sysusers,
    idempotent): the app's user owns the venv pip fills while a release is prepared, which comes
    before the files are written (and the file's own validate applies it then)."""
    for entry in bundle.get("files", []):
        if entry["path"].startswith(SYSUSERS_DIR):
            lines = [line for line in entry["content"].splitlines() if line.strip() and not line.startswith("#")]
            check(run, ["systemd-sysusers", "--inline", *lines], "users")


TMPFILES_DIR = "/etc/tmpfiles.d/"


def apply_tmpfiles(bundle, run):
    """The bundle's tmpfiles.d rules applied (systemd-tmpfiles --create, idempotent) once its files are
    written and checked, before the preflight and the actions: a rule changes owners (the app's
    secrets' directory, handed over to the app's user on a node from before), which a bundle refused
    by one of its checks must leave as they were, and which the app's user needs before it runs."""
    for entry in bundle.get("files", []):
        if entry["path"].startswith(TMPFILES_DIR):
            check(run, ["systemd-tmpfiles", "--create", entry["path"]], "tmpfiles")


def write_files(bundle, root, backups, run, previous):
    """Step 4: writes the files that differ from disk, then validates them; on any failure the old
    files are back (a new one removed) before the services saw anything. The changed entries: those
    written, and those that differ from the last applied bundle (`previous`, by path) although the
    disk already holds them, so an onChange that failed last time runs again."""
    changed, saved = [], []
    for entry in bundle["files"]:
        user, _, group = entry["owner"].partition(":")
        try:
            owner = (pwd.getpwnam(user).pw_uid, grp.getgrnam(group or user).gr_gid)
        except KeyError as error:
            raise Refused(f"{entry['path']}: unknown owner {entry['owner']}") from error
        wanted = (under(root, entry["path"]), entry["content"].encode(), *owner, int(entry["mode"], 8))
        last = previous.get(entry["path"])
        unapplied = last is not None and any(last.get(k) != entry[k] for k in ("content", "mode", "owner"))
        if differs(*wanted) or unapplied:
            changed.append((entry, wanted))
    shutil.rmtree(backups, ignore_errors=True)
    try:
        for entry, wanted in changed:
            if not differs(*wanted):
                continue  # already on disk: only its validate and onChange are still owed
            backup = under(backups, entry["path"])
            saved.append((wanted[0], backup if copy_file(wanted[0], backup) else None))
            install(*wanted)
            log(f"wrote {entry['path']}")
        for argv in distinct(entry.get("validate") for entry, _ in changed):
            check(run, argv, "validate")
    except BaseException:
        for path, backup in reversed(saved):
            if backup:
                copy_file(backup, path)
            elif os.path.exists(path):
                os.unlink(path)
            log(f"restored {path}")
        raise
    return [entry for entry, _ in changed]


def health_check(argv, run, diagnostics=()):
    """Step 6: a few tries, while services settle after a reload. When the last fails, what each of
    `diagnostics` says goes to the log (the boot's output, apply's journal) before the refusal: a
    command's output, or a (what, read) pair's read()."""
    for attempt in range(1, HEALTH_ATTEMPTS + 1):
        try:
            return check(run, argv, "health check")
        except Refused:
            if attempt == HEALTH_ATTEMPTS:
                for diagnostic in diagnostics:
                    if isinstance(diagnostic, tuple):
                        what, read = diagnostic
                        log(f"after the failed health check, {what}:\n{read().rstrip()}")
                        continue
                    code, output = capture(run, diagnostic)
                    log(f"after the failed health check, {shlex.join(diagnostic)} (exit {code}):\n{output.rstrip()}")
                raise
            log(f"health check attempt {attempt} of {HEALTH_ATTEMPTS} failed; retrying in {HEALTH_DELAY} s")
            time.sleep(HEALTH_DELAY)


def now():
    # Milliseconds: the primary applies within a second of its replica, and the order is the point.
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def status_of(sha, release, reason=None, app=None):
    status = {"sha256": sha, "release": release}
    if app:
        status["app"] = app
    status["state"] = "refused" if reason else "applied"
    if reason:
        status["reason"] = reason[:REASON_CHARACTERS]
    status["at"] = now()
    return status


def put_json(ssm, name, value):
    with_retries(
        lambda: ssm.put_parameter(Name=name, Value=json.dumps(value), Type="String", Overwrite=True), "PutParameter"
    )


def report(env, ssm, cloudwatch, status, state, release_failed=False):
    """The outcome, where each reader looks: status.json on the node, the status parameter (the
    primary's `after` reads the replica's), and BundleApplied or BundleRefused (and ReleaseFailed)
    for the alarms. The metric is sent once, without retries: a CloudWatch outage must not hold up
    or fail an apply."""
    install(os.path.join(state, "status.json"), json.dumps(status).encode(), os.getuid(), os.getgid(), 0o600)
    put_json(ssm, env["STATUS_PARAMETER"], status)
    if status["state"] == "applied":
        put_metrics(env, cloudwatch, [metric("BundleApplied", env["NODE"], 1)])
    else:
        put_metrics(env, cloudwatch, refusal_metrics(env, release_failed))


def refusal_metrics(env, release_failed):
    names = ["BundleRefused", "ReleaseFailed"] if release_failed else ["BundleRefused"]
    return [metric(name, env["NODE"], 1) for name in names]


def put_metrics(env, cloudwatch, data):
    """Sent once, without retries: a CloudWatch outage must not hold up or fail an apply."""
    try:
        cloudwatch.put_metric_data(Namespace=env["METRIC_NAMESPACE"], MetricData=data)
    except (OSError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        log(f"PutMetricData failed ({type(error).__name__}); the status parameter says it all the same")


# Releases (issue 18). A release directory is whole or absent; `current` is a symlink replaced by a
# rename, so Gunicorn (which follows it on every load of its config) never sees half of one.
APP_UNIT = "webstack-app.service"
# The app's own user (issue 19): whatever runs the release's code runs as it.
APP_USER = "webstack-app"
APP_ENV = "/etc/webstack/app.env"
# The database password, the app's user's file: Gunicorn's config reads it; never an inherited variable.
APP_DB_PASSWORD = "/etc/webstack/app-secrets/DB_APP_PASSWORD"
APP_LOG = "/var/log/webstack/app.log"
RELEASES = "/srv/webstack/releases"
CURRENT = "/srv/webstack/current"
RELEASE_HISTORY = "releases.json"  # in the state directory: the releases made current, oldest first
KEEP_RELEASES = 3  # the current one and the two before it
TOOL = "/usr/local/sbin/webstack-aws"
RELEASE_COMMAND = "/usr/local/sbin/webstack-release-command"
GUNICORN = "/usr/bin/gunicorn"
GUNICORN_CONFIG = "/etc/webstack/gunicorn.conf.py"
PREFLIGHT_WAIT = 30  # seconds for a preflight Gunicorn to answer GET /healthz with 2xx
PREFLIGHT_POLL = 0.5
# After a reload, the old workers finish their requests (graceful_timeout: as long as a request may
# take) before every worker runs in the new release.
SWITCH_WAIT = 150
SWITCH_POLL = 1
RELEASE_ID = re.compile(r"^[0-9a-f]{64}$")
# The config's appModule (model/configValues.ts): Gunicorn's argument, never one of its options.
APP_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")
# Gunicorn's own log lines, "[2025-01-01 00:00:00 +0000] [123] [INFO] ...": not the app's words.
GUNICORN_LINE = re.compile(r"^\[[^]]*\] \[\d+\] \[([A-Z]+)\] ")


def remove(path):
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path)


def unpack(data, directory):
    """A release archive into directory: regular files and directories under it, nothing else (the
    archive the Pulumi program packs holds nothing else); tarfile's "data" filter where the Python
    has it (Debian 13's does; Debian 12's 3.11.2, which runs the tests, does not)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for member in archive.getmembers():
            inside = os.path.normpath(os.path.join(directory, member.name))
            if not (member.isfile() or member.isdir()):
                raise tarfile.TarError(f"{member.name}: neither a file nor a directory")
            if os.path.isabs(member.name) or not (inside + "/").startswith(os.path.join(directory, "")):
                raise tarfile.TarError(f"{member.name}: outside the release directory")
            # The venv is the node's to make (root runs its python, which reads its .pth files).
            if os.path.relpath(inside, directory).split(os.sep)[0] == "venv":
                raise tarfile.TarError(f"{member.name}: the release's venv is made on the node, never shipped")
        if hasattr(tarfile, "data_filter"):
            archive.extractall(directory, filter="data")
        else:
            archive.extractall(directory)


def has_requirements(path):
    try:
        with open(path) as handle:
            return any(line.strip() and not line.strip().startswith("#") for line in handle)
    except FileNotFoundError:
        return False


# Whatever runs of a release outside the app's unit (the preflight's Gunicorn, pip, the release
# command) runs as the app's user in a transient unit with the app unit's own sandbox: the bundle's
# app.sandbox, which the program renders from this very list (appNode.ts reads it here, the unit's
# directives and the release command's properties too). The tool uses its own for a bundle that has
# none (a stack pointed back to an older program) and for an older applier, which runs `preflight
# RELEASE_DIR APP_MODULE` of this tool with no properties (the first bundle with a sandbox, on a
# node from before): never less. One quoted string a line (appNode.ts toolSandbox reads it).
APP_SANDBOX = [
    "CapabilityBoundingSet=",
    "AmbientCapabilities=",
    "NoNewPrivileges=yes",
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "DevicePolicy=closed",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "ProtectProc=invisible",
    # The database (its socket, the peer's TCP), Nginx's socket, and whatever the team's app calls.
    "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
    # Instance metadata would hand it the node's role (every secret of the node): never reachable.
    # Prefixes, not systemd's `link-local` keyword: systemd-run's property parser (systemd 257)
    # takes only addresses. 169.254.0.0/16 and fe80::/10 are link-local entire.
    "IPAddressDeny=169.254.0.0/16 fe80::/10 fd00:ec2::254",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "RestrictSUIDSGID=yes",
    "LockPersonality=yes",
    "SystemCallFilter=@system-service",
    "SystemCallArchitectures=native",
    "RemoveIPC=yes",
    "KeyringMode=private",
    # The node's own secrets (root's) are not even visible.
    "InaccessiblePaths=-/etc/webstack/secrets",
]


def app_sandbox(app):
    sandbox = app.get("sandbox", APP_SANDBOX)
    if not isinstance(sandbox, list) or not sandbox or not all(isinstance(p, str) and "=" in p for p in sandbox):
        raise ReleaseRefused(f"the bundle's app.sandbox is no list of systemd properties: {sandbox!r}")
    return sandbox


def in_app_sandbox(sandbox, argv, writable=(), options=()):
    """argv as the app's user in a transient unit: the sandbox, with `writable` writable, no process
    left behind when it ends; its output and exit status are systemd-run's."""
    properties = [*sandbox, *[f"ReadWritePaths={path}" for path in writable]]
    return ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
            f"--uid={APP_USER}", f"--gid={APP_USER}", *options, *[f"--property={p}" for p in properties],
            "--", *argv]


def as_app(writable, argv, sandbox):
    """pip in the app's sandbox (it installs the release's wheels, the release's code), with no
    network at all and nothing writable but the venv."""
    offline = [p for p in sandbox if not p.startswith("RestrictAddressFamilies=")] + ["RestrictAddressFamilies=AF_UNIX"]
    return in_app_sandbox(offline, argv, writable=[writable])


def own_tree(top, uid, gid):
    """Everything under top (top too) owned by uid:gid, through file descriptors, never following a
    link (os.fwalk): group and other lose write, setuid, setgid and sticky bits go. A file with
    another hard link, or anything but a file, a directory or a link, refuses the release."""
    try:
        own_entries(top, uid, gid)
    except OSError as error:
        raise ReleaseRefused(f"the release's venv: {error}") from error


def own_entries(top, uid, gid):
    for _, dirs, files, dirfd in os.fwalk(top, follow_symlinks=False):
        os.fchown(dirfd, uid, gid)
        os.fchmod(dirfd, stat.S_IMODE(os.fstat(dirfd).st_mode) & 0o755)
        for name in dirs + files:
            status = os.stat(name, dir_fd=dirfd, follow_symlinks=False)
            if stat.S_ISLNK(status.st_mode):
                os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
            elif stat.S_ISREG(status.st_mode):
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
                try:
                    if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since its stat: pip still runs
                        raise ReleaseRefused(f"the release's venv holds {name}, no longer a file")
                    if os.fstat(fd).st_nlink != 1:
                        raise ReleaseRefused(f"the release's venv holds {name}, a file with another hard link")
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, stat.S_IMODE(os.fstat(fd).st_mode) & 0o755)
                finally:
                    os.close(fd)
            elif not stat.S_ISDIR(status.st_mode):
                raise ReleaseRefused(f"the release's venv holds {name}, neither a file, a directory nor a link")


def prepare_release(app, root, s3, run):
    """The release's directory, made unless it is there: the archive from S3, its sha256 checked
    against the id, unpacked into <id>.partial with its venv, then renamed. While the venv is made,
    <id> is a link to <id>.partial, so the venv's scripts name the path they will have. Its
    requirements are installed by the app's user (as_app), the venv handed over and back."""
    release = app["release"]
    if not RELEASE_ID.match(release):
        raise ReleaseRefused(f"not a release id: {release!r}")
    final = under(root, f"{RELEASES}/{release}")
    if os.path.isdir(final) and not os.path.islink(final):
        return final
    try:
        data = with_retries(lambda: s3.get_object(Bucket=app["bucket"], Key=app["key"])["Body"].read(), "GetObject")
    except (OSError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        raise ReleaseRefused(f"release {release[:12]}: s3://{app['bucket']}/{app['key']}: {error}") from error
    actual = hashlib.sha256(data).hexdigest()
    if actual != release:
        raise ReleaseRefused(f"release {release[:12]}: sha256 mismatch, the archive's is {actual}")
    partial = final + ".partial"
    for leftover in (partial, final):  # of a run that stopped half-way
        remove(leftover)
    os.makedirs(partial, mode=0o755)
    os.chmod(partial, 0o755)  # root's, readable by the app's user whatever the umask
    try:
        unpack(data, partial)
        os.symlink(os.path.basename(partial), final)
        try:
            venv = f"{final}/venv"
            make_venv = ["/usr/bin/python3", "-m", "venv", "--clear", "--system-site-packages", venv]
            check(run, make_venv, "release venv", ReleaseRefused)
            if has_requirements(os.path.join(partial, "requirements.txt")):
                pip = [f"{venv}/bin/pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
                       "--find-links", f"{final}/wheels", "-r", f"{final}/requirements.txt"]
                user = pwd.getpwnam(APP_USER)
                own_tree(f"{partial}/venv", user.pw_uid, user.pw_gid)
                try:
                    check(run, as_app(f"{partial}/venv", pip, app_sandbox(app)), "release requirements",
                          ReleaseRefused)
                finally:
                    own_tree(f"{partial}/venv", os.getuid(), os.getgid())
        finally:
            os.unlink(final)
    except (tarfile.TarError, EOFError, OSError, Refused) as error:
        remove(partial)
        if isinstance(error, ReleaseRefused):
            raise
        raise ReleaseRefused(f"release {release[:12]}: the archive does not unpack: {error}") from error
    os.rename(partial, final)
    log(f"release {release[:12]} prepared")
    return final


def run_release_command(app, root, release_dir, ssm, run, state):
    """The primary's release command, once per release (a marker once it succeeded); its outcome in
    the status parameter the replica waits for. A failure refuses, and runs again on the next try."""
    release, command = app["release"], app["command"]
    marker = os.path.join(state, "release-commands", release)
    if os.path.exists(marker):
        return
    argv = [under(root, RELEASE_COMMAND), release_dir, command["run"]]
    try:
        check(run, argv, "release command", ReleaseRefused)
    except ReleaseRefused as error:
        put_json(ssm, command["status"], {"release": release, "state": "failed", "reason": str(error), "at": now()})
        raise
    put_json(ssm, command["status"], {"release": release, "state": "done", "at": now()})
    install(marker, b"", os.getuid(), os.getgid(), 0o600)


def awaited(ssm, name, ready, deadline):
    """A status parameter's value once ready(value) holds; None when the deadline comes first."""
    while True:
        value = parameter_json(ssm, name) or {}
        if ready(value):
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(AFTER_POLL)


def current_release(root):
    try:
        return os.path.basename(os.readlink(under(root, CURRENT)))
    except OSError:  # none yet (or not a link: then the switch fails, loudly)
        return None


def point_current(root, release):
    """current → releases/<release>, atomically: a new link renamed over the old one."""
    link = under(root, CURRENT)
    temporary = link + ".new"
    if os.path.lexists(temporary):
        os.unlink(temporary)
    if release is None:
        if os.path.lexists(link):
            os.unlink(link)
        return
    os.symlink(f"releases/{release}", temporary)
    os.rename(temporary, link)
    log(f"current is release {release[:12]}")


APP_UNIT_FILE = "/etc/systemd/system/webstack-app.service"


def app_module(app, files):
    """The release's WSGI callable, module.path:callable, as the bundle's `app` names it; a bundle
    made before `app` named it (a stack pointed back to an older program) names it only as the last
    word of its own app unit's ExecStart, which is read then."""
    module = app.get("module") if isinstance(app, dict) else None
    if isinstance(app, dict) and "module" not in app:
        unit = next((f.get("content", "") for f in files if f.get("path") == APP_UNIT_FILE), "")
        starts = [line for line in unit.splitlines() if line.startswith("ExecStart=")]
        module = shlex.split(starts[0].partition("=")[2])[-1] if starts else None
    if not isinstance(module, str) or not APP_MODULE.fullmatch(module):
        raise ReleaseRefused(f"the bundle's app names no module.path:callable as its module: {module!r}")
    return module


APP_LOG_LINES = 10  # of the app's log, after a failed health check
APP_LOG_TAIL_BYTES = 16384  # where those lines are looked for: the end of the log


def app_diagnostics(root):
    """What a failed health check of an app node leaves in the log: the app's unit as systemd sees it
    and its last lines, Gunicorn's and Nginx's last errors, and who may reach Gunicorn's socket (a
    502 is Nginx failing to reach it). The app's log is read by this tool as it writes it, never by
    root's `tail`: its directory is the app's user's."""
    return [
        ["systemctl", "status", "--no-pager", "--full", "--lines=0", APP_UNIT],
        ["journalctl", "--no-pager", "--quiet", f"--unit={APP_UNIT}", "--lines=15"],
        (f"the last {APP_LOG_LINES} lines of {APP_LOG}", lambda: app_log_tail(root)),
        ["tail", "-n", "5", "/var/log/nginx/error.log"],
        ["ls", "-ld", "/run/webstack", "/run/webstack/app.sock"],
    ]


def main_pid(root, run):
    """The app's Gunicorn master (the unit's MainPID); 0 while it does not run."""
    code, output = capture(run, ["systemctl", "show", "-p", "MainPID", "--value", APP_UNIT])
    return int(output.strip()) if code == 0 and output.strip().isdigit() else 0


def app_workers(root, main):
    """The pids of the app's Gunicorn workers: its master's children."""
    if main == 0:
        return []
    try:
        with open(under(root, f"/proc/{main}/task/{main}/children")) as handle:
            return [int(pid) for pid in handle.read().split()]
    except FileNotFoundError:  # a kernel without CONFIG_PROC_CHILDREN: each process's parent
        children = []
        for name in os.listdir(under(root, "/proc")):
            try:
                with open(under(root, f"/proc/{name}/stat")) as handle:
                    parent = int(handle.read().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if name.isdigit() and parent == main:
                children.append(int(name))
        return children


def wait_for_workers(root, run, release_dir):
    """Until every worker runs in the release (the new ones chdir there; the old ones have finished).
    A master that stopped (new workers that cannot start stop it) fails at once: no waiting it out."""
    wanted = os.path.realpath(release_dir)
    deadline = time.monotonic() + SWITCH_WAIT
    master = main_pid(root, run)
    while True:
        if master == 0 or main_pid(root, run) != master:
            raise ReleaseRefused(f"the app's Gunicorn stopped on release {os.path.basename(wanted)[:12]}")
        workers = app_workers(root, master)
        places = {os.path.realpath(under(root, f"/proc/{pid}/cwd")) for pid in workers}
        if workers and places == {wanted}:
            log(f"all {len(workers)} workers run release {os.path.basename(wanted)[:12]}")
            return
        if time.monotonic() >= deadline:
            raise ReleaseRefused(
                f"the app's workers did not all move to release {os.path.basename(wanted)[:12]} within {SWITCH_WAIT} s"
            )
        time.sleep(SWITCH_POLL)


def remember_and_prune(root, state, release):
    """The release joins the history; releases other than the last KEEP_RELEASES made current go."""
    path = os.path.join(state, RELEASE_HISTORY)
    history = [r for r in read_json(path) or [] if r != release] + [release]
    keep = history[-KEEP_RELEASES:]
    install(path, json.dumps(keep).encode(), os.getuid(), os.getgid(), 0o600)
    releases = under(root, RELEASES)
    for name in sorted(os.listdir(releases)):
        if name not in keep:
            remove(os.path.join(releases, name))
            log(f"removed release {name[:12]}")


class NotTheAppsOwn(Exception):
    """A path in a directory the app's user writes is not what root may use there."""


def open_apps_own(path, flags):
    """A file in a directory the app's user writes, opened by root only if it is a regular file of
    that user's with no other link: never through a link (O_NOFOLLOW: ELOOP) nor a hard link to one
    of root's files, which root would read or write for the app; O_NONBLOCK: a FIFO never holds
    root up. Raises OSError or NotTheAppsOwn saying why not."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_uid != pwd.getpwnam(APP_USER).pw_uid or status.st_nlink != 1:
        os.close(fd)
        raise NotTheAppsOwn(f"not a file of {APP_USER}'s alone")
    return fd


def append_to_app_log(root, prefix, text):
    """Lines into the app's log. Its directory is the app's user's: a new file is made and handed to
    the app's user, an existing one written only as open_apps_own opens it; anything else is left
    alone, and said so."""
    path = under(root, APP_LOG)
    user = pwd.getpwnam(APP_USER)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        os.fchown(fd, user.pw_uid, user.pw_gid)
    except FileExistsError:
        try:
            fd = open_apps_own(path, os.O_WRONLY | os.O_APPEND)
        except (OSError, NotTheAppsOwn) as error:
            log(f"{APP_LOG} not written: {error}")
            return
    try:
        os.write(fd, "".join(f"{prefix}{line}\n" for line in text.splitlines()).encode())
    finally:
        os.close(fd)


def app_log_tail(root):
    """The app's log's last APP_LOG_LINES lines, read only as open_apps_own opens it (a link to one of
    root's files would have root copy it into apply's journal and the boot's output, which reach
    CloudWatch); else why it was not read."""
    try:
        fd = open_apps_own(under(root, APP_LOG), os.O_RDONLY)
    except (OSError, NotTheAppsOwn, KeyError) as error:
        return f"{APP_LOG} not read: {error}"
    try:
        data = os.pread(fd, APP_LOG_TAIL_BYTES, max(0, os.fstat(fd).st_size - APP_LOG_TAIL_BYTES))
    finally:
        os.close(fd)
    return "\n".join(data.decode(errors="replace").splitlines()[-APP_LOG_LINES:])


def forget_app_env_password(root):
    """A node booted before the app had its own user has the database password in app.env (root's,
    0600): once the app's copy exists, Gunicorn's config reads that, and app.env loses it."""
    path = under(root, APP_ENV)
    if not os.path.exists(under(root, APP_DB_PASSWORD)) or not os.path.exists(path):
        return
    with open(path) as handle:
        lines = handle.readlines()
    kept = [line for line in lines if not line.startswith("DB_APP_PASSWORD=")]
    if kept != lines:
        status = os.stat(path)
        install(path, "".join(kept).encode(), status.st_uid, status.st_gid, stat.S_IMODE(status.st_mode))
        log(f"{APP_ENV}: the database password removed (the app reads its own copy)")


def reason_line(output):
    """What a failed Gunicorn said last: the last line that is not its own log line (a traceback's
    last line), else its last warning or error, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    own = [GUNICORN_LINE.match(line) for line in lines]
    for line, match in reversed(list(zip(lines, own))):
        if not match:
            return line
    for line, match in reversed(list(zip(lines, own))):
        if match.group(1) not in ("INFO", "DEBUG"):
            return line[match.end():]
    return lines[-1] if lines else "(no output)"


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over the preflight's socket, in a directory the app's user writes: root connects only to
    a socket of that user's, never through a link (to another's socket, which would see root as its
    peer). The path is opened without following a link (O_PATH, O_NOFOLLOW), checked, and connected
    to through the descriptor (/proc/self/fd), so the socket checked is the socket connected to."""

    def __init__(self, socket_path, uid, timeout):
        super().__init__("localhost", timeout=timeout)
        self.socket_path, self.uid = socket_path, uid

    def connect(self):
        fd = os.open(self.socket_path, os.O_PATH | os.O_NOFOLLOW)
        try:
            status = os.fstat(fd)
            if not stat.S_ISSOCK(status.st_mode) or status.st_uid != self.uid:
                raise NotTheAppsOwn(
                    f"{os.path.basename(self.socket_path)} is not a socket of {APP_USER}'s:"
                    f" mode {stat.filemode(status.st_mode)}, owner {status.st_uid}"
                )
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(self.timeout)
            self.sock.connect(f"/proc/self/fd/{fd}")
        finally:
            os.close(fd)


def healthz_answer(process, socket_path, uid):
    """None once GET /healthz answers 2xx within PREFLIGHT_WAIT; else what happened instead."""
    deadline = time.monotonic() + PREFLIGHT_WAIT
    failure = f"no answer to GET /healthz within {PREFLIGHT_WAIT} s"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return f"Gunicorn exited {process.returncode}"
        connection = UnixHTTPConnection(socket_path, uid, timeout=PREFLIGHT_WAIT)
        try:
            connection.request("GET", "/healthz")
            status = connection.getresponse().status
            if 200 <= status < 300:
                return None
            failure = f"GET /healthz answered {status}"
        except NotTheAppsOwn as error:
            return f"GET /healthz not asked: {error}"
        except OSError:  # not listening yet
            pass
        finally:
            connection.close()
        time.sleep(PREFLIGHT_POLL)
    return failure


def preflight_command(release_dir, module, sandbox, root="/", popen=subprocess.Popen, run=subprocess.run):
    """A throwaway Gunicorn of a release before it is switched to: in the app's sandbox (systemd-run,
    as the app's user: no instance metadata), with its environment, one worker, on a socket in a
    directory of its own; GET /healthz must answer 2xx. On failure its output goes to the app's log,
    and its last words to stdout (the reason). Its output is a file of root's, unlinked, outside that
    directory (which the release's code may fill with links to root's files): read through the
    descriptor Gunicorn wrote to, never by a path."""
    release = os.path.basename(release_dir.rstrip("/"))
    user = pwd.getpwnam(APP_USER)
    sandbox = list(sandbox) or APP_SANDBOX  # an older applier names none
    # The node's variables from app.env, read by systemd; a node booted before the app had its own
    # user still has the password there: once the app's file holds it (Gunicorn's config reads it),
    # it is unset; until then the preflight passes it on, as the unit did.
    environment = [f"--property=EnvironmentFile={under(root, APP_ENV)}", f"--setenv=WEBSTACK_RELEASE_DIR={release_dir}"]
    if os.path.exists(under(root, APP_DB_PASSWORD)):
        environment.append("--property=UnsetEnvironment=DB_APP_PASSWORD")
    unit = f"webstack-preflight-{release[:12]}.service"
    # Not under /tmp: the unit's /tmp is its own (PrivateTmp).
    os.makedirs(under(root, "/run"), exist_ok=True)
    directory = tempfile.mkdtemp(prefix="webstack-preflight-", dir=under(root, "/run"))
    try:
        os.chown(directory, user.pw_uid, user.pw_gid)
        socket_path = os.path.join(directory, "app.sock")
        gunicorn = [GUNICORN, "--config", under(root, GUNICORN_CONFIG), "--workers", "1", "--bind", f"unix:{socket_path}",
                    "--error-logfile", "-", "--access-logfile", "/dev/null", "--graceful-timeout", "5", module]
        argv = in_app_sandbox(sandbox, gunicorn, writable=[directory],
                              options=[f"--unit={unit}", f"--working-directory={release_dir}", *environment])
        with tempfile.TemporaryFile(dir=under(root, "/run")) as output:
            process = popen(argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, start_new_session=True)
            try:
                failure = healthz_answer(process, socket_path, user.pw_uid)
                output.seek(0)
                said = output.read().decode(errors="replace")  # before it stops: its last words are the failure's
            finally:
                capture(run, ["systemctl", "stop", unit])  # a unit already gone: nothing to stop
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if failure is None:
        log(f"preflight of release {release[:12]}: GET /healthz answered")
        return 0
    append_to_app_log(root, f"preflight {release[:12]}: ", said)
    print(f"{failure}: {reason_line(said)}")
    return 1


def switch_back(root, previous, run):
    """After a failed switch: current as it was, the app reloaded (or started, if the new release
    stopped it). Whatever happens is logged: the refusal says why the release was refused."""
    point_current(root, previous)
    code, output = capture(run, ["systemctl", "reload-or-restart", APP_UNIT])
    log(f"switched back to release {(previous or 'none')[:12]}; reload-or-restart exited {code} {output.strip()}")


# What this tool acts on beyond issue 17's, by name, each with whether a bundle has it; the names are
# recorded with each bundle it applies: a bundle applied by an older tool (which wrote this one as one
# of its files, then ignored what it did not know) is applied again by this one, in full. A later
# tool that heeds something new adds it here. Issue 18's tool heeded "app" and "packages"; issue 19
# adds the release's code in the bundle's sandbox (an older tool runs this tool's preflight with
# none), the users of its sysusers.d files made before anything else (with what only this tool
# does for them: the app.env password forgotten once the app has its own copy) and its tmpfiles.d
# rules applied once its files are written and checked. Issue 20 adds APT sources beyond Debian's with
# their packages (an older tool leaves out both, rather than fail to install a package it has no
# source for).
HEEDED = "heeded.json"
HEEDED_KEYS = {
    "app": lambda bundle: "app" in bundle,
    "packages": lambda bundle: "packages" in bundle,
    "app.sandbox": lambda bundle: isinstance(bundle.get("app"), dict) and "sandbox" in bundle["app"],
    "users": lambda bundle: any(str(f.get("path")).startswith(SYSUSERS_DIR) for f in bundle.get("files", [])),
    "tmpfiles": lambda bundle: any(str(f.get("path")).startswith(TMPFILES_DIR) for f in bundle.get("files", [])),
    "aptSources": lambda bundle: bool(bundle.get("aptSources")),
}


def unheeded_keys(state):
    """What the last applied bundle has that the tool which applied it did not act on."""
    last_bundle = read_json(os.path.join(state, "current.json")) or {}
    heeded = read_json(os.path.join(state, HEEDED)) or []
    return [key for key, has in HEEDED_KEYS.items() if has(last_bundle) and key not in heeded]


def apply_bundle(env, bundle_path, ssm, s3, cloudwatch, root, run, quiet=False, patient=False):
    """0 (applied), 1 (refused), IDLE (it was applied, or, when patient (the watcher), it was refused
    and its retry is not due: nothing done, said unless quiet) or WAITING."""
    state = under(root, BUNDLE_STATE)
    applied = read_json(os.path.join(state, "applied.json"))
    if bundle_path:
        with open(bundle_path, "rb") as handle:
            data = handle.read()
        pointer = {"sha256": hashlib.sha256(data).hexdigest()}
    else:
        pointer = parameter_json(ssm, env["BUNDLE_PARAMETER"])
        if pointer is None:
            log(f"no bundle yet: {env['BUNDLE_PARAMETER']} does not exist")
            return 1
    sha = pointer["sha256"]
    refusals = refusals_of(state, sha) if patient else None
    if refusals:
        put_metrics(env, cloudwatch, refusal_metrics(env, refusals["releaseFailed"]))
        due = refused_retry_due(refusals)
        if time.time() < due:
            if not quiet:
                at = datetime.datetime.fromtimestamp(due, datetime.timezone.utc).strftime("%H:%M:%S UTC")
                log(f"bundle {sha[:12]} was refused; trying it again at {at} (`systemctl start webstack-apply` now)")
            return IDLE
    unheeded = unheeded_keys(state)
    if applied and applied.get("sha256") == sha and applied.get("state") == "applied" and unheeded:
        # An older tool applied it and wrote this one, but ignored what it did not know (a release,
        # packages, the app's sandbox and users): this tool applies the same bundle again, in full.
        log(f"bundle {sha[:12]} was applied by a tool that ignored {', '.join(unheeded)}; applying it again")
    elif applied and applied.get("sha256") == sha and applied.get("state") == "applied":
        last = read_json(os.path.join(state, "status.json"))
        if last and last.get("sha256") != sha:
            # Pointed back to the bundle its files still hold (a refused one restored them): say so.
            log(f"bundle {sha[:12]} is applied again (its files never left); reporting it")
            forget_refusals(state)
            report(env, ssm, cloudwatch, status_of(sha, applied.get("release", ""), app=applied.get("app")), state)
            return 0
        if not quiet:
            log(f"bundle {sha[:12]} is applied; nothing to do")
        return IDLE
    if not bundle_path:
        data = with_retries(
            lambda: s3.get_object(Bucket=pointer["bucket"], Key=pointer["key"])["Body"].read(), "GetObject"
        )
    release, app = "", None
    try:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise Refused(f"sha256 mismatch: the object's is {actual}, the pointer's {sha}")
        bundle = json.loads(data)
        release, app = bundle["release"], bundle.get("app")
        if bundle["format"] != 1 or bundle["node"] != env["NODE"]:
            raise Refused(f"a format {bundle['format']} bundle for {bundle['node']}; this is {env['NODE']}")
        # What a new release's preflight serves: checked before anything is installed or fetched.
        module = app_module(app, bundle.get("files", [])) if app else None
        # firstApply runs once: a first apply that failed its health check is retried as a change.
        first_done = os.path.join(state, FIRST_APPLY_DONE)
        first = not applied and not os.path.exists(first_done)
        # Checked on the first apply too: cloud-init has just installed the bootstrap's packages (the
        # same list), so it costs a dpkg-query per package and installs nothing; were one missing (a
        # mirror failing at boot), it is installed here, before the boot script needs it. apt never
        # overlaps cloud-init's own: the first apply runs from runcmd, after its packages.
        ensure_users(bundle, run)
        sourced = ensure_apt_sources(bundle.get("aptSources", []), root, run)
        ensure_packages(bundle.get("packages", []) + sourced, run)
        # A release (issue 18) is made ready before anything waits; the primary's release command
        # runs before it waits for the replica, which waits for the command (not at first boot).
        release_dir = prepare_release(app, root, s3, run) if app else None
        if app and app.get("command") and not first:
            run_release_command(app, root, release_dir, ssm, run, state)
        # Not on the first apply: the replica's first boot waits for the primary's database.
        deadline = time.monotonic() + AFTER_WAIT
        if app and app.get("awaitCommand") and applied:
            primary = app["awaitCommand"]
            theirs = awaited(
                ssm, primary["status"],
                lambda s: s.get("release") == app["release"] and s.get("state") in ("done", "failed"), deadline,
            )
            if theirs is None:
                log(f"bundle {sha[:12]}: waiting for {primary['node']}'s release command")
                return WAITING
            if theirs["state"] == "failed":
                raise ReleaseRefused(f"the release command failed on {primary['node']}: {theirs.get('reason', '')}")
        for other in bundle["after"] if applied else []:
            ready = lambda s: (s.get("release"), s.get("state")) == (release, "applied")  # noqa: E731
            if awaited(ssm, other["status"], ready, deadline) is None:
                log(f"bundle {sha[:12]}: waiting for {other['node']}")
                return WAITING
        log(f"applying bundle {sha[:12]} (release {release[:12]}){', the first' if first else ''}")
        last_bundle = read_json(os.path.join(state, "current.json")) or {}
        previous = {entry["path"]: entry for entry in last_bundle.get("files", [])}
        changed = write_files(bundle, root, os.path.join(state, "backup"), run, previous)
        apply_tmpfiles(bundle, run)
        # The app's release: at first boot current is there before the boot script starts the app;
        # later a new one must pass a preflight before current moves to it.
        before, switched = current_release(root), False
        if app and first:
            point_current(root, app["release"])
        elif app and before != app["release"]:
            preflight = [under(root, TOOL), "preflight", release_dir, module, *app_sandbox(app)]
            check(run, preflight, "preflight", ReleaseRefused)
            point_current(root, app["release"])
            switched = True
        try:
            if first:
                actions = [("firstApply", argv) for argv in bundle.get("firstApply", [])]
            else:
                actions = [("onChange", argv) for argv in distinct(entry.get("onChange") for entry in changed)]
            for what, argv in actions:
                check(run, argv, what)
            if app:
                forget_app_env_password(root)
            if first:
                install(first_done, b"", os.getuid(), os.getgid(), 0o600)
            if app and app.get("command") and first:
                run_release_command(app, root, release_dir, ssm, run, state)
            if switched:
                check(run, ["systemctl", "reload", APP_UNIT], "reload", ReleaseRefused)
                wait_for_workers(root, run, release_dir)
            if bundle.get("healthCheck"):
                health_check(bundle["healthCheck"], run, app_diagnostics(root) if app else ())
        except Refused as error:
            if not switched:
                raise
            switch_back(root, before, run)
            raise ReleaseRefused(f"{error} (back on release {(before or 'none')[:12]})") from error
        if app:
            remember_and_prune(root, state, app["release"])
    except (Refused, ValueError, KeyError, TypeError) as error:
        reason = str(error) if isinstance(error, Refused) else f"not a valid bundle: {error!r}"
        tries = refusals["tries"] + 1 if refusals else 1
        log(f"refused bundle {sha[:12]}{f' (its try {tries})' if tries > 1 else ''}: {reason}")
        app_id = app.get("release") if isinstance(app, dict) else None
        release_failed = isinstance(error, ReleaseRefused)
        report(env, ssm, cloudwatch, status_of(sha, release, reason, app_id), state, release_failed)
        if patient:  # once reported: a status that could not be written is written by the next look
            note_refusal(state, sha, tries, release_failed)
        return 1
    status = status_of(sha, release, app=app["release"] if app else None)
    install(os.path.join(state, "applied.json"), json.dumps(status).encode(), os.getuid(), os.getgid(), 0o600)
    install(os.path.join(state, "current.json"), data, os.getuid(), os.getgid(), 0o600)
    install(os.path.join(state, HEEDED), json.dumps(list(HEEDED_KEYS)).encode(), os.getuid(), os.getgid(), 0o600)
    forget_refusals(state)
    report(env, ssm, cloudwatch, status, state)
    log(f"applied bundle {sha[:12]}")
    return 0


def apply_once(bundle_path, ssm, s3, cloudwatch, root, run, quiet=False, patient=False):
    """Steps 1-7 of issue 17's apply; one at a time (the first apply, the watcher's and one started by
    hand never overlap)."""
    with open(under(root, BUNDLE_ENV)) as handle:
        env = dict(line.rstrip("\n").split("=", 1) for line in handle if "=" in line)
    state = under(root, BUNDLE_STATE)
    os.makedirs(state, mode=0o700, exist_ok=True)
    with open(os.path.join(state, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return apply_bundle(env, bundle_path, ssm, s3, cloudwatch, root, run, quiet, patient)


def apply_command(bundle_path, ssm, s3, cloudwatch, root="/", run=subprocess.run):
    result = apply_once(bundle_path, ssm, s3, cloudwatch, root, run)
    return 0 if result in (IDLE, WAITING) else result


# The watcher (webstack-applier.service, kept running by webstack-apply.timer). A process per look
# cost each node about a second of CPU every 30 s, most of it Python importing the SDK and making its
# clients (README, "A bundle per node"); the watcher makes them once and keeps its connection.
WATCH_INTERVAL = 30
# The watcher and the collector each end after an hour, between two looks, so neither runs on
# libraries an upgrade replaced for longer than that: needrestart leaves them alone (a restart would
# kill an apply and the apt it runs).
LIFETIME = 3600


def tool_identity(root):
    """The tool file's inode and mtime: every write of it (install) is a new file renamed into place."""
    try:
        status = os.stat(under(root, TOOL))
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns


def repeat(interval, look, root, done):
    """look() every `interval` s from the start of the one before, while it returns None; what else it
    returns ends the process with it. So do, between two looks, a tool replaced on disk (an apply: the
    next process, which the unit's timer starts, runs the new one) and LIFETIME (0); `done`
    names the work in the last case's line ("watched")."""
    end, tool = time.monotonic() + LIFETIME, tool_identity(root)
    while True:
        started = time.monotonic()
        result = look()
        if result is not None:
            return result
        if tool_identity(root) != tool:
            log("the tool was replaced; ending, for the timer to start the new one")
            return 0
        if started + interval > end:
            log(f"{done} for {LIFETIME // 60} min; ending, to start again on today's libraries")
            return 0
        time.sleep(max(0.0, started + interval - time.monotonic()))


def watch_command(ssm, s3, cloudwatch, root="/", run=subprocess.run):
    """A look every WATCH_INTERVAL s from the start of the one before (as the timer's runs were), while
    a look writes none of the bundle's files (its bundle applied, or waiting for another node); the
    first that applies or refuses ends the process, so the next look, 30 s later by the timer, runs
    the tool that look may have written; so does a tool replaced by an apply started by hand.
    'Nothing to do' is said once."""
    quiet = False

    def look():
        nonlocal quiet
        result = apply_once(None, ssm, s3, cloudwatch, root, run, quiet, patient=True)
        if result not in (IDLE, WAITING):
            return result
        quiet = quiet or result is IDLE
        return None

    return repeat(WATCH_INTERVAL, look, root, "watched")


def collect_every(interval, collect, root="/"):
    """The collector as one process (webstack-collector.service, kept running by its timer), as the
    watcher is: a process per run cost a node about a second of CPU a minute. A run that could not
    read or keep something ends it with 1, so the unit reads failed as the run's own unit did; its
    timer starts the next process a minute later."""
    return repeat(interval, lambda: None if collect() == 0 else 1, root, "collected")


class Lazy:
    """A client made on its first use: the watcher's looks that find nothing to do need SSM's only."""

    def __init__(self, make):
        self._make, self._client = make, None

    def __getattr__(self, name):
        if self._client is None:
            self._client = self._make()
        return getattr(self._client, name)


# Backups (issue 20): a nightly physical backup of the replica and the primary's binlogs every five
# minutes, both into the stack's bucket (SSE-KMS by the bucket's default), and a restore to a point
# in time. Settings from BACKUP_ENV (rendered by cloud-init/backups.ts from model/backups.ts).
BACKUP_ENV = "/etc/webstack/backup.env"
NODE_ENV = "/etc/webstack/node.env"
RESTORE_DIR_NAME = ".webstack-restore"
STAMP = "%Y%m%dT%H%M%SZ"


class BackupError(Exception):
    """A backup, a shipping or a restore that cannot go on; its message says why and what to do."""


def env_file(path):
    with open(path) as handle:
        return dict(line.rstrip("\n").split("=", 1) for line in handle if "=" in line)


def backup_settings(root="/"):
    """backup.env, and the stack's database mode as the node's own settings say it (node.env's
    DB_CLUSTER; a node from before the modes has none: replication)."""
    settings = env_file(under(root, BACKUP_ENV))
    try:
        settings["DB_CLUSTER"] = env_file(under(root, NODE_ENV)).get("DB_CLUSTER", "replication")
    except FileNotFoundError:
        raise BackupError(f"{NODE_ENV} is missing: the database's mode is unknown, nothing was done") from None
    return settings


DATABASE_MODES = ("replication", "galera")


def database_mode(settings):
    """replication (s2 the primary, s1 its replica) or galera (both members of one cluster)."""
    mode = settings.get("DB_CLUSTER", "replication")
    if mode not in DATABASE_MODES:
        raise BackupError(f"{NODE_ENV}: DB_CLUSTER={mode!r}: expected one of {', '.join(DATABASE_MODES)}")
    return mode


def refused_in_galera(settings):
    """A restore rebuilds a replica and replicates it again: with Galera that would be wrong, so it is
    refused before anything is read or changed."""
    if database_mode(settings) == "galera":
        raise BackupError(
            "webstack-db-restore is refused: this stack's database is `database: galera`, and this command "
            "restores the replica of `database: replication` only. A Galera cluster is restored by restoring one "
            "member and founding a new cluster from it, the other member rejoining by a full state transfer: see "
            "the README's section \"Database modes\". Nothing was changed.")


def sql_output(settings, query, run=subprocess.run, options=("--batch", "--skip-column-names")):
    """What a query as root over the local socket prints (raises with the client's error)."""
    result = run([settings["DB_CLIENT"], "--protocol=socket", "--user=root", *options, "--execute", query],
                 capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise BackupError(f"{query!r} failed: {result.stderr.strip()}")
    return result.stdout


def sql_lines(settings, query, run=subprocess.run):
    """The tab-separated rows of a query's answer."""
    return [line.split("\t") for line in sql_output(settings, query, run).splitlines()]


def replica_fields(settings, run=subprocess.run):
    """SHOW REPLICA STATUS, field by field (empty when the server replicates from nothing)."""
    return vertical_fields(sql_output(settings, "SHOW REPLICA STATUS\\G", run, options=()))


def domain_position(gtid_list, domain):
    """The seq_no of a domain in a GTID list ('2-2-34,1-1-3'), or 0."""
    for gtid in filter(None, gtid_list.split(",")):
        d, _, seq = gtid.strip().split("-")
        if d == str(domain):
            return int(seq)
    return 0


def first_seq_no(replay_path, domain):
    """The first GTID seq_no of a domain in mariadb-binlog's output, read line by line (it can be large)."""
    current = None
    with open(replay_path) as handle:
        for line in handle:
            found = re.search(r"gtid_domain_id=(\d+)", line)
            if found:
                current = found.group(1)
            found = re.search(r"gtid_seq_no=(\d+)", line)
            if found and current == str(domain):
                return int(found.group(1))
    return None


def gtid_text(answer):
    """A GTID position on one line: MySQL breaks a set after each comma (the client's batch output
    as a literal \\n)."""
    return re.sub(r"\\n|\s", "", answer)


def gtid_set_ends(gtid_set):
    """Each server uuid's last transaction number in a MySQL GTID set ('uuid:1-21:25-30,uuid2:1-8'):
    the end of its last interval; a tag's intervals (uuid:tag:1-3) are another sequence."""
    ends = {}
    for member in filter(None, gtid_set.split(",")):
        uuid, *intervals = member.split(":")
        end = 0
        for interval in intervals:
            if not re.fullmatch(r"\d+(-\d+)?", interval):
                break
            end = int(interval.rpartition("-")[2])
        ends[uuid.lower()] = end
    return ends


MYSQL_GTID_NEXT = re.compile(r"SET @@SESSION\.GTID_NEXT= '([0-9a-fA-F-]{36}):(\d+)'")


def first_transactions(replay_path):
    """Each server uuid's first transaction number in mysqlbinlog's output, read line by line."""
    firsts = {}
    with open(replay_path) as handle:
        for line in handle:
            found = MYSQL_GTID_NEXT.match(line)
            if found:
                firsts.setdefault(found.group(1).lower(), int(found.group(2)))
    return firsts


class MariaDBBackups:
    """What the backups do differently on MariaDB: mariadb-backup, and GTIDs as a list of one
    position per domain (a primary's domain is its server id)."""
    position_part = re.compile(r"\d+-\d+-\d+")  # one domain's GTID in a position
    replica_binlog = "Relay_Master_Log_File"  # SHOW REPLICA STATUS: the primary's binlog it applies
    printed_position = re.compile(r"gtid_slave_pos '([0-9,-]*)'")
    position_key = "gtid_slave_pos"  # the manifest's, as backups in buckets have it
    # The replica's applier paused for the backup's last moments only (its locking).
    backup_options = ("--slave-info", "--safe-slave-backup")
    # A Galera member replicates from nobody: the backup holds its cluster position instead. No
    # wsrep_desync of our own: the server desyncs and pauses the member itself for the backup's locked
    # end, BACKUP STAGE BLOCK_DDL to END (MDEV-23080: its commits wait, DDL sent to it fails, then it
    # catches up), and one desynced for the whole copy would fall behind the cluster while it still
    # serves reads and writes (its health check does not look at wsrep). The copy before that runs
    # synced: a slowed member may hold the cluster's writes back by flow control meanwhile.
    member_backup_options = ("--galera-info",)
    binlog_status = "SHOW MASTER STATUS"
    backup_files = ("mariadb_backup_info", "mariadb_backup_slave_info", "xtrabackup_binlog_pos_innodb")
    restore_conf = None  # its backup carries no replication settings: the restored server has none
    required = ()  # settings beyond both engines'
    before_replay = after_replay = ()
    replay_after = "--start-position"
    data_only = ("--sandbox",)
    executed_here, executed_on_primary = "SELECT @@gtid_binlog_pos", "SELECT @@global.gtid_binlog_pos"
    wait = "SELECT MASTER_GTID_WAIT('{target}', {seconds})"  # 0 once reached, -1 at the timeout
    io_state = "Slave_IO_State"

    @staticmethod
    def backup_position(prepared, recorded):
        """The position a restore replays from: the manifest's (the replica's gtid_slave_pos)."""
        return recorded

    @staticmethod
    def follows_on(replay, position, settings):
        """The primary's first write in the replay is the next after the backup's: no gap, no overlap."""
        domain = settings["PRIMARY_SERVER_ID"]
        start, first = domain_position(position, domain), first_seq_no(replay, domain)
        if first is not None and first != start + 1:
            raise BackupError(f"the binlogs' first write after the backup is {domain}-…-{first}, not "
                              f"{start + 1}: they do not follow on from the backup")

    @staticmethod
    def restored_to(binlog_pos, position, settings):
        domain = settings["PRIMARY_SERVER_ID"]
        return f"GTID {domain}-…-{max(domain_position(position, domain), domain_position(binlog_pos, domain))}"

    @staticmethod
    def reset_replication(settings, run):
        """Replication forgotten, its position where the restored data ends (which it returns)."""
        domain = server_id = settings["PRIMARY_SERVER_ID"]
        (binlog_pos, slave_pos), = sql_lines(settings, "SELECT @@gtid_binlog_pos, @@gtid_slave_pos", run)
        reached = max(domain_position(binlog_pos, domain), domain_position(slave_pos, domain))
        position = f"{domain}-{server_id}-{reached}"
        sql_lines(settings, f"STOP REPLICA; RESET REPLICA ALL; SET GLOBAL gtid_slave_pos = '{position}'", run)
        return position


class MySQLBackups:
    """What the backups do differently on MySQL 8.4: Percona XtraBackup, and GTIDs as a set of each
    server uuid's transaction numbers."""
    # One server's part of a GTID set: its uuid, then intervals and tags (uuid:tag:1-3).
    position_part = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}(:([A-Za-z_]\w*|\d+(-\d+)?))+")
    replica_binlog = "Relay_Source_Log_File"
    # "MySQL binlog position: filename '…', position '…', GTID of the last change '<set>'", the set
    # broken over lines.
    printed_position = re.compile(r"GTID of the last change '([^']*)'")
    position_key = "gtid_executed"
    # No --safe-slave-backup: since XtraBackup 8.0.22 it stops the applier before the InnoDB files are
    # copied, so for the whole backup (the replica-not-running alarm, stale reads). With row-based
    # GTID replication the position comes consistent from performance_schema.log_status anyway.
    backup_options = ("--slave-info",)
    member_backup_options = None  # Galera is MariaDB's (config `database`)
    binlog_status = "SHOW BINARY LOG STATUS"  # 8.4 has no SHOW MASTER STATUS
    backup_files = ("xtrabackup_binlog_info", "xtrabackup_slave_info", "xtrabackup_info", "xtrabackup_checkpoints",
                    "xtrabackup_tablespaces", "xtrabackup_binlog_pos_innodb")
    # The backup carries the replica's source settings (in InnoDB tables): the restored server would
    # replicate on past the point, at its start or at a reboot, until --resume.
    restore_conf = ("# webstack-db-restore: this server's data is a restored past; `webstack-db-restore --resume`"
                    " removes this.\n[mysqld]\nskip_replica_start = ON\n")
    required = ("DB_CONF_DIR",)  # where the restore's settings go
    # The server's GTIDs exactly the backup's before the replay; root writes through read_only.
    before_replay = ("SET GLOBAL super_read_only = OFF", "RESET BINARY LOGS AND GTIDS",
                     "SET GLOBAL gtid_purged = '{position}'")
    after_replay = ("SET GLOBAL super_read_only = ON",)
    replay_after = "--exclude-gtids"
    # --binary-mode alone: with input piped in it already refuses every client command but
    # delimiter and \C (MySQL has no --sandbox; --commands came only with client 8.4.6).
    data_only = ()
    executed_here = executed_on_primary = "SELECT @@global.gtid_executed"
    wait = "SELECT WAIT_FOR_EXECUTED_GTID_SET('{target}', {seconds})"  # 0 once reached, 1 at the timeout
    io_state = "Replica_IO_State"

    @staticmethod
    def backup_position(prepared, recorded):
        """The backup's own record of its GTID set (xtrabackup_binlog_info: file, position, set), which
        the log line the manifest took it from may have cut short (Percona's PXB-3302); the
        manifest's where the file names none."""
        try:
            with open(os.path.join(prepared, "xtrabackup_binlog_info")) as handle:
                fields = handle.read().split("\t", 2)
        except FileNotFoundError:
            return recorded
        own = gtid_text(fields[2]) if len(fields) == 3 else recorded
        if own != gtid_text(recorded):
            log(f"the backup's own GTID set, {own}, differs from its manifest's, {recorded}: the backup's is used")
        return own

    @staticmethod
    def follows_on(replay, position, settings):
        """Each server's first transaction in the replay is the next after the backup's last of it."""
        ends = gtid_set_ends(position)
        for uuid, first in first_transactions(replay).items():
            if first != ends.get(uuid, 0) + 1:
                raise BackupError(f"the binlogs' first write of {uuid} after the backup is {uuid}:{first}, not "
                                  f"{uuid}:{ends.get(uuid, 0) + 1}: they do not follow on from the backup")

    @staticmethod
    def restored_to(executed, position, settings):
        return f"GTID set {gtid_text(executed)}"

    @staticmethod
    def reset_replication(settings, run):
        """Replication forgotten: auto-position asks the primary for what gtid_executed lacks (returned)."""
        executed = gtid_text(sql_output(settings, "SELECT @@global.gtid_executed", run))
        sql_lines(settings, "STOP REPLICA; RESET REPLICA ALL", run)
        return executed


BACKUP_ENGINES = {"mariadb": MariaDBBackups, "mysql": MySQLBackups}


def backup_engine(settings):
    """The engine's differences, by the settings' DB_ENGINE (one table: the flow is the same on both)."""
    engine = BACKUP_ENGINES.get(settings.get("DB_ENGINE"))
    if engine is None:
        raise BackupError(f"{BACKUP_ENV}: DB_ENGINE={settings.get('DB_ENGINE', '')!r}: expected one of "
                          f"{', '.join(BACKUP_ENGINES)}")
    # Refused before anything changes: a restore that failed on it half-way could not put back either.
    for key in engine.required:
        if not settings.get(key, "").startswith("/"):
            raise BackupError(f"{BACKUP_ENV}: {key} is missing: {settings['DB_ENGINE']} needs it as an absolute path")
    return engine


def backup_object(settings):
    """A backup's stream, named by its format (mbstream, xbstream)."""
    return f"backup.{settings['STREAM_TOOL']}.zst"


def restore_conf_path(settings):
    """Read after the node's own settings (the name sorts last)."""
    return os.path.join(settings["DB_CONF_DIR"], "zz-webstack-restore.cnf")


def remove_restore_conf(settings):
    """Replication starts with the server again: the previous data put back, or --resume."""
    if backup_engine(settings).restore_conf:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(restore_conf_path(settings))


def locked(settings, action):
    """Backups, shipping and restores of one node never overlap."""
    os.makedirs(settings["STATE_DIR"], mode=0o755, exist_ok=True)
    with open(os.path.join(settings["STATE_DIR"], "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return action()


def save_state(path, value):
    """Atomically, readable by the collector, owned by whoever runs this (the units' sandbox forbids
    chown)."""
    install(path, (json.dumps(value, sort_keys=True) + "\n").encode(), os.geteuid(), os.getegid(), 0o644)


# Parts of 64 MiB: a multipart upload has at most 10,000, so one object can be 625 GiB.
UPLOAD_CONFIG = boto3.s3.transfer.TransferConfig(multipart_chunksize=64 * 1024 * 1024)


def upload_stream(s3, stream, bucket, key):
    """A stream of unknown length into one object (multipart past 8 MiB), SSE-KMS by the bucket's default."""
    s3.upload_fileobj(stream, bucket, key, Config=UPLOAD_CONFIG)


# A Galera member's backup holds its cluster position in a file that the backup tool writes into its
# stream under its locks (never into its log): "<cluster state uuid>:<seqno>", then a GTID domain on
# later versions. MariaDB 11 names it mariadb_backup_galera_info, earlier ones xtrabackup_galera_info.
GALERA_INFO_FILES = ("mariadb_backup_galera_info", "xtrabackup_galera_info")
GALERA_POSITION = re.compile(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}:-?\d+", re.IGNORECASE)


class StreamFile:
    """Small files picked out of an mbstream (XtraBackup's xbstream format) as it passes by. A chunk:
    "XBSTCK01", flags (1 byte), type (1), path length (4, little-endian) and path; a payload chunk ("P")
    then its length (8), offset in the file (8), CRC-32 (4) and bytes; an end-of-file chunk ("E") no more."""
    MAGIC = b"XBSTCK01"
    HEAD = 14  # magic, flags, type, path length
    KEPT_LIMIT = 1 << 16  # a kept file's chunk at most: the files kept are a line each

    def __init__(self, names):
        self.names, self.files, self.error = names, {}, None
        self.pending, self.skip = bytearray(), 0  # the next chunk's bytes so far; a payload's bytes to pass

    def feed(self, data):
        if self.error:  # nothing more is read, nor kept
            return
        data = memoryview(data)
        if self.skip:
            passed = min(self.skip, len(data))
            self.skip, data = self.skip - passed, data[passed:]
        self.pending += data
        while self.error is None and not self.skip and self.take_chunk():
            pass

    def take_chunk(self):
        """The next chunk taken from what is pending; False while its header (or a kept file's
        bytes) is not all there yet."""
        p = self.pending
        if len(p) < self.HEAD:
            return False
        if p[:8] != self.MAGIC:
            self.error = "not an mbstream: a chunk does not start with XBSTCK01"
            return False
        kind, path_end = chr(p[9]), self.HEAD + int.from_bytes(p[10:14], "little")
        if kind == "E":
            if len(p) < path_end:
                return False
            del p[:path_end]
            return True
        if kind != "P":
            self.error = f"a chunk of a type this tool does not know, {kind!r}"
            return False
        start = path_end + 20
        if len(p) < start:
            return False
        path = p[self.HEAD:path_end].decode("utf-8", "replace")
        length, offset, checksum = (int.from_bytes(p[a:b], "little") for a, b in
                                    ((path_end, path_end + 8), (path_end + 8, path_end + 16), (path_end + 16, start)))
        if path not in self.names:
            passed = min(length, len(p) - start)
            del p[:start + passed]
            self.skip = length - passed
            return True
        if length > self.KEPT_LIMIT:
            self.error = f"{path}: a chunk of {length} bytes"
            return False
        if len(p) < start + length:
            return False
        payload = bytes(p[start:start + length])
        del p[:start + length]
        kept = self.files.setdefault(path, bytearray())
        if zlib.crc32(payload) != checksum or offset != len(kept):
            self.error = f"{path}: a chunk whose checksum or offset is wrong"
            return False
        kept += payload
        return True


def pump(source, target, tap):
    """The backup tool's stream into zstd, the tap reading along. Both ends are closed whatever
    happens, so neither process waits on the other (zstd gone: the backup tool's next write fails)."""
    try:
        while data := source.read1(1 << 20):
            tap.feed(data)
            target.write(data)
    except BrokenPipeError:
        pass  # zstd is gone: its exit code says so
    except Exception as error:  # said with the backup's result, never lost in this thread
        tap.error = f"passing the stream on failed: {error!r}"
    finally:
        with contextlib.suppress(BrokenPipeError):
            target.close()
        source.close()


def synced_member(settings, run):
    """A Galera member is backed up only while it is a synced member of the primary component: a
    joining, donating or cut-off member's data may be behind the cluster's (the next run tries again)."""
    status = dict(row[:2] for row in sql_lines(
        settings, "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_status', 'wsrep_local_state_comment')",
        run) if len(row) >= 2)
    cluster, state = status.get("wsrep_cluster_status", ""), status.get("wsrep_local_state_comment", "")
    if (cluster, state) != ("Primary", "Synced"):
        raise BackupError(f"this Galera member is {state or 'in no state'} in a {cluster or 'missing'} component, not "
                          "Synced in the Primary one: no backup (its data may be behind the cluster's)")


def galera_position(tap, settings):
    """The cluster position the member's backup holds: its galera-info file's "<state uuid>:<seqno>"."""
    if tap.error or tap.pending or tap.skip:
        why = tap.error or "it ends inside a chunk"
        raise BackupError(f"{settings['BACKUP_TOOL']}'s stream: {why}: no manifest written")
    for name in GALERA_INFO_FILES:
        if name in tap.files:
            words = tap.files[name].decode("ascii", "replace").split()
            if words and GALERA_POSITION.fullmatch(words[0]):
                return words[0]
            raise BackupError(f"the backup's {name} holds {bytes(tap.files[name])!r}, not <state uuid>:<seqno>: "
                              "no manifest written")
    raise BackupError(f"{settings['BACKUP_TOOL']}'s stream holds no {' or '.join(GALERA_INFO_FILES)}: no manifest "
                      "written")


def backup_full_command(s3, settings, run=subprocess.run, popen=subprocess.Popen, clock=time.time):
    """The backup node's physical backup (the replica's; with Galera, the member's), streamed (never a
    copy on disk) through zstd into FULL_PREFIX<stamp>/backup.<stream tool>.zst; then its manifest,
    whose presence marks it complete."""
    engine = backup_engine(settings)
    galera = database_mode(settings) == "galera"
    started = clock()
    if galera:
        if engine.member_backup_options is None:
            raise BackupError(f"`database: galera` is MariaDB's; this node's DB_ENGINE is {settings['DB_ENGINE']}")
        synced_member(settings, run)
        options, tap = engine.member_backup_options, StreamFile(GALERA_INFO_FILES)
    else:
        status = replica_fields(settings, run)
        # The primary's binlog the replica was applying before the backup: a restore replays the
        # primary's binlogs from this file on (the backup's GTID skips what it already holds).
        primary_binlog = status.get(engine.replica_binlog)
        if not primary_binlog:
            raise BackupError("this server is not replicating: a backup needs the replica "
                              "(SHOW REPLICA STATUS is empty)")
        options, tap = engine.backup_options, None
    prefix = f"{settings['FULL_PREFIX']}{time.strftime(STAMP, time.gmtime(started))}/"
    errors = tempfile.TemporaryFile(mode="w+")
    backup = popen([settings["BACKUP_TOOL"], "--backup", f"--stream={settings['STREAM_TOOL']}", *options,
                    "--user=root", "--target-dir=/tmp"], stdout=subprocess.PIPE, stderr=errors)
    copier = None
    if tap is None:
        zstd = popen(["zstd", "-q", "-c", "-T0"], stdin=backup.stdout, stdout=subprocess.PIPE)
        backup.stdout.close()
    else:  # the stream passes through here, where the tap reads it
        zstd = popen(["zstd", "-q", "-c", "-T0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        copier = threading.Thread(target=pump, args=(backup.stdout, zstd.stdin, tap), daemon=True)
        copier.start()
    try:
        upload_stream(s3, zstd.stdout, settings["BACKUP_BUCKET"], prefix + backup_object(settings))
    finally:
        zstd.stdout.close()
        if copier:
            copier.join()
        codes = (backup.wait(), zstd.wait())
    errors.seek(0)
    output = errors.read()
    if codes != (0, 0):
        sys.stderr.write(output[-4000:])
        raise BackupError(f"{settings['BACKUP_TOOL']} exited {codes[0]}, zstd {codes[1]}: no manifest written, "
                          f"{prefix} is incomplete")
    if galera:
        position = galera_position(tap, settings)
        recorded, said = {"database": "galera", "galera_position": position}, f"galera position {position}"
    else:
        found = engine.printed_position.findall(output)
        if not found:
            raise BackupError(f"{settings['BACKUP_TOOL']} printed no {engine.position_key}: no manifest written")
        position = gtid_text(found[-1])
        recorded = {engine.position_key: position, "primary_binlog": primary_binlog,
                    "binlog_node": settings["BINLOG_NODE"]}
        said = f"{engine.position_key} {position}, from {settings['BINLOG_NODE']}'s {primary_binlog}"
    finished = clock()
    manifest = {"format": 1, "node": settings["NODE"], "engine": settings["DB_ENGINE"], "started": started,
                "finished": finished, **recorded}
    s3.put_object(Bucket=settings["BACKUP_BUCKET"], Key=prefix + "manifest.json",
                  Body=(json.dumps(manifest, indent=2) + "\n").encode(), ContentType="application/json")
    save_state(settings["FULL_STATE"], {"finished": finished, "key": prefix})
    log(f"full backup {prefix} in {finished - started:.1f} s ({said})")
    return 0


# Beside the binlogs: the newest binlog of a run that sent everything, and the time before which
# every committed write is in the binlogs up to it.
BINLOG_MARKER = "shipped.json"


def binlog_number(name):
    return int(name.rsplit(".", 1)[1])


def ship_binlogs_command(s3, settings, run=subprocess.run, popen=subprocess.Popen, clock=time.time):
    """Every closed binlog not yet in the bucket, zstd'd, as BINLOG_PREFIX<file>.zst. Closes the open
    one first when it holds anything new, so the bucket holds every write committed before the run."""
    state_path = settings["BINLOG_STATE"]
    state = read_json(state_path) if os.path.exists(state_path) else {}
    binlog_status = backup_engine(settings).binlog_status
    started = clock()
    (active, position, *_), = sql_lines(settings, binlog_status, run)
    if [active, position] != [state.get("file"), state.get("pos")]:
        sql_lines(settings, "FLUSH BINARY LOGS", run)
    logs = [row[0] for row in sql_lines(settings, "SHOW BINARY LOGS", run)]
    closed, (active, position, *_) = logs[:-1], sql_lines(settings, binlog_status, run)[0]
    through = state.get("through")
    todo = [name for name in closed if through is None or binlog_number(name) > binlog_number(through)]
    gap = None
    if through is not None and todo and binlog_number(todo[0]) != binlog_number(through) + 1:
        gap = f"binlogs after {through} up to {todo[0]} were purged before they were shipped"
    base = os.path.dirname(sql_lines(settings, "SELECT @@log_bin_basename", run)[0][0])
    for name in todo:
        zstd = popen(["zstd", "-q", "-c", os.path.join(base, name)], stdout=subprocess.PIPE)
        try:
            upload_stream(s3, zstd.stdout, settings["BACKUP_BUCKET"], f"{settings['BINLOG_PREFIX']}{name}.zst")
        finally:
            zstd.stdout.close()
            if zstd.wait() != 0:
                raise BackupError(f"zstd could not read {name}")
    through = todo[-1] if todo else through
    # Last, and on every run (an idle primary too): what a restore may rely on. A run that failed
    # half-way leaves the previous marker, which names only binlogs that were all sent.
    marker = {"through": through, "complete_through": started}
    s3.put_object(Bucket=settings["BACKUP_BUCKET"], Key=settings["BINLOG_PREFIX"] + BINLOG_MARKER,
                  Body=(json.dumps(marker) + "\n").encode(), ContentType="application/json")
    save_state(state_path, {"shipped": started, "through": through, "file": active, "pos": position})
    log(f"shipped {len(todo)} binlogs ({', '.join(todo) or 'none new'}); the bucket holds every write "
        f"committed before {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(started))} UTC")
    if gap:
        raise BackupError(f"{gap}: no point-in-time restore across them; the next full backup starts a new chain")
    return 0


def parse_point(text, now):
    """'YYYY-MM-DD HH:MM:SS' (or with a T, optionally Z) in UTC, never in the future."""
    value = text.strip().rstrip("Z").replace("T", " ")
    try:
        point = datetime.datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        raise BackupError(f"--to {text!r}: expected a UTC time as 'YYYY-MM-DD HH:MM:SS'") from None
    if point.timestamp() > now:
        raise BackupError(f"--to {text!r} is in the future")
    return point


def list_keys(s3, bucket, prefix):
    """(key, LastModified) under a prefix, every page."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys += [(o["Key"], o["LastModified"]) for o in page.get("Contents", [])]
    return keys


def restore_plan(s3, settings, point):
    """The newest complete backup finished by the point and the primary's binlogs that take it there;
    refuses when the bucket cannot give exactly the writes committed before the point."""
    bucket = settings["BACKUP_BUCKET"]
    manifests = sorted(k for k, _ in list_keys(s3, bucket, settings["FULL_PREFIX"]) if k.endswith("/manifest.json"))
    chosen = None
    for key in reversed(manifests):
        manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        # A Galera member's backup holds no replica's position: never one a replica is restored from.
        if manifest.get("database", "replication") == "replication" and manifest["finished"] <= point.timestamp():
            chosen = dict(manifest, prefix=key[: -len("manifest.json")])
            break
    if chosen is None:
        raise BackupError(f"no full backup finished by {point:%Y-%m-%d %H:%M:%S} UTC "
                          f"({len(manifests)} in s3://{bucket}/{settings['FULL_PREFIX']})")
    prefix = settings["BINLOG_PREFIX"]
    # Listed first: S3 answers a GetObject of a missing key with 403, not 404, to a role whose
    # s3:ListBucket is limited by prefix.
    listed = [k for k, _ in list_keys(s3, bucket, prefix)]
    if prefix + BINLOG_MARKER not in listed:
        raise BackupError(f"no binlogs were ever shipped to s3://{bucket}/{prefix}")
    marker = json.loads(s3.get_object(Bucket=bucket, Key=prefix + BINLOG_MARKER)["Body"].read())
    if marker["complete_through"] < point.timestamp():
        raise BackupError(f"the shipped binlogs hold the writes committed before "
                          f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(marker['complete_through']))} UTC only, "
                          f"not up to {point:%Y-%m-%d %H:%M:%S}: wait for the next shipping (every 5 minutes) or "
                          "choose an earlier time")
    first, last = binlog_number(chosen["primary_binlog"]), binlog_number(marker["through"] or "none.0")
    if first > last:
        raise BackupError(f"the backup {chosen['prefix']} replays from {chosen['primary_binlog']}, and the shipped "
                          f"binlogs end at {marker['through']}: the binlogs and the backup are of different servers")
    names = sorted((k[len(prefix):-len(".zst")] for k in listed if k.endswith(".zst")), key=binlog_number)
    names = [n for n in names if first <= binlog_number(n) <= last]
    missing = sorted(set(range(first, last + 1)) - {binlog_number(n) for n in names})
    if missing:
        raise BackupError(f"binlogs numbered {missing} (from {chosen['primary_binlog']}, which the backup "
                          f"{chosen['prefix']} replays from, to {marker['through']}) are missing from "
                          f"s3://{bucket}/{prefix}: no restore across them")
    return chosen, names


def download(s3, bucket, key, argv, stdout=None, popen=subprocess.Popen):
    """An object's body into a command's stdin (zstd -d …), which must succeed."""
    process = popen(argv, stdin=subprocess.PIPE, stdout=stdout)
    try:
        s3.download_fileobj(bucket, key, process.stdin)
    finally:
        process.stdin.close()
        if process.wait() != 0:
            raise BackupError(f"{shlex.join(argv)} failed on s3://{bucket}/{key}")


def move_entries(source, target):
    os.makedirs(target, mode=0o700, exist_ok=True)
    for entry in os.listdir(source):
        if entry != RESTORE_DIR_NAME:
            os.rename(os.path.join(source, entry), os.path.join(target, entry))


def systemctl(run, *args):
    check(run, ["systemctl", *args], "systemctl", BackupError)


def hold_app(settings, run):
    """Until --resume: the app does not start, not even at a boot (the node holds the past)."""
    save_state(restore_flag(settings), {"since": time.time()})
    os.makedirs(os.path.dirname(app_hold_path(settings)), mode=0o755, exist_ok=True)
    with open(app_hold_path(settings), "w") as handle:
        handle.write("# webstack-db-restore: this node's database holds a restored past; "
                     "`webstack-db-restore --resume` removes this.\n"
                     f"[Unit]\nConditionPathExists=!{restore_flag(settings)}\n")
    run(["systemctl", "daemon-reload"])


def release_app(settings, run):
    for path in (app_hold_path(settings), restore_flag(settings)):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    run(["systemctl", "daemon-reload"])


def restore_flag(settings):
    return os.path.join(settings["STATE_DIR"], "restored.json")


def app_hold_path(settings):
    return os.path.join(settings.get("SYSTEMD_DIR", "/etc/systemd/system"), f"{settings['APP_SERVICE']}.d",
                        "50-webstack-restored.conf")


class Interrupted(BaseException):
    """SIGTERM or SIGHUP (a dropped session) during a restore: handled as a failure, never a silent end."""


def interrupted(signum, frame):
    raise Interrupted(f"signal {signum}")


def restore_command(s3, settings, point_text, assume_yes=False, run=subprocess.run, popen=subprocess.Popen,
                    clock=time.time, ask=input):
    """Replaces this node's database with the newest backup finished by the point, then the primary's
    binlogs up to (not including) the point's second. The old data is kept aside until the restored
    server is up and replayed, and put back, with the server and the app started again, if anything
    before that fails (a signal too). Replication and the app stay stopped until --resume."""
    refused_in_galera(settings)
    engine = backup_engine(settings)
    started = clock()
    point = parse_point(point_text, started)
    bucket, data = settings["BACKUP_BUCKET"], settings["DATA_DIR"]
    work = os.path.join(data, RESTORE_DIR_NAME)
    old, new, logs = (os.path.join(work, d) for d in ("old", "new", "binlogs"))
    if os.path.exists(work):
        raise BackupError(
            f"{work} exists: an earlier restore did not finish. If {old} holds files, they are the data from before "
            f"it: stop {settings['DB_SERVICE']}, move them back into {data} (in place of what is there), then remove "
            f"{work} and start {settings['DB_SERVICE']} and {settings['APP_SERVICE']}. Otherwise remove {work}.")
    backup, binlogs = restore_plan(s3, settings, point)
    log(f"restoring {backup['prefix']} (finished {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(backup['finished']))}"
        f" UTC) and {len(binlogs)} binlogs of {backup['binlog_node']} ({binlogs[0]}..{binlogs[-1]}) up to "
        f"{point:%Y-%m-%d %H:%M:%S} UTC")
    if not assume_yes and ask(f"This replaces the database on {settings['NODE']}. Type the node's name to go on: ") != settings["NODE"]:
        raise BackupError("not confirmed: nothing changed")
    # A node already holding a restored past (an earlier --to, no --resume yet) keeps holding it if
    # this run fails: put back, its server starts without replicating and its app stays stopped.
    held = os.path.exists(restore_flag(settings))
    handlers = {s: signal.signal(s, interrupted) for s in (signal.SIGTERM, signal.SIGHUP)}
    phase = "stopped"  # then "aside" (moving the old data out), then "in" (the backup's files moving in)
    try:
        hold_app(settings, run)
        systemctl(run, "stop", settings["APP_SERVICE"])
        systemctl(run, "stop", settings["DB_SERVICE"])
        os.makedirs(new, mode=0o700)
        os.makedirs(logs, mode=0o700)
        # Straight from S3 into the files: no compressed copy on the volume.
        download(s3, bucket, backup["prefix"] + backup_object(settings),
                 ["bash", "-o", "pipefail", "-c", 'zstd -q -d | "$0" -x -C "$1"', settings["STREAM_TOOL"], new],
                 popen=popen)
        check(run, [settings["BACKUP_TOOL"], "--prepare", f"--target-dir={new}"], "prepare", BackupError)
        position = engine.backup_position(new, backup[engine.position_key])
        # It goes into SQL and a command line: a GTID position and nothing else.
        if not all(engine.position_part.fullmatch(part) for part in filter(None, position.split(","))):
            raise BackupError(f"the backup's GTID position {position!r} is not one: nothing replayed")
        for name in binlogs:
            download(s3, bucket, f"{settings['BINLOG_PREFIX']}{name}.zst",
                     ["zstd", "-q", "-d", "-o", os.path.join(logs, name)], popen=popen)
        phase = "aside"
        move_entries(data, old)
        phase = "in"
        # The tool's own placing of the files (undo and log files too), beside the work directory.
        check(run, [settings["BACKUP_TOOL"], "--move-back", "--force-non-empty-directories", f"--datadir={data}",
                    f"--target-dir={new}"], "move back", BackupError)
        for name in engine.backup_files:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(data, name))
        entries = [os.path.join(data, e) for e in os.listdir(data) if e != RESTORE_DIR_NAME]
        check(run, ["chown", "-R", "mysql:mysql", "--", *entries], "chown", BackupError)
        if engine.restore_conf:
            install(restore_conf_path(settings), engine.restore_conf.encode(), os.geteuid(), os.getegid(), 0o644)
        systemctl(run, "start", settings["DB_SERVICE"])
        for statement in engine.before_replay:
            sql_output(settings, statement.format(position=position), run)
        replay = os.path.join(work, "replay.sql")
        with open(replay, "w") as handle:
            # The binlogs' times are read in UTC, as the point is given.
            # A backup holding no transaction yet (an empty set): every one in the binlogs is after it.
            after = [f"{engine.replay_after}={position}"] if position else []
            result = run(["env", "TZ=UTC", settings["BINLOG_TOOL"], *after,
                          f"--stop-datetime={point:%Y-%m-%d %H:%M:%S}", *[os.path.join(logs, n) for n in binlogs]],
                         stdout=handle, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise BackupError(f"{settings['BINLOG_TOOL']} failed: {result.stderr.strip()}")
        engine.follows_on(replay, position, settings)
        with open(replay) as handle:
            # Binary mode and no client commands: the binlogs' text is data, never a client command.
            result = run([settings["DB_CLIENT"], "--protocol=socket", "--user=root", "--binary-mode",
                          *engine.data_only], stdin=handle, capture_output=True, text=True)
        if result.returncode != 0:
            raise BackupError(f"replaying the binlogs failed: {result.stderr.strip()}")
        for statement in engine.after_replay:
            sql_output(settings, statement, run)
    except BaseException as error:
        put_back(settings, run, phase, work, old, data, error, held)
        raise
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    run(["rm", "-rf", "--", work])
    reached = engine.restored_to(sql_output(settings, engine.executed_here, run).strip(), position, settings)
    log(f"restored to {point:%Y-%m-%d %H:%M:%S} UTC in {clock() - started:.1f} s: {backup['binlog_node']}'s writes "
        f"up to {reached}. "
        f"Replication and {settings['APP_SERVICE']} stay stopped, also across a reboot: "
        "`webstack-db-restore --resume` replicates again and starts it")
    return 0


def put_back(settings, run, phase, work, old, data, error, held=False):
    """After a failed restore: the previous data where it was, the server and the app running again
    (a node held before the restore: its server only, still held). The work directory goes only once
    nothing of the old data is left in it."""
    log(f"restore failed ({error}): putting the previous data back")
    run(["systemctl", "stop", settings["DB_SERVICE"]])
    if not held:
        remove_restore_conf(settings)
    if phase == "in":  # the backup's files (some or all) are in place: they go
        for entry in os.listdir(data):
            if entry != RESTORE_DIR_NAME:
                run(["rm", "-rf", "--", os.path.join(data, entry)])
    if os.path.isdir(old):
        move_entries(old, data)
    if os.path.isdir(old) and os.listdir(old):
        log(f"{old} still holds data from before the restore: it is left in place")
        return
    run(["rm", "-rf", "--", work])
    if not held:
        release_app(settings, run)
    units = (settings["DB_SERVICE"],) if held else (settings["DB_SERVICE"], settings["APP_SERVICE"])
    for unit in units:
        if run(["systemctl", "start", unit]).returncode != 0:
            log(f"{unit} did not start again after the failed restore: see `systemctl status {unit}`")
            return
    if held:
        log(f"the previous (restored) data is back and {settings['DB_SERVICE']} runs, still held: "
            "`webstack-db-restore --resume` replicates again and starts the app")
    else:
        log(f"the previous data is back; {settings['DB_SERVICE']} and {settings['APP_SERVICE']} run again")


def primary_answer(settings, query, run=subprocess.run):
    """The primary's answer to a query, asked as the replication user over verified TLS (the password
    through a pipe: never in an argument or a file)."""
    with open(settings["REPLICATION_PASSWORD_FILE"]) as handle:
        credential = handle.read().strip()
    with open(settings["CLIENT_TLS_FILE"]) as handle:
        options = f"[client]\nuser=replication\npassword={credential}\n{handle.read()}"
    reader, writer = os.pipe()
    try:
        os.write(writer, options.encode())  # a few hundred bytes: within any pipe's buffer
        os.close(writer)
        result = run([settings["DB_CLIENT"], f"--defaults-extra-file=/dev/fd/{reader}", f"--host={settings['DB_PRIMARY_IP']}",
                      f"--port={settings['DB_PRIMARY_PORT']}", "--connect-timeout=10", "--batch", "--skip-column-names",
                      "--execute", query], pass_fds=(reader,), capture_output=True, text=True, timeout=60)
    finally:
        os.close(reader)
    if result.returncode != 0:
        raise BackupError(f"the primary {settings['DB_PRIMARY_IP']} did not answer: {result.stderr.strip()}")
    return result.stdout.strip()


def resume_command(settings, run=subprocess.run, clock=time.time, wait_seconds=900):
    """After a restore: replication from where the restored data ends, then the app once caught up."""
    refused_in_galera(settings)
    engine = backup_engine(settings)
    reached = engine.reset_replication(settings, run)
    remove_restore_conf(settings)
    check(run, [settings["DB_BOOTSTRAP"]], "replication", BackupError)
    # Caught up: the applier is through what the primary had written once replication ran again.
    target = gtid_text(primary_answer(settings, engine.executed_on_primary, run))
    deadline = clock() + wait_seconds
    while True:
        left = int(deadline - clock())
        wait = engine.wait.format(target=target, seconds=min(left, 10))
        if left > 0 and sql_output(settings, wait, run).strip() == "0":
            break
        fields = replica_fields(settings, run)
        if left <= 0 or fields.get("Last_IO_Error") or fields.get("Last_SQL_Error"):
            why = fields.get("Last_IO_Error") or fields.get("Last_SQL_Error") or fields.get(engine.io_state)
            raise BackupError(f"replication has not caught up with {target} within {wait_seconds} s: {why}")
    release_app(settings, run)
    systemctl(run, "start", settings["APP_SERVICE"])
    log(f"replicating again from {reached}, caught up; {settings['APP_SERVICE']} started")
    return 0


def guarded(root, action):
    """A backup command, given the backup settings, under the node's backup lock; a BackupError is
    said in one line, exit 1."""
    try:
        settings = backup_settings(root)
        return locked(settings, lambda: action(settings))
    except BackupError as error:
        log(str(error))
        return 1


PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----")


def pem_certificates(text):
    """The PEM blocks of a bundle of certificates; ValueError when it holds anything else, or none."""
    blocks = PEM_CERTIFICATE.findall(text)
    rest = PEM_CERTIFICATE.sub("", text).strip()
    if not blocks or rest:
        raise ValueError("not a bundle of PEM certificates only")
    for block in blocks:
        ssl.PEM_cert_to_DER_cert(block)  # its base64 must decode
    return blocks


def certificate_common_name(pem, run=subprocess.run):
    """A certificate's subject CN as openssl reads it (no Python module on the nodes parses
    certificates); ValueError when openssl cannot read it as one."""
    result = run(["openssl", "x509", "-noout", "-subject", "-nameopt", "sep_multiline,sname,utf8"],
                 input=pem, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        raise ValueError(f"openssl cannot read a certificate of the bundle: {result.stderr.strip()}")
    names = [line.strip()[3:] for line in result.stdout.splitlines() if line.strip().startswith("CN=")]
    return names[0] if names else ""


RDS_CA_IDENTIFIER = re.compile(r"rds-ca-([a-z]+[0-9]+)-(g[0-9]+)")


def rds_root_ca_name(identifier, region_name):
    """The CN Amazon gives the root CA an RDS CA identifier names, in a region: rds-ca-rsa2048-g1 in
    eu-west-1 is "Amazon RDS eu-west-1 Root CA RSA2048 G1"."""
    match = RDS_CA_IDENTIFIER.fullmatch(identifier)
    if not match:
        raise ValueError(f"not an RDS CA identifier (rds-ca-<algorithm>-g<n>): {identifier}")
    return f"Amazon RDS {region_name} Root CA {match[1].upper()} {match[2].upper()}"


def rds_ca_command(url, path, ca_identifier, read=None, region_name=None, run=subprocess.run):
    """Amazon's RDS CA bundle into path (0644: the app reads it), fetched over HTTPS (the server
    checked against the node's public CAs, with bounded retries: the NAT may still be coming up), and
    written only if it holds PEM certificates and nothing else, each one openssl reads, among them
    the root of the instance's CA (ca_identifier) for the node's region. Not pinned by a hash: the
    bundle changes whenever Amazon adds a CA, and a pinned hash would stop every new node's boot that
    day; this check catches a truncated, wrong or substituted file, not a forged root."""
    if not url.startswith("https://"):
        log(f"refusing {url}: the RDS CA bundle comes over HTTPS only")
        return 2
    read = read or (lambda: urllib.request.urlopen(url, timeout=10, context=ssl.create_default_context()).read())
    try:
        text = with_retries(read, f"fetching {url}").decode("ascii")
        blocks = pem_certificates(text)
        names = [certificate_common_name(block, run) for block in blocks]
        expected = rds_root_ca_name(ca_identifier, region_name or with_retries(region, "reading the region"))
    except (OSError, ValueError) as error:  # UnicodeDecodeError is a ValueError
        log(f"{url}: {type(error).__name__}: {error}")
        return 1
    if expected not in names:
        log(f"{url}: none of its {len(blocks)} certificates is {expected!r} ({ca_identifier}'s root CA here): nothing written")
        return 1
    write(path, text, "root", "root", 0o644)
    log(f"wrote {len(blocks)} certificates from {url} to {path}, {expected!r} among them")
    return 0


def db_admin_options(secret_id, client, out=None):
    """The RDS master user's [client] options (user, password) from the secret RDS manages for it,
    on stdout for a pipe (`--defaults-extra-file=<(...)`): refused on a terminal. Quoted as the
    client's option files read values: a backslash escaped; a quote or a line break (which RDS's
    generated passwords never hold) refused, the value never shown."""
    out = out or sys.stdout
    if out.isatty():
        log("refusing to print the database's master password on a terminal")
        return 2
    answer = with_retries(lambda: client.get_secret_value(SecretId=secret_id), "GetSecretValue")
    fields = json.loads(answer["SecretString"])
    values = {option: fields[key] for option, key in (("user", "username"), ("password", "password"))}
    for name, value in values.items():
        if re.search(r'["\r\n\0]', value):
            log(f"{secret_id}: the {name} holds a quote or a line break, which an option file cannot carry")
            return 1
    quoted = {name: value.replace("\\", "\\\\") for name, value in values.items()}
    out.write(f'[client]\nuser="{quoted["user"]}"\npassword="{quoted["password"]}"\n')
    out.flush()
    return 0


def collect_arguments(args):
    """collect's (role, node, db client or None, certificates, ages, every or None), or None when they
    are wrong: `--certificate NAME=/PEM` and `--age METRIC=/STATE.json:FIELD` each any number of times,
    `--every SECONDS` once."""
    words, certificates, ages, every = list(args), [], [], None
    positional = []
    while words:
        word = words.pop(0)
        if word == "--every" and words and every is None:
            every = words.pop(0)
            if not re.fullmatch(r"[1-9][0-9]{0,4}", every):
                return None
            every = int(every)
        elif word in ("--certificate", "--age") and words:
            name, _, value = words.pop(0).partition("=")
            path, _, field = value.rpartition(":") if word == "--age" else (value, "", "")
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]*", name) or not path.startswith("/"):
                return None
            if word == "--age" and not field:
                return None
            if word == "--certificate":
                certificates.append((name, path))
            else:
                ages.append((name, path, field))
        elif word.startswith("-"):
            return None
        else:
            positional.append(word)
    if positional[:1] in (["loadbalancer"], ["client"]) and len(positional) == 2:
        return positional[0], positional[1], None, certificates, ages, every
    if positional[:1] in (["primary"], ["replica"], ["member"]) and len(positional) == 3:
        return (*positional, certificates, ages, every)
    return None


USAGE = (
    "usage: webstack-aws fetch MANIFEST.json [--reload UNIT] | put NAME FILE KMS_KEY_ID"
    " | acm-export ARN PASSPHRASE_FILE OUT_DIR"
    " | collect ROLE NODE [DB_CLIENT] [--certificate NAME=PEM]... [--age METRIC=STATE.json:FIELD]... [--every SECONDS]"
    " | boot-status NODE | rds-ca URL PATH CA_IDENTIFIER | db-admin-options SECRET_ID"
    " | apply [--bundle PATH] | watch | preflight RELEASE_DIR APP_MODULE [PROPERTY...]"
    " | backup-full | ship-binlogs | db-restore --to 'YYYY-MM-DD HH:MM:SS' [--yes] | db-restore --resume"
)


def main(argv, client_factory=boto3.client, root="/", run_command=subprocess.run):
    """root and run_command: where the files of a bundle go and what runs its commands (tests)."""
    command, args = argv[1:2], argv[2:]
    if command == ["preflight"] and len(args) >= 2:
        return preflight_command(args[0], args[1], args[2:], root=root, run=run_command)  # no AWS call
    if command == ["db-restore"] and args == ["--resume"]:
        return guarded(root, lambda settings: resume_command(settings, run_command))  # no AWS call
    if command == ["rds-ca"] and len(args) == 3:
        return rds_ca_command(*args, run=run_command)  # no AWS call: Amazon's public trust store
    lazy = ()  # services whose client is made only when the command first uses it
    if command == ["fetch"] and (len(args) == 1 or (len(args) == 3 and args[1] == "--reload")):
        services = ["ssm"]
        run = lambda client: fetch_command(args[0], client, (args[2:] or [None])[0], run_command)  # noqa: E731
    elif command == ["put"] and len(args) == 3:
        services, run = ["ssm"], lambda client: put_command(*args, client)
    elif command == ["acm-export"] and len(args) == 3:
        services, run = ["acm"], lambda client: acm_export_command(*args, client)
    elif command == ["collect"] and collect_arguments(args):
        role, node, db_client, certificates, ages, every = collect_arguments(args)
        services = ["cloudwatch"]
        once = lambda client: collect_command(  # noqa: E731
            role, node, db_client, client, certificates=certificates, ages=ages)
        run = once if every is None else lambda client: collect_every(every, lambda: once(client), root)  # noqa: E731
    elif command == ["boot-status"] and len(args) == 1:
        services, run = ["cloudwatch"], lambda client: boot_status_command(args[0], client)
    elif command == ["db-admin-options"] and len(args) == 1:
        services, run = ["secretsmanager"], lambda client: db_admin_options(args[0], client)
    elif command == ["apply"] and (args == [] or (args[:1] == ["--bundle"] and len(args) == 2)):
        services = ["ssm", "s3", "cloudwatch"]
        run = lambda *clients: apply_command(args[1] if args else None, *clients, root, run_command)  # noqa: E731
    elif command == ["watch"] and args == []:  # SSM's client at once, to fail early; the others when a look needs them
        services, lazy = ["ssm", "s3", "cloudwatch"], ("s3", "cloudwatch")
        run = lambda *clients: watch_command(*clients, root, run_command)  # noqa: E731
    elif command in (["backup-full"], ["ship-binlogs"]) and args == []:
        action = backup_full_command if command == ["backup-full"] else ship_binlogs_command
        services = ["s3"]
        run = lambda s3: guarded(root, lambda settings: action(s3, settings))  # noqa: E731
    elif command == ["db-restore"] and args[:1] == ["--to"] and len(args) in (2, 3) and args[2:] in ([], ["--yes"]):
        services = ["s3"]
        run = lambda s3: guarded(root, lambda settings: restore_command(s3, settings, args[1], args[2:] == ["--yes"]))  # noqa: E731
    else:
        log(USAGE)
        return 2
    try:
        region_name = with_retries(region, "reading the region")
        def make(service):
            return client_factory(service, region_name=region_name)

        return run(*[Lazy(lambda s=service: make(s)) if service in lazy else make(service) for service in services])
    except botocore.exceptions.ClientError as error:
        log(f"{error.response.get('Error', {}).get('Code')}: {error.response.get('Error', {}).get('Message')}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
