//! Whole reconcile scenarios on the fake charon (no root, no daemon): what the reconciler loads,
//! unloads, initiates and reports when intent or charon changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use vpngw_plane::status;

use crate::config::{DataPlaneConfig, Mode};
use crate::fake::{self, CharonState, FakeCharons, FakeStore};
use crate::reconciler::{Reconciler, Timing};

const SOCKET: &str = "/fake/charon.vici";

struct World {
    charons: FakeCharons,
    state: Arc<Mutex<CharonState>>,
    /// The intent source and observation sink at once, as the service is.
    sink: Arc<FakeStore>,
    r: Arc<Reconciler>,
    dir: PathBuf,
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// No grace, no waiting between initiations: every pass decides at once.
fn eager() -> Timing {
    Timing { down_grace: Duration::ZERO, reinitiate: Duration::ZERO }
}

fn config(dir: &Path) -> DataPlaneConfig {
    DataPlaneConfig { mode: Mode::Host, vici_socket: PathBuf::from(SOCKET), run_dir: Some(dir.to_path_buf()), ..Default::default() }
}

impl World {
    fn new(timing: Timing) -> World {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!("vpngw-scenario-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)));
        let (charons, sink) = (FakeCharons::default(), Arc::new(FakeStore::default()));
        let state = charons.at(Path::new(SOCKET));
        let r = Reconciler::with(sink.clone(), sink.clone(), config(&dir), Arc::new(charons.clone()), timing).unwrap();
        World { charons, state, sink, r, dir }
    }
    /// vpngw restarts: a new reconciler, the same charon.
    fn restart_vpngw(&mut self) {
        self.r = Reconciler::with(self.sink.clone(), self.sink.clone(), config(&self.dir), Arc::new(self.charons.clone()), eager()).unwrap();
    }
    fn set(&self, gateways: Vec<vpngw_plane::GatewayIntent>) {
        self.sink.set(fake::intent(gateways));
    }
    async fn pass(&self) {
        self.r.pass().await.unwrap();
    }
    fn charon(&self) -> MutexGuard<'_, CharonState> {
        self.state.lock().unwrap()
    }
    fn loaded(&self) -> Vec<String> {
        self.charon().loaded.keys().cloned().collect()
    }
    fn calls(&self, name: &str) -> usize {
        self.charon().calls.iter().filter(|c| *c == name).count()
    }
}

fn one(conn: (String, vpngw_model::connection::VpnConnection)) -> Vec<vpngw_plane::GatewayIntent> {
    vec![fake::plane_gateway("vpn-1", vec![conn])]
}

#[tokio::test]
async fn a_new_connection_is_loaded_initiated_and_reported_established() {
    let w = World::new(eager());
    w.set(one(fake::connection("vco-a", "cgw-1", true)));
    w.pass().await;
    let loaded = w.loaded();
    assert_eq!(loaded.len(), 1);
    assert!(loaded[0].starts_with("vco-a-"));
    assert_eq!(w.sink.status("vco-a"), Some(status::IPSEC_UP), "read back from the SAs in the same pass");
    assert_eq!(w.sink.plane("vco-a"), "converged");
    let digest = w.sink.converged.lock().unwrap().get("vpn-1").cloned();
    assert!(digest.is_some(), "the gateway's digest is reported once applied");
}

#[tokio::test]
async fn a_modified_connection_is_renegotiated_and_a_deleted_one_is_gone() {
    let w = World::new(eager());
    let (id, mut c) = fake::connection("vco-a", "cgw-1", true);
    w.set(one((id.clone(), c.clone())));
    w.pass().await;
    let before = w.loaded();
    let ike_before = w.charon().ike_ids();
    c.ike.ike_enc_alg = "aes256".into();
    w.set(one((id.clone(), c.clone())));
    w.pass().await;
    let after = w.loaded();
    assert_eq!(after.len(), 1);
    assert_ne!(after, before, "a new fingerprint");
    assert_ne!(w.charon().ike_ids(), ike_before, "a new IKE_SA");
    assert_eq!(w.sink.status("vco-a"), Some(status::IPSEC_UP));
    assert!(w.charon().loaded.values().all(|d| d.ike_proposal.starts_with("aes256")));
    // A rename changes nothing negotiable: nothing is reloaded.
    c.name = "renamed".into();
    let loads = w.calls("load-conn");
    w.set(one((id, c)));
    w.pass().await;
    assert_eq!((w.loaded(), w.calls("load-conn")), (after, loads));
    // Deleted: unloaded, its SAs closed.
    w.set(vec![fake::plane_gateway("vpn-1", Vec::new())]);
    w.pass().await;
    assert!(w.loaded().is_empty() && w.charon().ike_ids().is_empty());
}

#[tokio::test]
async fn a_restarted_charon_gets_everything_back_without_an_api_call() {
    let w = World::new(eager());
    w.set(one(fake::connection("vco-a", "cgw-1", true)));
    w.pass().await;
    let before = w.loaded();
    w.charon().restart();
    w.pass().await;
    assert_eq!(w.loaded(), before, "reconnected and reloaded in the same pass");
    assert_eq!(w.sink.status("vco-a"), Some(status::IPSEC_UP));
}

#[tokio::test]
async fn a_restarted_vpngw_reloads_nothing_and_keeps_the_sas() {
    let mut w = World::new(eager());
    w.set(one(fake::connection("vco-a", "cgw-1", true)));
    w.pass().await;
    let ike = w.charon().ike_ids();
    let (loads, unloads) = (w.calls("load-conn"), w.calls("unload-conn"));
    w.restart_vpngw();
    w.pass().await;
    assert_eq!(w.charon().ike_ids(), ike);
    assert_eq!((w.calls("load-conn"), w.calls("unload-conn")), (loads, unloads));
    assert_eq!(w.sink.status("vco-a"), Some(status::IPSEC_UP));
}

#[tokio::test]
async fn a_peer_that_never_answers_stays_not_established_and_is_asked_again_only_when_due() {
    let w = World::new(Timing { down_grace: Duration::ZERO, reinitiate: Duration::from_secs(3600) });
    w.charon().silence("203.0.113.2");
    w.set(one(fake::connection("vco-b", "cgw-2", true)));
    for _ in 0..3 {
        w.pass().await;
    }
    assert_eq!(w.sink.status("vco-b"), Some(status::IKE_DOWN));
    assert_eq!(w.sink.plane("vco-b"), "converged", "loaded as asked: the peer is what is missing");
    assert_eq!(w.calls("initiate"), 1, "once when loaded, then not before the re-initiation interval");
}

#[tokio::test]
async fn a_responder_waits_for_its_peer() {
    let w = World::new(eager());
    w.set(one(fake::connection("vco-r", "cgw-1", false)));
    w.pass().await;
    assert_eq!((w.loaded().len(), w.calls("initiate")), (1, 0));
    assert_eq!(w.sink.status("vco-r"), Some(status::IKE_DOWN));
}

#[tokio::test]
async fn a_dual_tunnel_connection_keeps_its_slave_up_when_the_master_goes_and_brings_the_master_back() {
    let w = World::new(eager());
    w.set(one(fake::dual_connection("vco-d", "cgw-3", "cgw-4")));
    w.pass().await;
    assert_eq!((w.sink.tunnel_status("vco-d", "tun-vco-d-m"), w.sink.tunnel_status("vco-d", "tun-vco-d-s")), (Some(status::IPSEC_UP), Some(status::IPSEC_UP)));
    w.charon().silence("203.0.113.3");
    w.pass().await;
    assert_eq!((w.sink.tunnel_status("vco-d", "tun-vco-d-m"), w.sink.tunnel_status("vco-d", "tun-vco-d-s")), (Some(status::IKE_DOWN), Some(status::IPSEC_UP)));
    w.charon().revive("203.0.113.3");
    w.pass().await; // re-initiates
    w.pass().await; // what charon's up-event triggers: reads it back
    assert_eq!(w.sink.tunnel_status("vco-d", "tun-vco-d-m"), Some(status::IPSEC_UP), "re-initiated");
}

#[tokio::test]
async fn a_plane_that_holds_only_the_slave_side_runs_and_reports_only_the_slave_tunnel() {
    let w = World::new(eager());
    let mut gw = fake::plane_gateway("vpn-1", vec![fake::dual_connection("vco-d", "cgw-3", "cgw-4"), fake::connection("vco-s", "cgw-1", true)]);
    gw.sides = vpngw_plane::Sides { master: false, slave: true };
    w.set(vec![gw]);
    w.pass().await;
    let loaded = w.loaded();
    assert_eq!(loaded.len(), 1, "{loaded:?}");
    assert!(loaded[0].starts_with("tun-vco-d-s-"), "{loaded:?}");
    assert_eq!(w.sink.tunnel_status("vco-d", "tun-vco-d-s"), Some(status::IPSEC_UP));
    assert_eq!(w.sink.tunnel_status("vco-d", "tun-vco-d-m"), None, "the master tunnel is another plane's to report");
    assert_eq!(w.sink.status("vco-s"), None, "a single-tunnel connection is the master side's");
    let converged = w.sink.converged.lock().unwrap().clone();
    assert!(converged.contains_key("vpn-1#slave") && converged.contains_key("vco-d#slave"), "{converged:?}");
    assert!(!converged.contains_key("vpn-1") && !converged.contains_key("vco-d"), "{converged:?}");
}

#[tokio::test]
async fn a_route_moves_to_its_standby_when_the_active_connection_goes_down_and_back() {
    // A connection counts as down only after the grace: the re-negotiation that moving a route
    // causes must not move it back.
    let grace = Duration::from_millis(50);
    let w = World::new(Timing { down_grace: grace, reinitiate: Duration::ZERO });
    let routed = |id: &str, cgw: &str| {
        let (id, mut c) = fake::connection(id, cgw, true);
        c.local_subnet = vec!["0.0.0.0/0".into()];
        c.remote_subnet = vec!["0.0.0.0/0".into()];
        (id, c)
    };
    let mut g = fake::plane_gateway("vpn-1", vec![routed("vco-a", "cgw-5"), routed("vco-b", "cgw-6")]);
    g.routes = vec![fake::route("10.50.0.0/24", "vco-a", 100), fake::route("10.50.0.0/24", "vco-b", 0)];
    w.set(vec![g]);
    let carrier =
        |w: &World| -> Vec<String> { w.charon().loaded.values().filter(|d| d.children.iter().any(|ch| ch.remote_ts.contains(&"10.50.0.0/24".to_string()))).map(|d| d.conn_id.clone()).collect() };
    w.pass().await;
    assert_eq!(carrier(&w), ["vco-a"], "the active route's connection carries the prefix");
    w.charon().silence("203.0.113.5");
    w.pass().await;
    assert_eq!(carrier(&w), ["vco-a"], "within the grace nothing moves");
    tokio::time::sleep(grace * 2).await;
    w.pass().await;
    assert_eq!(carrier(&w), ["vco-b"], "the standby takes over");
    w.pass().await;
    assert_eq!(w.sink.status("vco-b"), Some(status::IPSEC_UP));
    w.charon().revive("203.0.113.5");
    w.pass().await; // a is re-initiated
    w.pass().await; // and read back up: the prefix returns to it
    assert_eq!(carrier(&w), ["vco-a"], "and gives it back");
    tokio::time::sleep(grace * 2).await;
    w.pass().await;
    assert_eq!(carrier(&w), ["vco-a"], "for good");
    assert_eq!(w.sink.status("vco-a"), Some(status::IPSEC_UP));
}

#[tokio::test]
async fn a_learned_prefix_adds_a_child_under_the_running_ike_sa_and_a_withdrawn_one_closes_it() {
    let w = World::new(eager());
    let (id, mut c) = fake::connection("vco-a", "cgw-1", true);
    c.local_subnet = vec!["0.0.0.0/0".into()];
    c.remote_subnet = vec!["0.0.0.0/0".into()];
    let learn = |c: &mut vpngw_model::connection::VpnConnection, prefixes: &[&str]| {
        c.bgp_routes = prefixes
            .iter()
            .map(|p| vpngw_model::connection::BgpRoute {
                tunnel: "vco-a".into(),
                route: vpngw_model::bgp::Learned { prefix: p.to_string(), as_path: "65001".into(), community: String::new(), next_hop: "169.254.11.2".into() },
                created_ms: 1,
            })
            .collect()
    };
    learn(&mut c, &["10.60.0.0/24"]);
    w.set(one((id.clone(), c.clone())));
    w.pass().await;
    w.pass().await;
    let children = |w: &World| -> Vec<Vec<String>> { w.charon().sas.values().flatten().map(|(_, ch)| ch.clone()).collect() };
    let ike = w.charon().ike_ids();
    let name = w.loaded()[0].clone();
    assert_eq!(children(&w), [vec![crate::ipsec::learned_child_name(&name, "10.1.0.0/16>10.60.0.0/24")]]);
    // A second prefix: the same definition and IKE_SA, one child more.
    learn(&mut c, &["10.60.0.0/24", "10.61.0.0/24"]);
    w.set(one((id.clone(), c.clone())));
    w.pass().await;
    w.pass().await;
    assert_eq!((w.loaded(), w.charon().ike_ids()), (vec![name.clone()], ike.clone()), "nothing renegotiated");
    assert_eq!(children(&w)[0].len(), 2);
    // The first is withdrawn: its child closes, the other stays.
    learn(&mut c, &["10.61.0.0/24"]);
    w.set(one((id, c)));
    w.pass().await;
    w.pass().await;
    assert_eq!(w.charon().ike_ids(), ike);
    assert_eq!(children(&w), [vec![crate::ipsec::learned_child_name(&name, "10.1.0.0/16>10.61.0.0/24")]]);
    assert_eq!(w.sink.status("vco-a"), Some(status::IPSEC_UP));
}

#[tokio::test]
async fn what_depends_on_an_unreadable_document_is_left_exactly_as_it_is() {
    let w = World::new(eager());
    w.set(vec![fake::plane_gateway("vpn-1", vec![fake::connection("vco-a", "cgw-1", true)]), fake::plane_gateway("vpn-2", vec![fake::connection("vco-b", "cgw-2", true)])]);
    w.pass().await;
    let loaded = w.loaded();
    let ike = w.charon().ike_ids();
    assert_eq!(loaded.len(), 2);
    // vpn-1's connection cannot be read: vpn-1 is frozen; vpn-2 still converges.
    let mut i = fake::intent(vec![fake::plane_gateway("vpn-2", vec![fake::connection("vco-b", "cgw-2", true), fake::connection("vco-c", "cgw-7", true)])]);
    i.gateway_ids.push("vpn-1".into());
    i.unreadable.push(vpngw_plane::Unreadable { kind: "vpn_gateway".into(), id: "vpn-1".into(), parent: None, why: "missing field `name`".into() });
    w.sink.set(i);
    w.pass().await;
    assert!(loaded.iter().all(|n| w.loaded().contains(n)), "vco-a's definition stays");
    assert!(ike.iter().all(|id| w.charon().ike_ids().contains(id)), "and so do its SAs");
    assert_eq!(w.loaded().len(), 3, "vco-c is loaded beside them");
    // Readable again and deleted: now it goes.
    w.set(vec![fake::plane_gateway("vpn-2", vec![fake::connection("vco-b", "cgw-2", true)])]);
    w.pass().await;
    assert_eq!(w.loaded().len(), 1);
}

#[tokio::test]
async fn a_connection_that_needs_an_algorithm_the_charon_lacks_is_withheld_and_says_why() {
    let w = World::new(eager());
    w.charon().caps = Some(fake::capabilities_without(&["DES_CBC", "3DES_CBC"]));
    let (id, mut c) = fake::connection("vco-des", "cgw-1", true);
    c.ike.ike_enc_alg = "des".into();
    w.set(vec![fake::plane_gateway("vpn-1", vec![(id, c), fake::connection("vco-aes", "cgw-2", true)])]);
    w.pass().await;
    let loaded = w.loaded();
    assert!(loaded.len() == 1 && loaded[0].starts_with("vco-aes-"), "{loaded:?}");
    assert_eq!(w.sink.status("vco-des"), Some(status::IKE_DOWN));
    assert!(w.sink.plane("vco-des").starts_with("unsupported: this charon lacks the encryption algorithm DES_CBC (des)"));
    let reasons = w.sink.observed.lock().unwrap()["vco-des"].unsupported.clone();
    assert!(reasons["vco-des"].contains("libstrongswan-standard-plugins"));
    assert_eq!(w.sink.status("vco-aes"), Some(status::IPSEC_UP));
}
