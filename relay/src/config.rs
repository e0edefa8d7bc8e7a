//! Configuration: command-line flags, each also readable from a `SAFESTREAM_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Everything the relay can be told at start. `safestream-relay --help` prints it.
#[derive(Parser, Clone, Debug)]
#[command(
    name = "safestream-relay",
    version,
    about = "SafeStream relay: parents, devices and the backend on one WebSocket + HTTP port",
    long_about = "SafeStream relay: authenticates parents (JWT), devices (relay-issued tokens) \
and the backend (server key); routes remote commands to devices and their status back to \
parents; delivers notifications; tracks presence and screen time.\n\n\
Start with --dev on a laptop to get generated secrets and ready-to-use tokens."
)]
pub struct Config {
    /// Address to listen on (HTTP and WebSocket share it).
    #[arg(long, env = "SAFESTREAM_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// Database: a SQLite file path or `sqlite:` URL (default), or a `postgres://` URL.
    #[arg(long, env = "SAFESTREAM_DB", default_value = "safestream.db")]
    pub db: String,

    /// Redis URL for the cross-node bus and presence; unset means the in-process bus (one
    /// node). Several nodes need it, and a shared PostgreSQL `--db`.
    #[arg(long, env = "SAFESTREAM_REDIS", hide_env_values = true)]
    pub redis: Option<String>,

    /// Prefix of every Redis key and channel (several clusters may share one Redis).
    #[arg(long, env = "SAFESTREAM_REDIS_PREFIX", default_value = "safestream")]
    pub redis_prefix: String,

    /// This node's id in Redis presence entries; default: random at each start.
    #[arg(long, env = "SAFESTREAM_NODE_ID")]
    pub node_id: Option<String>,

    /// With Redis: the `http://host:port` at which the other nodes reach this one, to
    /// forward Socket.IO requests for sessions this node holds (no sticky sessions needed).
    /// Default: `http://<listen address>` when that is not a wildcard address.
    #[arg(long, env = "SAFESTREAM_ADVERTISE_URL")]
    pub advertise_url: Option<String>,

