//! Webhooks to the main app's backend, signed per Standard Webhooks, durable, at least once.
//!
//! - **Written with the change.** Every store write that reports a change also writes one
//!   outbox row per configured endpoint in the same transaction (`store/webhooks.rs`): no
//!   change commits without its event, and a killed relay loses none. Device presence, which
//!   is not stored, is written when the node sees it ([`crate::store::Store::emit_webhook`]).
//! - **Sent by one node at a time.** Each node runs [`run`]: it claims due rows of each
//!   endpoint with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL), up to the endpoint's
//!   in-flight cap, POSTs them and records the outcome: delivered (deleted), retried later
//!   (capped exponential backoff with jitter, `Retry-After` honoured) or parked (a 4xx other
//!   than 408/429, or still failing after the retry window). A node that dies leaves its
//!   leases to expire, and another node sends the rows. The same `webhook-id` every time.
//! - **Signed** (`sign.rs`): `webhook-id`, `webhook-timestamp`, `webhook-signature` with one
//!   `v1,` signature per active secret (two while rotating).
//!
//! # Layout
//! - `mod.rs`: [`Settings`] (parsed and checked from the [`Config`]).
//! - `sign.rs`: secrets and signatures.
//! - `deliver.rs`: the per-node delivery loop, one attempt, backoff.

mod deliver;
pub mod sign;

pub use deliver::{backoff, classify, next_attempt, run, Outcome};
pub(crate) use deliver::{retry_after, transport_error};

use std::net::IpAddr;
use std::time::Duration;

use crate::config::Config;
use sign::Secret;

/// One configured endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The URL as configured (also the outbox rows' `endpoint`).
    pub raw: String,
    /// Parsed.
    pub url: reqwest::Url,
}

/// The webhook settings, checked.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where events go.
    pub endpoints: Vec<Endpoint>,
    /// Active signing secrets (one or two).
    pub secrets: Vec<Secret>,
    /// One request's time limit.
    pub timeout: Duration,
    /// Requests in flight per endpoint on this node.
    pub max_in_flight: usize,
    /// How long an event is retried before it is parked.
    pub retry_window: Duration,
}

impl Settings {
    /// The settings of `cfg`; `None` when no endpoint is configured. Errors name the
    /// setting and what is wrong, never a secret.
    pub fn from_config(cfg: &Config) -> Result<Option<Settings>, String> {
        let raws: Vec<String> = cfg
            .webhook_urls
            .iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if raws.is_empty() {
            return Ok(None);
        }
        let mut endpoints = Vec::new();
        for raw in raws {
            let url = endpoint_url(&raw, cfg.webhook_allow_http)?;
            if endpoints.iter().any(|e: &Endpoint| e.raw == raw) {
                return Err(format!(
                    "SAFESTREAM_WEBHOOK_URLS lists {} twice",
                    redact(&url)
                ));
            }
            endpoints.push(Endpoint { raw, url });
        }
        let Some(raw_secrets) = cfg.webhook_secrets.as_deref() else {
            return Err(
                "SAFESTREAM_WEBHOOK_URLS is set but SAFESTREAM_WEBHOOK_SECRETS (--webhook-secret) \
                 is not: webhooks are always signed; make a secret with \
                 `echo whsec_$(openssl rand -base64 32)`"
                    .into(),
            );
        };
        let secrets = sign::parse_secrets(raw_secrets, "SAFESTREAM_WEBHOOK_SECRETS")?;
        Ok(Some(Settings {
            endpoints,
            secrets,
            timeout: Duration::from_secs(cfg.webhook_timeout_secs),
            max_in_flight: usize::try_from(cfg.webhook_max_in_flight).unwrap_or(32),
            retry_window: Duration::from_secs(cfg.webhook_retry_hours * 3600),
        }))
    }

