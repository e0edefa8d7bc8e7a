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

    /// Log format: `text` or `json`. Levels come from `RUST_LOG` (default `info`).
    #[arg(long, env = "SAFESTREAM_LOG_FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub log_format: String,
}

/// An IP network (`10.0.0.0/24`) or a single address (`10.0.0.5`, taken as /32 or /128).
fn parse_net(s: &str) -> Result<ipnet::IpNet, String> {
    let s = s.trim();
    s.parse::<ipnet::IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        .map_err(|_| format!("{s:?} is neither an IP address nor a CIDR network"))
}

impl Config {
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

    /// Checks what clap cannot: secrets present unless in dev mode, key files readable.
    pub fn validate(&self) -> Result<(), String> {
        if !self.dev {
            let uses_hs = self.jwt_alg.eq_ignore_ascii_case("HS256");
            if uses_hs && self.jwt_secret.as_deref().unwrap_or("").is_empty() {
                return Err(
                    "refusing to start: SAFESTREAM_JWT_SECRET (--jwt-secret) is not set; \
                            set it to the main app's HS256 secret, or run with --dev"
                        .into(),
                );
            }
            if !uses_hs && self.jwt_public_key.is_none() {
                return Err(format!(
                    "refusing to start: --jwt-alg {} needs --jwt-public-key (SAFESTREAM_JWT_PUBLIC_KEY)",
                    self.jwt_alg
                ));
            }
            if self.server_key.as_deref().unwrap_or("").is_empty() {
                return Err(
                    "refusing to start: SAFESTREAM_SERVER_KEY (--server-key) is not set; \
                            set it to the backend's key, or run with --dev"
                        .into(),
                );
            }
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
        if self.frame_rate == 0 || self.user_frame_rate == 0 || self.user_request_rate == 0 {
            return Err("rate limits must be at least 1 per second".into());
        }
        if self.send_queue < 16 {
            return Err("--send-queue must be at least 16".into());
        }
        let ranges: [(&str, u64, u64, u64); 10] = [
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
}
