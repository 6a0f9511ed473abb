#!/usr/bin/python3
"""The AWS calls a node makes at boot and on timers, with its instance role as the only credential.

The region comes from instance metadata (IMDSv2), because the SDK does not read it from there.
Secret values are never printed.
Usage: webstack-aws fetch MANIFEST.json                     parameters into files, as the manifest says
       webstack-aws put NAME FILE KMS_KEY_ID                one file stored as a SecureString parameter
       webstack-aws acm-export ARN PASSPHRASE_FILE OUT_DIR  an exportable ACM certificate into
                                                            cert.pem, chain.pem, key.enc.pem
       webstack-aws collect loadbalancer|primary|replica NODE [DB_CLIENT]
                                                            what logs cannot say, as metrics
       webstack-aws boot-status NODE                        cloud-init's result, as a metric
       webstack-aws apply [--bundle PATH]                   this node's bundle (issue 17): verified, written,
                                                            validated, acted on, health-checked, reported;
                                                            PATH: one already verified (the bootstrap's)
"""
import csv
import datetime
import fcntl
import grp
import hashlib
import io
import json
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.request

import boto3
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


def fetch_command(manifest_path, client):
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


def backends_up(stats_csv):
    """(server, up) for each server of HAProxy's `app` backend, from its CSV stats."""
    rows = csv.DictReader(io.StringIO(stats_csv.lstrip("# ")))
    return [
        (row["svname"], row["status"].startswith("UP"))
        for row in rows
        if row["pxname"] == "app" and row["svname"] not in ("FRONTEND", "BACKEND")
    ]


def replica_status(show_replica_status):
    """(running, lag seconds or None) from `SHOW REPLICA STATUS\\G`, MariaDB's or MySQL's names."""
    fields = {}
    for line in show_replica_status.splitlines():
        key, sep, value = line.strip().partition(": ")
        if sep:
            fields[key] = value.strip()
    io_running = fields.get("Slave_IO_Running", fields.get("Replica_IO_Running"))
    sql_running = fields.get("Slave_SQL_Running", fields.get("Replica_SQL_Running"))
    lag = fields.get("Seconds_Behind_Master", fields.get("Seconds_Behind_Source"))
    running = io_running == "Yes" and sql_running == "Yes"
    return running, (int(lag) if lag and lag != "NULL" else None)


def metric(name, node, value, unit="Count", **dimensions):
    return {
        "MetricName": name,
        "Dimensions": [{"Name": "Node", "Value": node}] + [{"Name": k, "Value": v} for k, v in dimensions.items()],
        "Value": value,
        "Unit": unit,
    }


def database_metrics(role, node, db_client, run=subprocess.run):
    def sql(query):
        return run([db_client, "--protocol=socket", "--user=root", "--execute", query],
                   capture_output=True, text=True, timeout=10)

    up = sql("SELECT 1").returncode == 0
    data = [metric("DatabaseUp", node, 1 if up else 0)]
    if role == "replica":
        running, lag = replica_status(sql("SHOW REPLICA STATUS\\G").stdout) if up else (False, None)
        data.append(metric("ReplicaRunning", node, 1 if running else 0))
        if lag is not None:
            data.append(metric("ReplicaLagSeconds", node, lag, unit="Seconds"))
    return data


def collect_command(role, node, db_client, client, read_stats=None, run=subprocess.run):
    if role == "loadbalancer":
        read = read_stats or (lambda: urllib.request.urlopen(HAPROXY_STATS, timeout=5).read().decode())
        servers = backends_up(read())
        data = [metric("BackendsUp", node, sum(up for _, up in servers))]
        data += [metric("BackendUp", node, 1 if up else 0, Server=name) for name, up in servers]
    else:
        data = database_metrics(role, node, db_client, run)
    with_retries(lambda: client.put_metric_data(Namespace=NAMESPACE, MetricData=data), "PutMetricData")
    return 0


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
HEALTH_ATTEMPTS = 5
HEALTH_DELAY = 6  # seconds: about half a minute in all for services to settle after a reload
OUTPUT_LINES = 5  # of a failed command's output, in the status's reason
REASON_CHARACTERS = 1000  # a String parameter holds 4 KB
# A node waiting for another (`after`) keeps looking this long within one run, so it follows within
# seconds instead of a timer period later; then the timer's next run looks again.
AFTER_WAIT = 25
AFTER_POLL = 2


