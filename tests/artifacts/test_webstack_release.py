"""Unit tests of issue 18's node side: a bundle's `app` release in `webstack-aws apply`, the preflight
and `fetch --reload`.

The harness is test_webstack_apply.py's: a temporary directory stands for the node's root (its /srv,
/etc and a fake /proc), fakes for SSM, S3, CloudWatch and every command (`run`), which records argv.
Run with Debian's python: /usr/bin/python3 -m unittest tests/artifacts/test_webstack_release.py
"""
import contextlib
import hashlib
import io
import json
import os
import pathlib
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import tempfile
import textwrap
import threading
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_webstack_apply import (  # noqa: E402
    APT, BOOT, BUCKET, ENABLE_TIMER, HEALTH, STATUS, NodeTestCase, rendered_file, with_rendered_bundle,
)

COMMAND_STATUS = "/webstack/test/s2/release-command"
RELEASES = "/srv/webstack/releases"
SYSUSERS = "/etc/sysusers.d/webstack.conf"
CURRENT = "/srv/webstack/current"
SHOW_MAIN_PID = ["systemctl", "show", "-p", "MainPID", "--value", "webstack-app.service"]
RELOAD = ["systemctl", "reload", "webstack-app.service"]
ROLL_BACK = ["systemctl", "reload-or-restart", "webstack-app.service"]
MAIN_PID, WORKERS = 100, (201, 202)
# The app's user stands in for webstack-app (which this machine has not): handing a venv to another
# user needs root, which CI is; anyone else hands it to themselves, so the tests of that hand-over
# (which could not fail then) are skipped.
APP_USER = "nobody" if os.getuid() == 0 else pwd.getpwuid(os.getuid()).pw_name
as_root = unittest.skipUnless(os.getuid() == 0, "hands the venv to another user and back: needs root (CI runs as root)")
MODULE = "app:application"
# The bundle's app.sandbox, part of one (the program renders appNode.ts APP_SANDBOX).
SANDBOX = ["NoNewPrivileges=yes", "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
           "IPAddressDeny=169.254.0.0/16 fe80::/10 fd00:ec2::254", "InaccessiblePaths=-/etc/webstack/secrets"]
DEMO = {"app.py": b"def application(environ, start_response):\n    pass\n"}


def archive(files, extra=()):
    """A release archive as the Pulumi program packs it (plus `extra` TarInfo members), and its id."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def noting(note, result=(0, "")):
    """A command's scripted result that first notes something (how the node looked when it ran)."""

    def command():
        note()
        return result

    return command


class ReleaseTestCase(NodeTestCase):
    def setUp(self):
        super().setUp()
        self.commands.results[tuple(SHOW_MAIN_PID)] = (0, f"{MAIN_PID}\n")
        self.commands.results[tuple(RELOAD)] = self.gunicorn_reloads
        self.bundles = 0
        self.tool_app_user = self.module.APP_USER  # the node's: the tests' stand-in replaces it
        patch = mock.patch.object(self.module, "APP_USER", APP_USER)
        patch.start()
        self.addCleanup(patch.stop)

    # The node's processes: Gunicorn's workers, each in the release current pointed to when it started.
    def workers_in(self, release):
        self.write(f"/proc/{MAIN_PID}/task/{MAIN_PID}/children", " ".join(map(str, WORKERS)) + "\n")
        for pid in WORKERS:
            cwd = self.at(f"/proc/{pid}/cwd")
            os.makedirs(os.path.dirname(cwd), exist_ok=True)
            if os.path.lexists(cwd):
                os.unlink(cwd)
            os.symlink(self.at(f"{RELEASES}/{release}"), cwd)

    def gunicorn_reloads(self):
        self.workers_in(self.current())
        return 0, ""

    def current(self):
        return os.path.basename(os.readlink(self.at(CURRENT))) if os.path.lexists(self.at(CURRENT)) else None

    def release(self, files=DEMO, extra=()):
        data, release = archive(files, extra)
        self.s3.objects[(BUCKET, f"releases/{release}.tar.gz")] = data
        return release

    def app_bundle(self, release, node="s2", command=None, await_command=False, health=HEALTH, module=MODULE):
        self.bundles += 1  # each bundle differs, as a new release's would
        bundle = self.bundle([self.file("/etc/webstack/n", f"{self.bundles}\n")], release=f"r{self.bundles}",
                             node=node, health=health)
        bundle["app"] = {"release": release, "bucket": BUCKET, "key": f"releases/{release}.tar.gz", "module": module,
                         "sandbox": SANDBOX}
        if command:
            bundle["app"]["command"] = {"run": command, "status": COMMAND_STATUS}
        if await_command:
            bundle["app"]["awaitCommand"] = {"node": "s2", "status": COMMAND_STATUS}
        return bundle

    def deploy(self, release, **options):
        """A bundle with the release published and applied: (exit code, stderr, its status)."""
        bundle = self.app_bundle(release, **options)
        self.publish(bundle)
        code, stderr = self.apply()
        status = json.loads(self.read("/var/lib/webstack/bundle/status.json"))
        return code, stderr, status

    def live(self, release):
        """A first apply of the release done, with the app's workers in it and the records cleared."""
        self.assertEqual(self.deploy(release)[0], 0)
        self.workers_in(release)
        self.commands.calls.clear()
        self.ssm.puts.clear()
        self.cloudwatch.metrics.clear()

    def root_only(self):
        """One of root's secret files, and what it holds."""
        self.write("/etc/webstack/secrets/db-migrate-password", "migrate-pw-4711\n")
        os.chmod(self.at("/etc/webstack/secrets/db-migrate-password"), 0o600)
        return self.at("/etc/webstack/secrets/db-migrate-password"), "migrate-pw-4711"

    def metric_names(self):
        return [name for _, name, _, _ in self.cloudwatch.metrics]

    def preflight(self, release, module=MODULE, sandbox=SANDBOX):
        tool = self.at("/usr/local/sbin/webstack-aws")
        return [tool, "preflight", self.at(f"{RELEASES}/{release}"), module, *sandbox]

    def venv(self, release):
        return ["/usr/bin/python3", "-m", "venv", "--clear", "--system-site-packages",
                self.at(f"{RELEASES}/{release}/venv")]

    def release_command(self, release, command):
        return [self.at("/usr/local/sbin/webstack-release-command"), self.at(f"{RELEASES}/{release}"), command]


