"""VPN attachments and their connection-level (VCO) routes: the control plane through the typed
Tea SDK (both signatures) and the Terraform provider's requests. The data plane's side (the
tunnel negotiates, a VCO route steers traffic) is in test_dataplane_attachments.py."""
import json

from alibabacloud_vpc20160428 import models as m

from helpers import REGION, legacy_call, error, make_cgw, make_gateway, wait_status
from terraform import Provider, tags_of, wait_for


def attachment(c, **kw):
    args = dict(region_id=REGION, customer_gateway_id=make_cgw(c).customer_gateway_id, local_subnet="10.50.0.0/24", remote_subnet="0.0.0.0/0",
                auto_config_route=False, name="att-1")
    args.update(kw)
    return c.create_vpn_attachment(m.CreateVpnAttachmentRequest(**args)).body


def conn(c, vco):
    return c.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)).body


def wait_state(c, vco, state, timeout=10):
    wait_for(lambda: conn(c, vco).state, state, timeout)


def test_an_attachment_is_a_connection_of_no_gateway_with_its_own_address(tea):
    body = attachment(tea, tags=[m.CreateVpnAttachmentRequestTags(key="team", value="net")], tunnel_bandwidth="Standard")
    assert body.success is True and body.vpn_connection_id.startswith("vco-") and body.name == "att-1" and isinstance(body.create_time, int)
    vco = body.vpn_connection_id
    wait_state(tea, vco, "init")
    d = conn(tea, vco)
    assert (d.attach_type, d.attach_instance_id, d.vpn_gateway_id, d.network_type, d.tunnel_bandwidth) == ("NO_ASSOCIATED", "", "", "public", "Standard")
    assert d.internet_ip and d.status == "ike_sa_not_established" and d.local_subnet == "10.50.0.0/24"
    assert d.ike_config.local_id == d.internet_ip, "its own public address is its default IKE identity"
    # Listed as an attachment, and as a connection.
    listed = tea.describe_vpn_attachments(m.DescribeVpnAttachmentsRequest(region_id=REGION, vpn_connection_id=vco)).body
    assert listed.total_count == 1
    a = listed.vpn_attachments[0]
    assert (a.instance_id, a.attach_type, a.name, a.cross_account_authorized, a.tunnel_bandwidth) == (vco, "NO_ASSOCIATED", "att-1", False, "Standard")
    assert [(t.key, t.value) for t in a.tags] == [("team", "net")]
    assert tea.describe_vpn_attachments(m.DescribeVpnAttachmentsRequest(region_id=REGION, vpn_connection_id=vco, attach_type="CEN")).body.total_count == 0
    conns = tea.describe_vpn_connections(m.DescribeVpnConnectionsRequest(region_id=REGION, vpn_connection_id=vco)).body.vpn_connections.vpn_connection
    assert [x.vpn_connection_id for x in conns] == [vco]
    # Two attachments never share an address; a gateway never takes one of theirs.
    other = attachment(tea).vpn_connection_id
    wait_state(tea, other, "init")
    gw, _, _ = make_gateway(tea)
    addresses = [conn(tea, vco).internet_ip, conn(tea, other).internet_ip, tea.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body.internet_ip]
    assert len(set(addresses)) == 3, addresses
    # Its configuration downloads like any connection's.
    cfg = tea.download_vpn_connection_config(m.DownloadVpnConnectionConfigRequest(region_id=REGION, vpn_connection_id=vco)).body.vpn_connection_config
    assert cfg.remote == d.internet_ip and cfg.remote_subnet == "10.50.0.0/24"
    # Modify; then delete frees the address.
    mod = tea.modify_vpn_attachment_attribute(m.ModifyVpnAttachmentAttributeRequest(region_id=REGION, vpn_connection_id=vco, name="att-2", network_type="private")).body
    assert (mod.name, mod.attach_type, mod.network_type, mod.vpn_connection_id) == ("att-2", "NO_ASSOCIATED", "private", vco)
    gone = tea.delete_vpn_attachment(m.DeleteVpnAttachmentRequest(region_id=REGION, vpn_connection_id=vco)).body
    assert gone.success is True
    assert error(tea.describe_vpn_connection, m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)) == ("InvalidVpnConnectionInstanceId.NotFound", 404)


