"""IPsec-VPN connections through the official SDKs: single and dual tunnel, every documented
code the control plane can produce, Describe types as the SDK models have them, the peer view."""
import json
import time

import pytest
from aliyunsdkvpc.request.v20160428.DownloadVpnConnectionConfigRequest import DownloadVpnConnectionConfigRequest as LegacyDownload
from alibabacloud_vpc20160428 import models as m

from helpers import REGION, legacy_call, describe, error, make_cgw, make_gateway, make_vpc, make_vsw, next_ip, wait_status

TOS = m.CreateVpnConnectionRequestTunnelOptionsSpecification
TIKE = m.CreateVpnConnectionRequestTunnelOptionsSpecificationTunnelIkeConfig
TBGP = m.CreateVpnConnectionRequestTunnelOptionsSpecificationTunnelBgpConfig
MTOS = m.ModifyVpnConnectionAttributeRequestTunnelOptionsSpecification
MTIKE = m.ModifyVpnConnectionAttributeRequestTunnelOptionsSpecificationTunnelIkeConfig


def conn(c, vco):
    return c.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)).body


def create(c, gw, wait=True, **kw):
    args = dict(region_id=REGION, vpn_gateway_id=gw, local_subnet="10.0.0.0/24", remote_subnet="192.168.0.0/24")
    args.update(kw)
    vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(**args)).body.vpn_connection_id
    if wait:
        wait_status(c, gw, "active")
    return vco


def dual_gateway(c, **kw):
    vpc = make_vpc(c)
    a = make_vsw(c, vpc, "10.1.0.0/16", "cn-hangzhou-h")
    b = make_vsw(c, vpc, "10.2.0.0/16", "cn-hangzhou-i")
    args = dict(region_id=REGION, vpc_id=vpc, v_switch_id=a, disaster_recovery_vswitch_id=b, bandwidth=5, instance_charge_type="POSTPAY")
    args.update(kw)
    gw = c.create_vpn_gateway(m.CreateVpnGatewayRequest(**args)).body.vpn_gateway_id
    wait_status(c, gw, "active")
    return gw


def test_single_tunnel_defaults_lifecycle_and_types(tea):
    gw, _, _ = make_gateway(tea)
    cgw = make_cgw(tea)
    vco = tea.create_vpn_connection(m.CreateVpnConnectionRequest(
        region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw.customer_gateway_id, local_subnet="10.0.0.0/24",
        remote_subnet="192.168.0.0/24", name="conn-1", tags=[m.CreateVpnConnectionRequestTags(key="env", value="prod")])).body
    assert vco.vpn_connection_id.startswith("vco-") and vco.name == "conn-1" and isinstance(vco.create_time, int)
    assert describe(tea, gw).status == "updating"
    d = conn(tea, vco.vpn_connection_id)
    assert d.state == "updating" and d.status == "ike_sa_not_established"
    wait_status(tea, gw, "active")
    d = conn(tea, vco.vpn_connection_id).to_map()
    assert d["State"] == "active" and d["Status"] == "ike_sa_not_established", "status is the data plane's, never invented"
    ike = d["IkeConfig"]
    gw_ip = describe(tea, gw).internet_ip
    assert (ike["IkeVersion"], ike["IkeMode"], ike["IkeEncAlg"], ike["IkeAuthAlg"], ike["IkePfs"], ike["IkeLifetime"]) == ("ikev1", "main", "aes", "md5", "group2", 86400)
    assert len(ike["Psk"]) == 16 and ike["LocalId"] == gw_ip and ike["RemoteId"] == cgw.ip_address
    assert d["IpsecConfig"] == {"IpsecEncAlg": "aes", "IpsecAuthAlg": "md5", "IpsecPfs": "group2", "IpsecLifetime": 86400}
    assert d["EnableDpd"] is True and d["EnableNatTraversal"] is True and d["EffectImmediately"] is False
    assert d["VcoHealthCheck"]["Enable"] == "false" and d["VcoHealthCheck"]["Policy"] == "revoke_route" and d["VcoHealthCheck"]["Interval"] == 3
    assert d["VpnBgpConfig"]["EnableBgp"] == "false" and d["VpnBgpConfig"]["LocalAsn"] == 45104
    assert d["TunnelOptionsSpecification"] == {"TunnelOptions": []} and d["Tags"]["Tag"] == [{"Key": "env", "Value": "prod"}]
    assert d["InternetIp"] == gw_ip and d["CustomerGatewayId"] == cgw.customer_gateway_id
    # Download is the peer's view: local and remote swapped, same key and algorithms.
    cfg = tea.download_vpn_connection_config(m.DownloadVpnConnectionConfigRequest(region_id=REGION, vpn_connection_id=vco.vpn_connection_id)).body.vpn_connection_config.to_map()
    assert (cfg["Local"], cfg["Remote"], cfg["LocalSubnet"], cfg["RemoteSubnet"]) == (cgw.ip_address, gw_ip, "192.168.0.0/24", "10.0.0.0/24")
    assert cfg["IkeConfig"]["LocalId"] == cgw.ip_address and cfg["IkeConfig"]["RemoteId"] == gw_ip and cfg["IkeConfig"]["Psk"] == ike["Psk"]


