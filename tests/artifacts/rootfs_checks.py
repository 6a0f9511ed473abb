"""Runs inside the nodes' own OS (the lab's Debian 13 rootfs, in a throwaway overlay): feeds each
rendered document's files to that OS's cloud-init, nginx, HAProxy and rsyslog.
Usage: python3 rootfs_checks.py DOC.yaml...   Prints "<doc> <check> ok" or "<doc> <check> FAILED ...".
"""
import os
import pathlib
import shutil
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


def throwaway_tls():
    pathlib.Path("/etc/webstack/tls").mkdir(parents=True, exist_ok=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
        "-subj", "/CN=check", "-keyout", "/etc/webstack/tls/node.key", "-out", "/etc/webstack/tls/node.crt")
    shutil.copy("/etc/webstack/tls/node.crt", "/etc/webstack/tls/ca.crt")
    pem = pathlib.Path("/etc/webstack/tls/node.crt").read_text() + pathlib.Path("/etc/webstack/tls/node.key").read_text()
    write("/etc/haproxy/certs/site.pem", pem, 0o600)


def checks(doc_path, files):
    yield "cloud-init", run("python3", str(HERE / "check-cloud-config.py"), doc_path)
    site = files.get("/etc/nginx/sites-available/webstack")
    if site is not None:
        for old in pathlib.Path("/etc/nginx/sites-enabled").glob("*"):
            old.unlink()
        write("/etc/nginx/sites-enabled/webstack", site)
        yield "nginx", run("nginx", "-t")
    config = files.get("/etc/webstack/haproxy.cfg")
    if config is not None:
        write("/etc/haproxy/haproxy.cfg", config)
        code, output = run("haproxy", "-c", "-V", "-f", "/etc/haproxy/haproxy.cfg")
        yield "haproxy", (1 if "WARNING" in output else code, output)
    rule = files.get("/etc/rsyslog.d/48-webstack-haproxy.conf")
    if rule is not None:
        write("/tmp/rsyslog-rule.conf", rule)
        write("/tmp/rsyslog.conf", 'module(load="imuxsock")\n$IncludeConfig /tmp/rsyslog-rule.conf\n')
        yield "rsyslog", run("rsyslogd", "-N1", "-f", "/tmp/rsyslog.conf")


def main(paths):
    throwaway_tls()
    failed = False
    for path in paths:
        files = {f["path"]: f.get("content", "") for f in yaml.safe_load(open(path))["write_files"]}
        name = pathlib.Path(path).stem
        for check, (code, output) in checks(path, files):
            if code == 0:
                print(f"{name} {check} ok")
            else:
                failed = True
                print(f"{name} {check} FAILED {output}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
