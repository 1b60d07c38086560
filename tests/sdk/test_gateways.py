"""Regions, VPCs and vSwitches, VPN gateways: through the official Tea SDK, both signatures."""
import json
import time
import uuid

from alibabacloud_vpc20160428 import models as m

from helpers import REGION, describe, error, make_cgw, make_gateway, make_vpc, make_vsw, wait_gone, wait_status


def test_regions_and_zones(tea):
    regions = tea.describe_regions(m.DescribeRegionsRequest()).body.regions.region
    assert [r.region_id for r in regions] == ["cn-hangzhou", "cn-shanghai", "cn-beijing", "ap-southeast-1"]
    zones = tea.describe_zones(m.DescribeZonesRequest(region_id="cn-shanghai")).body.zones.zone
    assert [z.zone_id for z in zones] == ["cn-shanghai-e", "cn-shanghai-f", "cn-shanghai-g"]
    az = tea.describe_vpn_gateway_available_zones(m.DescribeVpnGatewayAvailableZonesRequest(region_id=REGION)).body
    assert az.region_id == REGION and az.available_zone_id_list[0].zone_id == "cn-hangzhou-h"
    assert error(tea.describe_zones, m.DescribeZonesRequest(region_id="mars-1")) == ("InvalidRegionId.NotFound", 404)


def test_vpc_and_vswitch_rules(tea):
    vpc = make_vpc(tea, "192.168.0.0/16")
    vpcs = tea.describe_vpcs(m.DescribeVpcsRequest(region_id=REGION, vpc_id=vpc)).body
    assert vpcs.total_count == 1 and vpcs.vpcs.vpc[0].cidr_block == "192.168.0.0/16"
    assert vpcs.vpcs.vpc[0].status == "Available"
    assert error(tea.create_vpc, m.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.1/8")) == ("InvalidCidrBlock.Malformed", 400)
    assert error(tea.create_vpc, m.CreateVpcRequest(region_id=REGION, vpc_name="http://x")) == ("InvalidVpcName.Malformed", 400)
    assert error(tea.create_vpc, m.CreateVpcRequest(region_id=REGION, dry_run=True)) == ("DryRunOperation", 400)
    bad = m.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc, zone_id="cn-hangzhou-h", cidr_block="10.0.0.0/24")
    assert error(tea.create_vswitch, bad) == ("InvalidCidrBlock.Mismatch", 400)
    vsw = make_vsw(tea, vpc, "192.168.1.0/24")
    assert error(tea.create_vswitch, m.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc, zone_id="cn-hangzhou-h", cidr_block="192.168.1.0/25")) == ("InvalidCidrBlock.Overlapped", 400)
    assert error(tea.create_vswitch, m.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc, zone_id="nowhere", cidr_block="192.168.2.0/24")) == ("InvalidZoneId.NotFound", 404)
    assert error(tea.create_vswitch, m.CreateVSwitchRequest(region_id=REGION, vpc_id="vpc-none", zone_id="cn-hangzhou-h", cidr_block="192.168.2.0/24")) == ("InvalidVpcId.NotFound", 404)
    sw = tea.describe_vswitches(m.DescribeVSwitchesRequest(region_id=REGION, vpc_id=vpc)).body
    assert sw.total_count == 1 and sw.v_switches.v_switch[0].v_switch_id == vsw
    assert sw.v_switches.v_switch[0].available_ip_address_count == 252
    assert error(tea.delete_vpc, m.DeleteVpcRequest(region_id=REGION, vpc_id=vpc)) == ("DependencyViolation.VSwitch", 400)
    tea.delete_vswitch(m.DeleteVSwitchRequest(region_id=REGION, v_switch_id=vsw))
    tea.delete_vpc(m.DeleteVpcRequest(region_id=REGION, vpc_id=vpc))
    assert error(tea.delete_vpc, m.DeleteVpcRequest(region_id=REGION, vpc_id=vpc)) == ("InvalidVpcId.NotFound", 404)


