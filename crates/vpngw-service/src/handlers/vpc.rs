//! The VPC and vSwitch actions a stack creates and reads before its VPN: CreateVpc,
//! DescribeVpcs, DescribeVpcAttribute, ModifyVpcAttribute, DeleteVpc, CreateVSwitch,
//! DescribeVSwitches, DescribeVSwitchAttributes, ModifyVSwitchAttribute, DeleteVSwitch, and
//! DescribeRouteTableList (each VPC's one system route table).
//!
//! vpngw has no IPv6, ClassicLink, CEN or DHCP options: their fields answer the truth (empty
//! lists, `false`), and a request to turn one on is refused with `OperationUnsupported.*`.

use serde_json::json;
use vpngw_api::{ApiError, Code};
pub use vpngw_model::vpc::{VSwitch, Vpc};
use vpngw_store::{Kind, ListQuery, Mutation};

use super::{default_resource_group, doc, iso_time, list_with_tags, load, load_tagged, new_record, obj, put_tagged, tags_json, to_doc};
use crate::validate::{self, cidr, opt_text, vpc_text};
use crate::{ids::new_id, store_error, HandlerResult, Req};

/// Address space a VPC may use: a /8 to /28 block that is not special-purpose.
fn vpc_cidr_allowed(net: ipnet::Ipv4Net) -> bool {
    let o = net.network().octets();
    (8..=28).contains(&net.prefix_len()) && o[0] != 0 && o[0] != 127 && o[0] < 224 && !(o[0] == 169 && o[1] == 254) && !(o[0] == 100 && (64..128).contains(&o[1]))
}

pub async fn create_vpc(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let block = match p.opt("CidrBlock") {
        Some(v) => cidr(v).filter(|n| vpc_cidr_allowed(*n)).ok_or_else(|| ApiError::new(Code::InvalidCidrBlock))?,
        None => "172.16.0.0/12".parse().expect("valid literal"),
    };
    let name = opt_text(p, "VpcName", |v| vpc_text(v, 128), Code::InvalidVpcName)?.unwrap_or("").to_string();
    let description = opt_text(p, "Description", |v| vpc_text(v, 256), Code::InvalidDescriptionMalformed)?.unwrap_or("").to_string();
    let tags = validate::tags(p, "Tag")?;
    let user_cidrs = user_cidrs(p)?;
    if p.opt_bool("EnableIpv6")? == Some(true) {
        return Err(ApiError::new(Code::Ipv6Unsupported));
    }
    let dns_hostname = p.opt_bool("EnableDnsHostname")?.unwrap_or(false);
    if req.store().count(Kind::Vpc, &req.scope, None).await.map_err(store_error)? >= req.svc.config.quotas.vpcs {
        return Err(ApiError::new(Code::ResourceQuotaFull));
    }
    req.dry_run()?;
    let id = new_id("vpc");
    let vpc = Vpc {
        name,
        description,
        cidr_block: block.to_string(),
        vrouter_id: new_id("vrt"),
        route_table_id: new_id("vtb"),
        resource_group_id: p.opt("ResourceGroupId").map(str::to_string).unwrap_or_else(|| default_resource_group(req.scope.account)),
        user_cidrs,
        dns_hostname,
    };
    let body = obj(json!({"VpcId": id, "VRouterId": vpc.vrouter_id, "RouteTableId": vpc.route_table_id, "ResourceGroupId": vpc.resource_group_id}));
    let rec = new_record(req, Kind::Vpc, &id, None, "Available", to_doc(&vpc));
    req.commit(put_tagged(req, rec, tags), body).await
}

