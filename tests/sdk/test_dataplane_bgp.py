"""BGP over IPsec in the lab: each BGP-enabled tunnel's session is run by the gateway's BIRD,
inside the tunnel, against a customer site configured only from DownloadVpnConnectionConfig's
`strongswan-bird` rendering (swanctl.conf and bird.conf), and the API's BGP status is what the
gateway's BIRD says.

Needs root, strongSwan and BIRD 2 (bird2), which `.ci/run` installs."""
import json
import re
import subprocess
import time

from alibabacloud_vpc20160428 import models as m

from helpers import REGION, make_cgw, wait_status
from lab import Lab, conn, device_config, ike_ids, ping, ping_until, wait_conn
# `lab`: a module-scoped lab-mode server of this module's own (the fixture of test_dataplane).
from test_dataplane import gateway, lab, new_site  # noqa: F401


def site_config(lab, vco):
    """The whole customer site (strongSwan and BIRD) from DownloadVpnConnectionConfig."""
    return device_config(lab.server, vco, "strongswan-bird")


def birdc(sock, *cmd):
    return subprocess.run(["birdc", "-s", sock, *cmd], capture_output=True, text=True, timeout=10).stdout


def bgp_status(lab, vco):
    return conn(lab.c, vco).vpn_bgp_config.status


def wait_bgp(lab, vco, status, timeout=30):
    deadline = time.time() + timeout
    seen = None
    while time.time() < deadline:
        seen = bgp_status(lab, vco)
        if seen == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"{vco}: BGP status stayed {seen!r}, never {status!r}")


def bgp_connection(lab, gw, cidr, asn=65001, key="md5-Key!"):
    c = lab.c
    name, ip, subnet, host = new_site()
    cgw = make_cgw(c, ip_address=ip, asn=asn, auth_key=key).customer_gateway_id
    vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(
        region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/16", remote_subnet=subnet, effect_immediately=True,
        bgp_config=json.dumps({"EnableBgp": "true", "TunnelCidr": cidr, "LocalAsn": "45104"}))).body.vpn_connection_id
    return vco, cgw, name, ip, subnet


def test_a_session_inside_the_tunnel_is_established_and_its_status_follows_bird(lab):
    # A lab data plane with BIRD at hand: the region's connections can use BGP.
    assert lab.c.check_vpn_bgp_enabled(m.CheckVpnBgpEnabledRequest(region_id=REGION)).body.bgp_enabled is True
    gw = gateway(lab.c)
    vco, cgw, site, ip, subnet = bgp_connection(lab, gw, "169.254.11.0/30")
    wait_conn(lab.c, vco, "ike_sa_not_established", timeout=30)
    assert bgp_status(lab, vco) == "failed", "no peer yet"
    text = site_config(lab, vco)
    lab.site(site, ip, subnet, config=text)
    wait_conn(lab.c, vco, "ipsec_sa_established", timeout=30)
    wait_bgp(lab, vco, "success")
    gw_bird = f"{lab.run_dir}/gw/{gw}/bird.ctl"
    site_bird = f"{lab.run_dir}/site/{site}/bird.ctl"
    assert "Established" in birdc(gw_bird, "show", "protocols", "all"), "the gateway's BIRD says so"
    # The gateway advertises its VPC; the site advertises its subnet: both over the session.
    assert "10.1.0.0/16" in birdc(site_bird, "show", "route"), birdc(site_bird, "show", "route")
    assert subnet in birdc(gw_bird, "show", "route"), birdc(gw_bird, "show", "route")
    # The session rides its own CHILD_SA (LocalBgpIp/32 ↔ the peer's /32).
    assert "169.254.11.1/32" in lab.sas(lab.gw_sock(gw))

    # The site's BGP stops: the status says so (BIRD: not Established), the tunnel stays up.
    birdc(site_bird, "disable", "all")
    wait_bgp(lab, vco, "failed")
    assert conn(lab.c, vco).status == "ipsec_sa_established"
    birdc(site_bird, "enable", "all")
    wait_bgp(lab, vco, "success")

    # A new AuthKey reaches BIRD without touching the IPsec SAs: the session fails until the
    # site has the new key too, and comes back; the same IKE_SA carries it throughout.
    before = ike_ids(lab.sas(lab.gw_sock(gw)))
    lab.c.modify_customer_gateway_attribute(m.ModifyCustomerGatewayAttributeRequest(region_id=REGION, customer_gateway_id=cgw, auth_key="another-Key"))
    birdc(site_bird, "restart", "all")
    wait_bgp(lab, vco, "failed")
    lab.site(site, ip, subnet, config=site_config(lab, vco))
    wait_bgp(lab, vco, "success", timeout=45)
    after = ike_ids(lab.sas(lab.gw_sock(gw)))
    # (Both sides initiate, so a duplicate IKE_SA may come and go; no new one is made.)
    assert after and set(after) <= set(before), f"the IPsec SAs were not renegotiated: {before} → {after}"

    # Another TunnelCidr (ModifyVpnConnectionAttribute): the session's CHILD_SA is replaced under
    # the same IKE_SA, and the session comes back on the new addresses.
    lab.c.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(
        region_id=REGION, vpn_connection_id=vco, bgp_config=json.dumps({"EnableBgp": "true", "TunnelCidr": "169.254.21.0/30", "LocalBgpIp": "169.254.21.1"})))
    lab.site(site, ip, subnet, config=site_config(lab, vco))
    wait_bgp(lab, vco, "success", timeout=45)
    sas = lab.sas(lab.gw_sock(gw))
    assert "169.254.21.1/32" in sas and "169.254.11.1/32" not in sas, sas
    again = ike_ids(sas)
    assert again and set(again) <= set(before), f"the IPsec SAs were not renegotiated: {before} → {again}"


