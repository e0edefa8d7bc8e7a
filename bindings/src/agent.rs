//! [`Agent`]: the object the host holds, a thin wrapper over `Arc<agent_core::Agent>`.

use std::sync::Arc;
use std::time::Duration;

use agent_core as core;

use crate::error::SafeStreamError;
use crate::platform::{CommandRunner, Host, SecureStore, StateObserver, Store};
use crate::runtime;
use crate::types::{
    AgentConfig, CommandOutcome, ConnectionState, PairedDevice, PairingCode, RestrictedAttempt,
    SyncReport,
};

/// The on-device agent: keeps one socket to the relay, hands each remote command to the
/// host exactly once, and posts its acknowledgment durably. Every method may be called
/// from any thread; the async ones never block the caller's thread (they run on the
/// agent's own runtime). Keep one per process; dropping the last reference stops it.
#[derive(uniffi::Object)]
pub struct Agent {
    inner: Arc<core::Agent>,
}

#[uniffi::export]
impl Agent {
    /// Starts the agent: loads its state from `config.stateDir` (a command the previous
    /// process started but never finished is acked FAILED "interrupted", never run
    /// again), reads the token from `store`, and connects when there is one (else the
    /// state is `NOT_PAIRED`: call `pair`). `runner` receives the commands;
    /// `observer`, when given, the state changes (the first one before this returns).
    /// Fails only on a bad config, an unusable state directory or a failing store.
    #[uniffi::constructor]
    pub fn start(
        config: AgentConfig,
        runner: Arc<dyn CommandRunner>,
        store: Arc<dyn SecureStore>,
        observer: Option<Arc<dyn StateObserver>>,
    ) -> Result<Arc<Self>, SafeStreamError> {
        let rt = runtime::get()?;
        let _enter = rt.enter();
        let host = Arc::new(Host { runner, observer });
        let inner = core::Agent::start(config.into(), host, Arc::new(Store(store)))?;
        Ok(Arc::new(Self {
            inner: Arc::new(inner),
        }))
    }

    /// Stops the agent: closes the socket, stops retrying acks (they stay queued on disk
    /// for the next start). Returns at once. A stopped agent cannot be restarted: start
    /// a new one.
    pub fn stop(&self) {
        self.inner.stop();
    }

    /// Stops the agent and waits (at most 5 s) until its tasks have ended.
    pub async fn shutdown(&self) -> Result<(), SafeStreamError> {
        let inner = self.inner.clone();
        runtime::run(async move {
            inner.shutdown().await;
            Ok(())
        })
        .await
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        self.inner.state().into()
    }

    /// Finishes a command given to `CommandRunner.onCommand`, from any thread. The ack is
    /// on disk before this returns and is posted as soon as possible (even after a
    /// restart). Throws `UnknownCommand` when `commandId` is not running (already
    /// finished, timed out, or never given).
    pub fn complete_command(
        &self,
        command_id: String,
        outcome: CommandOutcome,
    ) -> Result<(), SafeStreamError> {
        Ok(self.inner.complete_command(command_id, outcome.into())?)
    }

    /// Reports live presence to the parents: whether the child is watching and what
    /// (`currentVideo`: a JSON object as text, or plain text; at most 2 KiB). Sent at
    /// once when connected and again after every reconnect.
    pub fn report_status(&self, active_viewing: bool, current_video: Option<String>) {
        self.inner.report_status(active_viewing, current_video);
    }

    /// Reports the minutes the child used today (0–1440). The relay records them for the
    /// child of the device token and alerts the guardians the first time a day's value
    /// reaches the child's limit. Durable: on disk before this returns, posted (retried
    /// with backoff, after restarts too) until the relay answers; a newer value replaces an
    /// unsent older one. Throws `Config` for a value over 1440, `Storage` when the queue
    /// cannot be written.
    pub fn report_screen_time(&self, minutes_used: u32) -> Result<(), SafeStreamError> {
        Ok(self.inner.report_screen_time(minutes_used)?)
    }

    /// Reports a restricted-content attempt; the relay notifies the child's guardians.
    /// Durable like `reportScreenTime` (each attempt kept, at most 300 unsent; the oldest
    /// is dropped beyond that). A retry after a lost answer may notify twice. Throws
    /// `Config` when `metadataJson` is not a JSON object of at most 8 KiB, `Storage` when
    /// the queue cannot be written.
    pub fn report_restricted_attempt(
        &self,
        attempt: RestrictedAttempt,
    ) -> Result<(), SafeStreamError> {
        Ok(self.inner.report_restricted_attempt(attempt.into())?)
    }

    /// Waits until every report (screen time, restricted attempts) reached the relay, or
    /// `timeoutMs` passed; returns whether none is left. Like `waitForAcks`.
    pub async fn wait_for_reports(&self, timeout_ms: u64) -> Result<bool, SafeStreamError> {
        let inner = self.inner.clone();
        runtime::run(async move {
            Ok(inner
                .wait_for_reports(Duration::from_millis(timeout_ms))
                .await)
        })
        .await
    }

    /// Fetches pending commands over HTTPS and runs the new ones: call it when a push
    /// message wakes the app while the socket is down. A command also delivered on the
    /// socket still runs once. Returns how many commands were handed to the runner.
    pub async fn sync_now(&self) -> Result<u32, SafeStreamError> {
        let inner = self.inner.clone();
        runtime::run(async move { Ok(inner.sync_now().await?) }).await
    }

