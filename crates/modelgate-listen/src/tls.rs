//! TLS with rustls from PEM files. The certificate is served through a
//! resolver whose key pair can be swapped at run time (`reload`), so renewed
//! certificates apply to new connections without a restart.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use modelgate_config::Tls;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificates from {path}: {reason}")]
    Certs { path: PathBuf, reason: String },
    #[error("cannot read a private key from {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Certs {
        path: path.into(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate found".into()));
    }
    Ok(certs)
}

fn load_key(
    cfg: &Tls,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = load_certs(&cfg.cert)?;
    // The key's bytes never appear in errors.
    let key = PrivateKeyDer::from_pem_file(&cfg.key).map_err(|e| TlsError::Key {
        path: cfg.key.clone(),
        reason: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no PEM private key found".into(),
            other => format!("{other:?}").chars().take(120).collect(),
        },
    })?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Key {
            path: cfg.key.clone(),
            reason: e.to_string(),
        })?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match().map_err(|e| TlsError::Key {
        path: cfg.key.clone(),
        reason: format!(
            "does not match the certificate in {}: {e}",
            cfg.cert.display()
        ),
    })?;
    Ok(Arc::new(ck))
}

#[derive(Debug)]
struct Resolver {
    current: ArcSwap<CertifiedKey>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// A listener's TLS configuration and its reloadable certificate.
pub struct TlsSetup {
    cfg: Tls,
    provider: Arc<rustls::crypto::CryptoProvider>,
    resolver: Arc<Resolver>,
    server: Arc<ServerConfig>,
}

impl TlsSetup {
    /// Loads certificate, key and client CA bundle; fails with the file at fault.
    pub fn new(cfg: &Tls, http2: bool) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load_key(cfg, &provider)?;
        let resolver = Arc::new(Resolver {
            current: ArcSwap::new(key),
        });
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?;
        let builder = match &cfg.client_ca {
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                for c in load_certs(ca)? {
                    roots.add(c).map_err(|e| TlsError::Certs {
                        path: ca.clone(),
                        reason: e.to_string(),
                    })?;
                }
                let v =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
                let v = if cfg.require_client_cert {
                    v
                } else {
                    v.allow_unauthenticated()
                };
                builder.with_client_cert_verifier(
                    v.build().map_err(|e| TlsError::Setup(e.to_string()))?,
                )
            }
            None => builder.with_no_client_auth(),
        };
        let mut server = builder.with_cert_resolver(resolver.clone());
        server.alpn_protocols = if http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(Self {
            cfg: cfg.clone(),
            provider,
            resolver,
            server: Arc::new(server),
        })
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }

    /// Re-reads the certificate and key; on error the old pair stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_key(&self.cfg, &self.provider)?;
        self.resolver.current.store(key);
        Ok(())
    }
}

/// The identity of the verified client certificate, if the peer sent one:
/// its SAN URIs (SPIFFE IDs), SAN DNS names and subject CN. The chain was
/// already verified against the listener's client CA during the handshake.
pub fn peer_identity(conn: &rustls::ServerConnection) -> Option<modelgate_core::PeerIdentity> {
    conn.peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| cert_identity(leaf.as_ref()))
}

/// The identity fields of a DER certificate; `None` if it does not parse.
pub fn cert_identity(der: &[u8]) -> Option<modelgate_core::PeerIdentity> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut id = modelgate_core::PeerIdentity::default();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::URI(u) => id.uris.push((*u).to_string()),
                GeneralName::DNSName(d) => id.dns.push(d.to_ascii_lowercase()),
                _ => {}
            }
        }
    }
    id.common_name = cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string);
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_dns_and_cn_are_read() {
        let mut params =
            rcgen::CertificateParams::new(vec!["scorer.team-a.svc".to_string()]).unwrap();
        params.subject_alt_names.push(rcgen::SanType::URI(
            "spiffe://cluster.local/ns/team-a/sa/scorer"
                .try_into()
                .unwrap(),
        ));
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "scorer");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let id = cert_identity(cert.der()).unwrap();
        assert_eq!(id.uris, ["spiffe://cluster.local/ns/team-a/sa/scorer"]);
        assert_eq!(id.dns, ["scorer.team-a.svc"]);
        assert_eq!(id.common_name.as_deref(), Some("scorer"));
        assert_eq!(
            id.principal().as_deref(),
            Some("cluster.local/ns/team-a/sa/scorer")
        );
        assert!(cert_identity(b"not a certificate").is_none());
    }
}
