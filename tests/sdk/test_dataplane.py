"""The real IPsec data plane (lab mode): connections made through the official SDK become
strongSwan tunnels between namespaces, customer sites are configured only from
DownloadVpnConnectionConfig, and every status is read from charon's SAs.

Needs root, iproute2 and strongSwan (charon-systemd, swanctl), which `.ci/run` installs."""
import json
import os
import re
import signal
import subprocess
import time

import pytest
from alibabacloud_vpc20160428 import models as m

from helpers import REGION, make_cgw, make_vpc, make_vsw, wait_status
from lab import Lab, conn, ike_ids, ping, ping_until, wait_conn

VPC_HOST = "10.1.0.1"  # the first address of the gateway's VSwitch answers in the lab


@pytest.fixture(scope="module")
def lab():
    lab = Lab().start()
    yield lab
    lab.stop()
    assert not [n for n in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split() if n.startswith(lab.name)], "the lab left namespaces behind"


def gateway(c, dual=False):
    vpc = make_vpc(c)
    a = make_vsw(c, vpc, "10.1.0.0/16", "cn-hangzhou-h")
    args = dict(region_id=REGION, vpc_id=vpc, v_switch_id=a, bandwidth=5, instance_charge_type="POSTPAY")
    if dual:
        args["disaster_recovery_vswitch_id"] = make_vsw(c, vpc, "10.2.0.0/16", "cn-hangzhou-i")
    gw = c.create_vpn_gateway(m.CreateVpnGatewayRequest(**args)).body.vpn_gateway_id
    wait_status(c, gw, "active")
    return gw


_sites = iter(range(1, 200))


def new_site():
    n = next(_sites)
    return f"s{n}", f"203.0.113.{n}", f"10.{100 + n}.0.0/24", f"10.{100 + n}.0.1"


def connect(lab, gw, ike=None, ipsec=None, immediately=True, load_site=True, **kw):
    """A connection to a new site; returns (vco, site, site address)."""
    c = lab.c
    name, ip, subnet, host = new_site()
    cgw = make_cgw(c, ip_address=ip).customer_gateway_id
    args = dict(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/16", remote_subnet=subnet, effect_immediately=immediately)
    if ike:
        args["ike_config"] = json.dumps(ike)
    if ipsec:
        args["ipsec_config"] = json.dumps(ipsec)
    args.update(kw)
    vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(**args)).body.vpn_connection_id
    wait_status(c, gw, "active", timeout=30)
    lab.site(name, ip, subnet, vco if load_site else None)
    return vco, name, host


def connection_logs(c, vco, **kw):
    """Every line of the last ten minutes, page by page (Count is the lines on a page)."""
    lines, number = [], 1
    while True:
        b = c.describe_vpn_connection_logs(m.DescribeVpnConnectionLogsRequest(region_id=REGION, vpn_connection_id=vco, minute_period=10, page_size=50, page_number=number, **kw)).body
        assert b.count == len(b.data.logs) and b.is_completed
        lines += b.data.logs
        if b.count < 50:
            return lines
        number += 1


def test_a_connection_comes_up_from_the_downloaded_config_and_carries_traffic_both_ways(lab):
    c = lab.c
    gw = gateway(c)
    vco, site, host = connect(lab, gw)
    d = wait_conn(c, vco, "ipsec_sa_established")
    assert d.state == "active"
    assert ping_until(lab.site_ns(site), host, VPC_HOST), "customer → VPC"
    assert ping(lab.gw_ns(gw), VPC_HOST, host), "VPC → customer"
    # DescribeVpnConnectionLogs reads the gateway's charon: this connection's negotiation.
    logs = connection_logs(c, vco)
    assert logs and all(vco in line for line in logs), logs
    assert any("CHILD_SA" in line and "established" in line for line in logs), logs
    # Delete removes the SA from the gateway's charon.
    c.delete_vpn_connection(m.DeleteVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco))
    wait_status(c, gw, "active", timeout=30)
    assert ike_ids(lab.sas(lab.gw_sock(gw))) == []
    assert not ping(lab.site_ns(site), host, VPC_HOST)


