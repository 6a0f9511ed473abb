"""Unit tests of the node tool's backups (issue 20): the shipping's bookkeeping and the restore's
choices and refusals. S3 is botocore's Stubber; the database's answers are scripted. The real
thing (MariaDB 11.8, mariadb-backup, the S3 stand-in) runs in the lab (tests/day2.lab.ts).
Run with Debian's python: /usr/bin/python3 -m unittest tests/artifacts/test_webstack_backup.py
"""
import datetime
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import tempfile
import unittest

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"

import boto3  # noqa: E402
from botocore.response import StreamingBody  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "cloud-init" / "files" / "webstack-aws.py"
spec = importlib.util.spec_from_file_location("webstack_aws_backup", SCRIPT)
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

BUCKET = "stack-bucket"
SETTINGS = {
    "NODE": "s1", "BACKUP_BUCKET": BUCKET, "FULL_PREFIX": "backups/full/", "BINLOG_PREFIX": "backups/binlog/s2/",
    "BINLOG_NODE": "s2", "DB_CLIENT": "mariadb", "PRIMARY_SERVER_ID": "2",
}
WHEN = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.timezone.utc)


def at(hhmmss):
    h, m, s = map(int, hhmmss.split(":"))
    return WHEN.replace(hour=h, minute=m, second=s).timestamp()


def body(data):
    return StreamingBody(io.BytesIO(data), len(data))


