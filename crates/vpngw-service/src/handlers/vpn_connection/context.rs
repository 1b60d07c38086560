//! What a write's rules read from the store: the gateway with its kind and zones, the customer
//! gateway, the sibling connections, and the rules that compare a connection with them.

#[allow(unused_imports)]
use super::*;
use vpngw_model::rules::{self, ModelError};

/// What a connection's checks need to know about its gateway.
pub(super) struct GatewayView {
    pub(super) rec: Record,
    pub(super) gw: VpnGateway,
    pub(super) national: bool,
    /// Zone of the gateway's vSwitch and of its disaster-recovery vSwitch.
    pub(super) zones: (String, String),
}

pub(super) async fn gateway_view(req: &Req<'_>, id: &str) -> Result<GatewayView, ApiError> {
    let rec = load(req, Kind::VpnGateway, id, Code::InvalidVpnGatewayId).await?;
    let gw: VpnGateway = doc(&rec)?;
    let zone = |vsw: &str| {
        let vsw = vsw.to_string();
        async move {
            match req.store().get(Kind::VSwitch, &req.scope, &vsw).await.map_err(store_error)? {
                Some(r) => Ok::<String, ApiError>(doc::<VSwitch>(&r)?.zone_id),
                None => Ok(String::new()),
            }
        }
    };
    let zones = (zone(&gw.vswitch_id).await?, zone(gw.dr_vswitch_id.as_deref().unwrap_or("")).await?);
    Ok(GatewayView { national: gw.vpn_type == "NationalStandard", rec, gw, zones })
}

pub(super) async fn customer_gateway(req: &Req<'_>, id: &str) -> Result<CustomerGateway, ApiError> {
    doc(&load(req, Kind::CustomerGateway, id, Code::InvalidCustomerGatewayId).await?)
}

/// The gateway's other connections that the rules compare `c` with: those sharing a customer
/// gateway, and those with BGP. Returns them and whether any other connection has BGP.
pub(super) async fn related(req: &Req<'_>, gateway_id: &str, c: &VpnConnection, except: &str) -> Result<(Vec<VpnConnection>, bool), ApiError> {
    let list = |field: &str, value: &str| {
        let q = ListQuery { parent: Some(gateway_id.to_string()), fields: vec![(field.to_string(), value.to_string())], limit: u32::MAX as u64, ..Default::default() };
        async move { req.store().list(Kind::VpnConnection, &req.scope, &q).await.map_err(store_error) }
    };
    let mut found: HashMap<String, VpnConnection> = HashMap::new();
    for cgw in &c.cgw_ids {
        for r in list("cgw_ids[]", cgw).await?.items.iter().filter(|r| r.id != except) {
            found.insert(r.id.clone(), doc(r)?);
        }
    }
    let mut others_bgp = false;
    for r in list("routing", RoutingMode::Bgp.as_str()).await?.items.iter().filter(|r| r.id != except) {
        others_bgp = true;
        found.insert(r.id.clone(), doc(r)?);
    }
    Ok((found.into_values().collect(), others_bgp))
}

/// The rules that compare a connection with the gateway's other connections (the model's
/// [`rules::siblings`]), in the error table's codes.
pub(super) fn check_against_siblings(c: &VpnConnection, others: &[VpnConnection]) -> Result<(), ApiError> {
    rules::siblings(c, others).map_err(model_error)
}

/// The code of the one error table for a rule of the model.
pub(crate) fn model_error(e: ModelError) -> ApiError {
    match e {
        ModelError::SameCustomerGatewayOtherIke => ApiError::new(Code::SameVpnAndCgwDifferentIkeConfigs),
        ModelError::SameCustomerGatewaySelectorsOverlap => ApiError::new(Code::SameVpnAndCgwTrafficSelectorOverlap),
        ModelError::TunnelCidrInUse => ApiError::msg(Code::IllegalTunnelCidr, "The specified TunnelCidr is invalid: another IPsec connection of the VPN gateway uses it."),
        ModelError::TunnelCidrsOverlap => ApiError::new(Code::IllegalTunnelCidr),
        ModelError::BgpOffBesideBgp => ApiError::new(Code::IllegalEnableBgp),
        // Outside a route's action (which maps these by its own context): a conflict.
        ModelError::RouteExists => ApiError::new(Code::RouteAlreadyExists),
        ModelError::RouteSameWeight => ApiError::new(Code::RouteConflict),
    }
}

/// Every tunnel's BGP follows EnableTunnelsBgp, and its IKE and BGP settings must suit its
/// customer gateway.
pub(super) async fn check_tunnels(req: &Req<'_>, c: &mut VpnConnection, national: bool) -> Result<(), ApiError> {
    let enable = c.enable_tunnels_bgp;
    for t in c.tunnels.iter_mut() {
        t.bgp.enable = enable;
        check_ike(&t.ike, national, "TunnelIkeConfig")?;
        let cgw = customer_gateway(req, &t.customer_gateway_id).await?;
        check_bgp(&mut t.bgp, &cgw)?;
    }
    Ok(())
}

/// The customer gateways of these connections, in one read.
pub(crate) async fn load_cgws(req: &Req<'_>, conns: &[&VpnConnection]) -> Result<HashMap<String, CustomerGateway>, ApiError> {
    let mut ids: Vec<String> = conns.iter().flat_map(|c| c.cgw_ids.iter().cloned()).collect();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let q = ListQuery { limit: ids.len() as u64, ids, ..Default::default() };
    let page = req.store().list(Kind::CustomerGateway, &req.scope, &q).await.map_err(store_error)?;
    page.items.iter().map(|r| Ok((r.id.clone(), doc(r)?))).collect()
}
