//! SafeStream agent core: the library inside the child's app that keeps one WebSocket open
//! to the relay, runs remote commands exactly once through host callbacks, and posts
//! durable acknowledgments.
//!
//! The host (a mobile app through `bindings`, or plain Rust) implements [`Platform`],
//! starts an [`Agent`] on its tokio runtime, runs the commands it is given and reports back
//! with [`Agent::complete_command`] from any thread. The agent knows nothing of uniffi:
//! its public surface is owned types, `Arc`s and `Send + Sync` callback traits.
//!
//! # Guarantees
//!
//! - **Exactly-once execution.** Command ids are remembered across restarts (bounded,
//!   persisted). A command is recorded as *started* on disk before the host sees it; one
//!   cut short by the process's death is acked FAILED `"interrupted"` and never run again.
//!   Delivery over the socket and over [`Agent::sync_now`] never runs a command twice.
//! - **Never an expired command**: it is neither run nor acked (the relay expires it).
//! - **Durable acks**: written to an outbox (temp file, fsync, rename) before the first
//!   attempt, retried with capped backoff on network errors, 5xx and 429 until answered.
//! - **Durable reports**: [`Agent::report_screen_time`] and
//!   [`Agent::report_restricted_attempt`] queue on disk (`agent-reports.json`) before they
//!   return; the queue is posted with the same backoff until the relay answers (a 401 waits
//!   for a new token). Screen time keeps only its latest unsent value; restricted attempts
//!   are each kept (at most 300 unsent) and are at-least-once.
//! - **Battery**: no timer ticks between heartbeats; one liveness deadline re-armed lazily;
//!   a longer heartbeat in the background ([`Agent::set_background`]).
//! - **No reconnect storm with a revoked token**: close 4401/4403 stops the agent in
//!   [`ConnectionState::Unauthorized`] until a new token is set.
//!
//! See `docs/agent.md` for the backoff schedule, state files and heartbeat rules.
//!
//! # Example
//!
//! ```no_run
//! use std::sync::{Arc, OnceLock};
//! use agent_core::{
//!     Agent, AgentConfig, Command, CommandOutcome, ConnectionState, LogLevel,
//!     MemoryTokenStore, Platform,
//! };
//!
//! /// The host: here it "runs" every command at once on another thread.
//! struct Host {
//!     agent: OnceLock<Arc<Agent>>,
//! }
//!
//! impl Platform for Host {
//!     fn run_command(&self, command: Command) {
//!         let agent = self.agent.get().cloned();
//!         std::thread::spawn(move || {
//!             println!("running {:?} {}", command.command_type, command.payload_json);
//!             if let Some(agent) = agent {
//!                 let _ = agent.complete_command(command.id, CommandOutcome::Executed);
//!             }
//!         });
//!     }
//!     fn connection_state_changed(&self, state: ConnectionState) {
//!         println!("state: {}", state.as_str());
//!     }
//!     fn log(&self, level: LogLevel, target: String, message: String) {
//!         eprintln!("{level:?} {target}: {message}");
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), agent_core::AgentError> {
//!     let host = Arc::new(Host { agent: OnceLock::new() });
//!     agent_core::init_host_logging(host.clone(), LogLevel::Info);
//!
//!     let mut config = AgentConfig::new("wss://relay.example.com", "/data/safestream");
//!     config.command_timeout_secs = 60;
//!     // A real app uses `default_token_store(host.clone())` (keyring or host keystore).
//!     let tokens = Arc::new(MemoryTokenStore::new(None));
//!     let agent = Arc::new(Agent::start(config, host.clone(), tokens)?);
//!     let _ = host.agent.set(agent.clone());
//!
//!     if agent.state() == ConnectionState::NotPaired {
//!         let code = agent.pair("Mia's tablet".into()).await?;
//!         println!("enter {} in the parent app", code.code);
//!         let device = agent.wait_for_pairing().await?; // stores the token, connects
//!         println!("paired as {}", device.device_id);
//!     }
//!     agent.report_status(true, Some(r#"{"videoId":"v1","title":"Cartoons"}"#.into()));
//!     agent.report_screen_time(95)?; // queued on disk, posted until the relay answers
//!     agent.set_background(true); // app went to the background: longer heartbeat
//!     agent.network_available(); // the OS says the network is back: reconnect now
//!     let _ = agent.sync_now().await; // woken by a push message
//!     agent.shutdown().await;
//!     Ok(())
//! }
//! ```
//!
//! # Layout
//!
//! The protocol decisions are synchronous state machines that do no I/O (`machine`);
//! three thin tokio tasks drive them and do the I/O (`connection`, `outbox`, `reports`). The state is
//! split by owner: the connection's (`Connection`), the outbox's (`Outbox`), the
//! executor's (`Executor`: ledger, host, timers) and the token (`Credentials`).
//!
//! - `agent` — [`Agent`], the public handle over those parts.
//! - `machine` — the sans-I/O state machines: `link` (connect, auth, heartbeat, liveness,
//!   backoff, 4401/4403), `outbox` (which ack to post, retry or give up) and `reports` (the
//!   same for screen time and restricted attempts, plus the queue rules). Time is passed
//!   in; no clock, socket, file, task or entropy inside.
//! - `connection` — the task driving `machine::link` over the socket; the state the host
//!   sees and its hints (status, background, network).
//! - `outbox` — the task driving `machine::outbox` over the HTTP API.
//! - `reports` — the persisted report queue and the task driving `machine::reports`.
//! - `commands` — the executor, exactly-once: dedup, expiry, started-before-run,
//!   completion, timeouts.
//! - `config` — [`AgentConfig`] and the socket/API URLs derived from it.
//! - `platform` — the [`Platform`] trait the host implements, its small types, and the
//!   one panic guard every host callback goes through.
//! - `command` — [`Command`], [`CommandOutcome`] and validation of `command:new`.
//! - `ledger` — the persisted command ledger and ack outbox (one bounded state file).
//! - `protocol` — WebSocket frames in and out.
//! - `backoff` — capped full-jitter backoff and its seedable RNG.
//! - `transport` — the socket seam and its tokio-tungstenite + rustls (ring) implementation.
//! - `api` — the HTTP seam and its reqwest implementation.
//! - `storage` — crash-safe files (temp, fsync, rename) and an in-memory store for tests.
//! - `token` — [`TokenStore`]: keyring (feature `keyring-store`), host callbacks, memory;
//!   `Credentials`, the current token shared by the parts.
//! - `logging` — [`HostLogLayer`], forwarding `tracing` events to [`Platform::log`].
//! - `time` — the wall-clock seam and an RFC 3339 parser.

#![warn(missing_docs)]

mod agent;
mod api;
mod backoff;
mod command;
mod commands;
mod config;
mod connection;
mod error;
mod ledger;
mod logging;
mod machine;
mod outbox;
mod platform;
mod protocol;
mod push;
mod reports;
#[cfg(feature = "sim")]
pub mod sim;
mod storage;
mod time;
mod token;
mod transport;

#[cfg(test)]
mod tests;

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Resolves once `stop` says the agent stopped.
pub(crate) async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    if stop.wait_for(|s| *s).await.is_err() {
        std::future::pending::<()>().await;
    }
}