def test_modify_is_a_partial_update(alice):
    gw, _, _ = make_gateway(alice)
    cgw = make_cgw(alice, asn="65010")
    vco = create(alice, gw, customer_gateway_id=cgw.customer_gateway_id, ike_config=json.dumps({"Psk": "secret-1", "IkeVersion": "ikev2"}))
    before = conn(alice, vco)
    # A rename changes nothing negotiable: no re-key, the gateway stays active.
    out = alice.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(region_id=REGION, vpn_connection_id=vco, name="renamed")).body.to_map()
    assert out["Name"] == "renamed" and out["EnableDpd"] is True and out["IkeConfig"]["IkeLifetime"] == 86400
    assert describe(alice, gw).status == "active"
    # One key of IkeConfig merges into the stored config; the PSK stays.
    alice.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(region_id=REGION, vpn_connection_id=vco, ike_config=json.dumps({"IkeEncAlg": "aes256"})))
    assert describe(alice, gw).status == "updating"
    assert error(alice.modify_vpn_connection_attribute, m.ModifyVpnConnectionAttributeRequest(region_id=REGION, vpn_connection_id=vco, name="again")) == ("VpnGateway.Configuring", 400)
    wait_status(alice, gw, "active")
    after = conn(alice, vco)
    assert after.ike_config.ike_enc_alg == "aes256" and after.ike_config.psk == "secret-1" and after.ike_config.ike_version == "ikev2"
    assert after.ike_config.ike_auth_alg == before.ike_config.ike_auth_alg
    # IKEv2 carries several subnets; IKEv1 with several is refused on modify.
    alice.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(region_id=REGION, vpn_connection_id=vco, local_subnet="10.0.0.0/24,10.0.1.0/24"))
    wait_status(alice, gw, "active")
    assert error(alice.modify_vpn_connection_attribute, m.ModifyVpnConnectionAttributeRequest(
        region_id=REGION, vpn_connection_id=vco, ike_config=json.dumps({"IkeVersion": "ikev1"}))) == ("ModifyIkeV1WithMultiRoutes.Invalid", 400)
    # BGP: enable with a /30, then the rules on the gateway.
    alice.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(
        region_id=REGION, vpn_connection_id=vco, bgp_config=json.dumps({"EnableBgp": "true", "TunnelCidr": "169.254.20.0/30", "LocalAsn": "1.10"})))
    wait_status(alice, gw, "active")
    b = conn(alice, vco).vpn_bgp_config
    assert (b.enable_bgp, b.local_asn, b.local_bgp_ip, b.peer_bgp_ip, b.peer_asn, b.status) == ("true", 65546, "169.254.20.1", "169.254.20.2", 65010, "failed")
    assert describe(alice, gw).enable_bgp is True
    other = make_cgw(alice, asn="65011")
    req = dict(customer_gateway_id=other.customer_gateway_id, local_subnet="10.5.0.0/24")
    assert error(create, alice, gw, wait=False, **req) == ("IllegalParam.EnableBgp", 400)
    assert error(create, alice, gw, wait=False, bgp_config=json.dumps({"EnableBgp": "true", "TunnelCidr": "169.254.20.0/30"}), **req) == ("IllegalParam.TunnelCidr", 400)
    create(alice, gw, bgp_config=json.dumps({"EnableBgp": "true", "TunnelCidr": "169.254.21.0/30"}), **req)


