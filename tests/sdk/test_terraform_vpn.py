"""The VPN family of the Terraform provider (alicloud_vpn_gateway, alicloud_vpn_customer_gateway,
alicloud_vpn_connection, alicloud_vpn_route_entry, alicloud_vpn_pbr_route_entry,
alicloud_vpn_ipsec_server, alicloud_ssl_vpn_server, alicloud_ssl_vpn_client_cert and the data
sources over them), replayed as the provider's code sends them (see terraform.py)."""
from helpers import next_ip
from terraform import Provider, tags_of, wait_for

GATEWAY_READ = {"AutoPropagate": bool, "CreateTime": int, "Description": str, "DisasterRecoveryVSwitchId": str, "NetworkType": str,
                "ChargeType": str, "ResourceGroupId": str, "SslMaxConnections": int, "Status": str, "VSwitchId": str, "VpcId": str,
                "Name": str, "VpnType": str, "InternetIp": str, "BusinessStatus": str, "Tags.Tag": list, "Spec": str, "IpsecVpn": str,
                "SslVpn": str, "SslVpnInternetIp": str, "DisasterRecoveryInternetIp": str}
CGW_READ = {"CreateTime": int, "Name": str, "Description": str, "IpAddress": str, "Tags.Tag": list}
CONNECTION_READ = {"CreateTime": int, "CustomerGatewayId": str, "EffectImmediately": bool, "EnableDpd": bool, "EnableNatTraversal": bool,
                   "EnableTunnelsBgp": bool, "ResourceGroupId": str, "Status": str, "State": str, "Name": str, "VpnGatewayId": str,
                   "VpnBgpConfig": dict, "VcoHealthCheck": dict, "IkeConfig": dict, "IpsecConfig": dict, "Tags.Tag": list,
                   "LocalSubnet": str, "RemoteSubnet": str, "IkeConfig.Psk": str, "IkeConfig.IkeLifetime": int, "IpsecConfig.IpsecLifetime": int,
                   "VpnBgpConfig.EnableBgp": str, "VcoHealthCheck.Enable": str}
ROUTE_READ = {"Weight": int, "NextHop": str, "RouteDest": str, "VpnInstanceId": str, "State": str, "RouteEntryType": str}
PBR_READ = {"Weight": int, "NextHop": str, "RouteDest": str, "RouteSource": str, "VpnInstanceId": str, "State": str}
IPSEC_SERVER_READ = {"ClientIpPool": str, "EffectImmediately": bool, "IpsecServerName": str, "LocalSubnet": str, "Psk": str, "PskEnabled": bool,
                     "VpnGatewayId": str, "IkeConfig": dict, "IpsecConfig": dict}


def network(tf, dual=False):
    vpc = tf.post("CreateVpc", {"CidrBlock": "10.0.0.0/8"})["VpcId"]
    vsw = tf.post("CreateVSwitch", {"VpcId": vpc, "ZoneId": "cn-hangzhou-h", "CidrBlock": "10.1.0.0/16"})["VSwitchId"]
    dr = tf.post("CreateVSwitch", {"VpcId": vpc, "ZoneId": "cn-hangzhou-i", "CidrBlock": "10.2.0.0/16"})["VSwitchId"] if dual else None
    return vpc, vsw, dr


def gateway(tf, vpc, vsw, dr=None, **extra):
    """resourceAliCloudVPNGatewayVPNGatewayCreate: no InstanceChargeType unless the config has one."""
    req = {"ClientToken": "tf-gw", "VpcId": vpc, "VSwitchId": vsw, "Name": "tf-gw", "NetworkType": "public", "AutoPay": True,
           "EnableIpsec": True, "EnableSsl": True, "SslConnections": 5, "VpnType": "Normal", "Bandwidth": 10, **extra}
    if dr:
        req["DisasterRecoveryVSwitchId"] = dr
    gw = tf.post("CreateVpnGateway", req)["VpnGatewayId"]
    wait_for(lambda: tf.post("DescribeVpnGateway", {"VpnGatewayId": gw})["Status"], "active")
    return gw