    /// What a push handler calls (FCM's `onMessageReceived`, iOS's remote-notification
    /// callback), with the background time it has (`budgetMs`, e.g. 8,000 on Android, 25,000
    /// on iOS): pulls and runs the pending commands (even while the socket looks open: it
    /// may be one the platform suspended) unless another sync is already running (then it
    /// waits for that one), and waits for the acks until the budget ends.
    pub async fn sync_now_within(&self, budget_ms: u64) -> Result<SyncReport, SafeStreamError> {
        let inner = self.inner.clone();
        runtime::run(async move {
            Ok(inner
                .sync_now_within(Duration::from_millis(budget_ms))
                .await?
                .into())
        })
        .await
    }

    /// Registers the platform's push token with the relay so that it can wake this device
    /// while the app sleeps: `provider` is `"fcm"` (the FCM registration token) or `"apns"`
    /// (the APNs device token in hex, with `apnsEnvironment` `"production"` or `"sandbox"`).
    /// Call it with every token the platform hands over; the token is kept and sent again
    /// after a failure (at the next start or sync).
    pub async fn register_push_token(
        &self,
        provider: String,
        token: String,
        apns_environment: Option<String>,
    ) -> Result<(), SafeStreamError> {
        let inner = self.inner.clone();
        runtime::run(async move {
            Ok(inner
                .register_push_token(provider, token, apns_environment)
                .await?)
        })
        .await
    }

    /// Waits until every ack has been answered by the relay, or `timeoutMs` passed;
    /// returns whether none is left. For a host that must finish before the OS suspends
    /// it (e.g. at the end of a background task).
    pub async fn wait_for_acks(&self, timeout_ms: u64) -> Result<bool, SafeStreamError> {
        let inner = self.inner.clone();
        runtime::run(
            async move { Ok(inner.wait_for_acks(Duration::from_millis(timeout_ms)).await) },
        )
        .await
    }

    /// Starts pairing: asks the relay for a code to show to the parent, who approves it
    /// in the dashboard. Then call `waitForPairing`.
    pub async fn pair(&self, device_name: String) -> Result<PairingCode, SafeStreamError> {
        let inner = self.inner.clone();
        runtime::run(async move { Ok(inner.pair(device_name).await?.into()) }).await
    }

    /// Waits until the parent approves the pairing started by `pair`, then
    /// stores the device token in the secure store and connects. Throws `Pairing` when
    /// it is rejected or expires, `Stopped` when the agent is stopped meanwhile.
    pub async fn wait_for_pairing(&self) -> Result<PairedDevice, SafeStreamError> {
        let inner = self.inner.clone();
        runtime::run(async move { Ok(inner.wait_for_pairing().await?.into()) }).await
    }

    /// Stores a device token obtained another way (e.g. from the app's backend) and
    /// connects with it.
    pub fn set_token(&self, token: String) -> Result<(), SafeStreamError> {
        Ok(self.inner.set_token(token)?)
    }

    /// Deletes the stored token and disconnects (state `NOT_PAIRED`).
    pub fn clear_token(&self) -> Result<(), SafeStreamError> {
        Ok(self.inner.clear_token()?)
    }

    /// Hint from the OS: the network is back. Reconnects now instead of waiting out the
    /// backoff, and retries queued acks.
    pub fn network_available(&self) {
        self.inner.network_available();
    }

    /// Hint from the OS: the app went to the background (`true`) or came back (`false`);
    /// in the background the agent asks for a longer heartbeat to save battery.
    pub fn set_background(&self, background: bool) {
        self.inner.set_background(background);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Command, CommandOutcome};
    use std::sync::Mutex;

    struct Nop;
    impl CommandRunner for Nop {
        fn on_command(&self, _: Command) {}
    }

    #[derive(Default)]
    struct Mem(Mutex<Option<String>>);
    impl SecureStore for Mem {
        fn load_token(&self) -> Result<Option<String>, SafeStreamError> {
            Ok(self.0.lock().unwrap().clone())
        }
        fn save_token(&self, token: String) -> Result<(), SafeStreamError> {
            *self.0.lock().unwrap() = Some(token);
            Ok(())
        }
        fn clear_token(&self) -> Result<(), SafeStreamError> {
            *self.0.lock().unwrap() = None;
            Ok(())
        }
    }

    fn config(url: &str, dir: &std::path::Path) -> AgentConfig {
        AgentConfig {
            relay_url: url.into(),
            state_dir: dir.to_string_lossy().into_owned(),
            api_url: None,
            heartbeat_secs: None,
            background_heartbeat_secs: 300,
            extra_ca_pem: None,
            command_timeout_secs: 120,
        }
    }

    #[test]
    fn start_validates_and_errors_map_without_a_relay() {
        let dir = std::env::temp_dir().join(format!("safestream-ffi-{}", std::process::id()));
        let err = Agent::start(
            config("http://nope", &dir),
            Arc::new(Nop),
            Arc::new(Mem::default()),
            None,
        )
        .err();
        assert!(
            matches!(err, Some(SafeStreamError::Config { .. })),
            "{err:?}"
        );

        // No token: NOT_PAIRED, nothing to complete; async calls work from a foreign
        // executor (here a separate current-thread runtime) and validate their input.
        let agent = Agent::start(
            config("ws://127.0.0.1:9", &dir),
            Arc::new(Nop),
            Arc::new(Mem::default()),
            None,
        )
        .unwrap();
        assert_eq!(agent.state(), ConnectionState::NotPaired);
        assert_eq!(
            agent.complete_command("c1".into(), CommandOutcome::Executed),
            Err(SafeStreamError::UnknownCommand)
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(matches!(
            rt.block_on(agent.pair("  ".into())),
            Err(SafeStreamError::Config { .. })
        ));
        assert_eq!(
            rt.block_on(agent.sync_now()),
            Err(SafeStreamError::Unauthorized)
        );
        rt.block_on(agent.shutdown()).unwrap();
        assert_eq!(agent.state(), ConnectionState::Stopped);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
