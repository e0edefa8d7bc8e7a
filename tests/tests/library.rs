//! `agent-core` used as a library against the real relay: `sync_now` and the socket never
//! run a command twice; presence and restricted attempts reach the parent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agent_core::{
    AckResult, AckStatus, Agent, AgentConfig, Command, CommandOutcome, ConnectionState,
    MemoryTokenStore, Platform, RestrictedAttempt,
};
use safestream_tests::*;
use serde_json::json;

#[derive(Default)]
struct Host {
    ran: Mutex<Vec<String>>,
    acks: Mutex<Vec<(String, AckStatus, AckResult)>>,
    states: Mutex<Vec<ConnectionState>>,
}

impl Platform for Host {
    fn run_command(&self, command: Command) {
        self.ran
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(command.id);
    }
    fn connection_state_changed(&self, state: ConnectionState) {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(state);
    }
    fn ack_finished(&self, id: String, status: AckStatus, result: AckResult) {
        self.acks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id, status, result));
    }
}

impl Host {
    fn ran(&self) -> Vec<String> {
        self.ran.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

async fn wait(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> R<()> {
    let end = std::time::Instant::now() + limit;
    while !cond() {
        if std::time::Instant::now() > end {
            return Err(format!("timed out waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_now_and_socket_run_each_command_once() {
    build_binaries(); // outside the time limit below
    let run = async {
        let relay = Relay::start().await?;
        let backend = Backend::new(&relay);
        backend.child("kid", "u1").await?;
        let (_device, token) = backend.device("kid", "tablet").await?;
        let parent = Parent::new(&relay, "u1");
        let mut sock = parent.socket(&relay).await?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;

        // 1. A suspended app: no socket (the relay URL points nowhere), woken by a push
        //    message, fetches its commands over REST and acks them.
        let host = Arc::new(Host::default());
        let mut cfg = AgentConfig::new(
            format!("ws://127.0.0.1:{}", free_port()),
            dir.path().to_string_lossy().into_owned(),
        );
        cfg.api_url = Some(relay.http());
        let agent = Agent::start(
            cfg,
            host.clone(),
            Arc::new(MemoryTokenStore::new(Some(token.clone()))),
        )
        .map_err(|e| e.to_string())?;
        let id1 = parent.command("kid", "PAUSE", 300).await?;
        assert_eq!(agent.sync_now().await.map_err(|e| e.to_string())?, 1);
        assert_eq!(
            agent.sync_now().await.map_err(|e| e.to_string())?,
            0,
            "second sync runs nothing"
        );
        agent
            .complete_command(id1.clone(), CommandOutcome::Executed)
            .map_err(|e| e.to_string())?;
        assert!(
            agent.wait_for_acks(Duration::from_secs(20)).await,
            "ack not posted"
        );
        // Listing marked it delivered; the ack executed it.
        sock.wait_status(&id1, "EXECUTED", Duration::from_secs(10))
            .await?;
        assert_eq!(sock.statuses(&id1), ["DELIVERED", "EXECUTED"]);
        agent.shutdown().await;
        drop(agent);

        // 2. The same app with its socket: a command delivered on the socket and listed
        //    again by sync_now (still pending: not completed yet) runs once.
        let mut cfg = AgentConfig::new(relay.ws(), dir.path().to_string_lossy().into_owned());
        cfg.command_timeout_secs = 60;
        let host2 = Arc::new(Host::default());
        let agent = Agent::start(
            cfg,
            host2.clone(),
            Arc::new(MemoryTokenStore::new(Some(token))),
        )
        .map_err(|e| e.to_string())?;
        wait("connected", Duration::from_secs(20), || {
            agent.state() == ConnectionState::Connected
        })
        .await?;
        let id2 = parent.command("kid", "LOCK_DEVICE", 300).await?;
        wait("socket delivery", Duration::from_secs(20), || {
            host2.ran().contains(&id2)
        })
        .await?;
        assert_eq!(agent.sync_now().await.map_err(|e| e.to_string())?, 0);
        // id1 was already run by the first incarnation: a restart does not run it either.
        assert!(!host2.ran().contains(&id1));
        agent
            .complete_command(id2.clone(), CommandOutcome::Executed)
            .map_err(|e| e.to_string())?;
        sock.wait_status(&id2, "EXECUTED", Duration::from_secs(20))
            .await?;
        assert_eq!(sock.statuses(&id2), ["DELIVERED", "EXECUTED"]);
        // The first command was not acknowledged again by the second incarnation.
        assert_eq!(sock.statuses(&id1), ["DELIVERED", "EXECUTED"]);
        assert_eq!(host2.ran(), vec![id2]);
        agent.shutdown().await;
        Ok::<(), String>(())
    };
    match tokio::time::timeout(Duration::from_secs(90), run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("timed out"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_restricted_attempts_reach_the_parent() {
    build_binaries(); // outside the time limit below
    let run = async {
        let relay = Relay::start().await?;
        let backend = Backend::new(&relay);
        backend.child("kid", "u1").await?;
        let (device_id, token) = backend.device("kid", "tablet").await?;
        let parent = Parent::new(&relay, "u1");
        let mut sock = parent.socket(&relay).await?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let host = Arc::new(Host::default());
        let cfg = AgentConfig::new(relay.ws(), dir.path().to_string_lossy().into_owned());
        let agent = Agent::start(
            cfg,
            host.clone(),
            Arc::new(MemoryTokenStore::new(Some(token))),
        )
        .map_err(|e| e.to_string())?;
        // Reported before the socket is up: sent once it is.
        agent.report_status(true, Some(r#"{"videoId":"v42","title":"Cartoons"}"#.into()));
        let st = sock
            .wait("device:status", Duration::from_secs(20), |d| {
                d["activeViewing"] == true && d["currentVideo"]["videoId"] == "v42"
            })
            .await?;
        assert_eq!(st["deviceId"], device_id.as_str());
        agent
            .report_restricted_attempt(RestrictedAttempt {
                url: Some("https://example.com/blocked".into()),
                title: Some("Blocked video".into()),
                reason: Some("age rating".into()),
                metadata_json: Some(r#"{"rating":"18+"}"#.into()),
            })
            .map_err(|e| e.to_string())?;
        let n = sock
            .wait("notification:new", Duration::from_secs(10), |d| {
                d["type"] == "RESTRICTED_CONTENT"
            })
            .await?;
        // What was reported reaches the parent: the attempt's fields in the metadata (the
        // device's metadata as `details`), who made it, and a message naming the video and
        // the reason (relay/src/http/misc.rs, docs/protocol.md "Notifications").
        assert_eq!(
            n["metadata"],
            json!({
                "childId": "kid",
                "deviceId": device_id,
                "url": "https://example.com/blocked",
                "title": "Blocked video",
                "reason": "age rating",
                "details": {"rating": "18+"},
            }),
            "{n}"
        );
        let message = n["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("Child kid")
                && message.contains("Blocked video")
                && message.contains("age rating"),
            "{n}"
        );
        assert!(n["title"].as_str().is_some_and(|t| !t.is_empty()), "{n}");
        assert!(n["id"].is_string() && n["createdAt"].is_string(), "{n}");
        assert_eq!(n["read"], false, "{n}");
        agent.shutdown().await;
        assert_eq!(agent.state(), ConnectionState::Stopped);
        let offline = sock
            .wait("device:status", Duration::from_secs(10), |d| {
                d["online"] == false
            })
            .await?;
        assert_eq!(offline["deviceId"], device_id.as_str());
        Ok::<(), String>(())
    };
    match tokio::time::timeout(Duration::from_secs(90), run).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("timed out"),
    }
}
