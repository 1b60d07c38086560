"""SSL-VPN servers and client certificates through the official SDKs: every action, its
documented limits and errors, paging, the PKI (real X.509 that chains to the server's CA), the
expiry statuses, two accounts, and a restart (sealed keys still open)."""
import time

import pytest
from alibabacloud_vpc20160428 import models as m
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conftest import Server
from helpers import REGION, error, make_cgw, make_gateway, wait_status


def create_server(c, gw, wait=True, **kw):
    args = dict(region_id=REGION, vpn_gateway_id=gw, client_ip_pool="192.168.0.0/24", local_subnet="10.1.0.0/16")
    args.update(kw)
    body = c.create_ssl_vpn_server(m.CreateSslVpnServerRequest(**args)).body
    if wait:
        wait_status(c, gw, "active")
    return body


def servers(c, **kw):
    return c.describe_ssl_vpn_servers(m.DescribeSslVpnServersRequest(region_id=REGION, **kw)).body


def certs(c, **kw):
    return c.describe_ssl_vpn_client_certs(m.DescribeSslVpnClientCertsRequest(region_id=REGION, **kw)).body


def new_cert(c, vss, **kw):
    return c.create_ssl_vpn_client_cert(m.CreateSslVpnClientCertRequest(region_id=REGION, ssl_vpn_server_id=vss, **kw)).body


def cert_detail(c, vsc):
    return c.describe_ssl_vpn_client_cert(m.DescribeSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=vsc)).body


def test_server_lifecycle_defaults_fields_and_rules(alice, bob):
    gw, vpc, vsw = make_gateway(alice, enable_ssl=True)
    created = create_server(alice, gw, name="office")
    vss = created.ssl_vpn_server_id
    assert vss.startswith("vss-") and created.name == "office"
    gw_ip = alice.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body.internet_ip
    page = servers(alice, vpn_gateway_id=gw)
    assert (page.total_count, page.page_number, page.page_size) == (1, 1, 10)
    s = page.ssl_vpn_servers.ssl_vpn_server[0]
    # Defaults: TCP (the current SDK), port 1194, AES-128-CBC, no compression (section 8.1).
    assert (s.proto, s.port, s.cipher, s.compress, s.enable_multi_factor_auth) == ("TCP", 1194, "AES-128-CBC", False, False)
    assert (s.client_ip_pool, s.local_subnet, s.internet_ip, s.vpn_gateway_id, s.region_id) == ("192.168.0.0/24", "10.1.0.0/16", gw_ip, gw, REGION)
    assert (s.connections, s.max_connections) == (0, 5)
    assert abs(s.create_time / 1000 - time.time()) < 60
    # One per gateway; the gateway cannot go while it exists; DryRun changes nothing.
    assert error(create_server, alice, gw, client_ip_pool="192.168.8.0/24") == ("Resource.QuotaFull", 400)
    assert error(alice.delete_vpn_gateway, m.DeleteVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)) == ("DependencyViolation.SslVpnServer", 400)
    other, _, _ = make_gateway(alice, enable_ssl=True)
    assert error(create_server, alice, other, dry_run=True) == ("DryRunOperation", 400)
    assert servers(alice, vpn_gateway_id=other).total_count == 0
    # Modify: partial; the response is the whole server; the gateway goes through updating.
    mod = alice.modify_ssl_vpn_server(m.ModifySslVpnServerRequest(region_id=REGION, ssl_vpn_server_id=vss, proto="UDP", port=1195, cipher="AES-256-CBC", compress=True, dns_servers="10.1.0.53", name="office-2")).body
    assert (mod.proto, mod.port, mod.cipher, mod.compress, mod.name, mod.client_ip_pool, mod.max_connections, mod.internet_ip) == ("UDP", 1195, "AES-256-CBC", True, "office-2", "192.168.0.0/24", 5, gw_ip)
    assert alice.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body.status == "updating"
    assert error(alice.modify_ssl_vpn_server, m.ModifySslVpnServerRequest(region_id=REGION, ssl_vpn_server_id=vss, port=1196)) == ("VpnGateway.Configuring", 400)
    wait_status(alice, gw, "active")
    s = servers(alice, ssl_vpn_server_id=vss).ssl_vpn_servers.ssl_vpn_server[0]
    assert (s.proto, s.port, s.dns_servers, s.name) == ("UDP", 1195, "10.1.0.53", "office-2")
    assert servers(alice, name="office-2").total_count == 1 and servers(alice, name="nope").total_count == 0
    # Another account sees nothing and touches nothing.
    assert servers(bob).total_count == 0
    assert error(bob.modify_ssl_vpn_server, m.ModifySslVpnServerRequest(region_id=REGION, ssl_vpn_server_id=vss, name="x")) == ("InvalidSslVpnServerId.NotFound", 404)
    assert error(bob.create_ssl_vpn_client_cert, m.CreateSslVpnClientCertRequest(region_id=REGION, ssl_vpn_server_id=vss)) == ("InvalidSslVpnServerId.NotFound", 404)
    # A server with certificates is not deleted; without, it is.
    vsc = new_cert(alice, vss).ssl_vpn_client_cert_id
    assert error(alice.delete_ssl_vpn_server, m.DeleteSslVpnServerRequest(region_id=REGION, ssl_vpn_server_id=vss)) == ("DependencyViolation.SslVpnClientCert", 400)
    alice.delete_ssl_vpn_client_cert(m.DeleteSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=vsc))
    wait_status(alice, gw, "active")
    alice.delete_ssl_vpn_server(m.DeleteSslVpnServerRequest(region_id=REGION, ssl_vpn_server_id=vss))
    wait_status(alice, gw, "active")
    assert servers(alice, vpn_gateway_id=gw).total_count == 0
    assert error(alice.delete_ssl_vpn_server, m.DeleteSslVpnServerRequest(region_id=REGION, ssl_vpn_server_id=vss)) == ("InvalidSslVpnServerId.NotFound", 404)
    alice.delete_vpn_gateway(m.DeleteVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw))


