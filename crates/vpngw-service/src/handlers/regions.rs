//! DescribeRegions, DescribeZones, DescribeVpnGatewayAvailableZones: answered from the
//! configured region list; CheckVpnBgpEnabled from what the data plane can run.

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

/// CheckVpnBgpEnabled: whether IPsec-VPN connections of the region can run BGP here. True when
/// this process's data plane runs tunnels with BIRD at hand, or when a fleet of gateway agents
/// runs them (each agent runs BIRD for its gateways' sessions; an agent without it reports each
/// session's failure in its BGP status). False for a pure API endpoint (`[dataplane] mode =
/// "none"` and no agents), where sessions could never come up.
pub async fn check_vpn_bgp_enabled(req: &mut Req<'_>) -> HandlerResult {
    region(req)?;
    let fleet = req.svc.store.shared() && req.svc.store.agents().await.map_err(crate::store_error)?.iter().any(|a| a.alive());
    Ok(obj(json!({ "BgpEnabled": req.svc.config.bgp_speaker || fleet })))
}
