//! Test doubles for whole-reconciler scenarios without root: a charon that keeps definitions
//! and SAs in memory (its peers answer or stay silent as a test says), an intent source over
//! an in-memory [`Intent`], and a sink that records what the reconciler reports.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use async_trait::async_trait;
use serde_json::json;
use tokio::sync::{mpsc, Notify};
use vpngw_model::connection::{NegotiationStatus, VpnConnection};
use vpngw_model::diagnosis::DiagnoseItem;
use vpngw_model::gateway::VpnGateway;
use vpngw_plane::{Intent, IntentSource, Observation, ObservationSink, PendingDiagnosis};

use crate::capabilities::Capabilities;
use crate::charon::{Charon, Connector, Disconnected};
use crate::ipsec::{ConnDef, SaState};
use crate::reconciler::GatewayIntent;
use crate::vici::{Element, Message};

/// Every algorithm the API maps to, except `missing` (charon's names, `DES_CBC`).
pub fn capabilities_without(missing: &[&str]) -> Capabilities {
    let sec = |names: &[&str]| Message(names.iter().filter(|n| !missing.contains(n)).map(|n| (n.to_string(), Element::Value(b"fake".to_vec()))).collect());
    let algs = Message::new()
        .section("encryption", sec(&["AES_CBC", "DES_CBC", "3DES_CBC"]))
        .section("integrity", sec(&["HMAC_MD5_96", "HMAC_SHA1_96", "HMAC_SHA2_256_128", "HMAC_SHA2_384_192", "HMAC_SHA2_512_256"]))
        .section("prf", sec(&["PRF_HMAC_MD5", "PRF_HMAC_SHA1", "PRF_HMAC_SHA2_256", "PRF_HMAC_SHA2_384", "PRF_HMAC_SHA2_512"]))
        .section("dh", sec(&["MODP_768", "MODP_1024", "MODP_1536", "MODP_2048"]));
    Capabilities::from_messages(&algs, &Message::new().list("plugins", ["fake", "kernel-libipsec"]))
}

pub fn full_capabilities() -> Capabilities {
    capabilities_without(&[])
}

/// A gateway at 198.51.100.1 in a VPC of 10.1.0.0/16, as its intent reads.
pub fn plane_gateway(id: &str, conns: Vec<(String, VpnConnection)>) -> vpngw_plane::GatewayIntent {
    vpngw_plane::GatewayIntent {
        id: id.into(),
        gw: vpn_gateway(),
        vpc_cidrs: vec!["10.1.0.0/16".parse().unwrap()],
        conns,
        routes: Vec::new(),
        servers: Vec::new(),
        ssl: Vec::new(),
        frozen: None,
        sides: vpngw_plane::Sides::BOTH,
    }
}

/// The same gateway as the reconciler holds it.
pub fn gateway(id: &str, conns: Vec<(String, VpnConnection)>) -> GatewayIntent {
    GatewayIntent::build(plane_gateway(id, conns), &cgw_addresses(), &HashMap::new(), &HashMap::new())
}

/// The intent of these gateways.
pub fn intent(gateways: Vec<vpngw_plane::GatewayIntent>) -> Intent {
    Intent { gateway_ids: gateways.iter().map(|g| g.id.clone()).collect(), gateways, customer_gateways: cgw_addresses(), ..Default::default() }
}

/// A destination route of a gateway.
pub fn route(dest: &str, next_hop: &str, weight: u32) -> vpngw_model::route::VpnRoute {
    serde_json::from_value(json!({
        "route_kind": "dbr", "route_dest": dest, "route_source": "", "next_hop": next_hop, "weight": weight, "priority": 10,
        "publish_vpc": true, "description": "", "overlay_mode": "Ipsec", "entry_type": "custom", "origin": "",
    }))
    .unwrap()
}

pub fn vpn_gateway() -> VpnGateway {
    serde_json::from_value(json!({
        "name": "gw", "description": "", "vswitch_id": "vsw-1", "dr_vswitch_id": null, "bandwidth": 10, "enable_ipsec": true, "enable_ssl": false,
        "ssl_connections": 5, "vpn_type": "Normal", "charge_type": "POSTPAY", "period": null, "auto_pay": false, "internet_ip": "198.51.100.1",
        "dr_internet_ip": null, "intranet_ip": "10.1.0.250", "business_status": "Normal", "auto_propagate": false, "enable_bgp": false,
        "end_ms": 0, "resource_group_id": "rg", "order_id": 1,
    }))
    .unwrap()
}

