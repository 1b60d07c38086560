"""SSL-VPN end to end (lab mode): a real OpenVPN server per SSL-VPN server, and OpenVPN clients
in namespaces of their own configured only from DescribeSslVpnClientCert's ClientConfig."""
import os
import re
import signal
import subprocess
import time

from alibabacloud_vpc20160428 import models as m

from helpers import REGION, make_vpc, make_vsw, wait_status
from lab import ROAD_WARRIOR, Lab, ping_until


class Client:
    """`openvpn --config <ClientConfig>` in a site namespace."""

    def __init__(self, lab, site, config, n=0):
        self.ns = lab.site_ns(site)
        self.path = os.path.join(lab.server.dir, f"{site}-{n}.ovpn")
        self.log = os.path.join(lab.server.dir, f"{site}-{n}.openvpn.log")
        with open(self.path, "w") as f:
            f.write(config)
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, "openvpn", "--config", self.path, "--log", self.log],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def address(self, pool_prefix, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run(["ip", "-n", self.ns, "-4", "-o", "addr"], capture_output=True, text=True).stdout
            found = re.search(rf"inet ({re.escape(pool_prefix)}\d+)/", out)
            if found:
                return found.group(1)
            time.sleep(0.1)
        return None

    def log_text(self):
        with open(self.log) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def wait_for(fn, timeout=20, step=0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(step)
    return fn()


def ssl_gateway(c):
    vpc = make_vpc(c)
    vsw = make_vsw(c, vpc, "10.1.0.0/16", "cn-hangzhou-h")
    gw = c.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY", enable_ssl=True)).body.vpn_gateway_id
    wait_status(c, gw, "active", timeout=30)
    return gw


def profile(c, cert):
    return c.describe_ssl_vpn_client_cert(m.DescribeSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=cert)).body.client_config


def all_logs(c, vss, **kw):
    """Every log line of the last ten minutes, page by page."""
    lines, n = [], 1
    while True:
        b = c.describe_vpn_ssl_server_logs(m.DescribeVpnSslServerLogsRequest(region_id=REGION, vpn_ssl_server_id=vss, minute_period=10, page_size=50, page_number=n, **kw)).body
        lines += b.data.logs or []
        if n * 50 >= b.count:
            return lines
        n += 1


def server_of(c, vss):
    return c.describe_ssl_vpn_servers(m.DescribeSslVpnServersRequest(region_id=REGION, ssl_vpn_server_id=vss)).body.ssl_vpn_servers.ssl_vpn_server[0]


def test_an_openvpn_client_connects_from_its_profile_reaches_local_subnet_and_is_cut_off_when_revoked():
    lab = Lab().start()
    clients = []
    try:
        c = lab.c
        gw = ssl_gateway(c)
        vss = c.create_ssl_vpn_server(m.CreateSslVpnServerRequest(region_id=REGION, vpn_gateway_id=gw, client_ip_pool="192.168.100.0/24", local_subnet="10.1.0.0/16", proto="UDP", port=1195)).body.ssl_vpn_server_id
        wait_status(c, gw, "active", timeout=30)
        cert = c.create_ssl_vpn_client_cert(m.CreateSslVpnClientCertRequest(region_id=REGION, ssl_vpn_server_id=vss, name="laptop")).body.ssl_vpn_client_cert_id
        started = int(time.time()) - 1

        lab.site("laptop", "203.0.113.160", "10.160.0.0/24")
        cl_profile = profile(c, cert)
        cl = Client(lab, "laptop", cl_profile)
        clients.append(cl)
        vip = cl.address("192.168.100.")
        assert vip, "the client got an address from ClientIpPool: " + cl.log_text()[-800:]
        assert ping_until(cl.ns, vip, "10.1.0.1"), "and reaches LocalSubnet through the tunnel"

        s = wait_for(lambda: (lambda s: s if s.connections == 1 else None)(server_of(c, vss)))
        assert s and s.connections == 1 and s.max_connections == 5
        seen = c.describe_ssl_vpn_clients(m.DescribeSslVpnClientsRequest(region_id=REGION, vpn_gateway_id=gw)).body
        assert seen.total_count == 1
        info = seen.client_info_list[0]
        assert (info.common_name, info.private_ip, info.ip, info.status) == (cert, vip, "203.0.113.160", "online")
        assert int(info.port) > 0 and info.connected_time >= started * 1000 and info.receive_bytes > 0

        logs = c.describe_vpn_ssl_server_logs(m.DescribeVpnSslServerLogsRequest(region_id=REGION, vpn_ssl_server_id=vss, minute_period=10, page_size=50)).body
        assert logs.count > 0 and logs.is_completed
        mine = c.describe_vpn_ssl_server_logs(m.DescribeVpnSslServerLogsRequest(region_id=REGION, vpn_ssl_server_id=vss, ssl_vpn_client_cert_id=cert, from_=started, to=int(time.time()) + 1, page_size=50)).body
        assert mine.count > 0 and all(cert in line for line in mine.data.logs), "the log shows the session"
        assert any("Peer Connection Initiated" in line or "VERIFY OK" in line for line in mine.data.logs)

        # Revoked: the connected client is told to stop at once ...
        c.delete_ssl_vpn_client_cert(m.DeleteSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=cert))
        wait_status(c, gw, "active", timeout=30)
        assert wait_for(lambda: cl.proc.poll() is not None, timeout=20), "the revoked client was disconnected"
        assert server_of(c, vss).connections == 0
        # ... and the same profile can no longer connect: the server refuses it and says why.
        again = Client(lab, "laptop", cl_profile)
        clients.append(again)
        refused = wait_for(lambda: [line for line in all_logs(c, vss) if "VERIFY ERROR" in line and "revoked" in line], timeout=30)
        assert refused, "the server refused the revoked certificate: " + "\n".join(all_logs(c, vss)[-15:])
        assert again.address("192.168.100.", timeout=3) is None and server_of(c, vss).connections == 0
        assert not any(" MANAGEMENT: " in line for line in all_logs(c, vss)), "vpngw's own requests are not the customer's log"
    finally:
        for cl in clients:
            cl.stop()
        lab.stop()


