//! The simulator's HTTPS identity: a self-signed certificate for `localhost` and `127.0.0.1`,
//! generated at start, and its SHA-256 thumbprint in the vSphere style (`AB:CD:…`) so that tests
//! can exercise certificate pinning.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest, Sha256};

use super::error::SimError;

pub(crate) struct TlsIdentity {
    pub config: Arc<rustls::ServerConfig>,
    pub certificate_pem: String,
    pub thumbprint: String,
}

/// A fresh certificate and a rustls server configuration (ring provider, HTTP/2 and HTTP/1.1).
pub(crate) fn self_signed() -> Result<TlsIdentity, SimError> {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    let der: CertificateDer<'static> = certified.cert.der().clone();
    let thumbprint = thumbprint(der.as_ref());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    // The crate enables only the ring provider; naming it here avoids depending on a
    // process-wide default that another part of the program may or may not have installed.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![der], key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsIdentity {
        config: Arc::new(config),
        certificate_pem: certified.cert.pem(),
        thumbprint,
    })
}

/// SHA-256 of the DER certificate, uppercase hex pairs joined by colons.
pub fn thumbprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}