pub async fn describe_vpcs(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let (offset, limit, number, size) = validate::paging(p)?;
    let mut q = ListQuery { offset, limit, tags: validate::tag_filters(p)?, ..Default::default() };
    if let Some(ids) = p.opt("VpcId") {
        q.ids = ids.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    }
    super::field_filters(&mut q, p, &[("VpcName", "name"), ("ResourceGroupId", "resource_group_id")]);
    if p.opt_bool("IsDefault")? == Some(true) {
        // vpngw never creates default VPCs.
        q.ids = vec![String::new()];
    }
    let (page, tags) = list_with_tags(req, Kind::Vpc, &q).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for r in &page.items {
        items.push(vpc_json(req, r, tags.get(&r.id)).await?);
    }
    Ok(obj(json!({"TotalCount": page.total, "PageNumber": number, "PageSize": size, "Vpcs": {"Vpc": items}})))
}

/// `UserCidr`: up to three comma-separated CIDR blocks.
fn user_cidrs(p: &vpngw_api::Params) -> Result<Vec<String>, ApiError> {
    let Some(v) = p.opt("UserCidr") else { return Ok(Vec::new()) };
    let list: Vec<&str> = v.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if list.len() > 3 {
        return Err(ApiError::invalid("UserCidr"));
    }
    list.iter().map(|c| cidr(c).map(|n| n.to_string()).ok_or_else(|| ApiError::invalid("UserCidr"))).collect()
}

/// One VPC as DescribeVpcs and DescribeVpcAttribute show it. The nested wrappers
/// (`SecondaryCidrBlocks`, `UserCidrs`, `VSwitchIds`, ...) are always objects, even when empty:
/// the Terraform provider type-asserts them.
async fn vpc_json(req: &Req<'_>, r: &vpngw_store::Record, tags: Option<&Vec<(String, String)>>) -> Result<serde_json::Value, ApiError> {
    let v: Vpc = doc(r)?;
    let switches = super::children(req, Kind::VSwitch, &r.id).await?;
    let gateways = req.store().count(Kind::VpnGateway, &req.scope, Some(&r.id)).await.map_err(store_error)?;
    let mut resources = Vec::new();
    if !switches.is_empty() {
        resources.push(json!({"ResourceType": "VSwitch", "ResourceCount": switches.len()}));
    }
    if gateways > 0 {
        resources.push(json!({"ResourceType": "VpnGateway", "ResourceCount": gateways}));
    }
    Ok(json!({
        "VpcId": r.id, "RegionId": r.region, "Status": r.status, "VpcName": v.name, "Description": v.description,
        "CidrBlock": v.cidr_block, "CreationTime": iso_time(r.created_ms), "IsDefault": false, "VRouterId": v.vrouter_id,
        "ResourceGroupId": v.resource_group_id, "OwnerId": r.account,
        "VSwitchIds": {"VSwitchId": switches.iter().rev().map(|s| s.id.clone()).collect::<Vec<_>>()},
        "RouterTableIds": {"RouterTableIds": [v.route_table_id]},
        "SecondaryCidrBlocks": {"SecondaryCidrBlock": []},
        "UserCidrs": {"UserCidr": v.user_cidrs},
        "Ipv6CidrBlock": "", "Ipv6CidrBlocks": {"Ipv6CidrBlock": []}, "EnabledIpv6": false,
        "ClassicLinkEnabled": false, "SupportIpv4Gateway": false, "Ipv4GatewayId": "",
        "DnsHostnameStatus": if v.dns_hostname { "ENABLED" } else { "DISABLED" },
        "DhcpOptionsSetId": "", "DhcpOptionsSetStatus": "",
        "AssociatedCens": {"AssociatedCen": []},
        "CloudResources": {"CloudResourceSetType": resources},
        "Tags": tags_json(tags),
    }))
}

pub async fn describe_vpc_attribute(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("VpcId")?.to_string();
    req.params.opt_bool("IsDefault")?;
    let (rec, tags) = load_tagged(req, Kind::Vpc, &id, Code::InvalidVpcId).await?;
    req.dry_run()?;
    Ok(obj(vpc_json(req, &rec, Some(&tags)).await?))
}

