//! How the client trusts the appliance's certificate.
//!
//! VR appliances usually carry a certificate from the vCenter's own CA (VMCA) or a self-signed
//! one, so besides normal verification an operator can give the CA as a PEM file, or pin the
//! certificate by the SHA-256 thumbprint shown on the appliance's management page
//! (`AB:CD:…`). Turning verification off needs an explicit `insecure = true` and is warned about.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// The trust setting of one connection.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TlsTrust {
    /// Public roots, plus the CA certificates of `ca_file` when given.
    #[default]
    Verify,
    VerifyWithCa(PathBuf),
    /// Accept exactly the certificate with this SHA-256 digest, whatever its issuer and name.
    Pinned(Thumbprint),
    /// No verification at all.
    Insecure,
}

/// A SHA-256 certificate fingerprint.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Thumbprint([u8; 32]);

impl Thumbprint {
    pub fn of_der(der: &[u8]) -> Self {
        Thumbprint(Sha256::digest(der).into())
    }

    /// Accepts `AB:CD:…`, `ab cd …` or plain hex; refuses SHA-1 thumbprints with a hint, since
    /// older vSphere screens still show those.
    pub fn parse(text: &str) -> Result<Self, String> {
        let digits: Vec<char> = text
            .chars()
            .filter(|c| !matches!(c, ':' | ' ' | '-'))
            .collect();
        let all_hex = digits.iter().all(char::is_ascii_hexdigit);
        if digits.len() == 40 && all_hex {
            return Err(format!(
                "`{text}` is a SHA-1 thumbprint; vrbulk pins certificates by SHA-256 (64 hex digits), \
                 e.g. from `openssl x509 -noout -fingerprint -sha256`"
            ));
        }
        if digits.len() != 64 {
            return Err(format!(
                "`{text}` is not a SHA-256 thumbprint: expected 64 hex digits (colons allowed), found {}",
                digits.len()
            ));
        }
        // Digits, not bytes: a multi-byte character must be refused, not sliced through.
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (Some(high), Some(low)) = (pair[0].to_digit(16), pair[1].to_digit(16)) else {
                return Err(format!(
                    "`{text}` is not a SHA-256 thumbprint: not hexadecimal"
                ));
            };
            *byte = (high * 16 + low) as u8;
        }
        Ok(Thumbprint(out))
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({self})")
    }
}

/// A rustls client configuration that trusts exactly one certificate.
pub(crate) fn pinned_config(pin: Thumbprint) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedVerifier { pin, provider }))
            .with_no_client_auth(),
    )
}

/// The thumbprint of the certificate the server at `url` presents, read by a handshake that
/// trusts nothing and sends no request: for telling an operator exactly what to pin.
pub(crate) async fn presented_thumbprint(
    url: &reqwest::Url,
    timeout: std::time::Duration,
) -> Option<Thumbprint> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let seen = Arc::new(std::sync::Mutex::new(None));
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .ok()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordingVerifier {
            seen: seen.clone(),
            provider,
        }))
        .with_no_client_auth();
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(config)
        .timeout(timeout)
        .build()
        .ok()?;
    // The verifier refuses every certificate, so this ends in the handshake.
    let _ = http.head(url.clone()).send().await;
    let found = *seen.lock().unwrap_or_else(|p| p.into_inner());
    found
}

/// Notes the server's certificate and refuses it.
#[derive(Debug)]
struct RecordingVerifier {
    seen: Arc<std::sync::Mutex<Option<Thumbprint>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(Thumbprint::of_der(end_entity.as_ref()));
        Err(rustls::Error::General(
            "only reading the certificate".into(),
        ))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "only reading the certificate".into(),
        ))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General(
            "only reading the certificate".into(),
        ))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug)]
struct PinnedVerifier {
    pin: Thumbprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let seen = Thumbprint::of_der(end_entity.as_ref());
        if seen == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate has thumbprint {seen}, not the pinned {}",
                self.pin
            )))
        }
    }

    // The pin replaces chain validation, not the proof that the peer holds the certificate's key.
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprint_round_trips_in_the_vsphere_form() {
        let t = Thumbprint::of_der(b"certificate");
        let shown = t.to_string();
        assert_eq!(shown.len(), 64 + 31);
        assert_eq!(Thumbprint::parse(&shown), Ok(t));
        assert_eq!(
            Thumbprint::parse(&shown.replace(':', "").to_lowercase()),
            Ok(t)
        );
    }

    #[test]
    fn bad_thumbprints_are_refused_without_panicking() {
        let not_hex = |t: &str| {
            let err = Thumbprint::parse(t).unwrap_err();
            assert!(err.contains("not hexadecimal"), "{t}: {err}");
        };
        not_hex(&"g".repeat(64));
        // 64 bytes in 63 characters: slicing by bytes used to cut the `é` in half and panic.
        let sixty_four_bytes = format!("{}é", "a".repeat(62));
        assert_eq!(sixty_four_bytes.len(), 64);
        let err = Thumbprint::parse(&sixty_four_bytes).unwrap_err();
        assert!(err.contains("found 63"), "{err}");
        // 64 characters, one of them multi-byte.
        not_hex(&format!("{}é", "a".repeat(63)));
        not_hex(&format!("{}\u{1F512}", "A".repeat(63)));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(text in proptest::prelude::any::<String>()) {
            let _ = Thumbprint::parse(&text);
        }

        /// Near misses: hex digits, separators and multi-byte characters, at about the right
        /// length, where a parser that slices bytes would break.
        #[test]
        fn parse_never_panics_on_near_misses(text in "[0-9a-fA-F:é\u{1F512} -]{56,72}") {
            let _ = Thumbprint::parse(&text);
        }

        #[test]
        fn parse_reads_back_what_display_writes(bytes in proptest::prelude::any::<[u8; 32]>()) {
            let t = Thumbprint(bytes);
            proptest::prop_assert_eq!(Thumbprint::parse(&t.to_string()), Ok(t));
            proptest::prop_assert_eq!(Thumbprint::parse(&t.to_string().to_lowercase()), Ok(t));
        }
    }

    #[test]
    fn sha1_thumbprints_are_refused_with_a_hint() {
        let err = Thumbprint::parse("AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD")
            .unwrap_err();
        assert!(err.contains("SHA-1"), "{err}");
        assert!(Thumbprint::parse("xyz")
            .unwrap_err()
            .contains("64 hex digits"));
    }
}
