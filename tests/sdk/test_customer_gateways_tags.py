"""Customer gateways and tags through the official Tea SDK."""
from alibabacloud_vpc20160428 import models as m

from helpers import REGION, error, make_cgw, make_gateway, next_ip

T = m.CreateCustomerGatewayRequestTags


def test_customer_gateway_crud(tea):
    ip = next_ip()
    out = tea.create_customer_gateway(m.CreateCustomerGatewayRequest(
        region_id=REGION, ip_address=ip, asn="123.456", auth_key="AuthKey!1", name="cgw-one", description="branch office",
        tags=[T(key="env", value="prod"), T(key="empty", value="")])).body
    assert out.customer_gateway_id.startswith("cgw-") and out.ip_address == ip and isinstance(out.create_time, int)
    d = tea.describe_customer_gateway(m.DescribeCustomerGatewayRequest(region_id=REGION, customer_gateway_id=out.customer_gateway_id)).body.to_map()
    assert d["Asn"] == 123 * 65536 + 456 and d["AuthKey"] == "AuthKey!1" and d["Name"] == "cgw-one"
    assert d["Tags"]["Tag"] == [{"Key": "empty", "Value": ""}, {"Key": "env", "Value": "prod"}]
    mod = tea.modify_customer_gateway_attribute(m.ModifyCustomerGatewayAttributeRequest(
        region_id=REGION, customer_gateway_id=out.customer_gateway_id, name="renamed", auth_key="other")).body
    assert mod.name == "renamed" and mod.ip_address == ip
    lst = tea.describe_customer_gateways(m.DescribeCustomerGatewaysRequest(region_id=REGION, customer_gateway_id=out.customer_gateway_id)).body
    assert lst.total_count == 1 and lst.customer_gateways.customer_gateway[0].auth_key == "other"
    tagged = tea.describe_customer_gateways(m.DescribeCustomerGatewaysRequest(
        region_id=REGION, tag=[m.DescribeCustomerGatewaysRequestTag(key="env", value="prod")])).body
    assert out.customer_gateway_id in [c.customer_gateway_id for c in tagged.customer_gateways.customer_gateway]
    tea.delete_customer_gateway(m.DeleteCustomerGatewayRequest(region_id=REGION, customer_gateway_id=out.customer_gateway_id))
    assert error(tea.describe_customer_gateway, m.DescribeCustomerGatewayRequest(region_id=REGION, customer_gateway_id=out.customer_gateway_id)) == ("InvalidCustomerGatewayInstanceId.NotFound", 404)


def test_customer_gateway_validation(tea):
    taken = make_cgw(tea).ip_address
    no_asn = make_cgw(tea)
    cases = [
        (dict(ip_address="300.1.1.1"), "InvalidIpAddress.WrongFormat"),
        (dict(ip_address="127.0.0.1"), "InvalidIpAddress.WrongFormat"),
        (dict(ip_address=taken), "InvalidIpAddress.AlreadyExist"),
        (dict(auth_key="key"), "OperationDenied.MissingAsn"),
        (dict(asn="65530", auth_key="bad key"), "InvalidAuthkey.Malformed"),
        (dict(asn="65530", auth_key="what?"), "InvalidAuthkey.Malformed"),
        (dict(asn="4294967296"), "InvalidAsn.Malformed"),
        (dict(asn="65536.1"), "InvalidAsn.Malformed"),
        (dict(name="_x"), "InvalidName"),
        (dict(description="1 starts with a digit"), "InvalidDescription"),
        (dict(tags=[T(key="aliyun-x", value="v")]), "InvalidParameter.TagKey"),
        (dict(tags=[T(value="v")]), "MissingParameter.TagKey"),
    ]
    for change, code in cases:
        args = dict(region_id=REGION, ip_address=next_ip())
        args.update(change)
        assert error(tea.create_customer_gateway, m.CreateCustomerGatewayRequest(**args)) == (code, 400), change
    assert error(tea.modify_customer_gateway_attribute, m.ModifyCustomerGatewayAttributeRequest(
        region_id=REGION, customer_gateway_id=no_asn.customer_gateway_id, auth_key="k")) == ("OperationDenied.MissingAsn", 400)
    assert error(tea.modify_customer_gateway_attribute, m.ModifyCustomerGatewayAttributeRequest(
        region_id=REGION, customer_gateway_id="cgw-none", name="abc")) == ("InvalidCustomerGatewayInstanceId.NotFound", 404)
    assert error(tea.create_customer_gateway, m.CreateCustomerGatewayRequest(region_id=REGION)) == ("MissingParameter", 400)


def test_customer_gateway_paging(alice):
    made = [make_cgw(alice).customer_gateway_id for _ in range(3)]
    p = alice.describe_customer_gateways(m.DescribeCustomerGatewaysRequest(region_id=REGION, page_size=2, page_number=1)).body
    assert p.page_size == 2 and len(p.customer_gateways.customer_gateway) == 2 and p.total_count >= 3
    assert p.customer_gateways.customer_gateway[0].customer_gateway_id == made[-1]