def test_server_input_codes(alice):
    plain, _, _ = make_gateway(alice)
    assert error(create_server, alice, plain) == ("VpnGateway.SslVpnDisabled", 400)
    gw, _, _ = make_gateway(alice, enable_ssl=True)
    for bad, code in [
        ({"client_ip_pool": "10.1.2.0/24"}, "IllegalParam.ClientIpPool"),  # inside LocalSubnet
        ({"client_ip_pool": "10.200.0.0/24"}, "IllegalParam.ClientIpPool"),  # inside the VPC
        ({"client_ip_pool": "192.168.0.0/30"}, "IllegalParam.ClientIpPool"),  # mask past 29
        ({"client_ip_pool": "192.168.0.0/28"}, "IllegalParam.ClientIpPool"),  # < 4 addresses per SslConnections (5)
        ({"client_ip_pool": "100.64.0.0/24"}, "IllegalParam.ClientIpPool"),
        ({"client_ip_pool": "bad"}, "IllegalParam.ClientIpPool"),
        ({"local_subnet": "10.1.0.0/33"}, "IllegalParam.LocalSubnet"),
        ({"local_subnet": "127.0.0.0/8"}, "IllegalParam.LocalSubnet"),
        ({"port": 443}, "IllegalParam.Port"),
        ({"port": 4500}, "IllegalParam.Port"),
        ({"port": 9001}, "IllegalParam.Port"),
        ({"proto": "SCTP"}, "InvalidParameter"),
        ({"cipher": "AES-128-GCM"}, "InvalidParameter"),
        ({"name": "http://x"}, "InvalidName"),
        ({"dns_servers": "not-an-ip"}, "InvalidParameter"),
        ({"enable_multi_factor_auth": True}, "OperationUnsupported.MultiFactorAuth"),
        ({"vpn_gateway_id": "vpn-nope"}, "InvalidVpnGatewayInstanceId.NotFound"),
    ]:
        assert error(create_server, alice, gw, **bad)[0] == code, bad
    assert error(alice.create_ssl_vpn_server, m.CreateSslVpnServerRequest(region_id=REGION, vpn_gateway_id=gw, local_subnet="10.1.0.0/16"))[0] == "MissingParameter"
    assert servers(alice, vpn_gateway_id=gw).total_count == 0, "nothing was created"
    # Paging over several gateways' servers.
    made = [create_server(alice, make_gateway(alice, enable_ssl=True)[0], name=f"paged-{i}").ssl_vpn_server_id for i in range(3)]
    p1, p2 = servers(alice, page_size=2, name="paged-1"), None
    assert p1.total_count == 1 and p1.ssl_vpn_servers.ssl_vpn_server[0].ssl_vpn_server_id == made[1]
    p1, p2 = servers(alice, page_size=2, page_number=1), servers(alice, page_size=2, page_number=2)
    assert len(p1.ssl_vpn_servers.ssl_vpn_server) == 2 and p1.total_count == p2.total_count >= 3
    assert not {x.ssl_vpn_server_id for x in p1.ssl_vpn_servers.ssl_vpn_server} & {x.ssl_vpn_server_id for x in p2.ssl_vpn_servers.ssl_vpn_server}
    assert error(alice.describe_ssl_vpn_servers, m.DescribeSslVpnServersRequest(region_id=REGION, page_number=0)) == ("InvalidParameter", 400)
    # The IDaaS settings are stored and returned (MFA itself needs an identity provider).
    vss = create_server(alice, gw, enable_multi_factor_auth=False, idaa_sinstance_id="idaas-cn-hangzhou-x", idaa_sregion_id="cn-hangzhou", idaa_sapplication_id="app-1", cipher="none").ssl_vpn_server_id
    s = servers(alice, ssl_vpn_server_id=vss).ssl_vpn_servers.ssl_vpn_server[0]
    assert (s.idaa_sinstance_id, s.idaa_sregion_id, s.cipher) == ("idaas-cn-hangzhou-x", "cn-hangzhou", "none")


