//! Live questions across hosts: what an API server asks of the agent that runs a gateway, and
//! the agent's answer, as values that cross a wire (JSON). [`RemoteLive`] is a [`LivePlane`]
//! over any [`Transport`]; [`answer`] is the agent's side. The transport (an HTTP port of the
//! agent, authenticated with the cluster's master key) is the server's.

use std::borrow::Cow;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use vpngw_model::ssl_vpn::SslClient;

use crate::{Diagnosis, LivePlane, PlaneError, Result};

/// A question for the plane that runs `gateway`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Question {
    SslClients { gateway: String, server: String },
    SslLog { gateway: String, server: String },
    IpsecLog { gateway: String, keys: Vec<String> },
    IpsecDiagnoses { gateway: String, tunnels: Vec<(String, String)>, window_s: i64 },
}

impl Question {
    pub fn gateway(&self) -> &str {
        match self {
            Question::SslClients { gateway, .. } | Question::SslLog { gateway, .. } | Question::IpsecLog { gateway, .. } | Question::IpsecDiagnoses { gateway, .. } => gateway,
        }
    }
}

/// A plane's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    Clients(Vec<SslClient>),
    Lines(Vec<String>),
    Diagnoses(Vec<Option<WireDiagnosis>>),
    /// The plane could not answer (it does not run the gateway, or a read failed).
    Error(String),
}

/// A [`Diagnosis`] on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDiagnosis {
    pub code: String,
    pub reason: String,
    pub time_ms: i64,
    pub local: String,
    pub remote: String,
    pub severity: String,
    pub log: String,
}

/// The codes and severities a data plane's diagnosis uses (a received one outside them reads
/// as `Unknown`).
const CODES: &[&str] = &["IkeProposalMismatch", "IpsecProposalMismatch", "PskMismatch", "IdentityMismatch", "TrafficSelectorMismatch", "PeerNotResponding"];
const SEVERITIES: &[&str] = &["Critical", "Warn", "Normal"];

fn known(list: &[&'static str], s: &str) -> &'static str {
    list.iter().copied().find(|c| *c == s).unwrap_or("Unknown")
}

impl From<&Diagnosis> for WireDiagnosis {
    fn from(d: &Diagnosis) -> Self {
        WireDiagnosis { code: d.code.into(), reason: d.reason.clone(), time_ms: d.time_ms, local: d.local.clone(), remote: d.remote.clone(), severity: d.severity.into(), log: d.log.clone() }
    }
}

impl From<WireDiagnosis> for Diagnosis {
    fn from(d: WireDiagnosis) -> Self {
        Diagnosis { code: known(CODES, &d.code), reason: d.reason, time_ms: d.time_ms, local: d.local, remote: d.remote, severity: known(SEVERITIES, &d.severity), log: d.log }
    }
}

/// The agent's side: answers a question from its own plane.
pub async fn answer(live: &dyn LivePlane, q: Question) -> Answer {
    let out = match q {
        Question::SslClients { gateway, server } => live.ssl_clients(&gateway, &server).await.map(Answer::Clients),
        Question::SslLog { gateway, server } => live.ssl_log(&gateway, &server).await.map(Answer::Lines),
        Question::IpsecLog { gateway, keys } => live.ipsec_log(&gateway, &keys).await.map(Answer::Lines),
        Question::IpsecDiagnoses { gateway, tunnels, window_s } => {
            live.ipsec_diagnoses(&gateway, &tunnels, window_s).await.map(|d| Answer::Diagnoses(d.iter().map(|d| d.as_ref().map(WireDiagnosis::from)).collect()))
        }
    };
    out.unwrap_or_else(|e| Answer::Error(e.0))
}

/// How a question reaches the plane that runs its gateway.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    async fn ask(&self, q: &Question) -> Result<Answer>;
}

/// A [`LivePlane`] that runs elsewhere.
pub struct RemoteLive<T>(pub T);

fn unexpected(a: Answer) -> PlaneError {
    match a {
        Answer::Error(e) => PlaneError(e),
        other => PlaneError(format!("an answer of another kind: {other:?}")),
    }
}

#[async_trait]
impl<T: Transport> LivePlane for RemoteLive<T> {
    async fn ssl_clients(&self, gateway_id: &str, server_id: &str) -> Result<Vec<SslClient>> {
        match self.0.ask(&Question::SslClients { gateway: gateway_id.into(), server: server_id.into() }).await? {
            Answer::Clients(c) => Ok(c),
            other => Err(unexpected(other)),
        }
    }
    async fn ssl_log(&self, gateway_id: &str, server_id: &str) -> Result<Vec<String>> {
        match self.0.ask(&Question::SslLog { gateway: gateway_id.into(), server: server_id.into() }).await? {
            Answer::Lines(l) => Ok(l),
            other => Err(unexpected(other)),
        }
    }
    async fn ipsec_log(&self, gateway_id: &str, keys: &[String]) -> Result<Vec<String>> {
        match self.0.ask(&Question::IpsecLog { gateway: gateway_id.into(), keys: keys.to_vec() }).await? {
            Answer::Lines(l) => Ok(l),
            other => Err(unexpected(other)),
        }
    }
    async fn ipsec_diagnoses(&self, gateway_id: &str, tunnels: &[(String, String)], window_s: i64) -> Result<Vec<Option<Diagnosis>>> {
        match self.0.ask(&Question::IpsecDiagnoses { gateway: gateway_id.into(), tunnels: tunnels.to_vec(), window_s }).await? {
            Answer::Diagnoses(d) => Ok(d.into_iter().map(|d| d.map(Diagnosis::from)).collect()),
            other => Err(unexpected(other)),
        }
    }
}

/// A label for logs.
pub fn describe(q: &Question) -> Cow<'static, str> {
    match q {
        Question::SslClients { .. } => "ssl_clients".into(),
        Question::SslLog { .. } => "ssl_log".into(),
        Question::IpsecLog { .. } => "ipsec_log".into(),
        Question::IpsecDiagnoses { .. } => "ipsec_diagnoses".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_and_answers_cross_the_wire_unchanged() {
        let q = Question::IpsecDiagnoses { gateway: "vpn-1".into(), tunnels: vec![("tun-1".into(), "203.0.113.1".into())], window_s: 600 };
        let back: Question = serde_json::from_str(&serde_json::to_string(&q).unwrap()).unwrap();
        assert_eq!(back, q);
        let d = Diagnosis { code: "PskMismatch", reason: "r".into(), time_ms: 5, local: "l".into(), remote: "x".into(), severity: "Critical", log: "line".into() };
        let a = Answer::Diagnoses(vec![Some(WireDiagnosis::from(&d)), None]);
        let Answer::Diagnoses(back) = serde_json::from_str::<Answer>(&serde_json::to_string(&a).unwrap()).unwrap() else { panic!() };
        assert_eq!(back.into_iter().map(|d| d.map(Diagnosis::from)).collect::<Vec<_>>(), vec![Some(d), None]);
    }
}