def test_dual_tunnel_attachment_takes_an_address_per_tunnel(tea):
    cgws = [make_cgw(tea).customer_gateway_id for _ in range(2)]
    specs = [m.CreateVpnAttachmentRequestTunnelOptionsSpecification(customer_gateway_id=cgws[0], tunnel_index=1),
             m.CreateVpnAttachmentRequestTunnelOptionsSpecification(customer_gateway_id=cgws[1], tunnel_index=2)]
    vco = tea.create_vpn_attachment(m.CreateVpnAttachmentRequest(region_id=REGION, local_subnet="10.60.0.0/24", remote_subnet="0.0.0.0/0",
                                                                 tunnel_options_specification=specs)).body.vpn_connection_id
    wait_state(tea, vco, "init")
    tunnels = conn(tea, vco).tunnel_options_specification.tunnel_options
    assert [t.role for t in tunnels] == ["master", "slave"]
    assert tunnels[0].internet_ip != tunnels[1].internet_ip and tunnels[0].zone_no != tunnels[1].zone_no


def test_attachment_errors_and_isolation(server):
    alice, bob = server.tea(), server.tea("bob")
    vco = attachment(alice).vpn_connection_id
    gw, _, _ = make_gateway(alice)
    cgw = make_cgw(alice).customer_gateway_id
    gw_vco = alice.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw, customer_gateway_id=cgw, local_subnet="10.1.0.0/16",
                                                                      remote_subnet="192.168.0.0/16")).body.vpn_connection_id
    assert error(alice.delete_vpn_attachment, m.DeleteVpnAttachmentRequest(region_id=REGION, vpn_connection_id=gw_vco)) == ("OperationUnsupported.VpnGatewayConnection", 400)
    assert error(bob.describe_vpn_connection, m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)) == ("InvalidVpnConnectionInstanceId.NotFound", 404)
    assert error(bob.delete_vpn_attachment, m.DeleteVpnAttachmentRequest(region_id=REGION, vpn_connection_id=vco)) == ("InvalidVpnConnectionInstanceId.NotFound", 404)
    assert bob.describe_vpn_attachments(m.DescribeVpnAttachmentsRequest(region_id=REGION)).body.total_count == 0
    assert error(alice.create_vpn_attachment, m.CreateVpnAttachmentRequest(region_id=REGION, customer_gateway_id=cgw, local_subnet="10.0.0.0/8", remote_subnet="0.0.0.0/0",
                                                                          network_type="lan")) == ("InvalidParameter", 400)
    assert error(alice.create_vpn_attachment, m.CreateVpnAttachmentRequest(region_id=REGION, customer_gateway_id="cgw-none", local_subnet="10.0.0.0/8",
                                                                          remote_subnet="0.0.0.0/0"))[0] == "InvalidCustomerGatewayInstanceId.NotFound"
    # DryRun checks and creates nothing.
    before = alice.describe_vpn_attachments(m.DescribeVpnAttachmentsRequest(region_id=REGION, page_size=50)).body.total_count
    assert error(alice.create_vpn_attachment, m.CreateVpnAttachmentRequest(region_id=REGION, customer_gateway_id=cgw, local_subnet="10.0.0.0/8", remote_subnet="0.0.0.0/0",
                                                                          dry_run=True)) == ("DryRunOperation", 400)
    assert alice.describe_vpn_attachments(m.DescribeVpnAttachmentsRequest(region_id=REGION, page_size=50)).body.total_count == before
    # Tags by ResourceType VpnAttachment, and MoveVpnResourceGroup.
    alice.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="VPNATTACHMENT", resource_id=[vco], tag=[m.TagResourcesRequestTag(key="k", value="v")]))
    assert [(t.key, t.value) for t in conn(alice, vco).tags.tag] == [("k", "v")]
    alice.move_vpn_resource_group(m.MoveVpnResourceGroupRequest(region_id=REGION, instance_id=vco, resource_type="VpnAttachment", new_resource_group_id="rg-att"))
    assert conn(alice, vco).resource_group_id == "rg-att"