def test_gateway_lifecycle_and_fields(tea):
    vpc = make_vpc(tea)
    vsw = make_vsw(tea, vpc)
    req = m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=10, instance_charge_type="PREPAY",
                                    period=3, auto_pay=True, enable_ssl=True, ssl_connections=10, name="my-gw")
    out = tea.create_vpn_gateway(req).body
    assert out.vpn_gateway_id.startswith("vpn-") and out.name == "my-gw" and isinstance(out.order_id, int)
    gw = describe(tea, out.vpn_gateway_id)
    assert gw.status == "init"
    # A write while it is being created is refused with the busy code.
    assert error(tea.modify_vpn_gateway_attribute, m.ModifyVpnGatewayAttributeRequest(region_id=REGION, vpn_gateway_id=out.vpn_gateway_id, name="x-y")) == ("VpnGateway.Configuring", 400)
    wait_status(tea, out.vpn_gateway_id, "active")
    gw = describe(tea, out.vpn_gateway_id).to_map()
    assert gw["Spec"] == "10M" and gw["IpsecVpn"] == "enable" and gw["SslVpn"] == "enable"
    assert gw["SslMaxConnections"] == 10 and gw["ChargeType"] == "Prepay" and gw["BusinessStatus"] == "Normal"
    assert gw["VpcId"] == vpc and gw["VSwitchId"] == vsw and gw["VpnType"] == "Normal"
    assert isinstance(gw["CreateTime"], int) and gw["EndTime"] > gw["CreateTime"] + 80 * 86400 * 1000
    assert gw["InternetIp"].startswith("198.51.100.") and gw["Tags"] == {"Tag": []}
    assert isinstance(json.loads(gw["Tag"]), dict) and gw["EnableBgp"] is False and gw["AutoPropagate"] is True

    # Modify: names and descriptions at once, AutoPropagate through `updating`.
    mod = tea.modify_vpn_gateway_attribute(m.ModifyVpnGatewayAttributeRequest(
        region_id=REGION, vpn_gateway_id=out.vpn_gateway_id, name="renamed", description="desc test", auto_propagate=False)).body
    assert mod.name == "renamed" and mod.description == "desc test" and mod.auto_propagate is False and mod.status == "updating"
    assert mod.intranet_ip.startswith("10.1.")
    wait_status(tea, out.vpn_gateway_id, "active")
    for bad, code in [(dict(name="1bad"), "InvalidName"), (dict(description="x"), "InvalidDescription")]:
        assert error(tea.modify_vpn_gateway_attribute, m.ModifyVpnGatewayAttributeRequest(region_id=REGION, vpn_gateway_id=out.vpn_gateway_id, **bad)) == (code, 400)

    tea.delete_vpn_gateway(m.DeleteVpnGatewayRequest(region_id=REGION, vpn_gateway_id=out.vpn_gateway_id))
    assert describe(tea, out.vpn_gateway_id).status == "deleting"
    assert error(tea.delete_vpn_gateway, m.DeleteVpnGatewayRequest(region_id=REGION, vpn_gateway_id=out.vpn_gateway_id)) == ("VpnGateway.Configuring", 400)
    wait_gone(tea, out.vpn_gateway_id)
    assert error(tea.delete_vpn_gateway, m.DeleteVpnGatewayRequest(region_id=REGION, vpn_gateway_id=out.vpn_gateway_id)) == ("InvalidVpnGatewayInstanceId.NotFound", 404)
    # Its address went back to the pool, and the VPC can go now.
    tea.delete_vswitch(m.DeleteVSwitchRequest(region_id=REGION, v_switch_id=vsw))
    tea.delete_vpc(m.DeleteVpcRequest(region_id=REGION, vpc_id=vpc))


def test_a_gateway_without_a_charge_type_is_postpaid(tea):
    # The current CreateVpnGateway page does not require InstanceChargeType (the Terraform
    # provider leaves it out): POSTPAY.
    vpc = make_vpc(tea)
    vsw = make_vsw(tea, vpc)
    gw = tea.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5)).body.vpn_gateway_id
    assert describe(tea, gw).charge_type == "PostpayByFlow"


def test_gateway_create_validation(tea):
    vpc = make_vpc(tea)
    vsw = make_vsw(tea, vpc)
    other_vpc = make_vpc(tea)
    other_vsw = make_vsw(tea, other_vpc)
    base = dict(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY")
    cases = [
        (dict(bandwidth=7), "InvalidParameter"),
        (dict(instance_charge_type="PREPAY"), "MissingParameter"),
        (dict(instance_charge_type="PREPAY", period=10), "InvalidParameter"),
        (dict(ssl_connections=3), "InvalidParameter"),
        (dict(vpn_type="Fancy"), "InvalidParameter"),
        (dict(network_type="internal"), "InvalidParameter"),
        (dict(name="x"), "InvalidName"),
        (dict(vpc_id="vpc-nothere"), "InvalidVpcId.NotFound"),
        (dict(v_switch_id="vsw-nothere"), "InvalidVSwitchId.NotFound"),
        (dict(v_switch_id=other_vsw), "InvalidVSwitchId.NotInVpc"),
        (dict(disaster_recovery_vswitch_id=vsw), "IllegalParam.DisasterRecoveryVSwitchId"),
        (dict(region_id="mars-1"), "InvalidRegionId.NotFound"),
    ]
    before = tea.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, vpc_id=vpc)).body.total_count
    for change, code in cases:
        args = dict(base, **change)
        got = error(tea.create_vpn_gateway, m.CreateVpnGatewayRequest(**args))
        assert got[0] == code, (change, got)
        assert got[1] in (400, 404)
    after = tea.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, vpc_id=vpc)).body.total_count
    assert before == after == 0, "bad input never changes state"
    # NetworkType is kept as created (Terraform's alicloud_vpn_gateway reads it back; ForceNew).
    private = tea.create_vpn_gateway(m.CreateVpnGatewayRequest(network_type="private", **base)).body.vpn_gateway_id
    assert describe(tea, private).network_type == "private"
    public, _, _ = make_gateway(tea, wait=False)
    assert describe(tea, public).network_type == "public"


