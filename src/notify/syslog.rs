//! The syslog channel: each message as one RFC 5424 record, formatted by `fasyslog` (header,
//! structured data and its escaping), sent over UDP (RFC 5426: one datagram), TCP (RFC 6587
//! octet counting) or TLS (RFC 5425, the same framing). The transports are a few lines each
//! here rather than fasyslog's senders: those are blocking, and its TLS sender brings a second
//! crypto library (aws-lc) into the build, where vrbulk already has rustls with ring.
//!
//! The record's structured data is one element `vrbulk@32473` with the message's `id`,
//! `kind`, `batch`, and for each finding of a digest the repeated params `vm`, `finding` and
//! `change`, in order (RFC 5424 lets a param name repeat within an element). 32473 is the
//! enterprise number RFC 5612 reserves for examples: vrbulk has none of its own.

use std::path::PathBuf;
use std::sync::Arc;

use fasyslog::format::SyslogContext;
use fasyslog::{Facility, SDElement, Severity};
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{Notice, SendError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyslogTransport {
    #[default]
    Udp,
    Tcp,
    Tls,
}

impl SyslogTransport {
    pub fn word(self) -> &'static str {
        match self {
            SyslogTransport::Udp => "UDP",
            SyslogTransport::Tcp => "TCP",
            SyslogTransport::Tls => "TLS",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogChannel {
    pub name: Option<String>,
    /// `host:port` of the collector.
    pub address: String,
    #[serde(default)]
    pub transport: SyslogTransport,
    /// `local0` … `local7`, `user` (the default) or `daemon`.
    pub facility: Option<String>,
    /// TLS: the collector's CA (PEM); without it, the public web roots.
    pub ca_file: Option<String>,
}

/// The SD-ID of vrbulk's element (see the module's doc).
pub const SD_ID: &str = "vrbulk@32473";
/// A digest lists at most this many findings in its structured data; the text has them all.
const SD_FINDINGS: usize = 50;

impl SyslogChannel {
    pub(super) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if host_port(&self.address).is_none() {
            out.push((
                "address".into(),
                format!("must be host:port, got {:?}", self.address),
            ));
        }
        if let Some(f) = &self.facility {
            if facility(f).is_none() {
                out.push((
                    "facility".into(),
                    format!("must be user, daemon or local0 … local7, got {f:?}"),
                ));
            }
        }
        if self.ca_file.is_some() && self.transport != SyslogTransport::Tls {
            out.push(("ca_file".into(), "is only for transport = \"tls\"".into()));
        }
        out
    }

    /// The RFC 5424 record of `n`.
    pub fn record(&self, n: &Notice) -> Result<String, SendError> {
        let mut ctx = SyslogContext::new();
        ctx.appname("vrbulk").hostname(n.host.clone());
        ctx.facility(
            self.facility
                .as_deref()
                .and_then(facility)
                .unwrap_or(Facility::USER),
        );
        let severity = match n.severity.as_str() {
            "warning" => Severity::WARNING,
            "notice" => Severity::NOTICE,
            _ => Severity::INFORMATIONAL,
        };
        let sd = |e: String| SendError::Syslog(format!("structured data: {e}"));
        let mut element = SDElement::new(SD_ID).map_err(sd)?;
        element.add_param("id", n.id.clone()).map_err(sd)?;
        element.add_param("kind", n.kind.clone()).map_err(sd)?;
        if let Some(b) = n.batch {
            element.add_param("batch", b.to_string()).map_err(sd)?;
        }
        for f in n.findings.iter().take(SD_FINDINGS) {
            element
                .add_param("vm", f.vm.clone().unwrap_or_else(|| f.vm_id.clone()))
                .map_err(sd)?;
            element
                .add_param("finding", f.finding.clone())
                .map_err(sd)?;
            element.add_param("change", f.change.clone()).map_err(sd)?;
        }
        // One line: collectors split records on newlines over UDP more often than not.
        let text = n.text.trim_end().replace('\n', " | ");
        Ok(ctx
            .format_rfc5424(severity, Some(n.kind.clone()), vec![element], Some(text))
            .to_string())
    }

    pub(super) async fn send(&self, n: &Notice, base: Option<&PathBuf>) -> Result<(), SendError> {
        let record = self.record(n)?;
        let err = |what: &str, e: std::io::Error| {
            SendError::Syslog(format!(
                "{what} {} ({}): {e}",
                self.address,
                self.transport.word()
            ))
        };
        match self.transport {
            SyslogTransport::Udp => {
                let socket = tokio::net::UdpSocket::bind(bind_any(&self.address))
                    .await
                    .map_err(|e| err("cannot open a socket for", e))?;
                socket
                    .send_to(record.as_bytes(), &self.address)
                    .await
                    .map_err(|e| err("cannot send to", e))?;
            }
            SyslogTransport::Tcp => {
                let mut stream = tokio::net::TcpStream::connect(&self.address)
                    .await
                    .map_err(|e| err("cannot connect to", e))?;
                write_framed(&mut stream, &record)
                    .await
                    .map_err(|e| err("cannot send to", e))?;
            }
            SyslogTransport::Tls => {
                let roots = match &self.ca_file {
                    Some(ca) => {
                        super::roots_from(&super::ca_path(ca, base)).map_err(SendError::Syslog)?
                    }
                    None => rustls::RootCertStore {
                        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                    },
                };
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| SendError::Syslog(format!("TLS setup: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let (host, _) = host_port(&self.address)
                    .ok_or_else(|| SendError::Syslog("address must be host:port".into()))?;
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| SendError::Syslog(format!("{host}: {e}")))?;
                let tcp = tokio::net::TcpStream::connect(&self.address)
                    .await
                    .map_err(|e| err("cannot connect to", e))?;
                let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                    .connect(name, tcp)
                    .await
                    .map_err(|e| err("TLS handshake with", e))?;
                write_framed(&mut tls, &record)
                    .await
                    .map_err(|e| err("cannot send to", e))?;
            }
        }
        Ok(())
    }
}

/// RFC 6587 octet counting: `LEN SP RECORD`, then a clean close so that the collector has it.
async fn write_framed<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    record: &str,
) -> std::io::Result<()> {
    w.write_all(format!("{} {record}", record.len()).as_bytes())
        .await?;
    w.flush().await?;
    w.shutdown().await
}

/// The wildcard address of the collector's family, for the sending socket.
fn bind_any(address: &str) -> &'static str {
    if address.starts_with('[') {
        "[::]:0"
    } else {
        "0.0.0.0:0"
    }
}

fn host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().ok()?;
    (!host.is_empty() && port > 0).then_some((host, port))
}

