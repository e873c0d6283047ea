//! Routing: a request's normalised path, method, host and headers decide which
//! model, protocol and operation it is, and which path is sent upstream.
//! Anything that is not a known protocol path is refused here and never forwarded.

pub mod normalize;
mod protocol_path;
mod table;

pub use normalize::{
    NormalizeError, normalize_host, normalize_host_owned, normalize_path, normalized_path,
};
pub use protocol_path::{ParsedPath, parse_protocol_path};
pub use table::{ModelRef, RouteMatch, RouteTable, is_admin_path};

#[cfg(test)]
mod tests;