class PrepareTest(ReleaseTestCase):
    def test_a_release_is_unpacked_with_its_venv_without_pip_when_nothing_is_required(self):
        release = self.release({**DEMO, "requirements.txt": b"# pymysql: Debian's python3-pymysql\n\n"})
        code, _, status = self.deploy(release)
        self.assertEqual(code, 0)
        self.assertEqual(self.read(f"{RELEASES}/{release}/app.py"), DEMO["app.py"].decode())
        self.assertEqual(self.mode(f"{RELEASES}/{release}"), 0o755)
        self.assertEqual(sorted(os.listdir(self.at(RELEASES))), [release])  # no .partial, no link left
        self.assertEqual(self.commands.calls[0], self.venv(release))
        self.assertFalse([argv for argv in self.commands.calls if "pip" in argv[0]])
        self.assertEqual(status["app"], release)

    def with_requirements(self):
        """A release with a requirement and its wheel; its venv made as `python3 -m venv` would (a
        directory, a link to the system's python), and the pip command that installs into it."""
        release = self.release({**DEMO, "requirements.txt": b"flask==3.0\n", "wheels/flask-3.0-py3-none-any.whl": b"w"})
        final = self.at(f"{RELEASES}/{release}")

        def make_venv():
            os.makedirs(f"{final}/venv/bin")
            os.symlink("/usr/bin/python3", f"{final}/venv/bin/python")
            return 0, ""

        self.commands.results[tuple(self.venv(release))] = make_venv
        pip = [f"{final}/venv/bin/pip", "install", "--no-index", "--no-cache-dir", "--disable-pip-version-check",
               "--find-links", f"{final}/wheels", "-r", f"{final}/requirements.txt"]
        return release, final, self.module.as_app(f"{final}.partial/venv", pip, SANDBOX)

    @as_root
    def test_requirements_are_installed_from_the_releases_wheels_only_as_the_apps_user_in_a_sandbox(self):
        release, final, pip = self.with_requirements()
        seen = []
        # While pip runs the release has its final name (its scripts' shebangs say so), and the venv,
        # the one place it writes, is the app's user's.
        self.commands.results[tuple(pip)] = noting(lambda: seen.append(
            (os.path.exists(f"{final}/app.py"), os.stat(f"{final}/venv/bin").st_uid)))
        self.assertEqual(self.deploy(release)[0], 0)
        self.assertEqual(self.commands.calls[:2], [self.venv(release), pip])
        self.assertEqual(seen, [(True, pwd.getpwnam(APP_USER).pw_uid)])
        self.assertEqual(pip[:8], ["systemd-run", "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
                                   f"--uid={APP_USER}", f"--gid={APP_USER}"])
        # The app's sandbox, but with no network at all, and the venv writable.
        self.assertEqual([a for a in pip if a.startswith("--property=")], [
            "--property=NoNewPrivileges=yes", "--property=IPAddressDeny=169.254.0.0/16 fe80::/10 fd00:ec2::254",
            "--property=InaccessiblePaths=-/etc/webstack/secrets", "--property=RestrictAddressFamilies=AF_UNIX",
            f"--property=ReadWritePaths={final}.partial/venv",
        ])
        self.assertEqual(pip[pip.index("--") + 1], f"{final}/venv/bin/pip")

    @with_rendered_bundle
    def test_the_first_apply_makes_the_apps_user_before_its_release_is_prepared(self):
        release, final, pip = self.with_requirements()
        # The program's own sysusers.d file: the applier passes its declarations, and nothing else, on.
        users = rendered_file(SYSUSERS)
        declared = [line for line in users["content"].splitlines() if line.startswith("u ")]
        self.assertEqual([line.split()[:2] for line in declared], [["u", self.tool_app_user]])
        sysusers = ["systemd-sysusers", "--inline", *declared]
        made = []
        self.commands.results[tuple(sysusers)] = noting(lambda: made.append(True))
        real = pwd.getpwnam

        def getpwnam(name):  # the app's user exists once systemd-sysusers has made it
            if name == APP_USER and not made:
                raise KeyError(f"getpwnam(): name not found: {name!r}")
            return real(name)

        bundle = self.app_bundle(release)
        bundle["files"].insert(0, {**users, "owner": self.owner})
        self.publish(bundle)
        with mock.patch.object(pwd, "getpwnam", getpwnam):
            code, stderr = self.apply()
        self.assertEqual(code, 0, stderr)
        self.assertEqual(self.commands.calls[:3], [sysusers, self.venv(release), pip])

    @as_root
    def test_the_venv_pip_wrote_is_the_appliers_again_with_no_special_bit_or_shared_write(self):
        release, final, pip = self.with_requirements()

        def install():
            venv = f"{final}/venv"
            os.makedirs(f"{venv}/lib/site-packages/flask")
            pathlib.Path(f"{venv}/lib/site-packages/flask/__init__.py").write_text("")
            pathlib.Path(f"{venv}/bin/flask").write_text("#!/bin/sh\n")
            os.chmod(f"{venv}/bin/flask", 0o6777)  # setuid, setgid, writable by all
            os.chmod(f"{venv}/lib/site-packages/flask", 0o3777)
            os.symlink("/etc/passwd", f"{venv}/lib/escape")  # a link is owned, never followed
            return 0, ""

        self.commands.results[tuple(pip)] = install
        self.assertEqual(self.deploy(release)[0], 0)
        venv = f"{final}/venv"
        for path in (venv, f"{venv}/bin", f"{venv}/bin/flask", f"{venv}/lib/site-packages/flask",
                     f"{venv}/lib/site-packages/flask/__init__.py", f"{venv}/lib/escape", f"{venv}/bin/python"):
            owner = os.lstat(path)
            self.assertEqual((path, owner.st_uid, owner.st_gid), (path, os.getuid(), os.getgid()))
        self.assertEqual(stat.S_IMODE(os.stat(f"{venv}/bin/flask").st_mode), 0o755)
        self.assertEqual(stat.S_IMODE(os.stat(f"{venv}/lib/site-packages/flask").st_mode), 0o755)
        self.assertEqual(os.readlink(f"{venv}/lib/escape"), "/etc/passwd")

    def test_a_venv_with_a_hard_link_or_a_fifo_is_refused_and_leaves_nothing(self):
        for what, says in (("link", "a file with another hard link"), ("fifo", "neither a file, a directory nor a link")):
            release, final, pip = self.with_requirements()

            def install(what=what, final=final):
                elsewhere = self.at("/var/log/webstack/app.log")  # the app's user's: pip could link it in
                os.makedirs(os.path.dirname(elsewhere), exist_ok=True)
                pathlib.Path(elsewhere).write_text("")
                if what == "link":
                    os.link(elsewhere, f"{final}/venv/bin/app.log")
                else:
                    os.mkfifo(f"{final}/venv/bin/pipe")
                return 0, ""

            self.commands.results[tuple(pip)] = install
            code, _, status = self.deploy(release)
            self.assertEqual(code, 1)
            self.assertIn(says, status["reason"])
            self.assertFalse(os.path.exists(final) or os.path.exists(f"{final}.partial"))
            self.assertIn("ReleaseFailed", self.metric_names())

    def test_failing_requirements_are_refused_with_pips_words_and_leave_nothing(self):
        release, final, pip = self.with_requirements()
        self.commands.results[tuple(pip)] = (1, "ERROR: No matching distribution found for flask==3.0\n")
        code, _, status = self.deploy(release)
        self.assertEqual(code, 1)
        self.assertIn("release requirements failed", status["reason"])
        self.assertIn("No matching distribution found for flask==3.0", status["reason"])
        self.assertFalse(os.path.exists(final) or os.path.exists(f"{final}.partial"))

    def test_an_archive_whose_sha256_is_not_its_id_is_refused_before_anything_runs(self):
        release = self.release()
        key = (BUCKET, f"releases/{release}.tar.gz")
        self.s3.objects[key] = self.s3.objects[key] + b"tampered"
        code, _, status = self.deploy(release)
        self.assertEqual(code, 1)
        self.assertEqual(self.commands.calls, [])
        self.assertIn("sha256 mismatch", status["reason"])
        self.assertEqual((status["state"], status["app"]), ("refused", release))
        self.assertFalse(os.path.exists(self.at(RELEASES)) and os.listdir(self.at(RELEASES)))
        self.assertEqual(self.metric_names(), ["BundleRefused", "ReleaseFailed"])

    def test_an_archive_with_a_path_outside_its_directory_or_a_link_is_refused_and_leaves_nothing(self):
        escaping = tarfile.TarInfo("../../escaped.py")
        escaping.size = 1
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        # A venv of its own: root's python would read its .pth files when it makes the node's.
        shipped_venv, pth = tarfile.TarInfo("venv"), tarfile.TarInfo("./venv/lib/python3/site-packages/evil.pth")
        shipped_venv.type, pth.size = tarfile.DIRTYPE, 1
        cases = [((escaping,), "outside the release directory"), ((link,), "neither a file nor a directory"),
                 ((shipped_venv,), "venv: the release's venv is made on the node"),
                 ((pth,), "evil.pth: the release's venv is made on the node")]
        for extra, says in cases:
            release = self.release(DEMO, extra)
            code, _, status = self.deploy(release)
            self.assertEqual(code, 1)
            self.assertIn(f"release {release[:12]}: the archive does not unpack: ", status["reason"])
            self.assertIn(says, status["reason"])
            self.assertEqual(os.listdir(self.at(RELEASES)), [])
            self.assertFalse(os.path.exists(self.at("/srv/escaped.py")))
            self.assertEqual(self.commands.calls, [])

    def test_a_venv_entry_swapped_for_a_fifo_after_its_stat_is_refused_not_owned(self):
        venv = self.at("/venv")
        os.makedirs(venv)
        os.mkfifo(f"{venv}/swapped")
        real_stat = os.stat

        def stat_before_the_swap(name, *args, **kwargs):  # what os.stat said a moment before
            status = real_stat(name, *args, **kwargs)
            if name == "swapped":
                return os.stat_result((stat.S_IFREG | 0o644, *tuple(status)[1:]))
            return status

        with mock.patch.object(os, "stat", stat_before_the_swap):
            with self.assertRaisesRegex(self.module.ReleaseRefused, "swapped, no longer a file"):
                self.module.own_tree(venv, os.getuid(), os.getgid())

    def test_a_failing_venv_is_refused_and_leaves_nothing(self):
        release = self.release()
        self.commands.results[tuple(self.venv(release))] = (1, "Error: ensurepip is not available\n")
        code, _, status = self.deploy(release)
        self.assertEqual(code, 1)
        self.assertIn("release venv failed", status["reason"])
        self.assertIn("ensurepip is not available", status["reason"])
        self.assertEqual(os.listdir(self.at(RELEASES)), [])
        self.assertIn("ReleaseFailed", self.metric_names())

    def test_a_missing_python3_venv_is_installed_before_the_releases_venv_is_made(self):
        # A node created before its bootstrap named python3-venv: the bundle's packages bring it.
        release = self.release()
        self.live(release)
        new = self.release({**DEMO, "v2": b""})
        bundle = self.app_bundle(new)
        bundle["packages"] = ["python3-venv"]
        self.publish(bundle)
        self.assertEqual(self.apply()[0], 0)
        install = [*APT, "install", "-y", "--no-install-recommends", "python3-venv"]
        self.assertEqual(self.commands.calls[:4], [
            ["dpkg-query", "-W", "-f=${Status}", "python3-venv"],
            [*APT, "update"],
            install,
            self.venv(new),
        ])

    def test_a_prepared_release_is_not_downloaded_again(self):
        release = self.release()
        self.assertEqual(self.deploy(release)[0], 0)
        gets = self.s3.gets
        self.commands.calls.clear()
        self.assertEqual(self.deploy(release)[0], 0)  # another bundle, the same release
        self.assertEqual(self.s3.gets, gets + 1)  # the bundle only
        self.assertNotIn(self.venv(release), self.commands.calls)


