//! `vpngw`: the binary crate. HTTP front ([`http`]), configuration ([`config`]), start-up and
//! operator commands ([`server`]), and the benchmarks ([`bench`], [`bench_dataplane`]). The only crate that knows
//! everything; it holds no API logic of its own.

pub mod bench;
pub mod bench_dataplane;
pub mod cert;
pub mod client;
pub mod config;
pub mod http;
pub mod server;
