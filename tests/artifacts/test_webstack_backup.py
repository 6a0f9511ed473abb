"""Unit tests of the node tool's backups (issue 20): the shipping's bookkeeping and the restore's
choices and refusals; with `database: galera`, a member's backup and the restore's refusal. S3 is
botocore's Stubber; the database's answers are scripted. The real thing (MariaDB 11.8,
mariadb-backup, the S3 stand-in) runs in the lab (tests/day2.lab.ts), in replication mode; MySQL 8.4
with Percona XtraBackup and a Galera member's backup are proven here only, by their exact commands
and statements (the member's stream: a fixture mbstream made).
Run with Debian's python: /usr/bin/python3 -m unittest tests/artifacts/test_webstack_backup.py
"""
import contextlib
import datetime
import importlib.util
import io
import json
import os
import pathlib
import subprocess
import tempfile
import unittest
import zlib

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
    "BINLOG_NODE": "s2", "DB_CLIENT": "mariadb", "PRIMARY_SERVER_ID": "2", "DB_ENGINE": "mariadb",
}
MARIADB = dict(DB_ENGINE="mariadb", DB_SERVICE="mariadb.service", BACKUP_TOOL="mariadb-backup", STREAM_TOOL="mbstream",
               BINLOG_TOOL="mariadb-binlog", DB_CLIENT="mariadb")
MYSQL = dict(DB_ENGINE="mysql", DB_SERVICE="mysql.service", BACKUP_TOOL="xtrabackup", STREAM_TOOL="xbstream",
             BINLOG_TOOL="mysqlbinlog", DB_CLIENT="mysql")
# MySQL's servers: the primary's uuid and an earlier primary's (a set names every server that wrote).
PRIMARY_UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
EARLIER_UUID = "5c2a0b7e-1111-11ef-8c3d-0242ac120002"
BACKUP_SET = f"{PRIMARY_UUID}:1-21,{EARLIER_UUID}:1-8"
RESTORE_CONF = ("# webstack-db-restore: this server's data is a restored past; `webstack-db-restore --resume` removes "
                "this.\n[mysqld]\nskip_replica_start = ON\n")
WHEN = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=datetime.timezone.utc)
# A Galera member's backup stream, made by mbstream itself (MariaDB 10.11's, Debian 12's mariadb-backup:
# `mbstream -c ibdata1 webstack/items.ibd mariadb_backup_galera_info`); its galera-info file holds
# GALERA_POSITION and a newline, as mariadb-backup --galera-info writes it.
MEMBER_STREAM = (pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "backups"
                 / "galera-member.mbstream").read_bytes()
GALERA_POSITION = "d38587ce-246c-11e5-bcce-6bbd0831cc0f:1352215"
GALERA = dict(MARIADB, DB_CLUSTER="galera")
MEMBER_STATUS = "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_status', 'wsrep_local_state_comment')"
SYNCED = "wsrep_cluster_status\tPrimary\nwsrep_local_state_comment\tSynced\n"


def at(hhmmss):
    h, m, s = map(int, hhmmss.split(":"))
    return WHEN.replace(hour=h, minute=m, second=s).timestamp()


def body(data):
    return StreamingBody(io.BytesIO(data), len(data))


def local_sql(client, query):
    """The argv of a query as root over the local socket."""
    return [client, "--protocol=socket", "--user=root", "--batch", "--skip-column-names", "--execute", query]


def chunk(path, payload=None, offset=0, kind=None):
    """One chunk of an mbstream: a file's bytes at an offset, or (no payload) the file's end."""
    name = path.encode()
    head = b"XBSTCK01\0" + (kind or (b"E" if payload is None else b"P")) + len(name).to_bytes(4, "little") + name
    if payload is None:
        return head
    return (head + len(payload).to_bytes(8, "little") + offset.to_bytes(8, "little")
            + zlib.crc32(payload).to_bytes(4, "little") + payload)


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

    def test_a_mysql_gtid_set_on_one_line_and_each_servers_last_transaction(self):
        self.assertEqual(tool.gtid_text(f"{PRIMARY_UUID}:1-21,\n{EARLIER_UUID}:1-8\n"), BACKUP_SET)
        self.assertEqual(tool.gtid_text(f"{PRIMARY_UUID}:1-21,\\n{EARLIER_UUID}:1-8\n"), BACKUP_SET)  # batch output
        self.assertEqual(tool.gtid_set_ends(f"{PRIMARY_UUID.upper()}:1-21:25-30,{EARLIER_UUID}:7"),
                         {PRIMARY_UUID: 30, EARLIER_UUID: 7})
        self.assertEqual(tool.gtid_set_ends(f"{PRIMARY_UUID}:1-5:blue:1-40"), {PRIMARY_UUID: 5})
        self.assertEqual(tool.gtid_set_ends(""), {})