def test_client_pools_routes_and_ipsec_server_pools_of_a_vpc_do_not_overlap(alice):
    gw, vpc, vsw = make_gateway(alice, enable_ssl=True)
    create_server(alice, gw, client_ip_pool="172.30.0.0/24")
    # The gateway's IPsec server cannot take the SSL-VPN pool.
    assert error(alice.create_ipsec_server, m.CreateIpsecServerRequest(region_id=REGION, vpn_gateway_id=gw, local_subnet="10.1.0.0/16", client_ip_pool="172.30.0.0/25")) == ("IllegalParam.ClientIpPool", 400)
    # A route of another gateway of the VPC that leads into the pool: VpnRouteEntry.ConflictSSL.
    gw2 = alice.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY")).body.vpn_gateway_id
    wait_status(alice, gw2, "active")
    cgw = make_cgw(alice).customer_gateway_id
    vco = alice.create_vpn_connection(m.CreateVpnConnectionRequest(region_id=REGION, vpn_gateway_id=gw2, customer_gateway_id=cgw, local_subnet="0.0.0.0/0", remote_subnet="0.0.0.0/0")).body.vpn_connection_id
    wait_status(alice, gw2, "active")
    route = dict(region_id=REGION, vpn_gateway_id=gw2, next_hop=vco, weight=100, publish_vpc=False)
    assert error(alice.create_vpn_route_entry, m.CreateVpnRouteEntryRequest(route_dest="172.30.0.128/25", **route)) == ("VpnRouteEntry.ConflictSSL", 400)
    alice.create_vpn_route_entry(m.CreateVpnRouteEntryRequest(route_dest="172.30.5.0/24", **route))
    wait_status(alice, gw2, "active")
    # And the other way round: a pool that a route already leads to.
    gw3 = alice.create_vpn_gateway(m.CreateVpnGatewayRequest(region_id=REGION, vpc_id=vpc, v_switch_id=vsw, bandwidth=5, instance_charge_type="POSTPAY", enable_ssl=True)).body.vpn_gateway_id
    wait_status(alice, gw3, "active")
    assert error(create_server, alice, gw3, client_ip_pool="172.30.5.0/24") == ("VpnRouteEntry.ConflictSSL", 400)


def load_pem_cert(text):
    return x509.load_pem_x509_certificate(text.encode())