pub async fn modify_vpc_attribute(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let id = p.req("VpcId")?.to_string();
    let name = opt_text(p, "VpcName", |v| vpc_text(v, 128), Code::InvalidVpcName)?.map(str::to_string);
    let description = opt_text(p, "Description", |v| vpc_text(v, 256), Code::InvalidDescriptionMalformed)?.map(str::to_string);
    let block = p.opt("CidrBlock").map(|v| cidr(v).filter(|n| vpc_cidr_allowed(*n)).ok_or_else(|| ApiError::new(Code::InvalidCidrBlock))).transpose()?;
    if p.opt_bool("EnableIPv6")? == Some(true) || p.opt("Ipv6CidrBlock").is_some() || p.opt("Ipv6Isp").is_some() {
        return Err(ApiError::new(Code::Ipv6Unsupported));
    }
    let dns_hostname = p.opt_bool("EnableDnsHostname")?;
    let mut rec = load(req, Kind::Vpc, &id, Code::InvalidVpcId).await?;
    let mut v: Vpc = doc(&rec)?;
    if let Some(block) = block.filter(|b| b.to_string() != v.cidr_block) {
        // The primary block may change only to one that still holds every vSwitch, and not
        // under VPN gateways: their routes and client pools were checked against the old one.
        if req.store().count(Kind::VpnGateway, &req.scope, Some(&id)).await.map_err(store_error)? > 0 {
            return Err(ApiError::new(Code::DependencyViolationVpnGateway));
        }
        for s in super::children(req, Kind::VSwitch, &id).await? {
            let n: ipnet::Ipv4Net = doc::<VSwitch>(&s)?.cidr_block.parse().map_err(|_| ApiError::internal())?;
            if !block.contains(&n) {
                return Err(ApiError::new(Code::CidrBlockNotInVpc));
            }
        }
        v.cidr_block = block.to_string();
    }
    if let Some(n) = name {
        v.name = n;
    }
    if let Some(d) = description {
        v.description = d;
    }
    if let Some(d) = dns_hostname {
        v.dns_hostname = d;
    }
    rec.doc = to_doc(&v);
    req.commit(vec![Mutation::Put(rec)], Default::default()).await
}

/// DescribeRouteTableList: every VPC has one system route table (its `RouteTableId`, on its
/// vRouter) that all its vSwitches use; vpngw has no custom route tables.
pub async fn describe_route_table_list(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let (offset, limit, number, size) = validate::paging(p)?;
    let mut q = ListQuery { offset, limit, tags: validate::tag_filters(p)?, ..Default::default() };
    if let Some(id) = p.opt("VpcId") {
        q.ids = vec![id.to_string()];
    }
    super::field_filters(&mut q, p, &[("RouteTableId", "route_table_id"), ("RouterId", "vrouter_id"), ("ResourceGroupId", "resource_group_id")]);
    if p.opt("RouteTableType").is_some_and(|t| t != "System") || p.opt("RouterType").is_some_and(|t| t != "VRouter") || p.opt("RouteTableName").is_some_and(|n| !n.is_empty()) {
        q.ids = vec![String::new()];
    }
    let page = req.store().list(Kind::Vpc, &req.scope, &q).await.map_err(store_error)?;
    let mut items = Vec::with_capacity(page.items.len());
    for r in &page.items {
        let v: Vpc = doc(r)?;
        let switches = super::children(req, Kind::VSwitch, &r.id).await?;
        items.push(json!({
            "RouteTableId": v.route_table_id, "RouteTableName": "", "RouteTableType": "System", "RouterId": v.vrouter_id,
            "RouterType": "VRouter", "VpcId": r.id, "Status": "Available", "CreationTime": iso_time(r.created_ms),
            "Description": "", "ResourceGroupId": v.resource_group_id, "OwnerId": r.account, "AssociateType": "VSwitch",
            "RoutePropagationEnable": true,
            "VSwitchIds": {"VSwitchId": switches.iter().rev().map(|s| s.id.clone()).collect::<Vec<_>>()},
            "GatewayIds": {"GatewayIds": []},
            "Tags": {"Tag": []},
        }));
    }
    Ok(obj(json!({"TotalCount": page.total, "PageNumber": number, "PageSize": size, "RouterTableList": {"RouterTableListType": items}})))
}

