"""The demo app (app/app.py): its database handling, against a scripted stand-in for pymysql,
and its HTTP answers (methods, routes, errors).

Run by tests/app.test.ts with the app's app.py (APP_PY, a file) and each node's
database targets and database wait as rendered (NODES, JSON: node -> {"primary": ..., "replica": ...,
"db_wait": ...}) and the proxies' timeouts as rendered. Prints one
JSON object, {test name: null or the failure}. Time is a fake clock: timeouts advance it.
"""
import importlib.util
import io
import json
import os
import sys
import types
import unittest

APP_PY = os.environ["APP_PY"]
# The release Gunicorn names in the environment (its config): every answer carries it.
RELEASE = "ab" * 32
NODES = json.loads(os.environ["NODES"])
# The rendered timeouts: HAProxy's server timeout, Nginx's read timeout, the app's database wait.
LB_SERVER_TIMEOUT_S = float(os.environ["LB_SERVER_TIMEOUT_S"])
NGINX_READ_TIMEOUT_S = float(os.environ["NGINX_READ_TIMEOUT_S"])
# A cut link may stall a client 3 s at most (the lab's fault test), detection and retry included:
# a silent replica may take this much of it.
SILENT_REPLICA_BUDGET_S = 1.0


class Error(Exception):
    pass


class OperationalError(Error):
    pass


class IntegrityError(Error):
    pass


class Clock:
    def __init__(self):
        self.now = 1000.0

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class Server:
    """One database server as a node's app sees it: up, refusing connections, or silent (a cut link).

    A restart invalidates every connection opened before it. INSERTs land in a table shared by
    all servers (replication is instant here); `attempts` counts INSERTs that reached the server.
    """

    def __init__(self, lab, target):
        self.lab, self.target = lab, target
        self.state = "up"
        self.up_at = None  # refusing until the clock reaches this
        self.generation = 0
        # A Galera member's wsrep_ready: OFF outside the primary component.
        self.ready = "ON"
        self.connects = 0
        self.connect_args = []
        self.statements = []
        self.attempts = 0
        self.fail_next = []
        # Errors raised after the next INSERTs were applied (an answer lost on its way back).
        self.lose_answer_next = []
        # A schema from before the idempotency keys (the primary's upgrade not run yet).
        self.keys = True

    def available(self):
        if self.up_at is not None and self.lab.clock.now >= self.up_at:
            self.state, self.up_at = "up", None
        return self.state

    def restart(self):
        self.generation += 1


class Connection:
    def __init__(self, server, args):
        self.server, self.args = server, args
        self.generation = server.generation
        self.closed = False

    def check(self):
        if self.closed:
            raise Error("Already closed")
        state = self.server.available()
        if state == "silent":
            self.server.lab.clock.now += self.args["read_timeout"]
            # As pymysql raises it: while handling the socket's timeout.
            try:
                raise TimeoutError("timed out")
            except TimeoutError:
                raise OperationalError(2013, "Lost connection to MySQL server during query (timed out)")
        if state == "down" or self.generation != self.server.generation:
            raise OperationalError(2013, "Lost connection to MySQL server during query")

    def ping(self, reconnect=True):
        assert reconnect is False, "the app replaces stale connections itself"
        self.check()

    def cursor(self):
        return Cursor(self)

    def close(self):
        self.closed = True


class Cursor:
    def __init__(self, connection):
        self.connection = connection
        self.lastrowid, self.rows = 0, ()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def execute(self, statement, args=()):
        self.connection.check()
        server, table = self.connection.server, self.connection.server.lab.table
        if statement.startswith("INSERT"):
            server.attempts += 1
        if server.fail_next:
            code = server.fail_next.pop(0)
            if isinstance(code, tuple):  # (code, seconds waited for it)
                code, waited = code
                server.lab.clock.now += waited
            raise OperationalError(code, "scripted")
        server.statements.append(statement.split()[0])
        keyed = "idempotency_key" in statement
        if keyed and not server.keys:
            raise OperationalError(1054, "Unknown column 'idempotency_key' in 'INSERT INTO'")
        if statement.startswith("INSERT"):
            key = args[2] if keyed else None
            if key is not None and any(row[4] == key for row in table):
                raise IntegrityError(1062, f"Duplicate entry '{key}' for key 'items_idempotency_key'")
            table.append((len(table) + 1, args[0], args[1], "2026-11-25 12:00:00", key))
            self.lastrowid = len(table)
            if server.lose_answer_next:
                raise OperationalError(server.lose_answer_next.pop(0), "Lost connection to MySQL server during query")
        elif "WHERE idempotency_key" in statement:
            self.rows = tuple(row[:2] for row in table if row[4] == args[0])
        elif "WHERE id" in statement:
            self.rows = tuple(row[:4] for row in table if row[0] == args[0])
        elif statement.startswith("SHOW GLOBAL STATUS LIKE 'wsrep_ready'"):
            self.rows = (("wsrep_ready", server.ready),)
        else:
            self.rows = ((1,),)

    def fetchall(self):
        return self.rows


