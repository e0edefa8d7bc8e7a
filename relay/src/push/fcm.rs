//! FCM HTTP v1: a data-only, high-priority message to one registration token, authorized by
//! an OAuth 2 access token obtained with the service account's signed JWT assertion (RS256,
//! RFC 7523) and cached until shortly before it expires.
//!
//! A thin client over reqwest rather than `gcp_auth` + an FCM crate: the token endpoint comes
//! from the service-account file and the API base URL is configurable, so the tests can run
//! both against local stand-ins; the protocol is two POSTs.

use std::path::Path;
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{read_body, Attempt};
use crate::webhooks::{retry_after, transport_error};

/// OAuth 2 scope of the FCM send API.
const SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// An access token is renewed this long before it expires.
const RENEW_BEFORE: Duration = Duration::from_secs(300);

/// The fields of a service-account key file that are used.
#[derive(Deserialize)]
struct ServiceAccount {
    client_email: String,
    private_key: String,
    token_uri: String,
    #[serde(default)]
    project_id: Option<String>,
}

/// An FCM sender: the service account, the project, and the cached access token.
pub struct Fcm {
    client: reqwest::Client,
    send_url: reqwest::Url,
    token_uri: reqwest::Url,
    email: String,
    key: EncodingKey,
    cached: Mutex<Option<(String, Instant)>>,
}

impl std::fmt::Debug for Fcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fcm")
            .field("send_url", &self.send_url.as_str())
            .finish_non_exhaustive()
    }
}

impl Fcm {
    /// Reads the service-account file at `path`. Errors name the file and what is wrong,
    /// never its contents.
    pub fn new(
        client: reqwest::Client,
        path: &Path,
        project: Option<&str>,
        base_url: &str,
    ) -> Result<Fcm, String> {
        let what = format!("--fcm-service-account {}", path.display());
        let text = std::fs::read(path).map_err(|e| format!("reading {what}: {e}"))?;
        let sa: ServiceAccount = serde_json::from_slice(&text).map_err(|e| {
            format!(
                "{what} is not a service-account key file (JSON with client_email, private_key \
                 and token_uri): {:?} error at line {}",
                e.classify(),
                e.line()
            )
        })?;
        let key = EncodingKey::from_rsa_pem(sa.private_key.as_bytes())
            .map_err(|_| format!("{what}: private_key is not an RSA private key in PEM"))?;
        let token_uri = reqwest::Url::parse(&sa.token_uri)
            .map_err(|_| format!("{what}: token_uri is not a URL"))?;
        let project = project
            .map(str::to_string)
            .or(sa.project_id)
            .filter(|p| !p.is_empty())
            .ok_or_else(|| format!("{what} has no project_id: set --fcm-project"))?;
        if !project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' || c == ':')
        {
            return Err("--fcm-project: not a Firebase project id".into());
        }
        let base = reqwest::Url::parse(base_url)
            .map_err(|e| format!("--fcm-base-url is not a URL ({e})"))?;
        let send_url = base
            .join(&format!("v1/projects/{project}/messages:send"))
            .map_err(|e| format!("--fcm-base-url: {e}"))?;
        Ok(Fcm {
            client,
            send_url,
            token_uri,
            email: sa.client_email,
            key,
            cached: Mutex::new(None),
        })
    }