def test_openvpn_survives_a_restart_of_vpngw_and_a_change_restarts_it():
    lab = Lab(persist=True).start()
    clients = []
    try:
        c = lab.c
        gw = ssl_gateway(c)
        vss = c.create_ssl_vpn_server(m.CreateSslVpnServerRequest(region_id=REGION, vpn_gateway_id=gw, client_ip_pool="192.168.100.0/24", local_subnet="10.1.0.0/16")).body.ssl_vpn_server_id
        wait_status(c, gw, "active", timeout=30)
        cert = c.create_ssl_vpn_client_cert(m.CreateSslVpnClientCertRequest(region_id=REGION, ssl_vpn_server_id=vss)).body.ssl_vpn_client_cert_id
        lab.site("desk", "203.0.113.161", "10.161.0.0/24")
        cl = Client(lab, "desk", profile(c, cert))
        clients.append(cl)
        vip = cl.address("192.168.100.")
        assert vip and ping_until(cl.ns, vip, "10.1.0.1")
        pid_file = f"{lab.run_dir}/ssl/{vss}/openvpn.pid"
        pid = int(open(pid_file).read())
        since = wait_for(lambda: c.describe_ssl_vpn_clients(m.DescribeSslVpnClientsRequest(region_id=REGION, vpn_gateway_id=gw)).body.client_info_list)[0].connected_time
        # vpngw goes away and comes back: the same OpenVPN keeps the same session.
        lab.server.stop(signal.SIGKILL)
        lab.start()
        c = lab.c
        time.sleep(2)
        assert int(open(pid_file).read()) == pid, "the running OpenVPN was adopted"
        after = wait_for(lambda: c.describe_ssl_vpn_clients(m.DescribeSslVpnClientsRequest(region_id=REGION, vpn_gateway_id=gw)).body.client_info_list)
        assert [x.connected_time for x in after] == [since], "the client stayed connected"
        assert ping_until(cl.ns, vip, "10.1.0.1", timeout=5)
        # A changed setting restarts OpenVPN with it; the client reconnects by itself.
        c.modify_ssl_vpn_server(m.ModifySslVpnServerRequest(region_id=REGION, ssl_vpn_server_id=vss, local_subnet="10.1.0.0/16,10.2.0.0/16"))
        wait_status(c, gw, "active", timeout=30)
        assert int(open(pid_file).read()) != pid
        assert "push \"route 10.2.0.0 255.255.0.0\"" in open(f"{lab.run_dir}/ssl/{vss}/openvpn.conf").read()
        # OpenVPN dies: the next pass starts it again.
        pid = int(open(pid_file).read())
        os.kill(pid, signal.SIGKILL)
        assert wait_for(lambda: int(open(pid_file).read()) != pid, timeout=10), "a dead OpenVPN is started again"
    finally:
        for cl in clients:
            cl.stop()
        lab.stop()
        lab.down()


