//! The read before a write: a gateway's VPC as its rules see it ([`Neighbourhood`]), in one read
//! of the store, and the codes of the error table for what those rules refuse.

use std::collections::HashMap;

use vpngw_api::{ApiError, Code};
use vpngw_model::id::VpnGatewayId;
use vpngw_model::ipsec_server::IpsecServer;
use vpngw_model::neighbourhood::{Neighbourhood, RouteQuotas, Side};
use vpngw_model::rules::{ModelError, Pool};
use vpngw_model::ssl_vpn::SslVpnServer;
use vpngw_model::vpc::{VSwitch, Vpc};
use vpngw_store::{Kind, Record};

use super::doc;
use crate::{store_error, Req};

/// A neighbourhood and the records it was read from (which a write changes and puts back).
pub(crate) struct Read {
    pub(crate) n: Neighbourhood,
    pub(crate) records: HashMap<String, Record>,
}

impl Read {
    pub(crate) fn record(&self, id: &str) -> Result<Record, ApiError> {
        self.records.get(id).cloned().ok_or_else(ApiError::internal)
    }
}

/// The VPC of gateway `gw` with every gateway of it, their routes and servers' client pools, and
/// its vSwitches' zones: one read (the store's `family`). Within a write scope it sees what
/// earlier writes staged.
pub(crate) async fn neighbourhood(req: &Req<'_>, gw: &Record) -> Result<Read, ApiError> {
    let Some(vpc) = gw.parent.as_deref() else { return Ok(Read { n: Neighbourhood::default(), records: HashMap::new() }) };
    let kinds = [Kind::VSwitch, Kind::VpnGateway, Kind::VpnRoute, Kind::IpsecServer, Kind::SslVpnServer];
    let family = req.store().family(&req.scope, vpc, &kinds).await.map_err(store_error)?;
    let mut n = Neighbourhood::default();
    for r in family.iter().filter(|r| r.kind == Kind::VpnGateway) {
        n.gateways.push(Side { id: VpnGatewayId::new(r.id.as_str()), gateway: doc(r)?, routes: Vec::new(), ipsec_pool: None, ssl_pool: None });
    }
    for r in &family {
        let side = || n.gateways.iter().position(|s| Some(s.id.as_str()) == r.parent.as_deref());
        match r.kind {
            Kind::Vpc => n.vpc_cidr = doc::<Vpc>(r)?.cidr_block,
            Kind::VSwitch => {
                n.zones.insert(r.id.as_str().into(), doc::<VSwitch>(r)?.zone_id);
            }
            Kind::VpnRoute => {
                if let Some(i) = side() {
                    n.gateways[i].routes.push((r.id.clone(), doc(r)?));
                }
            }
            Kind::IpsecServer => {
                if let Some(i) = side() {
                    n.gateways[i].ipsec_pool = Some(doc::<IpsecServer>(r)?.client_ip_pool);
                }
            }
            Kind::SslVpnServer => {
                if let Some(i) = side() {
                    n.gateways[i].ssl_pool = Some(doc::<SslVpnServer>(r)?.client_ip_pool);
                }
            }
            _ => {}
        }
    }
    Ok(Read { n, records: family.into_iter().map(|r| (r.id.clone(), r)).collect() })
}

/// The client pool of a server of kind `own` on gateway `gw` against its VPC (one read, then
/// the model's rule).
pub(crate) async fn check_client_pool(req: &Req<'_>, gw: &Record, pool: &str, own: Pool) -> Result<(), ApiError> {
    neighbourhood(req, gw).await?.n.client_pool_ok(&VpnGatewayId::new(gw.id.as_str()), pool, own).map_err(model_error)
}

/// The service's limits on routes, as the model's rules take them.
pub(crate) fn route_quotas(req: &Req<'_>) -> RouteQuotas {
    let q = &req.svc.config.quotas;
    RouteQuotas { dbr_per_gateway: q.dbr_routes_per_gateway, pbr_per_gateway: q.pbr_routes_per_gateway, vpc_table: q.vpc_vpn_route_entries }
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
        ModelError::RouteIntoPool(kind) | ModelError::PoolIntoRoute(kind) => ApiError::new(route_conflict(kind)),
        ModelError::ClientPoolOverlap(pool) => ApiError::arg(Code::IllegalClientIpPool, &pool),
        ModelError::VpcRouteConflict => ApiError::new(Code::VpcRouteConflict),
        ModelError::VpcRouteQuota => ApiError::new(Code::VpcRouteQuota),
        ModelError::PolicyRouteQuota { existing, new, max } => {
            ApiError::msg(Code::PolicyRouteQuota, format!("The maximum number of policy-based routes is exceeded. Existing routes: {existing}. Routes to be created: {new}. Maximum routes: {max}."))
        }
        ModelError::DbrRouteQuota => ApiError::new(Code::DbrRoutesQuotaFull),
        // The caller names the parameter (see `setting_error`); alone, the field.
        ModelError::InvalidSetting(field) => ApiError::invalid(field),
        ModelError::IpsecAuthAlg => ApiError::new(Code::NotSupportIpsecAuthAlg),
        ModelError::IpsecPfs => ApiError::new(Code::NotSupportIpsecPfs),
        ModelError::MissingTunnelCidr => ApiError::new(Code::MissingTunnelCidr),
        ModelError::MissingPeerAsn => ApiError::new(Code::MissingCustomerGatewayAsn),
        ModelError::BadTunnelCidr => ApiError::new(Code::IllegalTunnelCidr),
        ModelError::LocalBgpIpOutside => ApiError::new(Code::IllegalLocalBgpIp),
    }
}

/// A rule about the settings of parameter `at` (IkeConfig, TunnelIkeConfig, ...): an invalid
/// field is named under it.
pub(crate) fn setting_error(at: &str) -> impl Fn(ModelError) -> ApiError + '_ {
    move |e| match e {
        ModelError::InvalidSetting(field) => ApiError::invalid(&format!("{at}.{field}")),
        other => model_error(other),
    }
}

/// What a route that meets a client pool of this kind of server is answered with: an IPsec
/// server's (OperationFailed.RouteConflictWithIPsecServer) or an SSL-VPN server's
/// (VpnRouteEntry.ConflictSSL).
fn route_conflict(kind: Pool) -> Code {
    match kind {
        Pool::Ssl => Code::RouteConflictSsl,
        Pool::Ipsec => Code::RouteConflictWithIpsecServer,
    }
}