def test_create_errors(alice, bob):
    gw, vpc, vsw = make_gateway(alice)
    cgw = make_cgw(alice, asn="65001")
    no_asn = make_cgw(alice)
    base = dict(customer_gateway_id=cgw.customer_gateway_id)
    cases = [
        (dict(vpn_gateway_id="vpn-none"), "InvalidVpnGatewayInstanceId.NotFound", 404),
        (dict(customer_gateway_id="cgw-none"), "InvalidCustomerGatewayInstanceId.NotFound", 404),
        (dict(customer_gateway_id=None), "MissingParameter", 400),
        (dict(local_subnet="10.0.0.0/33"), "IllegalParam.LocalSubnet", 400),
        (dict(remote_subnet="not-a-cidr"), "IllegalParam.RemoteSubnet", 400),
        (dict(name="http://x"), "InvalidParameter.VpnConnectionName", 400),
        (dict(ike_config=json.dumps({"IkeLifetime": 90000})), "InvalidParameter", 400),
        (dict(ike_config=json.dumps({"Psk": "x" * 101})), "InvalidParameter", 400),
        (dict(ike_config="{not json"), "InvalidParameter", 400),
        (dict(ipsec_config=json.dumps({"IpsecPfs": "group3"})), "NotSupportVpnConnectionParameter.IpsecPfs", 400),
        (dict(ipsec_config=json.dumps({"IpsecAuthAlg": "sm3"})), "NotSupportVpnConnectionParameter.IpsecAuthAlg", 400),
        (dict(bgp_config=json.dumps({"EnableBgp": "true"})), "MissingParameter.TunnelCidr", 400),
        (dict(bgp_config=json.dumps({"EnableBgp": "true", "TunnelCidr": "169.254.1.0/30"}), customer_gateway_id=no_asn.customer_gateway_id), "MissingParam.CustomerGatewayAsn", 400),
        (dict(bgp_config=json.dumps({"TunnelCidr": "169.254.1.0/31"})), "IllegalParam.TunnelCidr", 400),
        (dict(bgp_config=json.dumps({"TunnelCidr": "169.254.1.x/30"})), "InvalidTunnelCidr.Malformed", 400),
        (dict(bgp_config=json.dumps({"LocalBgpIp": "999.1.1.1"})), "InvalidLocalBgpIp.Malformed", 400),
        (dict(bgp_config=json.dumps({"EnableBgp": "true", "TunnelCidr": "169.254.1.0/30", "LocalBgpIp": "169.254.2.1"})), "IllegalParam.LocalBgpIp", 400),
        (dict(bgp_config=json.dumps({"LocalAsn": "4294967296"})), "IllegalParam.LocalAsn", 400),
        (dict(health_check_config=json.dumps({"enable": "true", "sip": "10.0.0.1"})), "MissingParameter", 400),
        (dict(remote_ca_certificate="-----BEGIN CERTIFICATE-----"), "InvalidParameter", 400),
        (dict(tunnel_options_specification=[TOS(customer_gateway_id=cgw.customer_gateway_id, role="master")]), "IllegalParam.TunnelOptionsSpecification", 400),
        (dict(tags=[m.CreateVpnConnectionRequestTags(key="acs:x", value="v")]), "InvalidParameter.TagKey", 400),
        # DryRun: every check passes, nothing is created.
        (dict(dry_run=True), "DryRunOperation", 400),
    ]
    for change, code, status in cases:
        args = dict(base, **change)
        assert error(create, alice, args.pop("vpn_gateway_id", gw), wait=False, **args) == (code, status), change
    assert alice.describe_vpn_connections(m.DescribeVpnConnectionsRequest(region_id=REGION, vpn_gateway_id=gw)).body.total_count == 0, "bad input changes nothing"
    assert describe(alice, gw).status == "active"
    # The customer gateway may not sit on the VPN gateway's own address.
    clash = make_cgw(alice, ip_address=describe(alice, gw).internet_ip)
    assert error(create, alice, gw, wait=False, customer_gateway_id=clash.customer_gateway_id) == ("CustomerGateway.ConflictVpnIp", 400)
    # Same VPN gateway and customer gateway: same IKE settings, no overlapping selectors.
    create(alice, gw, **base)
    assert error(create, alice, gw, wait=False, local_subnet="10.0.0.0/16", **base) == ("VpnConnectionParamInvalid.SameVpnAndCgwDifferentIkeConfigs", 400)
    psk = conn(alice, alice.describe_vpn_connections(m.DescribeVpnConnectionsRequest(region_id=REGION, vpn_gateway_id=gw)).body.vpn_connections.vpn_connection[0].vpn_connection_id).ike_config.psk
    same = json.dumps({"Psk": psk})
    assert error(create, alice, gw, wait=False, local_subnet="10.0.0.0/16", ike_config=same, **base) == ("VpnConnectionParamInvalid.SameVpnAndCgwTrafficSelectorOverlap", 400)
    create(alice, gw, wait=False, local_subnet="10.7.0.0/16", ike_config=same, **base)
    # Busy gateway, another account, a gateway without IPsec.
    assert error(create, alice, gw, wait=False, customer_gateway_id=no_asn.customer_gateway_id) == ("VpnGateway.Configuring", 400)
    assert error(create, bob, gw, wait=False, customer_gateway_id=cgw.customer_gateway_id) == ("InvalidVpnGatewayInstanceId.NotFound", 404)
    no_ipsec, _, _ = make_gateway(alice, enable_ipsec=False)
    assert error(create, alice, no_ipsec, wait=False, **base) == ("VpnGateway.IpsecVpnDisabled", 400)


