//! [`AgentConfig`] and the URLs derived from it.

use reqwest::Url;

use crate::error::AgentError;

/// How the agent is set up. Build it with [`AgentConfig::new`] and adjust the fields.
#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The relay's base URL: `ws://host:port` or `wss://host` (a path prefix is kept). The
    /// agent adds `/api/socket`.
    pub relay_url: String,
    /// The HTTP API base URL; `None` = the relay's host over http (ws) or https (wss).
    pub api_url: Option<String>,
    /// Directory for the agent's state file (created if missing).
    pub state_dir: String,
    /// Foreground heartbeat in seconds (25–600) asked of the relay with a `heartbeat`
    /// frame; `None` keeps the relay's default.
    pub heartbeat_secs: Option<u32>,
    /// Heartbeat asked while the host says the app is in the background (25–600, default
    /// 300).
    pub background_heartbeat_secs: u32,
    /// Extra trusted CA certificates (PEM) for a self-hosted relay, added to the webpki
    /// roots.
    pub extra_ca_pem: Option<String>,
    /// Seconds after which a command the host has not completed is acked FAILED
    /// "timeout" (default 120).
    pub command_timeout_secs: u64,
}

impl AgentConfig {
    /// A config with defaults for everything but the relay URL and state directory.
    pub fn new(relay_url: impl Into<String>, state_dir: impl Into<String>) -> Self {
        Self {
            relay_url: relay_url.into(),
            api_url: None,
            state_dir: state_dir.into(),
            heartbeat_secs: None,
            background_heartbeat_secs: 300,
            extra_ca_pem: None,
            command_timeout_secs: 120,
        }
    }
}

/// The validated URLs.
#[derive(Clone, Debug)]
pub(crate) struct Endpoints {
    /// `.../api/socket`
    pub socket: String,
    /// API base without a trailing slash.
    pub api: String,
}

fn join(base: &Url, suffix: &str) -> String {
    let s = base.as_str().trim_end_matches('/');
    format!("{s}{suffix}")
}

impl Endpoints {
    pub(crate) fn from_config(c: &AgentConfig) -> Result<Self, AgentError> {
        let bad = |reason: String| AgentError::Config { reason };
        let relay = Url::parse(c.relay_url.trim()).map_err(|e| bad(format!("relay_url: {e}")))?;
        let http_scheme = match relay.scheme() {
            "ws" => "http",
            "wss" => "https",
            other => {
                return Err(bad(format!(
                    "relay_url scheme {other:?}: use ws:// or wss://"
                )))
            }
        };
        if relay.host_str().is_none()
            || relay.query().is_some()
            || !relay.username().is_empty()
            || relay.password().is_some()
        {
            return Err(bad(
                "relay_url: a host without query or credentials is required".into(),
            ));
        }
        let api = match &c.api_url {
            Some(u) => {
                let api = Url::parse(u.trim()).map_err(|e| bad(format!("api_url: {e}")))?;
                if !matches!(api.scheme(), "http" | "https")
                    || api.host_str().is_none()
                    || api.query().is_some()
                {
                    return Err(bad(
                        "api_url: an http(s) URL without query is required".into()
                    ));
                }
                join(&api, "")
            }
            None => {
                let mut api = relay.clone();
                api.set_scheme(http_scheme)
                    .map_err(|()| bad("relay_url: cannot derive the API URL".into()))?;
                join(&api, "")
            }
        };
        for (name, v) in [
            ("heartbeat_secs", c.heartbeat_secs),
            (
                "background_heartbeat_secs",
                Some(c.background_heartbeat_secs),
            ),
        ] {
            if let Some(v) = v {
                if !(25..=600).contains(&v) {
                    return Err(bad(format!("{name} must be 25–600")));
                }
            }
        }
        if !(1..=604_800).contains(&c.command_timeout_secs) {
            return Err(bad("command_timeout_secs must be 1–604800".into()));
        }
        if c.state_dir.is_empty() {
            return Err(bad("state_dir is empty".into()));
        }
        Ok(Self {
            socket: join(&relay, "/api/socket"),
            api,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_urls() {
        let e = Endpoints::from_config(&AgentConfig::new("ws://127.0.0.1:8080", "/tmp/x")).unwrap();
        assert_eq!(e.socket, "ws://127.0.0.1:8080/api/socket");
        assert_eq!(e.api, "http://127.0.0.1:8080");
        let e = Endpoints::from_config(&AgentConfig::new("wss://relay.example.com/ss/", "/tmp/x"))
            .unwrap();
        assert_eq!(e.socket, "wss://relay.example.com/ss/api/socket");
        assert_eq!(e.api, "https://relay.example.com/ss");
        let mut c = AgentConfig::new("wss://relay.example.com", "/tmp/x");
        c.api_url = Some("https://api.example.com/".into());
        assert_eq!(
            Endpoints::from_config(&c).unwrap().api,
            "https://api.example.com"
        );
    }

    #[test]
    fn refuses_bad_config() {
        for url in [
            "http://x",
            "ws://",
            "nonsense",
            "ws://u:p@host",
            "ws://h/?token=x",
        ] {
            assert!(
                Endpoints::from_config(&AgentConfig::new(url, "/tmp/x")).is_err(),
                "{url}"
            );
        }
        let mut c = AgentConfig::new("ws://h", "/tmp/x");
        c.heartbeat_secs = Some(5);
        assert!(Endpoints::from_config(&c).is_err());
    }
}