class SwitchTest(ReleaseTestCase):
    def test_the_first_apply_points_current_at_the_release_before_the_boot_script_starts_the_app(self):
        release = self.release()
        seen = []
        self.commands.results[tuple(BOOT)] = noting(lambda: seen.append(self.current()))
        code, _, status = self.deploy(release)
        self.assertEqual(code, 0)
        self.assertEqual(seen, [release])
        self.assertEqual(os.readlink(self.at(CURRENT)), f"releases/{release}")
        self.assertEqual(self.commands.calls, [self.venv(release), BOOT, ENABLE_TIMER, HEALTH])  # no preflight
        self.assertEqual(list(status), ["sha256", "release", "app", "state", "at"])
        self.assertEqual(json.loads(self.ssm.values[STATUS])["app"], release)

    def app_log(self, lines):
        """The app's log as Gunicorn leaves it: a file of the app's user's."""
        self.write("/var/log/webstack/app.log", "".join(f"{line}\n" for line in lines))
        user = pwd.getpwnam(APP_USER)
        os.chown(self.at("/var/log/webstack/app.log"), user.pw_uid, user.pw_gid)

    def failed_health_check(self, release):
        """A first apply whose health check fails: (exit code, the apply's log, its status). Were the
        tool to ask `tail` for the app's log, it would read it as root does on a node."""
        self.commands.results[tuple(HEALTH)] = (22, "curl: (22) The requested URL returned error: 502\n")
        tail = subprocess.run(["tail", "-n", "10", self.at("/var/log/webstack/app.log")], capture_output=True, text=True)
        self.commands.results[("tail", "-n", "10", "/var/log/webstack/app.log")] = (tail.returncode, tail.stdout)
        with mock.patch.object(self.module, "HEALTH_ATTEMPTS", 2), mock.patch.object(self.module.time, "sleep"):
            return self.deploy(release)

    def test_a_failed_health_check_of_an_app_node_logs_the_apps_unit_its_last_words_and_its_socket(self):
        release = self.release()
        self.app_log([f"line {n}" for n in range(1, 13)])
        status_argv = ["systemctl", "status", "--no-pager", "--full", "--lines=0", "webstack-app.service"]
        self.commands.results[tuple(status_argv)] = (3, "webstack-app.service - webstack app (Gunicorn)\n   Active: failed\n")
        code, stderr, status = self.failed_health_check(release)
        self.assertEqual(code, 1)
        self.assertEqual(self.commands.calls, [self.venv(release), BOOT, ENABLE_TIMER, HEALTH, HEALTH, status_argv, [
            "journalctl", "--no-pager", "--quiet", "--unit=webstack-app.service", "--lines=15"],
            ["tail", "-n", "5", "/var/log/nginx/error.log"], ["ls", "-ld", "/run/webstack", "/run/webstack/app.sock"]])
        self.assertIn("(exit 3):\nwebstack-app.service - webstack app (Gunicorn)\n   Active: failed\n", stderr)
        self.assertIn("the last 10 lines of /var/log/webstack/app.log:\n" + "".join(
            f"line {n}\n" for n in range(3, 13)), stderr)
        self.assertLess(stderr.index("Active: failed"), stderr.index("line 12"))
        self.assertLess(stderr.index("line 12"), stderr.index("refused bundle"))
        self.assertTrue(status["reason"].startswith("health check failed: "), status["reason"])

    def assert_app_log_not_read_through(self, make_link, says):
        """The log's directory is the app's user's: a release's code may make app.log a link to one of
        root's files, whose content the apply's journal (and the boot's output, which CloudWatch
        receives) must never hold."""
        target, secret = self.root_only()
        os.makedirs(self.at("/var/log/webstack"))
        make_link(target, self.at("/var/log/webstack/app.log"))
        code, stderr, status = self.failed_health_check(self.release())
        self.assertEqual(code, 1)
        self.assertNotIn(secret, stderr + status["reason"])
        self.assertRegex(stderr, r"the last 10 lines of /var/log/webstack/app\.log:\n/var/log/webstack/app\.log not read: "
                         + says)

    def test_a_failed_health_check_never_reads_the_apps_log_through_a_link(self):
        self.assert_app_log_not_read_through(os.symlink, r"\[Errno 40\]")

    @as_root
    def test_a_failed_health_check_never_reads_a_hard_link_to_another_users_file_as_the_apps_log(self):
        self.assert_app_log_not_read_through(os.link, f"not a file of {APP_USER}'s alone")

    def test_a_node_from_before_loses_the_password_in_app_env_once_the_apps_copy_exists(self):
        old, new = self.release(), self.release({**DEMO, "v2": b""})
        self.live(old)
        app_env = "WEBSTACK_NODE=s2\nDB_APP_PASSWORD=pw\nDB_CA_FILE=/etc/webstack/tls/ca.crt\n"
        self.write("/etc/webstack/app.env", app_env)
        os.chmod(self.at("/etc/webstack/app.env"), 0o600)
        self.assertEqual(self.deploy(new)[0], 0)
        self.assertEqual(self.read("/etc/webstack/app.env"), app_env)  # no copy yet: it stays
        self.write("/etc/webstack/app-secrets/DB_APP_PASSWORD", "pw")
        self.assertEqual(self.deploy(new)[0], 0)
        self.assertEqual(self.read("/etc/webstack/app.env"), "WEBSTACK_NODE=s2\nDB_CA_FILE=/etc/webstack/tls/ca.crt\n")
        self.assertEqual(self.mode("/etc/webstack/app.env"), 0o600)

    def test_a_new_release_is_switched_to_after_its_preflight_and_every_worker_runs_it(self):
        old, new = self.release(), self.release({**DEMO, "v2": b""})
        self.live(old)
        seen = {}
        self.commands.results[tuple(self.preflight(new))] = noting(lambda: seen.setdefault("preflight", self.current()))
        self.commands.results[tuple(HEALTH)] = noting(lambda: seen.setdefault("health", self.current()))
        code, _, status = self.deploy(new)
        self.assertEqual(code, 0)
        self.assertEqual(seen, {"preflight": old, "health": new})
        self.assertEqual(self.commands.calls,
                         [self.venv(new), self.preflight(new), RELOAD, SHOW_MAIN_PID, SHOW_MAIN_PID, HEALTH])
        self.assertEqual((self.current(), status["state"], status["app"]), (new, "applied", new))
        self.assertEqual(self.metric_names(), ["BundleApplied"])

    def test_a_bundle_an_older_tool_applied_without_its_release_is_applied_again_in_full(self):
        old, release = self.release({**DEMO, "old": b""}), self.release()
        self.live(old)
        self.assertEqual(self.deploy(release)[0], 0)
        # As if the older tool (issue 17's) had applied this bundle: its files written, "applied",
        # but no release taken (current as before) and no record of the keys it heeded. The same
        # pointer on the next run: this tool takes the release now.
        os.remove(self.at("/var/lib/webstack/bundle/heeded.json"))
        os.unlink(self.at(CURRENT))
        os.symlink(f"releases/{old}", self.at(CURRENT))
        self.workers_in(old)
        self.commands.calls.clear()
        code, stderr = self.apply()
        self.assertEqual(code, 0)
        self.assertRegex(stderr, r"was applied by a tool that ignored app\b.*; applying it again")
        self.assertEqual(self.current(), release)
        self.assertIn(self.preflight(release), self.commands.calls)
        # Heeded now: the next run has nothing to do.
        self.commands.calls.clear()
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls, [])

    @with_rendered_bundle
    def test_a_bundle_an_older_tool_applied_without_its_sandbox_and_users_is_applied_again_in_full(self):
        # A node from before: issue 18's tool applies the first bundle with the app's sandbox and user
        # (it writes this tool as one of its files, whose preflight it runs), records what it heeded,
        # and knows nothing of the users or of app.env's password, which stays although the app's own
        # copy is fetched by then.
        release = self.release()
        self.live(release)
        users = rendered_file(SYSUSERS)
        bundle = self.app_bundle(release)
        bundle["files"].insert(0, {**users, "owner": self.owner})
        self.publish(bundle)
        self.assertEqual(self.apply()[0], 0)
        self.write("/var/lib/webstack/bundle/heeded.json", json.dumps(["app", "packages"]))
        self.write("/etc/webstack/app.env", "WEBSTACK_NODE=s2\nDB_APP_PASSWORD=pw\n")
        self.write("/etc/webstack/app-secrets/DB_APP_PASSWORD", "pw")
        self.commands.calls.clear()
        code, stderr = self.apply()
        self.assertEqual(code, 0, stderr)
        self.assertIn("was applied by a tool that ignored app.sandbox, users; applying it again", stderr)
        declared = [line for line in users["content"].splitlines() if line.startswith("u ")]
        self.assertEqual(self.commands.calls[0], ["systemd-sysusers", "--inline", *declared])
        self.assertEqual(self.read("/etc/webstack/app.env"), "WEBSTACK_NODE=s2\n")
        # Heeded now: the next run has nothing to do.
        self.commands.calls.clear()
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls, [])

    def test_the_switch_waits_until_the_old_workers_are_gone(self):
        old, new = self.release(), self.release({**DEMO, "v2": b""})
        self.live(old)
        self.commands.results[tuple(RELOAD)] = (0, "")  # the old workers still serve
        polls = iter(range(100))

        def old_workers_finish(_seconds):
            if next(polls) == 2:
                self.workers_in(new)

        with mock.patch.object(self.module.time, "sleep", side_effect=old_workers_finish) as sleep:
            self.assertEqual(self.deploy(new)[0], 0)
        self.assertEqual(sleep.call_count, 3)
        self.assertEqual(self.commands.calls.count(SHOW_MAIN_PID), 5)

    def test_a_failing_preflight_leaves_current_and_says_why(self):
        old, new = self.release(), self.release({**DEMO, "v2": b""})
        self.live(old)
        why = "Gunicorn exited 3: ModuleNotFoundError: No module named 'flask'"
        self.commands.results[tuple(self.preflight(new))] = (1, f"{why}\n")
        code, _, status = self.deploy(new)
        self.assertEqual(code, 1)
        self.assertEqual(self.current(), old)
        self.assertEqual(self.commands.calls, [self.venv(new), self.preflight(new)])  # no reload
        self.assertEqual((status["state"], status["app"]), ("refused", new))
        self.assertTrue(status["reason"].startswith("preflight failed: "), status["reason"])
        self.assertTrue(status["reason"].endswith(f"exited 1: {why}"), status["reason"])
        self.assertEqual(self.metric_names(), ["BundleRefused", "ReleaseFailed"])

    def test_a_release_the_watcher_refused_sends_release_failed_too_at_every_look_until_its_next_try(self):
        old, new = self.release(), self.release({**DEMO, "v2": b""})
        self.live(old)
        self.commands.results[tuple(self.preflight(new))] = (1, "Gunicorn exited 3\n")
        self.publish(self.app_bundle(new))
        now = [1000.0]

        def watch():
            time, stderr = self.module.time, io.StringIO()
            with contextlib.redirect_stderr(stderr), mock.patch.object(time, "monotonic", lambda: now[0]), \
                    mock.patch.object(time, "time", lambda: now[0]), \
                    mock.patch.object(time, "sleep", lambda s: now.__setitem__(0, now[0] + s)):
                return self.module.main(
                    ["webstack-aws", "watch"], self.factory, root=self.root, run_command=self.commands
                ), stderr.getvalue()

        self.assertEqual(watch()[0], 1)  # refused at its first look
        self.assertIs(json.loads(self.read("/var/lib/webstack/bundle/refused.json"))["releaseFailed"], True)
        self.cloudwatch.metrics.clear()
        now[0] += 30  # the timer's next process: a look 30 s after the refusal, the try at 60 s
        self.assertEqual(watch()[0], 1)
        self.assertEqual(self.metric_names(), ["BundleRefused", "ReleaseFailed"] * 3)
        self.assertEqual(self.commands.calls.count(self.preflight(new)), 2)
        self.assertEqual(self.current(), old)

    def test_the_preflight_serves_the_module_the_bundle_names(self):
        old, new = self.release(), self.release({**DEMO, "v2": b""})
        self.live(old)
        self.assertEqual(self.deploy(new, module="shop.wsgi:application")[0], 0)
        self.assertIn(self.preflight(new, "shop.wsgi:application"), self.commands.calls)
        self.assertEqual(self.current(), new)

    def test_a_bundle_made_before_app_named_its_module_takes_it_from_its_own_unit(self):
        old, new = self.release(), self.release({**DEMO, "v2": b""})
        self.live(old)
        bundle = self.app_bundle(new)
        del bundle["app"]["module"], bundle["app"]["sandbox"]
        bundle["files"].append(self.file(
            "/etc/systemd/system/webstack-app.service",
            "[Service]\nExecStart=/usr/bin/gunicorn --config /etc/webstack/gunicorn.conf.py shop.wsgi:application\n"))
        self.publish(bundle)
        self.assertEqual(self.apply()[0], 0)
        # Nor a sandbox: its preflight gets the app's whole sandbox, the tool's own copy of it.
        full = self.module.APP_SANDBOX
        self.assertIn("IPAddressDeny=169.254.0.0/16 fe80::/10 fd00:ec2::254", full)
        self.assertIn(self.preflight(new, "shop.wsgi:application", full), self.commands.calls)
        self.assertEqual(self.current(), new)

    def test_an_app_without_a_module_path_and_callable_is_refused_before_anything_runs(self):
        old, new = self.release(), self.release({**DEMO, "v2": b""})
        self.live(old)
        for bad in [None, "", "app", "app:application\n", "-c x:y", "app:application --reload", ["app:application"]]:
            with self.subTest(bad=bad):
                self.commands.calls.clear()
                self.cloudwatch.metrics.clear()
                bundle = self.app_bundle(new, module=bad)
                if bad is None:
                    del bundle["app"]["module"]
                self.publish(bundle)
                gets = self.s3.gets
                code, stderr = self.apply()
                self.assertEqual(code, 1)
                self.assertEqual((self.commands.calls, self.s3.gets), ([], gets + 1))  # the bundle only
                self.assertEqual(self.current(), old)
                status = json.loads(self.read("/var/lib/webstack/bundle/status.json"))
                self.assertEqual((status["state"], status["app"]), ("refused", new))
                self.assertEqual(status["reason"],
                                 f"the bundle's app names no module.path:callable as its module: {bad!r}")
                self.assertEqual(self.metric_names(), ["BundleRefused", "ReleaseFailed"])

    def test_a_failing_health_check_after_the_switch_switches_back(self):
        old, new = self.release(), self.release({**DEMO, "v2": b""})
        self.live(old)
        self.commands.results[tuple(HEALTH)] = (22, "curl: (22) The requested URL returned error: 500\n")
        with mock.patch.object(self.module, "HEALTH_ATTEMPTS", 1):
            code, _, status = self.deploy(new)
        self.assertEqual(code, 1)
        self.assertEqual(self.current(), old)
        # Logged while the failing release still runs.
        diagnostics = [d for d in self.module.app_diagnostics(self.root) if isinstance(d, list)]
        self.assertEqual(self.commands.calls[-3 - len(diagnostics):], [SHOW_MAIN_PID, HEALTH, *diagnostics, ROLL_BACK])
        self.assertIn("health check failed", status["reason"])
        self.assertIn(f"(back on release {old[:12]})", status["reason"])
        self.assertEqual(self.metric_names(), ["BundleRefused", "ReleaseFailed"])
        # Pointed back to the bundle that is live, the node says it runs it again.
        self.commands.calls.clear()
        self.publish(json.loads(self.read("/var/lib/webstack/bundle/current.json")))
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls, [])
        self.assertEqual(json.loads(self.read("/var/lib/webstack/bundle/status.json"))["app"], old)

    def test_workers_that_never_move_switch_back(self):
        old, new = self.release(), self.release({**DEMO, "v2": b""})
        self.live(old)
        self.commands.results[tuple(RELOAD)] = (0, "")  # the new workers never come
        with mock.patch.object(self.module, "SWITCH_WAIT", 0):
            code, _, status = self.deploy(new)
        self.assertEqual((code, self.current()), (1, old))
        self.assertIn(f"did not all move to release {new[:12]}", status["reason"])
        self.assertEqual(self.commands.calls[-1], ROLL_BACK)

    def test_a_gunicorn_that_stops_after_the_reload_switches_back_at_once(self):
        old, new = self.release(), self.release({**DEMO, "v2": b""})
        self.live(old)
        masters = iter([f"{MAIN_PID}\n", "0\n"])  # new workers that cannot start stop the master
        self.commands.results[tuple(SHOW_MAIN_PID)] = lambda: (0, next(masters))
        with mock.patch.object(self.module.time, "sleep") as sleep:
            code, _, status = self.deploy(new)
        self.assertEqual((code, self.current(), sleep.call_count), (1, old, 0))
        self.assertIn(f"the app's Gunicorn stopped on release {new[:12]}", status["reason"])
        self.assertEqual(self.commands.calls[-1], ROLL_BACK)

    def test_workers_are_found_by_their_parent_where_proc_has_no_children_file(self):
        self.write(f"/proc/{MAIN_PID}/stat", f"{MAIN_PID} (gunicorn) S 1 1\n")
        self.write("/proc/201/stat", f"201 (gunicorn: work) S {MAIN_PID} 1\n")
        self.write("/proc/202/stat", f"202 (a) b) S {MAIN_PID} 1\n")
        self.write("/proc/300/stat", "300 (bash) S 1 1\n")
        self.write("/proc/self/stat", "1 (x) S 1 1\n")
        self.assertEqual(sorted(self.module.app_workers(self.root, MAIN_PID)), [201, 202])

    def test_three_releases_are_kept(self):
        releases = [self.release({**DEMO, f"v{n}": b""}) for n in range(5)]
        self.live(releases[0])
        for release in releases[1:]:
            self.assertEqual(self.deploy(release)[0], 0)
            self.workers_in(release)
        self.assertEqual(sorted(os.listdir(self.at(RELEASES))), sorted(releases[2:]))
        self.assertEqual(self.current(), releases[4])


