//! `vpngw-server`: the process around the service. The HTTP front ([`http`]), the operator's
//! configuration ([`config`]), start-up, wiring of store, service and embedded data plane, and
//! operator commands ([`server`]), a fleet's gateway agent ([`agent`]), the local certificate store's import ([`cert`]), and a
//! signing client ([`client`]) for the benchmarks and tests. It holds no API logic of its own.

pub mod agent;
pub mod cert;
pub mod client;
pub mod config;
pub mod console;
pub mod demo;
pub mod http;
pub mod server;
pub mod tls;
