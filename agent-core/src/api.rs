//! The HTTP seam ([`Api`]) and its reqwest implementation.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::{json, Value};

use crate::command::AckStatus;
use crate::transport::BoxFut;

/// Largest response body read from the relay.
const MAX_BODY: usize = 1024 * 1024;

/// Why an HTTP call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HttpError {
    /// No answer (DNS, connect, TLS, timeout, reset).
    Network(String),
    /// An answer with a non-2xx status.
    Status {
        status: u16,
        code: String,
        retry_after: Option<Duration>,
    },
    /// A 2xx answer whose body was not what the protocol says.
    Decode(String),
}

impl HttpError {
    /// Whether the call may succeed later: network errors, 5xx, 429 (and 408).
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Self::Network(_) | Self::Decode(_) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
        }
    }

    /// The relay's `Retry-After`, if it gave one.
    pub(crate) fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// An error with its sources (`error sending request: connection refused`), never a URL.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The relay's REST calls the agent makes.
pub(crate) trait Api: Send + Sync {
    /// `PATCH /api/dashboard/remote-control/{id}`
    fn ack<'a>(
        &'a self,
        token: &'a str,
        id: &'a str,
        status: AckStatus,
        error: Option<&'a str>,
    ) -> BoxFut<'a, Result<(), HttpError>>;
    /// `GET /api/devices/me/commands` → the `commands` array.
    /// Also the relay's clock (`serverTime`, Unix ms) when it said it.
    fn pending_commands<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFut<'a, Result<PendingCommands, HttpError>>;
    /// `POST /api/devices/me/restricted-attempts` with a [`wire::rest::RestrictedAttempt`].
    fn restricted_attempt<'a>(
        &'a self,
        token: &'a str,
        body: Value,
    ) -> BoxFut<'a, Result<(), HttpError>>;
    /// `POST /api/dashboard/screen-time` with a [`wire::rest::ScreenTimeReport`].
    fn screen_time<'a>(&'a self, token: &'a str, body: Value) -> BoxFut<'a, Result<(), HttpError>>;
    /// `PUT /api/devices/me/push-token` with a [`wire::push::PushToken`].
    fn put_push_token<'a>(
        &'a self,
        token: &'a str,
        body: Value,
    ) -> BoxFut<'a, Result<(), HttpError>>;
    /// `POST /api/pairing`
    fn pairing_start<'a>(&'a self, device_name: &'a str) -> BoxFut<'a, Result<Value, HttpError>>;
    /// `GET /api/pairing/{id}?wait=30` with the pairing secret.
    fn pairing_poll<'a>(
        &'a self,
        id: &'a str,
        secret: &'a str,
    ) -> BoxFut<'a, Result<Value, HttpError>>;
}

/// `GET /api/devices/me/commands`: the commands, and the relay's clock (Unix ms) when it
/// said it.
pub(crate) type PendingCommands = (Vec<Value>, Option<i64>);

/// The real API client.
pub(crate) struct HttpApi {
    client: reqwest::Client,
    base: Url,
}

impl HttpApi {
    pub(crate) fn new(base: &str, tls: Arc<rustls::ClientConfig>) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(45))
            // One pooled connection, no idle timeout: with a timeout hyper runs a reaper
            // that wakes the process every period forever. An idle connection the relay
            // closes is dropped when the close arrives; a stale one fails the request,
            // which the outbox retries.
            .pool_idle_timeout(None)
            .pool_max_idle_per_host(1)
            .user_agent(concat!("safestream-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| e.to_string())?;
        let base = Url::parse(base).map_err(|e| e.to_string())?;
        Ok(Self { client, base })
    }

    fn url(&self, segments: &[&str]) -> Result<Url, HttpError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| HttpError::Network("API URL cannot be a base".into()))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn call(
        &self,
        method: Method,
        url: Url,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> Result<Value, HttpError> {
        let mut req = self.client.request(method, url);
        if let Some(t) = bearer {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| HttpError::Network(chain(&e.without_url())))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut bytes = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| HttpError::Network(chain(&e.without_url())))?
        {
            if bytes.len() + chunk.len() > MAX_BODY {
                return Err(HttpError::Decode("response too large".into()));
            }
            bytes.extend_from_slice(&chunk);
        }
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            match serde_json::from_slice(&bytes) {
                Ok(v) => v,
                Err(_) if !status.is_success() => Value::Null,
                Err(e) => return Err(HttpError::Decode(e.to_string())),
            }
        };
        if status.is_success() {
            return Ok(value);
        }
        let code = value
            .pointer("/error/code")
            .and_then(Value::as_str)
            .unwrap_or("")
            .chars()
            .take(64)
            .collect();
        Err(HttpError::Status {
            status: status.as_u16(),
            code,
            retry_after: if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
                retry_after
            } else {
                None
            },
        })
    }
}