def test_client_certificates_are_real_x509_signed_by_the_servers_ca(alice, bob):
    gw, _, _ = make_gateway(alice, enable_ssl=True)
    vss = create_server(alice, gw, proto="UDP", port=1195).ssl_vpn_server_id
    made = new_cert(alice, vss, name="laptop-1")
    vsc = made.ssl_vpn_client_cert_id
    assert vsc.startswith("vsc-") and made.name == "laptop-1"
    d = cert_detail(alice, vsc)
    ca, cert = load_pem_cert(d.ca_cert), load_pem_cert(d.client_cert)
    key = serialization.load_pem_private_key(d.client_key.encode(), password=None)
    # It chains to the returned CA, names the certificate, is for clients, and the key is its own.
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == vsc
    assert x509.ExtendedKeyUsageOID.CLIENT_AUTH in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert key.public_key().public_numbers() == cert.public_key().public_numbers() and isinstance(key, ec.EllipticCurvePrivateKey)
    assert d.end_time == int(cert.not_valid_after_utc.timestamp()) * 1000
    assert d.status == "normal" and d.ssl_vpn_server_id == vss and d.name == "laptop-1" and d.region_id == REGION
    # Two certificates of one server share the CA; another server has its own.
    vsc2 = new_cert(alice, vss).ssl_vpn_client_cert_id
    assert cert_detail(alice, vsc2).ca_cert == d.ca_cert and cert_detail(alice, vsc2).name == vsc2
    gw2, _, _ = make_gateway(alice, enable_ssl=True)
    vss2 = create_server(alice, gw2).ssl_vpn_server_id
    other = cert_detail(alice, new_cert(alice, vss2).ssl_vpn_client_cert_id)
    assert other.ca_cert != d.ca_cert
    with pytest.raises(Exception):
        load_pem_cert(other.client_cert).verify_directly_issued_by(ca)
    # The profile is a complete OpenVPN client configuration.
    cfg = d.client_config
    gw_ip = alice.describe_vpn_gateway(m.DescribeVpnGatewayRequest(region_id=REGION, vpn_gateway_id=gw)).body.internet_ip
    for line in ["client", "proto udp", f"remote {gw_ip} 1195", "remote-cert-tls server", "data-ciphers-fallback AES-128-CBC", "auth SHA1"]:
        assert line in cfg.splitlines(), line
    assert d.ca_cert.strip() in cfg and d.client_cert.strip() in cfg and d.client_key.strip() in cfg
    # Listing, paging, filters, rename, and another account.
    listed = certs(alice, ssl_vpn_server_id=vss)
    assert listed.total_count == 2 and {k.ssl_vpn_client_cert_id for k in listed.ssl_vpn_client_cert_keys.ssl_vpn_client_cert_key} == {vsc, vsc2}
    k = certs(alice, ssl_vpn_client_cert_id=vsc).ssl_vpn_client_cert_keys.ssl_vpn_client_cert_key[0]
    assert (k.name, k.status, k.ssl_vpn_server_id, k.end_time, k.region_id) == ("laptop-1", "normal", vss, d.end_time, REGION)
    p1 = certs(alice, ssl_vpn_server_id=vss, page_size=1)
    p2 = certs(alice, ssl_vpn_server_id=vss, page_size=1, page_number=2)
    assert (p1.total_count, len(p1.ssl_vpn_client_cert_keys.ssl_vpn_client_cert_key), p2.page_number) == (2, 1, 2)
    assert p1.ssl_vpn_client_cert_keys.ssl_vpn_client_cert_key[0].ssl_vpn_client_cert_id != p2.ssl_vpn_client_cert_keys.ssl_vpn_client_cert_key[0].ssl_vpn_client_cert_id
    assert error(alice.describe_ssl_vpn_client_certs, m.DescribeSslVpnClientCertsRequest(region_id=REGION, page_size=51)) == ("InvalidParameter", 400)
    ren = alice.modify_ssl_vpn_client_cert(m.ModifySslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=vsc, name="laptop-renamed")).body
    assert (ren.name, ren.ssl_vpn_client_cert_id) == ("laptop-renamed", vsc)
    assert certs(alice, name="laptop-renamed").total_count == 1
    assert error(alice.modify_ssl_vpn_client_cert, m.ModifySslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=vsc, name="https://x")) == ("InvalidName", 400)
    assert error(new_cert, alice, vss, name="http://bad") == ("InvalidName", 400)
    assert certs(bob).total_count == 0
    for call, req in [(bob.describe_ssl_vpn_client_cert, m.DescribeSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=vsc)),
                      (bob.delete_ssl_vpn_client_cert, m.DeleteSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=vsc)),
                      (alice.describe_ssl_vpn_client_cert, m.DescribeSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id="vsc-nope"))]:
        assert error(call, req) == ("InvalidSslVpnClientCertId.NotFound", 404)
    # Deleting revokes: gone from the lists.
    alice.delete_ssl_vpn_client_cert(m.DeleteSslVpnClientCertRequest(region_id=REGION, ssl_vpn_client_cert_id=vsc))
    assert certs(alice, ssl_vpn_server_id=vss).total_count == 1


