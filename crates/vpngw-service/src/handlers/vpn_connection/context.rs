//! What a connection's write reads, in one step before any rule runs: its gateway with the VPC
//! around it (routes, servers, zones), the customer gateways the write names, the sibling
//! connections its rules compare with, and how many connections the gateway has. Everything
//! after that step is a pure function of what it read, and the write ends in one commit.

#[allow(unused_imports)]
use super::*;
use crate::handlers::neighbourhood::{model_error, neighbourhood, route_quotas, Read};
use crate::handlers::Lifecycle;
use vpngw_model::id::VpnGatewayId;
use vpngw_model::rules;

/// A connection's gateway and all that the connection's rules compare with.
pub(super) struct GatewayView {
    pub(super) rec: Record,
    pub(super) gw: VpnGateway,
    pub(super) id: VpnGatewayId,
    pub(super) national: bool,
    /// Zone of the gateway's vSwitch and of its disaster-recovery vSwitch.
    pub(super) zones: (String, String),
    /// The VPC: every gateway's routes and client pools.
    pub(super) vpc: Read,
    /// The customer gateways the write names or the connection uses (those that exist).
    pub(super) cgws: HashMap<CustomerGatewayId, CustomerGateway>,
    /// The gateway's connections that share one of those customer gateways, or have BGP.
    pub(super) siblings: Vec<(String, VpnConnection)>,
    /// How many connections the gateway has.
    pub(super) connections: u64,
    /// Whether its connections are dual-tunnel.
    pub(super) dual: bool,
    /// The view of a VPN attachment: `gw` is the attachment's own data-plane gateway
    /// ([`vpngw_model::connection::attachment_gateway_id`]), which is no record of the store.
    pub(super) attachment: bool,
}

/// Reads gateway `id` and what its connections' rules need, for a write that concerns the
/// customer gateways `cgw_ids`.
pub(super) async fn gateway_view(req: &Req<'_>, id: &str, cgw_ids: &[String]) -> Result<GatewayView, ApiError> {
    let rec = load(req, Kind::VpnGateway, id, Code::InvalidVpnGatewayId).await?;
    let gw: VpnGateway = doc(&rec)?;
    let vpc = neighbourhood(req, &rec).await?;
    let zones = (vpc.n.zone(&gw.vswitch_id).to_string(), gw.dr_vswitch_id.as_ref().map(|v| vpc.n.zone(v).to_string()).unwrap_or_default());
    let cgws = cgws_by_id(req, cgw_ids).await?;
    let mut siblings: HashMap<String, VpnConnection> = HashMap::new();
    let list = |field: &str, value: &str| {
        let q = ListQuery { parent: Some(rec.id.clone()), fields: vec![(field.to_string(), value.to_string())], limit: u32::MAX as u64, ..Default::default() };
        async move { req.store().list(Kind::VpnConnection, &req.scope, &q).await.map_err(store_error) }
    };
    for cgw in cgws.keys() {
        for r in list("cgw_ids[]", cgw).await?.items {
            siblings.insert(r.id.clone(), doc(&r)?);
        }
    }
    for r in list("routing", RoutingMode::Bgp.as_str()).await?.items {
        siblings.insert(r.id.clone(), doc(&r)?);
    }
    let connections = req.store().count(Kind::VpnConnection, &req.scope, Some(&rec.id)).await.map_err(store_error)?;
    let dual = gw.dr_vswitch_id.is_some();
    Ok(GatewayView {
        national: gw.vpn_type == "NationalStandard",
        id: VpnGatewayId::new(rec.id.as_str()),
        rec,
        gw,
        zones,
        vpc,
        cgws,
        siblings: siblings.into_iter().collect(),
        connections,
        dual,
        attachment: false,
    })
}

/// The view of VPN attachment `conn_id` whose data-plane gateway is `gw` (its public addresses):
/// no VPC, no sibling connections, its own routes (VCO routes and AutoConfigRoute's), and the
/// region's first two zones for its tunnels.
pub(super) async fn attachment_view(req: &Req<'_>, conn_id: &str, gw: VpnGateway, dual: bool, cgw_ids: &[String]) -> Result<GatewayView, ApiError> {
    use vpngw_model::neighbourhood::{Neighbourhood, Side};
    let gid = vpngw_model::connection::attachment_gateway_id(conn_id);
    let rec = Record {
        kind: Kind::VpnGateway,
        id: gid.clone(),
        account: req.scope.account,
        region: req.scope.region.clone(),
        parent: None,
        status: Lifecycle::Active.as_str().into(),
        created_ms: 0,
        doc: to_doc(&gw),
    };
    let q = ListQuery { parent: Some(gid.clone()), limit: u32::MAX as u64, ..Default::default() };
    let routes = req.store().list(Kind::VpnRoute, &req.scope, &q).await.map_err(store_error)?.items;
    let mut n = Neighbourhood::default();
    n.gateways.push(Side {
        id: VpnGatewayId::new(gid.as_str()),
        gateway: gw.clone(),
        routes: routes.iter().map(|r| Ok((r.id.clone(), doc(r)?))).collect::<Result<_, ApiError>>()?,
        ipsec_pool: None,
        ssl_pool: None,
    });
    let vpc = Read { n, records: routes.into_iter().map(|r| (r.id.clone(), r)).collect() };
    let region = req.svc.config.region(&req.scope.region).ok_or_else(|| ApiError::new(Code::InvalidRegionId))?;
    let zone = |i: usize| region.zones.get(i).or(region.zones.first()).map(|z| z.id.clone()).unwrap_or_default();
    let cgws = cgws_by_id(req, cgw_ids).await?;
    Ok(GatewayView { national: false, id: VpnGatewayId::new(gid.as_str()), rec, gw, zones: (zone(0), zone(1)), vpc, cgws, siblings: Vec::new(), connections: 0, dual, attachment: true })
}