def test_quota_per_gateway(server):
    c = server.tea("bob")
    gw, _, _ = make_gateway(c)
    for i in range(10):
        create(c, gw, customer_gateway_id=make_cgw(c).customer_gateway_id, local_subnet=f"10.{i}.0.0/24")
    assert error(create, c, gw, wait=False, customer_gateway_id=make_cgw(c).customer_gateway_id) == ("CreateVpnConnectionsQuotaFull.QuotaFull", 400)
    lst = c.describe_vpn_connections(m.DescribeVpnConnectionsRequest(region_id=REGION, vpn_gateway_id=gw, page_size=4, page_number=3)).body
    assert (lst.total_count, len(lst.vpn_connections.vpn_connection)) == (10, 2)


def test_list_filters_tags_and_dependencies(alice):
    gw, _, _ = make_gateway(alice)
    cgw = make_cgw(alice)
    vco = create(alice, gw, customer_gateway_id=cgw.customer_gateway_id)
    alice.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="VPNCONNECTION", resource_id=[vco], tag=[m.TagResourcesRequestTag(key="team", value="net")]))
    for kw in (dict(vpn_gateway_id=gw), dict(customer_gateway_id=cgw.customer_gateway_id), dict(vpn_connection_id=vco), dict(tag=[m.DescribeVpnConnectionsRequestTag(key="team", value="net")])):
        body = alice.describe_vpn_connections(m.DescribeVpnConnectionsRequest(region_id=REGION, **kw)).body.to_map()
        items = body["VpnConnections"]["VpnConnection"]
        assert [i["VpnConnectionId"] for i in items] == [vco], kw
        assert items[0]["Tag"]["Tag"] == [{"Key": "team", "Value": "net"}], "list items carry tags under Tag"
    # Still in use: neither the customer gateway nor the VPN gateway can go.
    assert error(alice.delete_customer_gateway, m.DeleteCustomerGatewayRequest(region_id=REGION, customer_gateway_id=cgw.customer_gateway_id)) == ("DependencyViolation.VpnConnection", 400)
    assert error(alice.delete_vpn_gateway, m.DeleteVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)) == ("DependencyViolation.VpnConnection", 400)
    # A customer gateway linked to a configuring VPN gateway cannot change.
    alice.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(region_id=REGION, vpn_connection_id=vco, local_subnet="10.9.0.0/24"))
    assert error(alice.modify_customer_gateway_attribute, m.ModifyCustomerGatewayAttributeRequest(region_id=REGION, customer_gateway_id=cgw.customer_gateway_id, name="abc")) == ("OperationDenied.VpnConfiguring", 400)
    wait_status(alice, gw, "active")
    alice.delete_vpn_connection(m.DeleteVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco))
    assert describe(alice, gw).status == "updating"
    assert error(conn, alice, vco) == ("InvalidVpnConnectionInstanceId.NotFound", 404)
    assert error(alice.delete_vpn_connection, m.DeleteVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)) == ("InvalidVpnConnectionInstanceId.NotFound", 404)
    alice.delete_customer_gateway(m.DeleteCustomerGatewayRequest(region_id=REGION, customer_gateway_id=cgw.customer_gateway_id))