def test_alicloud_vpn_gateway(server):
    tf = Provider(server)
    vpc, vsw, _ = network(tf)
    gw = gateway(tf, vpc, vsw, ClientToken="tf-gw-1")
    obj = Provider.read(tf.post("DescribeVpnGateway", {"VpnGatewayId": gw}), GATEWAY_READ)
    # payment_type is ForceNew: pay-as-you-go must read back as what the provider maps to PayAsYouGo.
    assert obj["ChargeType"] == "PostpayByFlow" and obj["Spec"] == "10M" and obj["IpsecVpn"] == "enable" and obj["SslVpn"] == "enable"
    # Update: ModifyVpnGatewayAttribute with VpnGatewayId in the query.
    tf.post("ModifyVpnGatewayAttribute", {"ClientToken": "tf-m1", "Name": "tf-gw-2", "Description": "changed", "AutoPropagate": False}, query={"VpnGatewayId": gw})
    wait_for(lambda: tf.post("DescribeVpnGateway", {"VpnGatewayId": gw})["Status"], "active")
    obj = Provider.read(tf.post("DescribeVpnGateway", {"VpnGatewayId": gw}), GATEWAY_READ)
    assert (obj["Name"], obj["Description"], obj["AutoPropagate"]) == ("tf-gw-2", "changed", False)
    tf.post("MoveVpnResourceGroup", {"NewResourceGroupId": "rg-tf", "ResourceType": "VpnGateWay"}, query={"InstanceId": gw})
    assert tf.post("DescribeVpnGateway", {"VpnGatewayId": gw})["ResourceGroupId"] == "rg-tf"
    tf.post("TagResources", {"ResourceId.1": gw, "ResourceType": "VpnGateWay", "Tag.1.Key": "Created", "Tag.1.Value": "TF"})
    assert tags_of(tf.post("DescribeVpnGateway", {"VpnGatewayId": gw})) == {"Created": "TF"}
    # The data sources.
    listed = tf.post("DescribeVpnGateways", {"VpcId": vpc, "PageSize": 50, "PageNumber": 1})
    assert [g["VpnGatewayId"] for g in listed["VpnGateways"]["VpnGateway"]] == [gw]
    Provider.read(listed["VpnGateways"]["VpnGateway"][0], GATEWAY_READ)
    zones = tf.post("DescribeVpnGatewayAvailableZones", {"Spec": "10M"})
    assert all(isinstance(z["ZoneId"], str) for z in zones["AvailableZoneIdList"])
    # Delete (VpnGatewayId in the query), then the read answers the NotFound code the provider knows.
    tf.post("DeleteVpnGateway", {"ClientToken": "tf-d1"}, query={"VpnGatewayId": gw})
    wait_for(lambda: tf.code("DescribeVpnGateway", {"VpnGatewayId": gw}), "InvalidVpnGatewayInstanceId.NotFound")


def test_alicloud_vpn_customer_gateway_without_asn_has_no_null(server):
    tf = Provider(server)
    ip = next_ip()
    cgw = tf.post("CreateCustomerGateway", {"ClientToken": "tf-c1", "IpAddress": ip, "Description": "tf cgw", "Name": "tf-cgw"})["CustomerGatewayId"]
    obj = Provider.read(tf.post("DescribeCustomerGateway", {}, query={"CustomerGatewayId": cgw}), CGW_READ)
    assert obj["IpAddress"] == ip and "Asn" not in obj, obj
    with_asn = tf.post("CreateCustomerGateway", {"IpAddress": next_ip(), "Asn": "65001"})["CustomerGatewayId"]
    assert tf.post("DescribeCustomerGateway", {}, query={"CustomerGatewayId": with_asn})["Asn"] == 65001
    tf.post("ModifyCustomerGatewayAttribute", {"CustomerGatewayId": cgw, "ClientToken": "tf-c2", "Name": "tf-cgw-2", "Description": "tf cgw 2"})
    obj = Provider.read(tf.post("DescribeCustomerGateway", {}, query={"CustomerGatewayId": cgw}), CGW_READ)
    assert (obj["Name"], obj["Description"]) == ("tf-cgw-2", "tf cgw 2")
    listed = tf.post("DescribeCustomerGateways", {"CustomerGatewayId": cgw, "PageSize": 50})
    assert [c["CustomerGatewayId"] for c in listed["CustomerGateways"]["CustomerGateway"]] == [cgw]
    assert "Asn" not in listed["CustomerGateways"]["CustomerGateway"][0]
    for c in (cgw, with_asn):
        tf.post("DeleteCustomerGateway", {"CustomerGatewayId": c, "ClientToken": "tf-c3" + c})
    assert tf.error("DescribeCustomerGateway", {}, query={"CustomerGatewayId": cgw}) == ("InvalidCustomerGatewayInstanceId.NotFound", 404)


