//! `vpngw-dataplane`: reconcilers and the planes they drive.
pub mod capabilities;
pub mod config;
pub mod diagnose;
pub mod health;
pub mod ipsec;
pub mod lab;
pub mod logs;
pub mod reconciler;
pub mod sslvpn;
pub mod vici;