def test_dual_tunnel(tea):
    gw = dual_gateway(tea)
    g = describe(tea, gw)
    a = make_cgw(tea, asn="65100")
    b = make_cgw(tea, asn="65101")
    tunnels = [
        TOS(customer_gateway_id=a.customer_gateway_id, role="master", tunnel_ike_config=TIKE(psk="master-key", ike_version="ikev2"),
            tunnel_bgp_config=TBGP(tunnel_cidr="169.254.30.0/30", local_asn=65530)),
        TOS(customer_gateway_id=b.customer_gateway_id, role="slave", enable_dpd=False, tunnel_bgp_config=TBGP(tunnel_cidr="169.254.31.0/30", local_bgp_ip="169.254.31.2")),
    ]
    vco = create(tea, gw, tunnel_options_specification=tunnels, enable_tunnels_bgp=True)
    d = conn(tea, vco).to_map()
    t = d["TunnelOptionsSpecification"]["TunnelOptions"]
    assert [x["Role"] for x in t] == ["master", "slave"] and t[0]["TunnelId"] != t[1]["TunnelId"]
    assert (t[0]["InternetIp"], t[1]["InternetIp"]) == (g.internet_ip, g.disaster_recovery_internet_ip)
    assert (t[0]["ZoneNo"], t[1]["ZoneNo"]) == ("cn-hangzhou-h", "cn-hangzhou-i")
    # The SDK models type these tunnel fields as strings.
    assert t[0]["EnableDpd"] == "true" and t[1]["EnableDpd"] == "false" and t[0]["TunnelIkeConfig"]["IkeLifetime"] == "86400"
    assert t[0]["TunnelIkeConfig"]["Psk"] == "master-key" and len(t[1]["TunnelIkeConfig"]["Psk"]) == 16
    assert t[0]["TunnelIkeConfig"]["LocalId"] == g.internet_ip and t[1]["TunnelIkeConfig"]["RemoteId"] == b.ip_address
    assert t[0]["TunnelBgpConfig"]["LocalAsn"] == "65530" and t[0]["TunnelBgpConfig"]["PeerAsn"] == "65100" and t[1]["TunnelBgpConfig"]["PeerBgpIp"] == "169.254.31.1"
    assert all(x["Status"] == "ike_sa_not_established" for x in t) and d["EnableTunnelsBgp"] is True
    # Modify one tunnel by its id; the other keeps its settings.
    out = tea.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(region_id=REGION, vpn_connection_id=vco,
        tunnel_options_specification=[MTOS(tunnel_id=t[1]["TunnelId"], tunnel_ike_config=MTIKE(psk="slave-key", ike_enc_alg="aes192"))])).body.to_map()
    mt = out["TunnelOptionsSpecification"]["TunnelOptions"]
    assert mt[1]["TunnelIkeConfig"]["Psk"] == "slave-key" and mt[1]["TunnelIkeConfig"]["IkeLifetime"] == 86400 and mt[0]["EnableDpd"] is True
    wait_status(tea, gw, "active")
    bad = [
        (dict(tunnel_options_specification=[MTOS(tunnel_id="tun-nope")]), "IllegalParam.TunnelId"),
        (dict(tunnel_options_specification=[MTOS(tunnel_id=t[0]["TunnelId"], role="slave")]), "IllegalParam.Role"),
        (dict(tunnel_options_specification=[MTOS(tunnel_id=t[0]["TunnelId"], customer_gateway_id=b.customer_gateway_id)]), "IllegalParam.CustomerGatewayId"),
        (dict(ike_config=json.dumps({"Psk": "x"})), "IllegalParam.SingleTunnelParameter"),
    ]
    for kw, code in bad:
        assert error(tea.modify_vpn_connection_attribute, m.ModifyVpnConnectionAttributeRequest(region_id=REGION, vpn_connection_id=vco, **kw)) == (code, 400), kw
    cfg = tea.download_vpn_connection_config(m.DownloadVpnConnectionConfigRequest(region_id=REGION, vpn_connection_id=vco)).body.vpn_connection_config.to_map()
    tc = cfg["TunnelsConfig"]["TunnelConfig"]
    assert [(x["Local"], x["Remote"]) for x in tc] == [(a.ip_address, g.internet_ip), (b.ip_address, g.disaster_recovery_internet_ip)]
    assert tc[1]["IkeConfig"]["Psk"] == "slave-key" and tc[1]["IkeConfig"]["IkeEncAlg"] == "aes192"
    assert [x["LocalAsn"] for x in cfg["BgpConfigs"]["BgpConfig"]] == ["65100", "65101"]


def test_dual_tunnel_create_errors(alice):
    gw = dual_gateway(alice)
    a = make_cgw(alice).customer_gateway_id
    b = make_cgw(alice).customer_gateway_id
    cases = [
        (dict(), "MissingParameter.TunnelOptionsSpecification"),
        (dict(tunnel_options_specification=[TOS(customer_gateway_id=a, role="master")]), "MissingParameter.TunnelOptionsSpecification"),
        (dict(tunnel_options_specification=[TOS(customer_gateway_id=a, role="master"), TOS(customer_gateway_id=b, role="master")]), "IllegalParam.Role"),
        (dict(tunnel_options_specification=[TOS(customer_gateway_id=a, role="master"), TOS(customer_gateway_id=b, role="boss")]), "IllegalParam.Role"),
        (dict(customer_gateway_id=a, tunnel_options_specification=[TOS(customer_gateway_id=a, role="master"), TOS(customer_gateway_id=b, role="slave")]), "IllegalParam.SingleTunnelParameter"),
    ]
    for kw, code in cases:
        assert error(create, alice, gw, wait=False, **kw) == (code, 400), kw


