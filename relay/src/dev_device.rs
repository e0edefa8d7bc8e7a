//! `--dev`: a simulated device paired to the demo child, run in this process by the real
//! agent (`agent-core`, the library the child's app embeds), so the console shows a device
//! online from the first second and a LOCK sent from it goes PENDING → DELIVERED → EXECUTED.
//!
//! It connects over loopback like any device (its own socket, its own durable acks over
//! HTTP); nothing here takes a shortcut into the relay's state. It "watches" a video, stops
//! on PAUSE and LOCK_DEVICE, and goes on on RESUME and UNLOCK_DEVICE, reporting each change
//! as `device:status` so the console's presence is live too.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use agent_core::{
    Agent, AgentConfig, Command, CommandOutcome, CommandType, ConnectionState, LogLevel,
    MemoryTokenStore, Platform,
};

/// How long the simulated device takes to run a command: long enough for a person to see
/// the DELIVERED step in the console.
const RUN_DELAY: Duration = Duration::from_millis(700);
/// What the demo device is "watching".
const VIDEO: &str =
    r#"{"title":"Ocean Explorers: Episode 3","url":"https://videos.example.com/ocean-3"}"#;

/// The running demo device.
pub struct DemoDevice {
    agent: Arc<Agent>,
}

struct Sim {
    /// Weak: the agent owns this platform object.
    agent: OnceLock<Weak<Agent>>,
    runtime: tokio::runtime::Handle,
    /// Watching, locked.
    state: Mutex<(bool, bool)>,
}

impl Sim {
    fn report(&self, agent: &Agent) {
        let (watching, locked) = *self.state.lock().unwrap_or_else(|e| e.into_inner());
        agent.report_status(watching && !locked, Some(VIDEO.to_owned()));
    }
}

impl Platform for Sim {
    fn run_command(&self, command: Command) {
        // A command can only come after `start` stored the handle (the agent connects then).
        let Some(this) = self.agent.get().and_then(Weak::upgrade) else {
            return;
        };
        let ty = command.command_type;
        let id = command.id.clone();
        let runtime = self.runtime.clone();
        let applied = {
            let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
            match ty {
                CommandType::Pause => s.0 = false,
                CommandType::Resume => s.0 = true,
                CommandType::LockDevice => s.1 = true,
                CommandType::UnlockDevice => s.1 = false,
                CommandType::ShowMessage => {}
            }
            *s
        };
        tracing::info!(command_id = %id, command = ty.as_str(), "demo device: running");
        runtime.spawn(async move {
            tokio::time::sleep(RUN_DELAY).await;
            let (watching, locked) = applied;
            this.report_status(watching && !locked, Some(VIDEO.to_owned()));
            if let Err(e) = this.complete_command(id, CommandOutcome::Executed) {
                tracing::warn!(error = %e, "demo device: completing a command");
            }
        });
    }

    fn connection_state_changed(&self, state: ConnectionState) {
        tracing::debug!(state = state.as_str(), "demo device");
        if state == ConnectionState::Connected {
            if let Some(agent) = self.agent.get().and_then(Weak::upgrade) {
                self.report(&agent);
            }
        }
    }

    fn log(&self, level: LogLevel, target: String, message: String) {
        if level <= LogLevel::Warn {
            tracing::warn!(target: "demo_device", %target, "{message}");
        }
    }
}

impl DemoDevice {
    /// Starts the demo device against the relay at `addr` (plain `ws://`; with TLS the demo
    /// device is not started, see the banner) with the device token dev mode issued.
    pub fn start(addr: SocketAddr, token: &str, device_id: &str) -> Result<DemoDevice, String> {
        let host = if addr.ip().is_unspecified() {
            format!("127.0.0.1:{}", addr.port())
        } else {
            addr.to_string()
        };
        let dir = std::env::temp_dir().join(format!("safestream-demo-device-{device_id}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("demo device state: {e}"))?;
        let config = AgentConfig::new(format!("ws://{host}"), dir.to_string_lossy().into_owned());
        let sim = Arc::new(Sim {
            agent: OnceLock::new(),
            runtime: tokio::runtime::Handle::current(),
            state: Mutex::new((true, false)),
        });
        let tokens = Arc::new(MemoryTokenStore::new(Some(token.to_owned())));
        let agent = Arc::new(
            Agent::start(config, sim.clone(), tokens).map_err(|e| format!("demo device: {e}"))?,
        );
        let _ = sim.agent.set(Arc::downgrade(&agent));
        Ok(DemoDevice { agent })
    }

    /// Closes its socket and waits for its acks in flight.
    pub async fn stop(self) {
        self.agent.shutdown().await;
    }
}
