//! The webhook channel: one JSON POST per message. `format = "vrbulk"` (the default) posts the
//! whole [`Notice`] (its `text` is what Slack's incoming webhooks show); `slack` posts only
//! `{"text": …}`; `teams` a MessageCard. Every POST carries the message id in
//! `X-Vrbulk-Message-Id`, the same on every retry.

use serde::Deserialize;

use super::{Notice, SendError};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    #[default]
    Vrbulk,
    Slack,
    Teams,
}

/// Debug shows the URL without its path: a chat webhook's path is its secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    pub name: Option<String>,
    pub url: String,
    #[serde(default)]
    pub format: WebhookFormat,
}

impl std::fmt::Debug for WebhookChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookChannel")
            .field("name", &self.name)
            .field("url", &self.shown_url())
            .field("format", &self.format)
            .finish()
    }
}

impl WebhookChannel {
    pub(super) fn problems(&self) -> Vec<(String, String)> {
        match reqwest::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => Vec::new(),
            Ok(u) => vec![(
                "url".into(),
                format!("must be http or https, got {}", u.scheme()),
            )],
            Err(e) => vec![("url".into(), format!("not a URL: {e}"))],
        }
    }

    /// The URL without its path and query: a chat webhook's path is its secret.
    pub(super) fn shown_url(&self) -> String {
        match reqwest::Url::parse(&self.url) {
            Ok(u) => format!("{}://{}/…", u.scheme(), u.authority()),
            Err(_) => "(not a URL)".into(),
        }
    }

    pub(super) fn body(&self, n: &Notice) -> serde_json::Value {
        match self.format {
            WebhookFormat::Vrbulk => serde_json::to_value(n).unwrap_or_default(),
            WebhookFormat::Slack => serde_json::json!({ "text": n.text }),
            WebhookFormat::Teams => serde_json::json!({
                "@type": "MessageCard",
                "@context": "https://schema.org/extensions",
                "summary": n.title,
                "title": n.title,
                "text": n.text.replace('\n', "\n\n"),
            }),
        }
    }

    pub(super) async fn send(&self, n: &Notice) -> Result<(), SendError> {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| SendError::Webhook(format!("cannot build an HTTP client: {e}")))?;
        let shown = self.shown_url();
        let answer = client
            .post(&self.url)
            .header("X-Vrbulk-Message-Id", &n.id)
            .json(&self.body(n))
            .send()
            .await
            .map_err(|e| SendError::Webhook(format!("POST {shown}: {}", without_url(&e))))?;
        let status = answer.status();
        if status.is_success() {
            return Ok(());
        }
        let text = answer.text().await.unwrap_or_default();
        let text: String = text.chars().take(200).collect();
        Err(SendError::Webhook(format!(
            "POST {shown} answered {status}: {text}"
        )))
    }
}

/// reqwest's words without the URL (whose path may be a chat webhook's secret).
fn without_url(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut words = Vec::new();
    let mut cause: Option<&dyn std::error::Error> = e.source();
    while let Some(c) = cause {
        words.push(c.to_string());
        cause = c.source();
    }
    if words.is_empty() {
        "the request failed".into()
    } else {
        words.join(": ")
    }
}
