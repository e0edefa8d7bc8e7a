//! In-memory fakes of the seams.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::agent::{Agent, Deps};
use crate::api::{Api, HttpError};
use crate::command::{AckStatus, Command};
use crate::config::{AgentConfig, Endpoints};
use crate::platform::{AckResult, ConnectionState, Platform};
use crate::storage::MemoryStorage;
use crate::time::ManualClock;
use crate::token::MemoryTokenStore;
use crate::transport::{BoxFut, Socket, Transport, WsEvent};

/// 2026-11-25T19:30:00Z
pub const NOW_MS: i64 = 1_795_635_000_000;
pub const SOCKET_URL: &str = "ws://relay.test/api/socket";

#[derive(Default)]
pub struct RelayState {
    pub accept: bool,
    pub close_on_auth: Option<u16>,
    pub connects: Vec<Instant>,
    pub urls: Vec<String>,
    pub sent: Vec<String>,
    pub inbound: Option<mpsc::UnboundedSender<WsEvent>>,
    /// The paused-time instant at which the relay's clock reads [`NOW_MS`]; its clock
    /// advances with tokio's from there (set by [`Harness::new`]).
    pub epoch: Option<Instant>,
}

#[derive(Clone, Default)]
pub struct FakeRelay(pub Arc<Mutex<RelayState>>);

impl FakeRelay {
    pub fn st(&self) -> std::sync::MutexGuard<'_, RelayState> {
        self.0.lock().unwrap()
    }
    pub fn push(&self, ev: WsEvent) {
        if let Some(tx) = &self.st().inbound {
            let _ = tx.send(ev);
        }
    }
    pub fn push_json(&self, v: Value) {
        self.push(WsEvent::Text(v.to_string()));
    }
    /// Drops the server side: the agent's read ends.
    pub fn cut(&self) {
        self.st().inbound = None;
    }
    pub fn connects(&self) -> usize {
        self.st().connects.len()
    }
    pub fn sent_events(&self, event: &str) -> Vec<Value> {
        self.st()
            .sent
            .iter()
            .filter_map(|s| serde_json::from_str::<Value>(s).ok())
            .filter(|v| v["event"] == event)
            .collect()
    }
}

impl Transport for FakeRelay {
    fn connect<'a>(&'a self, url: &'a str) -> BoxFut<'a, Result<Box<dyn Socket>, String>> {
        Box::pin(async move {
            let mut st = self.st();
            st.connects.push(Instant::now());
            st.urls.push(url.to_owned());
            if !st.accept {
                return Err("connection refused".to_owned());
            }
            let (tx, rx) = mpsc::unbounded_channel();
            st.inbound = Some(tx);
            Ok(Box::new(FakeSocket {
                relay: self.clone(),
                rx,
            }) as Box<dyn Socket>)
        })
    }
}

struct FakeSocket {
    relay: FakeRelay,
    rx: mpsc::UnboundedReceiver<WsEvent>,
}

impl Socket for FakeSocket {
    fn send(&mut self, text: String) -> BoxFut<'_, Result<(), String>> {
        Box::pin(async move {
            let mut st = self.relay.st();
            let is_auth = text.contains(r#""event":"auth""#);
            st.sent.push(text);
            if is_auth {
                if let Some(tx) = &st.inbound {
                    let _ = match st.close_on_auth {
                        Some(code) => tx.send(WsEvent::Close(Some(code))),
                        None => tx.send(WsEvent::Text(
                            json!({"event":"ready","data":{"role":"device","deviceId":"d1","childId":"c1","heartbeatSec":25,
                                "serverTime":relay_time(st.epoch)}})
                                .to_string(),
                        )),
                    };
                }
            }
            Ok(())
        })
    }
    fn recv(&mut self) -> BoxFut<'_, Option<WsEvent>> {
        Box::pin(async move { self.rx.recv().await })
    }
    fn close(&mut self) -> BoxFut<'_, ()> {
        Box::pin(async {})
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct PostedAck {
    pub id: String,
    pub status: AckStatus,
    pub error: Option<String>,
    pub at: Instant,
}

/// A report post the fake API saw.
#[derive(Clone, Debug, PartialEq)]
pub struct PostedReport {
    /// `screen-time` or `restricted-attempts`.
    pub path: &'static str,
    pub token: String,
    pub body: Value,
    /// Whether the fake answered 2xx.
    pub ok: bool,
    pub at: Instant,
}