def test_vco_routes(tea):
    vco = attachment(tea, local_subnet="0.0.0.0/0").vpn_connection_id
    wait_state(tea, vco, "init")

    def create(dest, weight=100):
        body = tea.create_vco_route_entry(m.CreateVcoRouteEntryRequest(region_id=REGION, vpn_connection_id=vco, route_dest=dest, next_hop=vco, weight=weight,
                                                                       description="to site")).body
        wait_state(tea, vco, "init")
        return body

    def entries(kind=None):
        return tea.describe_vco_route_entries(m.DescribeVcoRouteEntriesRequest(region_id=REGION, vpn_connection_id=vco, route_entry_type=kind, page_size=50)).body

    made = create("192.168.77.0/24")
    assert (made.route_dest, made.next_hop, made.weight, made.state, made.vpn_connection_id, made.overlay_mode) == ("192.168.77.0/24", vco, 100, "normal", vco, "Ipsec")
    listed = entries("custom")
    assert listed.total_count == 1 and listed.vco_route_entries[0].route_entry_type == "custom"
    assert {c.route_entry_type: c.route_count for c in listed.vpn_route_counts}["custom"] == 1
    # One route per destination and weight.
    assert error(tea.create_vco_route_entry, m.CreateVcoRouteEntryRequest(region_id=REGION, vpn_connection_id=vco, route_dest="192.168.77.0/24", next_hop=vco,
                                                                          weight=100)) == ("VpnRouteEntry.AlreadyExists", 400)
    assert error(tea.create_vco_route_entry, m.CreateVcoRouteEntryRequest(region_id=REGION, vpn_connection_id=vco, route_dest="192.168.78.0/24", next_hop=vco,
                                                                          weight=50)) == ("VpnRouteEntry.InvalidWeight", 400)
    assert error(tea.create_vco_route_entry, m.CreateVcoRouteEntryRequest(region_id=REGION, vpn_connection_id=vco, route_dest="192.168.78.0/24", next_hop="vco-other",
                                                                          weight=100))[0] == "InvalidVpnConnectionInstanceId.NotFound"
    tea.modify_vco_route_entry_weight(m.ModifyVcoRouteEntryWeightRequest(region_id=REGION, vpn_connection_id=vco, route_dest="192.168.77.0/24", next_hop=vco,
                                                                         weight=100, new_weight=0))
    wait_state(tea, vco, "init")
    assert entries().vco_route_entries[0].weight == 0
    tea.delete_vco_route_entry(m.DeleteVcoRouteEntryRequest(region_id=REGION, vpn_connection_id=vco, route_dest="192.168.77.0/24", next_hop=vco, weight=0))
    wait_state(tea, vco, "init")
    assert entries().total_count == 0
    assert error(tea.delete_vco_route_entry, m.DeleteVcoRouteEntryRequest(region_id=REGION, vpn_connection_id=vco, route_dest="192.168.77.0/24", next_hop=vco,
                                                                          weight=0)) == ("InvalidRouteEntry.NotFound", 404)
    # Only in destination-routing mode; only on attachments.
    policy = attachment(tea).vpn_connection_id
    wait_state(tea, policy, "init")
    assert error(tea.create_vco_route_entry, m.CreateVcoRouteEntryRequest(region_id=REGION, vpn_connection_id=policy, route_dest="192.168.77.0/24", next_hop=policy,
                                                                          weight=100)) == ("OperationUnsupported.VcoRouteEntry", 400)


