//! `vpngw-bench`: the benchmarks behind `vpngw bench` ([`api`]: the signed API beside bare
//! SQLite and moto; [`postgres`]: servers on PostgreSQL beside bare PostgreSQL) and `vpngw bench-dataplane` ([`dataplane`]: tunnels beside bare strongSwan; [`bgp`]: BGP beside BIRD by hand; [`fleet`]: gateway agents
//! and failover, with `--postgres`).
//! Every figure is printed beside its baseline, measured in the same run.

pub mod api;
pub mod bgp;
pub mod dataplane;
pub mod fleet;
pub mod postgres;