class Database:
    """Scripted answers to the client's queries, and the queries asked, in order."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def __call__(self, argv, **kwargs):
        query = argv[argv.index("--execute") + 1]
        self.asked.append(query)
        return subprocess.CompletedProcess(argv, 0, self.answers[query], "")


class PointTest(unittest.TestCase):
    def test_utc_times_in_either_spelling(self):
        now = at("13:00:00")
        for text in ("2026-11-30 12:30:05", "2026-11-30T12:30:05Z", "2026-11-30T12:30:05"):
            self.assertEqual(tool.parse_point(text, now).timestamp(), at("12:30:05"))

    def test_a_future_or_malformed_point_is_refused_naming_the_option(self):
        with self.assertRaisesRegex(tool.BackupError, "in the future"):
            tool.parse_point("2026-11-30 13:00:01", at("13:00:00"))
        with self.assertRaisesRegex(tool.BackupError, r"--to '30/11/2026': expected a UTC time as 'YYYY-MM-DD HH:MM:SS'"):
            tool.parse_point("30/11/2026", at("13:00:00"))

    def test_a_domains_position_in_a_gtid_list(self):
        self.assertEqual(tool.domain_position("1-1-7,2-2-34", "2"), 34)
        self.assertEqual(tool.domain_position("1-1-7", "2"), 0)
        self.assertEqual(tool.domain_position("", "2"), 0)


class RestorePlanTest(unittest.TestCase):
    """Which backup and binlogs a restore takes, and what it refuses before it touches anything."""

    def setUp(self):
        self.s3 = boto3.client("s3", region_name="eu-west-1")
        self.stub = Stubber(self.s3)
        self.stub.activate()

    def listing(self, prefix, keys):
        self.stub.add_response("list_objects_v2", {"Contents": [{"Key": k, "LastModified": WHEN} for k in keys],
                                                   "IsTruncated": False}, {"Bucket": BUCKET, "Prefix": prefix})

    def marker(self, through, complete_through):
        data = json.dumps({"through": through, "complete_through": at(complete_through)}).encode()
        self.stub.add_response("get_object", {"Body": body(data)},
                               {"Bucket": BUCKET, "Key": "backups/binlog/s2/shipped.json"})

    def manifest(self, stamp, finished, binlog):
        key = f"backups/full/{stamp}/manifest.json"
        data = json.dumps({"finished": finished, "gtid_slave_pos": "2-2-10", "primary_binlog": binlog,
                           "binlog_node": "s2"}).encode()
        self.stub.add_response("get_object", {"Body": body(data)}, {"Bucket": BUCKET, "Key": key})
        return key

    def test_the_newest_backup_finished_by_the_point_and_the_binlogs_from_its_file_on(self):
        keys = ["backups/full/20261129T030000Z/manifest.json", "backups/full/20261129T030000Z/backup.mbstream.zst",
                "backups/full/20261130T030000Z/manifest.json", "backups/full/20261130T120500Z/manifest.json"]
        self.listing("backups/full/", keys)
        # Newest first: the one finished after the point is passed over.
        self.manifest("20261130T120500Z", at("12:06:00"), "mysql-bin.000012")
        self.manifest("20261130T030000Z", at("03:10:00"), "mysql-bin.000009")
        # 12 was sent by a run that did not finish: the marker does not name it, so it is not taken.
        self.listing("backups/binlog/s2/", [f"backups/binlog/s2/mysql-bin.{n:06d}.zst" for n in (8, 9, 10, 11, 12)]
                     + ["backups/binlog/s2/shipped.json"])
        self.marker("mysql-bin.000011", "12:01:00")
        backup, binlogs = tool.restore_plan(self.s3, SETTINGS, datetime.datetime.fromtimestamp(at("12:00:00"),
                                                                                               datetime.timezone.utc))
        self.assertEqual(backup["prefix"], "backups/full/20261130T030000Z/")
        self.assertEqual(binlogs, ["mysql-bin.000009", "mysql-bin.000010", "mysql-bin.000011"])
        self.stub.assert_no_pending_responses()

    def refusal(self, binlog_numbers, through="12:01:00", last="mysql-bin.000011"):
        self.listing("backups/full/", ["backups/full/20261130T030000Z/manifest.json"])
        self.manifest("20261130T030000Z", at("03:10:00"), "mysql-bin.000009")
        self.listing("backups/binlog/s2/", [f"backups/binlog/s2/mysql-bin.{n:06d}.zst" for n in binlog_numbers]
                     + ["backups/binlog/s2/shipped.json"])
        self.marker(last, through)
        point = datetime.datetime.fromtimestamp(at("12:00:00"), datetime.timezone.utc)
        with self.assertRaises(tool.BackupError) as raised:
            tool.restore_plan(self.s3, SETTINGS, point)
        return str(raised.exception)

    def test_refused_without_the_binlog_the_backup_replays_from(self):
        self.assertIn("binlogs numbered [9] (from mysql-bin.000009", self.refusal([10, 11]))

    def test_refused_across_a_missing_binlog(self):
        self.assertIn("binlogs numbered [10] (from", self.refusal([9, 11]))

    def test_refused_when_the_last_complete_run_did_not_reach_a_binlog_it_names(self):
        self.assertIn("binlogs numbered [11] (from", self.refusal([9, 10]))

    def test_refused_past_what_was_shipped(self):
        self.assertIn("hold the writes committed before 2026-11-30 11:59:59 UTC only", self.refusal([9, 10], "11:59:59"))

    def test_refused_when_no_binlog_was_ever_shipped(self):
        self.listing("backups/full/", ["backups/full/20261130T030000Z/manifest.json"])
        self.manifest("20261130T030000Z", at("03:10:00"), "mysql-bin.000009")
        self.listing("backups/binlog/s2/", [])
        with self.assertRaisesRegex(tool.BackupError, "no binlogs were ever shipped to s3://stack-bucket/backups/binlog/s2/"):
            tool.restore_plan(self.s3, SETTINGS, datetime.datetime.fromtimestamp(at("12:00:00"),
                                                                                 datetime.timezone.utc))

    def test_refused_without_a_backup_finished_by_the_point(self):
        self.listing("backups/full/", ["backups/full/20261130T120500Z/manifest.json"])
        self.manifest("20261130T120500Z", at("12:06:00"), "mysql-bin.000012")
        with self.assertRaisesRegex(tool.BackupError, "no full backup finished by 2026-11-30 12:00:00 UTC"):
            tool.restore_plan(self.s3, SETTINGS, datetime.datetime.fromtimestamp(at("12:00:00"),
                                                                                 datetime.timezone.utc))


class ShipTest(unittest.TestCase):
    """The primary's shipping: what it closes, what it sends, what it remembers."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.settings = dict(SETTINGS, BINLOG_STATE=os.path.join(self.dir.name, "binlog.json"))
        self.sent, self.markers = [], []
        self.upload = tool.upload_stream
        tool.upload_stream = lambda s3, stream, bucket, key: self.sent.append(key)

    def tearDown(self):
        tool.upload_stream = self.upload
        self.dir.cleanup()

    def ship(self, status, logs, clock):
        database = Database({"SHOW MASTER STATUS": status, "FLUSH BINARY LOGS": "",
                             "SHOW BINARY LOGS": "".join(f"{n}\t100\n" for n in logs),
                             "SELECT @@log_bin_basename": "/var/lib/mysql/mysql-bin\n"})
        popen = lambda argv, stdout: subprocess.Popen(["true"], stdout=stdout)  # noqa: E731  (zstd's place)
        s3 = type("S3", (), {"put_object": lambda _, **kw: self.markers.append((kw["Key"], json.loads(kw["Body"])))})()
        code = tool.ship_binlogs_command(s3, self.settings, run=database, popen=popen, clock=lambda: clock)
        return code, database.asked

    def state(self):
        with open(self.settings["BINLOG_STATE"]) as handle:
            return json.load(handle)

    def test_closes_the_open_binlog_and_sends_every_closed_one_not_yet_sent(self):
        code, asked = self.ship("mysql-bin.000003\t900\n", ["mysql-bin.000002", "mysql-bin.000003", "mysql-bin.000004"],
                                at("12:00:00"))
        self.assertEqual(code, 0)
        self.assertIn("FLUSH BINARY LOGS", asked)
        self.assertEqual(self.sent, ["backups/binlog/s2/mysql-bin.000002.zst", "backups/binlog/s2/mysql-bin.000003.zst"])
        # The marker last: what a restore may rely on.
        self.assertEqual(self.markers, [("backups/binlog/s2/shipped.json",
                                         {"through": "mysql-bin.000003", "complete_through": at("12:00:00")})])
        self.assertEqual(self.state()["through"], "mysql-bin.000003")
        self.assertEqual(self.state()["shipped"], at("12:00:00"))

    def test_an_idle_primary_closes_nothing_and_still_moves_the_marker_on(self):
        self.ship("mysql-bin.000003\t900\n", ["mysql-bin.000002", "mysql-bin.000003", "mysql-bin.000004"],
                  at("12:00:00"))
        self.sent.clear()
        # The answers after the first run's flush: the new file, unchanged since.
        state = self.state()
        code, asked = self.ship(f"{state['file']}\t{state['pos']}\n", ["mysql-bin.000003", "mysql-bin.000004"],
                                at("12:05:00"))
        self.assertEqual(code, 0)
        self.assertNotIn("FLUSH BINARY LOGS", asked)
        self.assertEqual(self.sent, [])
        self.assertEqual(self.state()["shipped"], at("12:05:00"))
        self.assertEqual(self.markers[-1], ("backups/binlog/s2/shipped.json",
                                            {"through": "mysql-bin.000003", "complete_through": at("12:05:00")}))

    def test_a_binlog_purged_before_it_was_sent_is_an_error_after_the_rest_is_sent(self):
        with open(self.settings["BINLOG_STATE"], "w") as handle:
            json.dump({"through": "mysql-bin.000002", "file": "x", "pos": "1", "shipped": 0}, handle)
        with self.assertRaisesRegex(tool.BackupError, "after mysql-bin.000002 up to mysql-bin.000005 were purged"):
            self.ship("mysql-bin.000005\t900\n", ["mysql-bin.000005", "mysql-bin.000006"], at("12:00:00"))
        self.assertEqual(self.sent, ["backups/binlog/s2/mysql-bin.000005.zst"])
        self.assertEqual(self.state()["through"], "mysql-bin.000005")