def test_a_wrong_peer_asn_never_comes_up(lab):
    gw = gateway(lab.c)
    vco, cgw, site, ip, subnet = bgp_connection(lab, gw, "169.254.12.0/30", asn=65010)
    text = site_config(lab, vco)
    assert "as 65010;" in text
    # The customer's device runs another AS than its customer gateway says.
    lab.site(site, ip, subnet, config=text.replace("as 65010;", "as 65011;"))
    wait_conn(lab.c, vco, "ipsec_sa_established", timeout=30)
    site_bird = f"{lab.run_dir}/site/{site}/bird.ctl"
    # The status stays failed while the two speakers try (BIRD retries every few seconds), and
    # once one has refused the other's OPEN, the diagnosis names it.
    d, deadline = None, time.time() + 40
    while time.time() < deadline:
        assert bgp_status(lab, vco) == "failed"
        d = diagnosis(lab, vco)
        if d.failed_reason_code == "BgpPeerAsMismatch":
            break
        time.sleep(0.5)
    assert (d.severity, d.failed_reason_code) == ("Warn", "BgpPeerAsMismatch"), d.failed_reason + birdc(f"{lab.run_dir}/gw/{gw}/bird.ctl", "show", "protocols", "all")
    assert "Bad peer AS: 65011" in d.failed_reason and d.mismatch_local_param == "LocalAsn 45104, LocalBgpIp 169.254.12.1", d.failed_reason
    assert re.search(r"Bad peer AS", birdc(site_bird, "show", "protocols")), birdc(site_bird, "show", "protocols")


def diagnosis(lab, vco):
    b = lab.c.diagnose_vpn_connections(m.DiagnoseVpnConnectionsRequest(region_id=REGION, vpn_connection_ids=[vco])).body
    return b.vpn_connections[0]


