"""What an operator sees: request logs (text and JSON), keys and accounts."""
import json
import os
import subprocess
import time

from alibabacloud_vpc20160428 import models as m

from conftest import BIN, Server
from helpers import REGION, error, sample


def log_lines(s):
    with open(os.path.join(s.dir, "serve.log")) as f:
        return f.read().splitlines()


def test_one_json_line_per_request_with_who_what_and_how_it_ended():
    s = Server(top='log_format = "json"\n')
    s.start()
    try:
        c = s.tea()
        body = c.describe_regions(m.DescribeRegionsRequest())
        assert error(c.describe_vpn_gateway, m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id="vpn-none"))[0] == "InvalidVpnGatewayInstanceId.NotFound"
        assert error(s.tea("bob").describe_vpcs, m.DescribeVpcsRequest(region_id="xx-none"))[0] == "InvalidRegionId.NotFound"
        time.sleep(0.2)
        events = [json.loads(line) for line in log_lines(s) if line.startswith("{")]
        requests = [e for e in events if e.get("target") == "vpngw::request"]
        ok = [e for e in requests if e["action"] == "DescribeRegions"]
        assert ok and ok[0]["code"] == "OK" and ok[0]["status"] == 200 and ok[0]["request_id"] == body.body.request_id, requests
        assert isinstance(ok[0]["latency_ms"], float) and isinstance(ok[0]["account"], int)
        nf = [e for e in requests if e["action"] == "DescribeVpnGateway"][0]
        assert (nf["code"], nf["status"]) == ("InvalidVpnGatewayInstanceId.NotFound", 404)
        other = [e for e in requests if e["action"] == "DescribeVpcs"][0]
        assert other["account"] != ok[0]["account"], "each line names the caller's account"
        # Standard output keeps its banner for people; every log line (standard error) is JSON.
        banner = ("vpngw listening", "Metrics: ", "Endpoint ")
        assert [line for line in log_lines(s) if line and not line.startswith("{") and not line.startswith(banner)] == []
    finally:
        s.stop()


def test_text_logs_carry_no_terminal_colours_in_a_file(server):
    server.tea().describe_regions(m.DescribeRegionsRequest())
    time.sleep(0.2)
    text = "\n".join(log_lines(server))
    assert "\x1b[" not in text
    assert "vpngw::request" in text and "action=DescribeRegions" in text


def client_with(s, ak, secret):
    from alibabacloud_tea_openapi.models import Config
    from alibabacloud_vpc20160428.client import Client
    return Client(Config(access_key_id=ak, access_key_secret=secret, endpoint=s.endpoint, protocol="http", region_id=REGION))


def test_a_revoked_key_is_refused_at_once_after_a_restart_and_while_the_config_names_it():
    s = Server()
    s.start()
    try:
        out = s.cli("key", "create", "alice")
        ak = [l.split(": ")[1] for l in out.splitlines() if l.startswith("AccessKeyId")][0]
        secret = [l.split(": ")[1] for l in out.splitlines() if l.startswith("AccessKeySecret")][0]
        made = client_with(s, ak, secret)
        assert made.describe_regions(m.DescribeRegionsRequest()).body.regions.region, "the new key works (and is now cached)"
        listed = s.cli("key", "list", "alice")
        assert ak in listed and secret not in listed, listed
        # Revoke the cached key and the one the configuration names.
        assert "refuses it from now on" in s.cli("key", "revoke", ak)
        s.cli("key", "revoke", "AKALICE0000000000001")
        assert error(made.describe_regions, m.DescribeRegionsRequest()) == ("InvalidAccessKeyId.Inactive", 400)
        assert error(s.tea().describe_regions, m.DescribeRegionsRequest()) == ("InvalidAccessKeyId.Inactive", 400)
        assert s.tea("alice-ro").describe_regions(m.DescribeRegionsRequest()).body.regions.region, "the account's other keys still work"
        states = {l.split()[0]: l for l in s.cli("key", "list", "alice").splitlines()[1:]}
        assert "revoked" in states[ak] and "revoked" in states["AKALICE0000000000001"] and "active" in states["AKALICERO00000000001"]
        accounts = s.cli("account", "list")
        assert any(l.split()[1:] == ["alice", "1", "2"] for l in accounts.splitlines()), accounts
        # A restart re-reads the configuration, which still names the key: it stays revoked.
        s.stop()
        s.start()
        assert error(s.tea().describe_regions, m.DescribeRegionsRequest()) == ("InvalidAccessKeyId.Inactive", 400)
        assert error(made.describe_regions, m.DescribeRegionsRequest()) == ("InvalidAccessKeyId.Inactive", 400)
        out = subprocess.run([BIN, "key", "revoke", "AKNOSUCHKEY", "--config", s.config, "--data-dir", os.path.join(s.dir, "data")], capture_output=True, text=True)
        assert out.returncode != 0 and "no AccessKey AKNOSUCHKEY" in out.stderr
    finally:
        s.stop()