# Every encryption, integrity and DH value at least once, IKEv1 main and aggressive and IKEv2,
# and PFS disabled.
PROPOSALS = [
    ({"IkeVersion": "ikev1", "IkeMode": "main", "IkeEncAlg": "aes", "IkeAuthAlg": "md5", "IkePfs": "group1"},
     {"IpsecEncAlg": "des", "IpsecAuthAlg": "sha1", "IpsecPfs": "group2"}),
    ({"IkeVersion": "ikev1", "IkeMode": "aggressive", "IkeEncAlg": "aes192", "IkeAuthAlg": "sha1", "IkePfs": "group2", "LocalId": "vpn.example.com", "RemoteId": "site.example.com"},
     {"IpsecEncAlg": "3des", "IpsecAuthAlg": "sha256", "IpsecPfs": "disabled"}),
    ({"IkeVersion": "ikev2", "IkeEncAlg": "aes256", "IkeAuthAlg": "sha256", "IkePfs": "group5", "IkeLifetime": 3600},
     {"IpsecEncAlg": "aes", "IpsecAuthAlg": "sha384", "IpsecPfs": "group14", "IpsecLifetime": 1800}),
    ({"IkeVersion": "ikev2", "IkeEncAlg": "des", "IkeAuthAlg": "sha384", "IkePfs": "group14"},
     {"IpsecEncAlg": "aes192", "IpsecAuthAlg": "sha512", "IpsecPfs": "group1"}),
    ({"IkeVersion": "ikev1", "IkeMode": "main", "IkeEncAlg": "3des", "IkeAuthAlg": "sha512", "IkePfs": "group2"},
     {"IpsecEncAlg": "aes256", "IpsecAuthAlg": "md5", "IpsecPfs": "group5"}),
]


def test_every_documented_algorithm_negotiates_and_carries_traffic(lab):
    c = lab.c
    gw = gateway(c)
    made = [connect(lab, gw, ike=ike, ipsec=ipsec) for ike, ipsec in PROPOSALS]
    for vco, site, host in made:
        wait_conn(c, vco, "ipsec_sa_established", timeout=30)
        assert ping_until(lab.site_ns(site), host, VPC_HOST), (vco, conn(c, vco).ike_config)


def test_ikev1_with_several_subnets_negotiates_a_child_per_pair(lab):
    c = lab.c
    gw = gateway(c)
    vco, site, host = connect(lab, gw, ike={"IkeVersion": "ikev1"}, local_subnet="10.1.0.0/24,10.1.1.0/24")
    wait_conn(c, vco, "ipsec_sa_established", timeout=30)
    raw = lab.sas(lab.gw_sock(gw))
    assert raw.count("state=INSTALLED") == 2, raw
    assert "local-ts=[10.1.0.0/24]" in raw and "local-ts=[10.1.1.0/24]" in raw, raw
    assert ping_until(lab.site_ns(site), host, VPC_HOST)


def test_a_psk_mismatch_stays_ike_sa_not_established(lab):
    c = lab.c
    gw = gateway(c)
    vco, site, host = connect(lab, gw, ike={"Psk": "right-key"}, load_site=False)
    text = lab.device_config(vco)
    assert "secret = 0x" + "right-key".encode().hex() in text
    lab.load(site, text.replace("right-key".encode().hex(), "wrong-key".encode().hex()))
    time.sleep(4)
    assert conn(c, vco).status == "ike_sa_not_established"
    assert not ping(lab.site_ns(site), host, VPC_HOST)
    # DiagnoseVpnConnections says why, from the gateway's charon.
    d = diagnosis(c, vco)
    assert (d.failed_reason_code, d.severity) == ("PskMismatch", "Critical"), d
    assert "MAC mismatched" in d.source_log or "AUTHENTICATION_FAILED" in d.source_log or "decryption failed" in d.source_log, d.source_log
    assert abs(d.failed_time - time.time() * 1000) < 120_000, "when, in Unix milliseconds"