pub async fn delete_vpc(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("VpcId")?.to_string();
    load(req, Kind::Vpc, &id, Code::InvalidVpcId).await?;
    if req.store().count(Kind::VpnGateway, &req.scope, Some(&id)).await.map_err(store_error)? > 0 {
        return Err(ApiError::new(Code::DependencyViolationVpnGateway));
    }
    if req.store().count(Kind::VSwitch, &req.scope, Some(&id)).await.map_err(store_error)? > 0 {
        return Err(ApiError::new(Code::DependencyViolationVSwitch));
    }
    req.dry_run()?;
    req.commit(vec![Mutation::Delete { kind: Kind::Vpc, id }], Default::default()).await
}

pub async fn create_vswitch(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let vpc_id = p.req("VpcId")?.to_string();
    let zone_id = p.req("ZoneId")?.to_string();
    let block = cidr(p.req("CidrBlock")?).filter(|n| (16..=29).contains(&n.prefix_len())).ok_or_else(|| ApiError::new(Code::InvalidCidrBlock))?;
    let name = opt_text(p, "VSwitchName", |v| vpc_text(v, 128), Code::InvalidVSwitchName)?.unwrap_or("").to_string();
    let description = opt_text(p, "Description", |v| vpc_text(v, 256), Code::InvalidDescriptionMalformed)?.unwrap_or("").to_string();
    let tags = validate::tags(p, "Tag")?;
    let region = req.svc.config.region(&req.scope.region).ok_or_else(|| ApiError::new(Code::InvalidRegionId))?;
    if !region.zones.iter().any(|z| z.id == zone_id) {
        return Err(ApiError::new(Code::InvalidZoneId));
    }
    let vpc_rec = load(req, Kind::Vpc, &vpc_id, Code::InvalidVpcId).await?;
    let vpc: Vpc = doc(&vpc_rec)?;
    let vpc_net: ipnet::Ipv4Net = vpc.cidr_block.parse().map_err(|_| ApiError::internal())?;
    if !vpc_net.contains(&block) {
        return Err(ApiError::new(Code::CidrBlockNotInVpc));
    }
    let siblings = req.store().list(Kind::VSwitch, &req.scope, &ListQuery { parent: Some(vpc_id.clone()), limit: u32::MAX as u64, ..Default::default() }).await.map_err(store_error)?;
    if siblings.total >= req.svc.config.quotas.vswitches_per_vpc {
        return Err(ApiError::new(Code::ResourceQuotaFull));
    }
    for s in &siblings.items {
        let other: VSwitch = doc(s)?;
        let n: ipnet::Ipv4Net = other.cidr_block.parse().map_err(|_| ApiError::internal())?;
        if n.contains(&block) || block.contains(&n) {
            return Err(ApiError::new(Code::CidrBlockOverlapped));
        }
    }
    let id = new_id("vsw");
    let vsw = VSwitch { name, description, cidr_block: block.to_string(), zone_id };
    let rec = new_record(req, Kind::VSwitch, &id, Some(vpc_id), "Available", to_doc(&vsw));
    req.commit(put_tagged(req, rec, tags), obj(json!({"VSwitchId": id}))).await
}

pub async fn describe_vswitches(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let (offset, limit, number, size) = validate::paging(p)?;
    let mut q = ListQuery { offset, limit, tags: validate::tag_filters(p)?, parent: p.opt("VpcId").map(str::to_string), ..Default::default() };
    if let Some(ids) = p.opt("VSwitchId") {
        q.ids = ids.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    }
    super::field_filters(&mut q, p, &[("ZoneId", "zone_id"), ("VSwitchName", "name")]);
    let (page, tags) = list_with_tags(req, Kind::VSwitch, &q).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for r in &page.items {
        items.push(vswitch_json(req, r, tags.get(&r.id)).await?);
    }
    Ok(obj(json!({"TotalCount": page.total, "PageNumber": number, "PageSize": size, "VSwitches": {"VSwitch": items}})))
}

