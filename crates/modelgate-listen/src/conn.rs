//! Facts about the connection a request arrived on.

use std::net::SocketAddr;

use modelgate_core::PeerIdentity;

#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Index of the listener in the configuration.
    pub listener: usize,
    pub client: SocketAddr,
    pub local: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The verified client certificate's identity, on mTLS listeners.
    pub peer: Option<PeerIdentity>,
}
