//! Listening: accepts TCP (and TLS) connections and serves HTTP/1.1 and
//! HTTP/2 on them, handing each request with its connection facts to a
//! handler; bounds connections (cap, deadlines, HTTP/2 limits); on shutdown,
//! stops accepting and drains in-flight requests.

mod bind;
mod conn;
mod deadline;
mod detect;
mod gate;
mod serve;
pub mod tls;
mod watchdog;

pub use bind::bind_shared;
pub use conn::ConnInfo;
pub use deadline::Tracked;
pub use gate::{ClosedLabels, Gate, ListenStats, ListenerLabel};
pub use serve::{Handler, ServeOptions, serve};
pub use tls::{TlsError, TlsSetup};