#[derive(Default)]
pub struct ApiState {
    pub acks: Vec<PostedAck>,
    pub script: VecDeque<Result<(), HttpError>>,
    pub reports: Vec<PostedReport>,
    pub report_script: VecDeque<Result<(), HttpError>>,
    pub pending: Vec<Value>,
    /// `GET /api/devices/me/commands` calls.
    pub pulls: usize,
    /// How long each of them takes.
    pub pull_delay: std::time::Duration,
}

#[derive(Clone, Default)]
pub struct FakeApi(pub Arc<Mutex<ApiState>>);

impl FakeApi {
    pub fn st(&self) -> std::sync::MutexGuard<'_, ApiState> {
        self.0.lock().unwrap()
    }
    pub fn acks(&self) -> Vec<PostedAck> {
        self.st().acks.clone()
    }
    pub fn script(&self, answers: Vec<Result<(), HttpError>>) {
        self.st().script = answers.into();
    }
    /// Answers for the next report posts (then `Ok`).
    pub fn script_reports(&self, answers: Vec<Result<(), HttpError>>) {
        self.st().report_script = answers.into();
    }
    pub fn reports(&self) -> Vec<PostedReport> {
        self.st().reports.clone()
    }
    fn report(&self, path: &'static str, token: &str, body: Value) -> Result<(), HttpError> {
        let mut st = self.st();
        let answer = st.report_script.pop_front().unwrap_or(Ok(()));
        st.reports.push(PostedReport {
            path,
            token: token.to_owned(),
            body,
            ok: answer.is_ok(),
            at: Instant::now(),
        });
        answer
    }
}

impl Api for FakeApi {
    fn ack<'a>(
        &'a self,
        _token: &'a str,
        id: &'a str,
        status: AckStatus,
        error: Option<&'a str>,
    ) -> BoxFut<'a, Result<(), HttpError>> {
        Box::pin(async move {
            let mut st = self.st();
            st.acks.push(PostedAck {
                id: id.to_owned(),
                status,
                error: error.map(str::to_owned),
                at: Instant::now(),
            });
            st.script.pop_front().unwrap_or(Ok(()))
        })
    }
    fn pending_commands<'a>(
        &'a self,
        _token: &'a str,
    ) -> BoxFut<'a, Result<crate::api::PendingCommands, HttpError>> {
        Box::pin(async move {
            let delay = {
                let mut st = self.st();
                st.pulls += 1;
                st.pull_delay
            };
            tokio::time::sleep(delay).await;
            Ok((self.st().pending.clone(), Some(NOW_MS)))
        })
    }
    fn restricted_attempt<'a>(
        &'a self,
        token: &'a str,
        body: Value,
    ) -> BoxFut<'a, Result<(), HttpError>> {
        Box::pin(async move { self.report("restricted-attempts", token, body) })
    }
    fn screen_time<'a>(&'a self, token: &'a str, body: Value) -> BoxFut<'a, Result<(), HttpError>> {
        Box::pin(async move { self.report("screen-time", token, body) })
    }
    fn put_push_token<'a>(
        &'a self,
        token: &'a str,
        body: Value,
    ) -> BoxFut<'a, Result<(), HttpError>> {
        Box::pin(async move { self.report("push-token", token, body) })
    }
    fn pairing_start<'a>(&'a self, _name: &'a str) -> BoxFut<'a, Result<Value, HttpError>> {
        Box::pin(async {
            Ok(
                json!({"pairingId": "p1", "code": "K7QF-M2XD", "secret": "s3cret", "expiresAt": "2026-11-25T19:40:00Z"}),
            )
        })
    }
    fn pairing_poll<'a>(
        &'a self,
        _id: &'a str,
        _secret: &'a str,
    ) -> BoxFut<'a, Result<Value, HttpError>> {
        Box::pin(async {
            Ok(
                json!({"status": "APPROVED", "deviceId": "d9", "childId": "c1", "token": "paired-token"}),
            )
        })
    }
}

#[derive(Default)]
pub struct HostState {
    pub commands: Vec<Command>,
    pub states: Vec<ConnectionState>,
    pub acked: Vec<(String, AckStatus, AckResult)>,
}