def test_ssl_and_ipsec_server_clients_share_the_gateways_ssl_connections():
    lab = Lab().start()
    clients = []
    try:
        c = lab.c
        gw = ssl_gateway(c)  # SslConnections 5
        c.create_ipsec_server(m.CreateIpsecServerRequest(region_id=REGION, vpn_gateway_id=gw, local_subnet="10.1.0.0/16", client_ip_pool="172.31.99.0/24", psk="shared-cap-1"))
        wait_status(c, gw, "active", timeout=30)
        vss = c.create_ssl_vpn_server(m.CreateSslVpnServerRequest(region_id=REGION, vpn_gateway_id=gw, client_ip_pool="192.168.100.0/24", local_subnet="10.1.0.0/16")).body.ssl_vpn_server_id
        wait_status(c, gw, "active", timeout=30)
        gw_ip = c.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body.internet_ip
        # One IPsec road warrior first ...
        lab.site("rw", "203.0.113.170", "10.170.0.0/24", config=ROAD_WARRIOR.format(me="203.0.113.170", gw=gw_ip, psk="shared-cap-1".encode().hex()))
        ipsec_online = lambda: c.list_ipsec_servers(m.ListIpsecServersRequest(region_id=REGION, vpn_gateway_id=gw)).body.ipsec_servers[0].online_client_count
        assert wait_for(lambda: ipsec_online() == 1, timeout=30)
        # ... then five SSL-VPN clients: only four fit beside it.
        lab.site("many", "203.0.113.171", "10.171.0.0/24")
        for i in range(5):
            cert = c.create_ssl_vpn_client_cert(m.CreateSslVpnClientCertRequest(region_id=REGION, ssl_vpn_server_id=vss)).body.ssl_vpn_client_cert_id
            clients.append(Client(lab, "many", profile(c, cert), n=i))
            if i < 4:
                assert wait_for(lambda: server_of(c, vss).connections == i + 1, timeout=30), f"client {i + 1} connects: " + clients[-1].log_text()[-1500:] + "\n".join(all_logs(c, vss)[-10:])
        time.sleep(3)
        assert server_of(c, vss).connections == 4 and ipsec_online() == 1, "five in all, the gateway's SslConnections"
        assert wait_for(lambda: clients[-1].proc.poll() is not None, timeout=10), "the newest client was turned away"
        assert all(cl.proc.poll() is None for cl in clients[:4])
        # The client list pages.
        page = lambda n: c.describe_ssl_vpn_clients(m.DescribeSslVpnClientsRequest(region_id=REGION, vpn_gateway_id=gw, page_size=3, page_number=n)).body
        p1, p2 = page(1), page(2)
        assert (p1.total_count, len(p1.client_info_list), len(p2.client_info_list)) == (4, 3, 1)
        assert len({x.common_name for x in p1.client_info_list + p2.client_info_list}) == 4
    finally:
        for cl in clients:
            cl.stop()
        lab.stop()


def test_a_compressed_tcp_server_with_a_cbc_fallback_cipher_carries_traffic():
    lab = Lab().start()
    clients = []
    try:
        c = lab.c
        gw = ssl_gateway(c)
        vss = c.create_ssl_vpn_server(m.CreateSslVpnServerRequest(region_id=REGION, vpn_gateway_id=gw, client_ip_pool="192.168.100.0/24", local_subnet="10.1.0.0/16",
                                                                 proto="TCP", port=8443, cipher="AES-192-CBC", compress=True, dns_servers="10.1.0.53")).body.ssl_vpn_server_id
        wait_status(c, gw, "active", timeout=30)
        cert = c.create_ssl_vpn_client_cert(m.CreateSslVpnClientCertRequest(region_id=REGION, ssl_vpn_server_id=vss)).body.ssl_vpn_client_cert_id
        lab.site("tcp", "203.0.113.162", "10.162.0.0/24")
        cl = Client(lab, "tcp", profile(c, cert))
        clients.append(cl)
        vip = cl.address("192.168.100.")
        assert vip, cl.log_text()[-1500:]
        assert ping_until(cl.ns, vip, "10.1.0.1"), "traffic flows, compressed, over TCP"
        log = cl.log_text()
        assert "dhcp-option DNS 10.1.0.53" in log and "compress" in log.lower(), "the server pushed its DNS server; compression is on"
    finally:
        for cl in clients:
            cl.stop()
        lab.stop()