def test_dual_tunnel_gateway_gets_two_addresses(tea):
    vpc = make_vpc(tea)
    a = make_vsw(tea, vpc, "10.1.0.0/16", "cn-hangzhou-h")
    b = make_vsw(tea, vpc, "10.2.0.0/16", "cn-hangzhou-i")
    gw = tea.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=a, disaster_recovery_vswitch_id=b,
                                                           bandwidth=5, instance_charge_type="POSTPAY")).body.vpn_gateway_id
    d = describe(tea, gw)
    assert d.disaster_recovery_vswitch_id == b
    assert d.disaster_recovery_internet_ip and d.disaster_recovery_internet_ip != d.internet_ip
    assert error(tea.delete_vswitch, m.DeleteVSwitchRequest(region_id=REGION, v_switch_id=b)) == ("DependencyViolation.VpnGateway", 400)
    assert error(tea.delete_vpc, m.DeleteVpcRequest(region_id=REGION, vpc_id=vpc)) == ("DependencyViolation.VpnGateway", 400)


def test_describe_gateways_paging_and_filters(alice):
    vpc = make_vpc(alice)
    vsw = make_vsw(alice, vpc)
    ids = []
    for _ in range(5):
        ids.append(alice.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY")).body.vpn_gateway_id)
    p1 = alice.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, vpc_id=vpc, page_size=2, page_number=1)).body
    p3 = alice.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, vpc_id=vpc, page_size=2, page_number=3)).body
    assert (p1.total_count, p1.page_size, p1.page_number, len(p1.vpn_gateways.vpn_gateway)) == (5, 2, 1, 2)
    assert len(p3.vpn_gateways.vpn_gateway) == 1
    assert p1.vpn_gateways.vpn_gateway[0].vpn_gateway_id == ids[-1], "newest first"
    one = alice.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, vpn_gateway_id=ids[2])).body
    assert [g.vpn_gateway_id for g in one.vpn_gateways.vpn_gateway] == [ids[2]]
    for g in ids:
        wait_status(alice, g, "active")
    act = alice.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, vpc_id=vpc, status="active")).body
    assert act.total_count == 5
    none = alice.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, vpc_id=vpc, status="init")).body
    assert none.total_count == 0 and none.vpn_gateways.vpn_gateway == []
    assert error(alice.describe_vpn_gateways, m.DescribeVpnGatewaysRequest(region_id=REGION, page_size=51)) == ("InvalidParameter", 400)
    assert error(alice.describe_vpn_gateways, m.DescribeVpnGatewaysRequest(region_id=REGION, status="sleeping")) == ("InvalidParameter", 400)


def test_financial_lock(server, alice):
    gw, _, _ = make_gateway(alice)
    server.cli("admin", "lock", gw)
    assert describe(alice, gw).business_status == "FinancialLocked"
    locked = alice.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, business_status="FinancialLocked")).body
    assert gw in [g.vpn_gateway_id for g in locked.vpn_gateways.vpn_gateway]
    assert error(alice.modify_vpn_gateway_attribute, m.ModifyVpnGatewayAttributeRequest(region_id=REGION, vpn_gateway_id=gw, name="abc")) == ("VpnGateway.FinancialLocked", 400)
    assert error(alice.delete_vpn_gateway, m.DeleteVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)) == ("VpnGateway.FinancialLocked", 400)
    server.cli("admin", "unlock", gw)
    alice.modify_vpn_gateway_attribute(m.ModifyVpnGatewayAttributeRequest(region_id=REGION, vpn_gateway_id=gw, name="abc"))
    assert describe(alice, gw).name == "abc"