class RestoreConfirmationTest(unittest.TestCase):
    def test_without_the_nodes_name_typed_nothing_is_stopped_or_changed(self):
        ran = []
        plan = tool.restore_plan
        tool.restore_plan = lambda s3, settings, point: ({"prefix": "backups/full/x/", "finished": 0,
                                                          "binlog_node": "s2"}, ["mysql-bin.000001"])
        try:
            with self.assertRaisesRegex(tool.BackupError, "not confirmed: nothing changed"):
                tool.restore_command(None, dict(SETTINGS, DATA_DIR="/nonexistent"), "2026-11-30 12:00:00",
                                     run=lambda argv, **kw: ran.append(argv), clock=lambda: at("13:00:00"),
                                     ask=lambda prompt: "yes")
        finally:
            tool.restore_plan = plan
        self.assertEqual(ran, [])


class RestoreFailureTest(unittest.TestCase):
    """A restore that fails puts the previous data back and runs the server and the app again."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        root = self.dir.name
        self.data = os.path.join(root, "data")
        os.makedirs(os.path.join(self.data, "webstack"))
        for name in ("ibdata1", "webstack/items.ibd"):
            with open(os.path.join(self.data, name), "w") as handle:
                handle.write("before")
        self.settings = dict(SETTINGS, DATA_DIR=self.data, STATE_DIR=os.path.join(root, "state"),
                             SYSTEMD_DIR=os.path.join(root, "systemd"), APP_SERVICE="webstack-app.service",
                             DB_SERVICE="mariadb.service", BACKUP_TOOL="mariadb-backup", STREAM_TOOL="mbstream",
                             BINLOG_TOOL="mariadb-binlog", DB_CLIENT="mariadb")
        self.saved = tool.restore_plan, tool.download
        tool.restore_plan = lambda s3, settings, point: ({"prefix": "backups/full/x/", "finished": 0,
                                                          "binlog_node": "s2", "gtid_slave_pos": "2-2-10"},
                                                         ["mysql-bin.000001"])
        tool.download = self.download
        self.ran = []

    def tearDown(self):
        tool.restore_plan, tool.download = self.saved
        self.dir.cleanup()

    def download(self, s3, bucket, key, argv, popen=None):
        if "mbstream" in argv:  # the backup's files, extracted
            with open(os.path.join(argv[-1], "ibdata1"), "w") as handle:
                handle.write("restored")

    def runner(self, fail):
        def run(argv, **kwargs):
            self.ran.append(argv)
            code = 1 if fail(argv) else 0
            if argv[:2] == ["mariadb-backup", "--move-back"] and not code:
                new = argv[-1].split("=", 1)[1]
                for entry in os.listdir(new):
                    os.rename(os.path.join(new, entry), os.path.join(self.data, entry))
            if argv[:1] == ["rm"]:
                subprocess.run(argv, check=True)
            return subprocess.CompletedProcess(argv, code, "", "refused" if code else "")
        return run

    def restore(self, fail):
        with self.assertRaises(tool.BackupError):
            tool.restore_command(None, self.settings, "2026-11-30 12:00:00", assume_yes=True,
                                 run=self.runner(fail), clock=lambda: at("13:00:00"))

    def assert_back_as_before(self):
        with open(os.path.join(self.data, "ibdata1")) as handle:
            self.assertEqual(handle.read(), "before")
        self.assertEqual(sorted(os.listdir(self.data)), ["ibdata1", "webstack"])  # no work directory left
        self.assertIn(["systemctl", "start", "mariadb.service"], self.ran)
        self.assertIn(["systemctl", "start", "webstack-app.service"], self.ran)
        self.assertFalse(os.path.exists(tool.app_hold_path(self.settings)))
        self.assertFalse(os.path.exists(tool.restore_flag(self.settings)))

    def test_a_failed_prepare_changes_nothing_and_starts_both_again(self):
        self.restore(lambda argv: argv[:2] == ["mariadb-backup", "--prepare"])
        self.assert_back_as_before()

    def test_a_failed_replay_puts_the_previous_data_back(self):
        self.restore(lambda argv: argv[:1] == ["mariadb"])
        self.assertIn(["mariadb-backup", "--move-back", "--force-non-empty-directories", f"--datadir={self.data}",
                       f"--target-dir={self.data}/.webstack-restore/new"], self.ran)
        self.assert_back_as_before()

    def test_a_signal_mid_way_is_a_failure_that_puts_the_data_back(self):
        def fail(argv):
            if argv[:1] == ["mariadb"]:
                os.kill(os.getpid(), tool.signal.SIGHUP)
            return False
        with self.assertRaises(tool.Interrupted):
            tool.restore_command(None, self.settings, "2026-11-30 12:00:00", assume_yes=True,
                                 run=self.runner(fail), clock=lambda: at("13:00:00"))
        self.assert_back_as_before()

    def test_an_unfinished_restore_is_explained_not_overrun(self):
        os.makedirs(os.path.join(self.data, ".webstack-restore", "old"))
        with self.assertRaisesRegex(tool.BackupError, r"old holds files, they are the data from before it"):
            tool.restore_command(None, self.settings, "2026-11-30 12:00:00", assume_yes=True,
                                 run=self.runner(lambda argv: False), clock=lambda: at("13:00:00"))
        self.assertEqual(self.ran, [])


if __name__ == "__main__":
    unittest.main()