def test_alicloud_vpn_connection_single_and_dual_tunnel(server):
    tf = Provider(server)
    vpc, vsw, _ = network(tf)
    gw = gateway(tf, vpc, vsw, ClientToken="tf-gw-2")
    cgw = tf.post("CreateCustomerGateway", {"IpAddress": next_ip()})["CustomerGatewayId"]
    # resourceAliCloudVPNGatewayVpnConnectionCreate: JSON configs, comma-separated subnets, a list of Tags.
    vco = tf.post("CreateVpnConnection", {
        "ClientToken": "tf-vco-1", "VpnGatewayId": gw, "CustomerGatewayId": cgw, "LocalSubnet": "10.1.0.0/16,10.3.0.0/16",
        "RemoteSubnet": "192.168.0.0/16", "EffectImmediately": False, "EnableDpd": True, "EnableNatTraversal": True, "Name": "tf-vco",
        "AutoConfigRoute": True,
        "IkeConfig": '{"Psk":"tf-psk-1","IkeVersion":"ikev2","IkeMode":"main","IkeEncAlg":"aes","IkeAuthAlg":"sha1","IkePfs":"group2","IkeLifetime":86400}',
        "IpsecConfig": '{"IpsecEncAlg":"aes","IpsecAuthAlg":"sha1","IpsecPfs":"group2","IpsecLifetime":86400}',
        "HealthCheckConfig": '{"enable":false,"dip":"","sip":"","interval":3,"retry":3}',
        "Tags": [{"Key": "Created", "Value": "TF"}],
    })["VpnConnectionId"]
    wait_for(lambda: tf.post("DescribeVpnConnection", {}, query={"VpnConnectionId": vco, "RegionId": "cn-hangzhou"})["State"], "active")
    obj = Provider.read(tf.post("DescribeVpnConnection", {}, query={"VpnConnectionId": vco, "RegionId": "cn-hangzhou"}), CONNECTION_READ)
    assert obj["IkeConfig"]["Psk"] == "tf-psk-1" and sorted(obj["LocalSubnet"].split(",")) == ["10.1.0.0/16", "10.3.0.0/16"]
    assert tags_of(obj) == {"Created": "TF"} and obj["AttachType"] == "VPNGW"
    tf.post("ModifyVpnConnectionAttribute", {"ClientToken": "tf-vco-2", "Name": "tf-vco-2", "RemoteSubnet": "192.168.0.0/16,172.16.0.0/12"},
            query={"VpnConnectionId": vco})
    wait_for(lambda: tf.post("DescribeVpnConnection", {}, query={"VpnConnectionId": vco})["State"], "active")
    obj = Provider.read(tf.post("DescribeVpnConnection", {}, query={"VpnConnectionId": vco}), CONNECTION_READ)
    assert obj["Name"] == "tf-vco-2" and sorted(obj["RemoteSubnet"].split(",")) == ["172.16.0.0/12", "192.168.0.0/16"]
    listed = tf.post("DescribeVpnConnections", {"VpnGatewayId": gw, "PageSize": 50})
    assert [c["VpnConnectionId"] for c in listed["VpnConnections"]["VpnConnection"]] == [vco]
    tf.post("DeleteVpnConnection", {"ClientToken": "tf-vco-3"}, query={"VpnConnectionId": vco})
    wait_for(lambda: tf.code("DescribeVpnConnection", {}, query={"VpnConnectionId": vco}), "InvalidVpnConnectionInstanceId.NotFound")

    # A dual-tunnel gateway: TunnelOptionsSpecification as the nested list the provider builds.
    vpc2, vsw2, dr2 = network(tf, dual=True)
    gw2 = gateway(tf, vpc2, vsw2, dr2, ClientToken="tf-gw-3", EnableSsl=False)
    cgws = [tf.post("CreateCustomerGateway", {"IpAddress": next_ip(), "Asn": "65010"})["CustomerGatewayId"] for _ in range(2)]
    tunnel = lambda cgw, role, cidr: {  # noqa: E731
        "CustomerGatewayId": cgw, "Role": role, "EnableDpd": True, "EnableNatTraversal": True,
        "TunnelBgpConfig": {"LocalAsn": 65100, "TunnelCidr": cidr, "LocalBgpIp": cidr.replace(".0/30", ".1")},
        "TunnelIkeConfig": {"IkeAuthAlg": "sha1", "IkeEncAlg": "aes", "IkeLifetime": 86400, "IkeMode": "main", "IkePfs": "group2",
                            "IkeVersion": "ikev2", "Psk": f"psk-{role}"},
        "TunnelIpsecConfig": {"IpsecAuthAlg": "sha1", "IpsecEncAlg": "aes", "IpsecLifetime": 86400, "IpsecPfs": "group2"},
    }
    vco2 = tf.post("CreateVpnConnection", {
        "ClientToken": "tf-vco-4", "VpnGatewayId": gw2, "LocalSubnet": "10.1.0.0/16", "RemoteSubnet": "192.168.0.0/16", "EnableTunnelsBgp": True,
        "TunnelOptionsSpecification": [tunnel(cgws[0], "master", "169.254.10.0/30"), tunnel(cgws[1], "slave", "169.254.20.0/30")],
    })["VpnConnectionId"]
    wait_for(lambda: tf.post("DescribeVpnConnection", {}, query={"VpnConnectionId": vco2})["State"], "active")
    obj = tf.post("DescribeVpnConnection", {}, query={"VpnConnectionId": vco2})
    tunnels = obj["TunnelOptionsSpecification"]["TunnelOptions"]
    for t in tunnels:
        # The SDK model's types: the tunnel's flags, lifetimes and ASNs are strings.
        Provider.read(t, {"CustomerGatewayId": str, "EnableDpd": str, "EnableNatTraversal": str, "InternetIp": str, "Role": str, "State": str,
                          "Status": str, "TunnelId": str, "ZoneNo": str, "TunnelBgpConfig": dict, "TunnelIkeConfig": dict, "TunnelIpsecConfig": dict,
                          "TunnelBgpConfig.LocalAsn": str, "TunnelBgpConfig.TunnelCidr": str, "TunnelIkeConfig.Psk": str,
                          "TunnelIkeConfig.IkeLifetime": str, "TunnelIpsecConfig.IpsecLifetime": str})
    assert [(t["Role"], t["TunnelIkeConfig"]["Psk"], t["TunnelBgpConfig"]["TunnelCidr"]) for t in tunnels] == [
        ("master", "psk-master", "169.254.10.0/30"), ("slave", "psk-slave", "169.254.20.0/30")]


