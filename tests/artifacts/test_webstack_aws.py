"""Unit tests of the nodes' AWS tool (cloud-init/files/webstack-aws.py).

Never reaches a real metadata service: boto3's own lookups are disabled, and the region comes
from a stand-in IMDSv2 on 127.0.0.1 that insists on a session token. SSM is botocore's Stubber.
Run with Debian's python: /usr/bin/python3 -m unittest tests/artifacts/test_webstack_aws.py
"""
import base64
import contextlib
import grp
import http.server
import importlib.util
import io
import json
import os
import pathlib
import pwd
import ssl
import stat
import subprocess
import tempfile
import threading
import unittest
from unittest import mock

os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
os.environ["AWS_ACCESS_KEY_ID"] = "testing"
os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"

import boto3  # noqa: E402
import botocore.exceptions  # noqa: E402
from botocore.stub import Stubber  # noqa: E402

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "cloud-init" / "files" / "webstack-aws.py"
TOKEN = "token-123"


class FakeImds(http.server.BaseHTTPRequestHandler):
    def do_PUT(self):
        ok = self.path == "/latest/api/token" and self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        self.reply(200 if ok else 400, TOKEN if ok else "")

    def do_GET(self):
        if self.headers.get("X-aws-ec2-metadata-token") != TOKEN:
            return self.reply(401, "")
        if self.path == "/latest/meta-data/placement/region":
            return self.reply(200, "eu-west-1")
        self.reply(404, "")

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def load_script():
    spec = importlib.util.spec_from_file_location("webstack_aws", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class WithFakeImds:
    """A test class mixin: the stand-in IMDSv2 runs, and the tool (`cls.module`) is loaded against it."""

    @classmethod
    def setUpClass(cls):
        cls.server = http.server.HTTPServer(("127.0.0.1", 0), FakeImds)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = f"http://127.0.0.1:{cls.server.server_port}/"
        cls.module = load_script()
        cls.module.ATTEMPTS = 1

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()


class WebstackAwsTest(WithFakeImds, unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.group = grp.getgrgid(os.getgid()).gr_name
        self.client = boto3.client("ssm", region_name="eu-west-1")
        self.stubber = Stubber(self.client)
        self.acm = boto3.client("acm", region_name="eu-west-1")
        self.acm_stubber = Stubber(self.acm)
        self.regions = []

    def tearDown(self):
        self.dir.cleanup()

    def factory(self, service, region_name):
        self.regions.append(region_name)
        return {"ssm": self.client, "acm": self.acm}[service]

    def manifest(self, entries):
        path = os.path.join(self.dir.name, "manifest.json")
        with open(path, "w") as handle:
            json.dump(entries, handle)
        return path

    def entry(self, parameter, name, mode):
        owner = f"{self.user}:{self.group}"
        return {"parameter": parameter, "path": os.path.join(self.dir.name, "out", name), "mode": mode, "owner": owner}

    def run_main(self, manifest):
        return self.run_args(["webstack-aws", "fetch", manifest])

    def run_args(self, argv):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = self.module.main(argv, client_factory=self.factory)
        return code, stderr.getvalue()

    def test_region_comes_from_imdsv2_with_a_token(self):
        self.assertEqual(self.module.region(), "eu-west-1")

    def test_writes_each_file_with_its_mode_and_never_prints_a_value(self):
        entries = [
            self.entry("/webstack/t/s1/tls-key", "node.key", "0600"),
            self.entry("/webstack/t/s1/tls-key", "mysql/node.key", "0600"),
            self.entry("/webstack/t/s1/tls-cert", "node.crt", "0644"),
        ]
        self.stubber.add_response(
            "get_parameters",
            {
                "Parameters": [
                    {"Name": "/webstack/t/s1/tls-cert", "Value": "CERT-VALUE", "Type": "String"},
                    {"Name": "/webstack/t/s1/tls-key", "Value": "KEY-VALUE", "Type": "SecureString"},
                ],
            },
            {"Names": ["/webstack/t/s1/tls-cert", "/webstack/t/s1/tls-key"], "WithDecryption": True},
        )
        with self.stubber:
            code, stderr = self.run_main(self.manifest(entries))
        self.assertEqual(code, 0)
        self.assertEqual(self.regions, ["eu-west-1"])
        for entry, value in zip(entries, ["KEY-VALUE", "KEY-VALUE", "CERT-VALUE"]):
            self.assertEqual(pathlib.Path(entry["path"]).read_text(), value)
            self.assertEqual(stat.S_IMODE(os.stat(entry["path"]).st_mode), int(entry["mode"], 8))
        self.assertNotIn("KEY-VALUE", stderr)
        self.assertIn("wrote 3 files from 2 parameters", stderr)
        self.assertEqual([n for n in os.listdir(os.path.join(self.dir.name, "out")) if n.startswith(".fetch-")], [])

    def test_a_missing_parameter_fails_naming_it_and_writes_nothing(self):
        entries = [self.entry("/webstack/t/s1/tls-key", "node.key", "0600"), self.entry("/webstack/t/s1/nope", "x", "0600")]
        self.stubber.add_response(
            "get_parameters",
            {
                "Parameters": [{"Name": "/webstack/t/s1/tls-key", "Value": "KEY-VALUE", "Type": "SecureString"}],
                "InvalidParameters": ["/webstack/t/s1/nope"],
            },
        )
        with self.stubber:
            code, stderr = self.run_main(self.manifest(entries))
        self.assertEqual(code, 1)
        self.assertIn("missing parameters: /webstack/t/s1/nope", stderr)
        self.assertFalse(os.path.exists(os.path.join(self.dir.name, "out")))

    def test_more_than_ten_parameters_are_fetched_in_batches(self):
        names = [f"/webstack/t/s1/p{i:02d}" for i in range(12)]
        entries = [self.entry(name, name.rsplit("/", 1)[1], "0600") for name in names]
        for batch in (names[:10], names[10:]):
            self.stubber.add_response(
                "get_parameters",
                {"Parameters": [{"Name": n, "Value": f"v-{n}", "Type": "SecureString"} for n in batch]},
                {"Names": batch, "WithDecryption": True},
            )
        with self.stubber:
            code, _ = self.run_main(self.manifest(entries))
        self.assertEqual(code, 0)
        self.stubber.assert_no_pending_responses()


    def test_put_stores_a_file_as_an_encrypted_parameter_without_printing_it(self):
        source = os.path.join(self.dir.name, "site.pem")
        pathlib.Path(source).write_text("PEM-VALUE")
        self.stubber.add_response(
            "put_parameter",
            {"Version": 2, "Tier": "Standard"},
            {"Name": "/webstack/t/lb/site-pem", "Value": "PEM-VALUE", "Type": "SecureString", "KeyId": "key-1", "Overwrite": True},
        )
        with self.stubber:
            code, stderr = self.run_args(["webstack-aws", "put", "/webstack/t/lb/site-pem", source, "key-1"])
        self.assertEqual(code, 0)
        self.assertEqual(self.regions, ["eu-west-1"])
        self.assertNotIn("PEM-VALUE", stderr)
        self.stubber.assert_no_pending_responses()

    def test_acm_export_writes_certificate_chain_and_the_still_encrypted_key(self):
        passphrase = os.path.join(self.dir.name, "passphrase")
        pathlib.Path(passphrase).write_text("Secret123\n")
        arn = "arn:aws:acm:eu-west-1:123456789012:certificate/abc"
        self.acm_stubber.add_response(
            "export_certificate",
            {"Certificate": "CERT", "CertificateChain": "CHAIN", "PrivateKey": "ENCRYPTED-KEY"},
            {"CertificateArn": arn, "Passphrase": b"Secret123"},
        )
        out = os.path.join(self.dir.name, "acm")
        with self.acm_stubber:
            code, stderr = self.run_args(["webstack-aws", "acm-export", arn, passphrase, out])
        self.assertEqual(code, 0)
        self.assertEqual(pathlib.Path(out, "cert.pem").read_text(), "CERT")
        self.assertEqual(pathlib.Path(out, "chain.pem").read_text(), "CHAIN")
        self.assertEqual(pathlib.Path(out, "key.enc.pem").read_text(), "ENCRYPTED-KEY")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(out, "key.enc.pem")).st_mode), 0o600)
        self.assertNotIn("Secret123", stderr)

    STATS = (
        "# pxname,svname,qcur,scur,status,weight\n"
        "https,FRONTEND,,,OPEN,\n"
        "app,s1,0,0,UP,1\n"
        "app,s2,0,0,DOWN,1\n"
        "app,BACKEND,0,0,UP,1\n"
        "acme,certbot,0,0,no check,1\n"
    )

    def test_backends_up_reads_the_app_backend_from_haproxy_stats(self):
        self.assertEqual(self.module.backends_up(self.STATS), [("s1", True), ("s2", False)])
        self.assertEqual(self.module.backends_up(self.STATS.replace("DOWN", "UP 1/2")), [("s1", True), ("s2", True)])

    def test_replica_status_reads_mariadb_and_mysql_names(self):
        mariadb = "Slave_IO_Running: Yes\n   Slave_SQL_Running: Yes\n Seconds_Behind_Master: 3\n"
        mysql = "Replica_IO_Running: Yes\nReplica_SQL_Running: No\nSeconds_Behind_Source: NULL\n"
        self.assertEqual(self.module.replica_status(mariadb), (True, 3))
        self.assertEqual(self.module.replica_status(mysql), (False, None))
        self.assertEqual(self.module.replica_status(""), (False, None))

    def cloudwatch_expects(self, metric_data):
        client = boto3.client("cloudwatch", region_name="eu-west-1")
        stubber = Stubber(client)
        stubber.add_response("put_metric_data", {}, {"Namespace": "Webstack", "MetricData": metric_data})
        return client, stubber

    REBOOT = {"MetricName": "RebootRequired", "Value": 0, "Unit": "Count"}

    def node_metric(self, node, **fields):
        return {**fields, "Dimensions": [{"Name": "Node", "Value": node}]}

    BACKENDS = [
        {"MetricName": "BackendsUp", "Dimensions": [{"Name": "Node", "Value": "lb"}], "Value": 1, "Unit": "Count"},
        {"MetricName": "BackendUp", "Dimensions": [{"Name": "Node", "Value": "lb"}, {"Name": "Server", "Value": "s1"}], "Value": 1, "Unit": "Count"},
        {"MetricName": "BackendUp", "Dimensions": [{"Name": "Node", "Value": "lb"}, {"Name": "Server", "Value": "s2"}], "Value": 0, "Unit": "Count"},
    ]
    STARTED = 1764547200  # a worker's start time, epoch seconds

    @staticmethod
    def haproxy_metrics(started, dropped):
        """HAProxy's exporter with scope=global, trimmed to the collector's two samples and neighbours;
        None leaves a sample out."""
        samples = [
            ("haproxy_process_uptime_seconds", "How long ago this worker process was started (seconds)", "gauge", 61),
            ("haproxy_process_start_time_seconds", "Start time in seconds", "gauge", started),
            ("haproxy_process_dropped_logs_total", "Total number of dropped logs for current worker process since started",
             "counter", dropped),
            ("haproxy_process_recv_logs_total", "Total number of log messages received by log-forwarding listeners on"
             " this worker process since started", "counter", 0),
        ]
        return "".join(f"# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
                       for name, help, kind, value in samples if value is not None)

    DROPPED_STATE = "/var/lib/webstack/collector/dropped-logs.json"

    def kept(self):
        """The collector's last reading of HAProxy's dropped-log count, or None."""
        path = pathlib.Path(self.dir.name, self.DROPPED_STATE.lstrip("/"))
        return json.loads(path.read_text()) if path.exists() else None

    def collect_on_the_lb(self, metrics, dropped):
        """Runs the LB's collector against HAProxy's metrics text; it must push LogLinesDropped=dropped
        with the rest. Its journal."""
        client, stubber = self.cloudwatch_expects([
            *self.BACKENDS,
            self.node_metric("lb", MetricName="LogLinesDropped", Value=dropped, Unit="Count"),
            self.node_metric("lb", **self.REBOOT),
        ])
        stderr = io.StringIO()
        with stubber, contextlib.redirect_stderr(stderr):
            code = self.module.collect_command("loadbalancer", "lb", None, client, read_stats=lambda: self.STATS,
                                               read_metrics=lambda: metrics, root=self.dir.name)
        self.assertEqual(code, 0)
        stubber.assert_no_pending_responses()
        return stderr.getvalue()

    def test_collect_on_the_lb_reports_backends_up_and_the_log_lines_haproxy_dropped(self):
        journal = self.collect_on_the_lb(self.haproxy_metrics(self.STARTED, 0), 0)
        self.assertIn("collected BackendsUp=1 BackendUp[s1]=1 BackendUp[s2]=0 LogLinesDropped=0 RebootRequired=0\n",
                      journal)
        self.assertEqual(self.kept(), {"started": self.STARTED, "dropped": 0})

    def test_a_first_run_reports_the_workers_whole_count(self):
        """No reading yet: every line the worker dropped since it started is unreported loss."""
        self.collect_on_the_lb(self.haproxy_metrics(self.STARTED, 7), 7)
        self.assertEqual(self.kept(), {"started": self.STARTED, "dropped": 7})

    def test_the_same_worker_reports_what_its_count_grew_by(self):
        self.state(self.DROPPED_STATE, {"started": self.STARTED, "dropped": 7})
        journal = self.collect_on_the_lb(self.haproxy_metrics(self.STARTED, 12), 5)
        self.assertIn(" LogLinesDropped=5 ", journal)
        self.assertEqual(self.kept(), {"started": self.STARTED, "dropped": 12})
        self.collect_on_the_lb(self.haproxy_metrics(self.STARTED, 12), 0)

    def test_a_new_worker_reports_its_whole_count(self):
        """A reload starts a new worker, whose count starts at 0: told by its start time, or by a count
        below the last."""
        for previous, started, dropped in (
            (40, self.STARTED + 600, 3),  # reloaded, fewer than the old worker had
            (3, self.STARTED + 600, 25),  # reloaded, more than the old worker had: not 25 - 3
            (40, self.STARTED, 2),  # the same start time but a lower count (its 32 bits wrapped)
        ):
            with self.subTest(previous=previous, started=started, dropped=dropped):
                self.state(self.DROPPED_STATE, {"started": self.STARTED, "dropped": previous})
                self.collect_on_the_lb(self.haproxy_metrics(started, dropped), dropped)
                self.assertEqual(self.kept(), {"started": started, "dropped": dropped})

    def test_without_the_dropped_log_count_the_rest_is_published_the_reading_kept_and_the_run_fails(self):
        self.state(self.DROPPED_STATE, {"started": self.STARTED, "dropped": 7})
        for metrics in (self.haproxy_metrics(self.STARTED, None), self.haproxy_metrics(None, 9)):
            client, stubber = self.cloudwatch_expects([*self.BACKENDS, self.node_metric("lb", **self.REBOOT)])
            stderr = io.StringIO()
            with stubber, contextlib.redirect_stderr(stderr):
                code = self.module.collect_command("loadbalancer", "lb", None, client, read_stats=lambda: self.STATS,
                                                   read_metrics=lambda metrics=metrics: metrics, root=self.dir.name)
            self.assertEqual(code, 1)
            stubber.assert_no_pending_responses()
            self.assertRegex(stderr.getvalue(), r"HAProxy's dropped log lines: ValueError: 0 haproxy_process_\w+ samples")
            self.assertIn("collected BackendsUp=1 BackendUp[s1]=1 BackendUp[s2]=0 RebootRequired=0\n", stderr.getvalue())
            self.assertEqual(self.kept(), {"started": self.STARTED, "dropped": 7})

    def test_a_failed_push_keeps_the_previous_reading_so_the_next_run_counts_those_lines(self):
        self.state(self.DROPPED_STATE, {"started": self.STARTED, "dropped": 7})
        client = boto3.client("cloudwatch", region_name="eu-west-1")
        stubber = Stubber(client)
        stubber.add_client_error("put_metric_data", "AccessDenied", "not authorized")
        with stubber, contextlib.redirect_stderr(io.StringIO()), self.assertRaises(botocore.exceptions.ClientError):
            self.module.collect_command("loadbalancer", "lb", None, client, read_stats=lambda: self.STATS,
                                        read_metrics=lambda: self.haproxy_metrics(self.STARTED, 12), root=self.dir.name)
        self.assertEqual(self.kept(), {"started": self.STARTED, "dropped": 7})
        self.collect_on_the_lb(self.haproxy_metrics(self.STARTED, 12), 5)

    def test_a_reading_it_cannot_keep_is_named_after_the_push_and_fails_the_run(self):
        def refuse(path, value):
            raise OSError(30, "Read-only file system", path)

        save, self.module.save_state = self.module.save_state, refuse
        try:
            client, stubber = self.cloudwatch_expects([
                *self.BACKENDS,
                self.node_metric("lb", MetricName="LogLinesDropped", Value=7, Unit="Count"),
                self.node_metric("lb", **self.REBOOT),
            ])
            stderr = io.StringIO()
            with stubber, contextlib.redirect_stderr(stderr):
                code = self.module.collect_command("loadbalancer", "lb", None, client, read_stats=lambda: self.STATS,
                                                   read_metrics=lambda: self.haproxy_metrics(self.STARTED, 7),
                                                   root=self.dir.name)
        finally:
            self.module.save_state = save
        self.assertEqual(code, 1)
        stubber.assert_no_pending_responses()
        self.assertIn(f"keeping {self.dir.name}{self.DROPPED_STATE}: OSError: [Errno 30] Read-only file system",
                      stderr.getvalue())

    def test_a_broken_reading_counts_as_a_first_run_and_is_replaced(self):
        for broken in ("{not json", [7], {"started": self.STARTED}):
            with self.subTest(broken=broken):
                self.state(self.DROPPED_STATE, broken)
                journal = self.collect_on_the_lb(self.haproxy_metrics(self.STARTED, 12), 12)
                self.assertIn(f"{self.DROPPED_STATE}: ", journal)
                self.assertIn("counting as a first run", journal)
                self.assertEqual(self.kept(), {"started": self.STARTED, "dropped": 12})

    def test_a_prometheus_value_is_its_one_unlabelled_sample_a_finite_count(self):
        value = self.module.prometheus_value
        name = "haproxy_process_dropped_logs_total"
        self.assertEqual(value(self.haproxy_metrics(self.STARTED, 12), name), 12)
        self.assertEqual(value(f"{name} 1.5e3\n", name), 1500)
        self.assertEqual(value(f"{name} 12.5 1764547200000\n", name), 12.5)  # with a timestamp
        for wrong in ("", f"# TYPE {name} counter\n", f"{name}_x 3\n", f"{name} 3\n{name} 4\n",
                      f'{name}{{desc="x"}} 3\n', f"{name}\n", f"{name} NaN\n", f"{name} -1\n", f"{name} +Inf\n",
                      f"{name} many\n", f"{name} 3 4 5\n"):
            with self.subTest(text=wrong):
                with self.assertRaises(ValueError):
                    value(wrong, name)

    def test_the_reading_is_kept_where_the_collectors_sandbox_lets_it_write(self):
        unit = (SCRIPT.parent / "webstack-collector.service").read_text()
        directories = [line.partition("=")[2] for line in unit.splitlines() if line.startswith("StateDirectory=")]
        self.assertEqual(directories, ["webstack/collector"])
        self.assertEqual(os.path.dirname(self.module.DROPPED_LOGS_STATE), "/var/lib/" + directories[0])
        self.assertEqual(self.DROPPED_STATE, self.module.DROPPED_LOGS_STATE)

    def test_collect_on_the_replica_reports_database_replication_and_lag(self):
        outputs = {"SELECT 1": "1\n", "SHOW REPLICA STATUS\\G": "Slave_IO_Running: Yes\nSlave_SQL_Running: Yes\nSeconds_Behind_Master: 0\n"}
        calls = []

        def run(argv, **_):
            calls.append(argv)
            return subprocess.CompletedProcess(argv, 0, outputs[argv[-1]], "")

        node = [{"Name": "Node", "Value": "s1"}]
        client, stubber = self.cloudwatch_expects([
            {"MetricName": "DatabaseUp", "Dimensions": node, "Value": 1, "Unit": "Count"},
            {"MetricName": "ReplicaRunning", "Dimensions": node, "Value": 1, "Unit": "Count"},
            {"MetricName": "ReplicaLagSeconds", "Dimensions": node, "Value": 0, "Unit": "Seconds"},
            self.node_metric("s1", **self.REBOOT),
        ])
        stderr = io.StringIO()
        with stubber, contextlib.redirect_stderr(stderr):
            self.module.collect_command("replica", "s1", "mariadb", client, run=run, root=self.dir.name)
        self.assertEqual(calls[0][:3], ["mariadb", "--protocol=socket", "--user=root"])
        stubber.assert_no_pending_responses()
        # What it read, in its journal (the lab's proof that its sandbox lets it ask the database).
        self.assertIn("webstack-aws: collected DatabaseUp=1 ReplicaRunning=1 ReplicaLagSeconds=0 RebootRequired=0\n", stderr.getvalue())

    def test_collect_reports_a_database_that_does_not_answer(self):
        run = lambda argv, **_: subprocess.CompletedProcess(argv, 1, "", "ERROR 2002")  # noqa: E731
        node = [{"Name": "Node", "Value": "s1"}]
        client, stubber = self.cloudwatch_expects([
            {"MetricName": "DatabaseUp", "Dimensions": node, "Value": 0, "Unit": "Count"},
            {"MetricName": "ReplicaRunning", "Dimensions": node, "Value": 0, "Unit": "Count"},
            self.node_metric("s1", **self.REBOOT),
        ])
        with stubber:
            self.module.collect_command("replica", "s1", "mariadb", client, run=run, root=self.dir.name)
        stubber.assert_no_pending_responses()

    GALERA_QUERY = ("SHOW GLOBAL STATUS WHERE Variable_name IN"
                    " ('wsrep_cluster_size', 'wsrep_ready', 'wsrep_local_state_comment', 'wsrep_cluster_status')")

    @staticmethod
    def galera_answer(size, ready, state, status):
        """SHOW GLOBAL STATUS's rows as the client prints them with --batch --skip-column-names."""
        rows = [("wsrep_cluster_size", size), ("wsrep_cluster_status", status),
                ("wsrep_local_state_comment", state), ("wsrep_ready", ready)]
        return "".join(f"{name}\t{value}\n" for name, value in rows)

    def test_galera_status_reads_the_cluster_size_and_readiness(self):
        status = self.module.galera_status
        self.assertEqual(status(self.galera_answer(3, "ON", "Synced", "Primary")), (3, True))
        # Each of the three alone makes a member not ready: a donor (Desynced), one cut off, one not ready.
        self.assertEqual(status(self.galera_answer(3, "ON", "Donor/Desynced", "Primary")), (3, False))
        self.assertEqual(status(self.galera_answer(1, "ON", "Synced", "non-Primary")), (1, False))
        self.assertEqual(status(self.galera_answer(2, "OFF", "Synced", "Primary")), (2, False))
        # A server without the wsrep variables (no provider loaded) says nothing of a cluster.
        self.assertEqual(status(""), (None, False))

    def collect_on_a_member(self, answers, expected):
        """Runs the collector as a Galera member (s1) against scripted client answers; the calls made."""
        calls = []

        def run(argv, **_):
            calls.append(argv)
            if argv[-1] not in answers:
                return subprocess.CompletedProcess(argv, 1, "", "ERROR 2002 (HY000): Can't connect")
            return subprocess.CompletedProcess(argv, 0, answers[argv[-1]], "")

        client, stubber = self.cloudwatch_expects([
            *[self.node_metric("s1", MetricName=name, Value=value, Unit="Count") for name, value in expected],
            self.node_metric("s1", **self.REBOOT),
        ])
        stderr = io.StringIO()
        with stubber, contextlib.redirect_stderr(stderr):
            code = self.module.collect_command("member", "s1", "mariadb", client, run=run, root=self.dir.name)
        self.assertEqual(code, 0)
        stubber.assert_no_pending_responses()
        shown = " ".join(f"{name}={value}" for name, value in expected)
        self.assertIn(f"webstack-aws: collected {shown} RebootRequired=0\n", stderr.getvalue())
        return calls

    def test_collect_on_a_galera_member_reports_its_cluster_in_one_query_and_no_replication(self):
        calls = self.collect_on_a_member(
            {"SELECT 1": "1\n", self.GALERA_QUERY: self.galera_answer(3, "ON", "Synced", "Primary")},
            [("DatabaseUp", 1), ("GaleraReady", 1), ("GaleraClusterSize", 3)],
        )
        self.assertEqual(calls[1], ["mariadb", "--protocol=socket", "--user=root", "--batch", "--skip-column-names",
                                    "--execute", self.GALERA_QUERY])
        self.assertEqual(len(calls), 2)

    def test_a_member_outside_the_primary_component_is_not_ready(self):
        self.collect_on_a_member(
            {"SELECT 1": "1\n", self.GALERA_QUERY: self.galera_answer(1, "OFF", "Initialized", "non-Primary")},
            [("DatabaseUp", 1), ("GaleraReady", 0), ("GaleraClusterSize", 1)],
        )

    def test_a_member_whose_server_does_not_answer_is_not_ready_and_its_cluster_size_unknown(self):
        calls = self.collect_on_a_member({}, [("DatabaseUp", 0), ("GaleraReady", 0)])
        self.assertEqual([argv[-1] for argv in calls], ["SELECT 1"])

    def certificate(self, at, days, key_first=False):
        """A self-signed certificate for `days` at root-relative `at` (with its key, as a site PEM holds
        it); its notAfter as Python's own decoder reads it, in epoch seconds."""
        target = os.path.join(self.dir.name, at.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-days", str(days), "-subj", "/CN=test", "-keyout", target + ".key", "-out", target + ".crt"],
                       check=True, capture_output=True)
        parts = [target + ".key", target + ".crt"] if key_first else [target + ".crt", target + ".key"]
        with open(target, "w") as handle:
            handle.write("".join(pathlib.Path(p).read_text() for p in parts))
        return ssl.cert_time_to_seconds(ssl._ssl._test_decode_cert(target + ".crt")["notAfter"])

    def state(self, at, value):
        target = os.path.join(self.dir.name, at.lstrip("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "w") as handle:
            handle.write(value if isinstance(value, str) else json.dumps(value))

    def test_collect_reports_a_pending_reboot_each_certificates_days_left_and_each_state_files_age(self):
        not_after = self.certificate("/etc/haproxy/certs/site.pem", 30, key_first=True)
        self.certificate("/etc/webstack/tls/node.crt", 400)
        now = not_after - 20.5 * 86400
        self.state("/run/reboot-required", "*** System restart required ***\n")
        self.state("/var/lib/webstack/backup/full.json", {"finished": now - 3600, "key": "backups/full/x"})
        # No binlog state yet: counted from the node's first apply, 500 s ago.
        self.state("/var/lib/webstack/bundle/first-apply.done", "")
        first_apply = os.path.join(self.dir.name, "var/lib/webstack/bundle/first-apply.done")
        os.utime(first_apply, (now - 500, now - 500))
        # A node the backups reached after its first apply counts from their settings' arrival.
        self.state("/etc/webstack/backup.env", "NODE=s1\n")
        backups_arrived = os.path.join(self.dir.name, "etc/webstack/backup.env")
        os.utime(backups_arrived, (now - 400, now - 400))
        node = lambda **fields: self.node_metric("s1", **fields)  # noqa: E731
        certificate = lambda name, days: {  # noqa: E731
            "MetricName": "CertificateDaysLeft", "Value": days, "Unit": "None",
            "Dimensions": [{"Name": "Node", "Value": "s1"}, {"Name": "Certificate", "Value": name}]}
        run_sql = lambda argv, **_: subprocess.CompletedProcess(argv, 0, "1\n", "")  # noqa: E731
        run = lambda argv, **kw: run_sql(argv) if argv[0] == "mariadb" else subprocess.run(argv, **kw)  # noqa: E731
        client, stubber = self.cloudwatch_expects([
            node(MetricName="DatabaseUp", Value=1, Unit="Count"),
            node(MetricName="BackupAgeSeconds", Value=3600, Unit="Seconds"),
            node(MetricName="BinlogShipAgeSeconds", Value=400, Unit="Seconds"),
            node(MetricName="RebootRequired", Value=1, Unit="Count"),
            certificate("public", 20.5),
            certificate("node", 400 - 30 + 20.5),
        ])
        stderr = io.StringIO()
        with stubber, contextlib.redirect_stderr(stderr):
            code = self.module.collect_command(
                "primary", "s1", "mariadb", client, run=run, root=self.dir.name, now=lambda: now,
                certificates=[("public", "/etc/haproxy/certs/site.pem"), ("node", "/etc/webstack/tls/node.crt")],
                ages=[("BackupAgeSeconds", "/var/lib/webstack/backup/full.json", "finished"),
                      ("BinlogShipAgeSeconds", "/var/lib/webstack/backup/binlog.json", "shipped")],
            )
        self.assertEqual(code, 0)
        stubber.assert_no_pending_responses()
        self.assertIn("no /var/lib/webstack/backup/binlog.json: counting from this node's first apply", stderr.getvalue())
        self.assertIn(
            "collected DatabaseUp=1 BackupAgeSeconds=3600 BinlogShipAgeSeconds=400 RebootRequired=1"
            " CertificateDaysLeft[public]=20.5 CertificateDaysLeft[node]=390.5\n",
            stderr.getvalue(),
        )

    def test_collect_on_a_client_asks_no_database_and_reports_the_rest(self):
        """An app node of a `database: rds` stack: its database is RDS's, nothing to run for it."""
        not_after = self.certificate("/etc/webstack/tls/node.crt", 90)
        now = not_after - 89 * 86400
        ran = []
        run = lambda argv, **kw: ran.append(argv) or subprocess.run(argv, **kw)  # noqa: E731
        client, stubber = self.cloudwatch_expects([
            self.node_metric("s1", **self.REBOOT),
            {"MetricName": "CertificateDaysLeft", "Value": 89.0, "Unit": "None",
             "Dimensions": [{"Name": "Node", "Value": "s1"}, {"Name": "Certificate", "Value": "node"}]},
        ])
        stderr = io.StringIO()
        with stubber, contextlib.redirect_stderr(stderr):
            code = self.module.collect_command("client", "s1", None, client, run=run, root=self.dir.name,
                                               now=lambda: now, certificates=[("node", "/etc/webstack/tls/node.crt")])
        self.assertEqual(code, 0)
        stubber.assert_no_pending_responses()
        self.assertEqual([argv[0] for argv in ran], ["openssl"])
        self.assertIn("collected RebootRequired=0 CertificateDaysLeft[node]=89.0\n", stderr.getvalue())

    def test_what_cannot_be_read_is_left_out_and_named_the_rest_is_published_and_the_run_fails(self):
        self.state("/var/lib/webstack/backup/full.json", "{not json")
        run = lambda argv, **kw: subprocess.run(argv, **kw)  # noqa: E731
        client, stubber = self.cloudwatch_expects([self.node_metric("lb", **self.REBOOT)])
        stderr = io.StringIO()
        with stubber, contextlib.redirect_stderr(stderr):
            code = self.module.collect_command(
                "loadbalancer", "lb", None, client, run=run, root=self.dir.name,
                read_stats=lambda: (_ for _ in ()).throw(ConnectionRefusedError(111, "Connection refused")),
                read_metrics=lambda: (_ for _ in ()).throw(ConnectionRefusedError(111, "Connection refused")),
                certificates=[("public", "/etc/haproxy/certs/site.pem")],
                ages=[("BackupAgeSeconds", "/var/lib/webstack/backup/full.json", "finished")],
            )
        self.assertEqual(code, 1)
        stubber.assert_no_pending_responses()
        log = stderr.getvalue()
        self.assertIn("HAProxy's stats: ConnectionRefusedError:", log)
        self.assertIn("HAProxy's dropped log lines: ConnectionRefusedError:", log)
        self.assertIn("BackupAgeSeconds (/var/lib/webstack/backup/full.json): JSONDecodeError:", log)
        self.assertIn("the public certificate (/etc/haproxy/certs/site.pem): ValueError: openssl cannot read a certificate in", log)
        self.assertIn("collected RebootRequired=0\n", log)

    def test_a_state_file_without_its_field_or_a_missing_first_apply_is_an_error_not_an_age(self):
        self.state("/var/lib/webstack/backup/full.json", {"key": "backups/full/x"})
        with contextlib.redirect_stderr(io.StringIO()):
            with self.assertRaises(KeyError):
                self.module.age_seconds("/var/lib/webstack/backup/full.json", "finished", 0, self.dir.name)
            with self.assertRaises(FileNotFoundError):
                self.module.age_seconds("/var/lib/webstack/backup/binlog.json", "shipped", 0, self.dir.name)

    def test_collects_arguments_certificates_and_ages_any_number_of_times(self):
        parse = self.module.collect_arguments
        self.assertEqual(parse(["loadbalancer", "lb"]), ("loadbalancer", "lb", None, [], [], None))
        self.assertEqual(parse(["client", "s1", "--certificate", "node=/etc/webstack/tls/node.crt"]),
                         ("client", "s1", None, [("node", "/etc/webstack/tls/node.crt")], [], None))
        self.assertEqual(
            parse(["replica", "s1", "mariadb", "--certificate", "node=/etc/webstack/tls/node.crt",
                   "--age", "BackupAgeSeconds=/var/lib/webstack/backup/full.json:finished",
                   "--certificate", "database=/etc/mysql/webstack/node.crt"]),
            ("replica", "s1", "mariadb",
             [("node", "/etc/webstack/tls/node.crt"), ("database", "/etc/mysql/webstack/node.crt")],
             [("BackupAgeSeconds", "/var/lib/webstack/backup/full.json", "finished")], None),
        )
        self.assertEqual(parse(["member", "s2", "mariadb"]), ("member", "s2", "mariadb", [], [], None))
        self.assertEqual(parse(["loadbalancer", "lb", "--every", "60"]), ("loadbalancer", "lb", None, [], [], 60))
        for wrong in (
            ["loadbalancer", "lb", "mariadb"],
            ["member", "s2"],
            ["client", "s1", "mariadb"],
            ["primary", "s2"],
            ["primary", "s2", "mariadb", "--certificate", "node=relative/node.crt"],
            ["primary", "s2", "mariadb", "--certificate"],
            ["primary", "s2", "mariadb", "--age", "BackupAgeSeconds=/var/lib/webstack/backup/full.json"],
            ["primary", "s2", "mariadb", "--age", "=/state.json:finished"],
            ["primary", "s2", "mariadb", "--verbose"],
            ["loadbalancer", "lb", "--every"],
            ["loadbalancer", "lb", "--every", "0"],
            ["loadbalancer", "lb", "--every", "1m"],
            ["loadbalancer", "lb", "--every", "60", "--every", "60"],
        ):
            self.assertIsNone(parse(wrong), wrong)
        code, stderr = self.run_args(["webstack-aws", "collect", "primary", "s2", "mariadb", "--age", "x"])
        self.assertEqual(code, 2)
        self.assertIn("[--age METRIC=STATE.json:FIELD]...", stderr)

    def collecting_every_60_s(self, codes, during_sleep=None):
        """main() with `collect loadbalancer lb --every 60`, each run's code from `codes` (then 0): the
        clients it was given, the sleeps, its code and journal. during_sleep: {n: what the nth sleep does}."""
        clock, sleeps, clients, codes = [1000.0], [], [], iter(codes)

        def sleep(seconds):
            sleeps.append(seconds)
            clock[0] += seconds
            (during_sleep or {}).get(len(sleeps), lambda: None)()

        def collect_command(role, node, db_client, client, **_):
            clients.append(client)
            clock[0] += 2  # a run takes 2 s
            return next(codes, 0)

        made = []
        factory = lambda service, region_name: made.append(service) or object()  # noqa: E731
        stderr = io.StringIO()
        module = self.module
        with contextlib.redirect_stderr(stderr), mock.patch.object(module, "collect_command", collect_command), \
                mock.patch.object(module.time, "monotonic", lambda: clock[0]), \
                mock.patch.object(module.time, "sleep", sleep), mock.patch.object(module, "TOOL", "/tool"):
            code = module.main(["webstack-aws", "collect", "loadbalancer", "lb", "--every", "60"], factory,
                               root=self.dir.name)
        self.assertEqual(made, ["cloudwatch"])  # one client, made once
        self.assertEqual(len(set(map(id, clients))), 1)
        return clients, sleeps, code, stderr.getvalue()

    def test_the_collector_runs_every_60_s_from_the_start_of_the_run_before_for_an_hour(self):
        clients, sleeps, code, journal = self.collecting_every_60_s([])
        self.assertEqual(code, 0, journal)
        self.assertEqual(len(clients), 61)  # at 0, 60, ... 3600 s
        self.assertEqual(sleeps, [58] * 60)  # each run took 2 s
        self.assertIn("collected for 60 min; ending", journal)

    def test_a_run_that_failed_ends_the_collector_with_1(self):
        clients, sleeps, code, journal = self.collecting_every_60_s([0, 0, 1])
        self.assertEqual((code, len(clients), sleeps), (1, 3, [58, 58]))

    def test_without_every_collect_runs_once_and_ends_with_the_runs_code(self):
        runs = []
        collect = lambda *args, **_: runs.append(args) or 1  # noqa: E731
        stderr = io.StringIO()
        with mock.patch.object(self.module, "collect_command", collect), contextlib.redirect_stderr(stderr), \
                mock.patch.object(self.module.time, "sleep", lambda _: self.fail("slept")):
            code = self.module.main(["webstack-aws", "collect", "loadbalancer", "lb"], lambda *_, **__: object())
        self.assertEqual((code, len(runs)), (1, 1), stderr.getvalue())

    def test_a_tool_replaced_by_an_apply_ends_the_collector_after_its_run(self):
        tool = pathlib.Path(self.dir.name, "tool")
        tool.write_text("the collector's tool\n")

        def replaced():
            pathlib.Path(self.dir.name, "tool.new").write_text("a newer tool\n")
            os.replace(pathlib.Path(self.dir.name, "tool.new"), tool)

        clients, sleeps, code, journal = self.collecting_every_60_s([], during_sleep={2: replaced})
        self.assertEqual((code, len(clients), sleeps), (0, 3, [58, 58]))
        self.assertIn("the tool was replaced", journal)

    def test_boot_status_reports_a_failed_boot(self):
        for code, failed in ((0, 0), (1, 1), (2, 0)):
            run = lambda argv, code=code, **_: subprocess.CompletedProcess(argv, code, "status: x", "")  # noqa: E731
            client, stubber = self.cloudwatch_expects([
                {"MetricName": "BootFailed", "Dimensions": [{"Name": "Node", "Value": "lb"}], "Value": failed, "Unit": "Count"},
            ])
            with stubber, contextlib.redirect_stderr(io.StringIO()):
                self.module.boot_status_command("lb", client, run=run)
            stubber.assert_no_pending_responses()

    def test_a_refusal_is_not_retried_and_ends_the_command(self):
        self.module.ATTEMPTS = 3
        try:
            entries = [self.entry("/webstack/t/s2/tls-key", "x", "0600")]
            self.stubber.add_client_error("get_parameters", "AccessDeniedException", "not authorized")
            with self.stubber:
                code, stderr = self.run_main(self.manifest(entries))
            self.assertEqual(code, 1)
            self.assertIn("AccessDeniedException: not authorized", stderr)
            self.assertNotIn("retrying", stderr)
        finally:
            self.module.ATTEMPTS = 1

    def test_throttling_is_retried(self):
        self.module.ATTEMPTS = 2
        sleep, self.module.time.sleep = self.module.time.sleep, lambda _: None
        try:
            self.stubber.add_client_error("get_parameters", "ThrottlingException", "slow down")
            self.stubber.add_response("get_parameters", {"Parameters": [{"Name": "/p", "Value": "v", "Type": "String"}]})
            with self.stubber:
                code, stderr = self.run_main(self.manifest([self.entry("/p", "p", "0600")]))
            self.assertEqual(code, 0)
            self.assertIn("retrying", stderr)
        finally:
            self.module.ATTEMPTS = 1
            self.module.time.sleep = sleep

    def test_a_wrong_command_line_is_a_usage_error(self):
        code, stderr = self.run_args(["webstack-aws", "fetch"])
        self.assertEqual(code, 2)
        self.assertIn("usage: webstack-aws", stderr)


class Terminal(io.StringIO):
    def isatty(self):
        return True


class RdsTest(WithFakeImds, unittest.TestCase):
    """`database: rds`: the RDS CA bundle a node fetches, and the master user's options s2 pipes to
    its database client."""

    SECRET = "rds!db-0123"  # the secret's name, as the bundle carries it (an ARN works alike)
    URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)
        self.path = os.path.join(self.dir.name, "tls", "rds-ca.pem")
        self.secrets = boto3.client("secretsmanager", region_name="eu-west-1")
        self.stubber = Stubber(self.secrets)

    ROOT = "Amazon RDS eu-west-1 Root CA RSA2048 G1"  # rds-ca-rsa2048-g1's in the fake IMDS's region

    def certificate(self, subject):
        key = os.path.join(self.dir.name, "ca.key")
        return subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-days", "30", "-subj", subject, "-keyout", key],
            check=True, capture_output=True, text=True).stdout

    def certificates(self, count, root=ROOT):
        """count certificates of other RDS CAs, then the given root's, as Amazon names its subjects."""
        names = [f"Amazon RDS us-east-{n + 1} Root CA RSA2048 G1" for n in range(count)] + ([root] if root else [])
        return "".join(self.certificate(f"/C=US/O=Amazon Web Services, Inc./OU=Amazon RDS/ST=WA/CN={name}/L=Seattle")
                       for name in names)

    def fetch(self, body, url=URL, ca="rds-ca-rsa2048-g1"):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = self.module.rds_ca_command(url, self.path, ca, read=lambda: body)
        return code, stderr.getvalue()

    def test_the_bundle_is_written_readable_by_all_when_it_holds_certificates_only_with_the_regions_root(self):
        bundle = self.certificates(2)
        code, stderr = self.fetch(bundle.encode())
        self.assertEqual(code, 0)
        self.assertEqual(pathlib.Path(self.path).read_text(), bundle)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o644)
        self.assertIn(f"wrote 3 certificates from {self.URL} to {self.path}, {self.ROOT!r} among them", stderr)

    def test_a_bundle_without_the_root_of_the_instances_ca_for_the_nodes_region_is_refused(self):
        for bundle in (self.certificates(2, root=None),
                       self.certificates(1, root="Amazon RDS eu-west-1 Root CA RSA4096 G1"),
                       self.certificates(1, root="Amazon RDS eu-west-1 Root CA RSA2048 G1 (test)"),
                       self.certificate(f"/O={self.ROOT}/CN=someone else")):
            code, stderr = self.fetch(bundle.encode())
            self.assertEqual(code, 1, bundle)
            self.assertIn(f"is {self.ROOT!r} (rds-ca-rsa2048-g1's root CA here): nothing written", stderr)
            self.assertFalse(os.path.exists(self.path))
        # Another CA identifier asks for its own root.
        code, stderr = self.fetch(self.certificates(1).encode(), ca="rds-ca-ecc384-g1")
        self.assertEqual(code, 1)
        self.assertIn("'Amazon RDS eu-west-1 Root CA ECC384 G1'", stderr)
        self.assertEqual(self.fetch(self.certificates(1).encode(), ca="rds-ca-2019")[0], 1)

    def test_a_block_openssl_cannot_read_as_a_certificate_is_refused(self):
        not_a_certificate = "-----BEGIN CERTIFICATE-----\n" + base64.b64encode(b"\x30\x03\x02\x01\x01").decode() + \
            "\n-----END CERTIFICATE-----\n"
        code, stderr = self.fetch((self.certificates(1) + not_a_certificate).encode())
        self.assertEqual(code, 1)
        self.assertIn("openssl cannot read a certificate of the bundle", stderr)
        self.assertFalse(os.path.exists(self.path))

    def test_anything_but_certificates_is_refused_and_nothing_written(self):
        for body in (b"<html>503 Service Unavailable</html>", b"",
                     self.certificates(1).encode() + b"<html>",
                     b"-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n",
                     "-----BEGIN CERTIFICATE-----\nü\n-----END CERTIFICATE-----\n".encode()):
            code, stderr = self.fetch(body)
            self.assertEqual(code, 1, body)
            self.assertIn(self.URL, stderr)
            self.assertFalse(os.path.exists(self.path), body)

    def test_only_https_and_a_failed_fetch_is_retried_then_fails(self):
        self.assertEqual(self.fetch(b"", url="http://truststore.pki.rds.amazonaws.com/x.pem")[0], 2)
        attempts = []
        def unreachable():
            attempts.append(1)
            raise OSError("no route to host")
        self.module.ATTEMPTS = 2
        sleep, self.module.time.sleep = self.module.time.sleep, lambda _: None
        try:
            with contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(self.module.rds_ca_command(self.URL, self.path, "rds-ca-rsa2048-g1", read=unreachable), 1)
        finally:
            self.module.ATTEMPTS = 1
            self.module.time.sleep = sleep
        self.assertEqual(len(attempts), 2)
        self.assertFalse(os.path.exists(self.path))

    def options(self, secret, out=None):
        self.stubber.add_response("get_secret_value", {"ARN": f"arn:aws:secretsmanager:eu-west-1:123456789012:secret:{self.SECRET}-abcdef",
                                                     "Name": self.SECRET, "SecretString": json.dumps(secret)},
                                  {"SecretId": self.SECRET})
        out = out if out is not None else io.StringIO()
        stderr = io.StringIO()
        with self.stubber, contextlib.redirect_stderr(stderr):
            code = self.module.db_admin_options(self.SECRET, self.secrets, out=out)
        return code, out.getvalue(), stderr.getvalue()

    def test_the_master_users_options_go_to_the_pipe_quoted_never_to_stderr(self):
        code, out, stderr = self.options({"username": "webstack_admin", "password": "a#b\\c'd$e"})
        self.assertEqual(code, 0)
        self.assertEqual(out, '[client]\nuser="webstack_admin"\npassword="a#b\\\\c\'d$e"\n')
        self.assertNotIn("a#b", stderr)

    def test_a_password_an_option_file_cannot_carry_is_refused_unshown(self):
        code, out, stderr = self.options({"username": "webstack_admin", "password": 'pw"0\nrest'})
        self.assertEqual((code, out), (1, ""))
        self.assertIn("the password holds a quote or a line break", stderr)
        self.assertNotIn("pw", stderr)

    def test_never_on_a_terminal(self):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            code = self.module.db_admin_options(self.SECRET, self.secrets, out=Terminal())
        self.assertEqual(code, 2)
        self.assertIn("refusing", stderr.getvalue())

    def test_the_command_line_asks_secrets_manager_in_the_nodes_region(self):
        asked = []
        def factory(service, region_name):
            asked.append((service, region_name))
            return self.secrets
        self.stubber.add_client_error("get_secret_value", "AccessDeniedException", "not authorized")
        stderr = io.StringIO()
        with self.stubber, contextlib.redirect_stderr(stderr):
            code = self.module.main(["webstack-aws", "db-admin-options", self.SECRET], client_factory=factory)
        self.assertEqual((code, asked), (1, [("secretsmanager", "eu-west-1")]))
        self.assertIn("AccessDeniedException: not authorized", stderr.getvalue())


if __name__ == "__main__":
    unittest.main()
