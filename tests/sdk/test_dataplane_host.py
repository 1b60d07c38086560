"""Host mode: vpngw drives a charon it did not start (the operator's), at a configured VICI
socket, in a configured network namespace; gateway addresses come from a pool of addresses
that charon's host really has. The test builds that host and a customer peer itself."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
from alibabacloud_vpc20160428 import models as m

from conftest import Server
from helpers import REGION, describe, make_cgw, make_vpc, make_vsw, wait_status
from lab import device_config, ping_until, wait_conn

CHARON_CONF = """charon-systemd {{
  load = random nonce aes sha1 sha2 md5 hmac gmp curve25519 openssl pem pkcs1 x509 pubkey kdf kernel-libipsec kernel-netlink socket-default vici
  install_routes = yes
  plugins {{
    vici {{
      socket = unix://{dir}/charon.vici
    }}
  }}
  journal {{
    default = -1
  }}
  filelog {{
    charon {{
      path = {dir}/charon.log
      default = 1
      ike_name = yes
      time_format = "%Y-%m-%d %H:%M:%S"
      flush_line = yes
    }}
  }}
}}
"""


def sh(*args):
    subprocess.run(args, check=True, capture_output=True)


class Host:
    """Two namespaces on one link: the operator's gateway host (192.0.2.1-2) and a peer (192.0.2.100)."""

    def __init__(self):
        tag = uuid.uuid4().hex[:6]
        self.gw, self.peer = f"h{tag}-gw", f"h{tag}-peer"
        self.dir = tempfile.mkdtemp(prefix="vpngw-host-", dir="/tmp")
        self.procs = []
        for ns in (self.gw, self.peer):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "link", "add", "eth0", "netns", self.gw, "type", "veth", "peer", "name", "eth0", "netns", self.peer)
        sh("ip", "-n", self.gw, "addr", "add", "192.0.2.1/24", "dev", "eth0")
        sh("ip", "-n", self.gw, "addr", "add", "192.0.2.2/24", "dev", "eth0")
        sh("ip", "-n", self.peer, "addr", "add", "192.0.2.100/24", "dev", "eth0")
        for ns in (self.gw, self.peer):
            sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", self.gw, "addr", "add", "10.1.0.1/32", "dev", "lo")
        sh("ip", "-n", self.peer, "addr", "add", "10.60.0.1/32", "dev", "lo")
        self.gw_sock = self.charon(self.gw, "gw")
        self.peer_sock = self.charon(self.peer, "peer")

    def charon(self, ns, name):
        d = os.path.join(self.dir, name)
        os.makedirs(d)
        with open(os.path.join(d, "strongswan.conf"), "w") as f:
            f.write(CHARON_CONF.format(dir=d))
        env = dict(os.environ, STRONGSWAN_CONF=os.path.join(d, "strongswan.conf"), TZ="UTC")
        self.procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "/usr/sbin/charon-systemd"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        sock = os.path.join(d, "charon.vici")
        deadline = time.time() + 10
        while not os.path.exists(sock) and time.time() < deadline:
            time.sleep(0.05)
        return sock

    def close(self):
        for p in self.procs:
            p.terminate()
            p.wait(timeout=10)
        for ns in (self.gw, self.peer):
            subprocess.run(["ip", "netns", "del", ns])
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def host():
    h = Host()
    yield h
    h.close()


def host_server(host, setting):
    """A host-mode server driving the host's charon; `setting` is one more [dataplane] line."""
    return Server(top='public_ip_pool = "192.0.2.0/30"\n', extra=f'\n[dataplane]\nmode = "host"\nvici_socket = "{host.gw_sock}"\nnetns = "{host.gw}"\n{setting}\nreconcile_interval_ms = 500\n')


def host_gateway(c, **kw):
    """A gateway (active) in a new VPC with a 10.1.0.0/16 VSwitch."""
    vpc = make_vpc(c)
    vsw = make_vsw(c, vpc, "10.1.0.0/16")
    gw = c.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY", **kw)).body.vpn_gateway_id
    wait_status(c, gw, "active")
    return gw


def test_host_mode_drives_the_operators_charon(host):
    server = host_server(host, f'charon_log = "{host.dir}/gw/charon.log"')
    server.start()
    try:
        c = server.tea()
        gw = host_gateway(c)
        assert describe(c, gw).internet_ip in ("192.0.2.1", "192.0.2.2"), "an address of the configured pool"
        cgw = make_cgw(c, ip_address="192.0.2.100").customer_gateway_id
        vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(
            region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/16", remote_subnet="10.60.0.0/24",
            effect_immediately=True, health_check_config=json.dumps({"enable": True, "sip": "10.1.0.1", "dip": "10.60.0.1", "interval": 1, "retry": 3}))).body.vpn_connection_id
        wait_status(c, gw, "active", timeout=30)
        conf = os.path.join(host.dir, "peer.conf")
        with open(conf, "w") as f:
            f.write(device_config(server, vco))
        sh("swanctl", "--load-all", "--noprompt", "--file", conf, "--uri", f"unix://{host.peer_sock}")
        wait_conn(c, vco, "ipsec_sa_established", timeout=30)
        assert ping_until(host.peer, "10.60.0.1", "10.1.0.1")
        # The log actions read the operator's charon log (charon_log), only this connection's lines.
        logs = c.describe_vpn_connection_logs(m.DescribeVpnConnectionLogsRequest(region_id=REGION, vpn_connection_id=vco, minute_period=10, page_size=50)).body.data.logs
        assert logs and all(vco in line for line in logs) and any("IKE_SA" in line and "established" in line for line in logs), logs
        deadline = time.time() + 15
        while time.time() < deadline and c.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)).body.vco_health_check.status != "success":
            time.sleep(0.1)
        assert c.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)).body.vco_health_check.status == "success", "probes run in the configured namespace"
    finally:
        server.stop()
    # vpngw stopped: the operator's charon and its tunnel are untouched.
    out = subprocess.run(["swanctl", "--list-sas", "--uri", f"unix://{host.gw_sock}"], capture_output=True, text=True).stdout
    assert "ESTABLISHED" in out