def test_alicloud_vpn_route_entry_and_pbr_route_entry(server):
    tf = Provider(server)
    vpc, vsw, _ = network(tf)
    gw = gateway(tf, vpc, vsw, ClientToken="tf-gw-4")
    cgw = tf.post("CreateCustomerGateway", {"IpAddress": next_ip()})["CustomerGatewayId"]
    vco = tf.post("CreateVpnConnection", {"VpnGatewayId": gw, "CustomerGatewayId": cgw, "LocalSubnet": "0.0.0.0/0", "RemoteSubnet": "0.0.0.0/0"})["VpnConnectionId"]
    wait_for(lambda: tf.post("DescribeVpnGateway", {"VpnGatewayId": gw})["Status"], "active")

    def route(dest):
        """VpcService.DescribeVpnRouteEntry: paged DescribeVpnRouteEntries, matched by NextHop and RouteDest."""
        entries = tf.post("DescribeVpnRouteEntries", {"VpnGatewayId": gw, "PageNumber": 1, "PageSize": 20})["VpnRouteEntries"]["VpnRouteEntry"]
        found = [e for e in entries if e["NextHop"] == vco and e["RouteDest"] == dest]
        return Provider.read(found[0], ROUTE_READ) if found else None

    created = tf.retrying("CreateVpnRouteEntry", {"VpnGatewayId": gw, "RouteDest": "192.168.10.0/24", "NextHop": vco, "Weight": 0, "PublishVpc": True,
                                              "ClientToken": "tf-r1"})
    assert f'{created["VpnInstanceId"]}:{created["NextHop"]}:{created["RouteDest"]}' == f"{gw}:{vco}:192.168.10.0/24", "the provider's id"
    wait_for(lambda: route("192.168.10.0/24")["State"], "published")
    # Update: PublishVpnRouteEntry (RouteType dbr), ModifyVpnRouteEntryWeight.
    tf.retrying("PublishVpnRouteEntry", {"VpnGatewayId": gw, "RouteDest": "192.168.10.0/24", "NextHop": vco, "PublishVpc": False, "RouteType": "dbr", "ClientToken": "tf-r2"})
    wait_for(lambda: route("192.168.10.0/24")["State"], "normal")
    tf.retrying("ModifyVpnRouteEntryWeight", {"VpnGatewayId": gw, "RouteDest": "192.168.10.0/24", "NextHop": vco, "Weight": 0, "NewWeight": 100, "ClientToken": "tf-r3"})
    wait_for(lambda: route("192.168.10.0/24")["Weight"], 100)
    tf.retrying("DeleteVpnRouteEntry", {"VpnGatewayId": gw, "RouteDest": "192.168.10.0/24", "NextHop": vco, "Weight": 100, "ClientToken": "tf-r4"})
    wait_for(lambda: route("192.168.10.0/24"), None)
    # A retried delete finds it gone: the code the provider tolerates.
    wait_for(lambda: tf.post("DescribeVpnGateway", {"VpnGatewayId": gw})["Status"], "active")
    assert tf.error("DeleteVpnRouteEntry", {"VpnGatewayId": gw, "RouteDest": "192.168.10.0/24", "NextHop": vco, "Weight": 100}) == ("InvalidRouteEntry.NotFound", 404)

    def pbr(src, dest):
        entries = tf.post("DescribeVpnPbrRouteEntries", {"VpnGatewayId": gw, "PageNumber": 1, "PageSize": 20})["VpnPbrRouteEntries"]["VpnPbrRouteEntry"]
        found = [e for e in entries if e["NextHop"] == vco and e["RouteSource"] == src and e["RouteDest"] == dest]
        return Provider.read(found[0], PBR_READ) if found else None

    tf.retrying("CreateVpnPbrRouteEntry", {"VpnGatewayId": gw, "RouteSource": "10.1.0.0/24", "RouteDest": "192.168.20.0/24", "NextHop": vco, "Weight": 0,
                                       "PublishVpc": True, "ClientToken": "tf-p1"})
    wait_for(lambda: pbr("10.1.0.0/24", "192.168.20.0/24")["State"], "published")
    tf.retrying("PublishVpnRouteEntry", {"VpnGatewayId": gw, "RouteSource": "10.1.0.0/24", "RouteDest": "192.168.20.0/24", "NextHop": vco, "PublishVpc": False,
                                     "RouteType": "pbr"})
    wait_for(lambda: pbr("10.1.0.0/24", "192.168.20.0/24")["State"], "normal")
    tf.retrying("ModifyVpnPbrRouteEntryWeight", {"VpnGatewayId": gw, "RouteSource": "10.1.0.0/24", "RouteDest": "192.168.20.0/24", "NextHop": vco, "Weight": 0,
                                             "NewWeight": 100})
    wait_for(lambda: pbr("10.1.0.0/24", "192.168.20.0/24")["Weight"], 100)
    tf.retrying("DeleteVpnPbrRouteEntry", {"VpnGatewayId": gw, "RouteSource": "10.1.0.0/24", "RouteDest": "192.168.20.0/24", "NextHop": vco, "Weight": 100})
    wait_for(lambda: pbr("10.1.0.0/24", "192.168.20.0/24"), None)


