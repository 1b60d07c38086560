"""The newer VPN actions of the current SDK: enhanced gateways, CheckVpnBgpEnabled,
DescribeVpnCrossAccountAuthorizations (the typed Tea SDK, both signatures)."""
from alibabacloud_vpc20160428 import models as m

from helpers import REGION, error, make_cgw, make_gateway, make_vpc, make_vsw, wait_gone, wait_status
from terraform import Provider


def make_enhanced(c, **kw):
    vpc = make_vpc(c)
    vsw = make_vsw(c, vpc)
    args = dict(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, gateway_type="Enhanced.SiteToSite", name="enh")
    args.update(kw)
    body = c.create_enhanced_vpn_gateway(m.CreateEnhancedVpnGatewayRequest(**args)).body
    return body, vpc, vsw


def test_an_enhanced_gateway_lives_and_is_listed_with_its_type(tea):
    body, vpc, vsw = make_enhanced(tea)
    gw = body.vpn_gateway_id
    assert body.name == "enh" and gw.startswith("vpn-")
    wait_status(tea, gw, "active")
    d = tea.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body
    assert (d.gateway_type, d.vpc_id, d.v_switch_id, d.ipsec_vpn, d.ssl_vpn) == ("Enhanced.SiteToSite", vpc, vsw, "enable", "disable")
    assert d.spec is None and d.internet_ip
    # The GatewayType filter tells the families apart.
    normal, _, _ = make_gateway(tea)
    listed = tea.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, gateway_type="Enhanced.SiteToSite", page_size=50)).body
    ids = [g.vpn_gateway_id for g in listed.vpn_gateways.vpn_gateway]
    assert gw in ids and normal not in ids
    # Update: name, description, AutoPropagate (applied by the data plane: updating, then active).
    up = tea.update_enhanced_vpn_gateway(m.UpdateEnhancedVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw, name="enh-2", description="desc", auto_propagate=False)).body
    assert (up.name, up.description, up.auto_propagate, up.gateway_type, up.vpn_gateway_id) == ("enh-2", "desc", False, "Enhanced.SiteToSite", gw)
    wait_status(tea, gw, "active")
    # Each family's update and delete refuse the other's gateways; SSL-VPN is not offered.
    assert error(tea.update_enhanced_vpn_gateway, m.UpdateEnhancedVpnGatewayRequest(region_id=REGION, vpn_gateway_id=normal, name="xyz")) == ("OperationUnsupported.GatewayType", 400)
    assert error(tea.delete_vpn_gateway, m.DeleteVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)) == ("OperationUnsupported.GatewayType", 400)
    assert error(tea.delete_enhanced_vpn_gateway, m.DeleteEnhancedVpnGatewayRequest(region_id=REGION, vpn_gateway_id=normal)) == ("OperationUnsupported.GatewayType", 400)
    assert error(tea.create_ssl_vpn_server, m.CreateSslVpnServerRequest(region_id=REGION, vpn_gateway_id=gw, client_ip_pool="192.168.0.0/16", local_subnet="10.0.0.0/8"))[0] == "VpnGateway.SslVpnDisabled"
    tea.delete_enhanced_vpn_gateway(m.DeleteEnhancedVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw))
    wait_gone(tea, gw)
    assert error(tea.delete_enhanced_vpn_gateway, m.DeleteEnhancedVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)) == ("InvalidVpnGatewayInstanceId.NotFound", 404)


def test_enhanced_gateway_input_errors(tea):
    vpc = make_vpc(tea)
    assert error(tea.create_enhanced_vpn_gateway, m.CreateEnhancedVpnGatewayRequest(region_id=REGION, vpc_id=vpc, gateway_type="Normal"))[0] == "InvalidParameter"
    assert error(tea.create_enhanced_vpn_gateway, m.CreateEnhancedVpnGatewayRequest(region_id=REGION, vpc_id="vpc-none")) == ("InvalidVpcId.NotFound", 404)
    assert error(tea.create_enhanced_vpn_gateway, m.CreateEnhancedVpnGatewayRequest(region_id=REGION, vpc_id=vpc, name="x")) == ("InvalidName", 400)


