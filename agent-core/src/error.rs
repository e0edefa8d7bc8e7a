//! The public error type.

/// Errors returned by the [`Agent`](crate::Agent) API. Messages never contain tokens.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AgentError {
    /// The configuration is unusable.
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The state directory could not be read or written.
    #[error("storage: {reason}")]
    Storage {
        /// What failed.
        reason: String,
    },
    /// The relay could not be reached.
    #[error("network: {reason}")]
    Network {
        /// What failed.
        reason: String,
    },
    /// The relay answered with an error status.
    #[error("relay answered {status}: {code}")]
    Http {
        /// The HTTP status.
        status: u16,
        /// The relay's error code (`bad_request`, `rate_limited`, ...), or empty.
        code: String,
    },
    /// No device token, or the relay refused it.
    #[error("unauthorized")]
    Unauthorized,
    /// `complete_command` named a command that is not running (unknown, finished or
    /// timed out).
    #[error("no running command with this id")]
    UnknownCommand,
    /// Pairing was rejected by the parent or expired.
    #[error("pairing {reason}")]
    Pairing {
        /// `rejected`, `expired`, or `not started`.
        reason: String,
    },
    /// The agent was stopped.
    #[error("agent stopped")]
    Stopped,
    /// Must be called inside a tokio runtime.
    #[error("no tokio runtime")]
    NoRuntime,
}
