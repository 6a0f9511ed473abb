"""Runs inside the nodes' own OS (the lab's Debian 13 rootfs, in a throwaway overlay): feeds each
rendered document's files to that OS's cloud-init, systemd (sysusers, tmpfiles, the services' exposure),
nginx, HAProxy, rsyslog and logrotate.
Usage: python3 rootfs_checks.py DOC.yaml...   Prints "<doc> <check> ok" or "<doc> <check> FAILED ...";
the exposure check "<doc> security <unit>=<level>... ok", which the caller judges.
"""
import grp
import os
import pathlib
import pwd
import re
import shutil
import stat
import subprocess
import sys

import yaml

HERE = pathlib.Path(__file__).parent


def run(*args):
    result = subprocess.run(args, capture_output=True, text=True)
    return result.returncode, (result.stdout + result.stderr).strip()


def write(path, content, mode=0o644):
    p = pathlib.Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(content)
    os.chmod(p, mode)


# The log files each rendered config makes its server write, by the file that names them. MySQL's
# late config is absent on purpose: its packages (Oracle's repository) are not in this rootfs.
LOG_WRITERS = {
    "/etc/webstack/gunicorn.conf.py": r'^(?:accesslog|errorlog) = "(/[^"]+)"$',
    "/etc/nginx/sites-available/webstack": r"^\s*(?:access|error)_log (/[^\s;]+)",
    "/etc/rsyslog.d/48-webstack-haproxy.conf": r'file="(/[^"]+)"',
    "/etc/webstack/db/61-webstack-late.cnf": r"^(?:log_error|slow_query_log_file) = (/\S+)$",
}
# Log directories as the node makes them: the app unit's LogsDirectory=, the boot script's install -d.
LOG_DIRS = {"/var/log/webstack": ("webstack-app", "webstack-app", 0o755), "/var/log/mysql": ("mysql", "adm", 0o2750)}
SYSUSERS = "/etc/sysusers.d/webstack.conf"
TMPFILES = "/etc/tmpfiles.d/webstack.conf"
SECRETS_DIR = "/etc/webstack/app-secrets"
UNITS = "/etc/systemd/system/"


def logrotate(files):
    """Every log the document's servers write is rotated by exactly one rule, without an error."""
    for path, content in files.items():
        if path.startswith("/etc/logrotate.d/"):
            write(path, content)
    logs = sorted({log for path, pattern in LOG_WRITERS.items()
                   for log in re.findall(pattern, files.get(path, ""), re.M)})
    for log in logs:
        directory = os.path.dirname(log)
        owner, group, mode = LOG_DIRS.get(directory, ("root", "root", 0o755))
        os.makedirs(directory, exist_ok=True)
        shutil.chown(directory, owner, group)
        os.chmod(directory, mode)
        write(log, "a line\n")  # notifempty: an empty log is never rotated
        shutil.chown(log, owner, group)
    code, output = run("logrotate", "--debug", "--force", "/etc/logrotate.conf")
    problems = [line for line in output.splitlines() if line.startswith("error:")]
    for log in logs:
        considered = output.count(f"considering log {log}\n")
        if considered != 1 or f"renaming {log} to {log}.1\n" not in output:
            problems.append(f"{log}: considered {considered} times, rotated: {f'renaming {log} to' in output}")
    if not logs:
        problems.append("no log file found in the document")
    return (1 if problems or code else 0), "\n".join(problems) or output


def throwaway_tls():
    pathlib.Path("/etc/webstack/tls").mkdir(parents=True, exist_ok=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
        "-subj", "/CN=check", "-keyout", "/etc/webstack/tls/node.key", "-out", "/etc/webstack/tls/node.crt")
    shutil.copy("/etc/webstack/tls/node.crt", "/etc/webstack/tls/ca.crt")
    pem = pathlib.Path("/etc/webstack/tls/node.crt").read_text() + pathlib.Path("/etc/webstack/tls/node.key").read_text()
    write("/etc/haproxy/certs/site.pem", pem, 0o600)


def owners(path):
    status = os.stat(path)
    return (oct(stat.S_IMODE(status.st_mode)), pwd.getpwuid(status.st_uid).pw_name,
            grp.getgrgid(status.st_gid).gr_name)