FAKE_SYSTEMD_RUN = textwrap.dedent('''\
    #!/usr/bin/python3
    """systemd-run as the release command calls it: records its options, command and stdin, then runs
    the command in its --working-directory with a bare environment (no user switch: the test's own)."""
    import json, os, subprocess, sys
    args = sys.argv[1:]
    options, command = args[:args.index("--")], args[args.index("--") + 1:]
    data = sys.stdin.buffer.read()
    with open(sys.argv[0] + ".json", "a") as handle:
        handle.write(json.dumps({"options": options, "command": command, "stdin": data.decode()}) + "\\n")
    with open(os.path.join(os.path.dirname(sys.argv[0]), "events"), "a") as handle:
        handle.write(json.dumps({"run": "systemd-run"}) + "\\n")
    cwd = next(o.split("=", 1)[1] for o in options if o.startswith("--working-directory="))
    sys.exit(subprocess.run(command, input=data, cwd=cwd, env={"PATH": "/usr/bin:/bin"}).returncode)
''')

# The database client as root's half calls it: records its arguments and SQL where systemd-run records
# its start (the order of the two is the test's point); answers the sessions query with two ids, or
# fails it where a test asks.
FAKE_DB_CLIENT = textwrap.dedent('''\
    #!/usr/bin/python3
    import json, os, sys
    sql = sys.stdin.read()
    with open(os.path.join(os.path.dirname(sys.argv[0]), "events"), "a") as handle:
        handle.write(json.dumps({"run": "mariadb", "argv": sys.argv[1:], "sql": sql}) + "\\n")
    if "information_schema.processlist" in sql:
        if os.path.exists(sys.argv[0] + ".fails"):
            sys.exit("ERROR 2002 (HY000): Can't connect to local server through socket")
        print("41\\n42")
''')

