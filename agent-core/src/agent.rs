//! [`Agent`]: the public handle over the agent's parts — the [`Connection`] and its task,
//! the [`Outbox`] and its task, the command [`Executor`] and the [`Credentials`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api::{Api, HttpApi, HttpError};
use crate::backoff::{self, Backoff, Rng};
use crate::command::CommandOutcome;
use crate::commands::{Executor, SharedLedger};
use crate::config::{AgentConfig, Endpoints};
use crate::connection::Connection;
use crate::error::AgentError;
use crate::ledger::Ledger;
use crate::machine::link::Heartbeats;
use crate::machine::reports::Report;
use crate::outbox::Outbox;
use crate::platform::{ConnectionState, Platform};
use crate::push::{PushTokens, SyncReport};
use crate::reports::{ReportStore, Reports, RetryOnConnect};
use crate::storage::{FileStorage, Storage};
use crate::time::{Clock, SystemClock};
use crate::token::{Credentials, Secret, TokenStore};
use crate::transport::{tls_config, Transport, WsTransport};
use crate::{connection, lock, outbox, reports, stopped};

/// A pairing code to show to the parent (see [`Agent::pair`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairingCode {
    /// The relay's pairing id.
    pub pairing_id: String,
    /// The code the parent types (`K7QF-M2XD`).
    pub code: String,
    /// When the code expires (RFC 3339).
    pub expires_at: String,
}

/// The device record pairing produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PairedDevice {
    /// This device's id.
    pub device_id: String,
    /// The child it belongs to.
    pub child_id: String,
}

/// A restricted-content attempt, reported with [`Agent::report_restricted_attempt`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestrictedAttempt {
    /// The URL that was blocked.
    pub url: Option<String>,
    /// Its title.
    pub title: Option<String>,
    /// Why it was blocked.
    pub reason: Option<String>,
    /// Extra data, a JSON object as text.
    pub metadata_json: Option<String>,
}

/// The seams, real or fake.
pub(crate) struct Deps {
    pub transport: Arc<dyn Transport>,
    pub api: Arc<dyn Api>,
    pub storage: Arc<dyn Storage>,
    pub clock: Arc<dyn Clock>,
}

fn map_http(e: HttpError) -> AgentError {
    match e {
        HttpError::Network(reason) | HttpError::Decode(reason) => AgentError::Network { reason },
        HttpError::Status { status: 401, .. } => AgentError::Unauthorized,
        HttpError::Status { status, code, .. } => AgentError::Http { status, code },
    }
}

fn clip(s: Option<String>, max_chars: usize) -> Option<String> {
    s.map(|s| s.chars().take(max_chars).collect())
}

/// The on-device agent. Create it with [`Agent::start`]; every method takes `&self` and
/// may be called from any thread. Dropping it stops it.
pub struct Agent {
    api: Arc<dyn Api>,
    credentials: Arc<Credentials>,
    connection: Arc<Connection>,
    executor: Arc<Executor>,
    outbox: Arc<Outbox>,
    reports: Arc<Reports>,
    ledger: SharedLedger,
    stop_tx: watch::Sender<bool>,
    pairing: Mutex<Option<(String, Secret)>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The push token, re-sent until the relay has it.
    push: Arc<PushTokens>,
    /// Held by the sync in progress: a push that comes during one waits for it instead of
    /// asking the relay again.
    syncing: tokio::sync::Mutex<()>,
}

impl Agent {
    /// Starts the agent on the current tokio runtime (call it inside the runtime, e.g.
    /// after `runtime.enter()`): loads the state (acking FAILED "interrupted" any command
    /// the previous process started but never finished), then connects if a token is
    /// stored. Fails only on a bad config or an unusable state directory.
    pub fn start(
        config: AgentConfig,
        platform: Arc<dyn Platform>,
        token_store: Arc<dyn TokenStore>,
    ) -> Result<Agent, AgentError> {
        let endpoints = Endpoints::from_config(&config)?;
        let tls = tls_config(config.extra_ca_pem.as_deref())?;
        let api = HttpApi::new(&endpoints.api, tls.clone())
            .map_err(|reason| AgentError::Config { reason })?;
        let storage = FileStorage::open(&config.state_dir).map_err(|e| AgentError::Storage {
            reason: e.to_string(),
        })?;
        let deps = Deps {
            transport: Arc::new(WsTransport::new(tls)),
            api: Arc::new(api),
            storage: Arc::new(storage),
            clock: Arc::new(SystemClock),
        };
        Self::start_with(config, endpoints, platform, token_store, deps)
    }

