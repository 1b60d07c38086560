"""Fixtures: a real `vpngw serve` process and the official Alibaba Cloud SDKs pointed at it.

The binary is `$VPNGW_BIN` or `target/debug/vpngw` (built by `.ci/run`).
"""
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest
from alibabacloud_tea_openapi.models import Config
from alibabacloud_vpc20160428.client import Client
from aliyunsdkcore.client import AcsClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("VPNGW_BIN", os.path.join(ROOT, "target", "debug", "vpngw"))
REGION = "cn-hangzhou"

KEYS = {
    "alice": ("AKALICE0000000000001", "alice-secret"),
    "bob": ("AKBOB00000000000001", "bob-secret"),
    "alice-ro": ("AKALICERO00000000001", "alice-ro-secret"),
}

CONFIG = """
transition_ms = {transition}
metrics_listen = "127.0.0.1:0"
[[accounts]]
name = "alice"
access_key_id = "AKALICE0000000000001"
access_key_secret = "alice-secret"

[[accounts]]
name = "alice"
access_key_id = "AKALICERO00000000001"
access_key_secret = "alice-ro-secret"
readonly = true

[[accounts]]
name = "bob"
access_key_id = "AKBOB00000000000001"
access_key_secret = "bob-secret"

[quotas]
customer_gateways = {cgw_quota}
vpn_gateways = 100
vpcs = 200
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    """One `vpngw serve` process over a data directory that outlives restarts."""

    def __init__(self, transition_ms=150, extra="", top="", cgw_quota=200):
        self.dir = tempfile.mkdtemp(prefix="vpngw-sdk-")
        # VPNGW_SDK_STORE=postgres runs every server on a fresh PostgreSQL database instead
        # of SQLite (the whole suite against the other backend).
        self.store_url = None
        if os.environ.get("VPNGW_SDK_STORE") == "postgres" and "store =" not in top:
            self.store_url = fresh_pg_database()
            top = f'store = "{self.store_url}"\n' + top
        self.config = os.path.join(self.dir, "vpngw.toml")
        with open(self.config, "w") as f:
            f.write(top + CONFIG.format(transition=transition_ms, cgw_quota=cgw_quota) + extra)
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.proc = None
        self.start_args = []

    def cli(self, *args):
        out = subprocess.run([BIN, *args, "--config", self.config, "--data-dir", os.path.join(self.dir, "data")],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout

    def start(self):
        self.log = open(os.path.join(self.dir, "serve.log"), "a")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--config", self.config, "--data-dir", os.path.join(self.dir, "data"), "--listen", self.endpoint, *self.start_args],
            stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.endpoint}/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("vpngw did not become healthy")

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
            self.proc = None

    def metrics_url(self):
        """Where the server serves /metrics (its banner says)."""
        with open(os.path.join(self.dir, "serve.log")) as f:
            return [line.split("Metrics: ", 1)[1].strip() for line in f if line.startswith("Metrics: ")][-1]

    def metrics(self):
        """The families of the server's /metrics, parsed as OpenMetrics: {name: family}."""
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
        with urllib.request.urlopen(self.metrics_url(), timeout=10) as r:
            assert r.status == 200 and r.headers["Content-Type"].startswith("application/openmetrics-text")
            return {fam.name: fam for fam in text_string_to_metric_families(r.read().decode())}

    def docs(self, ids):
        """The stored documents of these resources, as text (whatever the backend)."""
        if self.store_url:
            quoted = ",".join(f"'{i}'" for i in ids)
            rows = psql(self.store_url, f"SELECT id || chr(9) || doc::text FROM resources WHERE id IN ({quoted})")
            return dict(line.split("\t", 1) for line in rows.splitlines() if line)
        import sqlite3
        with sqlite3.connect(os.path.join(self.dir, "data", "vpngw.db"), timeout=10) as db:
            return dict(db.execute(f"SELECT id, doc FROM resources WHERE id IN ({','.join('?' * len(ids))})", list(ids)).fetchall())

    def set_doc(self, rid, doc):
        """Overwrites a stored document behind vpngw's back (as a faulty migration might)."""
        if self.store_url:
            psql(self.store_url, "UPDATE resources SET doc = '" + doc.replace("'", "''") + f"'::jsonb WHERE id = '{rid}'")
            return
        import sqlite3
        db = sqlite3.connect(os.path.join(self.dir, "data", "vpngw.db"), timeout=10)
        with db:
            db.execute("UPDATE resources SET doc = ? WHERE id = ?", (doc, rid))
        db.close()

    def tea(self, who="alice", v2=False):
        ak, secret = KEYS[who]
        cfg = Config(access_key_id=ak, access_key_secret=secret, endpoint=self.endpoint, protocol="http", region_id=REGION)
        if v2:
            cfg.signature_algorithm = "v2"
        return Client(cfg)

    def legacy(self, who="alice"):
        ak, secret = KEYS[who]
        return AcsClient(ak, secret, REGION)


@pytest.fixture(scope="session")
def server():
    s = Server()
    s.start()
    yield s
    s.stop()


@pytest.fixture(params=["acs3", "v2"])
def tea(request, server):
    """The Tea SDK, signing with ACS3-HMAC-SHA256 and with RPC v1."""
    return server.tea(v2=request.param == "v2")


@pytest.fixture
def alice(server):
    return server.tea()


@pytest.fixture
def bob(server):
    return server.tea("bob")


def pg_base_url():
    """The PostgreSQL of the tests (`VPNGW_TEST_PG`, which `scripts/test` sets); without one
    the cluster tests skip, unless `VPNGW_REQUIRE_PG` is set (CI), where they fail."""
    url = os.environ.get("VPNGW_TEST_PG", "")
    if not url:
        if os.environ.get("VPNGW_REQUIRE_PG"):
            raise RuntimeError("VPNGW_REQUIRE_PG is set but VPNGW_TEST_PG names no PostgreSQL")
        pytest.skip("VPNGW_TEST_PG is not set")
    return url


def psql(url, sql):
    out = subprocess.run(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


_dbs = iter(range(1, 1_000_000))


def fresh_pg_database():
    """A new, empty database on the test cluster; returns its URL."""
    base = pg_base_url()
    name = f"vpngw_sdk_{os.getpid()}_{next(_dbs)}"
    psql(base, f"DROP DATABASE IF EXISTS {name}")
    psql(base, f"CREATE DATABASE {name}")
    head, _, query = base.partition("?")
    return f"{head.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")


class Cluster:
    """Two `vpngw serve` processes on one PostgreSQL database, with one master key."""

    def __init__(self, transition_ms=150, extra="", n=2):
        self.url = fresh_pg_database()
        self.key_dir = tempfile.mkdtemp(prefix="vpngw-cluster-")
        key = os.path.join(self.key_dir, "master.key")
        top = f'store = "{self.url}"\nmaster_key_file = "{key}"\n'
        self.servers = [Server(transition_ms=transition_ms, top=top, extra=extra) for _ in range(n)]

    def start(self):
        # The first creates the shared key file; the others read it.
        for s in self.servers:
            s.start()
        return self

    def stop(self):
        for s in self.servers:
            s.stop()

    def clients(self, who="alice"):
        return [s.tea(who) for s in self.servers]


@pytest.fixture
def cluster():
    c = Cluster().start()
    yield c
    c.stop()