def test_national_standard(alice):
    gw, _, _ = make_gateway(alice, vpn_type="NationalStandard")
    cgw = make_cgw(alice).customer_gateway_id
    assert error(create, alice, gw, wait=False, customer_gateway_id=cgw, ike_config=json.dumps({"RemoteId": "peer"})) == ("MissingParameter", 400)
    assert error(create, alice, gw, wait=False, customer_gateway_id=cgw, remote_ca_certificate="CA") == ("MissingParam.RemoteId", 400)
    assert error(create, alice, gw, wait=False, customer_gateway_id=cgw, remote_ca_certificate="CA", ike_config=json.dumps({"RemoteId": "peer", "IkeEncAlg": "aes"})) == ("InvalidParameter", 400)
    vco = create(alice, gw, customer_gateway_id=cgw, remote_ca_certificate="CA", ike_config=json.dumps({"RemoteId": "peer"}))
    d = conn(alice, vco)
    assert (d.ike_config.ike_enc_alg, d.ike_config.ike_auth_alg, d.ipsec_config.ipsec_enc_alg, d.ike_config.remote_id) == ("sm4", "sm3", "sm4", "peer")


def test_strongswan_device_config_through_the_legacy_sdk(server):
    c = server.tea()
    gw, _, _ = make_gateway(c)
    cgw = make_cgw(c)
    vco = create(c, gw, customer_gateway_id=cgw.customer_gateway_id, local_subnet="10.0.0.0/24,10.0.1.0/24",
                 ike_config=json.dumps({"Psk": "k3y", "IkeEncAlg": "aes256", "IkePfs": "group14"}))
    legacy = server.legacy()
    req = LegacyDownload()
    req.set_VpnConnectionId(vco)
    req.add_query_param("DeviceType", "strongswan")
    req.set_endpoint(server.endpoint)
    req.set_protocol_type("http")
    cfg = json.loads(legacy.do_action_with_exception(req))["VpnConnectionConfig"]
    text = cfg["DeviceConfig"]
    assert f"local_addrs = {cgw.ip_address}" in text and "proposals = aes256-md5-modp2048" in text
    assert text.count("start_action = trap") == 2, "IKEv1: one child per subnet pair; EffectImmediately=false waits for traffic"
    assert "secret = 0x6b3379" in text
    req.add_query_param("DeviceType", "toaster")
    from aliyunsdkcore.acs_exception.exceptions import ServerException
    with pytest.raises(ServerException) as e:
        legacy.do_action_with_exception(req)
    assert e.value.get_error_code() == "InvalidParameter.DeviceType"


def test_client_token_on_connections(alice):
    gw, _, _ = make_gateway(alice)
    cgw = make_cgw(alice).customer_gateway_id
    first = alice.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw,
        local_subnet="10.0.0.0/24", remote_subnet="192.168.0.0/24", client_token="tok-vco-1")).body.vpn_connection_id
    # A retry answers the first result even while the gateway is still configuring.
    again = alice.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw,
        local_subnet="10.0.0.0/24", remote_subnet="192.168.0.0/24", client_token="tok-vco-1")).body.vpn_connection_id
    assert again == first
    assert error(alice.create_vpn_connection, m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw,
        local_subnet="10.0.1.0/24", remote_subnet="192.168.0.0/24", client_token="tok-vco-1")) == ("IdempotentParameterMismatch", 400)
    wait_status(alice, gw, "active")
    assert alice.describe_vpn_connections(m.DescribeVpnConnectionsRequest(region_id=REGION, vpn_gateway_id=gw)).body.total_count == 1


def test_legacy_sdk_connection_lifecycle(server):
    from aliyunsdkvpc.request.v20160428.CreateVpnConnectionRequest import CreateVpnConnectionRequest as LCreate
    from aliyunsdkvpc.request.v20160428.DescribeVpnConnectionRequest import DescribeVpnConnectionRequest as LDescribe
    from aliyunsdkvpc.request.v20160428.ModifyVpnConnectionAttributeRequest import ModifyVpnConnectionAttributeRequest as LModify
    from aliyunsdkvpc.request.v20160428.DeleteVpnConnectionRequest import DeleteVpnConnectionRequest as LDelete
    c = server.tea()

    def call(req):
        return legacy_call(server, req)

    gw, _, _ = make_gateway(c)
    cgw = make_cgw(c).customer_gateway_id
    req = LCreate()
    req.set_VpnGatewayId(gw)
    req.set_CustomerGatewayId(cgw)
    req.set_LocalSubnet("10.0.0.0/24")
    req.set_RemoteSubnet("192.168.0.0/24")
    req.set_IkeConfig(json.dumps({"IkeVersion": "ikev2", "IkeAuthAlg": "sha256"}))
    req.set_EnableDpd(False)
    vco = call(req)["VpnConnectionId"]
    wait_status(c, gw, "active")
    d = LDescribe()
    d.set_VpnConnectionId(vco)
    body = call(d)
    assert body["IkeConfig"]["IkeVersion"] == "ikev2" and body["IkeConfig"]["IkeAuthAlg"] == "sha256" and body["EnableDpd"] is False
    mod = LModify()
    mod.set_VpnConnectionId(vco)
    mod.set_IpsecConfig(json.dumps({"IpsecPfs": "disabled"}))
    assert call(mod)["IpsecConfig"]["IpsecPfs"] == "disabled"
    wait_status(c, gw, "active")
    rm = LDelete()
    rm.set_VpnConnectionId(vco)
    call(rm)
    from aliyunsdkcore.acs_exception.exceptions import ServerException
    with pytest.raises(ServerException) as e:
        call(d)
    assert e.value.get_error_code() == "InvalidVpnConnectionInstanceId.NotFound" and e.value.get_http_status() == 404


