//! Lab mode: a whole network on one machine, built from network namespaces.
//!
//! ```text
//!            <lab>-inet  (routes between public addresses; every node's link is 169.254.0.1)
//!           /          \
//!  <lab>-<vpn-id>       <lab>-site-<name>
//!  pub0: InternetIp/32   pub0: customer gateway address/32
//!  lo:   one address of  lo:   the site's private subnet address
//!        each VSwitch
//!  charon (own STRONGSWAN_CONF, own VICI socket, kernel-libipsec)
//! ```
//!
//! Each node has a veth link to the internet namespace and a default route through it; the
//! internet namespace has a /32 route to each public address. A gateway's VPC side is one
//! address of each of its VPC's VSwitch CIDRs and of each connection's LocalSubnet on the
//! gateway's loopback (the "VPC hosts" that answer pings through tunnels), plus the source
//! addresses of its health checks.
//!
//! Every charon runs in its own process group and records its pid, so it outlives a crash or
//! restart of vpngw (established SAs stay up); vpngw adopts running charons on start,
//! restarts one that dies, and on shutdown (unless `persist`) removes everything it created.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, Notify};

use crate::config::DataPlaneConfig;
pub use crate::process::{alive, kill_pid_file, spawn_detached};
use crate::process::{read_pid, run};

/// The address every node's default route points at (on the internet side of its link).
const UPLINK: &str = "169.254.0.1";

/// Runs `ip` with these arguments.
pub async fn ip(args: &[&str]) -> Result<String> {
    run("ip", args).await
}

/// `ip` where "already exists" counts as success.
async fn ip_idem(args: &[&str]) -> Result<()> {
    match ip(args).await {
        Ok(_) => Ok(()),
        Err(e) if e.to_string().contains("File exists") => Ok(()),
        Err(e) => Err(e),
    }
}

pub async fn namespaces() -> Result<BTreeSet<String>> {
    let out = ip(&["netns", "list"]).await?;
    Ok(out.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect())
}

async fn sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    run("ip", &["netns", "exec", ns, "sh", "-c", &format!("echo {value} > {path}")]).await.map(|_| ())
}

/// The Debian package that ships a charon plugin.
fn plugin_package(plugin: &str) -> &'static str {
    match plugin {
        "openssl" | "gcm" | "aesni" | "agent" => "libstrongswan-standard-plugins",
        "kernel-libipsec" | "eap-mschapv2" | "xauth-generic" | "farp" | "dhcp" | "bypass-lan" => "libcharon-extra-plugins",
        "socket-default" | "counters" | "updown" => "strongswan-libcharon",
        "vici" => "strongswan-swanctl",
        "random" | "nonce" | "aes" | "sha1" | "sha2" | "md5" | "hmac" | "gmp" | "pem" | "pkcs1" | "x509" | "pubkey" | "kdf" | "kernel-netlink" | "pkcs8" | "revocation" | "constraints" => {
            "libstrongswan"
        }
        _ => "libstrongswan-extra-plugins (where gcrypt, curve25519 and the other extra plugins are)",
    }
}

/// What a gateway's VPC sees of it (see [`Lab::ensure_vpc_routes`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VpcView {
    /// The VPC's CIDR blocks (its VSwitches).
    pub sources: Vec<String>,
    /// Destinations of the routes the gateway published to the VPC.
    pub published: Vec<String>,
    /// Prefixes the gateway's own routing table reaches (SSL-VPN client pools, behind
    /// OpenVPN's TUN device).
    pub local: Vec<String>,
    /// Health probes: (sip, dip).
    pub probes: Vec<(String, String)>,
}

impl VpcView {
    /// The policy rules this view means, as `ip rule` arguments.
    fn rules(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (sip, dip) in &self.probes {
            out.insert(format!("pref 90 from {sip} to {dip} lookup 220"));
        }
        for src in &self.sources {
            for p in &self.published {
                out.insert(format!("pref 100 from {src} to {p} lookup 220"));
            }
            for p in &self.local {
                out.insert(format!("pref 99 from {src} to {p} lookup main"));
            }
            out.insert(format!("pref 101 from {src} unreachable"));
        }
        out
    }
}

