"""A fleet on one machine: PostgreSQL, two API servers with no data plane, and three gateway
agents in two zones (two in cn-hangzhou-h, one in cn-hangzhou-i), each a lab host whose
gateways live in namespaces of its own on the lab's internet. Customer sites are configured
only from DownloadVpnConnectionConfig; every request alternates between the two API servers.

Killing an agent with `kill -9`, and its charons with it, takes down exactly its gateways'
tunnels; they come back on another agent of the same zone, with the same public address."""
import itertools
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import uuid

import pytest
from alibabacloud_vpc20160428 import models as m

from conftest import BIN, Server, fresh_pg_database, psql
from helpers import REGION, make_cgw, make_vpc, make_vsw, wait_status
from lab import conn, device_config, ping, ping_until, wait_conn

ZONE_A, ZONE_B = "cn-hangzhou-h", "cn-hangzhou-i"
LEASE_MS = 3000
VPC_HOST = "10.1.0.1"


class Agent:
    """One `vpngw agent` process: a lab host of its own."""

    def __init__(self, fleet, name, zone):
        self.fleet, self.name, self.zone = fleet, name, zone
        self.dir = tempfile.mkdtemp(prefix=f"vpngw-agent-{name}-")
        self.run_dir = f"/run/vpngw/{fleet.lab}-{name}"
        self.config = os.path.join(self.dir, "agent.toml")
        with open(self.config, "w") as f:
            f.write(fleet.top + f'\n[dataplane]\nmode = "lab"\nlab_name = "{fleet.lab}"\nlab_host = "{name}"\nreconcile_interval_ms = 500\n'
                    f'\n[agent]\nname = "{name}"\nzone = "{zone}"\nlease_ms = {LEASE_MS}\n')
        self.proc = None

    def start(self):
        self.log = open(os.path.join(self.dir, "agent.log"), "a")
        self.proc = subprocess.Popen([BIN, "agent", "--config", self.config, "--data-dir", os.path.join(self.dir, "data")], stdout=self.log, stderr=self.log)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.fleet.agent_row(self.name):
                return self
            assert self.proc.poll() is None, open(os.path.join(self.dir, "agent.log")).read()
            time.sleep(0.1)
        raise AssertionError(f"agent {self.name} did not register")

    def kill(self):
        """kill -9 of the agent and of every charon it started: a host lost."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None
        for pid_file in itertools.chain(*[[os.path.join(d, f) for f in fs if f == "charon.pid"] for d, _, fs in os.walk(self.run_dir)]):
            try:
                os.kill(int(open(pid_file).read().strip()), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
            self.proc = None

    def ns(self, gw):
        return f"{self.fleet.lab}-{self.name}-{gw}"

    def sock(self, gw):
        return f"{self.run_dir}/gw/{gw}/charon.vici"

    def sas(self, gw):
        return subprocess.run(["swanctl", "--list-sas", "--raw", "--uri", f"unix://{self.sock(gw)}"], capture_output=True, text=True, timeout=10).stdout


class Fleet:
    def __init__(self):
        self.lab = "f" + uuid.uuid4().hex[:5]
        self.url = fresh_pg_database()
        key = os.path.join(tempfile.mkdtemp(prefix="vpngw-fleet-"), "master.key")
        self.top = f'store = "{self.url}"\nmaster_key_file = "{key}"\n'
        lab = f'\n[dataplane]\nlab_name = "{self.lab}"\n'
        self.servers = [Server(transition_ms=150, top=self.top, extra=lab) for _ in range(2)]
        self.agents = {}
        self.turn = itertools.count()

    def start(self):
        for s in self.servers:
            s.start()
        for name, zone in [("a1", ZONE_A), ("a2", ZONE_A), ("b1", ZONE_B)]:
            self.agents[name] = Agent(self, name, zone).start()
        return self

    def stop(self):
        for a in self.agents.values():
            a.stop()
        # `lab down` removes every namespace of the lab, a killed agent's too; its files go here.
        self.servers[0].cli("lab", "down")
        for a in self.agents.values():
            subprocess.run(["rm", "-rf", a.run_dir])
        for s in self.servers:
            s.stop()

    @property
    def c(self):
        """The SDK client of the next API server in turn."""
        return self.servers[next(self.turn) % 2].tea()

    def agent_row(self, name):
        return psql(self.url, f"SELECT epoch FROM agents WHERE name = '{name}' AND lease_until_ms > (extract(epoch from clock_timestamp()) * 1000)::bigint").strip()

    def fleet_status(self):
        return json.loads(self.servers[0].cli("fleet", "--json"))

    def placed(self, side):
        return psql(self.url, f"SELECT agent FROM placements WHERE side = '{side}'").strip()

    def site(self, name, ip, subnet, vco, device="strongswan", edit=lambda text: text):
        path = os.path.join(self.servers[0].dir, f"site-{name}.conf")
        with open(path, "w") as f:
            f.write(edit(device_config(self.servers[next(self.turn) % 2], vco, device)))
        self.servers[0].cli("lab", "site", "create", name, "--ip", ip, "--subnet", subnet, "--swanctl", path)

    def site_ns(self, name):
        return f"{self.lab}-site-{name}"


@pytest.fixture(scope="module")
def fleet():
    if os.environ.get("VPNGW_SDK_STORE") == "postgres":
        pytest.skip("a fleet is always on PostgreSQL: it ran in the first pass")
    f = Fleet().start()
    yield f
    f.stop()
    left = [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split() if n.startswith(f.lab)]
    assert not left, f"the fleet left namespaces behind: {left}"


def gateway(f, dual=False):
    vpc = make_vpc(f.c)
    args = dict(region_id=REGION, vpc_id=vpc, v_switch_id=make_vsw(f.c, vpc, "10.1.0.0/16", ZONE_A), bandwidth=5, instance_charge_type="POSTPAY")
    if dual:
        args["disaster_recovery_vswitch_id"] = make_vsw(f.c, vpc, "10.2.0.0/16", ZONE_B)
    gw = f.c.create_vpn_gateway(m.CreateVpnGatewayRequest(**args)).body.vpn_gateway_id
    wait_status(f.c, gw, "active", timeout=30)
    return gw


_sites = iter(range(1, 100))


def all_logs(f, vco):
    """Every log line of the last ten minutes, page by page, each page from the next server."""
    lines, number = [], 1
    while True:
        b = f.c.describe_vpn_connection_logs(m.DescribeVpnConnectionLogsRequest(region_id=REGION, vpn_connection_id=vco, minute_period=10, page_size=50, page_number=number)).body
        lines += b.data.logs
        if b.count < 50:
            return lines
        number += 1


def packets_in(agent, gw):
    """ESP packets the gateway's charon on this agent received, over its CHILD_SAs."""
    return sum(int(n) for n in re.findall(r"packets-in=(\d+)", agent.sas(gw)))


