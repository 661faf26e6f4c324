//! The e-mail channel: one mail per message through an SMTP relay (lettre), with STARTTLS
//! (the default, port 587), implicit TLS (`security = "tls"`, port 465) or, for a relay on the
//! same host only, none. The password comes from the environment variable `password_env`
//! names (default `VRBULK_SMTP_PASSWORD`) at the moment of sending: it is never in the settings
//! file, the queue or a log. The Message-ID is the message's own id, for deduplication.

use std::path::PathBuf;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Deserialize;

use super::{Notice, SendError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    #[default]
    Starttls,
    Tls,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailChannel {
    pub name: Option<String>,
    /// The SMTP relay's host name.
    pub server: String,
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    pub from: String,
    pub to: Vec<String>,
    /// The user to log in as; without it, no login.
    pub user: Option<String>,
    /// The environment variable holding the password [default: VRBULK_SMTP_PASSWORD].
    pub password_env: Option<String>,
    /// The relay's CA (PEM), where it is not publicly trusted.
    pub ca_file: Option<String>,
    /// Attach the run's report file when the message names one [default: true].
    pub attach_report: Option<bool>,
}

/// Reports larger than this are named by path, not attached.
const MAX_ATTACHMENT: u64 = 10 * 1024 * 1024;

impl EmailChannel {
    pub(super) fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.server.trim().is_empty() {
            out.push(("server".into(), "must name the SMTP relay".into()));
        }
        if self.from.parse::<Mailbox>().is_err() {
            out.push((
                "from".into(),
                format!("not a mail address: {:?}", self.from),
            ));
        }
        if self.to.is_empty() {
            out.push(("to".into(), "must list at least one address".into()));
        }
        for to in &self.to {
            if to.parse::<Mailbox>().is_err() {
                out.push(("to".into(), format!("not a mail address: {to:?}")));
            }
        }
        if self.security == Security::None && self.user.is_some() {
            out.push((
                "user".into(),
                "a login needs security = \"starttls\" or \"tls\": the password would cross the \
                 network in the clear"
                    .into(),
            ));
        }
        out
    }

    fn password_env(&self) -> &str {
        self.password_env
            .as_deref()
            .unwrap_or("VRBULK_SMTP_PASSWORD")
    }

    fn mail(&self, n: &Notice) -> Result<Message, SendError> {
        let bad = |e: String| SendError::Email(e);
        let from: Mailbox = self
            .from
            .parse()
            .map_err(|e| bad(format!("from {:?}: {e}", self.from)))?;
        let mut builder = Message::builder()
            .from(from)
            .subject(n.title.clone())
            .message_id(Some(format!("<{}@vrbulk>", n.id)));
        for to in &self.to {
            let to: Mailbox = to.parse().map_err(|e| bad(format!("to {to:?}: {e}")))?;
            builder = builder.to(to);
        }
        let text = SinglePart::plain(n.text.clone());
        let attached = n
            .report
            .as_ref()
            .filter(|_| self.attach_report.unwrap_or(true))
            .map(PathBuf::from)
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.len() <= MAX_ATTACHMENT))
            .and_then(|p| {
                Some((
                    p.file_name()?.to_string_lossy().into_owned(),
                    std::fs::read(&p).ok()?,
                ))
            });
        let mail = match attached {
            Some((file, bytes)) => {
                let kind =
                    ContentType::parse(content_type(&file)).unwrap_or(ContentType::TEXT_PLAIN);
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(text)
                        .singlepart(Attachment::new(file).body(bytes, kind)),
                )
            }
            None => builder.singlepart(text),
        };
        mail.map_err(|e| bad(format!("cannot build the mail: {e}")))
    }

    pub(super) async fn send(&self, n: &Notice, base: Option<&PathBuf>) -> Result<(), SendError> {
        let err = |what: &str, e: &dyn std::fmt::Display| {
            SendError::Email(format!("{what} {}: {e}", self.server))
        };
        let tls_params = || -> Result<TlsParameters, SendError> {
            let mut b = TlsParameters::builder(self.server.clone());
            if let Some(ca) = &self.ca_file {
                let path = super::ca_path(ca, base);
                let pem = std::fs::read(&path).map_err(|e| {
                    SendError::Email(format!("cannot read {}: {e}", path.display()))
                })?;
                let cert = Certificate::from_pem(&pem)
                    .map_err(|e| SendError::Email(format!("{}: {e}", path.display())))?;
                b = b.add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| SendError::Email(format!("TLS setup: {e}")))
        };
        let (tls, port) = match self.security {
            Security::Starttls => (Tls::Required(tls_params()?), 587),
            Security::Tls => (Tls::Wrapper(tls_params()?), 465),
            Security::None => (Tls::None, 25),
        };
        let mut transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.server)
            .port(self.port.unwrap_or(port))
            .tls(tls)
            .timeout(Some(std::time::Duration::from_secs(10)));
        if let Some(user) = &self.user {
            let var = self.password_env();
            let password = std::env::var(var).map_err(|_| {
                SendError::Email(format!(
                    "{var} is not set: the SMTP password of {user} comes from the environment"
                ))
            })?;
            transport = transport.credentials(Credentials::new(user.clone(), password));
        }
        let mail = self.mail(n)?;
        transport
            .build()
            .send(mail)
            .await
            .map_err(|e| err("sending through", &e))?;
        Ok(())
    }
}

fn content_type(file: &str) -> &'static str {
    match file.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "csv" => "text/csv; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        _ => "application/octet-stream",
    }
}
