//! A simulated child device: connects to the relay, "runs" every command it receives and
//! prints one JSON object per line on stdout (logs go to stderr).
//!
//! ```text
//! cargo run -p agent-core --example device -- --relay ws://127.0.0.1:8080 --token <token> --state-dir /tmp/dev1
//! cargo run -p agent-core --example device -- --relay ws://127.0.0.1:8080 --pair --device-name "Mia's tablet" --state-dir /tmp/dev1
//! ```
//!
//! Output lines:
//! `{"type":"state","state":"connected"}` on every connection state change,
//! `{"type":"command","id":...,"commandType":...,"payload":{...}}` when a command is run,
//! `{"type":"completed","id":...,"status":...}` when the simulated run finishes,
//! `{"type":"ack","id":...,"status":...}` when the relay confirmed an ack,
//! `{"type":"ack_rejected","id":...,"status":...,"httpStatus":409}` when it refused one for good,
//! `{"type":"pairing","code":...,"pairingId":...,"expiresAt":...}` and
//! `{"type":"paired","deviceId":...,"childId":...}` when pairing,
//! `{"type":"report_queued","report":"screenTime"|"restrictedAttempt"}` when a report read
//! on stdin is in the agent's durable queue, `{"type":"report_refused","error":...}` when
//! the agent refused it (bad value), `{"type":"stdin_error","error":...}` for a line it
//! could not read.
//!
//! Reports are driven on stdin, one JSON object per line (the queue posts them, retrying
//! until the relay answers, across restarts):
//! `{"report":"screenTime","minutes":42}` and
//! `{"report":"restrictedAttempt","url":"https://...","title":"...","reason":"...","metadata":{...}}`
//! (every field of the attempt optional). End of stdin changes nothing.
//!
//! Push wake-ups are simulated on stdin too: `{"sync":5000}` is a push arriving with a
//! background budget of 5,000 ms (`Agent::sync_now_within`; prints
//! `{"type":"synced","ran":..,"pulled":..,"acksDone":..}` or `{"type":"sync_error",...}`), and
//! `{"pushToken":{"provider":"fcm","token":"..."}}` registers the platform's push token
//! (prints `{"type":"push_token","ok":true}` or `{"type":"push_token","ok":false,"error":...}`).
//!
//! Every flag can also be given as an environment variable (`SAFESTREAM_RELAY`, ...).
//! A token obtained by pairing is kept in `<state-dir>/device-token` (mode 0600) so the
//! simulated device can restart without pairing again; a real app uses the keystore.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use agent_core::{
    AckResult, AckStatus, Agent, AgentConfig, Command, CommandOutcome, ConnectionState, LogLevel,
    Platform, RestrictedAttempt, TokenStore,
};
use clap::Parser;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
#[command(about = "SafeStream simulated device")]
struct Args {
    /// Relay base URL (ws://host:port or wss://host); the agent adds /api/socket.
    #[arg(long, env = "SAFESTREAM_RELAY")]
    relay: String,
    /// Device token (else the one stored by a previous --pair, else pairing is required).
    #[arg(long, env = "SAFESTREAM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Directory for the agent's state.
    #[arg(long, env = "SAFESTREAM_STATE_DIR")]
    state_dir: PathBuf,
    /// HTTP API base URL when it is not the relay's host.
    #[arg(long, env = "SAFESTREAM_API")]
    api: Option<String>,
    /// Pair instead of using a token: prints the code and waits for approval.
    #[arg(long, env = "SAFESTREAM_PAIR")]
    pair: bool,
    /// Device name shown to the parent when pairing.
    #[arg(
        long,
        env = "SAFESTREAM_DEVICE_NAME",
        default_value = "Simulated device"
    )]
    device_name: String,
    /// Fraction (0–1) of commands that fail (FAILED "simulated failure").
    #[arg(long, env = "SAFESTREAM_FAIL_RATE", default_value_t = 0.0)]
    fail_rate: f64,
    /// Milliseconds a simulated command takes before it is completed.
    #[arg(long, env = "SAFESTREAM_EXEC_DELAY_MS", default_value_t = 0)]
    exec_delay_ms: u64,
    /// Seconds before an uncompleted command is acked FAILED "timeout".
    #[arg(long, env = "SAFESTREAM_COMMAND_TIMEOUT", default_value_t = 120)]
    command_timeout: u64,
    /// Foreground heartbeat to ask of the relay (25–600 s).
    #[arg(long, env = "SAFESTREAM_HEARTBEAT")]
    heartbeat: Option<u32>,
    /// Extra CA certificate (PEM file) for a self-hosted relay.
    #[arg(long, env = "SAFESTREAM_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Log level on stderr: error, warn, info, debug, trace.
    #[arg(long, env = "SAFESTREAM_LOG", default_value = "info")]
    log: String,
}

