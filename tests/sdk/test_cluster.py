"""Two `vpngw serve` processes on one PostgreSQL, through the official SDKs, with requests
alternating between them: they answer as one service (lifecycles, ClientTokens, nonces, the
per-gateway serialisation) and lose no acknowledged write when one of them is killed."""
import concurrent.futures
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

from alibabacloud_vpc20160428 import models as m
from aliyunsdkcore.auth.composer import rpc_signature_composer
from Tea.exceptions import TeaException

from conftest import BIN, KEYS, Cluster, Server
from helpers import REGION, describe, error, make_cgw, make_vpc, make_vsw, next_ip, wait_gone, wait_status


def test_lifecycles_alternate_between_the_servers(cluster):
    a, b = cluster.clients()
    vpc = make_vpc(a)
    vsw = make_vsw(b, vpc)
    gw = a.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY", enable_ssl=True)).body.vpn_gateway_id
    # The engine of either server moves it on; both see it.
    wait_status(b, gw, "active")
    assert describe(a, gw).status == "active"
    cgw = make_cgw(b).customer_gateway_id
    vco = a.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw,
                                                               local_subnet="10.1.0.0/16", remote_subnet="172.16.0.0/16",
                                                               ike_config=json.dumps({"Psk": "SharedPsk-1"}))).body.vpn_connection_id
    seen = b.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)).body
    assert (seen.customer_gateway_id, seen.ike_config.psk) == (cgw, "SharedPsk-1"), "written on A, read on B, the PSK opened with the shared key"
    wait_status(b, gw, "active")
    b.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(region_id=REGION, vpn_connection_id=vco, name="renamed"))
    assert a.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)).body.name == "renamed"
    wait_status(a, gw, "active")
    vss = a.create_ssl_vpn_server(m.CreateSslVpnServerRequest(region_id=REGION, vpn_gateway_id=gw, client_ip_pool="192.168.0.0/24", local_subnet="10.1.0.0/16")).body.ssl_vpn_server_id
    wait_status(b, gw, "active")
    vsc = b.create_ssl_vpn_client_cert(m.CreateSslVpnClientCertRequest(region_id=REGION, ssl_vpn_server_id=vss)).body.ssl_vpn_client_cert_id
    cert = a.describe_ssl_vpn_client_cert(m.DescribeSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=vsc)).body
    assert "BEGIN" in cert.client_key and cert.ca_cert, "a key sealed on B opens on A"
    wait_status(b, gw, "active")
    b.delete_ssl_vpn_client_cert(m.DeleteSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=vsc))
    wait_status(a, gw, "active")
    a.delete_ssl_vpn_server(m.DeleteSslVpnServerRequest(region_id=REGION, ssl_vpn_server_id=vss))
    wait_status(b, gw, "active")
    b.delete_vpn_connection(m.DeleteVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco))
    wait_status(a, gw, "active")
    a.delete_vpn_gateway(m.DeleteVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw))
    wait_gone(b, gw)


def test_a_client_token_retried_on_the_other_server_gets_the_first_answer(cluster):
    a, b = cluster.clients()
    first = a.create_vpc(m.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/8", client_token="tok-1")).body.vpc_id
    again = b.create_vpc(m.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/8", client_token="tok-1")).body.vpc_id
    assert again == first
    assert error(b.create_vpc, m.CreateVpcRequest(region_id=REGION, cidr_block="172.16.0.0/12", client_token="tok-1"))[0] == "IdempotentParameterMismatch"
    assert len(a.describe_vpcs(m.DescribeVpcsRequest(region_id=REGION)).body.vpcs.vpc) == 1


def signed_url(endpoint, action, **params):
    """A request signed by the legacy official SDK's RPC signer (with its own SignatureNonce)."""
    ak, secret = KEYS["alice"]
    base = {"Action": action, "Version": "2016-04-28", "RegionId": REGION, **params}
    path, _ = rpc_signature_composer.get_signed_url(base, ak, secret, "JSON", "GET", {})
    return f"http://{endpoint}{path}"


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_a_nonce_used_on_one_server_is_refused_by_the_other(cluster):
    a, b = cluster.servers
    url = signed_url(a.endpoint, "DescribeVpcs")
    assert fetch(url)[0] == 200
    status, body = fetch(url.replace(a.endpoint, b.endpoint))
    assert (status, body["Code"]) == (400, "SignatureNonceUsed"), body
    assert fetch(url)[1]["Code"] == "SignatureNonceUsed", "and by itself"


def test_parallel_writes_to_one_gateway_over_both_servers_let_exactly_one_through():
    cluster = Cluster(transition_ms=5000).start()
    try:
        a, b = cluster.clients()
        vpc = make_vpc(a)
        vsw = make_vsw(a, vpc)
        gw = a.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY")).body.vpn_gateway_id
        wait_status(a, gw, "active", timeout=15)
        cgws = [make_cgw(b if i % 2 else a).customer_gateway_id for i in range(50)]

        def create(i):
            c = (a, b)[i % 2]
            try:
                c.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgws[i],
                                                                     local_subnet="10.1.0.0/16", remote_subnet=f"172.16.{i}.0/24"))
                return "ok"
            except TeaException as e:
                return e.code

        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            outcomes = list(pool.map(create, range(50)))
        assert outcomes.count("ok") == 1, outcomes
        assert outcomes.count("VpnGateway.Configuring") == 49, outcomes
        listed = b.describe_vpn_connections(m.DescribeVpnConnectionsRequest(region_id=REGION, vpn_gateway_id=gw)).body
        assert listed.total_count == 1
    finally:
        cluster.stop()


