"""VPN routes through the official SDKs: destination and policy routes, weights, priorities,
publishing, AutoConfigRoute's system routes, paging, and every code the rules produce."""
import json

import pytest
from alibabacloud_vpc20160428 import models as m
from aliyunsdkvpc.request.v20160428.DescribeVpnRouteEntriesRequest import DescribeVpnRouteEntriesRequest as LegacyDescribeRoutes

from conftest import Server
from helpers import REGION, error, make_cgw, make_gateway, make_vsw, wait_status


def conn(c, gw, local="10.0.0.0/24", remote="192.168.0.0/24", auto=False, **kw):
    cgw = make_cgw(c).customer_gateway_id
    vco = c.create_vpn_connection(m.CreateVpnConnectionRequest(
        region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet=local, remote_subnet=remote,
        auto_config_route=auto, **kw)).body.vpn_connection_id
    wait_status(c, gw, "active")
    return vco


def dbr(c, gw, dest, hop, weight=100, publish=False, wait=True, **kw):
    r = c.create_vpn_route_entry(m.CreateVpnRouteEntryRequest(
        region_id=REGION, vpn_gateway_id=gw, route_dest=dest, next_hop=hop, weight=weight, publish_vpc=publish, **kw)).body
    if wait:
        wait_status(c, gw, "active")
    return r


def pbr(c, gw, src, dest, hop, weight=100, publish=False, wait=True, **kw):
    r = c.create_vpn_pbr_route_entry(m.CreateVpnPbrRouteEntryRequest(
        region_id=REGION, vpn_gateway_id=gw, route_source=src, route_dest=dest, next_hop=hop, weight=weight, publish_vpc=publish, **kw)).body
    if wait:
        wait_status(c, gw, "active")
    return r


def dbrs(c, gw, **kw):
    return c.describe_vpn_route_entries(m.DescribeVpnRouteEntriesRequest(region_id=REGION, vpn_gateway_id=gw, **kw)).body


def pbrs(c, gw, **kw):
    return c.describe_vpn_pbr_route_entries(m.DescribeVpnPbrRouteEntriesRequest(region_id=REGION, vpn_gateway_id=gw, **kw)).body


def test_destination_routes_lifecycle_and_fields(alice):
    gw, _, _ = make_gateway(alice)
    a = conn(alice, gw, "0.0.0.0/0", "0.0.0.0/0")
    b = conn(alice, gw, "0.0.0.0/0", "0.0.0.0/0")
    r = dbr(alice, gw, "172.16.0.0/16", a, 100, publish=True, description="to-site-a", overlay_mode="Ipsec")
    assert (r.route_dest, r.next_hop, r.weight, r.state, r.vpn_instance_id, r.overlay_mode, r.description) == ("172.16.0.0/16", a, 100, "published", gw, "Ipsec", "to-site-a")
    assert isinstance(r.create_time, int) and r.create_time > 1_600_000_000_000
    dbr(alice, gw, "172.16.0.0/16", b, 0)  # the standby on another connection
    d = dbrs(alice, gw)
    assert d.total_count == 2 and d.page_number == 1 and d.page_size == 10
    by_hop = {e.next_hop: e for e in d.vpn_route_entries.vpn_route_entry}
    assert (by_hop[a].weight, by_hop[a].state, by_hop[b].weight, by_hop[b].state) == (100, "published", 0, "normal")
    assert by_hop[a].route_entry_type == "Custom"
    counts = {x.route_entry_type: x.route_count for x in d.vpn_route_counts.vpn_route_count}
    assert counts == {"Custom": 2, "System": 0, "bgp": 0}
    assert dbrs(alice, gw, route_entry_type="system").total_count == 0
    # BGP routes are what the gateway's BGP sessions learned: none without a data plane.
    assert dbrs(alice, gw, route_entry_type="bgp").total_count == 0
    assert dbrs(alice, gw, route_entry_type="Custom").total_count == 2
    # Weights swap: the active becomes standby only once the standby has moved away.
    assert error(alice.modify_vpn_route_entry_weight, m.ModifyVpnRouteEntryWeightRequest(
        region_id=REGION, vpn_gateway_id=gw, route_dest="172.16.0.0/16", next_hop=a, weight=100, new_weight=0)) == ("VpnRouteEntry.BackupRoute", 400)
    alice.delete_vpn_route_entry(m.DeleteVpnRouteEntryRequest(region_id=REGION, vpn_gateway_id=gw, route_dest="172.16.0.0/16", next_hop=b, weight=0))
    wait_status(alice, gw, "active")
    alice.modify_vpn_route_entry_weight(m.ModifyVpnRouteEntryWeightRequest(
        region_id=REGION, vpn_gateway_id=gw, route_dest="172.16.0.0/16", next_hop=a, weight=100, new_weight=0))
    wait_status(alice, gw, "active")
    assert [e.weight for e in dbrs(alice, gw).vpn_route_entries.vpn_route_entry] == [0]
    # A route is named by its tuple and its current weight.
    assert error(alice.delete_vpn_route_entry, m.DeleteVpnRouteEntryRequest(
        region_id=REGION, vpn_gateway_id=gw, route_dest="172.16.0.0/16", next_hop=a, weight=100)) == ("InvalidRouteEntry.NotFound", 404)
    alice.delete_vpn_route_entry(m.DeleteVpnRouteEntryRequest(region_id=REGION, vpn_gateway_id=gw, route_dest="172.16.0.0/16", next_hop=a, weight=0))
    wait_status(alice, gw, "active")
    assert dbrs(alice, gw).total_count == 0