/// Customer gateway `cgw-N` is at 203.0.113.N.
pub fn cgw_addresses() -> HashMap<String, String> {
    (1..=20).map(|n| (format!("cgw-{n}"), format!("203.0.113.{n}"))).collect()
}

/// A single-tunnel connection `id` to customer gateway `cgw` (10.1.0.0/16 ⇄ 10.2.0.0/24,
/// IKEv2, aes/sha1/group2).
pub fn connection(id: &str, cgw: &str, immediately: bool) -> (String, VpnConnection) {
    let c = serde_json::from_value(json!({
        "name": id, "customer_gateway_id": cgw, "cgw_ids": [cgw],
        "local_subnet": ["10.1.0.0/16"], "remote_subnet": ["10.2.0.0/24"],
        "effect_immediately": immediately, "auto_config_route": false, "enable_dpd": true, "enable_nat_traversal": true,
        "remote_ca_certificate": "",
        "ike": {"psk": "secret", "ike_version": "ikev2", "ike_mode": "main", "ike_enc_alg": "aes", "ike_auth_alg": "sha1", "ike_pfs": "group2", "ike_lifetime": 86400, "local_id": "198.51.100.1", "remote_id": "203.0.113.1"},
        "ipsec": {"ipsec_enc_alg": "aes", "ipsec_auth_alg": "sha1", "ipsec_pfs": "group2", "ipsec_lifetime": 3600},
        "bgp": {"enable": false, "local_asn": 45104, "tunnel_cidr": "", "local_bgp_ip": ""},
        "health": {"enable": false, "sip": "", "dip": "", "interval": 3, "retry": 3, "policy": "revoke_route"},
        "enable_tunnels_bgp": false, "tunnels": [], "status": "ike_sa_not_established",
        "internet_ip": "198.51.100.1", "zone_no": "z", "resource_group_id": "rg", "negotiation_generation": 1,
    }))
    .unwrap();
    (id.to_string(), c)
}

/// A dual-tunnel connection: master `<id>-m` to `cgw_m`, slave `<id>-s` to `cgw_s`.
pub fn dual_connection(id: &str, cgw_m: &str, cgw_s: &str) -> (String, VpnConnection) {
    let (_, mut c) = connection(id, "", true);
    let tunnel = |tid: String, role: &str, cgw: &str, ip: &str| {
        serde_json::from_value(json!({
            "tunnel_id": tid, "role": role, "customer_gateway_id": cgw, "internet_ip": ip, "zone_no": "z", "enable_dpd": true, "enable_nat_traversal": true,
            "remote_ca_certificate": "", "ike": c.ike, "ipsec": c.ipsec, "bgp": c.bgp, "status": "ike_sa_not_established",
        }))
        .unwrap()
    };
    c.tunnels = vec![tunnel(format!("tun-{id}-m"), "master", cgw_m, "198.51.100.1"), tunnel(format!("tun-{id}-s"), "slave", cgw_s, "198.51.100.2")];
    c.cgw_ids = vec![cgw_m.into(), cgw_s.into()];
    (id.to_string(), c)
}

/// One fake charon's state.
#[derive(Default)]
pub struct CharonState {
    pub loaded: BTreeMap<String, ConnDef>,
    /// IKE_SAs by definition name: (unique id, installed children).
    pub sas: BTreeMap<String, Vec<(String, Vec<String>)>>,
    next_id: u32,
    /// Peers (by address) that do not answer.
    pub silent: HashSet<String>,
    /// What it has.
    pub caps: Option<Capabilities>,
    /// Bumped by a restart: connections made before it fail once.
    pub generation: u32,
    /// Every command received, as `command name` (for counting).
    pub calls: Vec<String>,
}

