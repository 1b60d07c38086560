"""IPsec servers (client-to-site) through the official SDK, and a strongSwan road-warrior
client that gets a virtual IP from ClientIpPool and reaches LocalSubnet (lab mode)."""
import json
import os
import re
import subprocess
import time

import pytest
from alibabacloud_vpc20160428 import models as m

from helpers import REGION, describe, error, make_cgw, make_gateway, make_vpc, make_vsw, wait_status
from lab import ROAD_WARRIOR, Lab, ping_until


def server(c, gw, wait=True, **kw):
    args = dict(region_id=REGION, vpn_gateway_id=gw, local_subnet="10.1.0.0/16", client_ip_pool="172.31.99.0/24")
    args.update(kw)
    body = c.create_ipsec_server(m.CreateIpsecServerRequest(**args)).body
    if wait:
        wait_status(c, gw, "active")
    return body


def servers(c, **kw):
    return c.list_ipsec_servers(m.ListIpsecServersRequest(region_id=REGION, **kw)).body


def test_ipsec_server_lifecycle_fields_and_rules(alice, bob):
    gw, vpc, _ = make_gateway(alice, enable_ssl=True)
    created = server(alice, gw, ip_sec_server_name="rw-server", dry_run=False)
    assert created.ipsec_server_id.startswith("iss-") and created.vpn_gateway_id == gw and created.region_id == REGION
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created.creation_time)
    s = servers(alice, vpn_gateway_id=gw).ipsec_servers[0]
    assert (s.ipsec_server_name, s.local_subnet, s.client_ip_pool, s.psk_enabled, s.multi_factor_auth_enabled) == ("rw-server", "10.1.0.0/16", "172.31.99.0/24", True, False)
    assert len(s.psk) == 16, "a random 16-character PSK when none is given"
    assert (s.ike_config.ike_version, s.ike_config.ike_auth_alg, s.ike_config.remote_id, s.ike_config.ike_lifetime) == ("ikev2", "sha1", "", 86400)
    assert (s.online_client_count, s.max_connections, s.effect_immediately) == (0, 5, False)
    # One per gateway, and not beside IPsec connections (both ways).
    assert error(alice.create_ipsec_server, m.CreateIpsecServerRequest(region_id=REGION, vpn_gateway_id=gw, local_subnet="10.1.0.0/16", client_ip_pool="172.31.98.0/24")) == ("OperationFailed.IPsecServerExist", 400)
    cgw = make_cgw(alice).customer_gateway_id
    assert error(alice.create_vpn_connection, m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/24", remote_subnet="192.168.0.0/24")) == ("VpnGateway.IPsecServerAndVpnConnectionConflict", 400)
    assert error(alice.delete_vpn_gateway, m.DeleteVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)) == ("DependencyViolation.IpsecServer", 400)
    # Update: partial; the gateway goes through updating.
    alice.update_ipsec_server(m.UpdateIpsecServerRequest(region_id=REGION, ipsec_server_id=created.ipsec_server_id, psk="n3w-key", ike_config=json.dumps({"IkeVersion": "ikev1", "RemoteId": "client.example.com"})))
    wait_status(alice, gw, "active")
    s = servers(alice, ipsec_server_id=[created.ipsec_server_id]).ipsec_servers[0]
    assert (s.psk, s.ike_config.ike_version, s.ike_config.remote_id, s.client_ip_pool) == ("n3w-key", "ikev1", "client.example.com", "172.31.99.0/24")
    # A rename: UpdateIpsecServer spells it IpsecServerName (CreateIpsecServer: IpSecServerName).
    alice.update_ipsec_server(m.UpdateIpsecServerRequest(region_id=REGION, ipsec_server_id=created.ipsec_server_id, ipsec_server_name="rw-renamed"))
    assert servers(alice, ipsec_server_id=[created.ipsec_server_id]).ipsec_servers[0].ipsec_server_name == "rw-renamed"
    assert error(alice.update_ipsec_server, m.UpdateIpsecServerRequest(region_id=REGION, ipsec_server_id=created.ipsec_server_id, ipsec_server_name="1bad")) == ("InvalidParameter", 400)
    assert error(alice.update_ipsec_server, m.UpdateIpsecServerRequest(region_id=REGION, ipsec_server_id=created.ipsec_server_id, client_ip_pool="10.1.5.0/24")) == ("IllegalParam.ClientIpPool", 400)
    assert error(alice.update_ipsec_server, m.UpdateIpsecServerRequest(region_id=REGION, ipsec_server_id=created.ipsec_server_id, local_subnet="10.1.0.1/16")) == ("IllegalParam.LocalSubnet", 400)
    assert error(bob.update_ipsec_server, m.UpdateIpsecServerRequest(region_id=REGION, ipsec_server_id=created.ipsec_server_id, psk="x")) == ("InvalidIpsecServerId.NotFound", 404)
    alice.delete_ipsec_server(m.DeleteIpsecServerRequest(region_id=REGION, ipsec_server_id=created.ipsec_server_id))
    wait_status(alice, gw, "active")
    assert servers(alice, vpn_gateway_id=gw).total_count == 0
    conn = alice.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/24", remote_subnet="192.168.0.0/24")).body.vpn_connection_id
    wait_status(alice, gw, "active")
    assert error(alice.create_ipsec_server, m.CreateIpsecServerRequest(region_id=REGION, vpn_gateway_id=gw, local_subnet="10.1.0.0/16", client_ip_pool="172.31.98.0/24")) == ("VpnGateway.IPsecServerAndVpnConnectionConflict", 400)