def test_bob_cannot_touch_alices_enhanced_gateway(server):
    alice, bob = server.tea(), server.tea("bob")
    gw = make_enhanced(alice)[0].vpn_gateway_id
    assert error(bob.update_enhanced_vpn_gateway, m.UpdateEnhancedVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw, name="bob")) == ("InvalidVpnGatewayInstanceId.NotFound", 404)
    assert error(bob.delete_enhanced_vpn_gateway, m.DeleteEnhancedVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)) == ("InvalidVpnGatewayInstanceId.NotFound", 404)


def test_check_vpn_bgp_enabled_tells_whether_sessions_can_run(tea):
    # The suite's server runs no data plane and no agents: BGP sessions could never come up.
    assert tea.check_vpn_bgp_enabled(m.CheckVpnBgpEnabledRequest(region_id=REGION)).body.bgp_enabled is False
    assert error(tea.check_vpn_bgp_enabled, m.CheckVpnBgpEnabledRequest(region_id="xx-nowhere"))[0] == "InvalidRegionId.NotFound"


def test_cross_account_authorizations_are_an_empty_page(tea):
    gw, _, _ = make_gateway(tea)
    cgw = make_cgw(tea).customer_gateway_id
    vco = tea.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.0.0.0/8", remote_subnet="192.168.0.0/16")).body.vpn_connection_id
    body = tea.describe_vpn_cross_account_authorizations(m.DescribeVpnCrossAccountAuthorizationsRequest(region_id=REGION, vpn_connection_id=vco, page_size=5)).body
    assert (body.total_count, body.page_number, body.page_size, body.cross_account_authorizations) == (0, 1, 5, [])
    assert error(tea.describe_vpn_cross_account_authorizations, m.DescribeVpnCrossAccountAuthorizationsRequest(region_id=REGION, vpn_connection_id="vco-none")) == ("InvalidVpnConnectionInstanceId.NotFound", 404)


def test_terraform_alicloud_vpn_gateway_enhanced_vpn_gateway(server):
    """resource_alicloud_vpn_gateway_enhanced_vpn_gateway.go: create, read, update, delete."""
    tf = Provider(server)
    vpc = tf.post("CreateVpc", {"CidrBlock": "10.0.0.0/8"})["VpcId"]
    vsw = tf.post("CreateVSwitch", {"VpcId": vpc, "ZoneId": "cn-hangzhou-h", "CidrBlock": "10.1.0.0/16"})["VSwitchId"]
    gw = tf.post("CreateEnhancedVpnGateway", {"ClientToken": "tf-enh-1", "VpcId": vpc, "VSwitchId": vsw, "Name": "tf-enh",
                                              "GatewayType": "Enhanced.SiteToSite", "NetworkType": "public", "VpnType": "Normal"})["VpnGatewayId"]
    read = {"AutoPropagate": bool, "CreateTime": int, "Description": str, "DisasterRecoveryVSwitchId": str, "GatewayType": str,
            "NetworkType": str, "Status": str, "VSwitchId": str, "VpcId": str, "Name": str, "VpnType": str}
    import time
    deadline = time.time() + 10
    while Provider.read(tf.post("DescribeVpnGateway", {"VpnGatewayId": gw}), read)["Status"] != "active":
        assert time.time() < deadline
        time.sleep(0.05)
    tf.post("TagResources", {"ResourceId.1": gw, "ResourceType": "VpnGateWay", "Tag.1.Key": "k", "Tag.1.Value": "v"})
    tags = tf.post("ListTagResources", {"ResourceId.1": gw, "ResourceType": "VpnGateWay"})["TagResources"]["TagResource"]
    assert [(t["TagKey"], t["TagValue"]) for t in tags] == [("k", "v")]
    tf.post("UpdateEnhancedVpnGateway", {"VpnGatewayId": gw, "ClientToken": "tf-enh-2", "Description": "dd", "Name": "tf-enh-2"})
    obj = Provider.read(tf.post("DescribeVpnGateway", {"VpnGatewayId": gw}), read)
    assert (obj["Name"], obj["Description"], obj["GatewayType"]) == ("tf-enh-2", "dd", "Enhanced.SiteToSite")
    tf.post("DeleteEnhancedVpnGateway", {"VpnGatewayId": gw, "ClientToken": "tf-enh-3"})
    # The provider waits for DescribeVpnGateways' TotalCount to reach 0.
    deadline = time.time() + 10
    while tf.post("DescribeVpnGateways", {"VpnGatewayId": gw})["TotalCount"] != 0:
        assert time.time() < deadline
        time.sleep(0.05)
