import itertools
import json
import time

from alibabacloud_vpc20160428 import models as m
from Tea.exceptions import TeaException

REGION = "cn-hangzhou"
_ips = itertools.count(1)


def next_ip():
    n = next(_ips)
    return f"203.0.{n // 250}.{n % 250 + 1}"


def error(fn, *args, **kw):
    """Calls an SDK method that must fail; returns (code, http status)."""
    try:
        fn(*args, **kw)
    except TeaException as e:
        return e.code, e.data.get("statusCode") if isinstance(e.data, dict) else None
    raise AssertionError("the call succeeded but should have failed")


def legacy_call(server, req):
    """One request of the legacy SDK (aliyunsdkcore) against the server, over plain HTTP."""
    req.set_endpoint(server.endpoint)
    req.set_protocol_type("http")
    return json.loads(server.legacy().do_action_with_exception(req))


def sample(families, name, **labels):
    """The sum of the series of `name` whose labels include these (0 when none)."""
    fam = families.get(name)
    return sum(s.value for s in (fam.samples if fam else []) if s.name in (name, name + "_total") and all(s.labels.get(k) == v for k, v in labels.items()))


def make_vpc(c, cidr="10.0.0.0/8"):
    return c.create_vpc(m.CreateVpcRequest(region_id=REGION, cidr_block=cidr)).body.vpc_id


def make_vsw(c, vpc, cidr="10.1.0.0/16", zone="cn-hangzhou-h"):
    return c.create_vswitch(m.CreateVSwitchRequest(region_id=REGION, vpc_id=vpc, zone_id=zone, cidr_block=cidr)).body.v_switch_id


def make_gateway(c, wait=True, **kw):
    vpc = make_vpc(c)
    vsw = make_vsw(c, vpc)
    args = dict(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY")
    args.update(kw)
    gw = c.create_vpn_gateway(m.CreateVpnGatewayRequest(**args)).body.vpn_gateway_id
    if wait:
        wait_status(c, gw, "active")
    return gw, vpc, vsw


def describe(c, gw):
    return c.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body


def wait_status(c, gw, status, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if describe(c, gw).status == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{gw} never reached {status}")


def wait_gone(c, gw, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            describe(c, gw)
        except TeaException as e:
            assert e.code == "InvalidVpnGatewayInstanceId.NotFound"
            return
        time.sleep(0.05)
    raise AssertionError(f"{gw} was never deleted")


def make_cgw(c, **kw):
    args = dict(region_id=REGION, ip_address=next_ip())
    args.update(kw)
    return c.create_customer_gateway(m.CreateCustomerGatewayRequest(**args)).body