def test_host_mode_runs_openvpn_where_charon_is(host):
    run_dir = os.path.join(host.dir, "run")
    server = host_server(host, f'run_dir = "{run_dir}"')
    server.start()
    client = None
    try:
        c = server.tea()
        gw = host_gateway(c, enable_ssl=True)
        vss = c.create_ssl_vpn_server(m.CreateSslVpnServerRequest(region_id=REGION, vpn_gateway_id=gw, client_ip_pool="192.168.100.0/24", local_subnet="10.1.0.0/16", proto="TCP", port=1443)).body.ssl_vpn_server_id
        wait_status(c, gw, "active", timeout=30)
        cert = c.create_ssl_vpn_client_cert(m.CreateSslVpnClientCertRequest(region_id=REGION, ssl_vpn_server_id=vss)).body.ssl_vpn_client_cert_id
        profile = c.describe_ssl_vpn_client_cert(m.DescribeSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=cert)).body.client_config
        path = os.path.join(host.dir, "client.ovpn")
        with open(path, "w") as f:
            f.write(profile)
        client = subprocess.Popen(["ip", "netns", "exec", host.peer, "openvpn", "--config", path, "--log", os.path.join(host.dir, "client.log")])
        assert ping_until(host.peer, None, "10.1.0.1", timeout=30), "the client reaches LocalSubnet over TCP"
        deadline = time.time() + 10
        while time.time() < deadline and c.describe_ssl_vpn_servers(m.DescribeSslVpnServersRequest(region_id=REGION, ssl_vpn_server_id=vss)).body.ssl_vpn_servers.ssl_vpn_server[0].connections != 1:
            time.sleep(0.1)
        assert c.describe_ssl_vpn_servers(m.DescribeSslVpnServersRequest(region_id=REGION, ssl_vpn_server_id=vss)).body.ssl_vpn_servers.ssl_vpn_server[0].connections == 1
        assert os.path.exists(os.path.join(run_dir, "ssl", vss, "openvpn.pid"))
    finally:
        if client:
            client.terminate()
            client.wait(timeout=10)
        server.stop()
    assert not os.path.exists(os.path.join(run_dir, "ssl", vss, "openvpn.pid")), "without persist, vpngw stops its OpenVPN servers"


def test_host_mode_runs_the_bgp_speaker_where_charon_is(host):
    run_dir = os.path.join(host.dir, "run")
    server = host_server(host, f'run_dir = "{run_dir}"')
    # The operator's host holds the gateway's LocalBgpIp; the peer its own.
    sh("ip", "-n", host.gw, "addr", "add", "169.254.50.1/32", "dev", "lo")
    sh("ip", "-n", host.peer, "addr", "add", "169.254.50.2/32", "dev", "lo")
    server.start()
    peer_bird = os.path.join(host.dir, "peer-bird")
    os.makedirs(peer_bird)
    try:
        c = server.tea()
        gw = host_gateway(c)
        cgw = make_cgw(c, ip_address="192.0.2.100", asn=65050, auth_key="host-Key").customer_gateway_id
        vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(
            region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/16", remote_subnet="10.60.0.0/24", effect_immediately=True,
            bgp_config=json.dumps({"EnableBgp": "true", "TunnelCidr": "169.254.50.0/30"}))).body.vpn_connection_id
        wait_status(c, gw, "active", timeout=30)
        # The whole site from one download: its swanctl.conf into the peer's charon, its bird.conf
        # into a BIRD of the peer's.
        text = device_config(server, vco, "strongswan-bird")
        swanctl, bird = text.split("# ==> bird.conf <==\n")
        for name, content in (("peer.conf", swanctl), ("bird.conf", bird)):
            with open(os.path.join(peer_bird, name), "w") as f:
                f.write(content)
        sh("swanctl", "--load-all", "--noprompt", "--file", os.path.join(peer_bird, "peer.conf"), "--uri", f"unix://{host.peer_sock}")
        sh("ip", "netns", "exec", host.peer, "bird", "-c", os.path.join(peer_bird, "bird.conf"), "-s", os.path.join(peer_bird, "bird.ctl"), "-P", os.path.join(peer_bird, "bird.pid"))
        wait_conn(c, vco, "ipsec_sa_established", timeout=30)
        deadline = time.time() + 40
        while time.time() < deadline and c.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)).body.vpn_bgp_config.status != "success":
            time.sleep(0.2)
        assert c.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)).body.vpn_bgp_config.status == "success"
        assert os.path.exists(os.path.join(run_dir, "bgp", gw, "bird.pid")), "the speaker's files are under run_dir/bgp"
        # The gateway advertised its VPC to the peer, over the session.
        out = subprocess.run(["birdc", "-s", os.path.join(peer_bird, "bird.ctl"), "show", "route"], capture_output=True, text=True).stdout
        assert "10.1.0.0/16" in out, out
    finally:
        server.stop()
        subprocess.run(["sh", "-c", f"kill $(cat {peer_bird}/bird.pid)"], capture_output=True)
    assert not os.path.exists(os.path.join(run_dir, "bgp", gw, "bird.pid")), "without persist, vpngw stops its BGP speakers"