def test_tags_on_gateways_and_customer_gateways(alice):
    gw, _, _ = make_gateway(alice, wait=False)
    cgw = make_cgw(alice).customer_gateway_id
    # ResourceType is matched case-insensitively.
    alice.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="VpnGateWay", resource_id=[gw],
                                              tag=[m.TagResourcesRequestTag(key="team", value="net"), m.TagResourcesRequestTag(key="env", value="dev")]))
    alice.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="CUSTOMERGATEWAY", resource_id=[cgw],
                                              tag=[m.TagResourcesRequestTag(key="team", value="net")]))
    d = alice.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body
    assert {(t.key, t.value) for t in d.tags.tag} == {("team", "net"), ("env", "dev")}
    # Overwrite a value, filter with AND semantics.
    alice.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="vpngateway", resource_id=[gw], tag=[m.TagResourcesRequestTag(key="env", value="prod")]))
    found = alice.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, tag=[
        m.DescribeVpnGatewaysRequestTag(key="team", value="net"), m.DescribeVpnGatewaysRequestTag(key="env", value="prod")])).body
    assert [g.vpn_gateway_id for g in found.vpn_gateways.vpn_gateway] == [gw]
    rows = alice.list_tag_resources(m.ListTagResourcesRequest(region_id=REGION, resource_type="VpnGateWay", resource_id=[gw])).body
    assert {(r.tag_key, r.tag_value, r.resource_id) for r in rows.tag_resources.tag_resource} == {("env", "prod", gw), ("team", "net", gw)}
    by_tag = alice.list_tag_resources(m.ListTagResourcesRequest(region_id=REGION, resource_type="CustomerGateway", tag=[m.ListTagResourcesRequestTag(key="team", value="net")])).body
    assert cgw in {r.resource_id for r in by_tag.tag_resources.tag_resource}
    assert error(alice.list_tag_resources, m.ListTagResourcesRequest(region_id=REGION, resource_type="VpnGateWay")) == ("MissingParameter.ResourceIdOrTag", 400)
    assert error(alice.list_tag_resources, m.ListTagResourcesRequest(region_id=REGION, resource_type="VpnGateWay", resource_id=[gw], next_token="garbage")) == ("InvalidNextToken", 400)
    alice.un_tag_resources(m.UnTagResourcesRequest(region_id=REGION, resource_type="VpnGateWay", resource_id=[gw], tag_key=["team"]))
    d = alice.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body
    assert [(t.key, t.value) for t in d.tags.tag] == [("env", "prod")]
    alice.un_tag_resources(m.UnTagResourcesRequest(region_id=REGION, resource_type="VpnGateWay", resource_id=[gw], all=True))
    assert alice.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body.tags.tag == []
    assert error(alice.un_tag_resources, m.UnTagResourcesRequest(region_id=REGION, resource_type="VpnGateWay", resource_id=[gw])) == ("MissingParameter", 400)


def test_tag_limits_and_errors(alice):
    cgw = make_cgw(alice).customer_gateway_id
    tag = m.TagResourcesRequestTag
    twenty = [tag(key=f"k{i}", value="v") for i in range(20)]
    alice.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="CustomerGateway", resource_id=[cgw], tag=twenty))
    # The limit counts the tags the resource already has; re-setting an existing key is fine.
    alice.tag_resources(m.TagResourcesRequest(region_id=REGION, resource_type="CustomerGateway", resource_id=[cgw], tag=[tag(key="k0", value="w")]))
    assert error(alice.tag_resources, m.TagResourcesRequest(region_id=REGION, resource_type="CustomerGateway", resource_id=[cgw], tag=[tag(key="k20", value="v")])) == ("SizeLimitExceeded.TagNum", 400)
    cases = [
        (dict(resource_type="Toaster"), "InvalidResourceType.NotFound", 400),
        (dict(resource_id=["cgw-nothere"]), "InvalidResourceId.NotFound", 404),
        (dict(tag=[tag(key="acs:x", value="v")]), "InvalidParameter.TagKey", 400),
        (dict(tag=[tag(key="ok", value="aliyun-v")]), "InvalidParameter.TagValue", 400),
        (dict(tag=[tag(key="a", value="1"), tag(key="a", value="2")]), "Duplicated.TagKey", 400),
        (dict(tag=[tag(value="v")]), "MissingParameter.TagKey", 400),
    ]
    for change, code, status in cases:
        args = dict(region_id=REGION, resource_type="CustomerGateway", resource_id=[cgw], tag=[tag(key="x", value="y")])
        args.update(change)
        assert error(alice.tag_resources, m.TagResourcesRequest(**args)) == (code, status), change
    # Paging with NextToken walks every row once.
    seen, token = [], None
    while True:
        page = alice.list_tag_resources(m.ListTagResourcesRequest(region_id=REGION, resource_type="CustomerGateway", resource_id=[cgw], max_results=7, next_token=token)).body
        seen += [r.tag_key for r in page.tag_resources.tag_resource]
        token = page.next_token
        if not token:
            break
    assert sorted(seen) == sorted(f"k{i}" for i in range(20))