def test_logs_and_clients_parameters(alice, bob):
    gw, _, _ = make_gateway(alice, enable_ssl=True)
    vss = create_server(alice, gw).ssl_vpn_server_id
    logs = lambda c=alice, **kw: c.describe_vpn_ssl_server_logs(m.DescribeVpnSslServerLogsRequest(region_id=REGION, vpn_ssl_server_id=vss, **kw)).body
    now = int(time.time())
    # No data plane here: no lines, but the window rules of the documents hold.
    b = logs(minute_period=10)
    assert (b.count, b.page_number, b.page_size, b.is_completed, b.data.logs or []) == (0, 1, 10, True, [])
    assert logs(from_=now - 60, to=now).count == 0 and logs(from_=now - 60, minute_period=5).count == 0 and logs(to=now, minute_period=5).count == 0
    assert error(logs, from_=now - 60)[0] == "MissingParameter"
    assert error(logs, to=now)[0] == "MissingParameter"
    assert error(logs)[0] == "MissingParameter"
    assert error(logs, from_=now, to=now - 60) == ("InvalidParameter", 400)
    assert error(logs, minute_period=10, page_size=51) == ("InvalidParameter", 400)
    assert error(logs, minute_period=10, ssl_vpn_client_cert_id="vsc-nope") == ("InvalidSslVpnClientCertId.NotFound", 404)
    assert error(logs, bob, minute_period=10) == ("InvalidSslVpnServerId.NotFound", 404)
    cl = alice.describe_ssl_vpn_clients(m.DescribeSslVpnClientsRequest(region_id=REGION, vpn_gateway_id=gw)).body
    assert (cl.total_count, cl.vpn_gateway_id, cl.region_id, cl.page_number, cl.page_size, cl.client_info_list or []) == (0, gw, REGION, 1, 10, [])
    assert error(bob.describe_ssl_vpn_clients, m.DescribeSslVpnClientsRequest(region_id=REGION, vpn_gateway_id=gw)) == ("InvalidVpnGatewayInstanceId.NotFound", 404)


def test_legacy_sdk_speaks_ssl_vpn(server):
    import json
    from aliyunsdkvpc.request.v20160428.DescribeSslVpnServersRequest import DescribeSslVpnServersRequest
    c = server.tea()
    gw, _, _ = make_gateway(c, enable_ssl=True)
    vss = create_server(c, gw).ssl_vpn_server_id
    req = DescribeSslVpnServersRequest()
    req.set_SslVpnServerId(vss)
    req.set_endpoint(server.endpoint)
    req.set_protocol_type("http")
    body = json.loads(server.legacy().do_action_with_exception(req))
    s = body["SslVpnServers"]["SslVpnServer"][0]
    assert (s["SslVpnServerId"], s["Port"], s["Compress"], s["Connections"]) == (vss, 1194, False, 0)


def test_certificate_status_follows_the_real_expiry_and_keys_survive_a_restart():
    # Certificates valid for 6 days are `expiring-soon` from the start; ones valid for 2 s expire.
    # SQLite whatever the suite runs on: the test reads the database file.
    s = Server(top='store = ""\nssl_client_cert_days = 6.0\n', extra="ssl_client_certs_per_server = 3\n")
    s.start()
    try:
        c = s.tea()
        gw, _, _ = make_gateway(c, enable_ssl=True)
        vss = create_server(c, gw).ssl_vpn_server_id
        soon = new_cert(c, vss).ssl_vpn_client_cert_id
        assert cert_detail(c, soon).status == "expiring-soon"
        key_before = cert_detail(c, soon).client_key
        s.stop()
        with open(s.config) as f:
            text = f.read().replace("ssl_client_cert_days = 6.0", "ssl_client_cert_days = 0.00002")
        with open(s.config, "w") as f:
            f.write(text)
        s.start()
        c = s.tea()
        # The sealed keys open after the restart (the master key is in the data directory).
        assert cert_detail(c, soon).client_key == key_before
        short = new_cert(c, vss).ssl_vpn_client_cert_id
        assert cert_detail(c, short).status in ("expiring-soon", "expired")
        time.sleep(2.5)
        assert cert_detail(c, short).status == "expired"
        assert certs(c, ssl_vpn_client_cert_id=short).ssl_vpn_client_cert_keys.ssl_vpn_client_cert_key[0].status == "expired"
        # The per-server certificate quota (3 here) counts every certificate, expired or not.
        new_cert(c, vss)
        assert error(new_cert, c, vss) == ("Resource.QuotaFull", 400)
        # No private key is stored in the clear.
        import glob
        import sqlite3
        db = glob.glob(f"{s.dir}/data/*.db")[0]
        rows = sqlite3.connect(db).execute("select doc from resources").fetchall()
        assert rows and not any("PRIVATE KEY" in r[0] for r in rows)
    finally:
        s.stop()
