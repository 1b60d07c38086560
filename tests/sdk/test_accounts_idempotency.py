"""Accounts, read-only keys, ClientToken idempotency, restarts and crashes, and the legacy SDK."""
import json
import signal

import pytest
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkvpc.request.v20160428.CreateCustomerGatewayRequest import CreateCustomerGatewayRequest as LegacyCreateCgw
from aliyunsdkvpc.request.v20160428.CreateVpcRequest import CreateVpcRequest as LegacyCreateVpc
from aliyunsdkvpc.request.v20160428.CreateVSwitchRequest import CreateVSwitchRequest as LegacyCreateVsw
from aliyunsdkvpc.request.v20160428.CreateVpnGatewayRequest import CreateVpnGatewayRequest as LegacyCreateGw
from aliyunsdkvpc.request.v20160428.DescribeVpnGatewayRequest import DescribeVpnGatewayRequest as LegacyDescribeGw
from aliyunsdkvpc.request.v20160428.DescribeVpnGatewaysRequest import DescribeVpnGatewaysRequest as LegacyDescribeGws
from alibabacloud_vpc20160428 import models as m

from conftest import Server
from helpers import REGION, describe, error, make_cgw, make_gateway, next_ip


def test_accounts_do_not_see_each_other(alice, bob):
    gw, vpc, _ = make_gateway(alice, wait=False)
    cgw = make_cgw(alice).customer_gateway_id
    assert error(bob.describe_vpn_gateway, m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)) == ("InvalidVpnGatewayInstanceId.NotFound", 404)
    assert error(bob.delete_vpn_gateway, m.DeleteVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)) == ("InvalidVpnGatewayInstanceId.NotFound", 404)
    assert error(bob.describe_customer_gateway, m.DescribeCustomerGatewayRequest(region_id=REGION, customer_gateway_id=cgw)) == ("InvalidCustomerGatewayInstanceId.NotFound", 404)
    assert error(bob.create_vpn_gateway, m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, bandwidth=5, instance_charge_type="POSTPAY")) == ("InvalidVpcId.NotFound", 404)
    assert error(bob.tag_resources, m.TagResourcesRequest(region_id=REGION, resource_type="VpnGateWay", resource_id=[gw], tag=[m.TagResourcesRequestTag(key="a", value="b")])) == ("InvalidResourceId.NotFound", 404)
    listed = bob.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION, vpn_gateway_id=gw)).body
    assert listed.total_count == 0
    # Another region of the same account does not see it either.
    assert error(alice.describe_vpn_gateway, m.DescribeVpnGatewayRequest(region_id="cn-shanghai", vpn_gateway_id=gw)) == ("InvalidVpnGatewayInstanceId.NotFound", 404)
    # The same customer gateway address is free in another account.
    ip = alice.describe_customer_gateway(m.DescribeCustomerGatewayRequest(region_id=REGION, customer_gateway_id=cgw)).body.ip_address
    bob.create_customer_gateway(m.CreateCustomerGatewayRequest(region_id=REGION, ip_address=ip))


def test_readonly_key_reads_but_cannot_write(server):
    ro = server.tea("alice-ro")
    ro.describe_vpn_gateways(m.DescribeVpnGatewaysRequest(region_id=REGION))
    assert error(ro.create_vpc, m.CreateVpcRequest(region_id=REGION)) == ("Forbidden", 403)


def test_unknown_key_and_bad_secret(server):
    from alibabacloud_tea_openapi.models import Config
    from alibabacloud_vpc20160428.client import Client
    for ak, secret, code, status in [("AKNOBODY", "x", "InvalidAccessKeyId.NotFound", 404), ("AKALICE0000000000001", "wrong", "SignatureDoesNotMatch", 400)]:
        for v2 in (False, True):
            cfg = Config(access_key_id=ak, access_key_secret=secret, endpoint=server.endpoint, protocol="http", region_id=REGION)
            if v2:
                cfg.signature_algorithm = "v2"
            assert error(Client(cfg).describe_regions, m.DescribeRegionsRequest()) == (code, status)


def test_client_token_idempotency(alice):
    vpc_req = lambda: m.CreateVpcRequest(region_id=REGION, cidr_block="10.0.0.0/8", client_token="tok-vpc-1")
    a = alice.create_vpc(vpc_req()).body.vpc_id
    b = alice.create_vpc(vpc_req()).body.vpc_id
    assert a == b
    assert error(alice.create_vpc, m.CreateVpcRequest(region_id=REGION, cidr_block="192.168.0.0/16", client_token="tok-vpc-1")) == ("IdempotentParameterMismatch", 400)
    cgw_req = lambda: m.CreateCustomerGatewayRequest(region_id=REGION, ip_address="198.18.0.1", client_token="tok-cgw-1")
    assert alice.create_customer_gateway(cgw_req()).body.customer_gateway_id == alice.create_customer_gateway(cgw_req()).body.customer_gateway_id
    n = alice.describe_customer_gateways(m.DescribeCustomerGatewaysRequest(region_id=REGION, page_size=50)).body
    assert [c.ip_address for c in n.customer_gateways.customer_gateway].count("198.18.0.1") == 1