fn facility(name: &str) -> Option<Facility> {
    Some(match name.to_ascii_lowercase().as_str() {
        "user" => Facility::USER,
        "daemon" => Facility::DAEMON,
        "local0" => Facility::LOCAL0,
        "local1" => Facility::LOCAL1,
        "local2" => Facility::LOCAL2,
        "local3" => Facility::LOCAL3,
        "local4" => Facility::LOCAL4,
        "local5" => Facility::LOCAL5,
        "local6" => Facility::LOCAL6,
        "local7" => Facility::LOCAL7,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_rfc5424_with_the_messages_structured_data() {
        let c = SyslogChannel {
            name: None,
            address: "127.0.0.1:514".into(),
            transport: SyslogTransport::Udp,
            facility: Some("local3".into()),
            ca_file: None,
        };
        let mut n = Notice::new(
            "test",
            "t".into(),
            "line \"one\"\nline two".into(),
            "warning",
        );
        n.batch = Some(7);
        let r = c.record(&n).unwrap();
        // local3 (19) * 8 + warning (4)
        assert!(r.starts_with("<156>1 "), "{r}");
        assert!(
            r.contains(&format!(
                "[vrbulk@32473 id=\"{}\" kind=\"test\" batch=\"7\"]",
                n.id
            )),
            "{r}"
        );
        assert!(r.ends_with(" line \"one\" | line two"), "{r}");
    }

    #[test]
    fn addresses_and_facilities_are_checked() {
        let c = SyslogChannel {
            name: None,
            address: "collector".into(),
            transport: SyslogTransport::Udp,
            facility: Some("local9".into()),
            ca_file: Some("ca.pem".into()),
        };
        let keys: Vec<String> = c.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["address", "facility", "ca_file"]);
    }
}