fn emit(v: Value) {
    println!("{v}");
}

struct Device {
    agent: Arc<OnceLock<Arc<Agent>>>,
    fail_rate: f64,
    exec_delay: Duration,
    runtime: tokio::runtime::Handle,
    seq: std::sync::atomic::AtomicU64,
    max_log: LogLevel,
}

impl Platform for Device {
    fn run_command(&self, command: Command) {
        let payload: Value = serde_json::from_str(&command.payload_json).unwrap_or(Value::Null);
        emit(
            json!({"type": "command", "id": command.id, "commandType": command.command_type.as_str(), "payload": payload}),
        );
        let n = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A deterministic spread: command n fails when the fail-rate boundary is crossed.
        let fail = ((n + 1) as f64 * self.fail_rate).floor() > (n as f64 * self.fail_rate).floor();
        let delay = self.exec_delay;
        let slot = self.agent.clone();
        let id = command.id;
        let ty = command.command_type;
        self.runtime.spawn(async move {
            tokio::time::sleep(delay).await;
            // A command can arrive before `main` stored the agent handle.
            let agent = loop {
                if let Some(a) = slot.get() {
                    break a.clone();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            };
            let outcome = if fail {
                CommandOutcome::Failed { error: "simulated failure".into() }
            } else {
                CommandOutcome::Executed
            };
            let status = if fail { "FAILED" } else { "EXECUTED" };
            match agent.complete_command(id.clone(), outcome) {
                Ok(()) => emit(json!({"type": "completed", "id": id, "commandType": ty.as_str(), "status": status})),
                Err(e) => emit(json!({"type": "complete_refused", "id": id, "error": e.to_string()})),
            }
        });
    }

    fn connection_state_changed(&self, state: ConnectionState) {
        emit(json!({"type": "state", "state": state.as_str()}));
    }

    fn log(&self, level: LogLevel, target: String, message: String) {
        if level <= self.max_log {
            eprintln!("{level:?} {target}: {message}");
        }
    }

    fn ack_finished(&self, id: String, status: AckStatus, result: AckResult) {
        match result {
            AckResult::Confirmed => {
                emit(json!({"type": "ack", "id": id, "status": status.as_str()}))
            }
            AckResult::Rejected { status: http } => emit(
                json!({"type": "ack_rejected", "id": id, "status": status.as_str(), "httpStatus": http}),
            ),
        }
    }
}

/// The simulated device's token file (a real app uses the platform keystore).
struct FileTokenStore(PathBuf);

impl TokenStore for FileTokenStore {
    fn load(&self) -> Result<Option<String>, String> {
        match std::fs::read_to_string(&self.0) {
            Ok(t) => Ok(Some(t.trim().to_owned()).filter(|t| !t.is_empty())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    fn save(&self, token: &str) -> Result<(), String> {
        use std::io::Write;
        let tmp = self.0.with_extension("tmp");
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| e.to_string())?;
        f.write_all(token.as_bytes()).map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
        std::fs::rename(&tmp, &self.0).map_err(|e| e.to_string())
    }
    fn clear(&self) -> Result<(), String> {
        match std::fs::remove_file(&self.0) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

fn level(s: &str) -> LogLevel {
    match s.to_ascii_lowercase().as_str() {
        "error" => LogLevel::Error,
        "warn" => LogLevel::Warn,
        "debug" => LogLevel::Debug,
        "trace" => LogLevel::Trace,
        _ => LogLevel::Info,
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        emit(json!({"type": "error", "error": e}));
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    let max_log = level(&args.log);
    let device = Arc::new(Device {
        agent: Arc::new(OnceLock::new()),
        fail_rate: args.fail_rate.clamp(0.0, 1.0),
        exec_delay: Duration::from_millis(args.exec_delay_ms),
        runtime: tokio::runtime::Handle::current(),
        seq: Default::default(),
        max_log,
    });
    agent_core::init_host_logging(device.clone(), max_log);

    std::fs::create_dir_all(&args.state_dir).map_err(|e| format!("state dir: {e}"))?;
    let tokens = Arc::new(FileTokenStore(args.state_dir.join("device-token")));
    if let Some(t) = &args.token {
        tokens.save(t.trim())?;
    }
    let mut config = AgentConfig::new(
        args.relay.clone(),
        args.state_dir.to_string_lossy().into_owned(),
    );
    config.api_url = args.api.clone();
    config.command_timeout_secs = args.command_timeout.max(1);
    config.heartbeat_secs = args.heartbeat;
    if let Some(ca) = &args.ca_file {
        config.extra_ca_pem =
            Some(std::fs::read_to_string(ca).map_err(|e| format!("ca file: {e}"))?);
    }
    let agent = Arc::new(Agent::start(config, device.clone(), tokens).map_err(|e| e.to_string())?);
    let _ = device.agent.set(agent.clone());
    read_reports(agent.clone());

    if args.pair || (args.token.is_none() && agent.state() == ConnectionState::NotPaired) {
        let code = agent
            .pair(args.device_name.clone())
            .await
            .map_err(|e| e.to_string())?;
        emit(
            json!({"type": "pairing", "code": code.code, "pairingId": code.pairing_id, "expiresAt": code.expires_at}),
        );
        let paired = agent.wait_for_pairing().await.map_err(|e| e.to_string())?;
        emit(json!({"type": "paired", "deviceId": paired.device_id, "childId": paired.child_id}));
    }

    shutdown_signal().await;
    agent.shutdown().await;
    Ok(())
}

/// Reads report commands on stdin (a thread: the agent's report calls are synchronous).
fn read_reports(agent: Arc<Agent>) {
    let rt = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            match serde_json::from_str::<Value>(&line) {
                Ok(v) if v.get("sync").is_some() || v.get("pushToken").is_some() => {
                    rt.spawn(push(agent.clone(), v));
                }
                Ok(v) => report(&agent, &v),
                Err(e) => emit(json!({"type": "stdin_error", "error": e.to_string()})),
            }
        }
    });
}

fn report(agent: &Agent, v: &Value) {
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
    let (kind, res) = match v.get("report").and_then(Value::as_str) {
        Some("screenTime") => {
            let Some(minutes) = v
                .get("minutes")
                .and_then(Value::as_u64)
                .and_then(|m| u32::try_from(m).ok())
            else {
                emit(json!({"type": "stdin_error", "error": "minutes must be a whole number"}));
                return;
            };
            ("screenTime", agent.report_screen_time(minutes))
        }
        Some("restrictedAttempt") => {
            let attempt = RestrictedAttempt {
                url: text("url"),
                title: text("title"),
                reason: text("reason"),
                metadata_json: v.get("metadata").map(Value::to_string),
            };
            (
                "restrictedAttempt",
                agent.report_restricted_attempt(attempt),
            )
        }
        _ => {
            emit(
                json!({"type": "stdin_error", "error": "report must be screenTime or restrictedAttempt"}),
            );
            return;
        }
    };
    match res {
        Ok(()) => emit(json!({"type": "report_queued", "report": kind})),
        Err(e) => emit(json!({"type": "report_refused", "report": kind, "error": e.to_string()})),
    }
}

/// A simulated push (`{"sync": budget_ms}`) or a push token to register (`{"pushToken": {...}}`).
async fn push(agent: Arc<Agent>, v: Value) {
    if let Some(budget) = v.get("sync") {
        let budget = Duration::from_millis(budget.as_u64().unwrap_or(25_000));
        match agent.sync_now_within(budget).await {
            Ok(r) => emit(
                json!({"type": "synced", "ran": r.ran, "pulled": r.pulled, "acksDone": r.acks_done}),
            ),
            Err(e) => emit(json!({"type": "sync_error", "error": e.to_string()})),
        }
        return;
    }
    let t = &v["pushToken"];
    let text = |k: &str| t.get(k).and_then(Value::as_str).map(str::to_owned);
    let res = agent
        .register_push_token(
            text("provider").unwrap_or_default(),
            text("token").unwrap_or_default(),
            text("apnsEnvironment"),
        )
        .await;
    match res {
        Ok(()) => emit(json!({"type": "push_token", "ok": true})),
        Err(e) => emit(json!({"type": "push_token", "ok": false, "error": e.to_string()})),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