MIGRATE_UNLOCK = "ALTER USER 'migrate'@'localhost' ACCOUNT UNLOCK;"
MIGRATE_LOCK = "ALTER USER 'migrate'@'localhost' ACCOUNT LOCK;"


class ReleaseCommandScriptTest(unittest.TestCase):
    """cloud-init/files/release-command.sh itself, run by bash: the node's paths (/etc/webstack,
    /var/log/webstack, systemd-run, the database client) moved under a temporary root, nothing else."""

    FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cloud-init", "files")
    SCRIPT = os.path.join(FILES, "release-command.sh")
    # Names root's half would run were it to look them up on a PATH the release controls.
    TRAPS = ["cat", "basename", "setpriv", "sed", "tee", "systemd-run", "mariadb", "python3", "sh", "bash", "env",
             "install", "printf", "id", "chown"]

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        root = self.root = self.dir.name
        self.release = "f" * 64
        self.release_dir = f"{root}/srv/webstack/releases/{self.release}"
        for path, content in {
            "etc/webstack/secrets/db-migrate-password": "migrate-pw",
            "etc/webstack/app.env": "WEBSTACK_NODE=s2\n",
            "etc/webstack/app-settings.json": json.dumps({"env": {"SETTING": "a value"}}),
            "etc/webstack/app-secrets/DB_APP_PASSWORD": "app-pw\n",
            "etc/webstack/app-secrets/API_KEY": "s3cret\n\n",
            "etc/webstack/app-secrets/REMOVED": "gone from appSecrets, its file left behind",
            "etc/webstack/app-secrets.json": json.dumps([
                {"parameter": "/webstack/t/app-secrets/API_KEY", "path": f"{root}/etc/webstack/app-secrets/API_KEY",
                 "mode": "0400", "owner": "webstack-app:webstack-app", "version": 3}]),
            "usr/bin/systemd-run": FAKE_SYSTEMD_RUN,
            "usr/bin/mariadb": FAKE_DB_CLIENT,
            # The command: what it was started with, then it says its word.
            "srv/webstack/releases/" + self.release + "/venv/bin/migrate":
                "#!/usr/bin/python3\nimport json, os\nprint(json.dumps(dict(os.environ)))\nprint('migrated')\n",
            **{f"srv/webstack/releases/{self.release}/venv/bin/{name}": f"#!/bin/sh\necho {name} >>{root}/traps\n"
               for name in self.TRAPS},
        }.items():
            pathlib.Path(root, path).parent.mkdir(parents=True, exist_ok=True)
            pathlib.Path(root, path).write_text(content)
            if "/bin/" in path:
                os.chmod(os.path.join(root, path), 0o755)
        os.makedirs(f"{root}/var/log/webstack")
        with open(os.path.join(self.FILES, "app_environment.py")) as handle:
            environment = handle.read()
        for name, path in {"APP_SETTINGS_PATH": "app-settings.json", "APP_SECRETS_MANIFEST_PATH": "app-secrets.json",
                           "APP_DB_PASSWORD_PATH": "app-secrets/DB_APP_PASSWORD"}.items():
            environment = environment.replace("{{" + name + "}}", f"{root}/etc/webstack/{path}")
        pathlib.Path(root, "app_environment.py").write_text(environment)
        with open(self.SCRIPT) as handle:
            script = handle.read()
        for name, value in {
            "DB_ADMIN": f"{root}/usr/bin/mariadb --protocol=socket --user=root", "MIGRATE_ACCOUNT": "'migrate'@'localhost'",
            "MIGRATE_WHERE": "(over the local socket)", "KILL_WHY": "(KILL does not replicate)",
            "KILL_SESSION": "KILL CONNECTION $id;",
            "APP_USER": "webstack-app", "APP_ENVIRONMENT_PATH": f"{root}/app_environment.py",
            "RELEASE_COMMAND_PATH": f"{root}/release-command",
            "SANDBOX_PROPERTIES": "--property='NoNewPrivileges=yes' --property='RestrictAddressFamilies=AF_UNIX AF_INET'",
        }.items():
            script = script.replace("{{" + name + "}}", value)
        for node_path in ("/etc/webstack/", "/var/log/webstack/", "/usr/bin/systemd-run"):
            script = script.replace(node_path, root + node_path)
        pathlib.Path(root, "release-command").write_text(script)

    def run_command(self, command):
        result = subprocess.run(["/bin/bash", f"{self.root}/release-command", self.release_dir, command],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={"PATH": f"{self.release_dir}/venv/bin:/usr/bin:/bin"})
        with open(f"{self.root}/usr/bin/systemd-run.json") as handle:
            [started] = [json.loads(line) for line in handle]
        return result, started

    def events(self):
        """The database client's calls (its arguments, its SQL as statements) and the command's
        start, in the order they came."""
        with open(f"{self.root}/usr/bin/events") as handle:
            return [event if event["run"] == "systemd-run" else
                    {**event, "sql": [line for line in event["sql"].splitlines() if line]}
                    for event in map(json.loads, handle)]

    def assert_migrate_unlocked_only_while_the_command_ran(self, events):
        root = ["--protocol=socket", "--user=root"]
        ensure, started, lock, kill = events
        self.assertEqual((ensure["argv"], ensure["sql"][-1]), (root, MIGRATE_UNLOCK))
        self.assertNotIn(MIGRATE_UNLOCK, ensure["sql"][:-1])
        self.assertEqual(started, {"run": "systemd-run"})
        self.assertEqual((lock["argv"], lock["sql"]), (root + ["--batch", "--skip-column-names"], [
            MIGRATE_LOCK, "SELECT id FROM information_schema.processlist WHERE user = 'migrate';"]))
        self.assertEqual((kill["argv"], kill["sql"]),
                         (root + ["--force"], ["KILL CONNECTION 41;", "KILL CONNECTION 42;"]))

    def test_root_runs_nothing_of_the_release_and_the_command_runs_in_the_apps_sandbox(self):
        result, started = self.run_command("migrate")
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assertFalse(os.path.exists(f"{self.root}/traps"), "a name the release ships ran")
        self.assertEqual(started["options"], [
            "--quiet", "--wait", "--pipe", "--collect", "--service-type=exec", "--uid=webstack-app",
            "--gid=webstack-app", f"--working-directory={self.release_dir}", "--property=NoNewPrivileges=yes",
            "--property=RestrictAddressFamilies=AF_UNIX AF_INET", "--property=LogsDirectory=webstack"])
        self.assertEqual(started["command"],
                         ["/bin/bash", f"{self.root}/release-command", "--inside", self.release_dir, "migrate"])
        # The migrate password: on the sandbox's stdin and the SQL's, in no process's arguments; app.env
        # (root's 0600 on a node from before) after it.
        self.assertEqual(started["stdin"], "migrate-pw\nWEBSTACK_NODE=s2\n")
        ensure = self.events()[0]
        self.assertEqual(ensure["argv"], ["--protocol=socket", "--user=root"])
        self.assertEqual(ensure["sql"], [
            "CREATE USER IF NOT EXISTS 'migrate'@'localhost' IDENTIFIED BY 'migrate-pw' ACCOUNT LOCK;",
            "ALTER USER 'migrate'@'localhost' IDENTIFIED BY 'migrate-pw';",
            "GRANT ALL ON webstack.* TO 'migrate'@'localhost';",
            MIGRATE_UNLOCK,
        ])

    def test_migrate_is_unlocked_just_before_the_command_and_locked_with_its_sessions_killed_after(self):
        result, _ = self.run_command("migrate")
        self.assertEqual(result.returncode, 0, result.stdout)
        self.assert_migrate_unlocked_only_while_the_command_ran(self.events())

    def test_migrate_is_locked_again_when_the_command_fails(self):
        result, _ = self.run_command("echo failing; exit 3")
        self.assertEqual(result.returncode, 3)
        self.assert_migrate_unlocked_only_while_the_command_ran(self.events())

    def test_a_lock_that_fails_fails_the_script_even_after_a_command_that_succeeded(self):
        pathlib.Path(f"{self.root}/usr/bin/mariadb.fails").touch()
        result, _ = self.run_command("migrate")
        self.assertEqual(result.returncode, 1)
        self.assertIn("could not lock the database user migrate", result.stdout)
        self.assertEqual([e["run"] for e in self.events()], ["mariadb", "systemd-run", "mariadb"])

    def test_the_command_sees_the_apps_environment_and_its_output_goes_to_the_log_and_stdout(self):
        result, _ = self.run_command("migrate")
        lines = result.stdout.splitlines()
        prefix = f"release {self.release[:12]}: "
        environment = json.loads(lines[0].removeprefix(prefix))
        self.assertEqual(environment["PATH"], f"{self.release_dir}/venv/bin:/usr/bin:/bin")
        # The app's variables as Gunicorn's config reads them (app_environment.py): the secrets its
        # manifest names, not every file of the directory.
        self.assertEqual({k: environment.get(k) for k in (
            "WEBSTACK_NODE", "SETTING", "DB_APP_PASSWORD", "API_KEY", "REMOVED", "DB_MIGRATE_USER",
            "DB_MIGRATE_PASSWORD", "WEBSTACK_RELEASE")},
            {"WEBSTACK_NODE": "s2", "SETTING": "a value", "DB_APP_PASSWORD": "app-pw\n", "API_KEY": "s3cret\n\n",
             "REMOVED": None, "DB_MIGRATE_USER": "migrate", "DB_MIGRATE_PASSWORD": "migrate-pw",
             "WEBSTACK_RELEASE": self.release})
        self.assertEqual(lines[1:], [f"{prefix}migrated", f"{prefix}the release command exited 0"])
        self.assertEqual(pathlib.Path(f"{self.root}/var/log/webstack/app.log").read_text(), result.stdout)

    def test_a_secret_the_manifest_names_that_cannot_be_read_fails_the_command_before_it_runs(self):
        os.remove(f"{self.root}/etc/webstack/app-secrets/API_KEY")
        result, _ = self.run_command("migrate")
        self.assertEqual(result.returncode, 1)
        self.assertNotIn("migrated", result.stdout)
        self.assertIn("the app's environment could not be read", result.stdout)
        self.assertEqual([e["run"] for e in self.events()], ["mariadb", "systemd-run", "mariadb", "mariadb"])

    def test_its_exit_status_is_the_commands(self):
        result, _ = self.run_command("echo failing; exit 3")
        self.assertEqual(result.returncode, 3)
        self.assertTrue(result.stdout.endswith(f"release {self.release[:12]}: the release command exited 3\n"))


