"""alicloud_vpc, alicloud_vswitch and the alicloud_vpcs / alicloud_vswitches data sources, as the
Terraform provider drives them (see terraform.py): create, read, update, import, delete."""
from terraform import Provider, tags_of

VPC_READ = {
    "VpcId": str, "CidrBlock": str, "ClassicLinkEnabled": bool, "CreationTime": str, "Description": str, "DnsHostnameStatus": str,
    "EnabledIpv6": bool, "Ipv6CidrBlock": str, "RegionId": str, "IsDefault": bool, "ResourceGroupId": str, "VRouterId": str,
    "Status": str, "VpcName": str, "Ipv6CidrBlocks.Ipv6CidrBlock": list, "SecondaryCidrBlocks.SecondaryCidrBlock": list,
    "Tags.Tag": list, "UserCidrs.UserCidr": list, "OwnerId": int,
}
ROUTE_TABLE_READ = {"ResourceGroupId": str, "RouteTableId": str, "RouterId": str, "Description": str, "RouteTableName": str,
                    "RoutePropagationEnable": bool, "RouteTableType": str, "VpcId": str}
VSWITCH_READ = {"VSwitchId": str, "CidrBlock": str, "CreationTime": str, "Description": str, "Ipv6CidrBlock": str, "IsDefault": bool,
                "Status": str, "VSwitchName": str, "VpcId": str, "ZoneId": str, "Tags.Tag": list, "EnabledIpv6": bool,
                "AvailableIpAddressCount": int, "RouteTable.RouteTableId": str}


def system_route_table(tf, vpc_id):
    """DescribeVpcDescribeRouteTableList: the System table of this VPC."""
    body = tf.post("DescribeRouteTableList", {"VpcId": vpc_id})
    rows = [r for r in body["RouterTableList"]["RouterTableListType"] if r["RouteTableType"] == "System" and r["VpcId"] == vpc_id]
    assert len(rows) == 1, body
    return Provider.read(rows[0], ROUTE_TABLE_READ)


def test_alicloud_vpc_lifecycle(server):
    tf = Provider(server)
    # Create: CreateVpc with the provider's ClientToken, then wait for Available.
    created = tf.post("CreateVpc", {"ClientToken": "tf-CreateVpc-1", "CidrBlock": "172.16.0.0/12", "VpcName": "tf-vpc",
                                    "Description": "made by terraform", "UserCidr": "10.0.0.0/8"})
    vpc_id = created["VpcId"]
    again = tf.post("CreateVpc", {"ClientToken": "tf-CreateVpc-1", "CidrBlock": "172.16.0.0/12", "VpcName": "tf-vpc",
                                  "Description": "made by terraform", "UserCidr": "10.0.0.0/8"})
    assert again["VpcId"] == vpc_id, "a retried create returns the original VPC"
    obj = Provider.read(tf.post("DescribeVpcAttribute", {"VpcId": vpc_id}), VPC_READ)
    assert obj["Status"] == "Available" and obj["VpcName"] == "tf-vpc" and obj["CidrBlock"] == "172.16.0.0/12"
    assert obj["UserCidrs"]["UserCidr"] == ["10.0.0.0/8"] and obj["DnsHostnameStatus"] == "DISABLED"
    # Update of a new resource: tags through TagResources (ResourceType VPC).
    tf.post("TagResources", {"ResourceId.1": vpc_id, "ResourceType": "VPC", "Tag.1.Key": "env", "Tag.1.Value": "ci"})
    rt = system_route_table(tf, vpc_id)
    assert rt["RouterId"] == obj["VRouterId"] and rt["ResourceGroupId"] == obj["ResourceGroupId"]
    # A vSwitch shows up in the VPC's reads.
    vsw = tf.post("CreateVSwitch", {"ClientToken": "tf-CreateVSwitch-1", "CidrBlock": "172.16.1.0/24", "VpcId": vpc_id,
                                    "VSwitchName": "tf-vsw", "ZoneId": "cn-hangzhou-h"})["VSwitchId"]
    assert system_route_table(tf, vpc_id)
    obj = Provider.read(tf.post("DescribeVpcAttribute", {"VpcId": vpc_id}), VPC_READ)
    assert obj["VSwitchIds"]["VSwitchId"] == [vsw] and tags_of(obj) == {"env": "ci"}
    # Update: ModifyVpcAttribute with the changed fields only.
    tf.post("ModifyVpcAttribute", {"VpcId": vpc_id, "VpcName": "tf-vpc-2", "Description": "changed"})
    tf.post("ModifyVpcAttribute", {"VpcId": vpc_id, "EnableDnsHostname": "true"})
    obj = Provider.read(tf.post("DescribeVpcAttribute", {"VpcId": vpc_id}), VPC_READ)
    assert (obj["VpcName"], obj["Description"], obj["DnsHostnameStatus"]) == ("tf-vpc-2", "changed", "ENABLED")
    assert tf.error("ModifyVpcAttribute", {"VpcId": vpc_id, "EnableIPv6": "true"}) == ("OperationUnsupported.Ipv6", 400)
    assert tf.error("ModifyVpcAttribute", {"VpcId": vpc_id, "CidrBlock": "192.168.0.0/16"}) == ("InvalidCidrBlock.Mismatch", 400)
    tf.post("UnTagResources", {"ResourceId.1": vpc_id, "ResourceType": "VPC", "TagKey.1": "env"})
    assert tags_of(tf.post("DescribeVpcAttribute", {"VpcId": vpc_id})) == {}
    # The data source: every wrapper is an object the provider type-asserts.
    listed = tf.post("DescribeVpcs", {"PageNumber": 1, "PageSize": 50, "VpcName": "tf-vpc-2"})
    assert listed["TotalCount"] == 1
    item = Provider.read(listed["Vpcs"]["Vpc"][0], {"SecondaryCidrBlocks": dict, "UserCidrs": dict, "VSwitchIds": dict, "VRouterId": str,
                                                    "CreationTime": str, "IsDefault": bool, "Status": str, "VpcId": str})
    assert item["UserCidrs"]["UserCidr"] == ["10.0.0.0/8"] and item["SecondaryCidrBlocks"]["SecondaryCidrBlock"] == []
    # Delete: the vSwitch first (DependencyViolation.VSwitch is what the provider retries on).
    assert tf.error("DeleteVpc", {"VpcId": vpc_id, "ClientToken": "tf-DeleteVpc-1"})[0] == "DependencyViolation.VSwitch"
    tf.post("DeleteVSwitch", {"VSwitchId": vsw})
    tf.post("DeleteVpc", {"VpcId": vpc_id, "ClientToken": "tf-DeleteVpc-2", "ForceDelete": "false"})
    # Gone reads as 404, which the provider's NotFoundError takes for "deleted".
    assert tf.error("DescribeVpcAttribute", {"VpcId": vpc_id}) == ("InvalidVpcId.NotFound", 404)
    # DescribeRouteTableList of a VPC that is gone is an empty list (the provider's NotFound).
    assert tf.post("DescribeRouteTableList", {"VpcId": vpc_id})["RouterTableList"]["RouterTableListType"] == []


