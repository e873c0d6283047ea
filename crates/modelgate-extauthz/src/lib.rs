//! Envoy external authorization in Authorino's place: the gRPC v3
//! `envoy.service.auth.v3.Authorization/Check` service and the HTTP flavour
//! (Istio `envoyExtAuthzHttp`), on their own listener (plain, TLS or mTLS).
//! Both are thin adapters over the one decision function
//! ([`modelgate_app::Adapter`]): a `CheckRequest` becomes its input, its
//! answer becomes a `CheckResponse` — nothing else is decided here.

pub mod bench_support;
mod convert;
mod grpc;
mod http_flavour;
mod serve;

pub use convert::{ask_from_check, check_response};
pub use envoy_types::ext_authz::v3::pb;
pub use serve::addon;

/// The gRPC method Envoy calls.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";