def test_terraform_alicloud_vpn_gateway_vpn_attachment_and_vco_route(server):
    """resource_alicloud_vpn_gateway_vpn_attachment.go and resource_alicloud_vpn_gateway_vco_route.go."""
    tf = Provider(server)
    cgw = tf.post("CreateCustomerGateway", {"IpAddress": "203.0.113.240", "Asn": "65020"})["CustomerGatewayId"]
    vco = tf.post("CreateVpnAttachment", {
        "ClientToken": "tf-att-1", "NetworkType": "public", "LocalSubnet": "0.0.0.0/0", "RemoteSubnet": "0.0.0.0/0", "EffectImmediately": False,
        "EnableDpd": True, "EnableNatTraversal": True, "Name": "tf-att", "CustomerGatewayId": cgw, "TunnelBandwidth": "Standard",
        "IkeConfig": json.dumps({"Psk": "tf-att-psk", "IkeVersion": "ikev2", "IkeMode": "main", "IkeEncAlg": "aes", "IkeAuthAlg": "sha1", "IkePfs": "group2", "IkeLifetime": 86400}),
        "IpsecConfig": json.dumps({"IpsecEncAlg": "aes", "IpsecAuthAlg": "sha1", "IpsecPfs": "group2", "IpsecLifetime": 86400}),
        "BgpConfig": json.dumps({"LocalAsn": 45104, "TunnelCidr": "169.254.30.0/30", "LocalBgpIp": "169.254.30.1", "EnableBgp": False}),
        "HealthCheckConfig": json.dumps({"enable": False, "dip": "", "sip": "", "interval": 3, "retry": 3, "policy": "revoke_route"}),
    })["VpnConnectionId"]
    read = {"CreateTime": int, "CustomerGatewayId": str, "EffectImmediately": bool, "EnableDpd": bool, "EnableNatTraversal": bool, "EnableTunnelsBgp": bool,
            "TunnelBandwidth": str, "LocalSubnet": str, "NetworkType": str, "RemoteSubnet": str, "ResourceGroupId": str, "State": str, "Name": str,
            "VpnBgpConfig": dict, "VcoHealthCheck": dict, "IkeConfig": dict, "IpsecConfig": dict, "Tags.Tag": list}
    wait_for(lambda: tf.post("DescribeVpnConnection", {"VpnConnectionId": vco})["State"], "init")
    obj = Provider.read(tf.post("DescribeVpnConnection", {"VpnConnectionId": vco}), read)
    assert (obj["Name"], obj["TunnelBandwidth"], obj["IkeConfig"]["Psk"]) == ("tf-att", "Standard", "tf-att-psk")
    tf.post("TagResources", {"ResourceId.1": vco, "ResourceType": "VPNATTACHMENT", "Tag.1.Key": "Created", "Tag.1.Value": "TF"})
    assert tags_of(tf.post("DescribeVpnConnection", {"VpnConnectionId": vco})) == {"Created": "TF"}
    tf.retrying("ModifyVpnAttachmentAttribute", {"VpnConnectionId": vco, "ClientToken": "tf-att-2", "LocalSubnet": "0.0.0.0/0", "RemoteSubnet": "0.0.0.0/0",
                                                 "Name": "tf-att-2"})
    assert tf.post("DescribeVpnConnection", {"VpnConnectionId": vco})["Name"] == "tf-att-2"
    # alicloud_vpn_gateway_vco_route: id VpnConnectionId:RouteDest:NextHop:Weight.
    tf.retrying("CreateVcoRouteEntry", {"Weight": 100, "NextHop": vco, "RouteDest": "192.168.90.0/24", "VpnConnectionId": vco, "OverlayMode": "Ipsec",
                                        "ClientToken": "tf-vr-1"})

    def vco_route():
        rows = tf.post("DescribeVcoRouteEntries", {"VpnConnectionId": vco, "PageNumber": 1, "PageSize": 50})["VcoRouteEntries"]
        found = [r for r in rows if r["RouteDest"] == "192.168.90.0/24" and r["NextHop"] == vco and str(r["Weight"]) == "100"]
        return Provider.read(found[0], {"Weight": int, "State": str, "NextHop": str, "RouteDest": str, "VpnConnectionId": str, "CreateTime": int,
                                        "AsPath": str, "Source": str}) if found else None

    assert vco_route()["State"] == "normal"
    # The data source: RouteEntryType custom.
    assert len(tf.post("DescribeVcoRouteEntries", {"VpnConnectionId": vco, "RouteEntryType": "custom", "PageSize": 50})["VcoRouteEntries"]) == 1
    tf.retrying("DeleteVcoRouteEntry", {"VpnConnectionId": vco, "RouteDest": "192.168.90.0/24", "NextHop": vco, "Weight": "100", "ClientToken": "tf-vr-2"})
    wait_for(vco_route, None)
    # The attachments data source.
    listed = tf.post("DescribeVpnAttachments", {"VpnConnectionId": vco, "PageSize": 50})["VpnAttachments"]
    assert [a["InstanceId"] for a in listed] == [vco]
    tf.retrying("DeleteVpnAttachment", {"VpnConnectionId": vco, "ClientToken": "tf-att-3"})
    assert tf.error("DescribeVpnConnection", {"VpnConnectionId": vco}) == ("InvalidVpnConnectionInstanceId.NotFound", 404)