def diagnosis(c, vco, **kw):
    body = c.diagnose_vpn_connections(m.DiagnoseVpnConnectionsRequest(region_id=REGION, vpn_connection_ids=[vco], **kw)).body
    assert body.total_count == len(body.vpn_connections) >= 1
    return body.vpn_connections[0]


def test_diagnose_finds_proposal_and_subnet_mismatches_from_the_log(lab):
    c = lab.c
    gw = gateway(c)
    # The customer's device offers other algorithms (phase 1), other ESP algorithms (phase 2),
    # and protects another subnet than the connection's RemoteSubnet.
    ike, site1, _ = connect(lab, gw, ike={"IkeVersion": "ikev2"}, load_site=False)
    lab.load(site1, re.sub(r"proposals = aes128", "proposals = aes256", lab.device_config(ike), count=1))
    esp, site2, _ = connect(lab, gw, ike={"IkeVersion": "ikev2"}, load_site=False)
    lab.load(site2, lab.device_config(esp).replace("esp_proposals = aes128", "esp_proposals = aes256"))
    ts, site3, _ = connect(lab, gw, ike={"IkeVersion": "ikev2"}, load_site=False)
    lab.load(site3, re.sub(r"local_ts = [0-9./]+", "local_ts = 10.199.0.0/24", lab.device_config(ts), count=1))
    good, _, _ = connect(lab, gw)
    wait_conn(c, good, "ipsec_sa_established", timeout=30)
    expected = {ike: "IkeProposalMismatch", esp: "IpsecProposalMismatch", ts: "TrafficSelectorMismatch"}
    deadline = time.time() + 30
    while time.time() < deadline and any(diagnosis(c, v).failed_reason_code != code for v, code in expected.items()):
        time.sleep(0.5)
    d = diagnosis(c, ike)
    assert (d.failed_reason_code, d.severity) == ("IkeProposalMismatch", "Critical"), d
    assert "AES_CBC_128" in d.mismatch_local_param or "aes128" in d.mismatch_local_param, d.mismatch_local_param
    d = diagnosis(c, esp)
    assert (d.failed_reason_code, d.severity) == ("IpsecProposalMismatch", "Warn"), d
    assert "AES_CBC_256" in d.mismatch_remote_param and "AES_CBC_128" in d.mismatch_local_param, d
    d = diagnosis(c, ts)
    assert d.failed_reason_code == "TrafficSelectorMismatch" and "10.199.0.0/24" in d.mismatch_remote_param, d
    assert "10.1.0.0/16" in d.mismatch_local_param, d
    d = diagnosis(c, good)
    assert (d.severity, d.failed_reason_code, d.source_log) == ("Normal", "", ""), d
    # Every connection of the gateway, paged.
    body = c.diagnose_vpn_connections(m.DiagnoseVpnConnectionsRequest(region_id=REGION, vpn_gateway_id=gw, page_size=3)).body
    assert (body.total_count, len(body.vpn_connections), body.page_size) == (4, 3, 3)


def test_effect_immediately_false_negotiates_on_first_traffic(lab):
    c = lab.c
    gw = gateway(c)
    vco, site, host = connect(lab, gw, immediately=False)
    time.sleep(2)
    assert conn(c, vco).status == "ike_sa_not_established", "nothing negotiates before traffic"
    ping(lab.gw_ns(gw), VPC_HOST, host, wait=1)  # the first packet starts the negotiation
    wait_conn(c, vco, "ipsec_sa_established", timeout=15)
    assert ping_until(lab.gw_ns(gw), VPC_HOST, host)