impl CharonState {
    /// The charon restarts: every definition and SA is gone.
    pub fn restart(&mut self) {
        self.loaded.clear();
        self.sas.clear();
        self.generation += 1;
    }
    /// A peer stops answering: its SAs go (DPD), and it answers no initiation.
    pub fn silence(&mut self, peer: &str) {
        self.silent.insert(peer.to_string());
        let gone: Vec<String> = self.loaded.values().filter(|d| d.remote_addr == peer).map(|d| d.name.clone()).collect();
        for n in gone {
            self.sas.remove(&n);
        }
    }
    pub fn revive(&mut self, peer: &str) {
        self.silent.remove(peer);
    }
    /// Unique ids of every IKE_SA.
    pub fn ike_ids(&self) -> Vec<String> {
        self.sas.values().flatten().map(|(id, _)| id.clone()).collect()
    }
    fn initiate(&mut self, ike: &str, child: Option<&str>) {
        let Some(d) = self.loaded.get(ike) else { return };
        if self.silent.contains(&d.remote_addr) {
            return;
        }
        let children: Vec<String> = match child {
            Some(c) => vec![c.to_string()],
            None => d.children.iter().map(|c| c.name.clone()).collect(),
        };
        let sas = self.sas.entry(ike.to_string()).or_default();
        if sas.is_empty() {
            self.next_id += 1;
            sas.push((self.next_id.to_string(), Vec::new()));
        }
        for c in children {
            if !sas[0].1.contains(&c) {
                sas[0].1.push(c);
            }
        }
    }
}

/// Fake charons by socket; every connection shares its charon's state.
#[derive(Default, Clone)]
pub struct FakeCharons(pub Arc<Mutex<HashMap<PathBuf, Arc<Mutex<CharonState>>>>>);

impl FakeCharons {
    pub fn at(&self, socket: &Path) -> Arc<Mutex<CharonState>> {
        self.0.lock().unwrap().entry(socket.to_path_buf()).or_default().clone()
    }
}

struct FakeCharon {
    state: Arc<Mutex<CharonState>>,
    generation: u32,
}

impl FakeCharon {
    fn state(&self, call: &str) -> Result<std::sync::MutexGuard<'_, CharonState>> {
        let mut s = self.state.lock().unwrap();
        if s.generation != self.generation {
            return Err(Disconnected("the fake charon restarted".into()).into());
        }
        s.calls.push(call.to_string());
        Ok(s)
    }
}

#[async_trait]
impl Charon for FakeCharon {
    async fn capabilities(&mut self) -> Result<Capabilities> {
        Ok(self.state("get-algorithms")?.caps.clone().unwrap_or_else(full_capabilities))
    }
    async fn loaded(&mut self) -> Result<crate::plan::Loaded> {
        Ok(self.state("list-conns")?.loaded.iter().map(|(n, d)| (n.clone(), d.learned_names())).collect())
    }
    async fn unload(&mut self, name: &str) -> Result<()> {
        let mut s = self.state("unload-conn")?;
        s.loaded.remove(name);
        s.sas.remove(name);
        Ok(())
    }
    async fn load(&mut self, defs: &[&ConnDef]) -> Result<()> {
        let mut s = self.state("load-conn")?;
        for d in defs {
            s.loaded.insert(d.name.clone(), (*d).clone());
        }
        Ok(())
    }
    async fn sas(&mut self) -> Result<HashMap<String, SaState>> {
        let s = self.state("list-sas")?;
        Ok(s.sas
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, v)| {
                let st = SaState {
                    present: true,
                    ike_established: true,
                    established_secs: 10,
                    established_count: v.len() as u32,
                    established: v.iter().map(|(id, _)| (10, id.clone())).collect(),
                    installed: v.iter().flat_map(|(_, c)| c.clone()).collect(),
                    child_ids: v.iter().flat_map(|(id, c)| c.iter().map(move |ch| (ch.clone(), format!("{id}/{ch}")))).collect(),
                    ike_ids: v.iter().map(|(id, _)| id.clone()).collect(),
                    ..Default::default()
                };
                (name.clone(), st)
            })
            .collect())
    }
    async fn terminate_child(&mut self, child_id: &str) {
        let Some((ike, child)) = child_id.split_once('/') else { return };
        if let Ok(mut s) = self.state("terminate") {
            for v in s.sas.values_mut() {
                for (id, children) in v.iter_mut().filter(|(id, _)| id == ike) {
                    let _ = id;
                    children.retain(|c| c != child);
                }
            }
        }
    }

    async fn terminate(&mut self, ike_id: &str) {
        if let Ok(mut s) = self.state("terminate") {
            for v in s.sas.values_mut() {
                v.retain(|(id, _)| id != ike_id);
            }
        }
    }
    async fn initiate(&mut self, ike: &str, child: Option<&str>) {
        if let Ok(mut s) = self.state("initiate") {
            s.initiate(ike, child);
        }
    }
}

