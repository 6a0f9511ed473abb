"""Unit tests of issue 17's node side: `webstack-aws apply` and the first-boot bootstrap.

A temporary directory stands for the node's root, fakes for SSM, S3, CloudWatch and the commands a
bundle runs; the region comes from test_webstack_aws.py's stand-in IMDSv2 on 127.0.0.1.
Run with Debian's python: /usr/bin/python3 -m unittest tests/artifacts/test_webstack_apply.py
"""
import contextlib
import grp
import hashlib
import io
import json
import os
import pathlib
import pwd
import re
import runpy
import stat
import subprocess
import sys
import tempfile
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_webstack_aws import WithFakeImds  # noqa: E402 (also keeps boto3 off the real metadata service)

import boto3  # noqa: E402
import botocore.exceptions  # noqa: E402

FILES = pathlib.Path(__file__).resolve().parents[2] / "cloud-init" / "files"
POINTER = "/webstack/test/s2/bundle"
STATUS = "/webstack/test/s2/bundle-status"
S1_STATUS = "/webstack/test/s1/bundle-status"
NAMESPACE = "Webstack-test"
BUCKET = "webstack-test-bundles"
SITE = "/etc/nginx/sites-available/webstack"
APP = "/srv/webstack/app.py"
GUNICORN = "/etc/webstack/gunicorn.conf.py"
TOOL = "/usr/local/sbin/webstack-aws"
BOOT = ["/usr/local/sbin/webstack-boot"]
ENABLE_TIMER = ["systemctl", "enable", "--now", "webstack-apply.timer"]
NGINX_T = ["nginx", "-t"]
RELOAD_NGINX = ["systemctl", "reload", "nginx"]
RESTART_APP = ["systemctl", "restart", "webstack-app"]
HEALTH = ["curl", "-fsk", "https://127.0.0.1/healthz"]
APT = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "-o", "DPkg::Lock::Timeout=120"]
APT_UPDATE = [*APT, "update"]
INSTALLED = (0, "install ok installed")
ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# s2's bundle as the program renders it: tests/artifacts.test.ts writes it and names it here, so the
# tests that feed the applier one of the program's files (the app's sysusers.d and tmpfiles.d files,
# its app.sandbox) read that file as rendered, never a re-typed copy.
RENDERED_BUNDLE = os.environ.get("WEBSTACK_RENDERED_BUNDLE")
with_rendered_bundle = unittest.skipUnless(
    RENDERED_BUNDLE, "needs the program's rendered bundle: tests/artifacts.test.ts runs it with WEBSTACK_RENDERED_BUNDLE"
)


def rendered_bundle():
    with open(RENDERED_BUNDLE) as handle:
        return json.load(handle)


def rendered_file(path):
    """One file of the rendered bundle as the bundle carries it: content, mode, owner, its commands."""
    [entry] = [entry for entry in rendered_bundle()["files"] if entry["path"] == path]
    return entry


def not_found(name):
    return botocore.exceptions.ClientError(
        {"Error": {"Code": "ParameterNotFound", "Message": name}}, "GetParameter"
    )


class FakeSsm:
    def __init__(self):
        self.values, self.puts = {}, []

    def get_parameter(self, Name):
        if Name not in self.values:
            raise not_found(Name)
        return {"Parameter": {"Name": Name, "Value": self.values[Name], "Type": "String"}}

    def put_parameter(self, **request):
        self.puts.append(request)
        self.values[request["Name"]] = request["Value"]
        return {"Version": len(self.puts)}


class FakeS3:
    def __init__(self):
        self.objects, self.gets = {}, 0

    def get_object(self, Bucket, Key):
        self.gets += 1
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}


class FakeCloudWatch:
    def __init__(self):
        self.metrics = []

    def put_metric_data(self, Namespace, MetricData):
        self.metrics += [(Namespace, m["MetricName"], m["Dimensions"], m["Value"]) for m in MetricData]


class FakeCommands:
    """Records every argv; `results` maps an argv to (exit code, output) or a function giving them."""

    def __init__(self):
        self.calls, self.results = [], {}

    def __call__(self, argv, **options):
        assert options == {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}, options
        self.calls.append(list(argv))
        result = self.results.get(tuple(argv), (0, ""))
        code, output = result() if callable(result) else result
        return subprocess.CompletedProcess(argv, code, output, None)