class Lab:
    """The databases one node's app talks to, and that app loaded with the fake pymysql."""

    loaded = 0

    def __init__(self, node):
        self.clock, self.table = Clock(), []
        targets = NODES[node]
        self.servers = {targets[role]: Server(self, targets[role]) for role in ("primary", "replica")}
        self.primary, self.replica = self.servers[targets["primary"]], self.servers[targets["replica"]]
        pymysql = types.ModuleType("pymysql")
        pymysql.connect = self.connect
        pymysql.err = types.SimpleNamespace(Error=Error, OperationalError=OperationalError,
                                            IntegrityError=IntegrityError)
        sys.modules["pymysql"] = pymysql
        os.environ.update(WEBSTACK_NODE=node, WEBSTACK_ROLE=targets["role"], WEBSTACK_RELEASE=RELEASE,
                          DB_APP_PASSWORD="pw",
                          DB_CA_FILE="/ca.crt",
                          DB_PRIMARY=targets["primary"], DB_REPLICA=targets["replica"],
                          WEBSTACK_DB_WAIT_S=targets["db_wait"])
        Lab.loaded += 1
        spec = importlib.util.spec_from_file_location(f"webstack_app_{Lab.loaded}", APP_PY)
        self.app = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.app)
        self.app.time = self.clock

    def connect(self, **args):
        server = self.servers["local" if "unix_socket" in args else args["host"]]
        server.connects += 1
        server.connect_args.append(args)
        state = server.available()
        if state == "silent":
            self.clock.now += args["connect_timeout"]
        if state != "up":
            # As pymysql says it: the error names the server's address.
            where = args.get("host", "localhost")
            raise OperationalError(2003, f"Can't connect to MySQL server on {where!r} (timed out)")
        return Connection(server, args)

    def request(self, path, method="GET", body=b"", headers=None):
        """(status, headers as a dict, the body's bytes) of one request."""
        answer = {}

        def start_response(status, headers):
            answer["status"], answer["headers"] = int(status.split()[0]), dict(headers)

        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body),
                   **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items()}}
        payload = b"".join(self.app.application(environ, start_response))
        return answer["status"], answer["headers"], payload

    def get(self, path, method="GET", body=b""):
        status, _, payload = self.request(path, method, body)
        return status, json.loads(payload)


def node_with_local(role):
    return next(node for node, targets in NODES.items() if targets[role] == "local" and targets["role"] != "member")


