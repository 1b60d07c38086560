//! DescribeRegions, DescribeZones, DescribeVpnGatewayAvailableZones: answered from the
//! configured region list.

use serde_json::json;
use vpngw_api::{ApiError, Code};

use super::obj;
use crate::{HandlerResult, Req};

pub async fn describe_regions(req: &mut Req<'_>) -> HandlerResult {
    let regions: Vec<_> = req.svc.config.regions.iter().map(|r| json!({"RegionId": r.id, "LocalName": r.local_name, "RegionEndpoint": req.svc.config.endpoint})).collect();
    Ok(obj(json!({ "Regions": { "Region": regions } })))
}

fn region<'a>(req: &'a Req<'_>) -> Result<&'a crate::config::Region, ApiError> {
    req.svc.config.region(&req.scope.region).ok_or_else(|| ApiError::new(Code::InvalidRegionId))
}

pub async fn describe_zones(req: &mut Req<'_>) -> HandlerResult {
    let zones: Vec<_> = region(req)?.zones.iter().map(|z| json!({"ZoneId": z.id, "LocalName": z.local_name, "ZoneType": "AvailabilityZone"})).collect();
    Ok(obj(json!({ "Zones": { "Zone": zones } })))
}

pub async fn describe_vpn_gateway_available_zones(req: &mut Req<'_>) -> HandlerResult {
    let zones: Vec<_> = region(req)?.zones.iter().map(|z| json!({"ZoneId": z.id, "ZoneName": z.local_name})).collect();
    Ok(obj(json!({ "RegionId": req.scope.region, "AvailableZoneIdList": zones })))
}