class ReleaseCommandTest(ReleaseTestCase):
    def command_status(self):
        return [json.loads(p["Value"]) for p in self.ssm.puts if p["Name"] == COMMAND_STATUS]

    def test_the_primary_runs_the_command_after_the_first_boot_then_once_per_release_before_its_switch(self):
        first, second = self.release(), self.release({**DEMO, "v2": b""})
        code, _, _ = self.deploy(first, command="flask db upgrade")
        self.assertEqual(code, 0)
        self.assertEqual(self.commands.calls, [self.venv(first), BOOT, ENABLE_TIMER,
                                               self.release_command(first, "flask db upgrade"), HEALTH])
        (done,) = self.command_status()
        self.assertEqual((list(done), done["release"], done["state"]), (["release", "state", "at"], first, "done"))
        self.workers_in(first)
        self.commands.calls.clear()
        self.assertEqual(self.deploy(second, command="flask db upgrade")[0], 0)
        self.assertEqual(self.commands.calls[:3], [self.venv(second), self.release_command(second, "flask db upgrade"),
                                                   self.preflight(second)])
        self.commands.calls.clear()
        self.assertEqual(self.deploy(second, command="flask db upgrade")[0], 0)  # the same release again
        self.assertNotIn(self.release_command(second, "flask db upgrade"), self.commands.calls)

    def test_a_failing_command_is_reported_refuses_and_runs_again_next_time(self):
        first, second = self.release(), self.release({**DEMO, "v2": b""})
        self.live(first)
        argv = self.release_command(second, "migrate")
        self.commands.results[tuple(argv)] = (1, f"release {second[:12]}: duplicate column\n")
        code, _, status = self.deploy(second, command="migrate")
        self.assertEqual((code, self.current()), (1, first))
        self.assertEqual(self.commands.calls, [self.venv(second), argv])
        (failed,) = self.command_status()
        self.assertEqual((failed["release"], failed["state"]), (second, "failed"))
        self.assertIn("duplicate column", failed["reason"])
        self.assertIn("release command failed", status["reason"])
        self.assertEqual(self.metric_names(), ["BundleRefused", "ReleaseFailed"])
        del self.commands.results[tuple(argv)]
        self.commands.calls.clear()
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.commands.calls[0], argv)
        self.assertEqual(self.command_status()[-1]["state"], "done")

    def test_the_replica_waits_for_the_primarys_command_and_refuses_when_it_failed(self):
        self.write("/etc/webstack/bundle.env", self.read("/etc/webstack/bundle.env").replace("NODE=s2", "NODE=s1"))
        first, second = self.release(), self.release({**DEMO, "v2": b""})
        code, _, _ = self.deploy(first, node="s1", await_command=True)  # the first boot does not wait
        self.assertEqual(code, 0)
        self.workers_in(first)
        bundle = self.app_bundle(second, node="s1", await_command=True)
        self.publish(bundle)
        for primary in (None, {"release": first, "state": "done", "at": "x"}):
            if primary:
                self.ssm.values[COMMAND_STATUS] = json.dumps(primary)
            self.commands.calls.clear()
            with mock.patch.object(self.module, "AFTER_WAIT", 0):
                code, stderr = self.apply()
            self.assertEqual((code, self.current()), (0, first))
            self.assertIn("waiting for s2's release command", stderr)
            self.assertEqual(self.commands.calls, [self.venv(second)] if primary is None else [])
        failed = {"release": second, "state": "failed", "reason": "it broke", "at": "x"}
        self.ssm.values[COMMAND_STATUS] = json.dumps(failed)
        code, _ = self.apply()
        status = json.loads(self.read("/var/lib/webstack/bundle/status.json"))
        self.assertEqual((code, self.current(), status["state"]), (1, first, "refused"))
        self.assertEqual(status["reason"], "the release command failed on s2: it broke")
        self.ssm.values[COMMAND_STATUS] = json.dumps({"release": second, "state": "done", "at": "x"})
        self.assertEqual(self.apply()[0], 0)
        self.assertEqual(self.current(), second)