class Refused(Exception):
    """A bundle this node will not run; the message is the status's reason."""


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


def check(run, argv, what):
    """Runs an argv (no shell); its output goes to the log, and its last lines into a refusal."""
    log(f"{what}: {shlex.join(argv)}")
    try:
        result = run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        code, output = result.returncode, result.stdout or ""
    except OSError as error:
        code, output = 127, str(error)
    sys.stderr.write(output)
    if code != 0:
        tail = "\n".join(output.strip().splitlines()[-OUTPUT_LINES:])
        raise Refused(f"{what} failed: {shlex.join(argv)} exited {code}: {tail}"[:REASON_CHARACTERS])


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


def health_check(argv, run):
    """Step 6: a few tries, while services settle after a reload."""
    for attempt in range(1, HEALTH_ATTEMPTS + 1):
        try:
            return check(run, argv, "health check")
        except Refused:
            if attempt == HEALTH_ATTEMPTS:
                raise
            log(f"health check attempt {attempt} of {HEALTH_ATTEMPTS} failed; retrying in {HEALTH_DELAY} s")
            time.sleep(HEALTH_DELAY)


def status_of(sha, release, reason=None):
    status = {"sha256": sha, "release": release, "state": "refused" if reason else "applied"}
    if reason:
        status["reason"] = reason[:REASON_CHARACTERS]
    # Milliseconds: the primary applies within a second of its replica, and the order is the point.
    status["at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return status


def report(env, ssm, cloudwatch, status, state):
    """The outcome, where each reader looks: status.json on the node, the status parameter (the
    primary's `after` reads the replica's), and BundleApplied or BundleRefused for the alarm. The
    metric is sent once, without retries: a CloudWatch outage must not hold up or fail an apply."""
    value = json.dumps(status)
    install(os.path.join(state, "status.json"), value.encode(), os.getuid(), os.getgid(), 0o600)
    with_retries(
        lambda: ssm.put_parameter(Name=env["STATUS_PARAMETER"], Value=value, Type="String", Overwrite=True),
        "PutParameter",
    )
    data = [metric("BundleApplied" if status["state"] == "applied" else "BundleRefused", env["NODE"], 1)]
    try:
        cloudwatch.put_metric_data(Namespace=env["METRIC_NAMESPACE"], MetricData=data)
    except (OSError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        log(f"PutMetricData failed ({type(error).__name__}); the status parameter says it all the same")


def apply_bundle(env, bundle_path, ssm, s3, cloudwatch, root, run):
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
    if applied and applied.get("sha256") == sha and applied.get("state") == "applied":
        last = read_json(os.path.join(state, "status.json"))
        if last and last.get("sha256") != sha:
            # Pointed back to the bundle its files still hold (a refused one restored them): say so.
            log(f"bundle {sha[:12]} is applied again (its files never left); reporting it")
            report(env, ssm, cloudwatch, status_of(sha, applied.get("release", "")), state)
            return 0
        log(f"bundle {sha[:12]} is applied; nothing to do")
        return 0
    if not bundle_path:
        data = with_retries(
            lambda: s3.get_object(Bucket=pointer["bucket"], Key=pointer["key"])["Body"].read(), "GetObject"
        )
    release = ""
    try:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            raise Refused(f"sha256 mismatch: the object's is {actual}, the pointer's {sha}")
        bundle = json.loads(data)
        release = bundle["release"]
        if bundle["format"] != 1 or bundle["node"] != env["NODE"]:
            raise Refused(f"a format {bundle['format']} bundle for {bundle['node']}; this is {env['NODE']}")
        # Not on the first apply: the replica's first boot waits for the primary's database.
        deadline = time.monotonic() + AFTER_WAIT
        for other in bundle["after"] if applied else []:
            while True:
                theirs = parameter_json(ssm, other["status"]) or {}
                if (theirs.get("release"), theirs.get("state")) == (release, "applied"):
                    break
                if time.monotonic() >= deadline:
                    log(f"bundle {sha[:12]}: waiting for {other['node']}")
                    return 0
                time.sleep(AFTER_POLL)
        # firstApply runs once: a first apply that failed its health check is retried as a change.
        first_done = os.path.join(state, "first-apply.done")
        first = not applied and not os.path.exists(first_done)
        log(f"applying bundle {sha[:12]} (release {release[:12]}){', the first' if first else ''}")
        last_bundle = read_json(os.path.join(state, "current.json")) or {}
        previous = {entry["path"]: entry for entry in last_bundle.get("files", [])}
        changed = write_files(bundle, root, os.path.join(state, "backup"), run, previous)
        if first:
            actions = [("firstApply", argv) for argv in bundle.get("firstApply", [])]
        else:
            actions = [("onChange", argv) for argv in distinct(entry.get("onChange") for entry in changed)]
        for what, argv in actions:
            check(run, argv, what)
        if first:
            install(first_done, b"", os.getuid(), os.getgid(), 0o600)
        if bundle.get("healthCheck"):
            health_check(bundle["healthCheck"], run)
    except (Refused, ValueError, KeyError, TypeError) as error:
        reason = str(error) if isinstance(error, Refused) else f"not a valid bundle: {error!r}"
        log(f"refused bundle {sha[:12]}: {reason}")
        report(env, ssm, cloudwatch, status_of(sha, release, reason), state)
        return 1
    status = status_of(sha, release)
    install(os.path.join(state, "applied.json"), json.dumps(status).encode(), os.getuid(), os.getgid(), 0o600)
    install(os.path.join(state, "current.json"), data, os.getuid(), os.getgid(), 0o600)
    report(env, ssm, cloudwatch, status, state)
    log(f"applied bundle {sha[:12]}")
    return 0


def apply_command(bundle_path, ssm, s3, cloudwatch, root="/", run=subprocess.run):
    """Steps 1-7 of issue 17's apply; one at a time (the first apply and the timer's never overlap)."""
    with open(under(root, BUNDLE_ENV)) as handle:
        env = dict(line.rstrip("\n").split("=", 1) for line in handle if "=" in line)
    state = under(root, BUNDLE_STATE)
    os.makedirs(state, mode=0o700, exist_ok=True)
    with open(os.path.join(state, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return apply_bundle(env, bundle_path, ssm, s3, cloudwatch, root, run)


USAGE = (
    "usage: webstack-aws fetch MANIFEST.json | put NAME FILE KMS_KEY_ID | acm-export ARN PASSPHRASE_FILE OUT_DIR"
    " | collect ROLE NODE [DB_CLIENT] | boot-status NODE | apply [--bundle PATH]"
)


def main(argv, client_factory=boto3.client, root="/", run_command=subprocess.run):
    """root and run_command: where the files of a bundle go and what runs its commands (tests)."""
    command, args = argv[1:2], argv[2:]
    if command == ["fetch"] and len(args) == 1:
        services, run = ["ssm"], lambda client: fetch_command(args[0], client)
    elif command == ["put"] and len(args) == 3:
        services, run = ["ssm"], lambda client: put_command(*args, client)
    elif command == ["acm-export"] and len(args) == 3:
        services, run = ["acm"], lambda client: acm_export_command(*args, client)
    elif command == ["collect"] and args[:1] == ["loadbalancer"] and len(args) == 2:
        services, run = ["cloudwatch"], lambda client: collect_command(args[0], args[1], None, client)
    elif command == ["collect"] and args[:1] in (["primary"], ["replica"]) and len(args) == 3:
        services, run = ["cloudwatch"], lambda client: collect_command(*args, client)
    elif command == ["boot-status"] and len(args) == 1:
        services, run = ["cloudwatch"], lambda client: boot_status_command(args[0], client)
    elif command == ["apply"] and (args == [] or (args[:1] == ["--bundle"] and len(args) == 2)):
        services = ["ssm", "s3", "cloudwatch"]
        run = lambda *clients: apply_command(args[1] if args else None, *clients, root, run_command)  # noqa: E731
    else:
        log(USAGE)
        return 2
    try:
        region_name = with_retries(region, "reading the region")
        return run(*[client_factory(service, region_name=region_name) for service in services])
    except botocore.exceptions.ClientError as error:
        log(f"{error.response.get('Error', {}).get('Code')}: {error.response.get('Error', {}).get('Message')}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
