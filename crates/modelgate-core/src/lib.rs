//! Shared vocabulary of the modelgate request flow: what a request is
//! ([`RequestFacts`]), what it asks for ([`Protocol`], [`Operation`]), who sent it
//! ([`Principal`], [`Authenticated`]), and how every refusal becomes a response ([`Reject`]).

pub mod authenticated;
pub mod body;
pub mod body_rewrite;
pub mod body_tap;
pub mod facts;
pub mod model;
pub mod principal;
pub mod protocol;
pub mod reject;
pub mod respond;
pub mod secret;

pub use authenticated::Authenticated;
pub use body::{BoxBody, BoxError, empty, full};
pub use facts::{PeerIdentity, RequestFacts, spiffe_id};
pub use model::{ModelName, ModelNameError};
pub use principal::{AuthMethod, Grants, Principal};
pub use protocol::{ErrorShape, Operation, Protocol};
pub use reject::{AuthFailure, ExternalDenial, Reject};
pub use secret::{Secret, redact_url};