#[derive(Default)]
pub struct FakeHost(pub Mutex<HostState>);

impl FakeHost {
    pub fn st(&self) -> std::sync::MutexGuard<'_, HostState> {
        self.0.lock().unwrap()
    }
    pub fn command_ids(&self) -> Vec<String> {
        self.st().commands.iter().map(|c| c.id.clone()).collect()
    }
}

impl Platform for FakeHost {
    fn run_command(&self, command: Command) {
        self.st().commands.push(command);
    }
    fn connection_state_changed(&self, state: ConnectionState) {
        self.st().states.push(state);
    }
    fn ack_finished(&self, id: String, status: AckStatus, result: AckResult) {
        self.st().acked.push((id, status, result));
    }
}

/// Everything one test needs; `start` may be called again on the same storage to
/// simulate a process restart.
pub struct Harness {
    pub relay: FakeRelay,
    pub api: FakeApi,
    pub storage: MemoryStorage,
    pub clock: Arc<ManualClock>,
    pub host: Arc<FakeHost>,
    pub config: AgentConfig,
    pub token: Option<String>,
}

impl Harness {
    pub fn new() -> Self {
        let relay = FakeRelay::default();
        relay.st().accept = true;
        relay.st().epoch = Some(Instant::now());
        let mut config = AgentConfig::new("ws://relay.test", "/unused");
        config.command_timeout_secs = 30;
        Self {
            relay,
            api: FakeApi::default(),
            storage: MemoryStorage::default(),
            clock: Arc::new(ManualClock::new(NOW_MS)),
            host: Arc::new(FakeHost::default()),
            config,
            token: Some("device-token-1".into()),
        }
    }

    pub fn start(&self) -> Agent {
        self.start_on(self.host.clone())
    }

    /// Starts an agent with another host implementation.
    pub fn start_on(&self, platform: Arc<dyn Platform>) -> Agent {
        self.start_with_store(
            platform,
            Arc::new(MemoryTokenStore::new(self.token.clone())),
        )
    }

    /// Starts an agent with another host and token store.
    pub fn start_with_store(
        &self,
        platform: Arc<dyn Platform>,
        store: Arc<dyn crate::token::TokenStore>,
    ) -> Agent {
        let endpoints = Endpoints::from_config(&self.config).unwrap();
        let deps = Deps {
            transport: Arc::new(self.relay.clone()),
            api: Arc::new(self.api.clone()),
            storage: Arc::new(self.storage.clone()),
            clock: self.clock.clone(),
        };
        Agent::start_with(self.config.clone(), endpoints, platform, store, deps).unwrap()
    }

    /// Fresh host (a new process has a new host).
    pub fn new_host(&mut self) {
        self.host = Arc::new(FakeHost::default());
    }
}

/// A `command:new` data object expiring `ttl_s` seconds after NOW.
pub fn command(id: &str, ty: &str, ttl_s: i64) -> Value {
    let exp = NOW_MS / 1000 + ttl_s;
    json!({
        "id": id, "commandType": ty, "payload": {}, "childId": "c1", "deviceId": "d1",
        "createdAt": "2026-11-25T19:30:00.000Z",
        "expiresAt": format_ts(exp),
    })
}

pub fn command_frame(id: &str, ty: &str, ttl_s: i64) -> Value {
    json!({"event": "command:new", "data": command(id, ty, ttl_s)})
}

/// The fake relay's clock: [`NOW_MS`] at `epoch`, advancing with tokio's (paused) clock.
fn relay_time(epoch: Option<Instant>) -> String {
    let elapsed = epoch.map_or(0, |e| e.elapsed().as_secs() as i64);
    format_ts(NOW_MS / 1000 + elapsed)
}

fn format_ts(unix_s: i64) -> String {
    // Only used near NOW: 2026-11-25, offsets below a day.
    let base = NOW_MS / 1000 - (19 * 3600 + 30 * 60);
    let secs = unix_s - base;
    assert!((0..86_400).contains(&secs));
    format!(
        "2026-11-25T{:02}:{:02}:{:02}.000Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Lets every task run until idle, advancing paused time by `d`.
pub async fn run_for(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Runs (in paused time) until `cond` holds, at most `max`.
pub async fn until(max: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + max;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}