    /// A valid access token: the cached one, or a new one from the token endpoint.
    async fn access_token(&self) -> Result<String, Attempt> {
        let mut cached = self.cached.lock().await;
        if let Some((t, until)) = cached.as_ref() {
            if Instant::now() < *until {
                return Ok(t.clone());
            }
        }
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": self.email,
            "scope": SCOPE,
            "aud": self.token_uri.as_str(),
            "iat": now,
            "exp": now + 3600,
        });
        let assertion = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &self.key)
            .map_err(|e| Attempt::Failed {
                error: format!("signing the OAuth assertion: {e}"),
            })?;
        let resp = self
            .client
            .post(self.token_uri.clone())
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", assertion.as_str()),
            ])
            .send()
            .await
            .map_err(|e| Attempt::Retry {
                error: format!("OAuth token endpoint: {}", transport_error(e)),
                retry_after: None,
            })?;
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers());
        let body = read_body(resp).await;
        if status != 200 {
            let error = format!("OAuth token endpoint answered HTTP {status}");
            return Err(match status {
                429 | 500..=599 => Attempt::Retry {
                    error,
                    retry_after: after,
                },
                _ => Attempt::Failed { error },
            });
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (Some(token), Some(expires_in)) = (
            v.get("access_token").and_then(Value::as_str),
            // At most a day: a huge value must not overflow the clock below.
            v.get("expires_in")
                .and_then(Value::as_u64)
                .map(|s| s.min(86_400)),
        ) else {
            return Err(Attempt::Retry {
                error: "OAuth token endpoint: no access_token/expires_in in its answer".into(),
                retry_after: None,
            });
        };
        let life = Duration::from_secs(expires_in).saturating_sub(RENEW_BEFORE);
        *cached = Some((token.to_string(), Instant::now() + life));
        Ok(token.to_string())
    }

    /// Sends the wake-up to `token`.
    pub async fn send(&self, token: &str) -> Attempt {
        let access = match self.access_token().await {
            Ok(t) => t,
            Err(a) => return a,
        };
        let body = json!({
            "message": {
                "token": token,
                "data": {wire::push::DATA_KEY: wire::push::DATA_SYNC},
                "android": {"priority": "high"},
            }
        });
        let resp = match self
            .client
            .post(self.send_url.clone())
            .bearer_auth(access)
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
        if status == 401 {
            // The access token was refused (revoked, clock skew): get a new one next time.
            *self.cached.lock().await = None;
        }
        classify(status, after, &body)
    }
}

/// The outcome of an FCM answer.
pub fn classify(status: u16, retry_after: Option<Duration>, body: &[u8]) -> Attempt {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let code = v
        .pointer("/error/details")
        .and_then(Value::as_array)
        .and_then(|d| {
            d.iter()
                .find_map(|x| x.get("errorCode").and_then(Value::as_str))
        })
        .or_else(|| v.pointer("/error/status").and_then(Value::as_str))
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect::<String>();
    let error = if code.is_empty() {
        format!("FCM answered HTTP {status}")
    } else {
        format!("FCM answered HTTP {status} {code}")
    };
    match status {
        200..=299 => Attempt::Sent,
        // The token is gone, or belongs to another sender (another Firebase project): no
        // later attempt to it can succeed.
        _ if code == "UNREGISTERED" || code == "SENDER_ID_MISMATCH" => Attempt::Invalid { error },
        404 => Attempt::Invalid { error },
        401 | 429 | 500..=599 => Attempt::Retry { error, retry_after },
        _ => Attempt::Failed { error },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(200, None, b"{}"), Attempt::Sent);
        let unreg = br#"{"error":{"code":404,"status":"NOT_FOUND","details":[{"errorCode":"UNREGISTERED"}]}}"#;
        assert!(matches!(
            classify(404, None, unreg),
            Attempt::Invalid { .. }
        ));
        let unreg400 = br#"{"error":{"code":400,"details":[{"errorCode":"UNREGISTERED"}]}}"#;
        assert!(matches!(
            classify(400, None, unreg400),
            Attempt::Invalid { .. }
        ));
        let other_sender =
            br#"{"error":{"code":403,"details":[{"errorCode":"SENDER_ID_MISMATCH"}]}}"#;
        assert!(matches!(
            classify(403, None, other_sender),
            Attempt::Invalid { .. }
        ));
        let after = Some(Duration::from_secs(3));
        assert_eq!(
            classify(429, after, br#"{"error":{"status":"RESOURCE_EXHAUSTED"}}"#),
            Attempt::Retry {
                error: "FCM answered HTTP 429 RESOURCE_EXHAUSTED".into(),
                retry_after: after
            }
        );
        assert!(matches!(
            classify(503, None, b"down"),
            Attempt::Retry { .. }
        ));
        assert!(matches!(
            classify(400, None, br#"{"error":{"status":"INVALID_ARGUMENT"}}"#),
            Attempt::Failed { .. }
        ));
    }
}
