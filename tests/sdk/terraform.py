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
    if isinstance(v, bool):
        return "true" if v else "false"
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
        body = {"RegionId": REGION, **{k: wire(v) for k, v in request.items()}}
        req = um.OpenApiRequest(query=Utils.query({k: wire(v) for k, v in (query or {}).items()}), body=body)
        return self.client.call_api(params, req, RuntimeOptions(autoretry=False))["body"]

    def error(self, action, request, query=None):
        """(code, HTTP status) of a call that must fail."""
        try:
            self.post(action, request, query)
        except TeaException as e:
            return e.code, e.data.get("statusCode") if isinstance(e.data, dict) else None
        raise AssertionError(f"{action} succeeded but should have failed")

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


def tags_of(obj):
    return {t["Key"]: t["Value"] for t in obj["Tags"]["Tag"]}