#[async_trait]
impl Connector for FakeCharons {
    async fn connect(&self, socket: &Path) -> Result<Box<dyn Charon>> {
        let state = self.at(socket);
        let generation = state.lock().unwrap().generation;
        Ok(Box::new(FakeCharon { state, generation }))
    }
    async fn listen(&self, _socket: &Path, _events: &Notify, _traps: &mpsc::UnboundedSender<(PathBuf, u32)>) -> Result<()> {
        std::future::pending().await
    }
}

/// Intent held in memory, and the store's side of observations: like the service, it writes
/// what the reconciler observes into the connections the next pass reads.
#[derive(Default)]
pub struct FakeStore {
    pub intent: Mutex<Intent>,
    pub changed: Notify,
    pub observed: Mutex<HashMap<String, Observation>>,
    pub converged: Mutex<HashMap<String, String>>,
}

impl FakeStore {
    /// The status last observed (`None`: none yet).
    pub fn status(&self, id: &str) -> Option<NegotiationStatus> {
        self.observed.lock().unwrap().get(id).and_then(|o| o.status)
    }
    pub fn tunnel_status(&self, conn: &str, tunnel: &str) -> Option<NegotiationStatus> {
        self.observed.lock().unwrap().get(conn).and_then(|o| o.tunnels.get(tunnel).copied())
    }
    pub fn plane(&self, id: &str) -> String {
        self.observed.lock().unwrap().get(id).and_then(|o| o.plane.clone()).unwrap_or_default()
    }
    /// Replaces the intent, keeping what was observed of connections that stay.
    pub fn set(&self, mut intent: Intent) {
        let observed = self.observed.lock().unwrap().clone();
        for g in &mut intent.gateways {
            for (id, c) in &mut g.conns {
                if let Some(o) = observed.get(id) {
                    apply(c, o);
                }
            }
        }
        *self.intent.lock().unwrap() = intent;
    }
}

fn apply(c: &mut VpnConnection, o: &Observation) {
    if let Some(s) = o.status {
        c.status = s;
    }
    for t in &mut c.tunnels {
        if let Some(s) = o.tunnels.get(&t.tunnel_id) {
            t.status = *s;
        }
    }
    if let Some(h) = &o.health {
        c.health_status = h.clone();
    }
}

#[async_trait]
impl IntentSource for FakeStore {
    async fn intent(&self) -> vpngw_plane::Result<Intent> {
        Ok(self.intent.lock().unwrap().clone())
    }
    async fn changed(&self) {
        self.changed.notified().await
    }
    async fn pending_diagnoses(&self) -> vpngw_plane::Result<Vec<PendingDiagnosis>> {
        Ok(Vec::new())
    }
    fn diagnoses_waiting(&self) {}
    fn open_secret(&self, _record: &str, _field: &str, sealed: &str) -> vpngw_plane::Result<String> {
        Ok(sealed.to_string())
    }
}

#[async_trait]
impl ObservationSink for FakeStore {
    async fn connection(&self, id: &str, o: &Observation) -> vpngw_plane::Result<bool> {
        for g in &mut self.intent.lock().unwrap().gateways {
            for (cid, c) in &mut g.conns {
                if cid == id {
                    apply(c, o);
                }
            }
        }
        Ok(self.observed.lock().unwrap().insert(id.to_string(), o.clone()).as_ref() != Some(o))
    }
    async fn ipsec_server(&self, _id: &str, _online: u32) -> vpngw_plane::Result<bool> {
        Ok(false)
    }
    async fn diagnosis(&self, _id: &str, _item: DiagnoseItem) -> vpngw_plane::Result<bool> {
        Ok(false)
    }
    async fn converged(&self, id: &str, digest: &str) -> vpngw_plane::Result<()> {
        self.converged.lock().unwrap().insert(id.to_string(), digest.to_string());
        Ok(())
    }
}