def tmpfiles(files):
    """The rule as the node applies it, on a node from before (issue 18's secrets' directory,
    root:www-data 0750, with a www-data 0400 secret in it): the bundle's validate, a dry run, changes
    nothing; the applier's --create then hands the directory and its files to the app's user, and
    makes the socket's directory the app's and Nginx's group's (what Nginx needs to reach Gunicorn)."""
    write(TMPFILES, files[TMPFILES])
    secret = f"{SECRETS_DIR}/API_KEY"
    shutil.rmtree(SECRETS_DIR, ignore_errors=True)
    shutil.rmtree("/run/webstack", ignore_errors=True)
    os.makedirs(SECRETS_DIR)
    shutil.chown(SECRETS_DIR, "root", "www-data")
    os.chmod(SECRETS_DIR, 0o750)
    write(secret, "s3cret\n", 0o400)
    shutil.chown(secret, "www-data", "www-data")
    before = {path: owners(path) for path in (SECRETS_DIR, secret)}
    code, output = run("systemd-tmpfiles", "--dry-run", "--create", TMPFILES)
    after = {path: owners(path) for path in before}
    if code != 0 or after != before or os.path.exists("/run/webstack"):
        return 1, f"the dry run (exit {code}) left {after}, /run/webstack: {os.path.exists('/run/webstack')}: {output}"
    code, output = run("systemd-tmpfiles", "--create", TMPFILES)
    for path, wanted in ((SECRETS_DIR, ("0o750", "root", "webstack-app")),
                         (secret, ("0o400", "webstack-app", "webstack-app")),
                         ("/run/webstack", ("0o750", "webstack-app", "www-data"))):
        if code == 0 and owners(path) != wanted:
            return 1, f"{path} is {owners(path)}"
    return code, output


def security(files):
    """Each service's overall exposure as this systemd scores its file offline: "unit=level ..."."""
    units = {path[len(UNITS):]: content for path, content in files.items()
             if path.startswith(UNITS) and path.endswith(".service")}
    directory = pathlib.Path("/tmp/units")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir()
    for name, content in units.items():
        write(directory / name, content)
    code, output = run("systemd-analyze", "security", "--offline=yes", *sorted(str(directory / n) for n in units))
    levels = re.findall(r"Overall exposure level for (\S+): (\d+\.\d)", output)
    # A directive this systemd does not know, or a value it cannot parse, is ignored with a warning.
    if code != 0 or len(levels) != len(units) or re.search(r"Unknown key|Failed to parse", output):
        return 1, output
    return 0, " ".join(f"{unit}={level}" for unit, level in levels)


def checks(doc_path, files):
    yield "cloud-init", run("python3", str(HERE / "check-cloud-config.py"), doc_path)
    if SYSUSERS in files:
        # The app's user, before anything names it (logrotate's su).
        write(SYSUSERS, files[SYSUSERS])
        yield "sysusers", run("systemd-sysusers", SYSUSERS)
    if TMPFILES in files:
        yield "tmpfiles", tmpfiles(files)
    site = files.get("/etc/nginx/sites-available/webstack")
    if site is not None:
        for old in pathlib.Path("/etc/nginx/sites-enabled").glob("*"):
            old.unlink()
        write("/etc/nginx/sites-enabled/webstack", site)
        yield "nginx", run("nginx", "-t")
    config = files.get("/etc/haproxy/haproxy.cfg")
    if config is not None:
        write("/etc/haproxy/haproxy.cfg", config)
        code, output = run("haproxy", "-c", "-V", "-f", "/etc/haproxy/haproxy.cfg")
        yield "haproxy", (1 if "WARNING" in output else code, output)
    rule = files.get("/etc/rsyslog.d/48-webstack-haproxy.conf")
    if rule is not None:
        write("/tmp/rsyslog-rule.conf", rule)
        write("/tmp/rsyslog.conf", 'module(load="imuxsock")\n$IncludeConfig /tmp/rsyslog-rule.conf\n')
        yield "rsyslog", run("rsyslogd", "-N1", "-f", "/tmp/rsyslog.conf")
    yield "logrotate", logrotate(files)
    yield "security", security(files)


def main(paths):
    throwaway_tls()
    failed = False
    for path in paths:
        files = {f["path"]: f.get("content", "") for f in yaml.safe_load(open(path))["write_files"]}
        name = pathlib.Path(path).stem
        for check, (code, output) in checks(path, files):
            if code == 0 and check == "security":
                print(f"{name} {check} {output} ok")
            elif code == 0:
                print(f"{name} {check} ok")
            else:
                failed = True
                print(f"{name} {check} FAILED {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