    pub(crate) fn start_with(
        cfg: AgentConfig,
        endpoints: Endpoints,
        platform: Arc<dyn Platform>,
        tokens: Arc<dyn TokenStore>,
        deps: Deps,
    ) -> Result<Agent, AgentError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AgentError::NoRuntime)?;
        let report_store =
            ReportStore::load(deps.storage.clone()).map_err(|e| AgentError::Storage {
                reason: e.to_string(),
            })?;
        let reports = Arc::new(Reports::new(report_store));
        let push = Arc::new(PushTokens::load(deps.storage.clone())?);
        let (ledger, interrupted) =
            Ledger::load(deps.storage, deps.clock.now_unix_ms()).map_err(|e| {
                AgentError::Storage {
                    reason: e.to_string(),
                }
            })?;
        for id in &interrupted {
            tracing::warn!(id = %id, "command cut short by the app's death; acking FAILED interrupted");
        }
        let credentials = Arc::new(Credentials::load(tokens)?);
        let outbox = Arc::new(Outbox::default());
        for ack in ledger.outbox() {
            outbox.queue(ack.clone());
        }
        let ledger: SharedLedger = Arc::new(Mutex::new(ledger));
        let (stop_tx, _) = watch::channel(false);
        let executor = Arc::new(Executor::new(
            platform.clone(),
            deps.clock,
            ledger.clone(),
            outbox.clone(),
            Duration::from_secs(cfg.command_timeout_secs),
            runtime.clone(),
            stop_tx.subscribe(),
        ));
        let hooked: Arc<dyn Platform> = Arc::new(RetryOnConnect {
            inner: platform.clone(),
            reports: reports.clone(),
        });
        let connection = Arc::new(Connection::new(hooked, ConnectionState::Stopped));
        // Known before `start` returns, so the host can decide to pair at once.
        connection.set_state(if credentials.current().is_some() {
            ConnectionState::Connecting
        } else {
            ConnectionState::NotPaired
        });
        let link_deps = connection::Deps {
            transport: deps.transport,
            socket_url: endpoints.socket.clone(),
            heartbeats: Heartbeats {
                foreground: cfg.heartbeat_secs,
                background: cfg.background_heartbeat_secs,
            },
            credentials: credentials.clone(),
            executor: executor.clone(),
            outbox: outbox.clone(),
        };
        let report_deps = reports::Deps {
            api: deps.api.clone(),
            credentials: credentials.clone(),
        };
        let outbox_deps = outbox::Deps {
            ledger: ledger.clone(),
            api: deps.api.clone(),
            credentials: credentials.clone(),
            platform,
        };
        let tasks = vec![
            runtime.spawn(connection::run(
                connection.clone(),
                link_deps,
                stop_tx.subscribe(),
            )),
            runtime.spawn(outbox::run(
                outbox.clone(),
                outbox_deps,
                stop_tx.subscribe(),
            )),
            runtime.spawn(reports::run(
                reports.clone(),
                report_deps,
                stop_tx.subscribe(),
            )),
        ];
        tracing::info!(socket = %endpoints.socket, "agent started");
        if push.unsent().is_some() {
            // A token the relay never confirmed (the app died, the relay was down): again.
            let (api, creds, push) = (deps.api.clone(), credentials.clone(), push.clone());
            runtime.spawn(async move {
                let _ = send_push_token(&*api, &creds, &push).await;
            });
        }
        Ok(Agent {
            api: deps.api,
            credentials,
            connection,
            executor,
            outbox,
            reports,
            ledger,
            stop_tx,
            pairing: Mutex::new(None),
            tasks: Mutex::new(tasks),
            push,
            syncing: tokio::sync::Mutex::new(()),
        })
    }

    /// Stops the agent: closes the socket cleanly, stops retrying acks (they stay in the
    /// outbox for the next start) and stops command timers. Returns at once; see
    /// [`Agent::shutdown`] to wait.
    pub fn stop(&self) {
        if self.stop_tx.send_replace(true) {
            return;
        }
        self.executor.stop_timers();
        tracing::info!("agent stopping");
    }

    /// Stops the agent and waits (at most 5 s) for its tasks to end.
    pub async fn shutdown(&self) {
        self.stop();
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        for t in tasks {
            let abort = t.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.connection.state()
    }

    /// Finishes a command the host was given by [`Platform::run_command`]. The ack is
    /// written to the outbox before this returns and posted as soon as possible (even
    /// after a restart). Errors with [`AgentError::UnknownCommand`] when `id` is not
    /// running (already finished, timed out, or never given).
    pub fn complete_command(&self, id: String, outcome: CommandOutcome) -> Result<(), AgentError> {
        self.executor.finish_command(&id, outcome)
    }

    /// Reports live presence: whether the child is watching and what (`current_video` is
    /// sent as an object when it is a JSON object, else as a string; max 2 KiB). Sent at
    /// once when connected, and again after every reconnect.
    pub fn report_status(&self, active_viewing: bool, current_video: Option<String>) {
        let frame = crate::protocol::device_status(active_viewing, current_video.as_deref());
        self.connection.report_status(frame);
    }

    /// Reports the minutes the child used today (0–1440) to the relay
    /// (`POST /api/dashboard/screen-time`, for the child named in the device token). The
    /// relay records them for the child's current day and, the first time a day's value
    /// reaches the child's limit, alerts the guardians.
    ///
    /// Durable: the value is in the report queue on disk before this returns, and posted
    /// (retried with backoff, after restarts too) until the relay answers. Screen time is a
    /// latest value: a newer report replaces an unsent older one. Errors only on a value
    /// over 1440 ([`AgentError::Config`]) or a failed write ([`AgentError::Storage`]).
    pub fn report_screen_time(&self, minutes_used: u32) -> Result<(), AgentError> {
        if minutes_used > 1440 {
            return Err(AgentError::Config {
                reason: "minutesUsed must be from 0 to 1440".into(),
            });
        }
        self.record(Report::ScreenTime { minutes_used })
    }

    /// Reports a restricted-content attempt (`POST /api/devices/me/restricted-attempts`);
    /// the relay notifies the child's guardians. `url`, `title` and `reason` are cut to
    /// 2,000 characters; `metadata_json` must be a JSON object of at most 8 KiB.
    ///
    /// Durable like [`Agent::report_screen_time`]: queued on disk before this returns,
    /// retried until the relay answers. Each attempt is kept (at most 300 unsent; beyond
    /// that the oldest is dropped and logged). A retry after a lost answer may notify the
    /// guardians twice (at-least-once). Errors on bad metadata ([`AgentError::Config`]) or
    /// a failed write ([`AgentError::Storage`]).
    pub fn report_restricted_attempt(&self, attempt: RestrictedAttempt) -> Result<(), AgentError> {
        let metadata = match attempt.metadata_json {
            None => Value::Object(Default::default()),
            Some(m) => match serde_json::from_str::<Value>(&m) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return Err(AgentError::Config {
                        reason: "metadata_json is not a JSON object".into(),
                    })
                }
            },
        };
        let body = wire::rest::RestrictedAttempt {
            url: clip(attempt.url, 2000),
            title: clip(attempt.title, 2000),
            reason: clip(attempt.reason, 2000),
            metadata,
        };
        // The relay's own check: what passes here is never refused as malformed.
        let value = serde_json::to_value(&body).map_err(|e| AgentError::Config {
            reason: e.to_string(),
        })?;
        use wire::rest::FromBody;
        let body = wire::rest::RestrictedAttempt::from_body(&value)
            .map_err(|e| AgentError::Config { reason: e.0 })?;
        self.record(Report::Restricted(body))
    }

    fn record(&self, report: Report) -> Result<(), AgentError> {
        // Bound to the child of the token current now: never posted for another.
        let token = self.credentials.current();
        let owner = reports::owner_of(token.as_ref().map(|t| t.0.as_str()));
        self.reports
            .record(report, owner)
            .map_err(|e| AgentError::Storage {
                reason: e.to_string(),
            })
    }

    /// Waits until every report (screen time, restricted attempts) reached the relay or
    /// `timeout` passed; returns whether the queue is empty. Like [`Agent::wait_for_acks`].
    pub async fn wait_for_reports(&self, timeout: Duration) -> bool {
        let far = Duration::from_secs(10 * 365 * 24 * 3600);
        let deadline = tokio::time::Instant::now() + timeout.min(far);
        loop {
            let drained = self.reports.drained.notified();
            if self.reports.len() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return self.reports.len() == 0;
            }
        }
    }

    /// Fetches pending commands over HTTPS (`GET /api/devices/me/commands`) and runs the
    /// new ones, for a host woken by a push message while the socket is down. A command
    /// that also arrives on the socket still runs once. Returns how many were handed to
    /// the host. Acks go through the outbox; see [`Agent::wait_for_acks`].
    pub async fn sync_now(&self) -> Result<u32, AgentError> {
        let _one = self.syncing.lock().await;
        self.pull().await
    }

    /// One pull: fetch, run the new commands, retry the acks now.
    async fn pull(&self) -> Result<u32, AgentError> {
        let token = self.credentials.current().ok_or(AgentError::Unauthorized)?;
        let (items, server_time) = self
            .api
            .pending_commands(&token.0)
            .await
            .map_err(map_http)?;
        if let Some(ms) = server_time {
            self.executor.relay_time(ms);
        }
        let ran = self.executor.handle_commands(&items, "sync");
        self.outbox.retry_now();
        Ok(ran)
    }

    /// What a host woken by a push calls, with the time the platform gives it in the
    /// background (`budget`: FCM's data-message handler, iOS's 30 s for a remote
    /// notification, minus a margin). It pulls the pending commands even while the socket
    /// looks open: the relay pushes only to a device whose socket it thinks gone or that
    /// has not acked for a while, so a socket that looks open here is most likely one the
    /// platform suspended (a command also delivered on the socket still runs once). While
    /// another sync runs it waits for that one instead of asking again. Then it waits for
    /// the acks until the budget ends. Also sends a push token the relay has not confirmed
    /// yet.
    pub async fn sync_now_within(&self, budget: Duration) -> Result<SyncReport, AgentError> {
        let far = Duration::from_secs(24 * 3600);
        let deadline = tokio::time::Instant::now() + budget.min(far);
        if self.push.unsent().is_some() {
            let _ = tokio::time::timeout_at(
                deadline,
                send_push_token(&*self.api, &self.credentials, &self.push),
            )
            .await;
        }
        let mut report = SyncReport::default();
        match self.syncing.try_lock() {
            Ok(_one) => {
                report.pulled = true;
                report.ran = tokio::time::timeout_at(deadline, self.pull())
                    .await
                    .map_err(|_| AgentError::Network {
                        reason: "the background budget ran out before the relay answered".into(),
                    })??;
            }
            Err(_) => {
                // Another sync is fetching the same commands: wait for it (its acks are
                // waited for below).
                let _ = tokio::time::timeout_at(deadline, self.syncing.lock()).await;
            }
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        report.acks_done = self.wait_for_acks(left).await;
        Ok(report)
    }

    /// Registers the platform's push token (FCM registration token, or APNs device token in
    /// hex with its environment, `production` or `sandbox`) so that the relay can wake this
    /// device. Call it with every token the platform hands over (`onNewToken`,
    /// `didRegisterForRemoteNotificationsWithDeviceToken`): an unchanged one costs nothing.
    /// It is kept in the state directory and sent to the relay now; if that fails it is
    /// sent again at the next start or sync (the error says why it failed now).
    pub async fn register_push_token(
        &self,
        provider: String,
        token: String,
        apns_environment: Option<String>,
    ) -> Result<(), AgentError> {
        self.push
            .set(&provider, &token, apns_environment.as_deref())?;
        send_push_token(&*self.api, &self.credentials, &self.push).await
    }

    /// Waits until the outbox is empty or `timeout` passed; returns whether it is empty.
    /// For a host that must finish its work before the platform suspends it.
    pub async fn wait_for_acks(&self, timeout: Duration) -> bool {
        // A huge timeout means "as long as it takes" (and must not overflow).
        let far = Duration::from_secs(10 * 365 * 24 * 3600);
        let deadline = tokio::time::Instant::now() + timeout.min(far);
        loop {
            let drained = self.outbox.drained.notified();
            if lock(&self.ledger).outbox_len() == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, drained).await.is_err() {
                return lock(&self.ledger).outbox_len() == 0;
            }
        }
    }

    /// Hint from the host: the network is available again. Reconnects at once (no backoff
    /// wait) and retries queued acks now.
    pub fn network_available(&self) {
        tracing::debug!("network available hint");
        self.connection.network_available();
        self.outbox.retry_now();
        self.reports.retry_now();
    }

    /// Hint from the host: the app went to the background (`true`) or came back (`false`).
    /// In the background the agent asks the relay for a longer heartbeat
    /// ([`AgentConfig::background_heartbeat_secs`]) with a `heartbeat` frame.
    pub fn set_background(&self, background: bool) {
        self.connection.set_background(background);
    }

    /// Stores a device token (e.g. issued by the backend) and (re)connects with it.
    pub fn set_token(&self, token: String) -> Result<(), AgentError> {
        self.credentials.set(token)?;
        // Maybe another device record: it needs the push token too.
        self.push.resend();
        Ok(())
    }

    /// Replaces the token of the open socket with `auth:refresh` (same device only; the
    /// relay closes with 4403 otherwise), and stores it for the next connections.
    pub fn refresh_token(&self, token: String) -> Result<(), AgentError> {
        // No open socket to refresh (e.g. closed 4401 at the old token's expiry): the
        // change is announced, so that the connection connects with the new token.
        let announce = self.state() != ConnectionState::Connected;
        let secret = self.credentials.refresh(token, announce)?;
        self.connection.refresh(secret);
        Ok(())
    }

    /// Deletes the stored token and disconnects (state [`ConnectionState::NotPaired`]).
    /// Unsent reports are dropped with it: they belong to the pairing that ended.
    pub fn clear_token(&self) -> Result<(), AgentError> {
        self.credentials.clear()?;
        self.reports.clear().map_err(|e| AgentError::Storage {
            reason: e.to_string(),
        })
    }

    /// Starts pairing (design section 6): asks the relay for a code to show to the parent.
    /// Then call [`Agent::wait_for_pairing`]. The pairing secret stays inside the agent.
    pub async fn pair(&self, device_name: String) -> Result<PairingCode, AgentError> {
        let name = device_name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(AgentError::Config {
                reason: "device name must be 1–100 characters".into(),
            });
        }
        let v = self.api.pairing_start(name).await.map_err(map_http)?;
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && s.len() <= 4096)
                .map(str::to_owned)
        };
        let (Some(pairing_id), Some(code), Some(secret)) =
            (field("pairingId"), field("code"), field("secret"))
        else {
            return Err(AgentError::Network {
                reason: "unexpected pairing answer".into(),
            });
        };
        if !crate::command::valid_id(&pairing_id) {
            return Err(AgentError::Network {
                reason: "unexpected pairing id".into(),
            });
        }
        *lock(&self.pairing) = Some((pairing_id.clone(), Secret(secret)));
        tracing::info!(pairing_id = %pairing_id, "pairing started");
        Ok(PairingCode {
            pairing_id,
            code,
            expires_at: field("expiresAt").unwrap_or_default(),
        })
    }

    /// Waits (long polls) until the parent approves the pairing started by [`Agent::pair`],
    /// then stores the device token and connects. Errors with [`AgentError::Pairing`] when
    /// it is rejected or expires.
    pub async fn wait_for_pairing(&self) -> Result<PairedDevice, AgentError> {
        let (id, secret) = lock(&self.pairing)
            .clone()
            .ok_or_else(|| AgentError::Pairing {
                reason: "not started".into(),
            })?;
        let mut stop = self.stop_tx.subscribe();
        let mut backoff = Backoff::new(backoff::ACK, Rng::from_entropy());
        loop {
            let started = tokio::time::Instant::now();
            let res = tokio::select! {
                r = self.api.pairing_poll(&id, &secret.0) => r,
                () = stopped(&mut stop) => return Err(AgentError::Stopped),
            };
            let pause = match res {
                Ok(v) => match v.get("status").and_then(Value::as_str).unwrap_or("") {
                    "APPROVED" => {
                        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
                        let (Some(token), Some(device_id), Some(child_id)) =
                            (s("token"), s("deviceId"), s("childId"))
                        else {
                            return Err(AgentError::Network {
                                reason: "approved pairing without token".into(),
                            });
                        };
                        self.credentials.set(token)?;
                        self.push.resend();
                        *lock(&self.pairing) = None;
                        tracing::info!(device_id = %device_id, "paired");
                        return Ok(PairedDevice {
                            device_id,
                            child_id,
                        });
                    }
                    "REJECTED" => {
                        *lock(&self.pairing) = None;
                        return Err(AgentError::Pairing {
                            reason: "rejected".into(),
                        });
                    }
                    _ => {
                        backoff.reset();
                        // A relay that answers at once instead of holding the poll must
                        // not make us spin.
                        if started.elapsed() < Duration::from_secs(1) {
                            Duration::from_secs(2)
                        } else {
                            Duration::ZERO
                        }
                    }
                },
                Err(HttpError::Status { status: 410, .. })
                | Err(HttpError::Status { status: 404, .. }) => {
                    *lock(&self.pairing) = None;
                    return Err(AgentError::Pairing {
                        reason: "expired".into(),
                    });
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = ?e, "pairing poll failed; retrying");
                    backoff.next_delay()
                }
                Err(e) => return Err(map_http(e)),
            };
            if !pause.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = stopped(&mut stop) => return Err(AgentError::Stopped),
                }
            }
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends the push token when the relay does not have it yet.
async fn send_push_token(
    api: &dyn Api,
    credentials: &Credentials,
    push: &PushTokens,
) -> Result<(), AgentError> {
    let Some(body) = push.unsent() else {
        return Ok(());
    };
    let token = credentials.current().ok_or(AgentError::Unauthorized)?;
    api.put_push_token(&token.0, body.clone())
        .await
        .map_err(map_http)?;
    push.sent(&body);
    tracing::info!("push token registered with the relay");
    Ok(())
}