def test_restart_and_crash_keep_acknowledged_writes():
    s = Server(transition_ms=2000)
    s.start()
    try:
        c = s.tea()
        gw, _, _ = make_gateway(c, wait=False, client_token="tok-gw-crash")
        cgw = make_cgw(c, client_token="tok-cgw-crash", ip_address="198.18.1.1").customer_gateway_id
        assert describe(c, gw).status == "init"
        # kill -9 in the middle of the gateway's lifecycle.
        s.stop(signal.SIGKILL)
        s.start()
        c = s.tea()
        assert describe(c, gw).status in ("init", "provisioning", "active")
        # A client retry with the same ClientToken gets the same resource, not a second one.
        again = make_cgw(c, client_token="tok-cgw-crash", ip_address="198.18.1.1").customer_gateway_id
        assert again == cgw
        # The lifecycle goes on after the restart.
        from helpers import wait_status
        wait_status(c, gw, "active", timeout=15)
        s.stop()
        s.start()
        c = s.tea()
        assert describe(c, gw).status == "active"
        assert c.describe_customer_gateways(m.DescribeCustomerGatewaysRequest(region_id=REGION)).body.total_count == 1
    finally:
        s.stop()


def test_quota_for_customer_gateways():
    s = Server(cgw_quota=40)
    s.start()
    try:
        c = s.tea("bob")
        for i in range(40):
            make_cgw(c, ip_address=f"198.19.0.{i + 1}")
        assert error(c.create_customer_gateway, m.CreateCustomerGatewayRequest(region_id=REGION, ip_address="198.19.1.1")) == ("Resource.QuotaFull", 400)
    finally:
        s.stop()


def legacy_call(client, req, endpoint):
    req.set_endpoint(endpoint)
    req.set_protocol_type("http")
    return json.loads(client.do_action_with_exception(req))


def test_legacy_sdk(server):
    c = server.legacy()
    vpc = legacy_call(c, LegacyCreateVpc(), server.endpoint)["VpcId"]
    vsw_req = LegacyCreateVsw()
    vsw_req.set_VpcId(vpc)
    vsw_req.set_ZoneId("cn-hangzhou-h")
    vsw_req.set_CidrBlock("172.16.1.0/24")
    vsw = legacy_call(c, vsw_req, server.endpoint)["VSwitchId"]
    gw_req = LegacyCreateGw()
    gw_req.set_VpcId(vpc)
    gw_req.set_VSwitchId(vsw)
    gw_req.set_Bandwidth(5)
    gw_req.set_InstanceChargeType("POSTPAY")
    gw_req.set_EnableSsl(True)
    gw = legacy_call(c, gw_req, server.endpoint)["VpnGatewayId"]
    d = LegacyDescribeGw()
    d.set_VpnGatewayId(gw)
    body = legacy_call(c, d, server.endpoint)
    assert body["VpnGatewayId"] == gw and body["SslVpn"] == "enable" and body["Spec"] == "5M"
    lst = LegacyDescribeGws()
    lst.set_VpcId(vpc)
    assert legacy_call(c, lst, server.endpoint)["VpnGateways"]["VpnGateway"][0]["VpnGatewayId"] == gw
    cgw = LegacyCreateCgw()
    cgw.set_IpAddress(next_ip())
    cgw.set_Asn("65001")
    cgw.set_Tagss([{"Key": "k", "Value": "v"}])
    assert legacy_call(c, cgw, server.endpoint)["CustomerGatewayId"].startswith("cgw-")
    missing = LegacyDescribeGw()
    missing.set_VpnGatewayId("vpn-none")
    with pytest.raises(ServerException) as e:
        legacy_call(c, missing, server.endpoint)
    assert e.value.get_error_code() == "InvalidVpnGatewayInstanceId.NotFound" and e.value.get_http_status() == 404
    # A wrong secret: the legacy SDK reads the string to sign after the colon of the message,
    # finds it equal to its own and reports InvalidAccessKeySecret (it must not crash).
    from aliyunsdkcore.client import AcsClient
    bad = AcsClient("AKALICE0000000000001", "wrong", REGION)
    with pytest.raises(ServerException) as e:
        legacy_call(bad, LegacyDescribeGws(), server.endpoint)
    assert e.value.get_error_code() in ("InvalidAccessKeySecret", "SignatureDoesNotMatch") and e.value.get_http_status() == 400