    /// Load balancers / proxies (IPs or CIDRs, comma-separated) whose `X-Forwarded-For` is
    /// believed: the client address is the rightmost entry not in this list. Empty: the
    /// peer address is the client address and the header is ignored.
    #[arg(long, env = "SAFESTREAM_TRUSTED_PROXIES", value_delimiter = ',',
          value_parser = parse_net)]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// HS256 secret shared with the main app, used to verify parent JWTs.
    #[arg(long, env = "SAFESTREAM_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// Pinned JWT algorithm for parent tokens: HS256, RS256, ES256 or EdDSA.
    #[arg(long, env = "SAFESTREAM_JWT_ALG", default_value = "HS256")]
    pub jwt_alg: String,

    /// PEM public key file for RS256 / ES256 / EdDSA parent tokens.
    #[arg(long, env = "SAFESTREAM_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Required `iss` of parent JWTs (not checked when unset).
    #[arg(long, env = "SAFESTREAM_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` of parent JWTs (not checked when unset).
    #[arg(long, env = "SAFESTREAM_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Clock-skew leeway for `exp` / `nbf`, in seconds.
    #[arg(long, env = "SAFESTREAM_JWT_LEEWAY_SECS", default_value_t = 0)]
    pub jwt_leeway_secs: u64,

    /// The backend's key, sent as `Authorization: Bearer <key>`.
    #[arg(long, env = "SAFESTREAM_SERVER_KEY", hide_env_values = true)]
    pub server_key: Option<String>,

    /// Development mode: generate missing secrets, create a demo child and device, print
    /// ready-to-use tokens. Never use in production.
    #[arg(long, env = "SAFESTREAM_DEV")]
    pub dev: bool,

    /// With --dev: do not run the simulated demo device in this process (run your own, e.g.
    /// `cargo run -p agent-core --example device`).
    #[arg(long, env = "SAFESTREAM_NO_DEMO_DEVICE")]
    pub no_demo_device: bool,

    /// PEM certificate chain: serve HTTPS/WSS with rustls (needs --tls-key).
    #[arg(long, env = "SAFESTREAM_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, env = "SAFESTREAM_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Browser origins allowed to open sockets and call the API (comma-separated).
    /// Empty: any origin (tokens are never cookies, so this is defence in depth).
    #[arg(long, env = "SAFESTREAM_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Seconds between WebSocket pings; a socket silent for 1.75 intervals is dropped (so a
    /// vanished device shows offline within two).
    #[arg(long, env = "SAFESTREAM_HEARTBEAT_SECS", default_value_t = 25,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub heartbeat_secs: u64,

    /// Seconds a new socket has to authenticate; also the HTTP header read timeout.
    #[arg(long, env = "SAFESTREAM_HANDSHAKE_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub handshake_timeout_secs: u64,

    /// Largest WebSocket message accepted from a client, in bytes.
    #[arg(long, env = "SAFESTREAM_MAX_FRAME_BYTES", default_value_t = 16 * 1024)]
    pub max_frame_bytes: usize,

    /// Largest HTTP request body, in bytes.
    #[arg(long, env = "SAFESTREAM_MAX_BODY_BYTES", default_value_t = 64 * 1024)]
    pub max_body_bytes: usize,

    /// Frames per second allowed per socket (burst twice that).
    #[arg(long, env = "SAFESTREAM_FRAME_RATE", default_value_t = 20)]
    pub frame_rate: u32,

    /// Frames per second allowed per user or device over all its sockets (burst twice that).
    #[arg(long, env = "SAFESTREAM_USER_FRAME_RATE", default_value_t = 50)]
    pub user_frame_rate: u32,

    /// REST requests per second per parent or device (burst twice that).
    #[arg(long, env = "SAFESTREAM_USER_REQUEST_RATE", default_value_t = 50)]
    pub user_request_rate: u32,

    /// Open sockets allowed per parent.
    #[arg(long, env = "SAFESTREAM_MAX_CONN_PER_USER", default_value_t = 20)]
    pub max_conn_per_user: usize,

    /// Open sockets allowed per device.
    #[arg(long, env = "SAFESTREAM_MAX_CONN_PER_DEVICE", default_value_t = 4)]
    pub max_conn_per_device: usize,

    /// Open connections (HTTP or WebSocket) allowed per relay process. Lowered at start to
    /// fit under the open-file limit with 256 files to spare (logged when it is).
    #[arg(long, env = "SAFESTREAM_MAX_CONNECTIONS", default_value_t = 200_000)]
    pub max_connections: usize,

    /// Frames queued per socket before it is dropped as a slow consumer (close 4509).
    #[arg(long, env = "SAFESTREAM_SEND_QUEUE", default_value_t = 512)]
    pub send_queue: usize,

    /// Hours of parent event history kept for resume.
    #[arg(long, env = "SAFESTREAM_EVENT_RETENTION_HOURS", default_value_t = 24)]
    pub event_retention_hours: u64,

    /// Days finished commands (executed, failed, expired) are kept.
    #[arg(long, env = "SAFESTREAM_COMMAND_RETENTION_DAYS", default_value_t = 30)]
    pub command_retention_days: u64,

    /// Days notifications are kept.
    #[arg(
        long,
        env = "SAFESTREAM_NOTIFICATION_RETENTION_DAYS",
        default_value_t = 90
    )]
    pub notification_retention_days: u64,

    /// Days after which a device's token is rotated: a device whose token is older gets a
    /// new one (`auth:rotate`) when it connects. 0 (the default): only when a guardian or
    /// the backend asks (`POST /api/devices/{id}/rotate-token`). Off by default because an
    /// app whose token store silently does not persist would lose its device at the first
    /// connect after the deploy; enable it once the apps' token stores are verified, and
    /// only when every node of a cluster runs a relay that knows rotation.
    #[arg(
        long,
        env = "SAFESTREAM_DEVICE_TOKEN_MAX_AGE_DAYS",
        default_value_t = 0
    )]
    pub device_token_max_age_days: u64,

    /// Default command lifetime when the parent gives no `expiresInSeconds`.
    #[arg(
        long,
        env = "SAFESTREAM_DEFAULT_COMMAND_TTL_SECS",
        default_value_t = 300
    )]
    pub default_command_ttl_secs: u64,

    /// SQLite `synchronous` mode: `normal` survives a killed process, `full` also power loss.
    #[arg(long, env = "SAFESTREAM_SQLITE_SYNC", default_value = "normal",
          value_parser = ["normal", "full"])]
    pub sqlite_sync: String,

    /// Runtime worker threads (0: half the machine's cores, at least one). The relay's work
    /// per command is short and mostly serialized by the store's one writer; a second
    /// worker on two cores mostly costs wake-ups and hand-overs between the two (one worker
    /// spent 20–32 % less CPU per command at 500–2,000 commands/s, BENCHMARKS.md,
    /// 2026-12-06 second sitting), and the other core is left to the kernel's network
    /// stack and the checkpoint thread. Fan-out to very large rooms runs faster with more.
    #[arg(long, env = "SAFESTREAM_WORKERS", default_value_t = 0,
          value_parser = clap::value_parser!(u16).range(0..=1024))]
    pub workers: u16,

    /// Log format: `text` or `json`. Levels come from `RUST_LOG` (default `info`).
    #[arg(long, env = "SAFESTREAM_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub log_format: String,

    /// Webhook endpoints (comma-separated URLs): every change is sent to each, signed per
    /// Standard Webhooks. HTTPS, or plain HTTP to a loopback address (or with
    /// --webhook-allow-http). Empty: no webhooks.
    #[arg(
        long = "webhook-url",
        env = "SAFESTREAM_WEBHOOK_URLS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub webhook_urls: Vec<String>,

    /// Webhook signing secrets: one `whsec_<base64>` secret, or two (comma-separated) while
    /// rotating; every request carries a signature by each. Required with --webhook-url.
    /// Checked by the relay, never echoed in an error.
    #[arg(
        long = "webhook-secret",
        env = "SAFESTREAM_WEBHOOK_SECRETS",
        hide_env_values = true
    )]
    pub webhook_secrets: Option<String>,

    /// Seconds one webhook request may take (connect, send, answer).
    #[arg(long, env = "SAFESTREAM_WEBHOOK_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=120))]
    pub webhook_timeout_secs: u64,

    /// Webhook requests in flight at once per endpoint, per node.
    #[arg(long, env = "SAFESTREAM_WEBHOOK_MAX_IN_FLIGHT", default_value_t = 32,
          value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub webhook_max_in_flight: u64,

    /// Hours a webhook event is retried (capped exponential backoff) before it is parked:
    /// at least a day, so an endpoint down over a night or a weekend day loses nothing.
    #[arg(long, env = "SAFESTREAM_WEBHOOK_RETRY_HOURS", default_value_t = 72,
          value_parser = clap::value_parser!(u64).range(24..=720))]
    pub webhook_retry_hours: u64,

    /// Allow plain-HTTP webhook endpoints that are not on a loopback address (a private
    /// network you trust); HTTPS is required otherwise.
    #[arg(long, env = "SAFESTREAM_WEBHOOK_ALLOW_HTTP")]
    pub webhook_allow_http: bool,

    /// FCM: the Firebase service-account JSON key file (client_email, private_key,
    /// token_uri). With it, Android devices with a push token are woken by FCM.
    #[arg(long, env = "SAFESTREAM_FCM_SERVICE_ACCOUNT")]
    pub fcm_service_account: Option<PathBuf>,

    /// FCM: the Firebase project id; default: `project_id` of the service-account file.
    #[arg(long, env = "SAFESTREAM_FCM_PROJECT")]
    pub fcm_project: Option<String>,

    /// FCM: base URL of the HTTP v1 API (a stand-in in tests).
    #[arg(
        long,
        env = "SAFESTREAM_FCM_BASE_URL",
        default_value = "https://fcm.googleapis.com"
    )]
    pub fcm_base_url: String,

    /// APNs: the token-auth signing key (`AuthKey_XXXXXXXXXX.p8`). With it (and the key
    /// id, team id and topic), iOS devices with a push token are woken by APNs.
    #[arg(long, env = "SAFESTREAM_APNS_KEY")]
    pub apns_key: Option<PathBuf>,

    /// APNs: the key's id (10 characters).
    #[arg(long, env = "SAFESTREAM_APNS_KEY_ID")]
    pub apns_key_id: Option<String>,

    /// APNs: the Apple developer team id.
    #[arg(long, env = "SAFESTREAM_APNS_TEAM_ID")]
    pub apns_team_id: Option<String>,

    /// APNs: the topic, i.e. the iOS app's bundle id.
    #[arg(long, env = "SAFESTREAM_APNS_TOPIC")]
    pub apns_topic: Option<String>,

    /// APNs: base URL for every token whatever its environment (a stand-in in tests);
    /// default: api.push.apple.com or api.sandbox.push.apple.com per token.
    #[arg(long, env = "SAFESTREAM_APNS_BASE_URL")]
    pub apns_base_url: Option<String>,

    /// A PEM file of extra CA certificates trusted for FCM and APNs (stand-ins, a TLS
    /// proxy); the public roots are trusted either way.
    #[arg(long, env = "SAFESTREAM_PUSH_CA_FILE")]
    pub push_ca_file: Option<PathBuf>,
}

