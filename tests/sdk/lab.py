"""A lab-mode vpngw and its customer sites, for the data-plane tests.

The server runs `[dataplane] mode = "lab"` under a lab name of its own; every namespace and
charon it creates, and every site these helpers create, is removed when the server stops.
Customer sites are configured only from DownloadVpnConnectionConfig's strongSwan rendering.
"""
import json
import os
import re
import subprocess
import time
import uuid

from aliyunsdkvpc.request.v20160428.DownloadVpnConnectionConfigRequest import DownloadVpnConnectionConfigRequest as LegacyDownload
from alibabacloud_vpc20160428 import models as m

from conftest import Server
from helpers import REGION


class Lab:
    def __init__(self, persist=False, extra=""):
        self.name = "t" + uuid.uuid4().hex[:6]
        self.run_dir = f"/run/vpngw/{self.name}"
        self.server = Server(extra=f'\n[dataplane]\nmode = "lab"\nlab_name = "{self.name}"\npersist = {str(persist).lower()}\nreconcile_interval_ms = 500\n' + extra)
        self.sites = set()

    def start(self):
        self.server.start()
        return self

    def stop(self):
        # The charon and OpenVPN logs outlive the lab, beside serve.log, for a post-mortem.
        subprocess.run(["cp", "-r", self.run_dir, os.path.join(self.server.dir, "run")], capture_output=True)
        self.server.stop()

    def down(self):
        self.server.cli("lab", "down")

    @property
    def c(self):
        return self.server.tea()

    def gw_ns(self, gw):
        return f"{self.name}-{gw}"

    def site_ns(self, site):
        return f"{self.name}-site-{site}"

    def gw_sock(self, gw):
        return f"{self.run_dir}/gw/{gw}/charon.vici"

    def site_sock(self, site):
        return f"{self.run_dir}/site/{site}/charon.vici"

    def device_config(self, vco):
        return device_config(self.server, vco)

    def site(self, name, ip, subnet, vco=None, config=None):
        """Creates (or updates) a site and loads the connection's customer-side configuration."""
        path = os.path.join(self.server.dir, f"site-{name}.conf")
        if vco is not None or config is not None:
            with open(path, "w") as f:
                f.write(config if config is not None else self.device_config(vco))
        args = ["lab", "site", "create", name, "--ip", ip, "--subnet", subnet]
        if vco is not None or config is not None:
            args += ["--swanctl", path]
        self.server.cli(*args)
        self.sites.add(name)

    def load(self, name, config):
        """Loads a configuration into an existing site's charon (as a customer would)."""
        path = os.path.join(self.server.dir, f"site-{name}.conf")
        with open(path, "w") as f:
            f.write(config)
        self.server.cli("lab", "site", "load", name, "--swanctl", path)

    def delete_site(self, name):
        self.server.cli("lab", "site", "delete", name)
        self.sites.discard(name)

    def sas(self, sock):
        out = subprocess.run(["swanctl", "--list-sas", "--raw", "--uri", f"unix://{sock}"], capture_output=True, text=True, timeout=10)
        return out.stdout

    def charon_pid(self, gw):
        with open(f"{self.run_dir}/gw/{gw}/charon.pid") as f:
            return int(f.read().strip())


# An IPsec road warrior (IKEv2, PSK, a virtual IP from the server's pool) for an IPsec server
# whose LocalSubnet is 10.1.0.0/16: format with me, gw and psk (hex).
ROAD_WARRIOR = """connections {{
  rw {{
    version = 2
    local_addrs = {me}
    remote_addrs = {gw}
    vips = 0.0.0.0
    proposals = aes128-sha1-modp1024
    local {{
      auth = psk
      id = {me}
    }}
    remote {{
      auth = psk
      id = {gw}
    }}
    children {{
      rw {{
        remote_ts = 10.1.0.0/16
        esp_proposals = aes128-sha1-modp1024
        start_action = start
      }}
    }}
  }}
}}
secrets {{
  ike-rw {{
    id-gw = {gw}
    secret = 0x{psk}
  }}
}}
"""


def device_config(server, vco, device="strongswan"):
    """The customer side's configuration, from DownloadVpnConnectionConfig (the legacy SDK: the
    current one has no DeviceType)."""
    req = LegacyDownload()
    req.set_VpnConnectionId(vco)
    req.add_query_param("DeviceType", device)
    req.set_endpoint(server.endpoint)
    req.set_protocol_type("http")
    return json.loads(server.legacy().do_action_with_exception(req))["VpnConnectionConfig"]["DeviceConfig"]


def ping(ns, src, dst, count=1, wait=2):
    """Pings dst from ns (from address src, or from what the route picks when src is None)."""
    source = ["-I", src] if src else []
    out = subprocess.run(["ip", "netns", "exec", ns, "ping", "-n", "-c", str(count), "-W", str(wait), *source, dst], capture_output=True, text=True)
    return out.returncode == 0


def ping_until(ns, src, dst, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if ping(ns, src, dst, wait=1):
            return True
    return False


def conn(c, vco):
    return c.describe_vpn_connection(m.DescribeVpnConnectionRequest(region_id=REGION, vpn_connection_id=vco)).body


def wait_conn(c, vco, status, timeout=20, tunnel=None):
    deadline = time.time() + timeout
    seen = None
    while time.time() < deadline:
        d = conn(c, vco)
        seen = d.status if tunnel is None else [t.status for t in d.tunnel_options_specification.tunnel_options if t.role == tunnel][0]
        if seen == status and d.state == "active":
            return d
        time.sleep(0.1)
    raise AssertionError(f"{vco} ({tunnel or 'connection'}) stayed {seen}, never {status}")


def ike_ids(sas_text):
    """Unique ids of the established IKE_SAs in `swanctl --list-sas --raw` output."""
    return sorted(re.findall(r"uniqueid=(\d+) version=\d state=ESTABLISHED", sas_text))