class NodeTestCase(WithFakeImds, unittest.TestCase):
    """A node root with bundle.env, fake clients, and bundles published behind the pointer."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name
        self.owner = f"{pwd.getpwuid(os.getuid()).pw_name}:{grp.getgrgid(os.getgid()).gr_name}"
        env = f"NODE=s2\nBUNDLE_PARAMETER={POINTER}\nSTATUS_PARAMETER={STATUS}\nMETRIC_NAMESPACE={NAMESPACE}\n"
        self.write("/etc/webstack/bundle.env", env)
        self.ssm, self.s3, self.cloudwatch, self.commands = FakeSsm(), FakeS3(), FakeCloudWatch(), FakeCommands()
        self.regions = []

    def tearDown(self):
        self.dir.cleanup()

    def at(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def write(self, path, text):
        os.makedirs(os.path.dirname(self.at(path)), exist_ok=True)
        pathlib.Path(self.at(path)).write_text(text)

    def read(self, path):
        return pathlib.Path(self.at(path)).read_text()

    def mode(self, path):
        return stat.S_IMODE(os.stat(self.at(path)).st_mode)

    def factory(self, service, region_name):
        self.regions.append(region_name)
        return {"ssm": self.ssm, "s3": self.s3, "cloudwatch": self.cloudwatch}[service]

    def file(self, path, content, mode="0644", **commands):
        return {"path": path, "content": content, "mode": mode, "owner": self.owner, **commands}

    def site(self, content="server {}\n", mode="0644"):
        return self.file(SITE, content, mode, validate=NGINX_T, onChange=RELOAD_NGINX)

    def bundle(self, files, release="r1", node="s2", after=None, health=HEALTH, packages=None):
        bundle = {
            "format": 1,
            "node": node,
            "release": hashlib.sha256(release.encode()).hexdigest(),
            "after": after or [],
            **({"packages": packages} if packages is not None else {}),
            "files": files,
            "firstApply": [BOOT, ENABLE_TIMER],
        }
        if health:
            bundle["healthCheck"] = health
        return bundle

    def publish(self, bundle):
        data = json.dumps(bundle, indent=2).encode()
        sha = hashlib.sha256(data).hexdigest()
        key = f"bundles/s2/{sha}.json"
        self.s3.objects[(BUCKET, key)] = data
        self.ssm.values[POINTER] = json.dumps({"bucket": BUCKET, "key": key, "sha256": sha})
        return sha

    def apply(self, *args):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = self.module.main(
                ["webstack-aws", "apply", *args], self.factory, root=self.root, run_command=self.commands
            )
        return code, stderr.getvalue()

    def applied(self, files, **options):
        """A first apply already done, with its commands forgotten."""
        self.publish(self.bundle(files, **options))
        self.assertEqual(self.apply()[0], 0)
        self.commands.calls.clear()
        self.ssm.puts.clear()
        self.cloudwatch.metrics.clear()

    def assert_status(self, sha, bundle, state, reason=None):
        """The one status put, exactly as the contract writes it, and its metric."""
        self.assertEqual(len(self.ssm.puts), 1)
        put = self.ssm.puts[0]
        self.assertEqual(
            {k: v for k, v in put.items() if k != "Value"}, {"Name": STATUS, "Type": "String", "Overwrite": True}
        )
        status = json.loads(put["Value"])
        keys = ["sha256", "release", "state", "reason", "at"] if reason else ["sha256", "release", "state", "at"]
        self.assertEqual(list(status), keys)
        self.assertEqual(status["sha256"], sha)
        self.assertEqual(status["release"], bundle["release"] if bundle else "")
        self.assertEqual(status["state"], state)
        self.assertRegex(status["at"], ISO_UTC)
        if reason:
            self.assertIn(reason, status["reason"])
        name = "BundleApplied" if state == "applied" else "BundleRefused"
        self.assertEqual(self.cloudwatch.metrics, [(NAMESPACE, name, [{"Name": "Node", "Value": "s2"}], 1)])
        return status


class ApplyTest(NodeTestCase):
    def app(self, content="app = 1\n", mode="0644"):
        return self.file(APP, content, mode, onChange=RESTART_APP)

    def gunicorn(self, content="workers = 2\n", mode="0644"):
        return self.file(GUNICORN, content, mode, onChange=RESTART_APP)

    def test_first_apply_writes_files_runs_first_apply_in_order_not_on_change_and_reports_applied(self):
        bundle = self.bundle([self.site(), self.app("SECRET-LOOKING CONTENT\n", "0600")])
        sha = self.publish(bundle)
        code, stderr = self.apply()
        self.assertEqual(code, 0)
        self.assertEqual(self.regions, ["eu-west-1"] * 3)
        self.assertEqual(self.commands.calls, [NGINX_T, BOOT, ENABLE_TIMER, HEALTH])
        self.assertEqual(self.read(SITE), "server {}\n")
        self.assertEqual((self.read(APP), self.mode(APP)), ("SECRET-LOOKING CONTENT\n", 0o600))
        status = self.assert_status(sha, bundle, "applied")
        self.assertEqual(json.loads(self.read("/var/lib/webstack/bundle/applied.json")), status)
        self.assertEqual(json.loads(self.read("/var/lib/webstack/bundle/status.json")), status)
        self.assertEqual(self.read("/var/lib/webstack/bundle/current.json"), json.dumps(bundle, indent=2))
        self.assertNotIn("SECRET-LOOKING", stderr)
        self.assertIn("applied bundle", stderr)

    def test_cloudwatch_unreachable_does_not_fail_or_hold_up_an_apply(self):
        def unreachable(**_):
            raise botocore.exceptions.EndpointConnectionError(endpoint_url="https://monitoring")

        self.cloudwatch.put_metric_data = unreachable
        bundle = self.bundle([self.site()])
        sha = self.publish(bundle)
        code, stderr = self.apply()
        self.assertEqual(code, 0)
        status = json.loads(self.read("/var/lib/webstack/bundle/status.json"))
        self.assertEqual((status["sha256"], status["state"]), (sha, "applied"))
        self.assertEqual([json.loads(p["Value"]) for p in self.ssm.puts], [status])
        self.assertIn("PutMetricData failed (EndpointConnectionError)", stderr)

    def test_the_same_bundle_twice_runs_nothing_the_second_time(self):
        self.applied([self.site(), self.app()])
        code, stderr = self.apply()
        self.assertEqual(code, 0)
        self.assertEqual((self.commands.calls, self.ssm.puts, self.cloudwatch.metrics, self.s3.gets), ([], [], [], 1))
        self.assertIn("nothing to do", stderr)

    def test_a_changed_file_runs_only_its_on_change_once(self):
        key = self.file("/etc/webstack/db.key", "KEY\n", "0600", onChange=["systemctl", "restart", "mariadb"])
        self.applied([self.site(), self.app(), self.gunicorn(), key])
        bundle = self.bundle([self.site(), self.app("app = 2\n"), self.gunicorn(mode="0640"), key], release="r2")
        sha = self.publish(bundle)
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls, [RESTART_APP, HEALTH])
        self.assertEqual((self.read(APP), self.mode(GUNICORN)), ("app = 2\n", 0o640))
        self.assert_status(sha, bundle, "applied")

    def test_a_bundle_refused_before_is_tried_again(self):
        bundle = self.bundle([self.site()])
        sha = self.publish(bundle)
        self.write("/var/lib/webstack/bundle/applied.json", json.dumps({"sha256": sha, "state": "refused"}))
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls, [NGINX_T, RELOAD_NGINX, HEALTH])
        self.assert_status(sha, bundle, "applied")

    def test_a_failed_validation_restores_old_files_removes_new_ones_and_refuses(self):
        self.applied([self.site("server { v1 }\n"), self.app()])
        seen = []

        def nginx_t():
            seen.append((self.read(SITE), os.path.exists(self.at("/etc/nginx/conf.d/new.conf"))))
            return 1, "".join(f"line {i}\n" for i in range(1, 8)) + "nginx: configuration file test failed\n"

        self.commands.results[tuple(NGINX_T)] = nginx_t
        new = self.file("/etc/nginx/conf.d/new.conf", "map {}\n", validate=NGINX_T, onChange=RELOAD_NGINX)
        bundle = self.bundle([self.site("server { v2 }\n", "0600"), self.app("app = 2\n"), new], release="r2")
        applied_before = self.read("/var/lib/webstack/bundle/applied.json")
        sha = self.publish(bundle)
        code, stderr = self.apply()
        self.assertEqual(code, 1)
        self.assertEqual(seen, [("server { v2 }\n", True)])
        self.assertEqual(self.commands.calls, [NGINX_T])
        self.assertEqual((self.read(SITE), self.mode(SITE), self.read(APP)), ("server { v1 }\n", 0o644, "app = 1\n"))
        self.assertFalse(os.path.exists(self.at("/etc/nginx/conf.d/new.conf")))
        self.assertEqual([n for n in os.listdir(os.path.dirname(self.at(SITE))) if n != "webstack"], [])
        status = self.assert_status(sha, bundle, "refused", "validate failed: nginx -t exited 1:")
        tail = "line 4\nline 5\nline 6\nline 7\nnginx: configuration file test failed"
        self.assertTrue(status["reason"].endswith(f"exited 1: {tail}"), status["reason"])
        self.assertNotIn("line 3", status["reason"])
        self.assertEqual(self.read("/var/lib/webstack/bundle/applied.json"), applied_before)
        # The node's own record of the outcome says why, as the status parameter does.
        self.assertEqual(json.loads(self.read("/var/lib/webstack/bundle/status.json")), status)
        self.assertIn("refused bundle", stderr)

    def test_pointed_back_after_a_refusal_reports_the_applied_bundle_again_and_runs_nothing(self):
        good = self.bundle([self.site("server { v1 }\n")])
        good_sha = self.publish(good)
        self.assertEqual(self.apply()[0], 0)
        self.commands.results[tuple(NGINX_T)] = (1, "nginx: configuration file test failed\n")
        broken = self.publish(self.bundle([self.site("server { broken }\n")], release="r2"))
        self.assertEqual(self.apply()[0], 1)
        self.assertEqual(json.loads(self.read("/var/lib/webstack/bundle/status.json"))["state"], "refused")
        refusals = {"sha256": broken, "tries": 1, "at": 0, "releaseFailed": False}
        self.write(REFUSED_RECORD, json.dumps(refusals))  # as the watcher's refusal leaves it
        self.commands.calls.clear()
        self.publish(good)
        code, stderr = self.apply()
        self.assertEqual(code, 0)
        self.assertEqual(self.commands.calls, [])
        status = json.loads(self.read("/var/lib/webstack/bundle/status.json"))
        self.assertEqual((status["sha256"], status["state"], status["release"]), (good_sha, "applied", good["release"]))
        self.assertEqual(json.loads(self.ssm.puts[-1]["Value"]), status)
        self.assertIn("applied again", stderr)
        self.assertFalse(os.path.exists(self.at(REFUSED_RECORD)))  # forgotten
        # And then, nothing more to say.
        puts = len(self.ssm.puts)
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(len(self.ssm.puts), puts)

    def test_a_bundle_whose_sha256_is_not_the_pointers_is_refused_and_writes_nothing(self):
        sha = self.publish(self.bundle([self.site()]))
        (key,) = self.s3.objects
        self.s3.objects[key] = self.s3.objects[key].replace(b"server {}", b"server {x}")
        self.assertEqual(self.apply()[0], 1)
        self.assertEqual(self.commands.calls, [])
        self.assertFalse(os.path.exists(self.at(SITE)))
        self.assert_status(sha, None, "refused", "sha256 mismatch")

    def test_a_bundle_for_another_node_is_refused(self):
        bundle = self.bundle([self.site()], node="s1")
        sha = self.publish(bundle)
        self.assertEqual(self.apply()[0], 1)
        self.assertEqual(self.commands.calls, [])
        self.assertFalse(os.path.exists(self.at(SITE)))
        self.assert_status(sha, bundle, "refused", "for s1; this is s2")

    def test_after_not_yet_satisfied_waits_with_nothing_written(self):
        self.applied([self.site(), self.app()])
        after = [{"node": "s1", "status": S1_STATUS}]
        bundle = self.bundle([self.site(), self.app("app = 2\n")], release="r2", after=after)
        self.publish(bundle)
        other_states = [
            None,  # s1 has never reported
            {"release": self.bundle([], release="r1")["release"], "state": "applied"},
            {"release": bundle["release"], "state": "refused", "reason": "x"},
        ]
        for s1 in other_states:
            if s1:
                self.ssm.values[S1_STATUS] = json.dumps({"sha256": "0" * 64, **s1, "at": "2025-01-01T00:00:00Z"})
            with mock.patch.object(self.module, "AFTER_WAIT", 0):
                code, stderr = self.apply()
            self.assertEqual((code, self.read(APP)), (0, "app = 1\n"))
            self.assertEqual((self.commands.calls, self.ssm.puts, self.cloudwatch.metrics), ([], [], []))
            self.assertIn("waiting for s1", stderr)

    def test_after_satisfied_applies(self):
        self.applied([self.site(), self.app()])
        after = [{"node": "s1", "status": S1_STATUS}]
        bundle = self.bundle([self.site(), self.app("app = 2\n")], release="r2", after=after)
        sha = self.publish(bundle)
        s1 = {"sha256": "0" * 64, "release": bundle["release"], "state": "applied", "at": "2025-01-01T00:00:00Z"}
        self.ssm.values[S1_STATUS] = json.dumps(s1)
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual((self.read(APP), self.commands.calls), ("app = 2\n", [RESTART_APP, HEALTH]))
        self.assert_status(sha, bundle, "applied")

    def test_a_node_waiting_for_another_follows_within_the_same_run(self):
        self.applied([self.site(), self.app()])
        after = [{"node": "s1", "status": S1_STATUS}]
        bundle = self.bundle([self.site(), self.app("app = 2\n")], release="r2", after=after)
        sha = self.publish(bundle)
        s1 = {"sha256": "0" * 64, "release": bundle["release"], "state": "applied", "at": "2025-01-01T00:00:00Z"}
        clock = iter(range(0, 1000))

        def s1_applies_later(_seconds):
            if next(clock) == 2:  # the replica reports a few polls in
                self.ssm.values[S1_STATUS] = json.dumps(s1)

        with mock.patch.object(self.module.time, "sleep", side_effect=s1_applies_later) as sleep:
            self.assertEqual(self.apply()[0], 0)
        self.assertEqual(sleep.call_count, 3)
        self.assertEqual(self.read(APP), "app = 2\n")
        self.assert_status(sha, bundle, "applied")

    def test_after_is_not_waited_for_on_the_first_apply(self):
        # The replica's first boot waits for the primary's database: waiting here would deadlock.
        bundle = self.bundle([self.site()], after=[{"node": "s1", "status": S1_STATUS}])
        sha = self.publish(bundle)
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls, [NGINX_T, BOOT, ENABLE_TIMER, HEALTH])
        self.assert_status(sha, bundle, "applied")

    def test_a_failing_health_check_is_retried_then_refuses(self):
        self.applied([self.site(), self.app()])
        self.commands.results[tuple(HEALTH)] = (22, "curl: (22) The requested URL returned error: 503\n")
        bundle = self.bundle([self.site(), self.app("app = 2\n")], release="r2")
        sha = self.publish(bundle)
        with (
            mock.patch.object(self.module, "HEALTH_ATTEMPTS", 3),
            mock.patch.object(self.module.time, "sleep") as sleep,
        ):
            code, _ = self.apply()
        self.assertEqual(code, 1)
        self.assertEqual(self.commands.calls, [RESTART_APP, HEALTH, HEALTH, HEALTH])
        self.assertEqual(sleep.call_count, 2)
        self.assert_status(sha, bundle, "refused", "health check failed: curl -fsk https://127.0.0.1/healthz exited 22")

    def test_an_on_change_that_failed_runs_again_on_the_next_tick(self):
        self.applied([self.site("server { v1 }\n")])
        self.commands.results[tuple(RELOAD_NGINX)] = (1, "Job for nginx.service failed.\n")
        self.publish(self.bundle([self.site("server { v2 }\n")], release="r2"))
        self.assertEqual(self.apply()[0], 1)
        self.assertEqual(self.read(SITE), "server { v2 }\n")  # validated: it stays, the reload is owed
        self.commands.calls.clear()
        del self.commands.results[tuple(RELOAD_NGINX)]
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls, [NGINX_T, RELOAD_NGINX, HEALTH])

    def test_first_apply_steps_run_once_even_when_its_health_check_failed(self):
        self.commands.results[tuple(HEALTH)] = (7, "curl: (7) Failed to connect\n")
        self.publish(self.bundle([self.site()]))
        with mock.patch.object(self.module, "HEALTH_ATTEMPTS", 1):
            self.assertEqual(self.apply()[0], 1)
        self.assertEqual(self.commands.calls, [NGINX_T, BOOT, ENABLE_TIMER, HEALTH])
        self.commands.calls.clear()
        del self.commands.results[tuple(HEALTH)]
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls, [HEALTH])  # no second boot script, nothing changed

    def test_a_health_check_that_passes_on_a_retry_applies(self):
        answers = iter([(7, "curl: (7) Failed to connect\n"), (0, "")])
        self.commands.results[tuple(HEALTH)] = lambda: next(answers)
        bundle = self.bundle([self.site()])
        sha = self.publish(bundle)
        with mock.patch.object(self.module.time, "sleep"):
            self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls, [NGINX_T, BOOT, ENABLE_TIMER, HEALTH, HEALTH])
        self.assert_status(sha, bundle, "applied")

    def test_a_saved_bundle_is_applied_without_reading_the_pointer(self):
        bundle = self.bundle([self.site()])
        data = json.dumps(bundle).encode()
        self.write("/var/lib/webstack/bundle/incoming.json", data.decode())
        self.assertEqual(self.apply("--bundle", self.at("/var/lib/webstack/bundle/incoming.json"))[0], 0)
        self.assertEqual((self.s3.gets, self.read(SITE)), (0, "server {}\n"))
        self.assert_status(hashlib.sha256(data).hexdigest(), bundle, "applied")

    @staticmethod
    def dpkg_query(name):
        return ["dpkg-query", "-W", "-f=${Status}", name]

    @staticmethod
    def apt_install(*names):
        return [*APT, "install", "-y", "--no-install-recommends", *names]

    def with_packages(self, packages, installed=(), first=False):
        """The site's bundle naming `packages`, published, with dpkg-query showing `installed` of them
        installed: the site's first version if `first`, else its second. Returns (bundle, sha)."""
        for name in installed:
            self.commands.results[tuple(self.dpkg_query(name))] = INSTALLED
        site, release = (self.site(), "r1") if first else (self.site("server { v2 }\n"), "r2")
        bundle = self.bundle([site], release=release, packages=packages)
        return bundle, self.publish(bundle)

    def test_packages_all_installed_runs_no_apt(self):
        self.applied([self.site()])
        bundle, sha = self.with_packages(["nginx", "python3-venv"], installed=["nginx", "python3-venv"])
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(
            self.commands.calls,
            [self.dpkg_query("nginx"), self.dpkg_query("python3-venv"), NGINX_T, RELOAD_NGINX, HEALTH],
        )
        self.assert_status(sha, bundle, "applied")

    def test_missing_packages_are_installed_after_an_update_before_any_file_is_written(self):
        self.applied([self.site()])
        seen = []
        # Known but removed (its config files kept), and never heard of: both are missing.
        self.commands.results[tuple(self.dpkg_query("logrotate"))] = (0, "deinstall ok config-files")
        self.commands.results[tuple(self.dpkg_query("python3-venv"))] = (
            1, "dpkg-query: no packages found matching python3-venv\n",
        )
        install = self.apt_install("logrotate", "python3-venv")
        self.commands.results[tuple(install)] = lambda: seen.append(self.read(SITE)) or (0, "")
        packages = ["logrotate", "nginx", "python3-venv"]
        bundle, sha = self.with_packages(packages, installed=["nginx"])
        code, stderr = self.apply()
        self.assertEqual(code, 0)
        self.assertEqual(
            self.commands.calls,
            [*map(self.dpkg_query, packages), APT_UPDATE, install, NGINX_T, RELOAD_NGINX, HEALTH],
        )
        self.assertEqual(seen, ["server {}\n"])  # installed while the old files were still in place
        self.assertEqual(self.read(SITE), "server { v2 }\n")
        self.assertIn("packages missing: logrotate python3-venv", stderr)
        self.assert_status(sha, bundle, "applied")

    def test_a_failing_apt_get_refuses_and_writes_no_file(self):
        self.applied([self.site()])
        install = self.apt_install("python3-venv")
        self.commands.results[tuple(install)] = (
            100, "Reading package lists...\nE: Unable to locate package python3-venv\n",
        )
        bundle, sha = self.with_packages(["python3-venv"])
        self.assertEqual(self.apply()[0], 1)
        self.assertEqual(self.commands.calls, [self.dpkg_query("python3-venv"), APT_UPDATE, install])
        self.assertEqual(self.read(SITE), "server {}\n")
        status = self.assert_status(sha, bundle, "refused", "apt-get install failed: env DEBIAN_FRONTEND=")
        self.assertTrue(status["reason"].endswith("exited 100: Reading package lists...\nE: Unable to locate "
                                                  "package python3-venv"), status["reason"])

    def test_a_failing_apt_get_update_refuses_before_installing(self):
        self.commands.results[tuple(APT_UPDATE)] = (100, "E: The repository is not signed.\n")
        bundle, sha = self.with_packages(["nginx"], first=True)
        self.assertEqual(self.apply()[0], 1)
        self.assertEqual(self.commands.calls, [self.dpkg_query("nginx"), APT_UPDATE])
        self.assertFalse(os.path.exists(self.at(SITE)))
        self.assert_status(sha, bundle, "refused", "apt-get update failed")

    def test_the_first_apply_checks_packages_too_and_installs_none_when_all_are_there(self):
        bundle, sha = self.with_packages(["nginx"], installed=["nginx"], first=True)
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls, [self.dpkg_query("nginx"), NGINX_T, BOOT, ENABLE_TIMER, HEALTH])
        self.assert_status(sha, bundle, "applied")

    def test_a_bad_package_name_refuses_and_runs_nothing(self):
        self.applied([self.site()])
        for bad in ["-o=APT::Get::AllowUnauthenticated=1", "Nginx", "nginx\n", "a", "nginx; reboot", "", 7]:
            with self.subTest(bad=bad):
                self.ssm.puts.clear()
                self.cloudwatch.metrics.clear()
                bundle, sha = self.with_packages(["nginx", bad])
                self.assertEqual(self.apply()[0], 1)
                self.assertEqual(self.commands.calls, [])
                self.assertEqual(self.read(SITE), "server {}\n")
                self.assert_status(sha, bundle, "refused", f"packages: not a Debian package name: {bad!r}")

    SOURCE = {"name": "vendor-tools", "content": "Types: deb\nURIs: https://vendor.example/apt\n", "packages": ["vendor-tool"]}
    SOURCE_FILE = "/etc/apt/sources.list.d/webstack-vendor-tools.sources"

    def trial(self):
        """The update of a new source alone, from a directory of its own."""
        return [*APT, "-o", "Dir::Etc::SourceList=/dev/null", "-o",
                f"Dir::Etc::SourceParts={self.at('/var/lib/webstack/bundle/apt-trial')}", "-o",
                "APT::Get::List-Cleanup=0", "update"]

    def test_an_apt_source_is_written_before_its_packages_install_and_they_with_the_bundles(self):
        self.applied([self.site()])
        self.write("/etc/apt/sources.list.d/debian.sources", "Types: deb\n")
        seen = []
        install = self.apt_install("vendor-tool")
        self.commands.results[tuple(install)] = lambda: seen.append(self.read(self.SOURCE_FILE)) or (0, "")
        bundle, sha = self.with_packages(["nginx"], installed=["nginx"])
        bundle["aptSources"] = [self.SOURCE]
        sha = self.publish(bundle)
        code, stderr = self.apply()
        self.assertEqual(code, 0, stderr)
        self.assertEqual(
            self.commands.calls,
            [self.trial(), self.dpkg_query("nginx"), self.dpkg_query("vendor-tool"), APT_UPDATE, install, NGINX_T,
             RELOAD_NGINX, HEALTH],
        )
        self.assertEqual(seen, [self.SOURCE["content"]])
        self.assertFalse(os.path.exists(self.at("/var/lib/webstack/bundle/apt-trial")))
        self.assertEqual(self.mode(self.SOURCE_FILE), 0o644)
        self.assertIn("wrote the apt source webstack-vendor-tools.sources", stderr)
        self.assert_status(sha, bundle, "applied")
        # A bundle that no longer names it: this tool's file goes, nobody else's.
        self.commands.calls.clear()
        self.ssm.puts.clear()
        self.cloudwatch.metrics.clear()
        bundle = self.bundle([self.site("server { v3 }\n")], release="r3")
        self.publish(bundle)
        code, stderr = self.apply()
        self.assertEqual(code, 0, stderr)
        self.assertFalse(os.path.exists(self.at(self.SOURCE_FILE)))
        self.assertEqual(self.read("/etc/apt/sources.list.d/debian.sources"), "Types: deb\n")
        self.assertIn("removed the apt source webstack-vendor-tools.sources", stderr)

    def test_a_source_apt_cannot_read_is_left_out_with_its_packages_and_the_bundle_goes_on(self):
        # A suite the repository does not serve (yet): never in sources.list.d, where it would fail
        # every apt-get update on the node.
        self.applied([self.site()])
        self.commands.results[tuple(self.trial())] = (
            100, "E: The repository 'https://vendor.example/apt trixie Release' does not have a Release file.\n")
        bundle, sha = self.with_packages(["nginx"], installed=["nginx"])
        bundle["aptSources"] = [self.SOURCE]
        sha = self.publish(bundle)
        code, stderr = self.apply()
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.commands.calls, [self.trial(), self.dpkg_query("nginx"), NGINX_T, RELOAD_NGINX, HEALTH])
        self.assertFalse(os.path.exists(self.at(self.SOURCE_FILE)))
        self.assertIn("apt source webstack-vendor-tools.sources not added (apt-get update exited 100: E: The "
                      "repository 'https://vendor.example/apt trixie Release' does not have a Release file.); "
                      "vendor-tool wait for a later apply", stderr)
        self.assert_status(sha, bundle, "applied")

    def test_an_apt_source_this_tool_would_not_write_refuses_and_writes_nothing(self):
        self.applied([self.site()])
        for bad in [{**self.SOURCE, "name": "../../cron.d/x"}, {**self.SOURCE, "name": "Vendor"},
                    {**self.SOURCE, "name": ""}, {**self.SOURCE, "content": None}, "vendor-tools",
                    {**self.SOURCE, "packages": "vendor-tool"}]:
            with self.subTest(bad=bad):
                self.ssm.puts.clear()
                self.cloudwatch.metrics.clear()
                bundle, sha = self.with_packages(["nginx"])
                bundle["aptSources"] = [bad]
                sha = self.publish(bundle)
                self.assertEqual(self.apply()[0], 1)
                self.assertEqual(self.commands.calls, [])
                self.assertFalse(os.path.exists(self.at("/etc/apt/sources.list.d")))
                self.assertEqual(self.read(SITE), "server {}\n")
                self.assert_status(sha, bundle, "refused", "aptSources: ")

    def test_a_bundle_an_older_tool_applied_without_its_apt_sources_is_applied_again_in_full(self):
        # The older tool wrote its files (this tool among them) and ignored aptSources and their
        # packages: this tool, on the next run, writes the source and installs them.
        bundle = self.bundle([self.site()])
        bundle["aptSources"] = [self.SOURCE]
        self.commands.results[tuple(self.dpkg_query("vendor-tool"))] = INSTALLED
        self.publish(bundle)
        self.assertEqual(self.apply()[0], 0)
        self.write("/var/lib/webstack/bundle/heeded.json", json.dumps(["app", "packages", "users", "tmpfiles"]))
        os.unlink(self.at(self.SOURCE_FILE))
        self.commands.calls.clear()
        code, stderr = self.apply()
        self.assertEqual(code, 0, stderr)
        self.assertIn("was applied by a tool that ignored aptSources; applying it again", stderr)
        self.assertEqual(self.read(self.SOURCE_FILE), self.SOURCE["content"])
        self.assertIn(self.dpkg_query("vendor-tool"), self.commands.calls)
        self.commands.calls.clear()
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls, [])

    def test_a_wrong_command_line_is_a_usage_error(self):
        code, stderr = self.apply("--bundle")
        self.assertEqual(code, 2)
        self.assertIn("apply [--bundle PATH]", stderr)