def test_connection_logs_window_paging_and_errors(tea, bob):
    """DescribeVpnConnectionLogs' rules (this server has no data plane, so no lines; the lab tests read real ones)."""
    gw, _, _ = make_gateway(tea)
    vco = create(tea, gw, customer_gateway_id=make_cgw(tea).customer_gateway_id)
    req = lambda **kw: m.DescribeVpnConnectionLogsRequest(region_id=REGION, vpn_connection_id=vco, **kw)
    b = tea.describe_vpn_connection_logs(req(minute_period=10, page_size=50)).body
    assert (b.count, b.page_number, b.page_size, b.is_completed, b.data.logs) == (0, 1, 50, True, [])
    now = int(time.time())
    assert tea.describe_vpn_connection_logs(req(from_=now - 60, to=now)).body.page_size == 10
    cases = [
        (dict(), "MissingParameter"),
        (dict(from_=now), "MissingParameter"),
        (dict(to=now), "MissingParameter"),
        (dict(minute_period=11), "InvalidParameter"),
        (dict(minute_period=0), "InvalidParameter"),
        (dict(from_=now, to=now - 1), "InvalidParameter"),
        (dict(minute_period=1, page_size=51), "InvalidParameter"),
        (dict(minute_period=1, tunnel_id="tun-nope"), "IllegalParam.TunnelId"),
    ]
    for kw, code in cases:
        assert error(tea.describe_vpn_connection_logs, req(**kw)) == (code, 400), kw
    # Another account's connection does not exist for bob.
    assert error(bob.describe_vpn_connection_logs, req(minute_period=1)) == ("InvalidVpnConnectionInstanceId.NotFound", 404)
    # A dual-tunnel connection's logs may be asked per tunnel.
    dgw = dual_gateway(tea)
    tunnels = [TOS(customer_gateway_id=make_cgw(tea).customer_gateway_id, role=r) for r in ("master", "slave")]
    dual = create(tea, dgw, tunnel_options_specification=tunnels)
    tid = conn(tea, dual).tunnel_options_specification.tunnel_options[1].tunnel_id
    assert tea.describe_vpn_connection_logs(m.DescribeVpnConnectionLogsRequest(region_id=REGION, vpn_connection_id=dual, tunnel_id=tid, minute_period=1)).body.count == 0