def test_ipsec_server_input_codes_and_paging(alice):
    plain, _, _ = make_gateway(alice)
    assert error(alice.create_ipsec_server, m.CreateIpsecServerRequest(region_id=REGION, vpn_gateway_id=plain, local_subnet="10.1.0.0/16", client_ip_pool="172.31.99.0/24")) == ("VpnGateway.SslVpnDisabled", 400)
    gw, _, _ = make_gateway(alice, enable_ssl=True)
    base = dict(region_id=REGION, vpn_gateway_id=gw, local_subnet="10.1.0.0/16", client_ip_pool="172.31.99.0/24")
    for bad, code in [
        ({"client_ip_pool": "10.1.2.0/24"}, "IllegalParam.ClientIpPool"),  # inside LocalSubnet
        ({"client_ip_pool": "10.0.0.0/8"}, "IllegalParam.ClientIpPool"),  # the VPC's block
        ({"client_ip_pool": "nope"}, "IllegalParam.ClientIpPool"),
        ({"local_subnet": "10.1.0.0/33"}, "IllegalParam.LocalSubnet"),
        ({"psk": "has space"}, "InvalidParameter"),
        ({"psk_enabled": False}, "InvalidParameter"),
        ({"ip_sec_server_name": "1bad"}, "InvalidParameter"),
        ({"ike_config": json.dumps({"IkeEncAlg": "sm4"})}, "InvalidParameter"),
        ({"dry_run": True}, "DryRunOperation"),
        ({"vpn_gateway_id": "vpn-nope"}, "InvalidVpnGatewayInstanceId.NotFound"),
    ]:
        assert error(alice.create_ipsec_server, m.CreateIpsecServerRequest(**{**base, **bad}))[0] == code, bad
    assert servers(alice, vpn_gateway_id=gw).total_count == 0, "nothing was created"
    made = []
    for i in range(3):
        g, _, _ = make_gateway(alice, enable_ssl=True)
        made.append(server(alice, g, ip_sec_server_name=f"paged-{i}").ipsec_server_id)
    page1 = servers(alice, max_results=2, ipsec_server_id=made)
    assert (len(page1.ipsec_servers), page1.total_count, page1.max_results) == (2, 3, 2) and page1.next_token
    page2 = servers(alice, max_results=2, ipsec_server_id=made, next_token=page1.next_token)
    assert len(page2.ipsec_servers) == 1 and not page2.next_token
    assert {s.ipsec_server_id for s in page1.ipsec_servers + page2.ipsec_servers} == set(made)
    assert servers(alice, ipsec_server_name="paged-1").ipsec_servers[0].ipsec_server_id == made[1]
    assert error(alice.list_ipsec_servers, m.ListIpsecServersRequest(region_id=REGION, max_results=21)) == ("InvalidParameter", 400)


def test_ipsec_server_logs_window_and_codes(alice, bob):
    """ListIpsecServerLogs' rules (no data plane here, so no lines; the road-warrior test reads real ones)."""
    gw, _, _ = make_gateway(alice, enable_ssl=True)
    iss = server(alice, gw).ipsec_server_id
    req = lambda **kw: m.ListIpsecServerLogsRequest(region_id=REGION, ipsec_server_id=iss, **kw)
    b = alice.list_ipsec_server_logs(req(minute_period=5)).body
    assert (b.count, b.data, b.page_number, b.page_size, b.is_completed) == (0, [], 1, 10, True)
    for kw, code in [(dict(), "MissingParameter"), (dict(minute_period=11), "InvalidParameter"), (dict(minute_period=1, page_number=0), "InvalidParameter")]:
        assert error(alice.list_ipsec_server_logs, req(**kw)) == (code, 400), kw
    assert error(bob.list_ipsec_server_logs, req(minute_period=1)) == ("InvalidIpsecServerId.NotFound", 404)