def test_move_vpn_resource_group_takes_what_is_under_the_gateway(tea, bob):
    gw, _, _ = make_gateway(tea, enable_ssl=True)
    cgw = make_cgw(tea).customer_gateway_id
    vco = tea.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/16", remote_subnet="10.9.0.0/24")).body.vpn_connection_id
    wait_status(tea, gw, "active")
    vss = tea.create_ssl_vpn_server(m.CreateSslVpnServerRequest(region_id=REGION, vpn_gateway_id=gw, client_ip_pool="192.168.0.0/24", local_subnet="10.1.0.0/16")).body.ssl_vpn_server_id
    wait_status(tea, gw, "active")
    vsc = tea.create_ssl_vpn_client_cert(m.CreateSslVpnClientCertRequest(region_id=REGION, ssl_vpn_server_id=vss)).body.ssl_vpn_client_cert_id
    # An IPsec server cannot share a gateway with connections: a second gateway holds one.
    gw2, _, _ = make_gateway(tea, enable_ssl=True)
    iss = tea.create_ipsec_server(m.CreateIpsecServerRequest(region_id=REGION, vpn_gateway_id=gw2, local_subnet="10.1.0.0/16", client_ip_pool="172.31.99.0/24")).body.ipsec_server_id
    wait_status(tea, gw2, "active")
    before = describe(tea, gw).resource_group_id
    rg = f"rg-{uuid.uuid4().hex[:12]}"
    move = lambda c, **kw: c.move_vpn_resource_group(m.MoveVpnResourceGroupRequest(region_id=REGION, **kw))
    # Terraform's alicloud provider spells the type VpnGateWay.
    move(tea, instance_id=gw, resource_type="VpnGateWay", new_resource_group_id=rg)
    move(tea, instance_id=gw2, resource_type="vpngateway", new_resource_group_id=rg)
    groups = {
        "gateway": describe(tea, gw).resource_group_id,
        "connection": tea.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)).body.resource_group_id,
        "ssl server": tea.describe_ssl_vpn_servers(m.DescribeSslVpnServersRequest(region_id=REGION, ssl_vpn_server_id=vss)).body.ssl_vpn_servers.ssl_vpn_server[0].resource_group_id,
        "client cert": tea.describe_ssl_vpn_client_cert(m.DescribeSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=vsc)).body.resource_group_id,
        "ipsec server": tea.list_ipsec_servers(m.ListIpsecServersRequest(region_id=REGION, ipsec_server_id=[iss])).body.ipsec_servers[0].resource_group_id,
    }
    assert set(groups.values()) == {rg} and before != rg, groups
    found = tea.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, resource_group_id=rg)).body.vpn_gateways.vpn_gateway
    assert sorted(g.vpn_gateway_id for g in found) == sorted([gw, gw2])
    assert describe(tea, gw).status == "active", "metadata only: no lifecycle step"
    assert tea.describe_customer_gateway(m.DescribeCustomerGatewayRequest(region_id=REGION, customer_gateway_id=cgw)).body.resource_group_id == before, "the customer gateway is its own resource"
    move(tea, instance_id=cgw, resource_type="CustomerGateway", new_resource_group_id="rg-cgw")
    assert tea.describe_customer_gateway(m.DescribeCustomerGatewayRequest(region_id=REGION, customer_gateway_id=cgw)).body.resource_group_id == "rg-cgw"
    cases = [
        (tea, dict(instance_id=gw, resource_type="Vpc", new_resource_group_id="rg-x"), ("InvalidResourceType.NotFound", 400)),
        (tea, dict(instance_id=vco, resource_type="VpnAttachment", new_resource_group_id="rg-x"), ("OperationUnsupported.VpnGatewayConnection", 400)),
        (tea, dict(instance_id="vco-nope", resource_type="VpnAttachment", new_resource_group_id="rg-x"), ("InvalidVpnConnectionInstanceId.NotFound", 404)),
        (tea, dict(instance_id="vpn-nope", resource_type="VpnGateway", new_resource_group_id="rg-x"), ("InvalidVpnGatewayInstanceId.NotFound", 404)),
        (tea, dict(instance_id=gw, resource_type="VpnGateway"), ("MissingParameter", 400)),
        (bob, dict(instance_id=gw, resource_type="VpnGateway", new_resource_group_id="rg-bob"), ("InvalidVpnGatewayInstanceId.NotFound", 404)),
    ]
    for c, kw, expected in cases:
        assert error(move, c, **kw) == expected, kw
    assert describe(tea, gw).resource_group_id == rg, "nothing changed"