def test_a_wrong_auth_key_never_comes_up_and_the_diagnosis_says_what_to_check(lab):
    gw = gateway(lab.c)
    vco, cgw, site, ip, subnet = bgp_connection(lab, gw, "169.254.16.0/30", key="right-Key")
    text = site_config(lab, vco)
    assert 'password "right-Key";' in text
    lab.site(site, ip, subnet, config=text.replace('password "right-Key";', 'password "wrong-Key";'))
    wait_conn(lab.c, vco, "ipsec_sa_established", timeout=30)
    deadline = time.time() + 8
    while time.time() < deadline:
        assert bgp_status(lab, vco) == "failed"
        time.sleep(0.5)
    d = diagnosis(lab, vco)
    assert (d.severity, d.failed_reason_code) == ("Warn", "BgpNotEstablished"), d.failed_reason
    assert "AuthKey" in d.failed_reason and d.mismatch_remote_param == "PeerBgpIp 169.254.16.2", d
    # The right key: up, and the diagnosis is Normal again.
    lab.site(site, ip, subnet, config=text)
    wait_bgp(lab, vco, "success", timeout=40)
    assert diagnosis(lab, vco).severity == "Normal"


def plumbing(lab, gw, site):
    """What the gateway and the site route, and their SAs (for a failure's message)."""
    run = lambda *a: subprocess.run(list(a), capture_output=True, text=True).stdout
    return "\n".join([run("ip", "-n", lab.gw_ns(gw), "route", "show", "table", "220"), run("ip", "-n", lab.gw_ns(gw), "rule"), lab.sas(lab.gw_sock(gw)),
                      run("ip", "-n", lab.site_ns(site), "route", "show", "table", "220"), lab.sas(lab.site_sock(site))])


def bgp_routes(lab, gw):
    b = lab.c.describe_vpn_route_entries(m.DescribeVpnRouteEntriesRequest(region_id=REGION, vpn_gateway_id=gw, route_entry_type="bgp", page_size=50)).body
    return {e.route_dest: e for e in b.vpn_route_entries.vpn_route_entry}


def wait_routes(lab, gw, want, timeout=30):
    deadline = time.time() + timeout
    seen = None
    while time.time() < deadline:
        seen = bgp_routes(lab, gw)
        if set(seen) == set(want):
            return seen
        time.sleep(0.3)
    raise AssertionError(f"{gw}: BGP routes {sorted(seen)}, never {sorted(want)}")


def test_learned_prefixes_are_bgp_routes_that_carry_traffic_and_a_withdrawal_stops_it(lab):
    c = lab.c
    gw = gateway(c)
    name, ip, _, _ = new_site()
    cgw = make_cgw(c, ip_address=ip, asn=65020).customer_gateway_id
    # Destination-routing mode (0.0.0.0/0 on both sides): what BGP learns is what the tunnel carries.
    vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(
        region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="0.0.0.0/0", remote_subnet="0.0.0.0/0", effect_immediately=True,
        bgp_config=json.dumps({"EnableBgp": "true", "TunnelCidr": "169.254.13.0/30"}))).body.vpn_connection_id
    text = site_config(lab, vco)
    head = "protocol static site {\n  ipv4;\n"
    assert head in text
    two = text.replace(head, head + "  route 10.61.0.0/24 blackhole;\n  route 10.62.0.0/24 blackhole;\n")
    lab.site(name, ip, "10.61.0.0/24", config=two)
    subprocess.run(["ip", "-n", lab.site_ns(name), "addr", "add", "10.62.0.1/32", "dev", "lo"], check=True)
    wait_bgp(lab, vco, "success", timeout=40)
    routes = wait_routes(lab, gw, {"10.61.0.0/24", "10.62.0.0/24"})
    r = routes["10.62.0.0/24"]
    assert (r.next_hop, r.route_entry_type, r.as_path, r.state, r.vpn_instance_id) == (vco, "bgp", "65020", "published", gw)
    assert r.create_time > 0
    # The VPC reaches both learned prefixes through the tunnel.
    gw_ns = lab.gw_ns(gw)
    assert ping_until(gw_ns, "10.1.0.1", "10.61.0.1", timeout=20), plumbing(lab, gw, name)
    assert ping_until(gw_ns, "10.1.0.1", "10.62.0.1", timeout=20), plumbing(lab, gw, name)

    # The site withdraws one: gone from the API and from forwarding; only its CHILD_SA closes.
    ike = ike_ids(lab.sas(lab.gw_sock(gw)))
    lab.site(name, ip, "10.61.0.0/24", config=text.replace(head, head + "  route 10.61.0.0/24 blackhole;\n"))
    # (The site keeps its address in the withdrawn prefix: only the route goes.)
    subprocess.run(["ip", "-n", lab.site_ns(name), "addr", "replace", "10.62.0.1/32", "dev", "lo"], check=True)
    wait_routes(lab, gw, {"10.61.0.0/24"})
    deadline = time.time() + 15
    while time.time() < deadline and ping(gw_ns, "10.1.0.1", "10.62.0.1", wait=1):
        pass
    assert not ping(gw_ns, "10.1.0.1", "10.62.0.1", wait=1), "a withdrawn prefix is not routed\n" + plumbing(lab, gw, name)
    assert ping_until(gw_ns, "10.1.0.1", "10.61.0.1", timeout=20), "the other still is\n" + plumbing(lab, gw, name)
    after = ike_ids(lab.sas(lab.gw_sock(gw)))
    assert after and set(after) <= set(ike), f"no IKE_SA was renegotiated: {ike} → {after}"
    assert "10.62.0.0/24" not in lab.sas(lab.gw_sock(gw))