FAKE_GUNICORN = textwrap.dedent('''\
    #!/usr/bin/python3
    """Gunicorn as the preflight starts it: --bind unix:PATH; the release (cwd) says how it behaves."""
    import http.server, json, os, socketserver, sys, time
    socket_path = sys.argv[sys.argv.index("--bind") + 1].removeprefix("unix:")
    assert os.environ["WEBSTACK_RELEASE_DIR"] == os.getcwd() and os.environ["WEBSTACK_NODE"] == "s2"
    with open("environment.json", "w") as handle:  # what it was started with, for the test to read
        json.dump(dict(os.environ), handle)
    print("[2025-01-01 00:00:00 +0000] [1] [INFO] Starting gunicorn 23.0.0", file=sys.stderr, flush=True)
    # A hostile release: its directory (the socket's) is the app's user's to write.
    if os.path.exists("swaps-output"):  # a file there named output: a link to one of root's
        output = os.path.join(os.path.dirname(socket_path), "output")
        if os.path.lexists(output):
            os.remove(output)
        os.symlink(open("swaps-output").read(), output)
    for marker, make_link in (("symlinks-socket", os.symlink), ("hardlinks-socket", os.link)):
        if os.path.exists(marker):  # its socket: another's, which root would connect to
            make_link(open(marker).read(), socket_path)
            time.sleep(60)
    if os.path.exists("broken"):
        print("Traceback (most recent call last):\\nModuleNotFoundError: No module named 'flask'", file=sys.stderr)
        print("[2025-01-01 00:00:00 +0000] [1] [ERROR] Reason: Worker failed to boot.", file=sys.stderr)
        sys.exit(3)
    status = 503 if os.path.exists("unhealthy") else 200

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if status != 200:
                said = f"[2025-01-01 00:00:00 +0000] [2] [ERROR] GET {self.path}: no database answered"
                print(said, file=sys.stderr, flush=True)
            self.send_response(status if self.path == "/healthz" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    socketserver.UnixStreamServer(socket_path, Handler).serve_forever()
''')


def systemd_run(argv):
    """What systemd-run would start, as this test can (no user switch, no sandbox): the command, its
    directory and environment (EnvironmentFile, UnsetEnvironment, --setenv), and every option."""
    split = argv.index("--")
    options, command = argv[1:split], argv[split + 1:]
    env, cwd, unset = {"PATH": "/usr/bin:/bin"}, None, []
    for option in options:
        if option.startswith("--property=EnvironmentFile="):
            with open(option.split("=", 2)[2]) as handle:
                env.update(line.rstrip("\n").split("=", 1) for line in handle if "=" in line)
        elif option.startswith("--property=UnsetEnvironment="):
            unset.append(option.split("=", 2)[2])
        elif option.startswith("--setenv="):
            name, _, value = option.removeprefix("--setenv=").partition("=")
            env[name] = value
        elif option.startswith("--working-directory="):
            cwd = option.split("=", 1)[1]
    return command, cwd, {k: v for k, v in env.items() if k not in unset}, options


