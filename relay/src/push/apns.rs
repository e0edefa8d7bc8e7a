//! APNs over HTTP/2 with token-based authentication: an ES256 JWT signed with the team's
//! `.p8` key (cached for at most 50 minutes, as Apple asks: not more often than every 20,
//! never older than 60), and the headers a background wake needs (`apns-push-type:
//! background`, `apns-priority: 5`, `apns-topic`).
//!
//! A thin client over reqwest (HTTP/2 only) rather than the `a2` crate: `a2` has no way to
//! point it at another host or to trust another CA, so it could not be tested against a local
//! stand-in; the protocol is one POST.

use std::path::Path;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{read_body, Attempt};
use crate::webhooks::{retry_after, transport_error};
use wire::push::ApnsEnvironment;

/// A provider token is renewed after this long.
const TOKEN_LIFE: Duration = Duration::from_secs(50 * 60);
const PRODUCTION: &str = "https://api.push.apple.com";
const SANDBOX: &str = "https://api.sandbox.push.apple.com";

/// An APNs sender.
pub struct Apns {
    client: reqwest::Client,
    production: reqwest::Url,
    sandbox: reqwest::Url,
    key: EncodingKey,
    key_id: String,
    team_id: String,
    topic: String,
    cached: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for Apns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Apns")
            .field("production", &self.production.as_str())
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

impl Apns {
    /// Reads the `.p8` key at `key`. `base_url` replaces both Apple hosts (stand-ins).
    /// Errors never show the key.
    pub fn new(
        client: reqwest::Client,
        key: &Path,
        key_id: &str,
        team_id: &str,
        topic: &str,
        base_url: Option<&str>,
    ) -> Result<Apns, String> {
        let pem =
            std::fs::read(key).map_err(|e| format!("reading --apns-key {}: {e}", key.display()))?;
        let key_pem = EncodingKey::from_ec_pem(&pem).map_err(|_| {
            format!(
                "--apns-key {}: not an EC (P-256) private key in PEM (.p8)",
                key.display()
            )
        })?;
        let plain = |s: &str| {
            !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric())
        };
        if !plain(key_id) {
            return Err("--apns-key-id must be the key's id (letters and digits)".into());
        }
        if !plain(team_id) {
            return Err("--apns-team-id must be the team id (letters and digits)".into());
        }
        let topic_ok =
            !topic.is_empty() && topic.len() <= 255 && topic.chars().all(|c| c.is_ascii_graphic());
        if !topic_ok {
            return Err("--apns-topic must be the app's bundle id".into());
        }
        let url = |s: &str| {
            reqwest::Url::parse(s).map_err(|e| format!("--apns-base-url is not a URL ({e})"))
        };
        let (production, sandbox) = match base_url {
            Some(b) => (url(b)?, url(b)?),
            None => (url(PRODUCTION)?, url(SANDBOX)?),
        };
        Ok(Apns {
            client,
            production,
            sandbox,
            key: key_pem,
            key_id: key_id.to_string(),
            team_id: team_id.to_string(),
            topic: topic.to_string(),
            cached: Mutex::new(None),
        })
    }

    /// The provider token: cached, or signed anew.
    async fn provider_token(&self) -> Result<String, Attempt> {
        let mut cached = self.cached.lock().await;
        if let Some((t, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key_id.clone());
        let claims = json!({"iss": self.team_id, "iat": chrono::Utc::now().timestamp()});
        let t = jsonwebtoken::encode(&header, &claims, &self.key).map_err(|e| Attempt::Failed {
            error: format!("signing the APNs provider token: {e}"),
        })?;
        *cached = Some((t.clone(), Instant::now() + TOKEN_LIFE));
        Ok(t)
    }

    /// Sends the wake-up to the device token `token` (hex, checked when stored).
    pub async fn send(&self, token: &str, env: Option<ApnsEnvironment>) -> Attempt {
        let jwt = match self.provider_token().await {
            Ok(t) => t,
            Err(a) => return a,
        };
        let base = match env {
            Some(ApnsEnvironment::Sandbox) => &self.sandbox,
            _ => &self.production,
        };
        let Ok(url) = base.join(&format!("3/device/{token}")) else {
            return Attempt::Invalid {
                error: "the device token does not fit in a URL".into(),
            };
        };
        let body =
            json!({"aps": {"content-available": 1}, wire::push::DATA_KEY: wire::push::DATA_SYNC});
        let resp = match self
            .client
            .post(url)
            .header(reqwest::header::AUTHORIZATION, format!("bearer {jwt}"))
            .header("apns-push-type", "background")
            .header("apns-priority", "5")
            .header("apns-topic", &self.topic)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                return Attempt::Retry {
                    error: transport_error(e),
                    retry_after: None,
                }
            }
        };
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let body = read_body(resp).await;
        let attempt = classify(status, after, &body);
        if matches!(&attempt, Attempt::Retry { error, .. } if error.contains("ProviderToken")) {
            *self.cached.lock().await = None;
        }
        attempt
    }
}

/// The outcome of an APNs answer.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Attempt {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let reason: String = v
        .get("reason")
        .and_then(Value::as_str)
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(64)
        .collect();
    let error = if reason.is_empty() {
        format!("APNs answered HTTP {status}")
    } else {
        format!("APNs answered HTTP {status} {reason}")
    };
    match (status, reason.as_str()) {
        (200, _) => Attempt::Sent,
        // Gone, malformed, or a token of another app (topic): no later attempt can succeed.
        (410, _) | (_, "BadDeviceToken") | (_, "Unregistered") | (_, "DeviceTokenNotForTopic") => {
            Attempt::Invalid { error }
        }
        (403, "ExpiredProviderToken") | (403, "InvalidProviderToken") => {
            Attempt::Retry { error, retry_after }
        }
        (429, _) | (500..=599, _) => Attempt::Retry { error, retry_after },
        _ => Attempt::Failed { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(200, None, b""), Attempt::Sent);
        assert!(matches!(
            classify(410, None, br#"{"reason":"Unregistered"}"#),
            Attempt::Invalid { .. }
        ));
        assert!(matches!(
            classify(400, None, br#"{"reason":"BadDeviceToken"}"#),
            Attempt::Invalid { .. }
        ));
        assert!(matches!(
            classify(403, None, br#"{"reason":"ExpiredProviderToken"}"#),
            Attempt::Retry { .. }
        ));
        assert!(matches!(
            classify(429, None, br#"{"reason":"TooManyRequests"}"#),
            Attempt::Retry { .. }
        ));
        assert!(matches!(classify(503, None, b""), Attempt::Retry { .. }));
        assert!(matches!(
            classify(400, None, br#"{"reason":"DeviceTokenNotForTopic"}"#),
            Attempt::Invalid { .. }
        ));
        assert_eq!(
            classify(400, None, br#"{"reason":"TopicDisallowed"}"#),
            Attempt::Failed {
                error: "APNs answered HTTP 400 TopicDisallowed".into()
            }
        );
    }
}
