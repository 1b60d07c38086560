//! The `[dataplane]` section of the operator's configuration.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// A pure API endpoint: no daemon; negotiation statuses stay not established.
    #[default]
    None,
    /// One charon on this host (or in `netns`), reached at `vici_socket`.
    Host,
    /// vpngw builds the network itself: namespaces, one charon per gateway, customer sites.
    Lab,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataPlaneConfig {
    pub mode: Mode,
    /// Host mode: charon's VICI socket.
    pub vici_socket: PathBuf,
    /// Host mode: the network namespace charon runs in (health probes run there too).
    pub netns: Option<String>,
    /// Host mode: charon's file log, which DescribeVpnConnectionLogs and ListIpsecServerLogs
    /// read (a `filelog` with `ike_name = yes` and `time_format = %Y-%m-%d %H:%M:%S`, in UTC;
    /// its previous part may be `<file>.1`). Without it those actions answer no lines. Lab
    /// mode keeps one log per gateway charon and needs no setting.
    pub charon_log: Option<PathBuf>,
    /// Lab mode: the prefix of every namespace the lab creates (several labs can coexist).
    pub lab_name: String,
    /// Lab mode: the host of the lab this process stands for, when several share one machine
    /// (a fleet's agents): its gateways' namespaces are `<lab_name>-<lab_host>-<gateway>`, it
    /// shares the lab's internet (`<lab_name>-inet`) with the other hosts, and it leaves the
    /// internet and the customer sites in place when it stops.
    pub lab_host: Option<String>,
    /// Where charon configs (lab mode), OpenVPN servers (`ssl/<id>/`, both modes), sockets,
    /// pid files and logs live (short: Unix socket paths are limited to 107 bytes). Default
    /// `/run/vpngw/<lab_name>` (`/run/vpngw/<lab_name>-<lab_host>` for a lab host); one
    /// directory per vpngw instance.
    pub run_dir: Option<PathBuf>,
    /// Lab mode: the charon binary (it must read `STRONGSWAN_CONF`).
    pub charon: PathBuf,
    /// The OpenVPN binary (SSL-VPN servers; lab and host modes).
    pub openvpn: PathBuf,
    /// The BIRD 2 binary (BGP speakers, one per gateway side with BGP-enabled tunnels; lab and
    /// host modes).
    pub bird: PathBuf,
    /// Lab mode: the plugins every lab charon loads besides the kernel interface, the socket
    /// and VICI (which vpngw always adds). Each must be installed: the lab refuses to start
    /// otherwise, rather than run a charon that quietly lacks algorithms.
    pub charon_plugins: Vec<String>,
    /// Lab mode: where charon's plugins are installed (`libstrongswan-<name>.so`).
    pub charon_plugin_dir: PathBuf,
    /// Lab mode: `libipsec` (userspace ESP over TUN, for kernels without XFRM) or `netlink`
    /// (the kernel's IPsec). A configuration choice, not a code fork: only the plugin list differs.
    pub kernel_ipsec: String,
    /// Keep what vpngw started when it stops: in lab mode the namespaces and charons, in both
    /// modes the OpenVPN servers (so a restart keeps tunnels and SSL-VPN clients up).
    pub persist: bool,
    /// How often the reconciler runs when nothing wakes it, in milliseconds.
    pub reconcile_interval_ms: u64,
    /// How long an `updating` state waits for the data plane to apply a change, in milliseconds.
    pub apply_timeout_ms: u64,
}

/// The plugins of a lab charon by default. `openssl` brings DES and 3DES (and fast AES); the
/// others come with Debian's `libstrongswan`, except `curve25519` (`libstrongswan-extra-plugins`).
pub const DEFAULT_PLUGINS: &str = "random nonce aes sha1 sha2 md5 hmac gmp curve25519 openssl pem pkcs1 x509 pubkey kdf";

impl Default for DataPlaneConfig {
    fn default() -> Self {
        DataPlaneConfig {
            mode: Mode::None,
            vici_socket: PathBuf::from("/var/run/charon.vici"),
            netns: None,
            charon_log: None,
            lab_name: "vpngw".into(),
            lab_host: None,
            run_dir: None,
            charon: PathBuf::from("/usr/sbin/charon-systemd"),
            openvpn: PathBuf::from("/usr/sbin/openvpn"),
            bird: PathBuf::from("/usr/sbin/bird"),
            charon_plugins: DEFAULT_PLUGINS.split(' ').map(str::to_string).collect(),
            charon_plugin_dir: PathBuf::from("/usr/lib/ipsec/plugins"),
            kernel_ipsec: "libipsec".into(),
            persist: false,
            reconcile_interval_ms: 2000,
            apply_timeout_ms: 60_000,
        }
    }
}

impl DataPlaneConfig {
    pub fn run_dir(&self) -> PathBuf {
        self.run_dir.clone().unwrap_or_else(|| match &self.lab_host {
            Some(h) => PathBuf::from("/run/vpngw").join(format!("{}-{h}", self.lab_name)),
            None => PathBuf::from("/run/vpngw").join(&self.lab_name),
        })
    }
}