class FollowOnTest(unittest.TestCase):
    """MySQL: the replay goes on from the backup's set, server by server, with no gap and no overlap."""

    def follows_on(self, *gtids):
        with tempfile.NamedTemporaryFile("w", suffix=".sql") as replay:
            replay.write("".join(f"SET @@SESSION.GTID_NEXT= '{g}'/*!*/;\nBINLOG '...'/*!*/;\n" for g in gtids)
                         + "SET @@SESSION.GTID_NEXT= 'AUTOMATIC' /* added by mysqlbinlog */ /*!*/;\n")
            replay.flush()
            tool.MySQLBackups.follows_on(replay.name, BACKUP_SET, SETTINGS)

    def test_the_next_transaction_of_each_server_and_a_new_server_from_its_first(self):
        new_uuid = "9d0c7e3a-2222-11ef-8c3d-0242ac120003"
        self.follows_on(f"{PRIMARY_UUID}:22", f"{PRIMARY_UUID}:23", f"{EARLIER_UUID}:9", f"{new_uuid}:1")
        self.follows_on()  # nothing written since the backup

    def test_a_gap_an_overlap_or_a_new_server_not_from_its_first_is_refused(self):
        cases = ([f"{PRIMARY_UUID}:23"], 23, 22), ([f"{PRIMARY_UUID}:22", f"{EARLIER_UUID}:8"], 8, 9), \
            (["9d0c7e3a-2222-11ef-8c3d-0242ac120003:2"], 2, 1)
        for gtids, found, expected in cases:
            uuid = gtids[-1].split(":")[0]
            refusal = f"first write of {uuid} after the backup is {uuid}:{found}, not {uuid}:{expected}:"
            with self.subTest(gtids=gtids), self.assertRaisesRegex(tool.BackupError, refusal):
                self.follows_on(*gtids)


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

    def manifest(self, stamp, finished, binlog, galera=False):
        key = f"backups/full/{stamp}/manifest.json"
        fields = ({"database": "galera", "galera_position": GALERA_POSITION} if galera else
                  {"gtid_slave_pos": "2-2-10", "primary_binlog": binlog, "binlog_node": "s2"})
        data = json.dumps({"finished": finished, **fields}).encode()
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

    def test_a_galera_members_backup_is_never_the_one_a_replica_is_restored_from(self):
        self.listing("backups/full/", ["backups/full/20261130T030000Z/manifest.json",
                                       "backups/full/20261130T090000Z/manifest.json"])
        self.manifest("20261130T090000Z", at("09:10:00"), None, galera=True)
        self.manifest("20261130T030000Z", at("03:10:00"), "mysql-bin.000009")
        self.listing("backups/binlog/s2/", ["backups/binlog/s2/mysql-bin.000009.zst", "backups/binlog/s2/shipped.json"])
        self.marker("mysql-bin.000009", "12:01:00")
        backup, binlogs = tool.restore_plan(self.s3, SETTINGS, datetime.datetime.fromtimestamp(at("12:00:00"),
                                                                                               datetime.timezone.utc))
        self.assertEqual((backup["prefix"], binlogs), ("backups/full/20261130T030000Z/", ["mysql-bin.000009"]))

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


