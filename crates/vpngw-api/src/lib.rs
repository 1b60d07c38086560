//! `vpngw-api`: the wire contract of the Alibaba Cloud VPN Gateway API (product Vpc, 2016-04-28).
//!
//! The action list ([`actions`]), the RPC parameter codec ([`params`]), the one error table
//! ([`error`]), both signature schemes ([`sign`]) and the response renderers ([`render`]).
//!
//! This crate is pure: no tokio, no database, no HTTP server. It must not learn about storage
//! or the data plane; it only knows what goes over the wire.

pub mod actions;
pub mod error;
pub mod params;
pub mod render;
pub mod sign;

pub use actions::{Access, ActionSpec, ACTIONS};
pub use error::{ApiError, Code};
pub use params::Params;

/// The only API version this service speaks.
pub const VERSION: &str = "2016-04-28";

/// Parameters every action accepts that are not the action's own: they are removed before the
/// handler sees the parameters.
pub const COMMON_PARAMS: &[&str] = &[
    "Action",
    "Version",
    "Format",
    "AccessKeyId",
    "Signature",
    "SignatureMethod",
    "SignatureVersion",
    "SignatureNonce",
    "SignatureType",
    "Timestamp",
    "OwnerId",
    "OwnerAccount",
    "ResourceOwnerId",
    "ResourceOwnerAccount",
    "SecurityToken",
];