def carries(sas_text, key, prefix):
    """Whether the IKE_SA of a tunnel (by its key) has a CHILD_SA to this prefix; its packets out."""
    found, packets = False, 0
    for event in sas_text.split("list-sa event")[1:]:
        if not re.match(rf"\s*\{{{re.escape(key)}-", event):
            continue
        for child in re.findall(r"\{name=[^{}]*\}", event):
            if f"remote-ts=[{prefix}]" in child:
                found = True
                packets += int(re.search(r"packets-out=(\d+)", child).group(1))
    return found, packets


def test_dual_tunnel_both_sessions_up_the_masters_peer_stops_and_traffic_moves_to_the_slave_and_back(lab):
    c = lab.c
    gw = gateway(c, dual=True)
    name, ip, _, _ = new_site()
    cgw = make_cgw(c, ip_address=ip, asn=65030, auth_key="dual-Key").customer_gateway_id
    tos = m.CreateVpnConnectionRequestTunnelOptionsSpecification
    tike = m.CreateVpnConnectionRequestTunnelOptionsSpecificationTunnelIkeConfig
    tbgp = m.CreateVpnConnectionRequestTunnelOptionsSpecificationTunnelBgpConfig
    vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(
        region_id=REGION, vpn_gateway_id=gw, local_subnet="0.0.0.0/0", remote_subnet="0.0.0.0/0", effect_immediately=True, enable_tunnels_bgp=True,
        tunnel_options_specification=[
            tos(customer_gateway_id=cgw, role="master", tunnel_ike_config=tike(psk="m-key", ike_version="ikev2"), tunnel_bgp_config=tbgp(tunnel_cidr="169.254.17.0/30")),
            tos(customer_gateway_id=cgw, role="slave", tunnel_ike_config=tike(psk="s-key", ike_version="ikev2"), tunnel_bgp_config=tbgp(tunnel_cidr="169.254.18.0/30")),
        ])).body.vpn_connection_id
    wait_status(c, gw, "active", timeout=30)
    tunnels = {t.role: t.tunnel_id for t in conn(c, vco).tunnel_options_specification.tunnel_options}
    text = site_config(lab, vco)
    head = "protocol static site {\n  ipv4;\n"
    lab.site(name, ip, "10.71.0.0/24", config=text.replace(head, head + "  route 10.71.0.0/24 blackhole;\n"))
    site_bird = f"{lab.run_dir}/site/{name}/bird.ctl"

    def statuses():
        return {t.role: t.tunnel_bgp_config.bgp_status for t in conn(c, vco).tunnel_options_specification.tunnel_options}

    def wait_statuses(want, timeout=40):
        deadline = time.time() + timeout
        while time.time() < deadline and statuses() != want:
            time.sleep(0.3)
        assert statuses() == want

    def learned_by():
        return sorted(e.next_hop_tunnel_id for e in bgp_routes_all(lab, gw) if e.route_dest == "10.71.0.0/24")

    wait_statuses({"master": "success", "slave": "success"})
    deadline = time.time() + 30
    while time.time() < deadline and learned_by() != sorted(tunnels.values()):
        time.sleep(0.3)
    assert learned_by() == sorted(tunnels.values()), "both sessions learned the prefix"
    gw_ns = lab.gw_ns(gw)
    assert ping_until(gw_ns, "10.1.0.1", "10.71.0.1", timeout=20), plumbing(lab, gw, name)

    # The master's peer stops: its session and what it learned go; the slave carries the traffic.
    birdc(site_bird, "disable", f"t_{vco.replace('-', '_')}_master")
    wait_statuses({"master": "failed", "slave": "success"})
    deadline = time.time() + 30
    while time.time() < deadline and learned_by() != [tunnels["slave"]]:
        time.sleep(0.3)
    assert learned_by() == [tunnels["slave"]]
    deadline = time.time() + 15
    while time.time() < deadline and carries(lab.sas(lab.gw_sock(gw)), tunnels["master"], "10.71.0.0/24")[0]:
        time.sleep(0.3)
    assert not carries(lab.sas(lab.gw_sock(gw)), tunnels["master"], "10.71.0.0/24")[0], "the master no longer carries it"
    before = carries(lab.sas(lab.gw_sock(gw)), tunnels["slave"], "10.71.0.0/24")
    assert before[0]
    assert ping_until(gw_ns, "10.1.0.1", "10.71.0.1", timeout=20), plumbing(lab, gw, name)
    assert carries(lab.sas(lab.gw_sock(gw)), tunnels["slave"], "10.71.0.0/24")[1] > before[1], "through the slave"

    # The master's peer returns: both up again, both carry it.
    birdc(site_bird, "enable", f"t_{vco.replace('-', '_')}_master")
    wait_statuses({"master": "success", "slave": "success"})
    deadline = time.time() + 30
    while time.time() < deadline and learned_by() != sorted(tunnels.values()):
        time.sleep(0.3)
    assert learned_by() == sorted(tunnels.values())
    assert ping_until(gw_ns, "10.1.0.1", "10.71.0.1", timeout=20), plumbing(lab, gw, name)