def test_modify_renegotiates_and_the_new_sa_carries_traffic(lab):
    c = lab.c
    gw = gateway(c)
    vco, site, host = connect(lab, gw, ike={"IkeVersion": "ikev2", "Psk": "first-key"})
    wait_conn(c, vco, "ipsec_sa_established")
    before = ike_ids(lab.sas(lab.gw_sock(gw)))
    c.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(
        region_id=REGION, vpn_connection_id=vco, local_subnet="10.1.0.0/24",
        ike_config=json.dumps({"Psk": "second-key", "IkeEncAlg": "aes256", "IkeAuthAlg": "sha256"}),
        ipsec_config=json.dumps({"IpsecEncAlg": "aes192", "IpsecAuthAlg": "sha512", "IpsecPfs": "group14"})))
    wait_status(c, gw, "active", timeout=30)
    # The customer applies the new configuration.
    lab.load(site, lab.device_config(vco))
    wait_conn(c, vco, "ipsec_sa_established", timeout=30)
    after = ike_ids(lab.sas(lab.gw_sock(gw)))
    assert after and not set(after) & set(before), "a new IKE_SA, not the old one"
    raw = lab.sas(lab.gw_sock(gw))
    assert "encr-alg=AES_CBC encr-keysize=256 integ-alg=HMAC_SHA2_256_128" in raw, raw
    assert "local-ts=[10.1.0.0/24]" in raw, raw
    assert ping_until(lab.site_ns(site), host, VPC_HOST)


def carried(raw, tunnels):
    """Packets each tunnel's CHILD_SAs received, from `swanctl --list-sas --raw` (one IKE_SA a line)."""
    counts = {t: 0 for t in tunnels}
    for line in raw.splitlines():
        for t in tunnels:
            if t in line:
                counts[t] += sum(int(x) for x in re.findall(r"packets-in=(\d+)", line))
    return counts


def test_dual_tunnel_both_negotiate_and_one_takes_over_when_the_other_goes(lab):
    c = lab.c
    gw = gateway(c, dual=True)
    name, ip, subnet, host = new_site()
    cgw = make_cgw(c, ip_address=ip).customer_gateway_id
    tos = m.CreateVpnConnectionRequestTunnelOptionsSpecification
    tike = m.CreateVpnConnectionRequestTunnelOptionsSpecificationTunnelIkeConfig
    vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(
        region_id=REGION, vpn_gateway_id=gw, local_subnet="10.1.0.0/16", remote_subnet=subnet, effect_immediately=True,
        tunnel_options_specification=[
            tos(customer_gateway_id=cgw, role="master", tunnel_ike_config=tike(psk="master-key", ike_version="ikev2")),
            tos(customer_gateway_id=cgw, role="slave", tunnel_ike_config=tike(psk="slave-key", ike_version="ikev2")),
        ])).body.vpn_connection_id
    wait_status(c, gw, "active", timeout=30)
    lab.site(name, ip, subnet, vco)
    wait_conn(c, vco, "ipsec_sa_established", tunnel="master", timeout=30)
    d = wait_conn(c, vco, "ipsec_sa_established", tunnel="slave", timeout=30)
    tunnels = {t.tunnel_id: t.role for t in d.tunnel_options_specification.tunnel_options}
    # Each tunnel's log lines are its own.
    for tid in tunnels:
        own = connection_logs(c, vco, tunnel_id=tid)
        assert own and all(tid in line and not any(other in line for other in tunnels if other != tid) for line in own), own
    assert ping_until(lab.site_ns(name), host, VPC_HOST)
    for _ in range(3):
        ping(lab.site_ns(name), host, VPC_HOST)
    counts = carried(lab.sas(lab.gw_sock(gw)), tunnels)
    active = max(counts, key=counts.get)
    assert counts[active] >= 3 and sorted(counts.values())[0] == 0, f"one tunnel carries the traffic: {counts}"
    # The carrying tunnel goes away on the customer side: traffic moves to the other at once,
    # the API reports that tunnel down, and the gateway (which initiates) brings it back.
    role = tunnels[active]
    old = re.search(active + r"-\w+ \{uniqueid=(\d+)", lab.sas(lab.gw_sock(gw))).group(1)
    subprocess.run(["swanctl", "--terminate", "--ike", f"{vco}-{role}", "--uri", f"unix://{lab.site_sock(name)}"], check=True, capture_output=True)
    assert ping_until(lab.site_ns(name), host, VPC_HOST, timeout=5), "the other tunnel carries the traffic"
    deadline = time.time() + 30
    while time.time() < deadline:
        m_ = re.search(active + r"-\w+ \{uniqueid=(\d+) version=2 state=ESTABLISHED", lab.sas(lab.gw_sock(gw)))
        if m_ and m_.group(1) != old:
            break
        time.sleep(0.1)
    assert m_ and m_.group(1) != old, "the gateway brought the tunnel back with a new IKE_SA"
    wait_conn(c, vco, "ipsec_sa_established", tunnel=role, timeout=30)