def test_a_server_killed_mid_burst_loses_no_acknowledged_write():
    cluster = Cluster().start()
    try:
        a, b = cluster.clients()
        tokens = [f"burst-{i}" for i in range(120)]
        ips = {t: next_ip() for t in tokens}
        answers = {}

        def write(i):
            t = tokens[i]
            c = (a, b)[i % 2]
            try:
                answers[t] = c.create_customer_gateway(m.CreateCustomerGatewayRequest(region_id=REGION, ip_address=ips[t], client_token=t)).body.customer_gateway_id
            except Exception:  # the server went away: the answer is lost, the write may or may not be
                pass

        killer = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        victim = cluster.servers[0]

        def kill():
            time.sleep(0.15)
            victim.proc.send_signal(signal.SIGKILL)
            victim.proc.wait(timeout=30)
            victim.proc = None

        killed = killer.submit(kill)
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(write, range(len(tokens))))
        killed.result()
        assert len(answers) < len(tokens), "the kill came too late to lose any answer"
        acknowledged = dict(answers)
        # Every write whose answer was lost is retried on the survivor, with its token.
        for t in tokens:
            if t not in answers:
                answers[t] = b.create_customer_gateway(m.CreateCustomerGatewayRequest(region_id=REGION, ip_address=ips[t], client_token=t)).body.customer_gateway_id
        listed = b.describe_customer_gateways(m.DescribeCustomerGatewaysRequest(region_id=REGION, page_size=50))
        total = listed.body.total_count
        ids = []
        for page in range(1, (total + 49) // 50 + 1):
            ids += [g.customer_gateway_id for g in b.describe_customer_gateways(m.DescribeCustomerGatewaysRequest(region_id=REGION, page_size=50, page_number=page)).body.customer_gateways.customer_gateway]
        assert sorted(ids) == sorted(answers.values()), "each token's write exactly once"
        assert set(acknowledged.values()) <= set(ids), "every acknowledged write is there"
    finally:
        cluster.stop()


def dump_pg(url):
    out = subprocess.run(["pg_dump", "--data-only", url], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def write_known_secrets(c):
    vpc = make_vpc(c)
    vsw = make_vsw(c, vpc)
    gw = c.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY")).body.vpn_gateway_id
    wait_status(c, gw, "active")
    cgw = make_cgw(c, asn=65010, auth_key="KnownAuthKey-77").customer_gateway_id
    vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/16",
                                                               remote_subnet="172.16.0.0/16", ike_config=json.dumps({"Psk": "KnownPsk-4711"}), client_token="known")).body.vpn_connection_id
    return vco


def test_the_database_holds_no_secret_in_the_clear_postgres(cluster):
    a, _ = cluster.clients()
    vco = write_known_secrets(a)
    dump = dump_pg(cluster.url)
    assert vco in dump, "the dump holds the data"
    for secret in ["KnownPsk-4711", "KnownAuthKey-77", KEYS["alice"][1]]:
        assert secret not in dump, secret


def test_the_database_holds_no_secret_in_the_clear_sqlite():
    s = Server(top='store = ""\n')
    s.start()
    try:
        vco = write_known_secrets(s.tea())
        data = os.path.join(s.dir, "data")
        raw = b"".join(open(os.path.join(data, f), "rb").read() for f in os.listdir(data) if f.startswith("vpngw.db"))
        assert vco.encode() in raw, "the files hold the data"
        for secret in ["KnownPsk-4711", "KnownAuthKey-77", KEYS["alice"][1]]:
            assert secret.encode() not in raw, secret
        assert oct(os.stat(data).st_mode & 0o777) == "0o700"
        assert all(oct(os.stat(os.path.join(data, f)).st_mode & 0o777) == "0o600" for f in os.listdir(data) if f.startswith("vpngw.db"))
    finally:
        s.stop()


def test_rotating_the_master_key_keeps_every_secret_readable():
    s = Server()
    s.start()
    try:
        c = s.tea()
        vco = write_known_secrets(c)
        s.stop()
        key = os.path.join(s.dir, "data", "master.key")
        old = open(key, "rb").read()
        s.cli("admin", "rotate-master-key")
        assert open(key, "rb").read() != old and open(key + ".previous", "rb").read() == old
        s.start()
        c = s.tea()
        conn = c.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)).body
        assert conn.ike_config.psk == "KnownPsk-4711"
        cgw = c.describe_customer_gateway(m.DescribeCustomerGatewayRequest(region_id=REGION, customer_gateway_id=conn.customer_gateway_id)).body
        assert cgw.auth_key == "KnownAuthKey-77"
        s.stop()
        # The old key no longer opens them: the server refuses to start on it.
        open(key, "wb").write(old)
        out = subprocess.run([BIN, "serve", "--config", s.config, "--data-dir", os.path.join(s.dir, "data"), "--listen", s.endpoint],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and "does not open" in out.stderr, out.stderr
    finally:
        s.stop()