class PreflightTest(ReleaseTestCase):
    """The preflight itself, with a stand-in Gunicorn: a real process on a real unix socket."""

    def run_preflight(self, marker=None, wait=5, app_env="WEBSTACK_NODE=s2\n", sandbox=SANDBOX, markers=None):
        """markers: more of them, each with its content."""
        release_dir = self.at(f"{RELEASES}/{'a' * 64}")
        os.makedirs(release_dir)
        for name, content in {**({marker: ""} if marker else {}), **(markers or {})}.items():
            self.write(f"{RELEASES}/{'a' * 64}/{name}", content)
        self.write("/etc/webstack/app.env", app_env)
        gunicorn = self.at("/usr/bin/gunicorn")
        self.write("/usr/bin/gunicorn", FAKE_GUNICORN)
        os.chmod(gunicorn, 0o755)
        self.started, self.stopped = [], []

        def popen(argv, **options):  # systemd-run, emulated: switching users needs root
            command, cwd, env, systemd_options = systemd_run(argv)
            self.started.append(systemd_options)
            return subprocess.Popen(command, cwd=cwd, env=env, **options)

        def run(argv, **options):
            self.stopped.append(argv)
            for process in self.processes:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, 15)
            return subprocess.CompletedProcess(argv, 0, "", None)

        self.processes = []
        spawned = popen

        def popen_tracked(argv, **options):
            process = spawned(argv, **options)
            self.processes.append(process)
            return process

        stdout = io.StringIO()
        with (
            mock.patch.object(self.module, "GUNICORN", gunicorn),
            mock.patch.object(self.module, "APP_USER", pwd.getpwuid(os.getuid()).pw_name),
            mock.patch.object(self.module, "PREFLIGHT_WAIT", wait),
            mock.patch.object(self.module, "PREFLIGHT_POLL", 0.05),
            contextlib.redirect_stdout(stdout),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            code = self.module.preflight_command(release_dir, "app:application", sandbox, root=self.root,
                                                 popen=popen_tracked, run=run)
        log = self.read("/var/log/webstack/app.log") if os.path.exists(self.at("/var/log/webstack/app.log")) else ""
        return code, stdout.getvalue(), log

    def test_it_runs_in_the_apps_sandbox_as_its_user_and_its_unit_is_stopped(self):
        self.assertEqual(self.run_preflight()[0], 0)
        [options] = self.started
        user = pwd.getpwuid(os.getuid()).pw_name
        self.assertEqual(options[:8], ["--quiet", "--wait", "--pipe", "--collect", "--service-type=exec",
                                       f"--uid={user}", f"--gid={user}", f"--unit=webstack-preflight-{'a' * 12}.service"])
        properties = [o.removeprefix("--property=") for o in options if o.startswith("--property=")]
        self.assertEqual(properties[-len(SANDBOX) - 1:-1], SANDBOX)
        self.assertRegex(properties[-1], r"^ReadWritePaths=.*/run/webstack-preflight-[^/]+$")
        self.assertEqual(self.stopped, [["systemctl", "stop", f"webstack-preflight-{'a' * 12}.service"]])

    def test_an_older_applier_naming_no_sandbox_gets_the_apps_whole_sandbox(self):
        # Issue 18's applier runs this tool's preflight as `preflight RELEASE_DIR APP_MODULE`.
        self.assertEqual(self.run_preflight(sandbox=[])[0], 0)
        [options] = self.started
        properties = [o.removeprefix("--property=") for o in options if o.startswith("--property=")]
        self.assertIn("IPAddressDeny=169.254.0.0/16 fe80::/10 fd00:ec2::254", properties)
        self.assertIn("InaccessiblePaths=-/etc/webstack/secrets", properties)
        self.assertEqual(properties[-len(self.module.APP_SANDBOX) - 1:-1], self.module.APP_SANDBOX)

    def test_a_release_that_answers_passes_and_leaves_nothing_behind(self):
        before = set(os.listdir(tempfile.gettempdir()))
        self.assertEqual(self.run_preflight(), (0, "", ""))
        self.assertEqual({n for n in set(os.listdir(tempfile.gettempdir())) - before if "preflight" in n}, set())

    def test_a_release_that_does_not_start_says_its_last_words(self):
        code, stdout, log = self.run_preflight("broken")
        self.assertEqual(code, 1)
        self.assertEqual(stdout, "Gunicorn exited 3: ModuleNotFoundError: No module named 'flask'\n")
        self.assertIn(f"preflight {'a' * 12}: ModuleNotFoundError: No module named 'flask'\n", log)
        self.assertIn(f"preflight {'a' * 12}: [2025-01-01 00:00:00 +0000] [1] [ERROR] Reason: Worker failed", log)

    def test_its_output_never_goes_through_a_link_where_the_apps_log_is(self):
        for make_link in (os.symlink, os.link):
            with self.subTest(make_link.__name__):
                target = self.at(f"/etc/roots-{make_link.__name__}")
                self.write(target.removeprefix(self.root), "root's\n")
                os.makedirs(self.at("/var/log/webstack"), exist_ok=True)
                log = self.at("/var/log/webstack/app.log")
                if os.path.lexists(log):
                    os.unlink(log)
                make_link(target, log)
                shutil.rmtree(self.at(RELEASES), ignore_errors=True)
                code, stdout, _ = self.run_preflight("broken")
                self.assertEqual((code, stdout[:16]), (1, "Gunicorn exited "))
                self.assertEqual(self.read(target.removeprefix(self.root)), "root's\n")

    def test_its_output_is_read_from_roots_own_file_never_from_a_path_in_the_apps_directory(self):
        target, secret = self.root_only()
        code, stdout, log = self.run_preflight("broken", markers={"swaps-output": target})
        self.assertEqual((code, stdout), (1, "Gunicorn exited 3: ModuleNotFoundError: No module named 'flask'\n"))
        self.assertNotIn(secret, stdout)
        self.assertNotIn(secret, log)
        self.assertIn(f"preflight {'a' * 12}: ModuleNotFoundError: No module named 'flask'\n", log)

    def root_service(self, owner=None):
        """A socket of another's (a root service): the connections it gets, counted."""
        path = self.at("/run/root-service.sock")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        server.listen()
        if owner is not None:
            os.chown(path, owner, owner)
        connections = []

        def answer():
            while True:
                try:
                    connection, _ = server.accept()
                except OSError:  # closed: the test is over
                    return
                connections.append(connection.recv(1024))
                connection.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
                connection.close()

        threading.Thread(target=answer, daemon=True).start()
        self.addCleanup(server.close)
        return path, connections

    def test_root_never_connects_through_a_link_where_gunicorns_socket_is(self):
        path, connections = self.root_service()
        code, stdout, _ = self.run_preflight(markers={"symlinks-socket": path})
        self.assertEqual(code, 1)
        self.assertRegex(stdout, r"^GET /healthz not asked: app\.sock is not a socket of [^ ]+'s:")
        self.assertEqual(connections, [])

    @as_root
    def test_root_never_connects_to_another_users_socket_linked_where_gunicorns_is(self):
        path, connections = self.root_service(owner=pwd.getpwnam("nobody").pw_uid)
        code, stdout, _ = self.run_preflight(markers={"hardlinks-socket": path})
        self.assertEqual(code, 1)
        self.assertRegex(stdout, r"^GET /healthz not asked: app\.sock is not a socket of [^ ]+'s:")
        self.assertEqual(connections, [])

    def test_a_release_whose_health_check_fails_says_what_it_logged(self):
        code, stdout, _ = self.run_preflight("unhealthy", wait=1)
        self.assertEqual((code, stdout), (1, "GET /healthz answered 503: GET /healthz: no database answered\n"))

    def started_with(self):
        with open(self.at(f"{RELEASES}/{'a' * 64}/environment.json")) as handle:
            return json.load(handle)

    def test_the_database_password_is_never_in_its_environment_once_the_apps_file_holds_it(self):
        # A node booted before the app had its own user: the password is still in app.env.
        old_env = "WEBSTACK_NODE=s2\nDB_APP_PASSWORD=pw\n"
        self.write("/etc/webstack/app-secrets/DB_APP_PASSWORD", "pw")
        self.assertEqual(self.run_preflight(app_env=old_env)[0], 0)
        environment = self.started_with()
        self.assertNotIn("DB_APP_PASSWORD", environment)
        self.assertEqual(environment["WEBSTACK_NODE"], "s2")

    def test_until_the_apps_file_is_fetched_the_password_in_app_env_is_passed_on(self):
        self.assertEqual(self.run_preflight(app_env="WEBSTACK_NODE=s2\nDB_APP_PASSWORD=pw\n")[0], 0)
        self.assertEqual(self.started_with()["DB_APP_PASSWORD"], "pw")


class FetchReloadTest(ReleaseTestCase):
    def fetch(self, *args):
        manifest = self.at("/etc/webstack/app-secrets.json")
        path = self.at("/etc/webstack/app-secrets/API_KEY")
        self.write("/etc/webstack/app-secrets.json", json.dumps([
            {"parameter": "/webstack/test/app-secrets/API_KEY", "path": path, "mode": "0400", "owner": self.owner,
             "version": 3},
        ]))
        self.ssm.get_parameters = lambda Names, WithDecryption: {
            "Parameters": [{"Name": n, "Value": "s3cret"} for n in Names], "InvalidParameters": []}
        with contextlib.redirect_stderr(io.StringIO()):
            code = self.module.main(["webstack-aws", "fetch", manifest, *args], self.factory, root=self.root,
                                    run_command=self.commands)
        return code, self.read("/etc/webstack/app-secrets/API_KEY"), self.mode("/etc/webstack/app-secrets/API_KEY")

    def test_fetch_writes_the_secrets_ignoring_their_version_and_reloads_a_running_app(self):
        self.commands.results[tuple(RELOAD)] = (0, "")
        is_active = ["systemctl", "is-active", "--quiet", "webstack-app.service"]
        self.assertEqual(self.fetch("--reload", "webstack-app.service"), (0, "s3cret", 0o400))
        self.assertEqual(self.commands.calls, [is_active, RELOAD])
        self.commands.calls.clear()
        self.commands.results[tuple(is_active)] = (3, "")  # at first boot the app does not run yet
        self.assertEqual(self.fetch("--reload", "webstack-app.service")[0], 0)
        self.assertEqual(self.commands.calls, [is_active])
        self.commands.calls.clear()
        self.assertEqual(self.fetch()[0], 0)
        self.assertEqual(self.commands.calls, [])


if __name__ == "__main__":
    unittest.main()


class GunicornConfigTest(unittest.TestCase):
    """gunicorn.conf.py as Gunicorn runs it at each start and reload: the release's path first, the
    app's settings and the secrets its manifest names (only those) in the workers' environment."""

    HERE = os.path.dirname(os.path.abspath(__file__))
    CONFIG = os.path.join(HERE, "..", "..", "cloud-init", "files", "gunicorn.conf.py")
    ENVIRONMENT = os.path.join(HERE, "..", "..", "cloud-init", "files", "app_environment.py")

    def setUp(self):
        self.root = tempfile.mkdtemp()
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", self.root]))

    def put(self, path, text):
        os.makedirs(os.path.dirname(self.root + path), exist_ok=True)
        with open(self.root + path, "w") as handle:
            handle.write(text)

    def load(self, release):
        """The config's globals, its absolute paths read under the temporary root."""
        with open(self.ENVIRONMENT) as handle:
            environment = handle.read().replace("{{APP_SETTINGS_PATH}}", "/etc/webstack/app-settings.json")
            environment = environment.replace("{{APP_SECRETS_MANIFEST_PATH}}", "/etc/webstack/app-secrets.json")
            environment = environment.replace("{{APP_DB_PASSWORD_PATH}}", "/etc/webstack/app-secrets/DB_APP_PASSWORD")
        self.put("/usr/local/lib/webstack/app_environment.py", environment)
        with open(self.CONFIG) as handle:
            source = handle.read().replace("{{WORKER_TIMEOUT}}", "60").replace("{{WORKERS}}", "5").replace("{{DB_WAIT_SECONDS}}", "58")
            source = source.replace("{{APP_ENVIRONMENT_PATH}}", self.root + "/usr/local/lib/webstack/app_environment.py")
        root, real_open = self.root, open
        def rooted(path, *args, **kwargs):
            return real_open(root + path if str(path).startswith("/etc/") else path, *args, **kwargs)

        saved = list(sys.path)
        self.addCleanup(lambda: sys.path.__setitem__(slice(None), saved))
        sys.path.insert(0, "/srv/webstack/releases/an-older-one")
        scope = {"__name__": "gunicorn_config"}
        with mock.patch.dict(os.environ, {"WEBSTACK_RELEASE_DIR": release}), mock.patch("builtins.open", rooted):
            exec(compile(source, self.CONFIG, "exec"), scope)
        return scope, list(sys.path)

    def test_the_release_settings_and_the_manifests_secrets(self):
        release = os.path.join(self.root, "srv", "webstack", "releases", "a" * 64)
        os.makedirs(release)
        self.put("/etc/webstack/app-settings.json", json.dumps({"env": {"GREETING": "hi"}}))
        self.put("/etc/webstack/app-secrets/API_KEY", "s3cret")
        self.put("/etc/webstack/app-secrets/REMOVED", "gone from appSecrets, its file left behind")
        self.put("/etc/webstack/app-secrets/DB_APP_PASSWORD", "the database's")
        self.put("/etc/webstack/app-secrets.json", json.dumps([
            {"parameter": "/webstack/t/app-secrets/API_KEY", "path": "/etc/webstack/app-secrets/API_KEY",
             "mode": "0400", "owner": "webstack-app:webstack-app", "version": 3},
        ]))
        scope, path = self.load(release)
        self.assertEqual(scope["chdir"], release)
        self.assertEqual(path[0], release)
        self.assertNotIn("/srv/webstack/releases/an-older-one", path)
        # The database password comes from its file too (issue 19), not from the unit's environment.
        self.assertEqual(sorted(scope["raw_env"]), [
            "API_KEY=s3cret", "DB_APP_PASSWORD=the database's", "GREETING=hi", "WEBSTACK_DB_WAIT_S=58",
            f"WEBSTACK_RELEASE={'a' * 64}",
        ])
        self.assertEqual(scope["timeout"], 60)

    def test_no_settings_or_secrets_yet(self):
        release = os.path.join(self.root, "r")
        os.makedirs(release)
        scope, _ = self.load(release)
        self.assertEqual(sorted(scope["raw_env"]), ["WEBSTACK_DB_WAIT_S=58", "WEBSTACK_RELEASE=r"])

    def test_a_node_from_before_releases_runs_the_app_it_had_until_its_first(self):
        scope, path = self.load(os.path.join(self.root, "srv", "webstack", "current"))  # no such link yet
        self.assertEqual(scope["chdir"], "/srv/webstack")
        self.assertEqual(path[0], "/srv/webstack")
        self.assertIn("WEBSTACK_RELEASE=", scope["raw_env"])
