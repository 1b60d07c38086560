"""Routes in the real data plane (lab mode): two customer sites behind two connections in
destination-routing mode; the route table decides which site a packet reaches, a standby
route takes over when a failed health check (revoke_route) withdraws the active one, and
traffic returns when it recovers. Customer sites are configured from
DownloadVpnConnectionConfig only."""
import json
import re
import subprocess
import time

import pytest
from alibabacloud_vpc20160428 import models as m

from helpers import REGION, make_cgw, make_vpc, make_vsw, sample, wait_status
from lab import Lab, conn, ping, ping_until, wait_conn

VPC_HOST = "10.1.0.1"
SHARED = "10.250.0.1"  # answers on both sites


@pytest.fixture(scope="module")
def lab():
    lab = Lab().start()
    yield lab
    lab.stop()


def packets_out(lab, gw, vco):
    """Packets the gateway sent into one connection's CHILD_SAs."""
    total = 0
    for line in lab.sas(lab.gw_sock(gw)).splitlines():
        if vco in line:
            total += sum(int(x) for x in re.findall(r"packets-out=(\d+)", line))
    return total


def carried_by(lab, gw, vco, ns, dst, timeout=30):
    """Waits until a ping to `dst` answers and went out through `vco`'s CHILD_SAs."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        before = packets_out(lab, gw, vco)
        if ping(ns, VPC_HOST, dst, wait=1) and packets_out(lab, gw, vco) > before:
            return True
        time.sleep(0.2)
    return False


def route(c, gw, dest, hop, weight):
    c.create_vpn_route_entry(m.CreateVpnRouteEntryRequest(region_id=REGION, vpn_gateway_id=gw, route_dest=dest, next_hop=hop, weight=weight, publish_vpc=True))
    wait_status(c, gw, "active", timeout=30)


def test_routes_decide_the_site_and_a_standby_takes_over(lab):
    c = lab.c
    vpc = make_vpc(c)
    vsw = make_vsw(c, vpc, "10.1.0.0/16", "cn-hangzhou-h")
    gw = c.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY")).body.vpn_gateway_id
    wait_status(c, gw, "active")
    sites = {}
    for name, ip, subnet in (("ra", "203.0.113.201", "10.201.0.0/24"), ("rb", "203.0.113.202", "10.202.0.0/24")):
        cgw = make_cgw(c, ip_address=ip).customer_gateway_id
        vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(
            region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="0.0.0.0/0", remote_subnet="0.0.0.0/0",
            effect_immediately=True, ike_config=json.dumps({"IkeVersion": "ikev2"}))).body.vpn_connection_id
        wait_status(c, gw, "active", timeout=30)
        lab.site(name, ip, subnet, vco)
        subprocess.run(["ip", "-n", lab.site_ns(name), "addr", "add", f"{SHARED}/32", "dev", "lo"], check=True)
        sites[name] = (vco, subnet.replace("0/24", "1"))
    (a, host_a), (b, host_b) = sites["ra"], sites["rb"]
    route(c, gw, "10.201.0.0/24", a, 100)
    route(c, gw, "10.202.0.0/24", b, 100)
    route(c, gw, "10.250.0.0/24", a, 100)
    route(c, gw, "10.250.0.0/24", b, 0)
    wait_conn(c, a, "ipsec_sa_established", timeout=45)
    wait_conn(c, b, "ipsec_sa_established", timeout=45)
    ns = lab.gw_ns(gw)
    assert ping_until(ns, VPC_HOST, host_a), "10.201.0.0/24 goes to site A"
    assert ping_until(ns, VPC_HOST, host_b), "10.202.0.0/24 goes to site B"
    assert not ping(ns, VPC_HOST, "10.203.0.1", wait=1), "a prefix without a route is carried by no tunnel"
    # The VPC reaches a prefix through the gateway only while the route is published to it.
    publish = dict(region_id=REGION, vpn_gateway_id=gw, route_dest="10.202.0.0/24", next_hop=b, route_type="dbr")
    c.publish_vpn_route_entry(m.PublishVpnRouteEntryRequest(publish_vpc=False, **publish))
    wait_status(c, gw, "active", timeout=30)
    assert not ping(ns, VPC_HOST, host_b, wait=1), "unpublished: the VPC has no route to site B"
    c.publish_vpn_route_entry(m.PublishVpnRouteEntryRequest(publish_vpc=True, **publish))
    wait_status(c, gw, "active", timeout=30)
    assert ping_until(ns, VPC_HOST, host_b, timeout=5), "published again"
    before = (packets_out(lab, gw, a), packets_out(lab, gw, b))
    assert ping_until(ns, VPC_HOST, SHARED)
    after = (packets_out(lab, gw, a), packets_out(lab, gw, b))
    assert after[0] > before[0] and after[1] == before[1], f"the active route's tunnel (A) carries 10.250.0.0/24: {before} → {after}"

    # A's health check fails (revoke_route): its routes are withdrawn and the standby takes over.
    c.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(region_id=REGION, vpn_connection_id=a,
        health_check_config=json.dumps({"enable": True, "sip": VPC_HOST, "dip": host_a, "interval": 1, "retry": 2, "policy": "revoke_route"})))
    wait_status(c, gw, "active", timeout=30)
    wait_conn(c, a, "ipsec_sa_established", timeout=45)
    subprocess.run(["ip", "-n", lab.site_ns("ra"), "addr", "del", f"{host_a}/32", "dev", "lo"], check=True)
    deadline = time.time() + 20
    while time.time() < deadline and c.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=a)).body.vco_health_check.status != "failed":
        time.sleep(0.1)
    assert carried_by(lab, gw, b, ns, SHARED), "the standby (B) carries the traffic"
    assert not ping(ns, VPC_HOST, host_a, wait=1), "A's own route is withdrawn (no standby)"
    # It recovers: the traffic returns to A.
    subprocess.run(["ip", "-n", lab.site_ns("ra"), "addr", "add", f"{host_a}/32", "dev", "lo"], check=True)
    assert carried_by(lab, gw, a, ns, SHARED), "the traffic returns to the active route's tunnel"


def test_a_vpn_attachment_negotiates_from_its_own_address_and_a_vco_route_steers_a_prefix_into_it(lab):
    """An attachment (no VPN gateway) runs in a namespace of its own on the lab's internet, from
    its own public address; the customer site is configured from its download. In
    destination-routing mode its routes decide what its tunnel carries: without a VCO route the
    site's subnet is unreachable, with one it answers, and after the route's deletion it is not."""
    c = lab.c
    cgw = make_cgw(c, ip_address="203.0.113.221").customer_gateway_id
    vco = c.create_vpn_attachment(m.CreateVpnAttachmentRequest(
        region_id=REGION, customer_gateway_id=cgw, local_subnet="0.0.0.0/0", remote_subnet="0.0.0.0/0", effect_immediately=True,
        ike_config=json.dumps({"IkeVersion": "ikev2"}))).body.vpn_connection_id

    def settled(status=None, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            d = conn(c, vco)
            if d.state == "init" and (status is None or d.status == status):
                return d
            time.sleep(0.1)
        raise AssertionError(f"{vco} never settled ({status}): {d.state} {d.status}")

    d = settled()
    assert d.attach_type == "NO_ASSOCIATED" and d.vpn_gateway_id == ""
    lab.site("at", "203.0.113.221", "10.221.0.0/24", vco)
    settled("ipsec_sa_established", timeout=45)
    ns = lab.gw_ns(f"att-{vco}")
    # A host behind the transit router's side (in destination-routing mode, the attachment's
    # namespace holds no LocalSubnet address of its own).
    subprocess.run(["ip", "-n", ns, "addr", "add", "10.99.0.1/32", "dev", "lo"], check=True)
    sas = lab.sas(lab.gw_sock(f"att-{vco}"))
    assert d.internet_ip in sas, "the tunnel runs from the attachment's own public address"
    assert not ping(ns, "10.99.0.1", "10.221.0.1", wait=1), "no route yet: the tunnel carries nothing"
    # The metrics follow: an established tunnel, and the data plane's passes.
    fams = lab.server.metrics()
    assert sample(fams, "vpngw_tunnels", status="ipsec_sa_established") >= 1 and sample(fams, "vpngw_reconcile_passes") > 0
    c.create_vco_route_entry(m.CreateVcoRouteEntryRequest(region_id=REGION, vpn_connection_id=vco, route_dest="10.221.0.0/24", next_hop=vco, weight=100))
    settled()
    assert ping_until(ns, "10.99.0.1", "10.221.0.1", timeout=20), "the VCO route steers 10.221.0.0/24 into the attachment's tunnel"
    assert "10.221.0.0/24" in lab.sas(lab.gw_sock(f"att-{vco}")), "carried by a CHILD_SA for the route's prefix"
    # `vpngw status` shows the tunnel as charon sees it: established, its SA's age and bytes.
    metrics_base = lab.server.metrics_url().rsplit("/", 1)[0]
    deadline = time.time() + 10
    while True:
        report = json.loads(lab.server.cli("status", "--json", "--endpoint", metrics_base))
        att = [g for g in report["gateways"] if g["id"] == f"att-{vco}"][0]
        t = att["connections"][0]["tunnels"][0]
        if t["bytes_in"] or time.time() > deadline:
            break
        time.sleep(0.5)
    assert (t["tunnel"], t["status"]) == (vco, "ipsec_sa_established") and t["established_secs"] >= 0 and t["bytes_in"] > 0 and t["packets_out"] > 0, (t, report)
    text = lab.server.cli("status", "--endpoint", metrics_base)
    assert f"{vco}: ipsec_sa_established, up " in text, text
    fams = lab.server.metrics()
    assert sample(fams, "vpngw_tunnel_sa_bytes", tunnel=vco, direction="in") > 0
    c.delete_vco_route_entry(m.DeleteVcoRouteEntryRequest(region_id=REGION, vpn_connection_id=vco, route_dest="10.221.0.0/24", next_hop=vco, weight=100))
    settled()
    deadline = time.time() + 15
    while time.time() < deadline and ping(ns, "10.99.0.1", "10.221.0.1", wait=1):
        time.sleep(0.2)
    assert not ping(ns, "10.99.0.1", "10.221.0.1", wait=1), "the route is gone: so is the path"
    # Logs and diagnosis reach the attachment's own charon.
    logs = c.describe_vpn_connection_logs(m.DescribeVpnConnectionLogsRequest(region_id=REGION, vpn_connection_id=vco, minute_period=10)).body
    assert logs.count > 0
    diag = c.diagnose_vpn_connections(m.DiagnoseVpnConnectionsRequest(region_id=REGION, vpn_connection_ids=[vco])).body.vpn_connections
    assert [d.vpn_connection_id for d in diag] == [vco]
    # Deleting it removes its namespace and frees its address.
    c.delete_vpn_attachment(m.DeleteVpnAttachmentRequest(region_id=REGION, vpn_connection_id=vco))
    deadline = time.time() + 30
    while time.time() < deadline and ns in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout:
        time.sleep(0.2)
    assert ns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    lab.delete_site("at")