def test_diagnose_vpn_gateway_records_a_diagnosis_and_its_items(tea, bob):
    """DiagnoseVpnGateway without a data plane: the configuration items are decided, the probes
    finish as warnings that say nothing was sent (the lab test runs real ones)."""
    gw, _, _ = make_gateway(tea)
    other, _, _ = make_gateway(tea)
    cgw = make_cgw(tea).customer_gateway_id
    vco = tea.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/16", remote_subnet="10.9.0.0/24")).body.vpn_connection_id
    wait_status(tea, gw, "active")
    ask = lambda c=tea, **kw: c.diagnose_vpn_gateway(m.DiagnoseVpnGatewayRequest(region_id=REGION, **kw)).body
    did = ask(vpn_gateway_id=gw, resource_type="IPsec", resource_id=vco, ipsec_extend_info=json.dumps({"PrivateSourceIp": "10.1.0.1", "PrivateDestinationIp": "10.9.0.1"})).diagnose_id
    assert did.startswith("vpndgn-")
    r = tea.get_vpn_gateway_diagnose_result(m.GetVpnGatewayDiagnoseResultRequest(region_id=REGION, diagnose_id=did, vpn_gateway_id=gw)).body
    assert (r.diagnose_id, r.vpn_gateway_id, r.resource_type, r.resource_instance_id) == (did, gw, "IPsec", vco)
    assert (r.total_count, r.finished_count) == (7, 7) and r.begin_time.endswith("Z") and r.finish_time.endswith("Z")
    items = {i.diagnose_name: (i.diagnose_result_level, json.loads(i.diagnose_result_description)) for i in r.diagnose_result}
    assert set(items) == {"RouteEntryConflict", "VpnIPsecQuota", "VpnRouteQuota", "VpnPbrRouteQuota", "VcoConfigConsistency", "VcoUserInternetIpConnectivity", "VcoPrivateConnectivity"}
    assert items["VpnIPsecQuota"] == ("normal", {"quotaName": "VpnIPsecQuota", "quantity": 10, "used": 1})
    assert items["RouteEntryConflict"][0] == "normal"
    level, consistency = items["VcoConfigConsistency"]
    assert level == "warning" and consistency["vcoLackConf"] is True and consistency["vcoConf"]["LocalSubnet"] == "10.1.0.0/16"
    assert items["VcoUserInternetIpConnectivity"][0] == "warning" and "data plane" in items["VcoUserInternetIpConnectivity"][1]["reason"]
    # Without IPsecExtendInfo there is no private probe.
    plain = ask(vpn_gateway_id=gw, resource_type="IPsec", resource_id=vco).diagnose_id
    assert tea.get_vpn_gateway_diagnose_result(m.GetVpnGatewayDiagnoseResultRequest(region_id=REGION, diagnose_id=plain)).body.total_count == 6
    bad = [
        (tea, dict(vpn_gateway_id=gw, resource_type="SSL", resource_id=vco), ("InvalidParameter", 400)),
        (tea, dict(vpn_gateway_id=gw, resource_type="IPsec", resource_id=vco, ipsec_extend_info='{"PrivateSourceIp": "10.1.0.1"}'), ("InvalidParameter", 400)),
        (tea, dict(vpn_gateway_id=gw, resource_type="IPsec", resource_id="vco-nope"), ("InvalidVpnConnectionInstanceId.NotFound", 404)),
        (tea, dict(vpn_gateway_id=other, resource_type="IPsec", resource_id=vco), ("InvalidVpnConnectionInstanceId.NotFound", 404)),
        (tea, dict(vpn_gateway_id="vpn-nope", resource_type="IPsec", resource_id=vco), ("InvalidVpnGatewayInstanceId.NotFound", 404)),
        (bob, dict(vpn_gateway_id=gw, resource_type="IPsec", resource_id=vco), ("InvalidVpnGatewayInstanceId.NotFound", 404)),
    ]
    for c, kw, expected in bad:
        assert error(ask, c, **kw) == expected, kw
    get = lambda c, **kw: c.get_vpn_gateway_diagnose_result(m.GetVpnGatewayDiagnoseResultRequest(region_id=REGION, **kw))
    assert error(get, tea, diagnose_id="vpndgn-nope") == ("InvalidDiagnoseId.NotFound", 404)
    assert error(get, tea, diagnose_id=did, vpn_gateway_id=other) == ("InvalidDiagnoseId.NotFound", 404)
    assert error(get, bob, diagnose_id=did) == ("InvalidDiagnoseId.NotFound", 404)