def test_a_road_warrior_gets_an_address_from_the_pool_and_reaches_local_subnet():
    lab = Lab().start()
    try:
        c = lab.c
        vpc = make_vpc(c)
        vsw = make_vsw(c, vpc, "10.1.0.0/16", "cn-hangzhou-h")
        gw = c.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY", enable_ssl=True)).body.vpn_gateway_id
        wait_status(c, gw, "active", timeout=30)
        iss = server(c, gw, wait=False, psk="road-warrior-1", ike_config=json.dumps({"IkeVersion": "ikev2"})).ipsec_server_id
        wait_status(c, gw, "active", timeout=30)
        gw_ip = c.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body.internet_ip
        lab.site("rw", "203.0.113.150", "10.150.0.0/24", config=ROAD_WARRIOR.format(me="203.0.113.150", gw=gw_ip, psk="road-warrior-1".encode().hex()))
        ns = lab.site_ns("rw")
        deadline = time.time() + 30
        vip = None
        while time.time() < deadline and not vip:
            out = subprocess.run(["ip", "-n", ns, "-4", "-o", "addr"], capture_output=True, text=True).stdout
            found = re.search(r"inet (172\.31\.99\.\d+)/", out)
            vip = found and found.group(1)
            time.sleep(0.1)
        assert vip, "the client got a virtual IP from ClientIpPool"
        assert ping_until(ns, vip, "10.1.0.1"), "and reaches LocalSubnet"
        deadline = time.time() + 20
        while time.time() < deadline and servers(c, vpn_gateway_id=gw).ipsec_servers[0].online_client_count != 1:
            time.sleep(0.1)
        assert servers(c, vpn_gateway_id=gw).ipsec_servers[0].online_client_count == 1
        # ListIpsecServerLogs reads the gateway's charon: the client's negotiation, and only this server's lines.
        logs = c.list_ipsec_server_logs(m.ListIpsecServerLogsRequest(region_id=REGION, ipsec_server_id=iss, minute_period=10, page_size=50)).body
        assert logs.count == len(logs.data) > 0 and all(iss in line for line in logs.data), logs.data
        assert any("IKE_SA" in line and "established" in line and "203.0.113.150" in line for line in logs.data), logs.data
        first = c.list_ipsec_server_logs(m.ListIpsecServerLogsRequest(region_id=REGION, ipsec_server_id=iss, minute_period=10, page_size=1)).body
        assert (first.count, first.data) == (1, logs.data[:1])
        subprocess.run(["swanctl", "--terminate", "--ike", "rw", "--uri", f"unix://{lab.site_sock('rw')}"], check=True, capture_output=True)
        deadline = time.time() + 20
        while time.time() < deadline and servers(c, vpn_gateway_id=gw).ipsec_servers[0].online_client_count != 0:
            time.sleep(0.1)
        assert servers(c, vpn_gateway_id=gw).ipsec_servers[0].online_client_count == 0
        assert iss
    finally:
        lab.stop()


CERTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "crates", "vpngw-server", "tests", "fixtures", "certs")


def import_cert(server, name, kind, account="alice"):
    out = server.cli("cert", "import", "--account", account, "--cert", os.path.join(CERTS, f"{name}.crt"), "--key", os.path.join(CERTS, f"{name}.key"), "--type", kind)
    return out.strip().splitlines()[-1]


