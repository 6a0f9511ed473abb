"""cloud-init/files/refresh-tls.sh, run by bash with the real openssl: the node's paths (/etc/webstack,
/etc/mysql/webstack, the node's tool) moved under a temporary root; systemctl, chown and the database
client are fakes that record what they are asked.
Run with Debian's python: /usr/bin/python3 -m unittest tests/artifacts/test_refresh_tls.py
"""
import json
import os
import pathlib
import subprocess
import tempfile
import textwrap
import unittest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "cloud-init" / "files" / "refresh-tls.sh"
CERT, KEY = "/webstack/t/s1/tls-cert", "/webstack/t/s1/tls-key"

# `webstack-aws fetch MANIFEST` as the script calls it: writes each entry from the stand-in SSM
# (a JSON file of parameter values beside it), root's, with the entry's mode.
FAKE_TOOL = textwrap.dedent('''\
    #!/usr/bin/python3
    import json, os, sys
    assert sys.argv[1] == "fetch", sys.argv
    ssm = json.load(open(os.path.join(os.path.dirname(sys.argv[0]), "ssm.json")))
    with open(os.path.join(os.path.dirname(sys.argv[0]), "calls"), "a") as handle:
        handle.write(json.dumps(sys.argv[1:]) + "\\n")
    for entry in json.load(open(sys.argv[2])):
        fd = os.open(entry["path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, int(entry["mode"], 8))
        with os.fdopen(fd, "w") as handle:
            handle.write(ssm[entry["parameter"]])
''')
RECORDER = '#!/bin/sh\necho "$(basename "$0") $*" >>"$(dirname "$0")/calls"\n'


def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], input=input, capture_output=True, text=True, check=True).stdout


def key_and_certificate(days=30):
    """An ECDSA P-256 key (SEC1 PEM, as Pulumi's tls provider writes it) and its self-signed certificate."""
    with tempfile.TemporaryDirectory() as scratch:
        key = os.path.join(scratch, "key")
        openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
        certificate = openssl("req", "-x509", "-new", "-key", key, "-subj", "/CN=s1.webstack.internal",
                              "-days", str(days))
        return pathlib.Path(key).read_text(), certificate


class RefreshTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.installed = key_and_certificate()
        cls.renewed = key_and_certificate()
        cls.other = key_and_certificate()

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        root = self.root = self.dir.name
        manifest = [
            {"parameter": CERT, "path": f"{root}/etc/webstack/tls/node.crt", "mode": "0644", "owner": "root:root"},
            {"parameter": KEY, "path": f"{root}/etc/webstack/tls/node.key", "mode": "0600", "owner": "root:root"},
            {"parameter": CERT, "path": f"{root}/etc/mysql/webstack/node.crt", "mode": "0644", "owner": "mysql:mysql"},
            {"parameter": KEY, "path": f"{root}/etc/mysql/webstack/node.key", "mode": "0600", "owner": "mysql:mysql"},
        ]
        key, certificate = self.installed
        for path, content, mode in [
            ("etc/webstack/node.env", f"DB_ENGINE=mariadb\nDB_CLIENT={root}/bin/mariadb\n", 0o644),
            ("etc/webstack/tls-manifest.json", json.dumps(manifest), 0o600),
            ("etc/webstack/tls/node.crt", certificate, 0o644),
            ("etc/webstack/tls/node.key", key, 0o600),
            ("etc/mysql/webstack/node.crt", certificate, 0o644),
            ("etc/mysql/webstack/node.key", key, 0o600),
            ("usr/local/sbin/webstack-aws", FAKE_TOOL, 0o755),
            ("bin/systemctl", RECORDER, 0o755),
            ("bin/chown", RECORDER, 0o755),
            ("bin/mariadb", RECORDER, 0o755),
        ]:
            pathlib.Path(root, path).parent.mkdir(parents=True, exist_ok=True)
            pathlib.Path(root, path).write_text(content)
            os.chmod(os.path.join(root, path), mode)
        self.ssm(*self.installed)
        # A node with its own database (`database: rds` ends the script once Nginx has reloaded).
        script = SCRIPT.read_text().replace("{{AFTER_NGINX}}", "")
        for node_path in ("/etc/webstack/", "/etc/mysql/webstack", "/usr/local/sbin/webstack-aws"):
            script = script.replace(node_path, root + node_path)
        pathlib.Path(root, "refresh-tls").write_text(script)

    def ssm(self, key, certificate):
        pathlib.Path(self.root, "usr/local/sbin/ssm.json").write_text(json.dumps({CERT: certificate, KEY: key}))

    def run_script(self):
        return subprocess.run(["/bin/bash", f"{self.root}/refresh-tls"], capture_output=True, text=True,
                              env={"PATH": f"{self.root}/bin:/usr/bin:/bin", "TMPDIR": self.root})

    def installed_files(self):
        return {path: pathlib.Path(self.root, path).read_text() for path in (
            "etc/webstack/tls/node.crt", "etc/webstack/tls/node.key", "etc/mysql/webstack/node.crt",
            "etc/mysql/webstack/node.key")}

    def calls(self, where):
        calls = pathlib.Path(self.root, where, "calls")
        return calls.read_text().splitlines() if calls.exists() else []

    def test_the_same_certificate_and_key_install_and_reload_nothing(self):
        before = self.installed_files()
        result = self.run_script()
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(self.installed_files(), before)
        self.assertEqual(self.calls("bin"), [])
        self.assertEqual(len(self.calls("usr/local/sbin")), 1)  # one fetch, into the scratch directory

    def test_a_renewed_pair_is_installed_with_its_owners_and_modes_then_nginx_and_the_database_reload(self):
        self.ssm(*self.renewed)
        result = self.run_script()
        self.assertEqual(result.returncode, 0, result.stderr)
        key, certificate = self.renewed
        self.assertEqual(self.installed_files(), {
            "etc/webstack/tls/node.crt": certificate, "etc/webstack/tls/node.key": key,
            "etc/mysql/webstack/node.crt": certificate, "etc/mysql/webstack/node.key": key})
        modes = {path: oct(os.stat(os.path.join(self.root, path)).st_mode & 0o7777) for path in self.installed_files()}
        self.assertEqual(modes, {"etc/webstack/tls/node.crt": "0o644", "etc/webstack/tls/node.key": "0o600",
                                 "etc/mysql/webstack/node.crt": "0o644", "etc/mysql/webstack/node.key": "0o600"})
        calls = self.calls("bin")
        # The database's copies are mysql's; nothing temporary is left beside them.
        self.assertEqual([c.split(" ")[1] for c in calls if c.startswith("chown ")],
                         ["root:root", "root:root", "mysql:mysql", "mysql:mysql"])
        self.assertEqual([c for c in calls if not c.startswith("chown ")], [
            "systemctl reload nginx", "mariadb --protocol=socket --user=root --execute=FLUSH SSL"])
        for directory in ("etc/webstack/tls", "etc/mysql/webstack"):
            self.assertEqual(sorted(os.listdir(os.path.join(self.root, directory))), ["node.crt", "node.key"])

    def test_a_certificate_that_is_not_its_keys_is_refused_before_anything_is_installed(self):
        key, _ = self.renewed
        _, certificate = self.other
        self.ssm(key, certificate)
        before = self.installed_files()
        result = self.run_script()
        self.assertEqual(result.returncode, 1)
        self.assertIn("the certificate is not its key's", result.stderr)
        self.assertEqual(self.installed_files(), before)
        self.assertEqual(self.calls("bin"), [])

    def test_a_key_or_a_certificate_that_does_not_parse_is_refused(self):
        key, certificate = self.renewed
        for bad_key, bad_certificate, reason in [
            (key, "not a certificate\n", "the certificate does not parse"),
            ("not a key\n", certificate, "the key does not parse"),
        ]:
            with self.subTest(reason):
                self.ssm(bad_key, bad_certificate)
                before = self.installed_files()
                result = self.run_script()
                self.assertEqual(result.returncode, 1)
                self.assertIn(reason, result.stderr)
                self.assertEqual(self.installed_files(), before)
                self.assertEqual(self.calls("bin"), [])

    def test_an_expired_certificate_is_refused(self):
        key, _ = self.renewed
        with tempfile.NamedTemporaryFile("w") as handle:
            handle.write(key)
            handle.flush()
            request = openssl("req", "-new", "-key", handle.name, "-subj", "/CN=s1.webstack.internal")
            # Valid until a day ago: what a node would fetch were SSM's copy never renewed.
            expired = openssl("x509", "-req", "-signkey", handle.name, "-days", "-1", input=request)
        self.ssm(key, expired)
        result = self.run_script()
        self.assertEqual(result.returncode, 1)
        self.assertIn("the certificate has expired", result.stderr)
        self.assertEqual(self.calls("bin"), [])


if __name__ == "__main__":
    unittest.main()