pub use agent::{Agent, PairedDevice, PairingCode, RestrictedAttempt};
pub use command::{AckStatus, Command, CommandOutcome, CommandType};
pub use config::AgentConfig;
pub use error::AgentError;
pub use logging::{init_host_logging, HostLogLayer};
pub use platform::{AckResult, ConnectionState, LogLevel, Platform};
pub use push::SyncReport;
#[cfg(feature = "keyring-store")]
pub use token::KeyringTokenStore;
pub use token::{default_token_store, MemoryTokenStore, PlatformTokenStore, TokenStore};

/// Fuzzing seam, not part of the API: what the agent makes of one text frame from the
/// relay, as its connection does (parse, then validate a `command:new` payload against a
/// relay clock reading now). Never panics, whatever `text` is. Returns the outcome's name.
#[doc(hidden)]
pub fn fuzz_relay_frame(text: &str) -> &'static str {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    match protocol::parse(text) {
        protocol::Inbound::CommandNew(data) => match command::check(&data, Some(now)) {
            command::Checked::Run { .. } => "run",
            command::Checked::Expired { .. } => "expired",
            command::Checked::Refuse { .. } => "refuse",
            command::Checked::Garbage { .. } => "garbage",
        },
        protocol::Inbound::Ready { .. } => "ready",
        protocol::Inbound::AuthRotate(_) => "rotate",
        protocol::Inbound::Error { .. } => "error",
        protocol::Inbound::Other(_) => "other",
        protocol::Inbound::Malformed => "malformed",
    }
}

/// Fuzzing seam, not part of the API: the `device:status` frame the agent builds from a
/// host-provided `currentVideo`.
#[doc(hidden)]
pub fn fuzz_device_status_frame(active: bool, current_video: &str) -> String {
    protocol::device_status(active, Some(current_video))
}
