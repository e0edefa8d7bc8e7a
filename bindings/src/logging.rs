//! [`set_logger`]: the agent's log lines to the host (Logcat on Android, os_log on iOS).

use std::sync::{Arc, OnceLock, RwLock};

use agent_core as core;

use crate::platform::call;

/// Severity of a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, uniffi::Enum)]
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

impl From<LogLevel> for core::LogLevel {
    fn from(l: LogLevel) -> Self {
        match l {
            LogLevel::Error => Self::Error,
            LogLevel::Warn => Self::Warn,
            LogLevel::Info => Self::Info,
            LogLevel::Debug => Self::Debug,
            LogLevel::Trace => Self::Trace,
        }
    }
}

impl From<core::LogLevel> for LogLevel {
    fn from(l: core::LogLevel) -> Self {
        match l {
            core::LogLevel::Error => Self::Error,
            core::LogLevel::Warn => Self::Warn,
            core::LogLevel::Info => Self::Info,
            core::LogLevel::Debug => Self::Debug,
            core::LogLevel::Trace => Self::Trace,
        }
    }
}

/// Receives the agent's log lines. Implemented by the host. Lines never contain tokens.
#[uniffi::export(with_foreign)]
pub trait Logger: Send + Sync {
    /// One log line; `target` is the Rust module (`agent_core::connection`). Called from
    /// the agent's threads: must return quickly and must not call back into the agent.
    fn on_log(&self, level: LogLevel, target: String, message: String);
}

type Current = Option<(Arc<dyn Logger>, core::LogLevel)>;

static LOGGER: RwLock<Current> = RwLock::new(None);
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// Sends the agent's log lines at `maxLevel` and above to `logger`, for the whole
/// process. Call it once, early (before `Agent.start`); a later call replaces the logger
/// and its level, but the level of the first call is the most verbose that will ever be
/// produced. Returns `false` when another global `tracing` subscriber was already
/// installed by someone else in the process (then nothing is forwarded).
#[uniffi::export]
pub fn set_logger(logger: Arc<dyn Logger>, max_level: LogLevel) -> bool {
    let max: core::LogLevel = max_level.into();
    *LOGGER.write().unwrap_or_else(|e| e.into_inner()) = Some((logger, max));
    *INSTALLED.get_or_init(|| core::init_host_logging(Arc::new(Bridge), max))
}

/// agent-core's `Platform`, used only for its `log` method.
struct Bridge;

impl core::Platform for Bridge {
    fn run_command(&self, _: core::Command) {}
    fn connection_state_changed(&self, _: core::ConnectionState) {}
    fn log(&self, level: core::LogLevel, target: String, message: String) {
        let current = LOGGER.read().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((logger, max)) = current {
            if level <= max {
                call("onLog", || logger.on_log(level.into(), target, message));
            }
        }
    }
}