class WatchTest(NodeTestCase):
    """The watcher (`webstack-aws watch`, issue 22): it looks every 30 s with the clients it made once
    while a look changes nothing, and ends after the first look that does something, or after an hour,
    for the timer to start it again."""

    def setUp(self):
        super().setUp()
        self.now, self.sleeps, self.made, self.during_sleep = 1000.0, [], [], {}

    def factory(self, service, region_name):
        self.made.append(service)
        return super().factory(service, region_name)

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
        self.during_sleep.get(len(self.sleeps), lambda: None)()

    def watch(self, *args):
        self.made.clear()
        stderr = io.StringIO()
        time = self.module.time
        with contextlib.redirect_stderr(stderr), mock.patch.object(time, "monotonic", lambda: self.now), \
                mock.patch.object(time, "time", lambda: self.now), mock.patch.object(time, "sleep", self.sleep):
            code = self.module.main(
                ["webstack-aws", "watch", *args], self.factory, root=self.root, run_command=self.commands
            )
        return code, stderr.getvalue()

    def v2_published_during_sleep(self, n):
        """Applied: a site at v1. A bundle of it at v2 published while the watcher sleeps its nth sleep:
        the bundle, and a list that then holds its SHA."""
        self.applied([self.site("server { v1 }\n")])
        bundle, shas = self.bundle([self.site("server { v2 }\n")], release="r2"), []
        self.during_sleep[n] = lambda: shas.append(self.publish(bundle))
        return bundle, shas

    def test_an_applied_bundle_is_looked_at_every_30_s_for_an_hour_with_ssm_alone_and_said_once(self):
        self.applied([self.site()])
        code, stderr = self.watch()
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.sleeps, [30] * 120)  # 121 looks: at 0, 30, ... 3600 s
        self.assertEqual((self.commands.calls, self.ssm.puts, self.cloudwatch.metrics), ([], [], []))
        self.assertEqual(self.made, ["ssm"])  # no S3 or CloudWatch client for looks that find nothing
        self.assertEqual(stderr.count("nothing to do"), 1)
        self.assertIn("watched for 60 min; ending", stderr)

    def test_a_bundle_published_while_watching_is_applied_by_the_next_look_which_ends_the_watcher(self):
        bundle, shas = self.v2_published_during_sleep(3)
        code, stderr = self.watch()
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.sleeps, [30, 30, 30])
        self.assertEqual(self.commands.calls, [NGINX_T, RELOAD_NGINX, HEALTH])
        self.assertEqual(self.read(SITE), "server { v2 }\n")
        self.assert_status(shas[0], bundle, "applied")
        self.assertEqual(self.made, ["ssm", "s3", "cloudwatch"])

    def test_a_node_waiting_for_another_looks_again_30_s_after_the_last_look_began_and_follows(self):
        app = lambda text: self.file(APP, text, onChange=RESTART_APP)
        self.applied([self.site(), app("app = 1\n")])
        after = [{"node": "s1", "status": S1_STATUS}]
        bundle = self.bundle([self.site(), app("app = 2\n")], release="r2", after=after)
        sha = self.publish(bundle)
        s1 = {"sha256": "0" * 64, "release": bundle["release"], "state": "applied", "at": "2025-01-01T00:00:00Z"}
        looks, get = [], self.ssm.get_parameter

        def get_parameter(Name):
            looks.append(self.now) if Name == POINTER else None
            return get(Name)

        def sleep(seconds):  # the watcher's and the wait's (AFTER_POLL); s1 applies 40 s in
            self.now += seconds
            if self.now >= 1040:
                self.ssm.values[S1_STATUS] = json.dumps(s1)

        self.ssm.get_parameter, self.sleep = get_parameter, sleep
        code, stderr = self.watch()
        self.assertEqual(code, 0, stderr)
        self.assertEqual(looks, [1000, 1030])  # the first look waited 26 s for s1 within itself
        self.assertEqual(stderr.count("waiting for s1"), 1)
        self.assertEqual(self.read(APP), "app = 2\n")
        self.assert_status(sha, bundle, "applied")

    def test_a_tool_replaced_by_an_apply_started_by_hand_ends_the_watcher_after_its_look(self):
        self.write(TOOL, "the watcher's tool\n")
        self.applied([self.site()])

        def by_hand():  # another tool written into place, as install() does
            self.write(TOOL + ".new", "a newer tool\n")
            os.replace(self.at(TOOL + ".new"), self.at(TOOL))

        self.during_sleep[2] = by_hand
        code, stderr = self.watch()
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.sleeps, [30, 30])
        self.assertIn("the tool was replaced", stderr)
        self.assertEqual((self.commands.calls, self.ssm.puts), ([], []))

    def test_an_error_in_a_later_look_ends_the_watcher_with_1(self):
        self.applied([self.site()])

        def denied():
            def get_parameter(Name):
                raise botocore.exceptions.ClientError(
                    {"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "GetParameter"
                )

            self.ssm.get_parameter = get_parameter

        self.during_sleep[2] = denied
        code, stderr = self.watch()
        self.assertEqual(code, 1)
        self.assertEqual(self.sleeps, [30, 30])
        self.assertIn("AccessDeniedException: no", stderr)

    def test_a_refused_bundle_ends_the_watcher_with_1(self):
        bundle, shas = self.v2_published_during_sleep(1)
        self.commands.results[tuple(NGINX_T)] = (1, "nginx: [emerg] unexpected end of file")
        code, stderr = self.watch()
        self.assertEqual(code, 1, stderr)
        self.assertEqual(self.sleeps, [30])
        self.assertEqual(self.read(SITE), "server { v1 }\n")
        self.assert_status(shas[0], bundle, "refused", "unexpected end of file")

    def test_a_refused_bundle_is_tried_again_after_1_2_4_8_then_every_15_min_a_new_one_at_once(self):
        self.applied([self.site("server { v1 }\n")])
        broken = self.bundle([self.site("server { v2 }\n")], release="r2")
        sha = self.publish(broken)
        self.commands.results[tuple(NGINX_T)] = (1, "nginx: [emerg] unexpected end of file")
        tries, ends, looks = [], [], 0
        for _ in range(7):  # each process the timer starts, 30 s after the one before ended
            code, stderr = self.watch()
            self.assertEqual(code, 1, stderr)
            tries.append(self.now)
            ends.append(stderr)
            looks += len(self.sleeps) + 1
            self.now += 30
            self.sleeps.clear()
        # The refusal at 0, then tries 60, 120, 240, 480, 900, 900 s after the one before.
        self.assertEqual([b - a for a, b in zip(tries, tries[1:])], [60, 120, 240, 480, 900, 900])
        self.assertEqual(self.commands.calls.count(NGINX_T), 7)
        self.assertEqual(len(self.ssm.puts), 7)  # a status per try
        # BundleRefused at the start of every look once refused, tried or not, and at each refusal:
        # its alarm stays in ALARM between tries.
        refused = (NAMESPACE, "BundleRefused", [{"Name": "Node", "Value": "s2"}], 1)
        self.assertEqual(self.cloudwatch.metrics, [refused] * (looks - 1 + 7))
        self.assertNotIn("was refused; trying it again", ends[0])
        self.assertIn(f"bundle {sha[:12]} was refused; trying it again at ", ends[1])
        for end in ends[1:]:  # said once per process, which looks 1 to 29 times before its try
            self.assertEqual(end.count("was refused; trying it again"), 1, end)
        self.assertIn(f"refused bundle {sha[:12]} (its try 7): validate failed: nginx -t", ends[6])
        self.assertEqual(self.read(SITE), "server { v1 }\n")
        # A new bundle on the pointer is tried at the next look, 30 s in, and forgets the refusals.
        del self.commands.results[tuple(NGINX_T)]
        fixed = self.bundle([self.site("server { v3 }\n")], release="r3")
        self.during_sleep[1] = lambda: self.publish(fixed)
        code, stderr = self.watch()
        self.assertEqual((code, self.sleeps), (0, [30]), stderr)
        self.assertEqual(self.read(SITE), "server { v3 }\n")
        self.assertFalse(os.path.exists(self.at(REFUSED_RECORD)))

    def refused_once(self):
        """v2 refused by the watcher's first look (nginx -t fails); its SHA and the record it left."""
        bundle, shas = self.v2_published_during_sleep(1)
        self.commands.results[tuple(NGINX_T)] = (1, "nginx: [emerg] unexpected end of file")
        self.assertEqual(self.watch()[0], 1)
        note = json.loads(self.read(REFUSED_RECORD))
        self.assertEqual(note, {"sha256": shas[0], "tries": 1, "at": self.now, "releaseFailed": False})
        self.commands.calls.clear()
        return shas[0], note

    def test_a_refusal_record_cut_short_or_from_a_clock_stepped_back_costs_a_try_at_once(self):
        sha, note = self.refused_once()
        for record in ["", "{}", json.dumps({**note, "tries": "x"}), json.dumps({**note, "at": self.now + 3600})]:
            self.write(REFUSED_RECORD, record)
            self.now += 30
            self.sleeps.clear()
            code, stderr = self.watch()
            self.assertEqual((code, self.sleeps), (1, []), stderr)  # tried at the first look
            self.assertIn(f"refused bundle {sha[:12]}", stderr)
        self.assertEqual(self.commands.calls.count(NGINX_T), 4)

    def test_an_apply_started_by_hand_tries_a_refused_bundle_at_once_and_leaves_the_watchers_count(self):
        sha, note = self.refused_once()
        with mock.patch.object(self.module.time, "time", lambda: self.now + 10):  # its retry not due
            self.assertEqual(self.apply()[0], 1)
            self.assertEqual(self.commands.calls, [NGINX_T])
            self.assertEqual(json.loads(self.read(REFUSED_RECORD)), note)
            del self.commands.results[tuple(NGINX_T)]
            self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.read(SITE), "server { v2 }\n")
        self.assertFalse(os.path.exists(self.at(REFUSED_RECORD)))

    def test_a_wrong_command_line_is_a_usage_error(self):
        code, stderr = self.watch("--now")
        self.assertEqual(code, 2)
        self.assertIn(" | watch | ", stderr)
        self.assertEqual(self.sleeps, [])


