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
"""
import csv
import grp
import io
import json
import os
import pwd
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


def write(path, value, owner, group, mode):
    """Writes atomically: a temporary file with the final owner and mode, then a rename."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".fetch-")
    try:
        os.fchmod(fd, mode)
        os.fchown(fd, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
        with os.fdopen(fd, "w") as handle:
            handle.write(value)
        os.rename(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


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


USAGE = (
    "usage: webstack-aws fetch MANIFEST.json | put NAME FILE KMS_KEY_ID | acm-export ARN PASSPHRASE_FILE OUT_DIR"
    " | collect ROLE NODE [DB_CLIENT] | boot-status NODE"
)


def main(argv, client_factory=boto3.client):
    command, args = argv[1:2], argv[2:]
    if command == ["fetch"] and len(args) == 1:
        service, run = "ssm", lambda client: fetch_command(args[0], client)
    elif command == ["put"] and len(args) == 3:
        service, run = "ssm", lambda client: put_command(*args, client)
    elif command == ["acm-export"] and len(args) == 3:
        service, run = "acm", lambda client: acm_export_command(*args, client)
    elif command == ["collect"] and args[:1] == ["loadbalancer"] and len(args) == 2:
        service, run = "cloudwatch", lambda client: collect_command(args[0], args[1], None, client)
    elif command == ["collect"] and args[:1] in (["primary"], ["replica"]) and len(args) == 3:
        service, run = "cloudwatch", lambda client: collect_command(*args, client)
    elif command == ["boot-status"] and len(args) == 1:
        service, run = "cloudwatch", lambda client: boot_status_command(args[0], client)
    else:
        log(USAGE)
        return 2
    try:
        return run(client_factory(service, region_name=with_retries(region, "reading the region")))
    except botocore.exceptions.ClientError as error:
        log(f"{error.response.get('Error', {}).get('Code')}: {error.response.get('Error', {}).get('Message')}")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