def test_route_rules_and_codes(alice, bob):
    gw, vpc, _ = make_gateway(alice)
    a = conn(alice, gw, "0.0.0.0/0", "0.0.0.0/0")
    b = conn(alice, gw, "0.0.0.0/0", "0.0.0.0/0")
    args = dict(region_id=REGION, vpn_gateway_id=gw, route_dest="10.9.0.0/16", next_hop=a, weight=100, publish_vpc=False)
    create = alice.create_vpn_route_entry
    assert error(create, m.CreateVpnRouteEntryRequest(**{**args, "weight": 50})) == ("VpnRouteEntry.InvalidWeight", 400)
    assert error(create, m.CreateVpnRouteEntryRequest(**{**args, "next_hop": "vco-nope"})) == ("InvalidVpnConnectionInstanceId.NotFound", 404)
    assert error(create, m.CreateVpnRouteEntryRequest(**{**args, "vpn_gateway_id": "vpn-nope"})) == ("InvalidVpnGatewayInstanceId.NotFound", 404)
    assert error(create, m.CreateVpnRouteEntryRequest(**{**args, "route_dest": "10.9.0.1/16"})) == ("InvalidParameter", 400)
    assert error(create, m.CreateVpnRouteEntryRequest(**{**args, "overlay_mode": "Gre"})) == ("InvalidParameter", 400)
    assert error(create, m.CreateVpnRouteEntryRequest(**{**args, "dry_run": True})) == ("DryRunOperation", 400)
    assert dbrs(alice, gw).total_count == 0, "DryRun and bad input change nothing"
    # Another account's gateway does not exist for bob.
    assert error(bob.create_vpn_route_entry, m.CreateVpnRouteEntryRequest(**args)) == ("InvalidVpnGatewayInstanceId.NotFound", 404)
    dbr(alice, gw, "10.9.0.0/16", a, 100, wait=False)
    assert error(create, m.CreateVpnRouteEntryRequest(**{**args, "route_dest": "10.8.0.0/16"})) == ("VpnGateway.Configuring", 400)
    wait_status(alice, gw, "active")
    assert error(create, m.CreateVpnRouteEntryRequest(**args)) == ("VpnRouteEntry.AlreadyExists", 400)
    assert error(create, m.CreateVpnRouteEntryRequest(**{**args, "next_hop": b})) == ("VpnRouteEntry.Conflict", 400)
    # A connection of another gateway is not a next hop here.
    other, _, _ = make_gateway(alice)
    c_other = conn(alice, other, "0.0.0.0/0", "0.0.0.0/0")
    assert error(create, m.CreateVpnRouteEntryRequest(**{**args, "next_hop": c_other, "route_dest": "10.7.0.0/16"})) == ("InvalidVpnConnectionInstanceId.NotFound", 404)
    # Deleting a connection takes its routes along.
    alice.delete_vpn_connection(m.DeleteVpnConnectionRequest(region_id=REGION, vpn_connection_id=a))
    wait_status(alice, gw, "active")
    assert dbrs(alice, gw).total_count == 0


