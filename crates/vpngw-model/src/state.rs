//! The state machines of the model, as enums. On the wire and in stored documents each keeps the
//! string the API documents.

use serde::{Deserialize, Serialize};

/// The negotiation status of a single-tunnel connection or of one tunnel (`Status` in the
/// API): owned by the data plane, read from charon's SAs, never invented.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NegotiationStatus {
    /// No IKE_SA is established (also: not loaded, or what this data plane cannot negotiate).
    #[default]
    #[serde(rename = "ike_sa_not_established")]
    IkeDown,
    /// Phase 1 is up; phase 2 is still being negotiated.
    #[serde(rename = "ike_sa_established")]
    IkeUp,
    /// Phase 1 has been up a while and a CHILD_SA is still missing.
    #[serde(rename = "ipsec_sa_not_established")]
    IpsecDown,
    /// Every CHILD_SA is installed.
    #[serde(rename = "ipsec_sa_established")]
    IpsecUp,
}

impl NegotiationStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            NegotiationStatus::IkeDown => "ike_sa_not_established",
            NegotiationStatus::IkeUp => "ike_sa_established",
            NegotiationStatus::IpsecDown => "ipsec_sa_not_established",
            NegotiationStatus::IpsecUp => "ipsec_sa_established",
        }
    }
}

impl std::fmt::Display for NegotiationStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tunnel's role in a dual-tunnel connection (`Role` in the API). Ordered master first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelRole {
    Master,
    Slave,
}

impl TunnelRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelRole::Master => "master",
            TunnelRole::Slave => "slave",
        }
    }
}

impl std::fmt::Display for TunnelRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a connection's routes are decided, kept beside its settings so that the gateway's BGP
/// rules find its BGP connections with one query (`routing` = `bgp`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RoutingMode {
    /// Routes and traffic selectors (also: a document written before the field existed).
    #[default]
    Static,
    /// BGP runs on the connection (or on its tunnels).
    Bgp,
}

impl RoutingMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RoutingMode::Static => "static",
            RoutingMode::Bgp => "bgp",
        }
    }
}

impl From<String> for RoutingMode {
    fn from(s: String) -> Self {
        if s == "bgp" {
            RoutingMode::Bgp
        } else {
            RoutingMode::Static
        }
    }
}

impl From<RoutingMode> for String {
    fn from(m: RoutingMode) -> String {
        m.as_str().to_string()
    }
}

/// A gateway's BusinessStatus: whether its account pays (an operator locks it with
/// `vpngw admin lock`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BusinessStatus {
    #[default]
    Normal,
    FinancialLocked,
}

impl BusinessStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BusinessStatus::Normal => "Normal",
            BusinessStatus::FinancialLocked => "FinancialLocked",
        }
    }
    /// The value a DescribeVpnGateways filter names, in any case.
    pub fn parse(s: &str) -> Option<BusinessStatus> {
        [BusinessStatus::Normal, BusinessStatus::FinancialLocked].into_iter().find(|b| b.as_str().eq_ignore_ascii_case(s))
    }
}

/// A resource's lifecycle state: a gateway's `Status`, a connection's `State` (the record's
/// status in the store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lifecycle {
    Init,
    Provisioning,
    Active,
    Updating,
    Deleting,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 5] = [Lifecycle::Init, Lifecycle::Provisioning, Lifecycle::Active, Lifecycle::Updating, Lifecycle::Deleting];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Init => "init",
            Lifecycle::Provisioning => "provisioning",
            Lifecycle::Active => "active",
            Lifecycle::Updating => "updating",
            Lifecycle::Deleting => "deleting",
        }
    }

    pub fn parse(s: &str) -> Option<Lifecycle> {
        Lifecycle::ALL.into_iter().find(|l| l.as_str() == s)
    }
}

impl std::fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A lifecycle step the task engine applies when it falls due (stored as `status:<state>` or
/// `delete`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskOp {
    /// The resource enters this state.
    Become(Lifecycle),
    /// The resource is removed.
    Delete,
}

impl TaskOp {
    pub fn encode(self) -> String {
        match self {
            TaskOp::Become(l) => format!("status:{l}"),
            TaskOp::Delete => "delete".into(),
        }
    }

    pub fn parse(s: &str) -> Option<TaskOp> {
        match s.strip_prefix("status:") {
            Some(l) => Lifecycle::parse(l).map(TaskOp::Become),
            None => (s == "delete").then_some(TaskOp::Delete),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_keep_their_documented_strings_and_the_master_comes_first() {
        assert_eq!(serde_json::to_value(TunnelRole::Master).unwrap(), serde_json::json!("master"));
        assert_eq!(serde_json::from_value::<TunnelRole>(serde_json::json!("slave")).unwrap(), TunnelRole::Slave);
        assert!(TunnelRole::Master < TunnelRole::Slave);
    }

    #[test]
    fn routing_modes_and_business_statuses_keep_their_strings() {
        assert_eq!(serde_json::to_value(RoutingMode::Bgp).unwrap(), serde_json::json!("bgp"));
        assert_eq!(serde_json::from_value::<RoutingMode>(serde_json::json!("static")).unwrap(), RoutingMode::Static);
        assert_eq!(serde_json::from_value::<RoutingMode>(serde_json::json!("")).unwrap(), RoutingMode::Static, "an older document reads");
        assert_eq!(serde_json::to_value(BusinessStatus::FinancialLocked).unwrap(), serde_json::json!("FinancialLocked"));
        assert_eq!(BusinessStatus::parse("financiallocked"), Some(BusinessStatus::FinancialLocked));
        assert_eq!(BusinessStatus::parse("x"), None);
    }

    #[test]
    fn task_ops_read_back_what_they_write() {
        for op in Lifecycle::ALL.into_iter().map(TaskOp::Become).chain([TaskOp::Delete]) {
            assert_eq!(TaskOp::parse(&op.encode()), Some(op));
        }
        assert_eq!(TaskOp::Become(Lifecycle::Active).encode(), "status:active");
        assert_eq!(TaskOp::parse("status:unknown"), None);
        assert_eq!(TaskOp::parse("explode"), None);
    }

    #[test]
    fn statuses_keep_their_documented_strings() {
        for s in [NegotiationStatus::IkeDown, NegotiationStatus::IkeUp, NegotiationStatus::IpsecDown, NegotiationStatus::IpsecUp] {
            assert_eq!(serde_json::to_value(s).unwrap(), serde_json::Value::String(s.as_str().into()));
            assert_eq!(serde_json::from_value::<NegotiationStatus>(serde_json::Value::String(s.as_str().into())).unwrap(), s);
        }
    }
}
