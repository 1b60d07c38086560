//! `vpngw-dataplane`: reconcilers and the planes they drive.
pub mod bgp;
pub mod capabilities;
pub mod charon;
pub mod config;
pub mod diagnose;
#[cfg(test)]
mod fake;
pub mod health;
pub mod ipsec;
pub mod lab;
pub mod logs;
pub mod plan;
pub mod process;
pub mod reconciler;
#[cfg(test)]
mod scenarios;
pub mod sslvpn;
pub mod vici;