/// An IP network (`10.0.0.0/24`) or a single address (`10.0.0.5`, taken as /32 or /128).
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR network"))
}

/// The shortest HS256 secret and server key accepted outside dev mode, in bytes: RFC 7518
/// section 3.2 asks for an HMAC key at least as long as the hash (SHA-256: 32 bytes).
pub const MIN_SECRET_BYTES: usize = 32;

/// How to make a secret, for the messages of [`Config::validate`].
const GENERATE_HINT: &str = "generate one with `openssl rand -base64 32` (44 characters)";

/// `"1 byte"` / `"5 bytes"`.
fn bytes(n: usize) -> String {
    if n == 1 {
        "1 byte".into()
    } else {
        format!("{n} bytes")
    }
}

impl Config {
    /// The runtime's worker threads: `--workers`, or half the cores (at least one).
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
            n => n as usize,
        }
    }

    /// A configuration for tests: loopback on a free port, the given database, fixed secrets.
    pub fn for_tests(db: impl Into<String>, jwt_secret: &str, server_key: &str) -> Self {
        let mut c = Config::parse_from(["safestream-relay"]);
        c.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        c.db = db.into();
        c.jwt_secret = Some(jwt_secret.to_owned());
        c.server_key = Some(server_key.to_owned());
        c
    }

    /// The heartbeat interval.
    pub fn heartbeat(&self) -> Duration {
        Duration::from_secs(self.heartbeat_secs)
    }

    /// The handshake (first frame / request header) timeout.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_secs(self.handshake_timeout_secs)
    }

    /// Outside dev mode: the HS256 secret (when HS256 is the algorithm) and the server key are
    /// set and at least [`MIN_SECRET_BYTES`] long; an asymmetric algorithm has its key file.
    fn check_secrets(&self) -> Result<(), String> {
        let uses_hs = self.jwt_alg.eq_ignore_ascii_case("HS256");
        if uses_hs {
            let secret = self.jwt_secret.as_deref().unwrap_or("");
            if secret.is_empty() {
                return Err(format!(
                    "refusing to start: SAFESTREAM_JWT_SECRET (--jwt-secret) is not set; \
                     set it to the main app's HS256 secret of at least {MIN_SECRET_BYTES} bytes \
                     ({GENERATE_HINT}), or run with --dev"
                ));
            }
            if secret.len() < MIN_SECRET_BYTES {
                return Err(format!(
                    "refusing to start: SAFESTREAM_JWT_SECRET (--jwt-secret) is {}; an HS256 \
                     secret must be at least {MIN_SECRET_BYTES} bytes (RFC 7518 section 3.2). \
                     Set SAFESTREAM_JWT_SECRET to a random secret of at least \
                     {MIN_SECRET_BYTES} bytes ({GENERATE_HINT}) and sign the main app's parent \
                     tokens with the same secret, or run with --dev on a laptop",
                    bytes(secret.len())
                ));
            }
        } else if self.jwt_public_key.is_none() {
            return Err(format!(
                "refusing to start: --jwt-alg {} needs --jwt-public-key (SAFESTREAM_JWT_PUBLIC_KEY)",
                self.jwt_alg
            ));
        }
        let key = self.server_key.as_deref().unwrap_or("");
        if key.is_empty() {
            return Err(format!(
                "refusing to start: SAFESTREAM_SERVER_KEY (--server-key) is not set; set it to \
                 the backend's key of at least {MIN_SECRET_BYTES} bytes ({GENERATE_HINT}), or \
                 run with --dev"
            ));
        }
        if key.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "refusing to start: SAFESTREAM_SERVER_KEY (--server-key) is {}; it must be at \
                 least {MIN_SECRET_BYTES} bytes. Set SAFESTREAM_SERVER_KEY to a random key of at \
                 least {MIN_SECRET_BYTES} bytes ({GENERATE_HINT}) and give the same key to the \
                 backend (it sends `Authorization: Bearer <key>`), or run with --dev on a laptop",
                bytes(key.len())
            ));
        }
        Ok(())
    }

    /// Dev mode accepts short secrets it is given (missing ones are generated at 32 random
    /// bytes), but says so in the log.
    fn warn_short_dev_secrets(&self) {
        let given = [
            ("SAFESTREAM_JWT_SECRET", self.jwt_secret.as_deref()),
            ("SAFESTREAM_SERVER_KEY", self.server_key.as_deref()),
        ];
        for (name, value) in given {
            let n = value.map_or(0, str::len);
            if n > 0 && n < MIN_SECRET_BYTES {
                tracing::warn!(
                    "dev mode: {name} is {}, shorter than the {MIN_SECRET_BYTES} bytes required \
                     outside --dev",
                    bytes(n)
                );
            }
        }
    }

    /// Checks what clap cannot: secrets present and long enough unless in dev mode, settings
    /// in range.
    pub fn validate(&self) -> Result<(), String> {
        if self.dev {
            self.warn_short_dev_secrets();
        } else {
            self.check_secrets()?;
        }
        if self.redis.is_some() && !self.db.starts_with("postgres") {
            return Err(
                "SAFESTREAM_REDIS is set (several nodes), but SAFESTREAM_DB is not a \
                 postgres:// URL: nodes must share one PostgreSQL database"
                    .into(),
            );
        }
        if self.db.starts_with("postgres") && self.redis.is_none() {
            tracing::warn!(
                "SAFESTREAM_DB is PostgreSQL but SAFESTREAM_REDIS is unset: run ONE node \
                 only (without Redis, nodes do not see each other's sockets)"
            );
        }
        if self.redis_prefix.is_empty()
            || self.redis_prefix.len() > 64
            || !self
                .redis_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err("--redis-prefix: 1-64 characters of [A-Za-z0-9-_.:]".into());
        }
        if let Some(n) = &self.node_id {
            if n.is_empty()
                || n.len() > 64
                || !n
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err("--node-id: 1-64 characters of [A-Za-z0-9-_.]".into());
            }
        }
        if let Some(u) = &self.advertise_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || u.len() > 200 {
                return Err("--advertise-url: an http:// or https:// URL".into());
            }
        }
        if self.frame_rate == 0 || self.user_frame_rate == 0 || self.user_request_rate == 0 {
            return Err("rate limits must be at least 1 per second".into());
        }
        if self.send_queue < 16 {
            return Err("--send-queue must be at least 16".into());
        }
        let ranges: [(&str, u64, u64, u64); 11] = [
            (
                "--max-frame-bytes",
                self.max_frame_bytes as u64,
                1024,
                16 << 20,
            ),
            (
                "--max-body-bytes",
                self.max_body_bytes as u64,
                1024,
                64 << 20,
            ),
            (
                "--max-connections",
                self.max_connections as u64,
                1,
                10_000_000,
            ),
            (
                "--max-conn-per-user",
                self.max_conn_per_user as u64,
                1,
                100_000,
            ),
            (
                "--max-conn-per-device",
                self.max_conn_per_device as u64,
                1,
                1_000,
            ),
            (
                "--event-retention-hours",
                self.event_retention_hours,
                1,
                24 * 365,
            ),
            (
                "--command-retention-days",
                self.command_retention_days,
                1,
                3650,
            ),
            (
                "--notification-retention-days",
                self.notification_retention_days,
                1,
                3650,
            ),
            (
                "--device-token-max-age-days",
                self.device_token_max_age_days,
                0,
                3650,
            ),
            (
                "--default-command-ttl-secs",
                self.default_command_ttl_secs,
                1,
                604_800,
            ),
            ("--jwt-leeway-secs", self.jwt_leeway_secs, 0, 3600),
        ];
        for (flag, v, lo, hi) in ranges {
            if v < lo || v > hi {
                return Err(format!("{flag} must be from {lo} to {hi} (got {v})"));
            }
        }
        crate::webhooks::Settings::from_config(self)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_take_addresses_and_networks() {
        assert_eq!(parse_net("10.0.0.5").unwrap().to_string(), "10.0.0.5/32");
        assert_eq!(
            parse_net(" 10.0.0.0/24").unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(parse_net("::1").unwrap().to_string(), "::1/128");
        assert!(parse_net("10.0.0.300").is_err());
        let c = Config::parse_from([
            "safestream-relay",
            "--trusted-proxies",
            "10.0.0.5,192.168.0.0/16",
        ]);
        assert_eq!(c.trusted_proxies.len(), 2);
    }

    #[test]
    fn automatic_token_rotation_is_off_by_default() {
        // Turned on per deployment once the apps' token stores are verified (deploy.md).
        let c = Config::parse_from(["safestream-relay"]);
        assert_eq!(c.device_token_max_age_days, 0);
    }

    /// A production configuration with the given secrets (none set when `None`).
    fn prod(jwt: Option<&str>, key: Option<&str>) -> Config {
        let mut c = Config::parse_from(["safestream-relay"]);
        c.jwt_secret = jwt.map(str::to_owned);
        c.server_key = key.map(str::to_owned);
        c
    }

    const GOOD: &str = "0123456789abcdef0123456789abcdef"; // 32 bytes

    #[test]
    fn short_secrets_are_refused_outside_dev_mode_with_what_to_do() {
        assert_eq!(GOOD.len(), MIN_SECRET_BYTES);
        assert_eq!(prod(Some(GOOD), Some(GOOD)).validate(), Ok(()));
        let short = &GOOD[..31];

        let e = prod(Some("short"), Some(GOOD)).validate().unwrap_err();
        assert!(
            e.starts_with("refusing to start: SAFESTREAM_JWT_SECRET"),
            "{e}"
        );
        assert!(
            e.contains("is 5 bytes") && e.contains("at least 32 bytes"),
            "{e}"
        );
        assert!(
            e.contains("RFC 7518") && e.contains("openssl rand -base64 32"),
            "{e}"
        );
        let e = prod(Some(short), Some(GOOD)).validate().unwrap_err();
        assert!(
            e.contains("SAFESTREAM_JWT_SECRET") && e.contains("is 31 bytes"),
            "{e}"
        );

        let e = prod(Some(GOOD), Some("k")).validate().unwrap_err();
        assert!(
            e.starts_with("refusing to start: SAFESTREAM_SERVER_KEY"),
            "{e}"
        );
        assert!(
            e.contains("is 1 byte;") && e.contains("at least 32 bytes"),
            "{e}"
        );
        assert!(e.contains("openssl rand -base64 32"), "{e}");
        let e = prod(Some(GOOD), Some(short)).validate().unwrap_err();
        assert!(
            e.contains("SAFESTREAM_SERVER_KEY") && e.contains("is 31 bytes"),
            "{e}"
        );

        // Missing ones are refused too, with the same hint.
        for (jwt, key, name) in [
            (None, Some(GOOD), "SAFESTREAM_JWT_SECRET"),
            (Some(GOOD), None, "SAFESTREAM_SERVER_KEY"),
        ] {
            let e = prod(jwt, key).validate().unwrap_err();
            assert!(e.contains(name) && e.contains("is not set"), "{e}");
            assert!(e.contains("openssl rand -base64 32"), "{e}");
        }
        // Length is counted in bytes: 11 three-byte characters are 33 bytes.
        let wide = "€€€€€€€€€€€";
        assert_eq!(prod(Some(wide), Some(GOOD)).validate(), Ok(()));
    }

    #[test]
    fn an_asymmetric_algorithm_needs_no_hs256_secret_but_still_a_long_server_key() {
        let mut c = prod(Some("short"), Some(GOOD));
        c.jwt_alg = "RS256".into();
        c.jwt_public_key = Some(PathBuf::from("/nonexistent/key.pem"));
        assert_eq!(c.validate(), Ok(()));
        c.server_key = Some("k".into());
        assert!(c.validate().unwrap_err().contains("SAFESTREAM_SERVER_KEY"));
    }

    #[test]
    fn dev_mode_accepts_short_or_missing_secrets() {
        for (jwt, key) in [(Some("short"), Some("k")), (None, None)] {
            let mut c = prod(jwt, key);
            c.dev = true;
            assert_eq!(c.validate(), Ok(()));
        }
    }

    #[test]
    fn workers_default_to_half_the_cores_and_an_explicit_count_is_kept() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let c = Config::parse_from(["safestream-relay"]);
        assert_eq!(c.worker_threads(), (cores / 2).max(1));
        let c = Config::parse_from(["safestream-relay", "--workers", "3"]);
        assert_eq!(c.worker_threads(), 3);
        assert!(Config::try_parse_from(["safestream-relay", "--workers", "-1"]).is_err());
        assert!(Config::try_parse_from(["safestream-relay", "--workers", "5000"]).is_err());
    }

    #[test]
    fn webhook_events_are_retried_for_at_least_a_day() {
        let c = Config::parse_from(["safestream-relay"]);
        assert_eq!(c.webhook_retry_hours, 72);
        let c = Config::parse_from(["safestream-relay", "--webhook-retry-hours", "24"]);
        assert_eq!(c.webhook_retry_hours, 24);
        for short in ["0", "1", "23"] {
            let parsed =
                Config::try_parse_from(["safestream-relay", "--webhook-retry-hours", short]);
            assert!(parsed.is_err(), "{short} hours accepted");
        }
    }
}