def wait_down(f, vco, side, dead, tunnel=None, timeout=20):
    """When the tunnel(s) of `side` stopped reading established after its agent `dead` died.

    The commit that takes a side off a dead agent sets its tunnels not established; the new
    agent may bring them up again within a tenth of a second, faster than a poll can see. So the
    moment is the first of: a read that is not established, or the side no longer on `dead`
    (that commit is where the status went down). Until then the tunnel reads established only
    for as long as the dead agent's lease ran."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        d = conn(f.c, vco)
        s = d.status if tunnel is None else [t.status for t in d.tunnel_options_specification.tunnel_options if t.role == tunnel][0]
        if s != "ipsec_sa_established" or f.placed(side) != dead:
            return time.time()
        time.sleep(0.05)
    raise AssertionError(f"{vco} still reads established and {side} is still on {dead}, {timeout} s after its agent died")


def test_a_single_tunnel_gateway_moves_to_the_other_agent_of_its_zone_and_a_restarted_agent_keeps_off_it(fleet):
    f = fleet
    gw = gateway(f)
    n = next(_sites)
    site, ip, subnet, host = f"s{n}", f"203.0.113.{n}", f"10.{100 + n}.0.0/24", f"10.{100 + n}.0.1"
    cgw = make_cgw(f.c, ip_address=ip).customer_gateway_id
    vco = f.c.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/16",
                                                                 remote_subnet=subnet, effect_immediately=True)).body.vpn_connection_id
    wait_status(f.c, gw, "active", timeout=30)
    f.site(site, ip, subnet, vco)
    wait_conn(f.c, vco, "ipsec_sa_established", timeout=30)
    assert ping_until(f.site_ns(site), host, VPC_HOST), "customer → VPC through the first agent"
    owner = f.placed(f"{gw}/master")
    assert owner in ("a1", "a2"), f"placed in its zone: {owner}"
    other = "a2" if owner == "a1" else "a1"
    public = f.c.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body.internet_ip
    # The live questions reach the agent that runs the gateway, from either API server.
    logs = f.c.describe_vpn_connection_logs(m.DescribeVpnConnectionLogsRequest(region_id=REGION, vpn_connection_id=vco, minute_period=10)).body.data.logs
    assert logs and all(vco in line for line in logs)

    killed = time.time()
    f.agents[owner].kill()
    down = wait_down(f, vco, f"{gw}/master", owner, timeout=LEASE_MS / 1000 + 15)
    wait_conn(f.c, vco, "ipsec_sa_established", timeout=LEASE_MS / 1000 + 30)
    up = time.time()
    assert f.placed(f"{gw}/master") == other, "moved within its zone"
    assert ping_until(f.site_ns(site), host, VPC_HOST, timeout=15), "customer → VPC through the other agent"
    assert subprocess.run(["ip", "-n", f.agents[other].ns(gw), "-4", "addr", "show", "dev", "pub0"], capture_output=True, text=True).stdout.count(public) == 1, "the same public address"
    assert f.c.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body.internet_ip == public
    after = [line for line in all_logs(f, vco) if line[:23] >= time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(up - 1))]
    assert any("CHILD_SA" in line and "established" in line for line in after), "the new agent answers for the gateway's log"
    print(f"\nsingle tunnel: down after {down - killed:.1f} s, established again after {up - killed:.1f} s (lease {LEASE_MS} ms)")

    # The killed agent comes back after its lease expired: it must not touch what it lost. (The
    # site may still replace its IKE_SA, when its DPD finds the dead agent gone: the new owner's
    # charon must be the same process, still with an established SA.)
    charon = open(f"{f.agents[other].run_dir}/gw/{gw}/charon.pid").read().strip()
    f.agents[owner].start()
    time.sleep(LEASE_MS / 1000 + 2)
    assert f.placed(f"{gw}/master") == other, "the new owner keeps the gateway"
    assert open(f"{f.agents[other].run_dir}/gw/{gw}/charon.pid").read().strip() == charon, "the new owner's charon was not disturbed"
    assert "state=ESTABLISHED" in f.agents[other].sas(gw)
    assert not os.path.exists(f"/run/netns/{f.agents[owner].ns(gw)}"), "the returning agent removed its stale copy, not the new owner's"
    assert conn(f.c, vco).status == "ipsec_sa_established"
    assert ping_until(f.site_ns(site), host, VPC_HOST, timeout=5)


def test_a_dual_tunnel_connection_keeps_flowing_through_the_slave_while_the_master_moves(fleet):
    f = fleet
    gw = gateway(f, dual=True)
    assert f.placed(f"{gw}/slave") == "b1" and f.placed(f"{gw}/master") in ("a1", "a2"), "the two sides in two zones"
    n = next(_sites)
    site, ip, subnet, host = f"s{n}", f"203.0.113.{n}", f"10.{100 + n}.0.0/24", f"10.{100 + n}.0.1"
    cgw = make_cgw(f.c, ip_address=ip).customer_gateway_id
    tos = m.CreateVpnConnectionRequestTunnelOptionsSpecification
    tike = m.CreateVpnConnectionRequestTunnelOptionsSpecificationTunnelIkeConfig
    vco = f.c.create_vpn_connection(m.CreateVpnConnectionRequest(
        region_id=REGION, vpn_gateway_id=gw, local_subnet="10.1.0.0/16", remote_subnet=subnet, effect_immediately=True,
        tunnel_options_specification=[
            tos(customer_gateway_id=cgw, role="master", tunnel_ike_config=tike(psk="master-key", ike_version="ikev2")),
            tos(customer_gateway_id=cgw, role="slave", tunnel_ike_config=tike(psk="slave-key", ike_version="ikev2")),
        ])).body.vpn_connection_id
    wait_status(f.c, gw, "active", timeout=30)
    f.site(site, ip, subnet, vco)
    wait_conn(f.c, vco, "ipsec_sa_established", tunnel="master", timeout=30)
    wait_conn(f.c, vco, "ipsec_sa_established", tunnel="slave", timeout=30)
    assert ping_until(f.site_ns(site), host, VPC_HOST)
    owner = f.placed(f"{gw}/master")
    other = "a2" if owner == "a1" else "a1"
    # The site sends through one of its two tunnels (the newer); make it the master's, so that
    # the master's agent dying costs traffic (the customer side closes the master's IKE_SA, and
    # the master's agent negotiates it again).
    for _ in range(5):
        before = (packets_in(f.agents[owner], gw), packets_in(f.agents["b1"], gw))
        for _ in range(3):
            ping(f.site_ns(site), host, VPC_HOST)
        carried = (packets_in(f.agents[owner], gw) - before[0], packets_in(f.agents["b1"], gw) - before[1])
        if carried[0] >= 3:
            break
        subprocess.run(["swanctl", "--terminate", "--ike", f"{vco}-master", "--uri", f"unix:///run/vpngw/{f.lab}/site/{site}/charon.vici"], capture_output=True, timeout=10)
        time.sleep(1)
        wait_conn(f.c, vco, "ipsec_sa_established", tunnel="master", timeout=30)
        # (The site's two CHILD_SAs share its selectors: while it settles on the new one, an
        # answer may be lost; the next round measures again.)
        ping_until(f.site_ns(site), host, VPC_HOST, timeout=10)
    assert carried[0] >= 3, f"the master carries the traffic: {carried}"

    # Pings every 100 ms while the master's agent dies: how long no answer came.
    pinger = subprocess.Popen(["ip", "netns", "exec", f.site_ns(site), "ping", "-n", "-D", "-i", "0.1", "-W", "1", "-I", host, VPC_HOST],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(1)
    killed = time.time()
    f.agents[owner].kill()
    wait_down(f, vco, f"{gw}/master", owner, tunnel="master", timeout=LEASE_MS / 1000 + 15)
    assert conn(f.c, vco).tunnel_options_specification.tunnel_options[1].status == "ipsec_sa_established" or \
        [t.status for t in conn(f.c, vco).tunnel_options_specification.tunnel_options if t.role == "slave"] == ["ipsec_sa_established"], "the slave stays up"
    wait_conn(f.c, vco, "ipsec_sa_established", tunnel="master", timeout=LEASE_MS / 1000 + 30)
    assert f.placed(f"{gw}/master") == other
    time.sleep(2)
    pinger.send_signal(signal.SIGINT)
    out = pinger.communicate(timeout=10)[0]
    answered = sorted(float(t) for t in re.findall(r"^\[(\d+\.\d+)\].*bytes from", out, re.M))
    after = [t for t in answered if t > killed]
    assert after, "traffic flows again"
    gap = max(b - a for a, b in zip([killed] + after, after + [after[-1]]))
    print(f"\ndual tunnel: longest gap without answers {gap:.1f} s after the master's agent died (lease {LEASE_MS} ms)")
    # The site notices the dead master only by DPD; before that, the master is back on the
    # other agent of its zone (the gateway initiates): the gap is bounded by the failover.
    assert gap < LEASE_MS / 1000 + 5, gap
    f.agents[owner].start()

    # Zone B loses its only agent: the slave side has nowhere to go, reads down, and the
    # operator's view says why; the agent's return brings it back.
    f.agents["b1"].kill()
    wait_down(f, vco, f"{gw}/slave", "b1", tunnel="slave", timeout=LEASE_MS / 1000 + 15)
    st = f.fleet_status()
    assert [gw + "/slave", ZONE_B] in st["unplaced"], st
    assert not [a for a in st["agents"] if a["name"] == "b1"][0]["alive"]
    assert [t.status for t in conn(f.c, vco).tunnel_options_specification.tunnel_options if t.role == "master"] == ["ipsec_sa_established"]
    f.agents["b1"].start()
    wait_conn(f.c, vco, "ipsec_sa_established", tunnel="slave", timeout=30)
    assert f.placed(f"{gw}/slave") == "b1"


def test_a_bgp_session_and_what_it_learned_follow_their_side_to_another_agent(fleet):
    f = fleet
    gw = gateway(f)
    n = next(_sites)
    site, ip, host = f"s{n}", f"203.0.113.{n}", f"10.{100 + n}.0.1"
    cgw = make_cgw(f.c, ip_address=ip, asn=65040).customer_gateway_id
    vco = f.c.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="0.0.0.0/0",
                                                                 remote_subnet="0.0.0.0/0", effect_immediately=True,
                                                                 bgp_config=json.dumps({"EnableBgp": "true", "TunnelCidr": "169.254.40.0/30"}))).body.vpn_connection_id
    wait_status(f.c, gw, "active", timeout=30)
    prefix = f"10.{100 + n}.0.0/24"
    head = "protocol static site {\n  ipv4;\n"
    f.site(site, ip, prefix, vco, "strongswan-bird", lambda text: text.replace(head, head + f"  route {prefix} blackhole;\n"))
    owner = f.placed(f"{gw}/master")
    other = "a2" if owner == "a1" else "a1"

    def bgp_up_with_route():
        d = conn(f.c, vco)
        routes = f.c.describe_vpn_route_entries(m.DescribeVpnRouteEntriesRequest(region_id=REGION, vpn_gateway_id=gw, route_entry_type="bgp")).body.vpn_route_entries.vpn_route_entry
        return d.vpn_bgp_config.status == "success" and [r.route_dest for r in routes] == [prefix]

    def wait_for(cond, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline and not cond():
            time.sleep(0.2)
        return cond()

    assert wait_for(bgp_up_with_route, 40), "the session runs on its agent and learned the site's prefix"
    assert ping_until(f.agents[owner].ns(gw), "10.1.0.1", host, timeout=20), "the VPC reaches the learned prefix"
    f.agents[owner].kill()
    assert wait_for(lambda: f.placed(f"{gw}/master") == other, LEASE_MS / 1000 + 15), "moved within its zone"
    assert wait_for(bgp_up_with_route, 60), "the session is up again on the new agent, with what it learned"
    assert os.path.exists(f"{f.agents[other].run_dir}/gw/{gw}/bird.pid"), "the new agent runs the speaker"
    assert ping_until(f.agents[other].ns(gw), "10.1.0.1", host, timeout=20)
    f.agents[owner].start()