def test_policy_routes_priorities_and_attributes(alice):
    gw, _, _ = make_gateway(alice)
    a = conn(alice, gw, "0.0.0.0/0", "0.0.0.0/0")
    b = conn(alice, gw, "0.0.0.0/0", "0.0.0.0/0")
    r = pbr(alice, gw, "10.0.0.0/24", "172.20.0.0/24", a, 100, publish=True)
    assert (r.route_source, r.route_dest, r.priority, r.state, r.weight) == ("10.0.0.0/24", "172.20.0.0/24", 10, "published", 100)
    pbr(alice, gw, "10.0.0.0/24", "172.20.0.0/24", b, 0, priority=10)
    pbr(alice, gw, "10.0.1.0/24", "172.20.0.0/24", b, 100, priority=5)
    d = pbrs(alice, gw)
    assert d.total_count == 3
    assert all(isinstance(e.priority, int) and isinstance(e.weight, int) for e in d.vpn_pbr_route_entries.vpn_pbr_route_entry)
    assert pbrs(alice, gw, page_size=2, page_number=2).vpn_pbr_route_entries.vpn_pbr_route_entry[0].route_source == "10.0.0.0/24"
    key = dict(region_id=REGION, vpn_gateway_id=gw, route_source="10.0.1.0/24", route_dest="172.20.0.0/24", next_hop=b, weight=100)
    alice.modify_vpn_pbr_route_entry_priority(m.ModifyVpnPbrRouteEntryPriorityRequest(priority=5, new_priority=20, **key))
    wait_status(alice, gw, "active")
    alice.modify_vpn_pbr_route_entry_attribute(m.ModifyVpnPbrRouteEntryAttributeRequest(priority=20, new_priority=30, new_weight=0, **key))
    wait_status(alice, gw, "active")
    e = [e for e in pbrs(alice, gw).vpn_pbr_route_entries.vpn_pbr_route_entry if e.route_source == "10.0.1.0/24"][0]
    assert (e.priority, e.weight) == (30, 0)
    alice.modify_vpn_pbr_route_entry_weight(m.ModifyVpnPbrRouteEntryWeightRequest(**{**key, "weight": 0, "new_weight": 100}, priority=30))
    wait_status(alice, gw, "active")
    assert error(alice.modify_vpn_pbr_route_entry_priority, m.ModifyVpnPbrRouteEntryPriorityRequest(priority=30, new_priority=101, **key)) == ("InvalidParameter", 400)
    assert error(alice.modify_vpn_pbr_route_entry_attribute, m.ModifyVpnPbrRouteEntryAttributeRequest(priority=30, **key)) == ("MissingParameter", 400)
    assert error(alice.delete_vpn_pbr_route_entry, m.DeleteVpnPbrRouteEntryRequest(**{**key, "next_hop": a})) == ("InvalidRouteEntry.NotFound", 404)
    alice.delete_vpn_pbr_route_entry(m.DeleteVpnPbrRouteEntryRequest(priority=30, **key))
    wait_status(alice, gw, "active")
    assert pbrs(alice, gw).total_count == 2


