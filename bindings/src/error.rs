//! [`SafeStreamError`]: the one error the bindings throw (Kotlin `SafeStreamException`,
//! Swift `SafeStreamError`). Messages never contain tokens or personal data.

/// Errors of the bindings' API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum SafeStreamError {
    /// The configuration or an argument is unusable (bad URL, empty name, ...).
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// The state directory or the secure store could not be read or written.
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
    Relay {
        /// The HTTP status.
        status: u16,
        /// The relay's error code (`bad_request`, `rate_limited`, ...), or empty.
        code: String,
    },
    /// No device token, or the relay refused it: pair again.
    #[error("unauthorized")]
    Unauthorized,
    /// `completeCommand` named a command that is not running (unknown, already finished,
    /// or timed out).
    #[error("no running command with this id")]
    UnknownCommand,
    /// Pairing was rejected by the parent, expired, or was not started.
    #[error("pairing {reason}")]
    Pairing {
        /// `rejected`, `expired`, or `not started`.
        reason: String,
    },
    /// The agent was stopped.
    #[error("agent stopped")]
    Stopped,
    /// A host callback failed (e.g. the secure store threw an undeclared exception).
    #[error("host callback failed: {reason}")]
    Callback {
        /// What the host language reported.
        reason: String,
    },
    /// A bug: the runtime could not start, or the agent panicked.
    #[error("internal error: {reason}")]
    Internal {
        /// What happened.
        reason: String,
    },
}

impl From<agent_core::AgentError> for SafeStreamError {
    fn from(e: agent_core::AgentError) -> Self {
        use agent_core::AgentError as E;
        match e {
            E::Config { reason } => Self::Config { reason },
            E::Storage { reason } => Self::Storage { reason },
            E::Network { reason } => Self::Network { reason },
            E::Http { status, code } => Self::Relay { status, code },
            E::Unauthorized => Self::Unauthorized,
            E::UnknownCommand => Self::UnknownCommand,
            E::Pairing { reason } => Self::Pairing { reason },
            E::Stopped => Self::Stopped,
            E::NoRuntime => Self::Internal {
                reason: "no tokio runtime".into(),
            },
        }
    }
}

/// An exception a host callback threw without declaring it.
impl From<uniffi::UnexpectedUniFFICallbackError> for SafeStreamError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Callback { reason: e.reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_every_core_error() {
        use agent_core::AgentError as E;
        assert_eq!(
            SafeStreamError::from(E::Http {
                status: 429,
                code: "rate_limited".into()
            }),
            SafeStreamError::Relay {
                status: 429,
                code: "rate_limited".into()
            }
        );
        assert_eq!(
            SafeStreamError::from(E::UnknownCommand),
            SafeStreamError::UnknownCommand
        );
        assert!(matches!(
            SafeStreamError::from(E::NoRuntime),
            SafeStreamError::Internal { .. }
        ));
    }
}
