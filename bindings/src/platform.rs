//! The foreign traits the host implements, and the bridge that turns them into
//! agent-core's `Platform` and `TokenStore`.
//!
//! uniffi turns an exception thrown by a callback that declares no error into a Rust
//! panic (uniffi_core's `LiftReturn::handle_callback_unexpected_error`); it must not
//! unwind through the agent's tasks (nor abort the app). The [`Host`] callbacks
//! (`onCommand`, `onStateChanged`, `onAckFinished`) are reached only through agent-core's
//! `Platform` calls, each of which agent-core runs inside its own panic guard (a
//! panicking `onCommand` is acked FAILED "host error"), so they are not guarded again
//! here. The calls agent-core does not guard — the [`SecureStore`] behind its
//! `TokenStore`, and the logger — go through [`call`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use agent_core as core;

use crate::error::SafeStreamError;
use crate::types::{AckResult, AckStatus, Command, ConnectionState};

/// Runs the remote commands. Implemented by the host.
#[uniffi::export(with_foreign)]
pub trait CommandRunner: Send + Sync {
    /// Starts running `command` and returns at once (it is called on the agent's thread).
    /// The host finishes it later, from any thread, with `Agent.completeCommand(id,
    /// outcome)`; a command not finished within `commandTimeoutSecs` is acked FAILED
    /// "timeout". Called at most once per command id, ever, even across restarts.
    fn on_command(&self, command: Command);
}

/// Hears what happens to the connection and the acks. Implemented by the host.
#[uniffi::export(with_foreign)]
pub trait StateObserver: Send + Sync {
    /// The connection state changed. Must return quickly.
    fn on_state_changed(&self, state: ConnectionState);

    /// The relay answered the ack of command `commandId` (`status` is what was posted).
    fn on_ack_finished(&self, command_id: String, status: AckStatus, result: AckResult);
}

/// Where the device token lives: the Android Keystore or the iOS Keychain. Implemented
/// by the host (see `KeystoreSecureStore` on Android and `KeychainSecureStore` on iOS).
/// The token is a bearer credential: never log it.
#[uniffi::export(with_foreign)]
pub trait SecureStore: Send + Sync {
    /// The stored token, or `null`/`nil` when there is none.
    fn load_token(&self) -> Result<Option<String>, SafeStreamError>;

    /// Stores `token`, replacing any previous one.
    fn save_token(&self, token: String) -> Result<(), SafeStreamError>;

    /// Deletes the token (no error when there is none).
    fn clear_token(&self) -> Result<(), SafeStreamError>;
}

/// Runs a host callback, containing a panic (an undeclared exception) in it.
pub(crate) fn call<R>(what: &'static str, f: impl FnOnce() -> R) -> Option<R> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => Some(r),
        Err(_) => {
            // Not through `tracing`: the logger may be the callback that failed.
            eprintln!("safestream: host callback {what} failed; ignored");
            None
        }
    }
}

/// agent-core's `Platform`, forwarding to the host's runner and observer.
pub(crate) struct Host {
    pub runner: Arc<dyn CommandRunner>,
    pub observer: Option<Arc<dyn StateObserver>>,
}

/// Not panic-guarded here: agent-core guards every `Platform` call it makes.
impl core::Platform for Host {
    fn run_command(&self, command: core::Command) {
        self.runner.on_command(Command::from(command));
    }

    fn connection_state_changed(&self, state: core::ConnectionState) {
        if let Some(o) = &self.observer {
            o.on_state_changed(state.into());
        }
    }

    fn ack_finished(&self, id: String, status: core::AckStatus, result: core::AckResult) {
        if let Some(o) = &self.observer {
            o.on_ack_finished(id, status.into(), result.into());
        }
    }
}

/// agent-core's `TokenStore`, forwarding to the host's [`SecureStore`].
pub(crate) struct Store(pub Arc<dyn SecureStore>);

fn store_result<T>(r: Option<Result<T, SafeStreamError>>) -> Result<T, String> {
    match r {
        Some(Ok(v)) => Ok(v),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("the secure store panicked".to_owned()),
    }
}

impl core::TokenStore for Store {
    fn load(&self) -> Result<Option<String>, String> {
        store_result(call("loadToken", || self.0.load_token()))
    }
    fn save(&self, token: &str) -> Result<(), String> {
        store_result(call("saveToken", || self.0.save_token(token.to_owned())))
    }
    fn clear(&self) -> Result<(), String> {
        store_result(call("clearToken", || self.0.clear_token()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agent_core::TokenStore;

    struct Broken;
    impl SecureStore for Broken {
        fn load_token(&self) -> Result<Option<String>, SafeStreamError> {
            panic!("host threw")
        }
        fn save_token(&self, _: String) -> Result<(), SafeStreamError> {
            Err(SafeStreamError::Callback {
                reason: "keystore locked".into(),
            })
        }
        fn clear_token(&self) -> Result<(), SafeStreamError> {
            Ok(())
        }
    }

    #[test]
    fn store_errors_and_panics_become_errors() {
        let s = Store(Arc::new(Broken));
        assert_eq!(s.load().unwrap_err(), "the secure store panicked");
        assert!(s.save("t").unwrap_err().contains("keystore locked"));
        assert_eq!(s.clear(), Ok(()));
    }
}