def test_publishing_and_the_vpc_route_table(alice):
    gw, vpc, vsw = make_gateway(alice)
    a = conn(alice, gw, "0.0.0.0/0", "0.0.0.0/0")
    dbr(alice, gw, "172.30.0.0/16", a, 100)
    pub = dict(region_id=REGION, vpn_gateway_id=gw, route_dest="172.30.0.0/16", next_hop=a, publish_vpc=True)
    alice.publish_vpn_route_entry(m.PublishVpnRouteEntryRequest(route_type="DBR", **pub))
    wait_status(alice, gw, "active")
    assert dbrs(alice, gw).vpn_route_entries.vpn_route_entry[0].state == "published"
    assert error(alice.publish_vpn_route_entry, m.PublishVpnRouteEntryRequest(route_type="pbr", **pub)) == ("InvalidRouteEntry.NotFound", 404)
    assert error(alice.publish_vpn_route_entry, m.PublishVpnRouteEntryRequest(route_type="bgp", **pub)) == ("InvalidParameter", 400)
    # A second gateway of the same VPC cannot publish the same CIDR.
    gw2 = alice.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY")).body.vpn_gateway_id
    wait_status(alice, gw2, "active")
    b = conn(alice, gw2, "0.0.0.0/0", "0.0.0.0/0")
    assert error(alice.create_vpn_route_entry, m.CreateVpnRouteEntryRequest(
        region_id=REGION, vpn_gateway_id=gw2, route_dest="172.30.0.0/16", next_hop=b, weight=100, publish_vpc=True)) == ("OperationFailed.RouteConflict", 400)
    dbr(alice, gw2, "172.30.0.0/16", b, 100, publish=False)
    alice.publish_vpn_route_entry(m.PublishVpnRouteEntryRequest(route_type="dbr", **{**pub, "publish_vpc": False}))
    wait_status(alice, gw, "active")
    assert dbrs(alice, gw).vpn_route_entries.vpn_route_entry[0].state == "normal"
    alice.publish_vpn_route_entry(m.PublishVpnRouteEntryRequest(route_type="dbr", region_id=REGION, vpn_gateway_id=gw2, route_dest="172.30.0.0/16", next_hop=b, publish_vpc=True))
    wait_status(alice, gw2, "active")