def test_alicloud_vpn_ipsec_server_and_ssl_vpn(server):
    tf = Provider(server)
    vpc, vsw, _ = network(tf)
    gw = gateway(tf, vpc, vsw, ClientToken="tf-gw-5")
    sid = tf.retrying("CreateIpsecServer", {"ClientIpPool": "172.30.0.0/16", "IpSecServerName": "tf-ips", "LocalSubnet": "10.1.0.0/16", "Psk": "tf-psk-99",
                                        "PskEnabled": True, "VpnGatewayId": gw, "ClientToken": "tf-i1",
                                        "IkeConfig": '{"IkeVersion":"ikev2","IkeMode":"main","IkeEncAlg":"aes","IkeAuthAlg":"sha1","IkePfs":"group2","IkeLifetime":86400}',
                                        "IpsecConfig": '{"IpsecEncAlg":"aes","IpsecAuthAlg":"sha1","IpsecPfs":"group2","IpsecLifetime":86400}'})["IpsecServerId"]

    def ipsec_server():
        """VpcService.DescribeVpnIpsecServer: ListIpsecServers with IpsecServerId as a list."""
        found = tf.post("ListIpsecServers", {"IpsecServerId": [sid]})["IpsecServers"]
        return Provider.read(found[0], IPSEC_SERVER_READ) if found else None

    obj = ipsec_server()
    assert (obj["IpsecServerName"], obj["Psk"], obj["PskEnabled"], obj["VpnGatewayId"]) == ("tf-ips", "tf-psk-99", True, gw)
    wait_for(lambda: tf.post("DescribeVpnGateway", {"VpnGatewayId": gw})["Status"], "active")
    tf.retrying("UpdateIpsecServer", {"IpsecServerId": sid, "IpsecServerName": "tf-ips-2", "ClientIpPool": "172.31.0.0/16", "ClientToken": "tf-i2"})
    wait_for(lambda: ipsec_server()["IpsecServerName"], "tf-ips-2")
    assert ipsec_server()["ClientIpPool"] == "172.31.0.0/16"
    wait_for(lambda: tf.post("DescribeVpnGateway", {"VpnGatewayId": gw})["Status"], "active")
    tf.retrying("DeleteIpsecServer", {"IpsecServerId": sid, "ClientToken": "tf-i3"})
    wait_for(ipsec_server, None)

    wait_for(lambda: tf.post("DescribeVpnGateway", {"VpnGatewayId": gw})["Status"], "active")
    ssl = tf.retrying("CreateSslVpnServer", {"VpnGatewayId": gw, "Name": "tf-ssl", "ClientIpPool": "192.168.100.0/24", "LocalSubnet": "10.1.0.0/16",
                                         "Proto": "UDP", "Cipher": "AES-128-CBC", "Port": 1194, "Compress": False, "EnableMultiFactorAuth": False})["SslVpnServerId"]
    server_obj = tf.post("DescribeSslVpnServers", {"SslVpnServerId": ssl})["SslVpnServers"]["SslVpnServer"][0]
    Provider.read(server_obj, {"Name": str, "ClientIpPool": str, "LocalSubnet": str, "Proto": str, "Cipher": str, "Port": int, "Compress": bool,
                               "Connections": int, "MaxConnections": int, "InternetIp": str, "VpnGatewayId": str, "EnableMultiFactorAuth": bool})
    wait_for(lambda: tf.post("DescribeVpnGateway", {"VpnGatewayId": gw})["Status"], "active")
    cert = tf.retrying("CreateSslVpnClientCert", {"SslVpnServerId": ssl, "Name": "tf-cert"})["SslVpnClientCertId"]
    got = tf.post("DescribeSslVpnClientCert", {"SslVpnClientCertId": cert})
    Provider.read(got, {"Name": str, "SslVpnServerId": str, "Status": str, "CaCert": str, "ClientCert": str, "ClientKey": str, "ClientConfig": str})
    tf.retrying("ModifySslVpnClientCert", {"SslVpnClientCertId": cert, "Name": "tf-cert-2"})
    assert tf.post("DescribeSslVpnClientCert", {"SslVpnClientCertId": cert})["Name"] == "tf-cert-2"
    tf.retrying("DeleteSslVpnClientCert", {"SslVpnClientCertId": cert})
    assert tf.error("DescribeSslVpnClientCert", {"SslVpnClientCertId": cert})[1] == 404
    wait_for(lambda: tf.post("DescribeVpnGateway", {"VpnGatewayId": gw})["Status"], "active")
    tf.retrying("DeleteSslVpnServer", {"SslVpnServerId": ssl})
    wait_for(lambda: tf.post("DescribeSslVpnServers", {"SslVpnServerId": ssl})["TotalCount"], 0)