/// Runs `ip -n ns -batch -` with these commands.
async fn ip_batch(ns: &str, commands: &str) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new("ip")
        .args(["-n", ns, "-force", "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("run ip -batch")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(commands.as_bytes()).await?;
    }
    let out = child.wait_with_output().await?;
    if !out.status.success() {
        bail!("ip -batch in {ns}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// One node of the lab (a gateway or a customer site): its namespace and addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub ns: String,
    pub public: Vec<Ipv4Addr>,
    pub private: Vec<Ipv4Addr>,
}

pub struct Lab {
    pub name: String,
    /// The lab host this process stands for (a fleet's agent), if several share the machine.
    pub host: Option<String>,
    pub run_dir: PathBuf,
    charon: PathBuf,
    /// Every plugin its charons load, and where they are installed.
    plugins: Vec<String>,
    plugin_dir: PathBuf,
    pub persist: bool,
    /// Supervised charons by node key.
    charons: Mutex<HashMap<String, Arc<Charon>>>,
    /// Woken when a charon (re)started.
    pub restarted: Arc<Notify>,
    /// The nodes as last built: a pass that finds a node unchanged spawns no `ip` at all.
    built: Mutex<HashMap<String, Node>>,
    /// The VPC views as last applied, by namespace.
    vpc_views: Mutex<HashMap<String, VpcView>>,
}

/// A supervised charon.
pub struct Charon {
    pub key: String,
    pub ns: String,
    pub dir: PathBuf,
    stop: Notify,
    stopping: std::sync::atomic::AtomicBool,
}

impl Charon {
    pub fn socket(&self) -> PathBuf {
        self.dir.join("charon.vici")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("charon.pid")
    }
    pub fn pid(&self) -> Option<u32> {
        read_pid(&self.pid_file())
    }
}

impl Lab {
    pub fn new(cfg: &DataPlaneConfig) -> Lab {
        let libipsec = cfg.kernel_ipsec != "netlink";
        let mut plugins = cfg.charon_plugins.clone();
        plugins.extend(if libipsec { &["kernel-libipsec", "kernel-netlink"][..] } else { &["kernel-netlink"][..] }.iter().map(|p| p.to_string()));
        plugins.extend(["socket-default", "vici"].map(String::from));
        Lab {
            name: cfg.lab_name.clone(),
            host: cfg.lab_host.clone(),
            run_dir: cfg.run_dir(),
            charon: cfg.charon.clone(),
            plugins,
            plugin_dir: cfg.charon_plugin_dir.clone(),
            persist: cfg.persist,
            charons: Default::default(),
            restarted: Arc::new(Notify::new()),
            built: Default::default(),
            vpc_views: Default::default(),
        }
    }

    pub fn inet(&self) -> String {
        format!("{}-inet", self.name)
    }
    pub fn gateway_ns(&self, gw: &str) -> String {
        format!("{}{gw}", self.gateway_prefix())
    }
    /// What this process's gateway namespaces start with.
    fn gateway_prefix(&self) -> String {
        match &self.host {
            Some(h) => format!("{}-{h}-", self.name),
            None => format!("{}-", self.name),
        }
    }
    pub fn site_ns(&self, site: &str) -> String {
        format!("{}-site-{site}", self.name)
    }
    pub fn gateway_dir(&self, gw: &str) -> PathBuf {
        self.run_dir.join("gw").join(gw)
    }
    pub fn site_dir(&self, site: &str) -> PathBuf {
        self.run_dir.join("site").join(site)
    }

    /// The internet namespace, forwarding between nodes.
    pub async fn ensure_inet(&self) -> Result<()> {
        let inet = self.inet();
        if !namespaces().await?.contains(&inet) {
            ip_idem(&["netns", "add", &inet]).await?;
            ip(&["-n", &inet, "link", "set", "lo", "up"]).await?;
            sysctl(&inet, "net.ipv4.ip_forward", "1").await?;
        }
        Ok(())
    }

    /// The internet side's name of a node's link (unique in the internet namespace, ≤ 15 bytes).
    fn uplink_name(ns: &str) -> String {
        format!("v{}", &hex::encode(Sha256::digest(ns.as_bytes()))[..12])
    }

    /// Makes a node exist with exactly these addresses (idempotent).
    pub async fn ensure_node(&self, node: &Node) -> Result<()> {
        let exists = |ns: &str| Path::new("/run/netns").join(ns).exists();
        if self.built.lock().await.get(&node.ns) == Some(node) && exists(&node.ns) && exists(&self.inet()) {
            return Ok(());
        }
        self.build_node(node).await?;
        self.built.lock().await.insert(node.ns.clone(), node.clone());
        Ok(())
    }

    async fn build_node(&self, node: &Node) -> Result<()> {
        self.ensure_inet().await?;
        let inet = self.inet();
        let ns = &node.ns;
        let up = Self::uplink_name(ns);
        if !namespaces().await?.contains(ns) {
            ip_idem(&["netns", "add", ns]).await?;
            ip(&["-n", ns, "link", "set", "lo", "up"]).await?;
        }
        if ip(&["-n", ns, "link", "show", "pub0"]).await.is_err() {
            let _ = ip(&["-n", &inet, "link", "del", &up]).await;
            ip(&["link", "add", &up, "netns", &inet, "type", "veth", "peer", "name", "pub0", "netns", ns]).await?;
            ip_idem(&["-n", &inet, "addr", "add", &format!("{UPLINK}/32"), "dev", &up]).await?;
            ip(&["-n", &inet, "link", "set", &up, "up"]).await?;
            ip(&["-n", ns, "link", "set", "pub0", "up"]).await?;
        }
        self.sync_addrs(ns, "pub0", &node.public).await?;
        self.sync_addrs(ns, "lo", &node.private).await?;
        if !node.public.is_empty() {
            ip(&["-n", ns, "route", "replace", "default", "via", UPLINK, "dev", "pub0", "onlink"]).await?;
        }
        // The internet routes each public address to its node (and forgets ones it lost).
        let routes = ip(&["-n", &inet, "-4", "route", "show", "dev", &up]).await?;
        let have: BTreeSet<String> = routes.lines().filter_map(|l| l.split_whitespace().next()).map(str::to_string).collect();
        for a in &node.public {
            if !have.contains(&a.to_string()) {
                ip(&["-n", &inet, "route", "replace", &format!("{a}/32"), "dev", &up]).await?;
            }
        }
        for h in have {
            if !node.public.iter().any(|a| a.to_string() == h) {
                let _ = ip(&["-n", &inet, "route", "del", &h, "dev", &up]).await;
            }
        }
        Ok(())
    }

    async fn sync_addrs(&self, ns: &str, dev: &str, want: &[Ipv4Addr]) -> Result<()> {
        let out = ip(&["-n", ns, "-4", "-o", "addr", "show", "dev", dev]).await?;
        let have: BTreeSet<String> = out.split_whitespace().collect::<Vec<_>>().windows(2).filter(|w| w[0] == "inet").map(|w| w[1].to_string()).collect();
        for a in want {
            let cidr = format!("{a}/32");
            if !have.contains(&cidr) {
                ip_idem(&["-n", ns, "addr", "add", &cidr, "dev", dev]).await?;
            }
        }
        for h in have {
            if h.starts_with("127.") {
                continue;
            }
            if !want.iter().any(|a| format!("{a}/32") == h) {
                let _ = ip(&["-n", ns, "addr", "del", &h, "dev", dev]).await;
            }
        }
        Ok(())
    }

    /// The VPC's view of a gateway: traffic from the VPC's address space enters the tunnels
    /// only towards prefixes the gateway published to the VPC; anything else from the VPC is
    /// unreachable through this gateway, as in a VPC route table without the route. Health
    /// probes (sip → dip) go through their tunnel regardless. Rules 90 (probes), 99 (from a
    /// VPC CIDR to an SSL-VPN client pool: the main table, where OpenVPN's routes are), 100
    /// (from a VPC CIDR to a published prefix: charon's table 220) and 101 (from a VPC CIDR:
    /// unreachable) of the gateway's namespace say so. Idempotent.
    pub async fn ensure_vpc_routes(&self, ns: &str, view: &VpcView) -> Result<()> {
        let before = self.vpc_views.lock().await.get(ns).cloned();
        if before.as_ref() == Some(view) {
            return Ok(());
        }
        let want = view.rules();
        // What is there: the rules last applied, or (first time here) whatever the namespace has
        // at our preferences, read back.
        let have: BTreeSet<String> = match &before {
            Some(v) => v.rules(),
            None => {
                let out = ip(&["-n", ns, "rule", "show"]).await?;
                out.lines()
                    .filter_map(|l| l.split_once(':'))
                    .filter(|(pref, _)| matches!(pref.trim(), "90" | "99" | "100" | "101"))
                    .map(|(pref, rest)| format!("pref {} {}", pref.trim(), rest.trim().replace("all ", "0.0.0.0/0 ")))
                    .collect()
            }
        };
        // One `ip -batch` for the whole difference: removals first, then additions, so that a
        // change among many prefixes costs one process and leaves the others untouched.
        let mut batch = String::new();
        for r in have.difference(&want) {
            batch.push_str(&format!("rule del {r}\n"));
        }
        for r in want.difference(&have) {
            batch.push_str(&format!("rule add {r}\n"));
        }
        if !batch.is_empty() {
            if let Err(e) = ip_batch(ns, &batch).await {
                // Read the namespace back next time rather than trust a half-applied view.
                self.vpc_views.lock().await.remove(ns);
                return Err(e);
            }
        }
        self.vpc_views.lock().await.insert(ns.to_string(), view.clone());
        Ok(())
    }

    pub async fn remove_node(&self, ns: &str) -> Result<()> {
        self.built.lock().await.remove(ns);
        self.vpc_views.lock().await.remove(ns);
        let _ = ip(&["-n", &self.inet(), "link", "del", &Self::uplink_name(ns)]).await;
        if namespaces().await?.contains(ns) {
            ip(&["netns", "del", ns]).await?;
        }
        Ok(())
    }

    /// Checks that the lab can start its charons: the binary and every plugin it is told to
    /// load are installed. A charon would otherwise start without a missing plugin and fail
    /// every negotiation that needs it.
    pub fn check(&self) -> Result<()> {
        if !self.charon.is_file() {
            bail!("lab: the charon binary {} is not installed (Debian: charon-systemd), or set [dataplane] charon", self.charon.display());
        }
        for p in &self.plugins {
            let file = self.plugin_dir.join(format!("libstrongswan-{p}.so"));
            if !file.is_file() {
                bail!("lab: charon plugin '{p}' is not installed ({} is missing); install {}, or leave it out of [dataplane] charon_plugins", file.display(), plugin_package(p));
            }
        }
        Ok(())
    }

    /// strongswan.conf of a lab charon. A customer site's (`site`) stands for many customer
    /// devices at once, all answering one gateway address: without DoS protection, which would
    /// otherwise demand cookies from that address after a few half-open IKE_SAs.
    pub fn charon_conf(&self, dir: &Path, site: bool) -> String {
        format!(
            "# Generated by vpngw for a lab charon.\n\
             charon-systemd {{\n\
             \x20 load = {plugins}\n\
             \x20 # IKEv1 aggressive mode with PSK is a documented setting of the API.\n\
             \x20 i_dont_care_about_security_and_use_aggressive_mode_psk = yes\n\
             \x20 install_routes = yes\n\
             \x20 retransmit_timeout = 1.0\n\
             \x20 retransmit_base = 1.4\n\
             \x20 retransmit_tries = 4\n\
             {dos}\
             \x20 plugins {{\n    vici {{\n      socket = unix://{sock}\n    }}\n  }}\n\
             \x20 journal {{\n    default = -1\n  }}\n\
             \x20 filelog {{\n    charon {{\n      path = {log}\n      time_format = \"%Y-%m-%d %H:%M:%S\"\n      time_add_ms = yes\n      default = 1\n      ike_name = yes\n      flush_line = yes\n    }}\n  }}\n\
             }}\n",
            plugins = self.plugins.join(" "),
            dos = if site { "  dos_protection = no\n" } else { "" },
            sock = dir.join("charon.vici").display(),
            log = dir.join("charon.log").display(),
        )
    }

    /// Starts a charon in `ns` (or adopts the one already running there) and supervises it.
    pub async fn ensure_charon(self: &Arc<Self>, key: &str, ns: &str, dir: PathBuf) -> Result<Arc<Charon>> {
        if let Some(c) = self.charons.lock().await.get(key) {
            return Ok(c.clone());
        }
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        let c = Arc::new(Charon { key: key.into(), ns: ns.into(), dir, stop: Notify::new(), stopping: Default::default() });
        let adopted = c.pid().is_some_and(alive) && wait_socket(&c.socket(), Duration::from_millis(200)).await;
        if !adopted {
            self.spawn_charon(&c).await?;
        } else {
            tracing::info!(node = %key, pid = ?c.pid(), "Adopted a running charon.");
        }
        self.charons.lock().await.insert(key.into(), c.clone());
        let lab = self.clone();
        let sup = c.clone();
        tokio::spawn(async move { lab.supervise(sup).await });
        Ok(c)
    }

    async fn spawn_charon(&self, c: &Charon) -> Result<()> {
        if let Some(pid) = c.pid().filter(|p| alive(*p)) {
            let _ = run("kill", &["-KILL", &pid.to_string()]).await;
        }
        // A killed charon leaves its routing rule and routes behind (table 220): start clean.
        let _ = ip(&["-n", &c.ns, "rule", "del", "pref", "220"]).await;
        let _ = ip(&["-n", &c.ns, "route", "flush", "table", "220"]).await;
        let conf = c.dir.join("strongswan.conf");
        std::fs::write(&conf, self.charon_conf(&c.dir, c.key.starts_with("site-")))?;
        let _ = std::fs::remove_file(c.socket());
        let mut cmd = tokio::process::Command::new("ip");
        // Its log's times are UTC, as the API's log windows are.
        cmd.args(["netns", "exec", &c.ns]).arg(&self.charon).env("STRONGSWAN_CONF", &conf).env("TZ", "UTC");
        let pid = spawn_detached(cmd, &c.dir.join("charon.out"), &c.pid_file()).context("start charon")?;
        if !wait_socket(&c.socket(), Duration::from_secs(10)).await {
            bail!("charon in {} did not open its VICI socket; see {}", c.ns, c.dir.join("charon.out").display());
        }
        tracing::info!(node = %c.key, pid, "Started charon.");
        self.restarted.notify_one();
        Ok(())
    }

    async fn supervise(&self, c: Arc<Charon>) {
        loop {
            tokio::select! {
                _ = c.stop.notified() => return,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            if c.stopping.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            if !c.pid().is_some_and(alive) {
                tracing::warn!(node = %c.key, "charon died; restarting it.");
                if let Err(e) = self.spawn_charon(&c).await {
                    tracing::error!(node = %c.key, error = %e, "Failed to restart charon.");
                }
            }
        }
    }

    /// Stops a node's charon (and its supervision).
    pub async fn stop_charon(&self, key: &str) {
        let c = self.charons.lock().await.remove(key);
        if let Some(c) = c {
            c.stopping.store(true, std::sync::atomic::Ordering::SeqCst);
            c.stop.notify_one();
            kill_pid_file(&c.pid_file()).await;
        }
    }

    /// Removes a gateway: its charon, namespace and files.
    pub async fn remove_gateway(&self, gw: &str) -> Result<()> {
        self.stop_charon(gw).await;
        kill_pid_file(&self.gateway_dir(gw).join("charon.pid")).await;
        kill_pid_file(&self.gateway_dir(gw).join("bird.pid")).await;
        self.remove_node(&self.gateway_ns(gw)).await?;
        let _ = std::fs::remove_dir_all(self.gateway_dir(gw));
        Ok(())
    }

    /// Gateways the lab holds (by directory).
    pub fn gateway_ids(&self) -> Vec<String> {
        std::fs::read_dir(self.run_dir.join("gw")).map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
    }

    /// Removes everything of this lab: charons, namespaces, files (its OpenVPN servers are
    /// the SSL-VPN plane's to stop: [`crate::sslvpn::stop_all`]).
    pub async fn teardown(&self) -> Result<()> {
        let keys: Vec<String> = self.charons.lock().await.keys().cloned().collect();
        for k in keys {
            self.stop_charon(&k).await;
        }
        for sub in ["gw", "site"] {
            if let Ok(d) = std::fs::read_dir(self.run_dir.join(sub)) {
                for e in d.flatten() {
                    kill_pid_file(&e.path().join("charon.pid")).await;
                    kill_pid_file(&e.path().join("bird.pid")).await;
                }
            }
        }
        // A lab host removes only its own gateways: the internet and the sites are the lab's.
        let prefix = self.gateway_prefix();
        for ns in namespaces().await? {
            if ns.starts_with(&prefix) && ns != self.inet() {
                self.remove_node(&ns).await?;
            }
        }
        if self.host.is_none() && namespaces().await?.contains(&self.inet()) {
            ip(&["netns", "del", &self.inet()]).await?;
        }
        let _ = std::fs::remove_dir_all(&self.run_dir);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Customer sites (`vpngw lab site ...`): a node with a charon of its own, started detached.

    /// Creates a customer site: a namespace with `public` on its link, the first address of
    /// each subnet on its loopback, and a charon. Returns the site's VICI socket.
    pub async fn create_site(self: &Arc<Self>, name: &str, public: &[Ipv4Addr], subnets: &[ipnet::Ipv4Net]) -> Result<PathBuf> {
        let hosts = subnets.iter().map(|s| s.hosts().next().context("a subnet has no host address")).collect::<Result<Vec<_>>>()?;
        self.ensure_node(&Node { ns: self.site_ns(name), public: public.to_vec(), private: hosts }).await?;
        let c = Charon { key: format!("site-{name}"), ns: self.site_ns(name), dir: self.site_dir(name), stop: Notify::new(), stopping: Default::default() };
        std::fs::create_dir_all(&c.dir)?;
        if !(c.pid().is_some_and(alive) && wait_socket(&c.socket(), Duration::from_millis(200)).await) {
            self.spawn_charon(&c).await?;
        }
        Ok(c.socket())
    }

    /// Runs a customer site's BGP speaker (BIRD 2) with this configuration, started or
    /// reconfigured in place.
    pub async fn site_bird(&self, name: &str, bird: &Path, conf: &str) -> Result<PathBuf> {
        let dir = self.site_dir(name);
        let file = dir.join("bird.conf");
        std::fs::write(&file, conf).with_context(|| format!("write {}", file.display()))?;
        if crate::bgp::running(&dir) {
            crate::bgp::reconfigure(&dir).await?;
        } else {
            crate::bgp::start(bird, &dir, Some(&self.site_ns(name))).await?;
        }
        Ok(crate::bgp::socket(&dir))
    }

    pub async fn delete_site(&self, name: &str) -> Result<()> {
        kill_pid_file(&self.site_dir(name).join("charon.pid")).await;
        kill_pid_file(&self.site_dir(name).join("bird.pid")).await;
        self.remove_node(&self.site_ns(name)).await?;
        let _ = std::fs::remove_dir_all(self.site_dir(name));
        Ok(())
    }
}

/// Waits until a Unix socket accepts connections.
pub async fn wait_socket(path: &Path, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Loads a swanctl.conf into a charon with strongSwan's own `swanctl` (what a customer would
/// run on their device).
pub async fn swanctl_load(socket: &Path, file: &Path) -> Result<()> {
    let uri = format!("unix://{}", socket.display());
    let file = file.canonicalize().with_context(|| format!("read {}", file.display()))?;
    run("swanctl", &["--load-all", "--noprompt", "--file", &file.to_string_lossy(), "--uri", &uri]).await.map(|_| ())
}

/// The files of a multi-file device configuration (DownloadVpnConnectionConfig's
/// `strongswan-bird`): each starts after a line `# ==> <file> <==`. A text without such lines
/// is one file, `swanctl.conf`.
pub fn split_device_config(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("# ==> ").and_then(|l| l.strip_suffix(" <==")) {
            out.push((name.to_string(), String::new()));
            continue;
        }
        if out.is_empty() {
            out.push(("swanctl.conf".into(), String::new()));
        }
        let last = out.last_mut().expect("a file");
        last.1.push_str(line);
        last.1.push('\n');
    }
    out
}

/// The addresses a BIRD configuration's sessions speak from (`local <address> as`): a site
/// must hold them.
pub fn bird_local_addresses(conf: &str) -> Vec<Ipv4Addr> {
    conf.lines().filter_map(|l| l.trim().strip_prefix("local ")?.split_whitespace().next()?.parse().ok()).collect()
}
