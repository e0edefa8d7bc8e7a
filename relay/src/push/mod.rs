//! Push wake-ups: a sleeping phone (no socket on any node) that has a command waiting gets one
//! high-priority data push carrying only a "sync" marker, then pulls its commands over HTTPS.
//!
//! - **Written with the command.** The store writes the device's wake-up row in the same
//!   transaction as the command (`store/push.rs`): a relay killed after the 201 still sends it.
//! - **Coalesced.** The first push waits [`PUSH_DELAY_MS`](crate::store::PUSH_DELAY_MS); at
//!   most one per device per [`PUSH_WINDOW_MS`](crate::store::PUSH_WINDOW_MS).
//! - **Sent by one node.** Each node runs [`run`]: it claims due rows with a lease (`FOR UPDATE
//!   SKIP LOCKED` on PostgreSQL), skips devices that have a socket anywhere (presence), sends
//!   the rest, and records the outcome while the lease is its own. Retries back off (capped,
//!   with jitter, `Retry-After` honoured); a token the provider refuses is dropped.
//! - **Providers**: `fcm.rs` (HTTP v1, OAuth 2 service account) and `apns.rs` (HTTP/2, ES256
//!   provider token), thin reqwest clients whose base URLs can point at stand-ins.
//!
//! # Layout
//! - `mod.rs`: [`Settings`] from the [`Config`], [`Attempt`].
//! - `fcm.rs`, `apns.rs`: the providers.
//! - `send.rs`: the per-node sender loop.

pub mod apns;
pub mod fcm;
mod send;

pub use send::{backoff, run};

use std::time::Duration;

use crate::config::Config;
use wire::push::{PushProvider, PushToken};

/// One request's time limit.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of an answer's body that is read.
const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// What one send came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The provider accepted it.
    Sent,
    /// Try again later, not before `retry_after` when the provider said so.
    Retry {
        /// What went wrong.
        error: String,
        /// The provider's `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// The token is no longer valid: drop it.
    Invalid {
        /// What the provider said.
        error: String,
    },
    /// Retrying will not help (a refused request, a configuration error).
    Failed {
        /// What went wrong.
        error: String,
    },
}

/// The configured providers (at least one).
#[derive(Debug)]
pub struct Settings {
    /// FCM, when configured.
    pub fcm: Option<fcm::Fcm>,
    /// APNs, when configured.
    pub apns: Option<apns::Apns>,
}

impl Settings {
    /// The providers configured in `cfg`; `None` when neither is. Reads the key files;
    /// errors name the setting and the file, never what is in it.
    pub fn from_config(cfg: &Config) -> Result<Option<Settings>, String> {
        if cfg.fcm_service_account.is_none() && cfg.apns_key.is_none() {
            return Ok(None);
        }
        let mut fcm = None;
        if let Some(sa) = &cfg.fcm_service_account {
            let client = client(cfg, false)?;
            fcm = Some(fcm::Fcm::new(
                client,
                sa,
                cfg.fcm_project.as_deref(),
                &cfg.fcm_base_url,
            )?);
        }
        let mut apns = None;
        if let Some(key) = &cfg.apns_key {
            let need = |v: &Option<String>, flag: &str| {
                v.clone()
                    .ok_or_else(|| format!("--apns-key is set but {flag} is not"))
            };
            let key_id = need(&cfg.apns_key_id, "--apns-key-id")?;
            let team_id = need(&cfg.apns_team_id, "--apns-team-id")?;
            let topic = need(&cfg.apns_topic, "--apns-topic")?;
            apns = Some(apns::Apns::new(
                client(cfg, true)?,
                key,
                &key_id,
                &team_id,
                &topic,
                cfg.apns_base_url.as_deref(),
            )?);
        }
        Ok(Some(Settings { fcm, apns }))
    }

    /// Sends one wake-up to `token` through its provider. A provider this node has no
    /// credentials for is a retry a minute later, not a failure: another node of the
    /// cluster may have them (credentials rolled out node by node), and the wake-up must
    /// not be dropped by whichever node claimed it first.
    pub async fn send(&self, token: &PushToken) -> Attempt {
        let elsewhere = |p: &str| Attempt::Retry {
            error: format!("{p} is not configured on this node"),
            retry_after: Some(Duration::from_secs(60)),
        };
        match token.provider {
            PushProvider::Fcm => match &self.fcm {
                Some(f) => f.send(&token.token).await,
                None => elsewhere("FCM"),
            },
            PushProvider::Apns => match &self.apns {
                Some(a) => a.send(&token.token, token.apns_environment).await,
                None => elsewhere("APNs"),
            },
        }
    }

    /// Which providers are on, for the start-up log.
    pub fn describe(&self) -> &'static str {
        match (&self.fcm, &self.apns) {
            (Some(_), Some(_)) => "FCM and APNs",
            (Some(_), None) => "FCM",
            (None, Some(_)) => "APNs",
            (None, None) => "none",
        }
    }
}

/// An HTTP client for a provider: time limit, no redirects, no proxy from the environment,
/// the extra CA file trusted; HTTP/2 only for APNs.
fn client(cfg: &Config, http2_only: bool) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .no_proxy()
        .user_agent(concat!("safestream-relay/", env!("CARGO_PKG_VERSION")));
    if http2_only {
        b = b.http2_prior_knowledge();
    }
    if let Some(ca) = &cfg.push_ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| format!("reading --push-ca-file {}: {e}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|_| format!("--push-ca-file {}: not PEM certificates", ca.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--push-ca-file {}: no certificate in it",
                ca.display()
            ));
        }
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    b.build().map_err(|e| format!("push client: {e}"))
}

/// Reads an answer's body, at most [`MAX_ANSWER_BYTES`].
async fn read_body(mut resp: reqwest::Response) -> Vec<u8> {
    let mut buf = Vec::new();
    while buf.len() < MAX_ANSWER_BYTES {
        match resp.chunk().await {
            Ok(Some(c)) => buf.extend_from_slice(&c),
            _ => break,
        }
    }
    buf.truncate(MAX_ANSWER_BYTES);
    buf
}
