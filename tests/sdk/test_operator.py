"""What an operator sees: request logs (text and JSON), keys and accounts."""
import json
import os
import time

from alibabacloud_vpc20160428 import models as m

from conftest import Server
from helpers import REGION, error


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
        assert [line for line in log_lines(s) if line and not line.startswith("{") and not line.startswith("vpngw listening")] == []
    finally:
        s.stop()


def test_text_logs_carry_no_terminal_colours_in_a_file(server):
    server.tea().describe_regions(m.DescribeRegionsRequest())
    time.sleep(0.2)
    text = "\n".join(log_lines(server))
    assert "\x1b[" not in text
    assert "vpngw::request" in text and "action=DescribeRegions" in text