impl Api for HttpApi {
    fn ack<'a>(
        &'a self,
        token: &'a str,
        id: &'a str,
        status: AckStatus,
        error: Option<&'a str>,
    ) -> BoxFut<'a, Result<(), HttpError>> {
        Box::pin(async move {
            let url = self.url(&["api", "dashboard", "remote-control", id])?;
            let body = wire::rest::AckCommand {
                status,
                error: error.map(str::to_owned),
            };
            let body = serde_json::to_value(&body).unwrap_or(Value::Null);
            self.call(Method::PATCH, url, Some(token), Some(body))
                .await
                .map(|_| ())
        })
    }

    fn pending_commands<'a>(
        &'a self,
        token: &'a str,
    ) -> BoxFut<'a, Result<PendingCommands, HttpError>> {
        Box::pin(async move {
            let url = self.url(&["api", "devices", "me", "commands"])?;
            let v = self.call(Method::GET, url, Some(token), None).await?;
            let server_time = v
                .get("serverTime")
                .and_then(Value::as_str)
                .and_then(crate::time::parse_rfc3339_ms);
            match v.get("commands") {
                Some(Value::Array(a)) => Ok((a.clone(), server_time)),
                _ => Err(HttpError::Decode("no commands array".into())),
            }
        })
    }

    fn restricted_attempt<'a>(
        &'a self,
        token: &'a str,
        body: Value,
    ) -> BoxFut<'a, Result<(), HttpError>> {
        Box::pin(async move {
            let url = self.url(&["api", "devices", "me", "restricted-attempts"])?;
            self.call(Method::POST, url, Some(token), Some(body))
                .await
                .map(|_| ())
        })
    }

    fn screen_time<'a>(&'a self, token: &'a str, body: Value) -> BoxFut<'a, Result<(), HttpError>> {
        Box::pin(async move {
            let url = self.url(&["api", "dashboard", "screen-time"])?;
            self.call(Method::POST, url, Some(token), Some(body))
                .await
                .map(|_| ())
        })
    }

    fn put_push_token<'a>(
        &'a self,
        token: &'a str,
        body: Value,
    ) -> BoxFut<'a, Result<(), HttpError>> {
        Box::pin(async move {
            let url = self.url(&["api", "devices", "me", "push-token"])?;
            self.call(Method::PUT, url, Some(token), Some(body))
                .await
                .map(|_| ())
        })
    }

    fn pairing_start<'a>(&'a self, device_name: &'a str) -> BoxFut<'a, Result<Value, HttpError>> {
        Box::pin(async move {
            let url = self.url(&["api", "pairing"])?;
            self.call(
                Method::POST,
                url,
                None,
                Some(json!({ "deviceName": device_name })),
            )
            .await
        })
    }

    fn pairing_poll<'a>(
        &'a self,
        id: &'a str,
        secret: &'a str,
    ) -> BoxFut<'a, Result<Value, HttpError>> {
        Box::pin(async move {
            let mut url = self.url(&["api", "pairing", id])?;
            url.set_query(Some("wait=30"));
            self.call(Method::GET, url, Some(secret), None).await
        })
    }
}