def test_charon_killed_tunnels_come_back_without_an_api_call(lab):
    c = lab.c
    gw = gateway(c)
    vco, site, host = connect(lab, gw)
    wait_conn(c, vco, "ipsec_sa_established")
    pid = lab.charon_pid(gw)
    os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 30
    while time.time() < deadline and lab.charon_pid(gw) == pid:
        time.sleep(0.1)
    assert lab.charon_pid(gw) != pid, "vpngw restarts charon"
    wait_conn(c, vco, "ipsec_sa_established", timeout=40)
    assert ping_until(lab.site_ns(site), host, VPC_HOST, timeout=30)


def test_health_check_success_then_failed_within_interval_times_retry(lab):
    c = lab.c
    gw = gateway(c)
    vco, site, host = connect(lab, gw)
    wait_conn(c, vco, "ipsec_sa_established")
    c.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(
        region_id=REGION, vpn_connection_id=vco, health_check_config=json.dumps({"enable": True, "sip": VPC_HOST, "dip": host, "interval": 1, "retry": 2})))
    deadline = time.time() + 20
    while time.time() < deadline and conn(c, vco).vco_health_check.status != "success":
        time.sleep(0.1)
    assert conn(c, vco).vco_health_check.status == "success"
    # The peer stops answering: its address goes away.
    subprocess.run(["ip", "-n", lab.site_ns(site), "addr", "del", f"{host}/32", "dev", "lo"], check=True)
    stopped = time.time()
    while time.time() < stopped + 10 and conn(c, vco).vco_health_check.status != "failed":
        time.sleep(0.1)
    assert conn(c, vco).vco_health_check.status == "failed"
    assert time.time() - stopped <= 1 * 2 + 2, "within interval × retry (plus one probe's wait)"


def test_a_restart_of_vpngw_tears_down_no_established_sa():
    lab = Lab(persist=True).start()
    try:
        c = lab.c
        gw = gateway(c)
        vco, site, host = connect(lab, gw)
        wait_conn(c, vco, "ipsec_sa_established")
        time.sleep(2)  # both sides initiated: let charon settle on one IKE_SA
        before = ike_ids(lab.sas(lab.site_sock(site)))
        assert before
        lab.stop()
        lab.start()
        time.sleep(3)  # several reconcile passes
        c = lab.c
        assert conn(c, vco).status == "ipsec_sa_established"
        assert ike_ids(lab.sas(lab.site_sock(site))) == before, "the same IKE_SA survived"
        assert ping(lab.site_ns(site), host, VPC_HOST)
    finally:
        lab.stop()
        lab.down()


def test_a_national_standard_connection_says_it_cannot_be_negotiated_here(lab):
    c = lab.c
    vpc = make_vpc(c)
    vsw = make_vsw(c, vpc, "10.1.0.0/16", "cn-hangzhou-h")
    gw = c.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY", vpn_type="NationalStandard")).body.vpn_gateway_id
    wait_status(c, gw, "active")
    cgw = make_cgw(c, ip_address="203.0.113.199").customer_gateway_id
    vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/16",
        remote_subnet="10.199.0.0/24", effect_immediately=True, remote_ca_certificate="CA", ike_config=json.dumps({"RemoteId": "peer.example.com"}))).body.vpn_connection_id
    wait_status(c, gw, "active", timeout=30)
    time.sleep(1)
    assert conn(c, vco).status == "ike_sa_not_established"
    with open(os.path.join(lab.server.dir, "serve.log")) as f:
        log = f.read()
    assert vco in log and "cannot negotiate" in log and "sm4" in log, "the reason is logged"


