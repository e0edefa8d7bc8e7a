//! The [`Platform`] trait the host implements, and the small types it receives.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::command::{AckStatus, Command};

/// Runs a host callback, containing a panic in it. Every [`Platform`] callback the agent
/// makes goes through here (the log callback through [`HostLogLayer`](crate::HostLogLayer),
/// which contains its own), so a panicking host — or a foreign exception that uniffi turns
/// into a panic — never unwinds through the agent's tasks, whatever the host.
pub(crate) fn guard<R>(what: &str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(_) => {
            tracing::error!(callback = what, "host callback panicked");
            None
        }
    }
}

/// The state of the agent's connection, as reported to
/// [`Platform::connection_state_changed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Not started, or stopped.
    Stopped,
    /// No device token: pair first ([`Agent::pair`](crate::Agent::pair)) or set one.
    NotPaired,
    /// Opening the socket and authenticating.
    Connecting,
    /// Authenticated; commands flow.
    Connected,
    /// Lost the connection; waiting (with backoff) to reconnect.
    Disconnected,
    /// The relay refused the token (close 4401/4403): the agent stays offline until a new
    /// token is given. Never reconnects with the refused token.
    Unauthorized,
}

impl ConnectionState {
    /// A stable lower-case name (`connected`, `unauthorized`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Stopped => "stopped",
            Self::NotPaired => "not_paired",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Unauthorized => "unauthorized",
        }
    }
}

/// Severity of a log line sent to [`Platform::log`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed.
    Error,
    /// Something unexpected that the agent handles.
    Warn,
    /// Milestones (connected, command run, ack posted).
    Info,
    /// Details.
    Debug,
    /// Everything.
    Trace,
}

/// How the relay answered an ack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckResult {
    /// 200: recorded (or already recorded the same way).
    Confirmed,
    /// A final refusal (a 4xx other than 429, e.g. 409 for a contradicting ack or a
    /// command that expired undelivered); the ack is dropped.
    Rejected {
        /// The HTTP status.
        status: u16,
    },
}

/// What the host provides. Every method is called from the agent's tasks and must return
/// quickly: do the work elsewhere and report back (e.g. through
/// [`Agent::complete_command`](crate::Agent::complete_command)).
pub trait Platform: Send + Sync {
    /// Runs a command. The host finishes it later, from any thread, with
    /// [`Agent::complete_command`](crate::Agent::complete_command). Called at most once per
    /// command id, ever; the command was recorded as started before this call.
    fn run_command(&self, command: Command);

    /// The connection state changed.
    fn connection_state_changed(&self, state: ConnectionState);

    /// A log line from the agent (see [`HostLogLayer`](crate::HostLogLayer)).
    fn log(&self, level: LogLevel, target: String, message: String) {
        let _ = (level, target, message);
    }

    /// The relay answered the ack of command `id` (`status` is what was posted).
    fn ack_finished(&self, id: String, status: AckStatus, result: AckResult) {
        let _ = (id, status, result);
    }

    /// Reads the device token from the host's secure store (used by
    /// [`PlatformTokenStore`](crate::PlatformTokenStore) where the keyring crate has no
    /// store, e.g. Android).
    fn load_token(&self) -> Option<String> {
        None
    }

    /// Writes (`Some`) or deletes (`None`) the device token in the host's secure store.
    fn save_token(&self, token: Option<String>) {
        let _ = token;
    }
}