def test_the_legacy_sdk_drives_attachments_vco_routes_and_the_new_reads(server):
    from aliyunsdkvpc.request.v20160428.CheckVpnBgpEnabledRequest import CheckVpnBgpEnabledRequest
    from aliyunsdkvpc.request.v20160428.CreateVcoRouteEntryRequest import CreateVcoRouteEntryRequest
    from aliyunsdkvpc.request.v20160428.CreateVpnAttachmentRequest import CreateVpnAttachmentRequest
    from aliyunsdkvpc.request.v20160428.DeleteVpnAttachmentRequest import DeleteVpnAttachmentRequest
    from aliyunsdkvpc.request.v20160428.DescribeVcoRouteEntriesRequest import DescribeVcoRouteEntriesRequest
    from aliyunsdkvpc.request.v20160428.DescribeVpcAttributeRequest import DescribeVpcAttributeRequest
    from aliyunsdkvpc.request.v20160428.DescribeVpnAttachmentsRequest import DescribeVpnAttachmentsRequest
    c = server.tea()

    def call(req):
        return legacy_call(server, req)

    assert call(CheckVpnBgpEnabledRequest())["BgpEnabled"] is False
    vpc = c.create_vpc(m.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/8")).body.vpc_id
    d = DescribeVpcAttributeRequest()
    d.set_VpcId(vpc)
    assert call(d)["SecondaryCidrBlocks"] == {"SecondaryCidrBlock": []}
    req = CreateVpnAttachmentRequest()
    req.set_CustomerGatewayId(make_cgw(c).customer_gateway_id)
    req.set_LocalSubnet("0.0.0.0/0")
    req.set_RemoteSubnet("0.0.0.0/0")
    req.set_Name("legacy-att")
    req.set_Tagss([{"Key": "via", "Value": "legacy"}])
    made = call(req)
    vco = made["VpnConnectionId"]
    assert made["Success"] is True
    wait_state(c, vco, "init")
    r = CreateVcoRouteEntryRequest()
    r.set_VpnConnectionId(vco)
    r.set_RouteDest("192.168.5.0/24")
    r.set_NextHop(vco)
    r.set_Weight(100)
    assert call(r)["State"] == "normal"
    wait_state(c, vco, "init")
    q = DescribeVcoRouteEntriesRequest()
    q.set_VpnConnectionId(vco)
    assert [e["RouteDest"] for e in call(q)["VcoRouteEntries"]] == ["192.168.5.0/24"]
    a = DescribeVpnAttachmentsRequest()
    a.set_VpnConnectionId(vco)
    att = call(a)["VpnAttachments"][0]
    assert att["Name"] == "legacy-att" and att["Tags"] == [{"Key": "via", "Value": "legacy"}]
    delete = DeleteVpnAttachmentRequest()
    delete.set_VpnConnectionId(vco)
    assert call(delete)["Success"] is True