# A lab charon with neither openssl nor gcrypt: no DES, no 3DES (as on a machine without
# libstrongswan-standard-plugins).
NO_DES_PLUGINS = '["random", "nonce", "aes", "sha1", "sha2", "md5", "hmac", "gmp", "pem", "pkcs1", "x509", "pubkey", "kdf"]'


def test_a_lab_with_a_plugin_that_is_not_installed_does_not_start():
    from conftest import BIN, Server
    s = Server(extra='\n[dataplane]\nmode = "lab"\nlab_name = "tnoplug"\ncharon_plugins = ["random", "nonce", "aes", "nosuchplugin"]\n')
    out = subprocess.run([BIN, "serve", "--config", s.config, "--data-dir", os.path.join(s.dir, "data"), "--listen", s.endpoint], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0
    assert "charon plugin 'nosuchplugin' is not installed" in out.stderr and "libstrongswan-nosuchplugin.so" in out.stderr, out.stderr
    assert "tnoplug" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout, "nothing was built"


def test_a_charon_without_an_algorithm_says_so_and_does_not_load_what_needs_it():
    lab = Lab(extra=f"charon_plugins = {NO_DES_PLUGINS}\n").start()
    try:
        c = lab.c
        gw = gateway(c)
        des, _, _ = connect(lab, gw, ike={"IkeEncAlg": "des"}, ipsec={"IpsecEncAlg": "3des"}, load_site=False)
        aes, _, _ = connect(lab, gw, load_site=False)
        # The gateway converged (the task engine ended `updating`): what it can load is loaded,
        # and the DES connection is withheld rather than left to fail every negotiation.
        out = subprocess.run(["swanctl", "--list-conns", "--raw", "--uri", f"unix://{lab.gw_sock(gw)}"], capture_output=True, text=True, timeout=10).stdout
        assert aes in out and des not in out, out
        deadline = time.time() + 3
        while time.time() < deadline:
            assert conn(c, des).status == "ike_sa_not_established", "never claims to negotiate"
            time.sleep(0.3)
        r = c.diagnose_vpn_connections(m.DiagnoseVpnConnectionsRequest(region_id=REGION, vpn_gateway_id=gw, vpn_connection_ids=[des])).body
        [d] = r.vpn_connections
        assert (d.vpn_connection_id, d.severity, d.failed_reason_code) == (des, "Critical", "AlgorithmUnsupported"), d
        assert "DES_CBC" in d.failed_reason and "3DES_CBC" in d.failed_reason and "libstrongswan-standard-plugins" in d.failed_reason, d.failed_reason
        assert d.mismatch_local_param == "IkeConfig des/md5/group2, IpsecConfig 3des/md5/group2", d.mismatch_local_param
        with open(os.path.join(lab.server.dir, "serve.log")) as f:
            log = f.read()
        # Once at connect: what the charon lacks of what the API accepts, and what brings it.
        assert log.count("charon lacks the encryption algorithm DES_CBC (des), the encryption algorithm 3DES_CBC (3des)") == 1, log
        assert "is not loaded and stays ike_sa_not_established" in log and des in log
    finally:
        lab.stop()
        lab.down()


def test_an_unreadable_document_leaves_its_tunnel_up_and_the_other_gateways_converge(lab):
    c = lab.c
    a = gateway(c)
    vco_a, site_a, host_a = connect(lab, a)
    wait_conn(c, vco_a, "ipsec_sa_established")
    before = ike_ids(lab.sas(lab.gw_sock(a)))
    saved = lab.server.docs([a, vco_a])

    def corrupt(rid):
        # Valid JSON of a shape no version of vpngw wrote (as a faulty migration might leave).
        lab.server.set_doc(rid, '{"unreadable": true}')

    try:
        for rid in (vco_a, a):  # first the connection, then its gateway too
            corrupt(rid)
            # Another gateway still converges: a new tunnel comes up on it.
            b = gateway(c)
            vco_b, _, _ = connect(lab, b)
            wait_conn(c, vco_b, "ipsec_sa_established")
            # The unreadable one is left exactly as it is: its IKE_SA (both sides may have
            # initiated one at first), namespace and traffic.
            assert set(before) & set(ike_ids(lab.sas(lab.gw_sock(a))))
            assert lab.gw_ns(a) in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
            assert ping_until(lab.site_ns(site_a), host_a, VPC_HOST)
        with open(os.path.join(lab.server.dir, "serve.log")) as f:
            log = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
        assert f"id={vco_a}" in log and f"id={a}" in log and "cannot be read" in log
    finally:
        for rid, doc in saved.items():
            lab.server.set_doc(rid, doc)
    # Readable again: the gateway converges as before, its tunnel untouched.
    wait_status(c, a, "active", timeout=30)
    assert set(before) & set(ike_ids(lab.sas(lab.gw_sock(a))))


def test_diagnose_vpn_gateway_probes_the_peer_and_the_tunnel(lab):
    c = lab.c
    gw = gateway(c)
    vco, site, host = connect(lab, gw)
    wait_conn(c, vco, "ipsec_sa_established")
    assert ping_until(lab.gw_ns(gw), VPC_HOST, host), "the tunnel carries traffic before the diagnosis"
    did = c.diagnose_vpn_gateway(m.DiagnoseVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw, resource_type="IPsec", resource_id=vco,
        ipsec_extend_info=json.dumps({"PrivateSourceIp": VPC_HOST, "PrivateDestinationIp": host}))).body.diagnose_id
    deadline = time.time() + 30
    while time.time() < deadline:
        r = c.get_vpn_gateway_diagnose_result(m.GetVpnGatewayDiagnoseResultRequest(region_id=REGION, diagnose_id=did)).body
        if r.finished_count == r.total_count:
            break
        assert not r.finish_time, "unfinished until the last probe is in"
        time.sleep(0.2)
    assert (r.finished_count, r.total_count) == (7, 7) and r.finish_time
    items = {i.diagnose_name: (i.diagnose_result_level, json.loads(i.diagnose_result_description)) for i in r.diagnose_result}
    # The gateway's charon pinged the customer gateway's public address, and the VPC host pinged the site through the tunnel.
    level, public = items["VcoUserInternetIpConnectivity"]
    assert level == "normal" and public["lossRate"] == 0 and public["rtt"] > 0, public
    level, private = items["VcoPrivateConnectivity"]
    assert level == "normal" and (private["srcIp"], private["targetIp"]) == (VPC_HOST, host) and private["lossRate"] == 0, private
    assert items["VcoConfigConsistency"][0] == "normal"
    # A private destination nothing answers: the probe says so.
    did = c.diagnose_vpn_gateway(m.DiagnoseVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw, resource_type="IPsec", resource_id=vco,
        ipsec_extend_info=json.dumps({"PrivateSourceIp": VPC_HOST, "PrivateDestinationIp": "10.254.0.1"}))).body.diagnose_id
    deadline = time.time() + 30
    while time.time() < deadline:
        r = c.get_vpn_gateway_diagnose_result(m.GetVpnGatewayDiagnoseResultRequest(region_id=REGION, diagnose_id=did)).body
        if r.finished_count == r.total_count:
            break
        time.sleep(0.2)
    items = {i.diagnose_name: (i.diagnose_result_level, json.loads(i.diagnose_result_description)) for i in r.diagnose_result}
    assert items["VcoPrivateConnectivity"][0] == "error" and items["VcoPrivateConnectivity"][1]["lossRate"] == 100