class BackupFullTest(unittest.TestCase):
    """The replica's backup: the tool's command, the object's name, and the manifest from what it prints."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.sent, self.manifests = [], []
        self.upload = tool.upload_stream
        tool.upload_stream = lambda s3, stream, bucket, key: self.sent.append((key, stream.read()))

    def tearDown(self):
        tool.upload_stream = self.upload
        self.dir.cleanup()

    def backup(self, engine, status, printed, stream=b"files", answers=None):
        """Backs up with the backup tool streaming that and printing this; returns its exit code and the
        backup tool's argv (the database's answers: status to SHOW REPLICA STATUS, or answers)."""
        settings = dict(SETTINGS, **engine, FULL_STATE=os.path.join(self.dir.name, "full.json"),
                        DB_CONF_DIR="/etc/mysql/mysql.conf.d")
        streamed = os.path.join(self.dir.name, "stream")
        with open(streamed, "wb") as handle:
            handle.write(stream)
        started = []

        def popen(argv, **kwargs):
            started.append(argv)
            if argv[0] == "zstd":
                return subprocess.Popen(["cat"], stdin=kwargs["stdin"], stdout=kwargs["stdout"])
            return subprocess.Popen(["sh", "-c", 'cat "$1"; printf "%s" "$0" >&2', printed, streamed],
                                    stdout=kwargs["stdout"], stderr=kwargs["stderr"])
        put = lambda _, **kw: self.manifests.append((kw["Key"], json.loads(kw["Body"])))  # noqa: E731
        clock = iter([at("03:00:00"), at("03:20:00")]).__next__
        self.database = Database(answers or {"SHOW REPLICA STATUS\\G": status})
        code = tool.backup_full_command(type("S3", (), {"put_object": put})(), settings, popen=popen, clock=clock,
                                        run=self.database)
        self.assertEqual(started[1:], [["zstd", "-q", "-c", "-T0"]])
        return code, started[0]

    def test_mariadb_streams_mbstream_and_keeps_its_gtid_slave_pos(self):
        code, argv = self.backup(MARIADB, "Slave_IO_State: Waiting\nRelay_Master_Log_File: mysql-bin.000009\n",
                                 "[00] mariadb-backup: MySQL slave binlog position: master host '10.0.2.12', "
                                 "gtid_slave_pos '1-1-3,2-2-10'\n[00] completed OK!\n")
        self.assertEqual(code, 0)
        self.assertEqual(argv, ["mariadb-backup", "--backup", "--stream=mbstream", "--slave-info",
                                "--safe-slave-backup", "--user=root", "--target-dir=/tmp"])
        self.assertEqual(self.sent, [("backups/full/20261130T030000Z/backup.mbstream.zst", b"files")])
        self.assertEqual(self.manifests, [("backups/full/20261130T030000Z/manifest.json", {
            "format": 1, "node": "s1", "engine": "mariadb", "started": at("03:00:00"), "finished": at("03:20:00"),
            "gtid_slave_pos": "1-1-3,2-2-10", "primary_binlog": "mysql-bin.000009", "binlog_node": "s2"})])

    def test_mysql_with_the_gtid_set_xtrabackup_prints_over_lines(self):
        code, argv = self.backup(MYSQL, "Replica_IO_State: Waiting\nRelay_Source_Log_File: mysql-bin.000012\n",
                                 "2026-11-30T03:19:59 0 [Note] [MY-011825] [Xtrabackup] MySQL binlog position: "
                                 "filename 'mysql-bin.000007', position '1763', GTID of the last change "
                                 f"'{PRIMARY_UUID}:1-21,\n{EARLIER_UUID}:1-8'\n"
                                 "2026-11-30T03:19:59 0 [Note] [MY-011825] [Xtrabackup] completed OK!\n")
        self.assertEqual(code, 0)
        # No --safe-slave-backup: XtraBackup's stops the applier for the whole backup.
        self.assertEqual(argv, ["xtrabackup", "--backup", "--stream=xbstream", "--slave-info", "--user=root",
                                "--target-dir=/tmp"])
        self.assertEqual(self.sent, [("backups/full/20261130T030000Z/backup.xbstream.zst", b"files")])
        self.assertEqual(self.manifests, [("backups/full/20261130T030000Z/manifest.json", {
            "format": 1, "node": "s1", "engine": "mysql", "started": at("03:00:00"), "finished": at("03:20:00"),
            "gtid_executed": BACKUP_SET, "primary_binlog": "mysql-bin.000012", "binlog_node": "s2"})])

    def test_no_manifest_without_the_position(self):
        with self.assertRaisesRegex(tool.BackupError, "xtrabackup printed no gtid_executed: no manifest written"):
            self.backup(MYSQL, "Relay_Source_Log_File: mysql-bin.000012\n", "MySQL binlog position: filename "
                        "'mysql-bin.000007', position '1763'\n")
        self.assertEqual(self.manifests, [])


class MemberBackupTest(BackupFullTest):
    """A Galera member's backup (`database: galera`): no replica to ask, its cluster position kept."""

    def member_backup(self, stream=MEMBER_STREAM, status=SYNCED, engine=GALERA):
        return self.backup(engine, None, "[00] mariadb-backup: completed OK!\n", stream=stream,
                           answers={MEMBER_STATUS: status})

    def test_with_galera_info_and_the_cluster_position_from_its_stream(self):
        code, argv = self.member_backup()
        self.assertEqual(code, 0)
        # No --slave-info, no --safe-slave-backup: the member replicates from nobody.
        self.assertEqual(argv, ["mariadb-backup", "--backup", "--stream=mbstream", "--galera-info", "--user=root",
                                "--target-dir=/tmp"])
        self.assertEqual(self.database.asked, [MEMBER_STATUS])  # no SHOW REPLICA STATUS, no primary
        self.assertEqual(self.sent, [("backups/full/20261130T030000Z/backup.mbstream.zst", MEMBER_STREAM)])
        self.assertEqual(self.manifests, [("backups/full/20261130T030000Z/manifest.json", {
            "format": 1, "node": "s1", "engine": "mariadb", "started": at("03:00:00"), "finished": at("03:20:00"),
            "database": "galera", "galera_position": GALERA_POSITION})])

    def test_a_later_galera_info_with_its_gtid_domain_and_the_older_files_name(self):
        for name, text in (("mariadb_backup_galera_info", f"{GALERA_POSITION} 1"),
                           ("xtrabackup_galera_info", f"{GALERA_POSITION}\n")):
            with self.subTest(name=name):
                self.manifests.clear()
                self.member_backup(stream=chunk("ibdata1", b"x" * 100) + chunk("ibdata1")
                                   + chunk(name, text.encode()) + chunk(name))
                self.assertEqual(self.manifests[0][1]["galera_position"], GALERA_POSITION)

    def test_a_member_not_synced_in_the_primary_component_is_not_backed_up(self):
        for status, said in ((SYNCED.replace("Synced", "Donor/Desynced"), "is Donor/Desynced in a Primary component"),
                             (SYNCED.replace("\tPrimary", "\tnon-Primary").replace("Synced", "Initialized"),
                              "is Initialized in a non-Primary component"),
                             ("", "is in no state in a missing component")):
            with self.subTest(status=status), self.assertRaisesRegex(tool.BackupError, said):
                self.member_backup(status=status)
        self.assertEqual((self.sent, self.manifests), ([], []))

    def test_no_manifest_without_a_galera_position_in_the_stream(self):
        without = chunk("ibdata1", b"x" * 100) + chunk("ibdata1")
        for stream, said in ((without, "stream holds no mariadb_backup_galera_info or xtrabackup_galera_info: no "
                                       "manifest written"),
                             (without + chunk("mariadb_backup_galera_info", b"-1\n"),
                              r"galera_info holds b'-1\\n', not <state uuid>:<seqno>"),
                             (b"files" * 3, "stream: not an mbstream: a chunk does not start with XBSTCK01"),
                             (without[:-1], "stream: it ends inside a chunk")):
            with self.subTest(said=said), self.assertRaisesRegex(tool.BackupError, said):
                self.member_backup(stream=stream)
        self.assertEqual(self.manifests, [])

    def test_galera_on_mysql_is_refused_before_anything_runs(self):
        settings = dict(SETTINGS, **MYSQL, DB_CLUSTER="galera", DB_CONF_DIR="/etc/mysql/conf.d")
        with self.assertRaisesRegex(tool.BackupError, "`database: galera` is MariaDB's; this node's DB_ENGINE is mysql"):
            tool.backup_full_command(None, settings, run=None, popen=None)

    def test_a_failed_upload_ends_the_backup_tool_and_zstd_and_is_raised(self):
        processes = []

        def upload(s3, stream, bucket, key):
            stream.read(1000)
            raise RuntimeError("the upload failed")
        tool.upload_stream = upload
        settings = dict(SETTINGS, **GALERA, FULL_STATE=os.path.join(self.dir.name, "full.json"))

        def popen(argv, **kwargs):  # the backup tool streams more than any pipe holds, and never ends by itself
            argv = ["cat"] if argv[0] == "zstd" else ["yes", "files"]
            processes.append(subprocess.Popen(argv, **kwargs))
            return processes[-1]
        with self.assertRaisesRegex(RuntimeError, "the upload failed"):
            tool.backup_full_command(None, settings, run=Database({MEMBER_STATUS: SYNCED}), popen=popen)
        self.assertEqual([p.returncode is not None for p in processes], [True, True])
        self.assertEqual(self.manifests, [])


