//! `vpngw-dataplane`: reconcilers and the planes they drive.
pub mod vici;
pub mod capabilities;
pub mod ipsec;
pub mod config;
pub mod diagnose;
pub mod lab;
pub mod health;
pub mod logs;
pub mod reconciler;
pub mod sslvpn;