REFUSED_RECORD = "/var/lib/webstack/bundle/refused.json"
SYSUSERS = "/etc/sysusers.d/webstack.conf"
TMPFILES = "/etc/tmpfiles.d/webstack.conf"
TMPFILES_CREATE = ["systemd-tmpfiles", "--create", TMPFILES]
SECRETS_DIR = "/etc/webstack/app-secrets"


@with_rendered_bundle
class AppUserFilesTest(NodeTestCase):
    """The app's sysusers.d and tmpfiles.d files (issue 19) as the program renders them: the tmpfiles
    rule, which hands the app's secrets' directory over (on a node from before, from www-data), is
    applied once every file is written and checked, never as a check of its own."""

    def setUp(self):
        super().setUp()
        os.makedirs(self.at(SECRETS_DIR))
        os.chmod(self.at(SECRETS_DIR), 0o755)
        self.handed_over = []

        def tmpfiles_create():  # what systemd-tmpfiles does to the directory; was its rule written?
            self.handed_over.append(os.path.exists(self.at(TMPFILES)))
            os.chmod(self.at(SECRETS_DIR), 0o750)
            if os.getuid() == 0:
                os.chown(self.at(SECRETS_DIR), 0, pwd.getpwnam("nobody").pw_gid)
            return 0, ""

        self.commands.results[tuple(TMPFILES_CREATE)] = tmpfiles_create

    def user_files(self):
        return [{**rendered_file(path), "owner": self.owner} for path in (SYSUSERS, TMPFILES)]

    def owners(self):
        status = os.stat(self.at(SECRETS_DIR))
        return stat.S_IMODE(status.st_mode), status.st_uid, status.st_gid

    def test_a_bundle_refused_by_a_later_check_leaves_every_owner_as_it_was(self):
        self.applied([self.site()])
        before = self.owners()
        self.commands.results[tuple(NGINX_T)] = (1, "nginx: configuration file test failed\n")
        bundle = self.bundle([*self.user_files(), self.site("server { v2 }\n")], release="r2")
        sha = self.publish(bundle)
        self.assertEqual(self.apply()[0], 1)
        self.assertEqual((self.owners(), self.handed_over), (before, []))
        self.assertFalse(os.path.exists(self.at(TMPFILES)))
        self.assert_status(sha, bundle, "refused", "validate failed: nginx -t exited 1")

    def assert_applied_between(self, last_check, first_action):
        """The rule applied, its file written by then, after the checks and before the actions."""
        calls = self.commands.calls
        self.assertLess(calls.index(last_check), calls.index(TMPFILES_CREATE))
        self.assertLess(calls.index(TMPFILES_CREATE), calls.index(first_action))
        self.assertEqual((self.handed_over[0], self.owners()[0]), (True, 0o750))

    def test_the_rule_is_applied_once_the_files_are_written_and_checked_before_the_actions(self):
        self.applied([self.site()])
        self.publish(self.bundle([*self.user_files(), self.site("server { v2 }\n")], release="r2"))
        self.assertEqual(self.apply()[0], 0)
        self.assert_applied_between(NGINX_T, RELOAD_NGINX)

    def test_the_rule_is_applied_at_first_boot_before_the_boot_script(self):
        self.publish(self.bundle([*self.user_files(), self.site()]))
        self.assertEqual(self.apply()[0], 0)
        self.assert_applied_between(NGINX_T, BOOT)


