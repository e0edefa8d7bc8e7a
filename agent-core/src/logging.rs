//! Forwarding `tracing` events to the host's logger ([`Platform::log`]).
//!
//! The agent logs through `tracing`; a host that has no subscriber of its own installs
//! [`init_host_logging`], a host that has one adds a [`HostLogLayer`] to it.

use std::fmt::Write as _;
use std::sync::Arc;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use crate::platform::{LogLevel, Platform};

/// A `tracing_subscriber` layer that sends every event at or above `max_level` to
/// [`Platform::log`] as one line (`message key=value ...`).
pub struct HostLogLayer {
    platform: Arc<dyn Platform>,
    max_level: LogLevel,
}

impl HostLogLayer {
    /// Forwards events up to `max_level` (e.g. [`LogLevel::Info`]) to `platform`.
    pub fn new(platform: Arc<dyn Platform>, max_level: LogLevel) -> Self {
        Self {
            platform,
            max_level,
        }
    }
}

fn level_of(l: &Level) -> LogLevel {
    match *l {
        Level::ERROR => LogLevel::Error,
        Level::WARN => LogLevel::Warn,
        Level::INFO => LogLevel::Info,
        Level::DEBUG => LogLevel::Debug,
        _ => LogLevel::Trace,
    }
}

#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={}", field.name(), value);
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={:?}", field.name(), value);
        }
    }
}

thread_local! {
    /// Set while the host's logger runs, so an event it emits itself is not sent back to it.
    static IN_HOST_LOG: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

impl<S: Subscriber> Layer<S> for HostLogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = level_of(event.metadata().level());
        if level > self.max_level || IN_HOST_LOG.with(|f| f.get()) {
            return;
        }
        let mut line = Line::default();
        event.record(&mut line);
        line.message.push_str(&line.fields);
        IN_HOST_LOG.with(|f| f.set(true));
        let target = event.metadata().target().to_owned();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.platform.log(level, target, line.message)
        }));
        IN_HOST_LOG.with(|f| f.set(false));
    }
}

/// Installs a global subscriber that forwards the agent's logs to `platform`. Returns
/// `false` when a global subscriber was already set (then add a [`HostLogLayer`] to it).
pub fn init_host_logging(platform: Arc<dyn Platform>, max_level: LogLevel) -> bool {
    tracing_subscriber::registry()
        .with(HostLogLayer::new(platform, max_level))
        .try_init()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Command;
    use crate::platform::ConnectionState;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Logs(Mutex<Vec<(LogLevel, String)>>);
    impl Platform for Logs {
        fn run_command(&self, _: Command) {}
        fn connection_state_changed(&self, _: ConnectionState) {}
        fn log(&self, level: LogLevel, _target: String, message: String) {
            self.0.lock().unwrap().push((level, message));
        }
    }

    #[test]
    fn forwards_events_with_fields_and_filters_levels() {
        let logs = Arc::new(Logs::default());
        let sub =
            tracing_subscriber::registry().with(HostLogLayer::new(logs.clone(), LogLevel::Info));
        tracing::subscriber::with_default(sub, || {
            tracing::info!(id = "c1", "command run");
            tracing::debug!("hidden");
        });
        let got = logs.0.lock().unwrap().clone();
        assert_eq!(got, vec![(LogLevel::Info, "command run id=c1".to_owned())]);
    }
}