/// One vSwitch as DescribeVSwitches and DescribeVSwitchAttributes show it.
async fn vswitch_json(req: &Req<'_>, r: &vpngw_store::Record, tags: Option<&Vec<(String, String)>>) -> Result<serde_json::Value, ApiError> {
    let v: VSwitch = doc(r)?;
    let net: ipnet::Ipv4Net = v.cidr_block.parse().map_err(|_| ApiError::internal())?;
    // Alibaba reserves the first three and the last address of every vSwitch.
    let usable = (1u64 << (32 - net.prefix_len())).saturating_sub(4);
    let vpc_id = r.parent.clone().unwrap_or_default();
    let (route_table, group) = match req.store().get(Kind::Vpc, &req.scope, &vpc_id).await.map_err(store_error)? {
        Some(vpc) => {
            let vpc = doc::<Vpc>(&vpc)?;
            (vpc.route_table_id, vpc.resource_group_id)
        }
        None => (String::new(), default_resource_group(r.account)),
    };
    Ok(json!({
        "VSwitchId": r.id, "VpcId": vpc_id, "Status": r.status, "CidrBlock": v.cidr_block, "ZoneId": v.zone_id,
        "AvailableIpAddressCount": usable, "Description": v.description, "VSwitchName": v.name,
        "CreationTime": iso_time(r.created_ms), "IsDefault": false, "OwnerId": r.account,
        "ResourceGroupId": group, "ShareType": "Sharing", "EnabledIpv6": false, "Ipv6CidrBlock": "", "NetworkAclId": "",
        "RouteTable": {"RouteTableId": route_table, "RouteTableType": "System"},
        "Tags": tags_json(tags),
    }))
}

pub async fn describe_vswitch_attributes(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("VSwitchId")?.to_string();
    let (rec, tags) = load_tagged(req, Kind::VSwitch, &id, Code::InvalidVSwitchId).await?;
    req.dry_run()?;
    Ok(obj(vswitch_json(req, &rec, Some(&tags)).await?))
}

pub async fn modify_vswitch_attribute(req: &mut Req<'_>) -> HandlerResult {
    let p = &req.params;
    let id = p.req("VSwitchId")?.to_string();
    let name = opt_text(p, "VSwitchName", |v| vpc_text(v, 128), Code::InvalidVSwitchName)?.map(str::to_string);
    let description = opt_text(p, "Description", |v| vpc_text(v, 256), Code::InvalidDescriptionMalformed)?.map(str::to_string);
    if p.opt_bool("EnableIPv6")? == Some(true) || p.opt("Ipv6CidrBlock").is_some() || p.opt("VpcIpv6CidrBlock").is_some() || p.opt("Ipv6CidrMask").is_some() {
        return Err(ApiError::new(Code::Ipv6Unsupported));
    }
    let mut rec = load(req, Kind::VSwitch, &id, Code::InvalidVSwitchId).await?;
    let mut v: VSwitch = doc(&rec)?;
    if let Some(n) = name {
        v.name = n;
    }
    if let Some(d) = description {
        v.description = d;
    }
    rec.doc = to_doc(&v);
    req.commit(vec![Mutation::Put(rec)], Default::default()).await
}

pub async fn delete_vswitch(req: &mut Req<'_>) -> HandlerResult {
    let id = req.params.req("VSwitchId")?.to_string();
    let rec = load(req, Kind::VSwitch, &id, Code::InvalidVSwitchId).await?;
    let vpc_id = rec.parent.clone().unwrap_or_default();
    let gws = req.store().list(Kind::VpnGateway, &req.scope, &ListQuery { parent: Some(vpc_id), limit: u32::MAX as u64, ..Default::default() }).await.map_err(store_error)?;
    if gws.items.iter().any(|g| g.doc["vswitch_id"] == id.as_str() || g.doc["dr_vswitch_id"] == id.as_str()) {
        return Err(ApiError::new(Code::DependencyViolationVpnGateway));
    }
    req.dry_run()?;
    req.commit(vec![Mutation::Delete { kind: Kind::VSwitch, id }], Default::default()).await
}