def test_modify_tunnel_attribute_changes_one_tunnel(tea, bob):
    gw = dual_gateway(tea)
    a, b = make_cgw(tea).customer_gateway_id, make_cgw(tea).customer_gateway_id
    vco = create(tea, gw, tunnel_options_specification=[TOS(customer_gateway_id=a, role="master"), TOS(customer_gateway_id=b, role="slave")])
    master, slave = conn(tea, vco).tunnel_options_specification.tunnel_options
    S = m.ModifyTunnelAttributeRequestTunnelOptionsSpecification
    IKE = m.ModifyTunnelAttributeRequestTunnelOptionsSpecificationTunnelIkeConfig
    IPSEC = m.ModifyTunnelAttributeRequestTunnelOptionsSpecificationTunnelIpsecConfig
    req = lambda tid, spec, conn_id=vco: m.ModifyTunnelAttributeRequest(region_id=REGION, vpn_connection_id=conn_id, tunnel_id=tid, tunnel_options_specification=spec)
    out = tea.modify_tunnel_attribute(req(slave.tunnel_id, S(enable_dpd=False, tunnel_ike_config=IKE(psk="slave-only", ike_enc_alg="aes256", ike_lifetime=3600), tunnel_ipsec_config=IPSEC(ipsec_pfs="disabled")))).body
    # The answer is the tunnel, typed as the SDK model has it.
    assert (out.tunnel_id, out.role, out.customer_gateway_id, out.enable_dpd) == (slave.tunnel_id, "slave", b, False)
    assert (out.tunnel_ike_config.psk, out.tunnel_ike_config.ike_enc_alg, out.tunnel_ike_config.ike_lifetime, out.tunnel_ipsec_config.ipsec_pfs) == ("slave-only", "aes256", 3600, "disabled")
    assert out.tunnel_bgp_config.enable_bgp is False and isinstance(out.tunnel_ipsec_config.ipsec_lifetime, int)
    # A negotiated setting changed: the connection and its gateway go through updating.
    assert describe(tea, gw).status == "updating"
    wait_status(tea, gw, "active")
    now = {t.role: t for t in conn(tea, vco).tunnel_options_specification.tunnel_options}
    assert (now["slave"].tunnel_ike_config.psk, now["slave"].enable_dpd) == ("slave-only", "false")
    assert (now["master"].tunnel_ike_config.psk, now["master"].enable_dpd) == (master.tunnel_ike_config.psk, master.enable_dpd), "the other tunnel keeps its settings"
    single_gw, _, _ = make_gateway(tea)
    single = create(tea, single_gw, customer_gateway_id=make_cgw(tea).customer_gateway_id)
    cases = [
        (tea, req("tun-nope", S(enable_dpd=True)), ("IllegalParam.TunnelId", 400)),
        (tea, req(master.tunnel_id, S(enable_dpd=True), conn_id=single), ("IllegalParam.TunnelId", 400)),
        (tea, req(master.tunnel_id, S(customer_gateway_id=b)), ("IllegalParam.CustomerGatewayId", 400)),
        (tea, req(master.tunnel_id, S(tunnel_ike_config=IKE(ike_enc_alg="rot13"))), ("InvalidParameter", 400)),
        (bob, req(master.tunnel_id, S(enable_dpd=False)), ("InvalidVpnConnectionInstanceId.NotFound", 404)),
    ]
    for c, r, expected in cases:
        assert error(c.modify_tunnel_attribute, r) == expected, r
    assert conn(tea, vco).tunnel_options_specification.tunnel_options[0].enable_dpd == master.enable_dpd, "nothing changed"


def test_diagnose_vpn_connections_selects_pages_and_refuses(tea, bob):
    """DiagnoseVpnConnections' selection and codes (no data plane here: every tunnel is down and
    nothing was negotiated; the lab tests read real failures)."""
    gw = dual_gateway(tea)
    dual = create(tea, gw, tunnel_options_specification=[TOS(customer_gateway_id=make_cgw(tea).customer_gateway_id, role=r) for r in ("master", "slave")])
    tunnels = [t.tunnel_id for t in conn(tea, dual).tunnel_options_specification.tunnel_options]
    single_gw, _, _ = make_gateway(tea)
    single = create(tea, single_gw, customer_gateway_id=make_cgw(tea).customer_gateway_id)
    ask = lambda c=tea, **kw: c.diagnose_vpn_connections(m.DiagnoseVpnConnectionsRequest(region_id=REGION, **kw)).body
    b = ask(vpn_connection_ids=[single])
    assert (b.total_count, b.page_number, b.page_size) == (1, 1, 10)
    e = b.vpn_connections[0]
    assert (e.vpn_connection_id, e.tunnel_id, e.severity, e.failed_reason_code, e.failed_time) == (single, "", "Warn", "NotNegotiated", 0)
    # A dual-tunnel connection is diagnosed per tunnel.
    assert [(x.vpn_connection_id, x.tunnel_id) for x in ask(vpn_connection_ids=[dual]).vpn_connections] == [(dual, t) for t in tunnels]
    assert [x.tunnel_id for x in ask(tunnel_ids=[tunnels[1]]).vpn_connections] == [tunnels[1]]
    assert ask(vpn_gateway_id=gw).total_count == 2
    page = ask(vpn_gateway_id=gw, page_size=1, page_number=2)
    assert (page.total_count, [x.tunnel_id for x in page.vpn_connections]) == (2, [tunnels[1]])
    cases = [
        (tea, dict(vpn_connection_ids=["vco-nope"]), ("InvalidVpnConnectionInstanceId.NotFound", 404)),
        (tea, dict(tunnel_ids=["tun-nope"]), ("IllegalParam.TunnelId", 400)),
        (tea, dict(vpn_gateway_id="vpn-nope"), ("InvalidVpnGatewayInstanceId.NotFound", 404)),
        (tea, dict(vpn_gateway_id=single_gw, vpn_connection_ids=[dual]), ("InvalidVpnConnectionInstanceId.NotFound", 404)),
        (tea, dict(page_size=51), ("InvalidParameter", 400)),
        (bob, dict(vpn_connection_ids=[single]), ("InvalidVpnConnectionInstanceId.NotFound", 404)),
    ]
    for c, kw, expected in cases:
        assert error(ask, c, **kw) == expected, kw