class StreamFileTest(unittest.TestCase):
    """The galera-info file picked out of an mbstream as it passes, however the reads cut it."""

    def picked(self, stream, piece):
        tap = tool.StreamFile(tool.GALERA_INFO_FILES)
        for start in range(0, len(stream), piece):
            tap.feed(stream[start:start + piece])
        return tap

    def test_mbstreams_own_stream_in_pieces_of_any_size(self):
        for piece in (1, 7, 4096, len(MEMBER_STREAM)):
            with self.subTest(piece=piece):
                tap = self.picked(MEMBER_STREAM, piece)
                self.assertIsNone(tap.error)
                self.assertEqual(tap.files, {"mariadb_backup_galera_info": f"{GALERA_POSITION}\n".encode()})
                self.assertEqual((bytes(tap.pending), tap.skip), (b"", 0))

    def test_files_over_several_chunks_the_kept_one_joined_the_others_passed_over(self):
        stream = (chunk("ibdata1", b"a" * 5000) + chunk("mariadb_backup_galera_info", GALERA_POSITION[:10].encode())
                  + chunk("ibdata1", b"b" * 7000, 5000) + chunk("ibdata1")
                  + chunk("mariadb_backup_galera_info", GALERA_POSITION[10:].encode(), 10)
                  + chunk("mariadb_backup_galera_info"))
        for piece in (1, 999, len(stream)):
            with self.subTest(piece=piece):
                self.assertEqual(self.picked(stream, piece).files,
                                 {"mariadb_backup_galera_info": GALERA_POSITION.encode()})

    def test_a_damaged_kept_chunk_or_an_unknown_chunk_type_is_an_error(self):
        good = chunk("mariadb_backup_galera_info", GALERA_POSITION.encode())
        damaged = good[:-1] + b"0"
        for stream, error in ((damaged, "checksum or offset is wrong"),
                              (chunk("mariadb_backup_galera_info", b"1", 5), "checksum or offset is wrong"),
                              (chunk("ibdata1", b"x", kind=b"S"), "a type this tool does not know, 'S'"),
                              (b"XBSTCK02" + good[8:], "not an mbstream")):
            with self.subTest(error=error):
                tap = self.picked(stream + MEMBER_STREAM, 3)
                self.assertRegex(tap.error, error)
                self.assertLess(len(tap.pending), len(stream))  # what follows is neither read nor kept


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

    def ship(self, status, logs, clock, status_query="SHOW MASTER STATUS"):
        database = Database({status_query: status, "FLUSH BINARY LOGS": "",
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

    def test_mysql_asks_its_binlog_status_by_its_8_4_name(self):
        self.settings.update(DB_ENGINE="mysql", DB_CONF_DIR="/etc/mysql/mysql.conf.d")
        code, asked = self.ship("mysql-bin.000003\t900\t\t\tuuid:1-5\n", ["mysql-bin.000002", "mysql-bin.000003"],
                                at("12:00:00"), status_query="SHOW BINARY LOG STATUS")
        self.assertEqual(code, 0)
        self.assertEqual(asked, ["SHOW BINARY LOG STATUS", "FLUSH BINARY LOGS", "SHOW BINARY LOGS",
                                 "SHOW BINARY LOG STATUS", "SELECT @@log_bin_basename"])
        self.assertEqual(self.sent, ["backups/binlog/s2/mysql-bin.000002.zst"])


    def test_a_galera_member_ships_as_a_primary_does_asking_its_own_server_only(self):
        self.settings.update(DB_CLUSTER="galera")
        code, asked = self.ship("mysql-bin.000003\t900\n", ["mysql-bin.000002", "mysql-bin.000003", "mysql-bin.000004"],
                                at("12:00:00"))
        self.assertEqual(code, 0)
        self.assertEqual(asked, ["SHOW MASTER STATUS", "FLUSH BINARY LOGS", "SHOW BINARY LOGS", "SHOW MASTER STATUS",
                                 "SELECT @@log_bin_basename"])
        self.assertEqual(self.sent, ["backups/binlog/s2/mysql-bin.000002.zst",
                                     "backups/binlog/s2/mysql-bin.000003.zst"])


class GaleraRestoreTest(unittest.TestCase):
    """`database: galera`: the restore and its --resume refuse, naming the mode and the README's section,
    before anything is read or changed (they would rebuild a replica and replicate it from a primary)."""
    REFUSAL = (r"webstack-db-restore is refused: this stack's database is `database: galera`, .* see the README's "
               r"section \"Database modes\"\. Nothing was changed\.$")

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.ran = []
        self.settings = dict(SETTINGS, **GALERA, DATA_DIR=os.path.join(self.dir.name, "data"),
                             STATE_DIR=os.path.join(self.dir.name, "state"), APP_SERVICE="webstack-app.service")

    def tearDown(self):
        self.dir.cleanup()

    def run_(self, argv, **kwargs):
        self.ran.append(argv)
        return subprocess.CompletedProcess(argv, 0, "", "")

    def test_a_restore_to_a_point_is_refused_before_anything(self):
        with self.assertRaisesRegex(tool.BackupError, self.REFUSAL):
            tool.restore_command(None, self.settings, "2026-11-30 12:00:00", assume_yes=True, run=self.run_,
                                 popen=None, clock=lambda: at("13:00:00"))
        self.assertEqual(self.ran, [])
        self.assertFalse(os.path.exists(self.settings["STATE_DIR"]))

    def test_resume_is_refused_before_anything(self):
        with self.assertRaisesRegex(tool.BackupError, self.REFUSAL):
            tool.resume_command(self.settings, run=self.run_)
        self.assertEqual(self.ran, [])

    def test_the_mode_is_read_from_the_nodes_own_settings(self):
        """Through the command line: node.env's DB_CLUSTER, beside backup.env."""
        root = self.dir.name
        os.makedirs(os.path.join(root, "etc/webstack"))
        with open(os.path.join(root, "etc/webstack/backup.env"), "w") as handle:
            handle.write("".join(f"{k}={v}\n" for k, v in dict(SETTINGS, STATE_DIR=f"{root}/state").items()))
        for node_env, code, said in (
                ("NODE=s1\nDB_ROLE=member\nDB_CLUSTER=galera\n", 1, "is `database: galera`"),
                ("NODE=s1\nDB_CLUSTER=raft\n", 1, "DB_CLUSTER='raft': expected one of replication, galera"),
                (None, 1, "/etc/webstack/node.env is missing: the database's mode is unknown, nothing was done")):
            with self.subTest(node_env=node_env):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(root, "etc/webstack/node.env"))
                if node_env:
                    with open(os.path.join(root, "etc/webstack/node.env"), "w") as handle:
                        handle.write(node_env)
                errors = io.StringIO()
                with contextlib.redirect_stderr(errors):
                    self.assertEqual(tool.main(["webstack-aws", "db-restore", "--resume"], root=root,
                                               run_command=self.run_), code)
                self.assertIn(said, errors.getvalue())
        self.assertEqual(self.ran, [])

    def test_a_node_whose_settings_name_no_mode_is_a_replication_one(self):
        root = self.dir.name
        os.makedirs(os.path.join(root, "etc/webstack"))
        for name, text in (("backup.env", "NODE=s1\n"), ("node.env", "NODE=s1\nDB_ROLE=replica\n")):
            with open(os.path.join(root, "etc/webstack", name), "w") as handle:
                handle.write(text)
        settings = tool.backup_settings(root)
        self.assertEqual((settings, tool.database_mode(settings)), ({"NODE": "s1", "DB_CLUSTER": "replication"},
                                                                    "replication"))


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


class RestoreCase(unittest.TestCase):
    """A restore on a data directory of its own: the plan and the downloads faked, every command it
    runs recorded (and what the database and the binlog tool answer scripted)."""
    ENGINE = MARIADB
    POSITION = {"gtid_slave_pos": "2-2-10"}
    BACKUP_FILES = ()  # the backup tool's own files among the backup's

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        root = self.dir.name
        self.data = os.path.join(root, "data")
        os.makedirs(os.path.join(self.data, "webstack"))
        for name in ("ibdata1", "webstack/items.ibd"):
            with open(os.path.join(self.data, name), "w") as handle:
                handle.write("before")
        self.settings = dict(SETTINGS, **self.ENGINE, DATA_DIR=self.data, STATE_DIR=os.path.join(root, "state"),
                             SYSTEMD_DIR=os.path.join(root, "systemd"), APP_SERVICE="webstack-app.service",
                             DB_CONF_DIR=os.path.join(root, "conf.d"))
        self.saved = tool.restore_plan, tool.download
        tool.restore_plan = lambda s3, settings, point: ({"prefix": "backups/full/x/", "finished": 0,
                                                          "binlog_node": "s2", **self.POSITION},
                                                         ["mysql-bin.000001"])
        tool.download = self.download
        self.ran, self.downloaded, self.started, self.replayed = [], [], [], []
        self.replay, self.answers, self.backup_contents = "", {}, {}

    def tearDown(self):
        tool.restore_plan, tool.download = self.saved
        self.dir.cleanup()

    def download(self, s3, bucket, key, argv, popen=None):
        self.downloaded.append(key)
        if self.settings["STREAM_TOOL"] in argv:  # the backup's files, extracted
            for name in ("ibdata1", *self.BACKUP_FILES):
                with open(os.path.join(argv[-1], name), "w") as handle:
                    handle.write(self.backup_contents.get(name, "restored"))

    def restore_conf(self):
        """The restore's server settings as they are now, or None."""
        with contextlib.suppress(FileNotFoundError), open(tool.restore_conf_path(self.settings)) as handle:
            return handle.read()

    def restored(self, before_replay, replay_from, data_only, after_replay, executed):
        """Restores to noon, which must succeed, running exactly the commands and statements of both
        engines' flow with the engine's own between them; returns what it logged."""
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            code = tool.restore_command(None, self.settings, "2026-11-30 12:00:00", assume_yes=True,
                                        run=self.runner(lambda argv: False), clock=lambda: at("13:00:00"))
        self.assertEqual(code, 0)
        work = os.path.join(self.data, ".webstack-restore")
        tool_, client, service = (self.settings[k] for k in ("BACKUP_TOOL", "DB_CLIENT", "DB_SERVICE"))
        self.assertEqual(self.downloaded, [f"backups/full/x/backup.{self.settings['STREAM_TOOL']}.zst",
                                           "backups/binlog/s2/mysql-bin.000001.zst"])
        self.assertEqual(self.ran, [
            ["systemctl", "daemon-reload"],
            ["systemctl", "stop", "webstack-app.service"],
            ["systemctl", "stop", service],
            [tool_, "--prepare", f"--target-dir={work}/new"],
            [tool_, "--move-back", "--force-non-empty-directories", f"--datadir={self.data}",
             f"--target-dir={work}/new"],
            ["chown", "-R", "mysql:mysql", "--", f"{self.data}/ibdata1"],  # the backup tool's files gone
            ["systemctl", "start", service],
            *[local_sql(client, q) for q in before_replay],
            ["env", "TZ=UTC", self.settings["BINLOG_TOOL"], *replay_from, "--stop-datetime=2026-11-30 12:00:00",
             f"{work}/binlogs/mysql-bin.000001"],
            [client, "--protocol=socket", "--user=root", "--binary-mode", *data_only],
            *[local_sql(client, q) for q in after_replay],
            ["rm", "-rf", "--", work],
            local_sql(client, executed),
        ])
        self.assertEqual(self.replayed, [self.replay])
        self.assertEqual(os.listdir(self.data), ["ibdata1"])
        return errors.getvalue()

    def runner(self, fail):
        def run(argv, **kwargs):
            self.ran.append(argv)
            code = 1 if fail(argv) else 0
            if argv[:2] == [self.settings["BACKUP_TOOL"], "--move-back"] and not code:
                new = argv[-1].split("=", 1)[1]
                for entry in os.listdir(new):
                    os.rename(os.path.join(new, entry), os.path.join(self.data, entry))
            if argv[:1] == ["rm"]:
                subprocess.run(argv, check=True)
            if argv[:2] == ["systemctl", "start"]:
                self.started.append((argv[2], self.restore_conf()))
            if argv[:3] == ["env", "TZ=UTC", self.settings["BINLOG_TOOL"]] and not code:
                kwargs["stdout"].write(self.replay)
            if "--binary-mode" in argv:
                self.replayed.append(kwargs["stdin"].read())
            answer = self.answers.get(argv[-1], "") if "--execute" in argv else ""
            return subprocess.CompletedProcess(argv, code, answer, "refused" if code else "")
        return run

    def restore(self, fail):
        with self.assertRaises(tool.BackupError):
            tool.restore_command(None, self.settings, "2026-11-30 12:00:00", assume_yes=True,
                                 run=self.runner(fail), clock=lambda: at("13:00:00"))

    def assert_back_as_before(self):
        with open(os.path.join(self.data, "ibdata1")) as handle:
            self.assertEqual(handle.read(), "before")
        self.assertEqual(sorted(os.listdir(self.data)), ["ibdata1", "webstack"])  # no work directory left
        self.assertIn(["systemctl", "start", self.settings["DB_SERVICE"]], self.ran)
        self.assertIn(["systemctl", "start", "webstack-app.service"], self.ran)
        self.assertFalse(os.path.exists(tool.app_hold_path(self.settings)))
        self.assertFalse(os.path.exists(tool.restore_flag(self.settings)))


class RestoreFailureTest(RestoreCase):
    """A restore that fails puts the previous data back and runs the server and the app again."""

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

    def test_a_node_still_holding_a_restored_past_keeps_holding_it_when_another_restore_fails(self):
        tool.hold_app(self.settings, lambda argv: None)  # an earlier --to, no --resume yet
        self.restore(lambda argv: argv[:2] == ["mariadb-backup", "--prepare"])
        with open(os.path.join(self.data, "ibdata1")) as handle:
            self.assertEqual(handle.read(), "before")
        self.assertIn(["systemctl", "start", self.settings["DB_SERVICE"]], self.ran)
        self.assertNotIn(["systemctl", "start", "webstack-app.service"], self.ran)
        self.assertTrue(os.path.exists(tool.app_hold_path(self.settings)))
        self.assertTrue(os.path.exists(tool.restore_flag(self.settings)))

    def test_an_unfinished_restore_is_explained_not_overrun(self):
        os.makedirs(os.path.join(self.data, ".webstack-restore", "old"))
        with self.assertRaisesRegex(tool.BackupError, r"old holds files, they are the data from before it"):
            tool.restore_command(None, self.settings, "2026-11-30 12:00:00", assume_yes=True,
                                 run=self.runner(lambda argv: False), clock=lambda: at("13:00:00"))
        self.assertEqual(self.ran, [])



class MariaDBRestoreTest(RestoreCase):
    def test_the_restores_commands_and_statements_in_order(self):
        self.replay = ("# at 4\n#261130 11:00:00 server id 2  end_log_pos 50  GTID 2-2-11\n"
                       "/*!100001 SET @@session.gtid_domain_id=2*//*!*/;\n"
                       "/*!100001 SET @@session.gtid_seq_no=11*//*!*/;\n")
        self.answers = {"SELECT @@gtid_binlog_pos": "2-2-12\n"}
        said = self.restored([], ["--start-position=2-2-10"], ["--sandbox"], [], "SELECT @@gtid_binlog_pos")
        self.assertEqual(self.started, [("mariadb.service", None)])  # no held replication: none in its backup
        self.assertIn("s2's writes up to GTID 2-…-12. Replication", said)


class MySQLRestoreTest(RestoreCase):
    """MySQL 8.4's restore: the same flow, with the server held from replicating and its GTIDs the backup's."""
    ENGINE = MYSQL
    POSITION = {"gtid_executed": BACKUP_SET}
    BACKUP_FILES = ("xtrabackup_binlog_info", "xtrabackup_slave_info", "xtrabackup_info", "xtrabackup_checkpoints",
                    "xtrabackup_tablespaces", "xtrabackup_binlog_pos_innodb")

    def test_the_restores_commands_and_statements_in_order(self):
        self.replay = (f"SET @@SESSION.GTID_NEXT= '{PRIMARY_UUID}:22'/*!*/;\nBINLOG '...'/*!*/;\n"
                       f"SET @@SESSION.GTID_NEXT= '{PRIMARY_UUID}:23'/*!*/;\nBINLOG '...'/*!*/;\n")
        self.answers = {"SELECT @@global.gtid_executed": f"{PRIMARY_UUID}:1-23,\\n{EARLIER_UUID}:1-8\n"}
        said = self.restored(["SET GLOBAL super_read_only = OFF", "RESET BINARY LOGS AND GTIDS",
                              f"SET GLOBAL gtid_purged = '{BACKUP_SET}'"], [f"--exclude-gtids={BACKUP_SET}"],
                             [], ["SET GLOBAL super_read_only = ON"], "SELECT @@global.gtid_executed")
        # The server starts held from replicating, and stays so (a reboot too) until --resume.
        self.assertEqual(self.started, [("mysql.service", RESTORE_CONF)])
        self.assertEqual(self.restore_conf(), RESTORE_CONF)
        self.assertIn(f"s2's writes up to GTID set {PRIMARY_UUID}:1-23,{EARLIER_UUID}:1-8. Replication", said)

    def test_a_backup_holding_no_transaction_replays_every_one_from_the_first(self):
        self.POSITION = {"gtid_executed": ""}
        self.replay = f"SET @@SESSION.GTID_NEXT= '{PRIMARY_UUID}:1'/*!*/;\nBINLOG '...'/*!*/;\n"
        self.restored(["SET GLOBAL super_read_only = OFF", "RESET BINARY LOGS AND GTIDS",
                       "SET GLOBAL gtid_purged = ''"], [], [], ["SET GLOBAL super_read_only = ON"],
                      "SELECT @@global.gtid_executed")

    def test_the_backups_own_gtid_set_wins_over_a_manifests_cut_short(self):
        # The log line the manifest took its set from lost the earlier server (Percona's PXB-3302);
        # the backup's xtrabackup_binlog_info has it whole, over lines as MySQL prints it.
        self.POSITION = {"gtid_executed": f"{PRIMARY_UUID}:1-21"}
        self.backup_contents = {"xtrabackup_binlog_info": f"mysql-bin.000007\t1763\t{PRIMARY_UUID}:1-21,\n"
                                                          f"{EARLIER_UUID}:1-8\n"}
        self.replay = f"SET @@SESSION.GTID_NEXT= '{PRIMARY_UUID}:22'/*!*/;\nBINLOG '...'/*!*/;\n"
        said = self.restored(["SET GLOBAL super_read_only = OFF", "RESET BINARY LOGS AND GTIDS",
                              f"SET GLOBAL gtid_purged = '{BACKUP_SET}'"], [f"--exclude-gtids={BACKUP_SET}"], [],
                             ["SET GLOBAL super_read_only = ON"], "SELECT @@global.gtid_executed")
        self.assertIn(f"differs from its manifest's, {PRIMARY_UUID}:1-21: the backup's is used", said)

    def test_a_position_that_is_no_gtid_set_is_refused_before_the_data_moves(self):
        self.POSITION = {"gtid_executed": f"{PRIMARY_UUID}:1-21'; DROP DATABASE webstack; --"}
        with self.assertRaisesRegex(tool.BackupError, "is not one: nothing replayed"):
            tool.restore_command(None, self.settings, "2026-11-30 12:00:00", assume_yes=True,
                                 run=self.runner(lambda argv: False), clock=lambda: at("13:00:00"))
        self.assertNotIn(["systemctl", "start", "mysql.service"], self.ran[:-2])
        self.assert_back_as_before()

    def test_binlogs_that_do_not_follow_on_are_not_replayed_and_the_previous_data_is_put_back(self):
        self.replay = f"SET @@SESSION.GTID_NEXT= '{PRIMARY_UUID}:23'/*!*/;\nBINLOG '...'/*!*/;\n"
        with self.assertRaisesRegex(tool.BackupError, f"first write of {PRIMARY_UUID} after the backup is "
                                                      f"{PRIMARY_UUID}:23, not {PRIMARY_UUID}:22"):
            tool.restore_command(None, self.settings, "2026-11-30 12:00:00", assume_yes=True,
                                 run=self.runner(lambda argv: False), clock=lambda: at("13:00:00"))
        self.assertEqual(self.replayed, [])
        self.assert_back_as_before()
        # Put back, the previous data replicates again as it did.
        self.assertEqual(self.started, [("mysql.service", RESTORE_CONF), ("mysql.service", None),
                                        ("webstack-app.service", None)])

    def test_without_the_servers_settings_directory_nothing_is_stopped_or_changed(self):
        del self.settings["DB_CONF_DIR"]
        with self.assertRaisesRegex(tool.BackupError, "DB_CONF_DIR is missing: mysql needs it as an absolute path"):
            tool.restore_command(None, self.settings, "2026-11-30 12:00:00", assume_yes=True,
                                 run=self.runner(lambda argv: False), clock=lambda: at("13:00:00"))
        self.assertEqual(self.ran, [])


class ResumeTest(unittest.TestCase):
    """--resume: replication from where the restored data ends, caught up, then the app."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        root = self.dir.name
        for name, text in (("password", "secret"), ("tls.cnf", "ssl-ca=/etc/ca.crt\n")):
            with open(os.path.join(root, name), "w") as handle:
                handle.write(text)
        self.settings = dict(SETTINGS, STATE_DIR=os.path.join(root, "state"), SYSTEMD_DIR=os.path.join(root, "systemd"),
                             APP_SERVICE="webstack-app.service", DB_BOOTSTRAP="/usr/local/sbin/webstack-db-bootstrap",
                             REPLICATION_PASSWORD_FILE=os.path.join(root, "password"),
                             CLIENT_TLS_FILE=os.path.join(root, "tls.cnf"), DB_PRIMARY_IP="10.0.2.12",
                             DB_PRIMARY_PORT="3306", DB_CONF_DIR=os.path.join(root, "conf.d"))
        self.ran, self.conf_at_bootstrap = [], []

    def tearDown(self):
        self.dir.cleanup()

    def resume(self, engine, answers, clock=lambda: at("13:00:00")):
        """answers: (where, query) to the answer, or to the answers in turn."""
        settings = dict(self.settings, **engine)
        tool.install(tool.restore_conf_path(settings), RESTORE_CONF.encode(), os.geteuid(), os.getegid(), 0o644)

        def run(argv, **kwargs):
            if "--execute" in argv:
                where = "primary" if "--host=10.0.2.12" in argv else "local"
                self.ran.append((where, argv[argv.index("--execute") + 1]))
                answer = answers[self.ran[-1]]
                answer = answer.pop(0) if isinstance(answer, list) else answer
            else:
                self.ran.append(argv)
                answer = ""
            if argv == [settings["DB_BOOTSTRAP"]]:
                self.conf_at_bootstrap.append(os.path.exists(tool.restore_conf_path(settings)))
            return subprocess.CompletedProcess(argv, 0, answer, "")
        return tool.resume_command(settings, run=run, clock=clock)

    def test_mariadb_sets_the_replicas_position_and_waits_with_master_gtid_wait(self):
        wait = ("local", "SELECT MASTER_GTID_WAIT('1-1-3,2-2-40', 10)")
        self.assertEqual(self.resume(MARIADB, {
            ("local", "SELECT @@gtid_binlog_pos, @@gtid_slave_pos"): "1-1-3,2-2-30\t2-2-34\n",
            ("local", "STOP REPLICA; RESET REPLICA ALL; SET GLOBAL gtid_slave_pos = '2-2-34'"): "",
            ("primary", "SELECT @@global.gtid_binlog_pos"): "1-1-3,2-2-40\n",
            wait: ["-1\n", "0\n"], ("local", "SHOW REPLICA STATUS\\G"): "Slave_IO_State: Waiting\n"}), 0)
        self.assertEqual(self.ran, [
            ("local", "SELECT @@gtid_binlog_pos, @@gtid_slave_pos"),
            ("local", "STOP REPLICA; RESET REPLICA ALL; SET GLOBAL gtid_slave_pos = '2-2-34'"),
            ["/usr/local/sbin/webstack-db-bootstrap"], ("primary", "SELECT @@global.gtid_binlog_pos"),
            wait, ("local", "SHOW REPLICA STATUS\\G"), wait,
            ["systemctl", "daemon-reload"], ["systemctl", "start", "webstack-app.service"]])
        self.assertEqual(self.conf_at_bootstrap, [True])  # MariaDB's restore writes none: none is removed

    def mysql_answers(self, status, waits):
        return {("local", "SELECT @@global.gtid_executed"): f"{BACKUP_SET}\n",
                ("local", "STOP REPLICA; RESET REPLICA ALL"): "",
                ("primary", "SELECT @@global.gtid_executed"): f"{PRIMARY_UUID}:1-40,\\n{EARLIER_UUID}:1-8\n",
                ("local", f"SELECT WAIT_FOR_EXECUTED_GTID_SET('{PRIMARY_UUID}:1-40,{EARLIER_UUID}:1-8', 10)"): waits,
                ("local", "SHOW REPLICA STATUS\\G"): status}

    def test_mysql_replicates_by_auto_position_and_waits_for_the_primarys_gtid_set(self):
        errors = io.StringIO()
        with contextlib.redirect_stderr(errors):
            self.assertEqual(self.resume(MYSQL, self.mysql_answers("Replica_IO_State: Waiting\n", ["1\n", "0\n"])), 0)
        wait = ("local", f"SELECT WAIT_FOR_EXECUTED_GTID_SET('{PRIMARY_UUID}:1-40,{EARLIER_UUID}:1-8', 10)")
        self.assertEqual(self.ran, [
            ("local", "SELECT @@global.gtid_executed"), ("local", "STOP REPLICA; RESET REPLICA ALL"),
            ["/usr/local/sbin/webstack-db-bootstrap"], ("primary", "SELECT @@global.gtid_executed"),
            wait, ("local", "SHOW REPLICA STATUS\\G"), wait,
            ["systemctl", "daemon-reload"], ["systemctl", "start", "webstack-app.service"]])
        self.assertEqual(self.conf_at_bootstrap, [False])  # replication starts with the server again
        self.assertIn(f"replicating again from {BACKUP_SET}, caught up", errors.getvalue())

    def test_mysql_says_the_replicas_error_and_starts_no_app(self):
        status = "Replica_IO_State: Waiting\nLast_IO_Error: \nLast_SQL_Error: Could not execute Write_rows event\n"
        with self.assertRaisesRegex(tool.BackupError, f"not caught up with {PRIMARY_UUID}:1-40,{EARLIER_UUID}:1-8 "
                                                      "within 900 s: Could not execute Write_rows event"):
            self.resume(MYSQL, self.mysql_answers(status, ["1\n"]))
        self.assertNotIn(["systemctl", "start", "webstack-app.service"], self.ran)

    def test_mysql_says_what_the_replica_does_when_time_is_up(self):
        clock = iter([at("13:00:00"), at("13:00:00"), at("13:15:00")]).__next__
        with self.assertRaisesRegex(tool.BackupError, "within 900 s: Waiting for source to send event$"):
            self.resume(MYSQL, self.mysql_answers("Replica_IO_State: Waiting for source to send event\n", ["1\n"]),
                        clock)
        self.assertNotIn(["systemctl", "start", "webstack-app.service"], self.ran)


if __name__ == "__main__":
    unittest.main()