def test_alicloud_vswitch_lifecycle(server):
    tf = Provider(server)
    vpc_id = tf.post("CreateVpc", {"CidrBlock": "10.0.0.0/8"})["VpcId"]
    vsw = tf.post("CreateVSwitch", {"ClientToken": "tf-CreateVSwitch-2", "CidrBlock": "10.8.0.0/16", "VpcId": vpc_id,
                                    "VSwitchName": "tf-sw", "Description": "d1", "ZoneId": "cn-hangzhou-i"})["VSwitchId"]
    # Read: DescribeVSwitchAttributes with VSwitchId in the query and RegionId in the body.
    obj = Provider.read(tf.post("DescribeVSwitchAttributes", {}, query={"VSwitchId": vsw}), VSWITCH_READ)
    assert (obj["Status"], obj["VSwitchName"], obj["ZoneId"], obj["VpcId"], obj["CidrBlock"]) == ("Available", "tf-sw", "cn-hangzhou-i", vpc_id, "10.8.0.0/16")
    assert obj["AvailableIpAddressCount"] == 65532 and obj["EnabledIpv6"] is False
    tf.post("TagResources", {"ResourceId.1": vsw, "ResourceType": "VSWITCH", "Tag.1.Key": "team", "Tag.1.Value": "net"})
    assert tags_of(tf.post("DescribeVSwitchAttributes", {}, query={"VSwitchId": vsw})) == {"team": "net"}
    # Update.
    tf.post("ModifyVSwitchAttribute", {"VSwitchId": vsw, "VSwitchName": "tf-sw-2", "Description": "d2"})
    obj = Provider.read(tf.post("DescribeVSwitchAttributes", {}, query={"VSwitchId": vsw}), VSWITCH_READ)
    assert (obj["VSwitchName"], obj["Description"]) == ("tf-sw-2", "d2")
    assert tf.error("ModifyVSwitchAttribute", {"VSwitchId": vsw, "EnableIPv6": "true", "Ipv6CidrBlock": "1"}) == ("OperationUnsupported.Ipv6", 400)
    assert tf.error("ModifyVSwitchAttribute", {"VSwitchId": vsw, "VSwitchName": "http://x"})[0] == "InvalidVSwitchName.Malformed"
    # The data source.
    listed = tf.post("DescribeVSwitches", {"VpcId": vpc_id, "PageNumber": 1, "PageSize": 50})
    assert [s["VSwitchId"] for s in listed["VSwitches"]["VSwitch"]] == [vsw]
    # The other account sees none of it.
    assert Provider(server, "bob").error("DescribeVSwitchAttributes", {}, query={"VSwitchId": vsw}) == ("InvalidVSwitchId.NotFound", 404)
    # Delete, then the read answers 404 (the provider's wait for "").
    tf.post("DeleteVSwitch", {"VSwitchId": vsw})
    assert tf.error("DescribeVSwitchAttributes", {}, query={"VSwitchId": vsw}) == ("InvalidVSwitchId.NotFound", 404)
    assert tf.error("DeleteVSwitch", {"VSwitchId": vsw}) == ("InvalidVSwitchId.NotFound", 404)
    tf.post("DeleteVpc", {"VpcId": vpc_id})


def test_the_merged_map_is_signed_with_a_name_in_query_and_body(server):
    """RegionId in both the query and the body: signed once, with the body's value."""
    tf = Provider(server)
    body = tf.post("DescribeVpcs", {"PageSize": 1}, query={"RegionId": "cn-nowhere"})
    assert "Vpcs" in body