class GaleraMemberTest(unittest.TestCase):
    """A Galera member's app (database: galera): its own server for reads and writes, no peer."""

    def setUp(self):
        self.lab = Lab(next(node for node, targets in NODES.items() if targets["role"] == "member"))

    def test_a_member_reads_and_writes_its_own_server_only(self):
        self.assertIs(self.lab.primary, self.lab.replica)
        self.assertEqual(self.lab.get("/items", "POST", b"x")[0], 201)
        self.assertEqual(self.lab.get("/items/1")[0], 200)
        self.assertTrue(all("unix_socket" in args for args in self.lab.primary.connect_args))

    def test_a_member_whose_server_is_down_answers_503_at_once_for_reads_health_and_writes(self):
        self.lab.primary.state = "down"
        start = self.lab.clock.now
        for path, method in (("/healthz", "GET"), ("/items/1", "GET"), ("/items", "POST")):
            status, body = self.lab.get(path, method, b"x" if method == "POST" else b"")
            self.assertEqual(status, 503, path)
        # No waiting out its own server: the client's retry reaches the other member at once.
        self.assertLess(self.lab.clock.now - start, 3 * self.lab.app.CONNECT_TIMEOUT_S)

    def test_a_member_outside_the_primary_component_fails_its_health_check(self):
        # Its server still answers (a table-less SELECT passes there): wsrep_ready says it is out.
        self.assertEqual(self.lab.get("/healthz")[0], 200)
        self.lab.primary.ready = "OFF"
        status, body = self.lab.get("/healthz")
        self.assertEqual(status, 503)
        self.assertIn("not ready", body["error"])

    def test_a_member_outside_the_primary_component_refuses_a_write_at_once(self):
        self.lab.primary.fail_next = [1047]
        status, _ = self.lab.get("/items", "POST", b"x")
        self.assertEqual(status, 503)
        self.assertEqual(self.lab.primary.attempts, 1)
        self.assertEqual(self.lab.table, [])

    def test_a_keyed_write_whose_answer_was_lost_is_left_to_the_client(self):
        self.lab.primary.lose_answer_next = [2013]
        status, _, _ = self.lab.request("/items", "POST", b"x", {"Idempotency-Key": "k1"})
        self.assertEqual(status, 503)
        self.assertEqual(self.lab.primary.attempts, 1)
        # The client sends it again (to any member): the key finds the row, nothing is doubled.
        status, headers, _ = self.lab.request("/items", "POST", b"x", {"Idempotency-Key": "k1"})
        self.assertEqual((status, headers.get("Idempotent-Replayed")), (201, "true"))
        self.assertEqual(len(self.lab.table), 1)

    def test_a_certification_conflict_is_retried_on_the_member(self):
        self.lab.primary.fail_next = [1213]
        self.assertEqual(self.lab.get("/items", "POST", b"x")[0], 201)
        self.assertEqual(self.lab.primary.attempts, 2)
        self.assertEqual(len(self.lab.table), 1)


