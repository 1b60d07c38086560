//! The minimum of VPC and vSwitch that VPN gateways need: CreateVpc, DescribeVpcs, DeleteVpc,
//! CreateVSwitch, DescribeVSwitches, DeleteVSwitch.

use serde_json::json;
use vpngw_api::{ApiError, Code};
pub use vpngw_model::vpc::{VSwitch, Vpc};
use vpngw_store::{Kind, ListQuery, Mutation};

use super::{default_resource_group, doc, iso_time, list_with_tags, load, new_record, obj, put_tagged, tags_json, to_doc};
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
        let v: Vpc = doc(r)?;
        let switches = req.store().list(Kind::VSwitch, &req.scope, &ListQuery { parent: Some(r.id.clone()), limit: 1000, ..Default::default() }).await.map_err(store_error)?;
        items.push(json!({
            "VpcId": r.id, "RegionId": r.region, "Status": r.status, "VpcName": v.name, "Description": v.description,
            "CidrBlock": v.cidr_block, "CreationTime": iso_time(r.created_ms), "IsDefault": false, "VRouterId": v.vrouter_id,
            "ResourceGroupId": v.resource_group_id, "OwnerId": r.account,
            "VSwitchIds": {"VSwitchId": switches.items.iter().map(|s| s.id.clone()).collect::<Vec<_>>()},
            "RouterTableIds": {"RouterTableIds": [v.route_table_id]},
            "Tags": tags_json(tags.get(&r.id)),
        }));
    }
    Ok(obj(json!({"TotalCount": page.total, "PageNumber": number, "PageSize": size, "Vpcs": {"Vpc": items}})))
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
    let mut route_tables: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut items = Vec::with_capacity(page.items.len());
    for r in &page.items {
        let v: VSwitch = doc(r)?;
        let net: ipnet::Ipv4Net = v.cidr_block.parse().map_err(|_| ApiError::internal())?;
        // Alibaba reserves the first three and the last address of every vSwitch.
        let usable = (1u64 << (32 - net.prefix_len())).saturating_sub(4);
        let vpc_id = r.parent.clone().unwrap_or_default();
        let route_table = match route_tables.get(&vpc_id) {
            Some(t) => t.clone(),
            None => {
                let t = match req.store().get(Kind::Vpc, &req.scope, &vpc_id).await.map_err(store_error)? {
                    Some(vpc) => doc::<Vpc>(&vpc)?.route_table_id,
                    None => String::new(),
                };
                route_tables.insert(vpc_id.clone(), t.clone());
                t
            }
        };
        items.push(json!({
            "VSwitchId": r.id, "VpcId": vpc_id, "Status": r.status, "CidrBlock": v.cidr_block, "ZoneId": v.zone_id,
            "AvailableIpAddressCount": usable, "Description": v.description, "VSwitchName": v.name,
            "CreationTime": iso_time(r.created_ms), "IsDefault": false, "OwnerId": r.account,
            "ResourceGroupId": default_resource_group(r.account), "ShareType": "Sharing",
            "RouteTable": {"RouteTableId": route_table, "RouteTableType": "System"},
            "Tags": tags_json(tags.get(&r.id)),
        }));
    }
    Ok(obj(json!({"TotalCount": page.total, "PageNumber": number, "PageSize": size, "VSwitches": {"VSwitch": items}})))
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