def test_auto_config_route_makes_system_policy_routes(alice):
    gw, _, _ = make_gateway(alice)
    vco = conn(alice, gw, "10.0.0.0/24,10.0.1.0/24", "192.168.7.0/24", auto=True, ike_config=json.dumps({"IkeVersion": "ikev2"}))
    entries = pbrs(alice, gw).vpn_pbr_route_entries.vpn_pbr_route_entry
    assert sorted((e.route_source, e.route_dest, e.next_hop, e.weight, e.state) for e in entries) == [
        ("10.0.0.0/24", "192.168.7.0/24", vco, 100, "published"), ("10.0.1.0/24", "192.168.7.0/24", vco, 100, "published")]
    # System routes change only with their connection.
    assert error(alice.delete_vpn_pbr_route_entry, m.DeleteVpnPbrRouteEntryRequest(
        region_id=REGION, vpn_gateway_id=gw, route_source="10.0.0.0/24", route_dest="192.168.7.0/24", next_hop=vco, weight=100)) == ("OperationDenied.SystemRouteEntry", 400)
    alice.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(region_id=REGION, vpn_connection_id=vco, local_subnet="10.0.2.0/24"))
    wait_status(alice, gw, "active")
    assert [(e.route_source, e.route_dest) for e in pbrs(alice, gw).vpn_pbr_route_entries.vpn_pbr_route_entry] == [("10.0.2.0/24", "192.168.7.0/24")]
    alice.modify_vpn_connection_attribute(m.ModifyVpnConnectionAttributeRequest(region_id=REGION, vpn_connection_id=vco, auto_config_route=False))
    wait_status(alice, gw, "active")
    assert pbrs(alice, gw).total_count == 0
    # Destination-routing mode (0.0.0.0/0 both sides) makes none; a 0.0.0.0/0 local side makes
    # destination routes to the remote subnets.
    conn(alice, gw, "0.0.0.0/0", "0.0.0.0/0", auto=True)
    assert pbrs(alice, gw).total_count == 0 and dbrs(alice, gw).total_count == 0
    by_dest = conn(alice, gw, "0.0.0.0/0", "192.168.40.0/24,192.168.41.0/24", auto=True, ike_config=json.dumps({"IkeVersion": "ikev2"}))
    d = dbrs(alice, gw)
    assert sorted((e.route_dest, e.next_hop, e.route_entry_type) for e in d.vpn_route_entries.vpn_route_entry) == [
        ("192.168.40.0/24", by_dest, "System"), ("192.168.41.0/24", by_dest, "System")]
    assert {x.route_entry_type: x.route_count for x in d.vpn_route_counts.vpn_route_count} == {"Custom": 0, "System": 2, "bgp": 0}
    alice.delete_vpn_connection(m.DeleteVpnConnectionRequest(region_id=REGION, vpn_connection_id=by_dest))
    wait_status(alice, gw, "active")
    assert dbrs(alice, gw).total_count == 0
    # Two connections whose selectors make the same policy route conflict.
    conn(alice, gw, "10.0.3.0/24", "192.168.8.0/24", auto=True)
    cgw = make_cgw(alice).customer_gateway_id
    assert error(alice.create_vpn_connection, m.CreateVpnConnectionRequest(
        region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.0.3.0/24", remote_subnet="192.168.8.0/24", auto_config_route=True)) == ("VpnRouteEntry.Conflict", 400)


def test_route_quotas():
    s = Server(extra="dbr_routes_per_gateway = 1\npbr_routes_per_gateway = 2\nvpc_vpn_route_entries = 1\n")
    s.start()
    try:
        c = s.tea()
        gw, _, _ = make_gateway(c)
        a = conn(c, gw, "0.0.0.0/0", "0.0.0.0/0")
        dbr(c, gw, "10.50.0.0/16", a, publish=True)
        assert error(c.create_vpn_route_entry, m.CreateVpnRouteEntryRequest(
            region_id=REGION, vpn_gateway_id=gw, route_dest="10.51.0.0/16", next_hop=a, weight=100, publish_vpc=False)) == ("CreateDbrRoutesQuotaFull.QuotaFull", 400)
        assert error(c.create_vpn_pbr_route_entry, m.CreateVpnPbrRouteEntryRequest(
            region_id=REGION, vpn_gateway_id=gw, route_source="10.0.0.0/24", route_dest="10.52.0.0/16", next_hop=a, weight=100, publish_vpc=True)) == ("QuotaExceeded.VpnRouteEntry", 400)
        pbr(c, gw, "10.0.0.0/24", "10.52.0.0/16", a)
        pbr(c, gw, "10.0.0.0/24", "10.53.0.0/16", a)
        assert error(c.create_vpn_pbr_route_entry, m.CreateVpnPbrRouteEntryRequest(
            region_id=REGION, vpn_gateway_id=gw, route_source="10.0.0.0/24", route_dest="10.54.0.0/16", next_hop=a, weight=100, publish_vpc=False)) == ("CreatePbrRoutesQuotaFull.QuotaFull", 400)
        cgw = make_cgw(c).customer_gateway_id
        code, status = error(c.create_vpn_connection, m.CreateVpnConnectionRequest(
            region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.0.9.0/24", remote_subnet="192.168.9.0/24", auto_config_route=True))
        assert (code, status) == ("QuotaExceeded.PolicyBasedRoute", 400)
    finally:
        s.stop()


def test_routes_through_the_legacy_sdk(server, alice):
    gw, _, _ = make_gateway(alice)
    a = conn(alice, gw, "0.0.0.0/0", "0.0.0.0/0")
    dbr(alice, gw, "10.60.0.0/16", a)
    req = LegacyDescribeRoutes()
    req.set_VpnGatewayId(gw)
    req.set_endpoint(server.endpoint)
    req.set_protocol_type("http")
    body = json.loads(server.legacy().do_action_with_exception(req))
    entry = body["VpnRouteEntries"]["VpnRouteEntry"][0]
    assert (entry["RouteDest"], entry["Weight"], entry["NextHop"], body["TotalCount"]) == ("10.60.0.0/16", 100, a, 1)