def bgp_routes_all(lab, gw):
    b = lab.c.describe_vpn_route_entries(m.DescribeVpnRouteEntriesRequest(region_id=REGION, vpn_gateway_id=gw, route_entry_type="bgp", page_size=50)).body
    return b.vpn_route_entries.vpn_route_entry


def test_sessions_survive_a_restart_of_vpngw_and_a_dead_speaker_is_started_again():
    lab = Lab(persist=True).start()
    try:
        gw = gateway(lab.c)
        vco, cgw, site, ip, subnet = bgp_connection(lab, gw, "169.254.19.0/30")
        lab.site(site, ip, subnet, config=site_config(lab, vco))
        wait_bgp(lab, vco, "success", timeout=40)
        gw_bird = f"{lab.run_dir}/gw/{gw}/bird.ctl"
        pid = open(f"{lab.run_dir}/gw/{gw}/bird.pid").read().strip()
        since = re.search(r"t_\S+\s+BGP\s+\S+\s+up\s+(\S+)", birdc(gw_bird, "show", "protocols")).group(1)
        # vpngw stops and starts again: the speaker is adopted, its session untouched.
        lab.stop()
        lab.start()
        time.sleep(3)  # several reconcile passes
        assert open(f"{lab.run_dir}/gw/{gw}/bird.pid").read().strip() == pid, "the same BIRD"
        assert re.search(r"t_\S+\s+BGP\s+\S+\s+up\s+(\S+)", birdc(gw_bird, "show", "protocols")).group(1) == since, "the same session"
        assert bgp_status(lab, vco) == "success"
        # The speaker dies: the data plane starts it again and the session returns, no API call.
        subprocess.run(["kill", "-9", pid], check=True)
        wait_bgp(lab, vco, "failed", timeout=15)
        wait_bgp(lab, vco, "success", timeout=60)
        assert open(f"{lab.run_dir}/gw/{gw}/bird.pid").read().strip() != pid
    finally:
        lab.stop()
        lab.down()
