//! The uniffi surface of [`agent_core`]: what the child's app on Android and iOS (and the
//! React Native module on top) calls. A thin wrapper: every exported method forwards to an
//! `Arc<agent_core::Agent>`; the types here are FFI mirrors of agent-core's with `From`
//! impls; one small public error enum.
//!
//! The host creates an [`Agent`] with [`Agent::start`], giving it an [`AgentConfig`] and
//! its implementations of the foreign traits:
//!
//! - [`CommandRunner`] runs a command (PAUSE, LOCK_DEVICE, ...) and finishes it later,
//!   from any thread, with [`Agent::complete_command`];
//! - [`StateObserver`] hears connection-state changes and ack results;
//! - [`SecureStore`] keeps the device token (Android Keystore, iOS Keychain);
//! - [`Logger`] (installed once per process with [`set_logger`]) receives the agent's
//!   log lines (Logcat, os_log).
//!
//! One tokio runtime per process, owned here (`runtime`); every async method runs on it,
//! whatever executor the foreign language drives the future with.
//!
//! **Panics never cross the FFI.** A panic in an exported function becomes an internal
//! error in the host language (uniffi catches it); an exception thrown by a host callback
//! that declares no error becomes a panic in Rust, which is caught here
//! (`platform::call`) and by agent-core, and logged; the process goes on.
//!
//! # Layout
//!
//! - `agent` — [`Agent`], the object the host holds.
//! - `types` — [`AgentConfig`], [`Command`], [`CommandOutcome`], [`ConnectionState`], ...
//! - `platform` — the foreign traits and the bridge implementing `agent_core::Platform`.
//! - `logging` — [`set_logger`], [`Logger`] and [`LogLevel`].
//! - `error` — [`SafeStreamError`], the one public error.
//! - `runtime` — the process's tokio runtime.

#![warn(missing_docs)]

uniffi::setup_scaffolding!("safestream");

mod agent;
mod error;
mod logging;
mod platform;
mod runtime;
mod types;

pub use agent::Agent;
pub use error::SafeStreamError;
pub use logging::{set_logger, LogLevel, Logger};
pub use platform::{CommandRunner, SecureStore, StateObserver};
pub use types::{
    AckResult, AckStatus, AgentConfig, Command, CommandOutcome, CommandType, ConnectionState,
    PairedDevice, PairingCode, RestrictedAttempt,
};

/// The version of the bindings (the crate version), for the app's diagnostics.
#[uniffi::export]
pub fn bindings_version() -> String {
    env!("CARGO_PKG_VERSION").to_owned()
}