class Exec(Exception):
    """os.execv never returns; the fake ends the script with this instead."""


class BootstrapTest(NodeTestCase):
    def run_bootstrap(self, exec_=None):
        execs, ended = [], None

        def execv(path, argv):
            execs.append((path, argv))
            if exec_:
                exec_(argv)
            raise Exec()

        stderr = io.StringIO()
        with (
            mock.patch.dict(os.environ, {"WEBSTACK_ROOT": self.root}),
            mock.patch.object(boto3, "client", self.factory),
            mock.patch.object(os, "execv", execv),
            mock.patch("time.sleep") as sleep,
            contextlib.redirect_stderr(stderr),
        ):
            try:
                runpy.run_path(str(FILES / "webstack-bootstrap.py"), run_name="__main__")
            except (Exec, SystemExit) as end:
                ended = end
        return ended, execs, sleep.call_count, stderr.getvalue()

    def test_bootstrap_fetches_checks_installs_the_tool_and_execs_apply(self):
        self.publish(self.bundle([self.file(TOOL, "#!/usr/bin/python3\nTOOL\n", "0755")]))
        (bundle_bytes,) = self.s3.objects.values()
        ended, execs, sleeps, _ = self.run_bootstrap()
        saved = "/var/lib/webstack/bundle/incoming.json"
        self.assertIsInstance(ended, Exec)
        self.assertEqual(execs, [(self.at(TOOL), [self.at(TOOL), "apply", "--bundle", self.at(saved)])])
        self.assertEqual(self.regions, ["eu-west-1", "eu-west-1"])
        self.assertEqual((pathlib.Path(self.at(saved)).read_bytes(), self.mode(saved)), (bundle_bytes, 0o600))
        self.assertEqual((self.read(TOOL), self.mode(TOOL)), ("#!/usr/bin/python3\nTOOL\n", 0o755))
        self.assertEqual(sleeps, 0)

    def test_the_bootstrap_hands_the_saved_bundle_to_a_first_apply(self):
        bundle = self.bundle([self.file(TOOL, "TOOL\n", "0755"), self.file(SITE, "server {}\n", validate=NGINX_T)])
        sha = self.publish(bundle)
        codes = []
        run_tool = lambda argv: codes.append(  # noqa: E731
            self.module.main(argv, self.factory, root=self.root, run_command=self.commands)
        )
        self.run_bootstrap(run_tool)
        self.assertEqual((codes, self.s3.gets, self.read(SITE)), ([0], 1, "server {}\n"))
        self.assertEqual(self.commands.calls, [NGINX_T, BOOT, ENABLE_TIMER, HEALTH])
        self.assert_status(sha, bundle, "applied")

    def test_bootstrap_retries_while_the_pointer_is_not_there_yet(self):
        self.publish(self.bundle([self.file(TOOL, "TOOL\n", "0755")]))
        present, asked = self.ssm.get_parameter, []

        def first_missing(Name):
            asked.append(Name)
            if len(asked) == 1:
                raise not_found(Name)
            return present(Name)

        self.ssm.get_parameter = first_missing
        ended, execs, sleeps, stderr = self.run_bootstrap()
        self.assertIsInstance(ended, Exec)
        self.assertEqual((len(execs), sleeps, asked), (1, 1, [POINTER, POINTER]))
        self.assertIn("ParameterNotFound", stderr)

    def test_bootstrap_never_execs_a_bundle_whose_sha256_differs(self):
        self.publish(self.bundle([self.file(TOOL, "TOOL\n", "0755")]))
        (key,) = self.s3.objects
        self.s3.objects[key] = self.s3.objects[key].replace(b"TOOL", b"EVIL")
        ended, execs, _, _ = self.run_bootstrap()
        self.assertIsInstance(ended, SystemExit)
        self.assertIn("sha256 mismatch", str(ended.code))
        self.assertEqual(execs, [])
        self.assertFalse(os.path.exists(self.at(TOOL)))
        self.assertFalse(os.path.exists(self.at("/var/lib/webstack/bundle/incoming.json")))


if __name__ == "__main__":
    unittest.main()
