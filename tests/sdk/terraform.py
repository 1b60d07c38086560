"""The Terraform alicloud provider's requests, replayed through the generic Tea client.

The provider (`aliyun/terraform-provider-alicloud`) calls `client.RpcPost("Vpc", "2016-04-28",
action, query, request, true)`: an RPC v1 (HMAC-SHA1) POST whose common parameters sit in the
query string and whose `request` map is the form body, signed over the two merged. The Python
generic client's `call_api` with `signature_algorithm="v2"` sends exactly that. Values are sent
as the Go client renders them: booleans as `true` / `false`, numbers as decimal strings.

`Provider.read` checks a response the way the provider consumes it: each field it reads must be
there with the JSON type its `d.Set` or type assertion needs (a string where the schema says
TypeString, a bool where it asserts `.(bool)`, an object where it asserts
`.(map[string]interface{})`), never `null`.
"""
from alibabacloud_tea_openapi import models as om
from alibabacloud_tea_openapi import utils_models as um
from alibabacloud_tea_openapi.client import Client as OpenApiClient
from alibabacloud_tea_openapi.utils import Utils
from darabonba.runtime import RuntimeOptions
from Tea.exceptions import TeaException

REGION = "cn-hangzhou"


def wire(v):
    """A value as the Go client renders it; lists and maps stay nested for the client to
    flatten (`Tags.1.Key`, `TunnelOptionsSpecification.1.TunnelIkeConfig.Psk`)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return {k: wire(x) for k, x in v.items()}
    if isinstance(v, list):
        return [wire(x) for x in v]
    return str(v)


class Provider:
    def __init__(self, server, who="alice"):
        from conftest import KEYS
        ak, secret = KEYS[who]
        protocol = "https" if getattr(server, "tls", False) else "http"
        self.client = OpenApiClient(om.Config(access_key_id=ak, access_key_secret=secret, endpoint=server.endpoint, protocol=protocol,
                                              region_id=REGION, signature_algorithm="v2"))

    def post(self, action, request, query=None):
        """One `RpcPost`: the response body as a dict."""
        params = um.Params(action=action, version="2016-04-28", protocol="HTTP", pathname="/", method="POST", auth_type="AK",
                           style="RPC", req_body_type="formData", body_type="json")
        body = Utils.query({"RegionId": REGION, **{k: wire(v) for k, v in request.items()}})
        req = um.OpenApiRequest(query=Utils.query({k: wire(v) for k, v in (query or {}).items()}), body=body)
        return self.client.call_api(params, req, RuntimeOptions(autoretry=False))["body"]

    def retrying(self, action, request, query=None, codes=("VpnGateway.Configuring", "VpnTask.CONFLICT", "VpnConnection.Configuring"), timeout=10):
        """A write as the provider's `resource.Retry` makes it: again while the answer is one of
        the codes it retries on (a gateway busy with the previous change)."""
        import time
        deadline = time.time() + timeout
        while True:
            try:
                return self.post(action, request, query)
            except TeaException as e:
                if e.code not in codes or time.time() > deadline:
                    raise
                time.sleep(0.05)

    def error(self, action, request, query=None):
        """(code, HTTP status) of a call that must fail."""
        try:
            self.post(action, request, query)
        except TeaException as e:
            return e.code, e.data.get("statusCode") if isinstance(e.data, dict) else None
        raise AssertionError(f"{action} succeeded but should have failed")

    def code(self, action, request, query=None):
        """The error code of a call, or None when it succeeds."""
        try:
            self.post(action, request, query)
            return None
        except TeaException as e:
            return e.code

    @staticmethod
    def read(obj, fields):
        """Asserts each `path: type` the provider reads; `path` is dotted (`RouteTable.RouteTableId`)."""
        for path, typ in fields.items():
            v = obj
            for part in path.split("."):
                assert isinstance(v, dict) and part in v, f"{path} missing from {obj}"
                v = v[part]
            types = typ if isinstance(typ, tuple) else (typ,)
            assert v is not None, f"{path} is null"
            # A JSON bool is not an int, whatever Python says.
            assert isinstance(v, types) and not (isinstance(v, bool) and bool not in types), f"{path} is {type(v).__name__} {v!r}, want {typ}"
        return obj


def wait_for(fn, want, timeout=10):
    """Polls `fn()` until it returns `want` (the provider's StateConf)."""
    import time
    deadline = time.time() + timeout
    while True:
        got = fn()
        if got == want:
            return
        assert time.time() < deadline, f"still {got!r}, want {want!r}"
        time.sleep(0.05)


def tags_of(obj):
    return {t["Key"]: t["Value"] for t in obj["Tags"]["Tag"]}