def test_gateway_certificates_import_associate_list_dissociate(server, alice, bob):
    sig = import_cert(server, "sm2", "Signature")
    enc = import_cert(server, "ec", "Encryption")
    assert sig.startswith("cert-") and enc.startswith("cert-")
    # A certificate that does not match its key, or has expired, never enters the store.
    for crt, key in (("rsa", "ec"), ("expired", "expired")):
        out = subprocess.run([server_bin(), "cert", "import", "--account", "alice", "--cert", os.path.join(CERTS, f"{crt}.crt"), "--key", os.path.join(CERTS, f"{key}.key"),
                              "--config", server.config, "--data-dir", os.path.join(server.dir, "data")], capture_output=True, text=True)
        assert out.returncode != 0, out.stdout
    gw, _, _ = make_gateway(alice, vpn_type="NationalStandard")
    normal, _, _ = make_gateway(alice)
    assoc = lambda c, g, cid, t: c.associate_vpn_gateway_with_certificate(m.AssociateVpnGatewayWithCertificateRequest(region_id=REGION, vpn_gateway_id=g, certificate_id=cid, certificate_type=t))
    assert error(assoc, alice, normal, sig, "Signature") == ("OperationUnsupported.CertificateAssociation", 400)
    assert error(assoc, alice, gw, "cert-nope", "Signature") == ("InvalidCertificateId.NotFound", 404)
    assert error(assoc, bob, gw, sig, "Signature") == ("InvalidVpnGatewayInstanceId.NotFound", 404)
    assert error(assoc, alice, gw, sig, "Encryption") == ("InvalidParameter", 400), "imported as a Signature certificate"
    # DryRun (sections 4.8, 4.9): a request that passes the checks answers its RequestId and
    # changes nothing.
    dry = alice.associate_vpn_gateway_with_certificate(m.AssociateVpnGatewayWithCertificateRequest(region_id=REGION, vpn_gateway_id=gw, certificate_id=sig, certificate_type="Signature", dry_run=True))
    assert dry.status_code == 200 and dry.body.request_id
    assert alice.list_vpn_certificate_associations(m.ListVpnCertificateAssociationsRequest(region_id=REGION, vpn_gateway_id=[gw])).body.total_count == 0
    assert describe(alice, gw).status == "active"
    assoc(alice, gw, sig, "Signature")
    wait_status(alice, gw, "active")
    assoc(alice, gw, enc, "Encryption")
    wait_status(alice, gw, "active")
    other = import_cert(server, "rsa", "Signature")
    assert error(assoc, alice, gw, other, "Signature") == ("VpnGateway.CertificateTypeAssociated", 400)
    rel = alice.list_vpn_certificate_associations(m.ListVpnCertificateAssociationsRequest(region_id=REGION, vpn_gateway_id=[gw])).body
    assert rel.total_count == 2
    assert sorted((r.certificate_id, r.certificate_type, r.vpn_gateway_id) for r in rel.vpn_certificate_relations) == sorted([(sig, "Signature", gw), (enc, "Encryption", gw)])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rel.vpn_certificate_relations[0].association_time)
    only_enc = alice.list_vpn_certificate_associations(m.ListVpnCertificateAssociationsRequest(region_id=REGION, vpn_gateway_id=[gw], certificate_type="Encryption")).body
    assert [r.certificate_id for r in only_enc.vpn_certificate_relations] == [enc]
    page = alice.list_vpn_certificate_associations(m.ListVpnCertificateAssociationsRequest(region_id=REGION, vpn_gateway_id=[gw], max_results=1)).body
    assert len(page.vpn_certificate_relations) == 1 and page.next_token
    assert bob.list_vpn_certificate_associations(m.ListVpnCertificateAssociationsRequest(region_id=REGION)).body.total_count == 0
    dis = lambda cid, t: alice.dissociate_vpn_gateway_with_certificate(m.DissociateVpnGatewayWithCertificateRequest(region_id=REGION, vpn_gateway_id=gw, certificate_id=cid, certificate_type=t))
    assert error(dis, enc, "Signature") == ("VpnCertificateAssociation.NotFound", 404)
    alice.dissociate_vpn_gateway_with_certificate(m.DissociateVpnGatewayWithCertificateRequest(region_id=REGION, vpn_gateway_id=gw, certificate_id=enc, certificate_type="Encryption", dry_run=True))
    assert alice.list_vpn_certificate_associations(m.ListVpnCertificateAssociationsRequest(region_id=REGION, vpn_gateway_id=[gw])).body.total_count == 2, "a dry run dissociates nothing"
    dis(enc, "Encryption")
    wait_status(alice, gw, "active")
    rel = alice.list_vpn_certificate_associations(m.ListVpnCertificateAssociationsRequest(region_id=REGION, certificate_id=[sig, enc])).body
    assert [r.certificate_id for r in rel.vpn_certificate_relations] == [sig]


def server_bin():
    from conftest import BIN
    return BIN


def test_routes_and_ipsec_server_pools_of_one_vpc_do_not_overlap(alice):
    gw1, vpc, vsw = make_gateway(alice, enable_ssl=True)
    server(alice, gw1)
    gw2 = alice.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY", enable_ssl=True)).body.vpn_gateway_id
    wait_status(alice, gw2, "active")
    cgw = make_cgw(alice).customer_gateway_id
    vco = alice.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw2, customer_gateway_id=cgw, local_subnet="0.0.0.0/0", remote_subnet="0.0.0.0/0")).body.vpn_connection_id
    wait_status(alice, gw2, "active")
    route = dict(region_id=REGION, vpn_gateway_id=gw2, next_hop=vco, weight=100, publish_vpc=False)
    assert error(alice.create_vpn_route_entry, m.CreateVpnRouteEntryRequest(route_dest="172.31.99.128/25", **route)) == ("OperationFailed.RouteConflictWithIPsecServer", 400)
    alice.create_vpn_route_entry(m.CreateVpnRouteEntryRequest(route_dest="172.31.50.0/24", **route))
    wait_status(alice, gw2, "active")
    gw3 = alice.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY", enable_ssl=True)).body.vpn_gateway_id
    wait_status(alice, gw3, "active")
    assert error(alice.create_ipsec_server, m.CreateIpsecServerRequest(region_id=REGION, vpn_gateway_id=gw3, local_subnet="10.1.0.0/16", client_ip_pool="172.31.50.0/24")) == ("OperationFailed.RouteConflictWithIPsecServer", 400)