/// The view a write to connection `rec` (as `c`) reads: its gateway's, or its own as an
/// attachment.
pub(super) async fn view_of(req: &Req<'_>, rec: &Record, c: &VpnConnection, cgw_ids: &[String]) -> Result<GatewayView, ApiError> {
    match rec.parent.as_deref() {
        Some(gw) => gateway_view(req, gw, cgw_ids).await,
        None => attachment_view(req, &rec.id, c.attachment_gateway(), c.dual(), cgw_ids).await,
    }
}

impl GatewayView {
    /// A customer gateway the write names: it must exist.
    pub(super) fn customer_gateway(&self, id: &str) -> Result<&CustomerGateway, ApiError> {
        self.cgws.get(id).ok_or_else(|| ApiError::new(Code::InvalidCustomerGatewayId))
    }

    /// The rules that compare connection `id` (as `c`) with the gateway's other connections
    /// (the model's [`rules::siblings`]). Answers whether any other has BGP.
    pub(super) fn check_siblings(&self, id: &str, c: &VpnConnection) -> Result<bool, ApiError> {
        let others: Vec<VpnConnection> = self.siblings.iter().filter(|(sid, _)| sid != id).map(|(_, o)| o.clone()).collect();
        rules::siblings(c, &others).map_err(model_error)?;
        Ok(others.iter().any(VpnConnection::bgp_enabled))
    }

    /// Every tunnel's BGP follows EnableTunnelsBgp, and its IKE and BGP settings must suit its
    /// customer gateway.
    pub(super) fn check_tunnels(&self, c: &mut VpnConnection) -> Result<(), ApiError> {
        let enable = c.enable_tunnels_bgp;
        for t in c.tunnels.iter_mut() {
            t.bgp.enable = enable;
            check_ike(&t.ike, self.national, "TunnelIkeConfig")?;
            check_bgp(&mut t.bgp, self.customer_gateway(&t.customer_gateway_id)?)?;
        }
        Ok(())
    }

    /// The mutations that make connection `conn_id`'s system routes match `c` (`None`: the
    /// connection goes, and every route to it with it): the model's plan, as records.
    pub(super) fn route_mutations(&self, req: &Req<'_>, conn_id: &str, c: Option<&VpnConnection>) -> Result<Vec<Mutation>, ApiError> {
        let changes = self.vpc.n.connection_routes(&self.id, conn_id, c, route_quotas(req)).map_err(model_error)?;
        let mut muts: Vec<Mutation> = changes.delete.into_iter().map(|id| Mutation::Delete { kind: Kind::VpnRoute, id }).collect();
        for mut w in changes.add {
            // An attachment has no VPC route table to publish to.
            w.publish_vpc &= !self.attachment;
            muts.push(Mutation::Put(new_record(req, Kind::VpnRoute, &ids::new_id("vrt"), Some(self.rec.id.clone()), w.state(), to_doc(&w))));
        }
        Ok(muts)
    }

    /// The customer gateways of connection `c`.
    pub(super) fn cgws_of(&self, c: &VpnConnection) -> HashMap<CustomerGatewayId, CustomerGateway> {
        c.cgw_ids.iter().filter_map(|id| self.cgws.get(id).map(|g| (id.clone(), g.clone()))).collect()
    }
}

/// The customer gateways of the caller with these ids, in one read (missing ones are absent).
async fn cgws_by_id(req: &Req<'_>, ids: &[String]) -> Result<HashMap<CustomerGatewayId, CustomerGateway>, ApiError> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids.dedup();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let q = ListQuery { limit: ids.len() as u64, ids, ..Default::default() };
    let page = req.store().list(Kind::CustomerGateway, &req.scope, &q).await.map_err(store_error)?;
    page.items.iter().map(|r| Ok((CustomerGatewayId::new(r.id.as_str()), doc(r)?))).collect()
}

/// The customer gateways of these connections, in one read.
pub(crate) async fn load_cgws(req: &Req<'_>, conns: &[&VpnConnection]) -> Result<HashMap<CustomerGatewayId, CustomerGateway>, ApiError> {
    let ids: Vec<String> = conns.iter().flat_map(|c| c.cgw_ids.iter().map(|x| x.to_string())).collect();
    cgws_by_id(req, &ids).await
}

/// The customer gateways a create or modify names: CustomerGatewayId, and each
/// TunnelOptionsSpecification's (a malformed parameter names none here; its check says why).
pub(super) fn named_cgws(p: &Params) -> Vec<String> {
    let mut ids: Vec<String> = p.opt("CustomerGatewayId").map(str::to_string).into_iter().collect();
    ids.extend(p.objects("TunnelOptionsSpecification").unwrap_or_default().iter().filter_map(|s| s.opt("CustomerGatewayId").map(str::to_string)));
    ids
}
