"""HTTPS: the SDKs' default protocol against `vpngw serve --tls self-signed`."""
import json
import os
import ssl
import subprocess
import urllib.request

import pytest
from alibabacloud_tea_openapi.models import Config
from alibabacloud_vpc20160428 import models as m
from alibabacloud_vpc20160428.client import Client
from aliyunsdkcore.client import AcsClient
from aliyunsdkvpc.request.v20160428.DescribeVpcsRequest import DescribeVpcsRequest

from conftest import BIN, KEYS, REGION, Server
from terraform import Provider


@pytest.fixture(scope="module")
def tls_server():
    s = Server()
    s.start_args = ["--tls", "self-signed"]
    s.start()
    s.tls = True
    s.ca = os.path.join(s.dir, "data", "tls", "ca.pem")
    yield s
    s.stop()


def tea(s, v2):
    ak, secret = KEYS["alice"]
    cfg = Config(access_key_id=ak, access_key_secret=secret, endpoint=s.endpoint, protocol="https", region_id=REGION, ca=s.ca)
    if v2:
        cfg.signature_algorithm = "v2"
    return Client(cfg)


@pytest.mark.parametrize("v2", [False, True], ids=["acs3", "v2"])
def test_the_tea_sdk_over_https_trusting_the_printed_ca(tls_server, v2):
    c = tea(tls_server, v2)
    vpc = c.create_vpc(m.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/8")).body.vpc_id
    got = c.describe_vpcs(m.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc)).body.vpcs.vpc
    assert [v.vpc_id for v in got] == [vpc]


def test_the_generic_client_and_the_legacy_sdk_over_https(tls_server):
    assert "Vpcs" in Provider(tls_server).post("DescribeVpcs", {"PageSize": 1})
    ak, secret = KEYS["alice"]
    legacy = AcsClient(ak, secret, REGION, verify=tls_server.ca)
    req = DescribeVpcsRequest()
    req.set_endpoint(tls_server.endpoint)
    req.set_protocol_type("https")
    assert "Vpcs" in json.loads(legacy.do_action_with_exception(req))


def test_the_certificate_names_the_loopback_and_is_kept_across_a_restart(tls_server):
    ctx = ssl.create_default_context(cafile=tls_server.ca)
    with urllib.request.urlopen(f"https://localhost:{tls_server.port}/healthz", context=ctx, timeout=5) as r:
        assert r.status == 200
    with open(os.path.join(tls_server.dir, "data", "tls", "server.pem")) as f:
        before = f.read()
    tls_server.stop()
    tls_server.start()
    with open(os.path.join(tls_server.dir, "data", "tls", "server.pem")) as f:
        assert f.read() == before
    # A client that does not trust the CA is refused by its own verification.
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"https://127.0.0.1:{tls_server.port}/healthz", timeout=5)


def test_plain_http_stays_open_to_loopback(tls_server):
    with urllib.request.urlopen(f"http://{tls_server.endpoint}/healthz", timeout=5) as r:
        assert r.status == 200
    ak, secret = KEYS["alice"]
    plain = Client(Config(access_key_id=ak, access_key_secret=secret, endpoint=tls_server.endpoint, protocol="http", region_id=REGION))
    assert plain.describe_regions(m.DescribeRegionsRequest()).body.regions.region


def test_the_banner_says_where_the_ca_is(tls_server):
    with open(os.path.join(tls_server.dir, "serve.log")) as f:
        log = f.read()
    assert f"https://{tls_server.endpoint}" in log and tls_server.ca in log


def test_a_half_configured_tls_does_not_start(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'tls_cert = "{tmp_path}/missing.pem"\n')
    out = subprocess.run([BIN, "serve", "--config", str(cfg), "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "tls_cert and tls_key go together" in out.stderr