    /// How long a claim holds: longer than any attempt (request time limit, then recording
    /// the outcome), so a live node's lease never runs out under it.
    pub fn lease(&self) -> Duration {
        self.timeout * 2 + Duration::from_secs(5)
    }
}

/// Parses and checks an endpoint: http(s), a host, HTTPS unless the host is a loopback
/// address (or `allow_http`).
fn endpoint_url(raw: &str, allow_http: bool) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw)
        .map_err(|e| format!("SAFESTREAM_WEBHOOK_URLS: an entry is not a valid URL ({e})"))?;
    let Some(host) = url.host_str() else {
        return Err(format!(
            "SAFESTREAM_WEBHOOK_URLS: {} has no host",
            redact(&url)
        ));
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http || is_loopback(host) => Ok(url),
        "http" => Err(format!(
            "SAFESTREAM_WEBHOOK_URLS: {} is plain HTTP to a host that is not loopback; \
             use https:// (or --webhook-allow-http on a network you trust)",
            redact(&url)
        )),
        other => Err(format!(
            "SAFESTREAM_WEBHOOK_URLS: scheme {other:?} is not http or https"
        )),
    }
}

/// `localhost` or a loopback address.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The URL without credentials, query or fragment (which may carry tokens): for logs and
/// errors.
pub fn redact(url: &reqwest::Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn cfg(args: &[&str]) -> Config {
        let mut v = vec!["safestream-relay"];
        v.extend_from_slice(args);
        Config::parse_from(v)
    }

    #[test]
    fn no_endpoint_means_no_webhooks() {
        assert!(Settings::from_config(&cfg(&[])).unwrap().is_none());
    }

    #[test]
    fn endpoints_are_https_or_loopback_unless_allowed() {
        let ok = cfg(&[
            "--webhook-url",
            "https://hooks.example.com/a,http://127.0.0.1:9/b,http://[::1]:9/c,http://localhost/d",
            "--webhook-secret",
            SECRET,
        ]);
        let s = Settings::from_config(&ok).unwrap().unwrap();
        assert_eq!(s.endpoints.len(), 4);
        assert_eq!(s.secrets.len(), 1);
        assert!(s.lease() > s.timeout);

        let plain = cfg(&[
            "--webhook-url",
            "http://hooks.internal/x?token=abc",
            "--webhook-secret",
            SECRET,
        ]);
        let e = Settings::from_config(&plain).unwrap_err();
        assert!(
            e.contains("plain HTTP") && e.contains("--webhook-allow-http"),
            "{e}"
        );
        assert!(!e.contains("token=abc"), "the query is not echoed: {e}");
        let mut allowed = plain.clone();
        allowed.webhook_allow_http = true;
        assert!(Settings::from_config(&allowed).unwrap().is_some());

        for bad in [
            "ftp://x.example/a",
            "not a url",
            "https://a.example/x,https://a.example/x",
        ] {
            let c = cfg(&["--webhook-url", bad, "--webhook-secret", SECRET]);
            assert!(Settings::from_config(&c).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_secret_is_required_and_never_echoed() {
        let c = cfg(&["--webhook-url", "https://h.example/x"]);
        let e = Settings::from_config(&c).unwrap_err();
        assert!(
            e.contains("SAFESTREAM_WEBHOOK_SECRETS") && e.contains("whsec_"),
            "{e}"
        );
        let c = cfg(&[
            "--webhook-url",
            "https://h.example/x",
            "--webhook-secret",
            "whsec_tooShortButSecret",
        ]);
        let e = Settings::from_config(&c).unwrap_err();
        assert!(e.contains("SAFESTREAM_WEBHOOK_SECRETS"), "{e}");
        assert!(!e.contains("tooShortButSecret"), "{e}");
    }

    #[test]
    fn redaction_drops_credentials_and_query() {
        let u = reqwest::Url::parse("https://user:pw@h.example:8443/p/q?k=v#f").unwrap();
        assert_eq!(redact(&u), "https://h.example:8443/p/q");
    }
}