def test_the_first_start_binds_then_prints_a_key_and_three_lines_that_work(tmp_path):
    import sys
    from conftest import free_port
    port = free_port()
    log = open(tmp_path / "out.log", "w")
    proc = subprocess.Popen([BIN, "serve", "--data-dir", str(tmp_path / "data"), "--listen", f"127.0.0.1:{port}"], stdout=log, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 30
        text = ""
        while time.time() < deadline and "print(c.describe_vpn_gateways" not in text:
            time.sleep(0.1)
            text = (tmp_path / "out.log").read_text()
        lines = text.splitlines()
        assert lines[0].startswith(f"vpngw listening on http://127.0.0.1:{port}"), lines
        assert any(l.strip().startswith("export ALIBABA_CLOUD_ACCESS_KEY_ID=LTAI") for l in lines)
        sdk = [l.strip() for l in lines[lines.index("With the Python SDK (pip install alibabacloud_vpc20160428):") + 1:]][:3]
        out = subprocess.run([sys.executable, "-c", "\n".join(sdk)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "'TotalCount': 0" in out.stdout, (out.stdout, out.stderr)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    # A second start on the same data shows no key again, and a start that cannot bind makes none.
    busy = tmp_path / "busy"
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    taken = s.getsockname()[1]
    out = subprocess.run([BIN, "serve", "--data-dir", str(busy), "--listen", f"127.0.0.1:{taken}"], capture_output=True, text=True, timeout=30)
    s.close()
    assert out.returncode != 0 and "listen on" in out.stderr and "AccessKeySecret" not in out.stdout


def test_the_systemd_unit_verifies(tmp_path):
    import shutil
    import pytest
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is not installed")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "deploy", "vpngw.service")) as f:
        unit = f.read().replace("/usr/local/bin/vpngw", BIN)
    path = tmp_path / "vpngw.service"
    path.write_text(unit)
    out = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "vpngw.service" not in out.stderr, out.stderr


def test_completions_for_each_shell():
    for shell, marker in (("bash", "complete -F _vpngw"), ("zsh", "#compdef vpngw"), ("fish", "complete -c vpngw")):
        out = subprocess.run([BIN, "completions", shell], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0 and marker in out.stdout, (shell, out.stdout[:200])


def test_metrics_parse_and_follow_the_requests_and_what_exists(server):
    from helpers import make_gateway
    c = server.tea()
    before = server.metrics()
    gw, _, _ = make_gateway(c)
    c.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw))
    error(c.describe_vpn_gateway, m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id="vpn-none"))
    after = server.metrics()
    ok = lambda f: sample(f, "vpngw_requests", action="DescribeVpnGateway", code="OK")  # noqa: E731
    nf = lambda f: sample(f, "vpngw_requests", action="DescribeVpnGateway", code="InvalidVpnGatewayInstanceId.NotFound")  # noqa: E731
    assert ok(after) >= ok(before) + 1 and nf(after) == nf(before) + 1
    assert sample(after, "vpngw_resources", kind="vpn_gateway", state="active") >= 1
    assert sample(after, "vpngw_resources", kind="vpn_gateway", state="active") == sample(before, "vpngw_resources", kind="vpn_gateway", state="active") + 1
    hist = after["vpngw_request_duration_seconds"]
    assert any(s.name.endswith("_count") and s.labels["action"] == "DescribeVpnGateway" and s.value >= 2 for s in hist.samples)
    assert sample(after, "vpngw_store_commits") > sample(before, "vpngw_store_commits")
    # Bounded labels: an action that does not exist is `unknown`.
    import urllib.request
    try:
        urllib.request.urlopen(f"http://{server.endpoint}/?Action=NoSuchAction{os.getpid()}&Version=2016-04-28", timeout=5)
    except urllib.error.HTTPError:
        pass
    families = server.metrics()
    assert f"NoSuchAction{os.getpid()}" not in str(families) and sample(families, "vpngw_requests", action="unknown", code="InvalidAction.NotFound") >= 1


def test_status_says_clearly_when_no_server_runs(tmp_path):
    out = subprocess.run([BIN, "status", "--endpoint", "http://127.0.0.1:1", "--data-dir", str(tmp_path)], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "no vpngw server answers at http://127.0.0.1:1" in out.stderr, out.stderr


def test_status_lists_gateways_connections_and_tunnels(server):
    from helpers import make_cgw, make_gateway
    c = server.tea()
    gw, _, _ = make_gateway(c)
    vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=make_cgw(c).customer_gateway_id,
                                                               local_subnet="10.1.0.0/16", remote_subnet="192.168.0.0/16")).body.vpn_connection_id
    base = server.metrics_url().rsplit("/", 1)[0]
    report = json.loads(server.cli("status", "--json", "--endpoint", base))
    g = [x for x in report["gateways"] if x["id"] == gw][0]
    assert [t["status"] for conn in g["connections"] if conn["id"] == vco for t in conn["tunnels"]] == ["ike_sa_not_established"]
    assert vco in server.cli("status", "--endpoint", base)