class AppDatabaseTest(unittest.TestCase):
    def setUp(self):
        # The node whose replica is a peer (reads cross the network) and the one whose primary is.
        self.lab = Lab(node_with_local("primary"))

    def test_reads_use_the_replica_over_one_kept_connection(self):
        for _ in range(3):
            self.assertEqual(self.lab.app.read("SELECT 1")[0], "replica")
        self.assertEqual(self.lab.replica.connects, 1)
        self.assertEqual(self.lab.replica.statements, ["SELECT"] * 3)
        self.assertEqual(self.lab.primary.connects, 0)

    def test_peers_are_reached_over_verified_tls_and_the_own_server_over_its_socket(self):
        self.lab.app.read("SELECT 1")
        self.lab.app.write_item("x")
        (peer,), (own,) = self.lab.replica.connect_args, self.lab.primary.connect_args
        self.assertEqual(peer["ssl"], {"ca": "/ca.crt", "check_hostname": True})
        self.assertEqual(peer["port"], 3306)
        self.assertNotIn("unix_socket", peer)
        self.assertNotIn("ssl", own)
        self.assertIn("unix_socket", own)

    def test_writes_go_to_the_primary_over_one_kept_connection(self):
        self.assertEqual([self.lab.app.write_item(n) for n in "ab"], [(1, True), (2, True)])
        self.assertEqual(self.lab.primary.connects, 1)
        self.assertEqual(self.lab.primary.statements, ["INSERT"] * 2)
        self.assertEqual(self.lab.replica.connects, 0)

    def test_a_stale_primary_connection_is_replaced_before_the_insert_is_sent(self):
        self.lab.app.write_item("before")
        self.lab.primary.restart()
        self.assertEqual(self.lab.app.write_item("after"), (2, True))
        self.assertEqual(self.lab.primary.connects, 2)
        self.assertEqual(self.lab.primary.attempts, 2)  # one INSERT each, none lost or doubled

    def test_a_write_waits_out_a_primary_restart(self):
        self.lab.primary.state, self.lab.primary.up_at = "down", self.lab.clock.now + 0.3
        start = self.lab.clock.now
        self.assertEqual(self.lab.app.write_item("x"), (1, True))
        self.assertGreaterEqual(self.lab.clock.now - start, 0.3)
        self.assertEqual(self.lab.primary.attempts, 1)

    def test_a_write_refused_at_shutdown_is_retried(self):
        self.lab.primary.fail_next = [1053]
        self.assertEqual(self.lab.app.write_item("x"), (1, True))
        self.assertEqual(self.lab.primary.attempts, 2)

    def test_a_write_rolled_back_by_a_deadlock_or_certification_conflict_is_retried(self):
        self.lab.primary.fail_next = [1213]
        self.assertEqual(self.lab.app.write_item("x"), (1, True))
        self.assertEqual(self.lab.primary.attempts, 2)
        self.assertEqual(len(self.lab.table), 1)

    def test_a_write_gives_up_within_its_patience(self):
        self.lab.primary.state = "down"
        start = self.lab.clock.now
        with self.assertRaises(OperationalError) as raised:
            self.lab.app.write_item("x")
        self.assertEqual(raised.exception.args[0], 2003)
        self.assertLessEqual(self.lab.clock.now - start, self.lab.app.WRITE_PATIENCE_S)
        self.assertGreater(self.lab.primary.connects, 1)

    def test_an_ambiguous_write_error_is_not_retried(self):
        # Lost during the INSERT: it may have been applied, so it must not be sent again.
        self.lab.primary.fail_next = [2013]
        with self.assertRaises(OperationalError):
            self.lab.app.write_item("x")
        self.assertEqual(self.lab.primary.attempts, 1)
        self.assertEqual(self.lab.get("/items", "POST", b"y")[0], 201)  # the next write starts afresh
        self.assertEqual(self.lab.primary.connects, 2)

    def test_reads_fall_back_to_the_primary_and_skip_a_failed_replica_for_a_while(self):
        self.lab.replica.state = "down"
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "primary")
        self.lab.clock.now += 1
        self.lab.replica.state = "up"
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "primary")
        self.assertEqual(self.lab.replica.connects, 1)  # skipped, not retried
        self.lab.clock.now += self.lab.app.REPLICA_BACKOFF_S
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "replica")

    def test_a_replica_restart_costs_a_new_connection_the_read_sent_again_on_it(self):
        self.lab.app.read("SELECT 1")
        self.lab.replica.restart()
        start = self.lab.clock.now
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "replica")
        self.assertEqual(self.lab.clock.now, start)
        self.assertEqual(self.lab.replica.connects, 2)
        self.assertEqual(self.lab.replica.statements, ["SELECT"] * 2)
        self.assertEqual(self.lab.primary.connects, 0)
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "replica")  # not skipped for a while

    def test_a_read_lost_on_a_kept_connection_is_sent_again_once_on_a_new_one_then_falls_back(self):
        self.lab.app.read("SELECT 1")
        self.lab.replica.fail_next = [2006]
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "replica")
        self.assertEqual(self.lab.replica.connects, 2)
        # Lost again on the new connection: not sent a third time, the primary answers.
        self.lab.replica.fail_next = [2013, 2013]
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "primary")
        self.assertEqual(self.lab.replica.connects, 3)
        self.assertEqual(self.lab.replica.fail_next, [])

    def test_a_read_failing_otherwise_is_not_sent_again(self):
        self.lab.app.read("SELECT 1")
        self.lab.replica.fail_next = [1205]  # a lock wait timeout: the server is there
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "primary")
        self.assertEqual(self.lab.replica.connects, 1)

    def test_a_read_lost_on_a_connection_just_opened_or_after_a_long_wait_is_not_sent_again(self):
        self.lab.replica.fail_next = [2013]  # the first read: its connection is new
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "primary")
        self.assertEqual(self.lab.replica.connects, 1)
        self.lab.clock.now += self.lab.app.REPLICA_BACKOFF_S
        self.lab.app.read("SELECT 1")
        self.lab.app.read("SELECT id, note, written_by, created_at FROM items WHERE id = %s", (1,))
        self.lab.primary.fail_next = [(2013, 3.0)]  # a kept connection, lost after 3 s
        self.lab.replica.state = "down"
        with self.assertRaises(ConnectionError):
            self.lab.app.read("SELECT 1")
        self.assertEqual(self.lab.primary.connects, 1)

    def test_a_write_whose_answer_was_lost_on_a_kept_connection_is_not_sent_again(self):
        self.assertEqual(self.lab.get("/items", "POST", b"a")[0], 201)
        self.lab.primary.lose_answer_next = [2013]
        self.assertEqual(self.lab.get("/items", "POST", b"b")[0], 503)
        self.assertEqual(self.lab.primary.attempts, 2)
        self.assertEqual(len(self.lab.table), 2)  # applied once, answered 503: never sent twice

    def test_after_both_databases_restarted_each_nodes_health_check_passes_on_new_connections(self):
        # The rollout of the databases' settings restarts the replica, then the primary: every
        # worker's kept connections are stale, and a check that failed on both took the node out.
        for lab in (self.lab, Lab(node_with_local("replica"))):
            lab.app.read("SELECT 1")
            self.assertEqual(lab.get("/healthz")[0], 200)
            lab.replica.restart()
            lab.primary.restart()
            start = lab.clock.now
            status, body = lab.get("/healthz")
            self.assertEqual((status, lab.app.TARGETS[body["read_from"]]), (200, "local"))
            self.assertEqual(lab.clock.now, start)
            self.assertEqual(lab.get("/items/1" if lab.table else "/")[0], 200)

    def test_a_silent_replica_costs_one_read_timeout_per_worker_within_a_cut_links_budget(self):
        self.lab.app.read("SELECT 1")
        self.lab.replica.state = "silent"  # its link cut: no answer, no refusal
        start = self.lab.clock.now
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "primary")
        first = self.lab.clock.now - start
        self.assertGreater(first, 0)
        self.assertLess(first, SILENT_REPLICA_BUDGET_S)
        start = self.lab.clock.now
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "primary")
        self.assertEqual(self.lab.clock.now - start, 0)

    def test_a_read_that_waited_out_its_databases_answers_504_a_quick_failure_503(self):
        # 503 has the load balancer send a GET to the other node: only for a failure that was quick.
        self.lab.app.read("SELECT 1")
        self.lab.app.write_item("x")
        self.lab.replica.state = self.lab.primary.state = "silent"
        status, body = self.lab.get("/items/1")
        self.assertEqual(status, 504)
        self.assertIn("2013", body["error"])
        lab = Lab(node_with_local("primary"))
        lab.replica.state = lab.primary.state = "down"
        self.assertEqual(lab.get("/items/1")[0], 503)

    def test_a_silent_replica_that_is_not_yet_connected_costs_one_connect_timeout(self):
        self.lab.replica.state = "silent"
        start = self.lab.clock.now
        self.assertEqual(self.lab.app.read("SELECT 1")[0], "primary")
        self.assertLess(self.lab.clock.now - start, SILENT_REPLICA_BUDGET_S)

    def test_the_health_check_asks_the_own_database_first(self):
        self.assertEqual(self.lab.get("/healthz"), (200, {"node": self.lab.app.NODE, "role": self.lab.app.ROLE, "release": RELEASE,
                                                          "status": "ok", "read_from": "primary"}))
        self.assertEqual(self.lab.replica.connects, 0)
        self.lab.primary.state = "down"
        self.assertEqual(self.lab.get("/healthz")[1]["read_from"], "replica")
        other = Lab(node_with_local("replica"))
        self.assertEqual(other.get("/healthz")[1]["read_from"], "replica")
        self.assertEqual(other.primary.connects, 0)

    def test_no_database_answers_503_naming_both(self):
        self.lab.replica.state = self.lab.primary.state = "down"
        status, body = self.lab.get("/items/1")
        self.assertEqual(status, 503)
        self.assertEqual(body["error"], "replica: 2003; primary: 2003")

    def test_routes(self):
        status, body = self.lab.get("/items", "POST", "é".encode() * 200)
        self.assertEqual((status, body["id"], body["written_to"]), (201, 1, "primary"))
        status, body = self.lab.get("/items/1")
        self.assertEqual((status, body["read_from"], body["note"]), (200, "replica", "é" * 200))
        self.assertEqual(self.lab.get("/items/2")[0], 404)

    def test_a_note_too_long_is_refused_with_422_and_nothing_written(self):
        status, body = self.lab.get("/items", "POST", b"a" * 201)
        self.assertEqual((status, body["error"]), (422, "a note is at most 200 characters"))
        self.assertEqual((self.lab.primary.attempts, self.lab.table), (0, []))

    def test_a_body_larger_than_a_note_is_read_whole_then_refused_with_413(self):
        # Nginx passes bodies up to maxBodyMiB: the app reads all of it (so the proxy can send it
        # and read the answer) and keeps no more than a note can be.
        body = io.BytesIO(b"x" * (5 << 20))
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/items", "CONTENT_LENGTH": str(5 << 20),
                   "wsgi.input": body}
        answer = {}
        payload = b"".join(self.lab.app.application(environ, lambda s, h: answer.update(status=s)))
        self.assertEqual((answer["status"], json.loads(payload)["error"]),
                         ("413 Content Too Large", "a note is at most 800 bytes"))
        self.assertEqual(body.tell(), 5 << 20)
        self.assertEqual(self.lab.primary.attempts, 0)

    def test_the_primary_gets_the_requests_time_less_a_margin_and_the_replica_half_a_second(self):
        self.lab.app.read("SELECT 1")
        self.lab.app.write_item("x")
        (replica,), (primary,) = self.lab.replica.connect_args, self.lab.primary.connect_args
        self.assertEqual(replica["read_timeout"], 0.5)
        # The app answers (its own 503) before Nginx gives up on it, and Nginx before HAProxy does.
        self.assertEqual(primary["read_timeout"], float(NODES[self.lab.app.NODE]["db_wait"]))
        self.assertLess(primary["read_timeout"], NGINX_READ_TIMEOUT_S)
        self.assertLess(NGINX_READ_TIMEOUT_S, LB_SERVER_TIMEOUT_S)
        self.assertGreaterEqual(primary["read_timeout"], LB_SERVER_TIMEOUT_S - 2)

    def test_head_answers_as_get_without_a_body_on_every_get_route(self):
        self.lab.get("/items", "POST", b"x")
        for path in ("/", "/healthz", "/items/1", "/items/2"):
            get_status, get_headers, get_body = self.lab.request(path)
            head_status, head_headers, head_body = self.lab.request(path, "HEAD")
            self.assertEqual((path, head_status, head_headers, head_body),
                             (path, get_status, get_headers, b""))
            self.assertEqual(int(head_headers["Content-Length"]), len(get_body))

    def test_a_wrong_method_answers_405_in_json_with_allow(self):
        for path, method, allow in (("/", "POST", "GET, HEAD"), ("/healthz", "DELETE", "GET, HEAD"),
                                    ("/items/1", "DELETE", "GET, HEAD"), ("/items", "GET", "POST"),
                                    ("/items", "HEAD", "POST")):
            status, headers, body = self.lab.request(path, method)
            self.assertEqual((path, method, status, headers["Allow"], headers["Content-Type"]),
                             (path, method, 405, allow, "application/json"))
            self.assertEqual(json.loads(body) if body else None,
                             None if method == "HEAD" else {"node": self.lab.app.NODE, "role": self.lab.app.ROLE, "release": RELEASE,
                                                            "error": "method not allowed"})
        self.assertEqual(self.lab.primary.attempts + self.lab.replica.connects, 0)  # no database asked

    def test_an_unknown_path_answers_404_in_json_whatever_the_method(self):
        for method in ("GET", "POST", "DELETE", "HEAD"):
            status, headers, body = self.lab.request("/nope", method)
            self.assertEqual((method, status, headers["Content-Type"], "Allow" in headers),
                             (method, 404, "application/json", False))
            self.assertEqual(json.loads(body) if body else None,
                             None if method == "HEAD" else {"node": self.lab.app.NODE, "role": self.lab.app.ROLE, "release": RELEASE,
                                                            "error": "no such route"})

    def test_a_failed_write_answers_a_generic_503_and_logs_the_detail(self):
        lab = Lab(node_with_local("replica"))  # its primary is a peer, reached by address
        lab.primary.state = "down"
        with self.assertLogs("gunicorn.error", "ERROR") as logged:
            status, body = lab.get("/items", "POST", b"x")
            self.assertEqual((status, body), (503, {"node": lab.app.NODE, "role": lab.app.ROLE, "release": RELEASE,
                                                    "error": "the primary database is unavailable"}))
        self.assertIn(repr(lab.primary.target), "\n".join(logged.output))

    def post(self, note, key, lab=None):
        status, headers, body = (lab or self.lab).request("/items", "POST", note, {"Idempotency-Key": key})
        return status, headers, json.loads(body)

    def test_a_post_sent_again_with_its_idempotency_key_answers_the_first_rows_id_and_writes_once(self):
        first = self.post(b"once", "order-17")
        again = self.post(b"once", '"order-17"')  # the IETF draft's form, quoted: the same key
        self.assertEqual((first[0], first[2]["id"]), (201, 1))
        self.assertNotIn("Idempotent-Replayed", first[1])
        self.assertEqual((again[0], again[2]["id"], again[1]["Idempotent-Replayed"]), (201, 1, "true"))
        self.assertEqual([row[1:] for row in self.lab.table],
                         [("once", self.lab.app.NODE, "2026-11-25 12:00:00", "order-17")])
        # Another key, or none, is another write.
        self.assertEqual(self.post(b"once", "order-18")[2]["id"], 2)
        self.assertEqual(self.lab.get("/items", "POST", b"once")[1]["id"], 3)
        self.assertEqual(len(self.lab.table), 3)

    def test_a_key_used_for_another_note_is_refused_with_422_and_nothing_written(self):
        self.post(b"first", "k")
        status, _, body = self.post(b"second", "k")
        self.assertEqual((status, body["error"]), (422, "this Idempotency-Key wrote item 1, with another note"))
        self.assertEqual(len(self.lab.table), 1)

    def test_a_malformed_key_is_refused_with_400_naming_the_form_and_nothing_sent(self):
        # "a,b": the header sent twice, as Gunicorn joins it.
        for bad in ["", "a" * 65, "with space", 'in"side', "back\\slash", '"unclosed', "caf\u00e9", '""', "a,b"]:
            with self.subTest(bad=bad):
                status, _, body = self.post(b"x", bad)
                self.assertEqual(status, 400)
                self.assertEqual(body["error"], "Idempotency-Key: 1 to 64 visible ASCII characters other than \", "
                                                "\\ and ',', optionally in double quotes")
        self.assertEqual((self.lab.table, self.lab.primary.attempts), ([], 0))
        self.assertEqual(self.post(b"x", "a" * 64)[0], 201)

    def test_a_keyed_write_whose_answer_was_lost_is_sent_again_and_found_not_doubled(self):
        # Applied, then the connection dropped before the answer: without a key it would be a 503
        # and an unknown outcome (test_an_ambiguous_write_error_is_not_retried); with one the app
        # sends it again, and the key finds the row.
        self.lab.primary.lose_answer_next = [2013]
        status, headers, body = self.post(b"x", "k-1")
        # Its own first attempt's row: not a replay to a client that sent once.
        self.assertEqual((status, body["id"]), (201, 1))
        self.assertNotIn("Idempotent-Replayed", headers)
        self.assertEqual(self.lab.primary.attempts, 2)
        self.assertEqual(len(self.lab.table), 1)

    def test_keys_before_the_primarys_schema_upgrade_answer_503_and_writes_without_one_go_on(self):
        self.lab.primary.keys = False
        with self.assertLogs("gunicorn.error", "ERROR"):
            status, _, body = self.post(b"x", "k")
        self.assertEqual((status, body["error"]), (503, "idempotency keys are not available until the schema "
                                                       "upgrade reaches the primary"))
        self.assertEqual(self.lab.get("/items", "POST", b"y")[0], 201)
        self.assertEqual(len(self.lab.table), 1)

    def test_an_unexpected_error_answers_500_in_json_and_logs_the_traceback(self):
        self.lab.app.write_item = lambda note, key=None: 1 / 0
        with self.assertLogs("gunicorn.error", "ERROR") as logged:
            status, headers, body = self.lab.request("/items", "POST", b"x")
        self.assertEqual((status, headers["Content-Type"], json.loads(body)),
                         (500, "application/json", {"node": self.lab.app.NODE, "role": self.lab.app.ROLE, "release": RELEASE,
                                                    "error": "internal error"}))
        self.assertIn("ZeroDivisionError", "\n".join(logged.output))


class Results(unittest.TestResult):
    def __init__(self):
        super().__init__()
        self.outcomes = {}

    def addSuccess(self, test):
        self.outcomes[test._testMethodName] = None

    def addFailure(self, test, err):
        self.outcomes[test._testMethodName] = self._exc_info_to_string(err, test)

    addError = addFailure


if __name__ == "__main__":
    results = Results()
    for case in (AppDatabaseTest, GaleraMemberTest):
        unittest.defaultTestLoader.loadTestsFromTestCase(case).run(results)
    print(json.dumps(results.outcomes))
