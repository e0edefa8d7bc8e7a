//! The agent against the real relay: real sockets, real processes, real SIGKILLs.

use std::time::Duration;

use safestream_tests::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(20);

/// The shared fixture, with this file's helpers on top.
struct Fixture(World);

impl std::ops::Deref for Fixture {
    type Target = World;
    fn deref(&self) -> &World {
        &self.0
    }
}

impl std::ops::DerefMut for Fixture {
    fn deref_mut(&mut self) -> &mut World {
        &mut self.0
    }
}

async fn world() -> R<Fixture> {
    Ok(Fixture(World::new().await?))
}

impl Fixture {
    fn device(&self, extra: &[&str]) -> R<Device> {
        let relay = self.relay.ws();
        let mut args = vec!["--relay", relay.as_str(), "--token", self.token.as_str()];
        args.extend_from_slice(extra);
        Device::start(&self.dir.path().join("device"), &args)
    }
}

fn is(ty: &'static str, id: String) -> impl Fn(&Value) -> bool {
    move |v| v["type"] == ty && v["id"] == id.as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_reaches_host_and_parent_sees_executed() {
    bounded(Duration::from_secs(90), async {
        let w = world().await?;
        let dev = w.device(&[])?;
        dev.wait_state("connected", T).await?;
        let mut sock = w.parent.socket(&w.relay).await?;
        let id = w.parent.command(&w.child, "PAUSE", 300).await?;
        dev.wait_for("command run", T, is("command", id.clone()))
            .await?;
        dev.wait_for("ack", T, is("ack", id.clone())).await?;
        let status = sock
            .wait("command:status", T, |d| {
                d["commandId"] == id.as_str() && d["status"] == "EXECUTED"
            })
            .await?;
        assert_eq!(status["deviceId"], w.device_id.as_str());
        assert!(status["executedAt"].is_string(), "{status}");
        assert!(status["error"].is_null(), "{status}");
        assert_eq!(sock.statuses(&id), ["DELIVERED", "EXECUTED"]);
        let sent = sock
            .wait("command:sent", T, |d| d["commandId"] == id.as_str())
            .await?;
        assert_eq!(sent["status"], "PENDING");
        assert_eq!(dev.runs_of(&id), 1);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_device_gets_queued_commands_once() {
    bounded(Duration::from_secs(90), async {
        let w = world().await?;
        let mut sock = w.parent.socket(&w.relay).await?;
        let mut ids = vec![];
        for ty in ["PAUSE", "LOCK_DEVICE", "SHOW_MESSAGE"] {
            ids.push(w.parent.command(&w.child, ty, 300).await?);
        }
        let dev = w.device(&[])?;
        for id in &ids {
            dev.wait_for("ack", T, is("ack", id.clone())).await?;
            sock.wait_status(id, "EXECUTED", T).await?;
            // Queued, then delivered when the device connected, then executed.
            assert_eq!(sock.statuses(id), ["DELIVERED", "EXECUTED"], "{id}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for id in &ids {
            assert_eq!(dev.runs_of(id), 1, "{id}");
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relay_sigkilled_and_restarted_mid_stream() {
    bounded(Duration::from_secs(150), async {
        let mut w = world().await?;
        let dev = w.device(&[])?;
        dev.wait_state("connected", T).await?;
        let mut sock = w.parent.socket(&w.relay).await?;
        let mut ids = vec![];
        for _ in 0..10 {
            ids.push(w.parent.command(&w.child, "PAUSE", 600).await?);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        w.relay.kill();
        tokio::time::sleep(Duration::from_millis(500)).await;
        w.relay.restart().await?;
        // The parent's socket died with the relay: it resumes from its last position, so
        // the statuses committed before the kill and not yet read are replayed.
        sock.resume(&w.relay, T).await?;
        for _ in 0..10 {
            ids.push(w.parent.command(&w.child, "RESUME", 600).await?);
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        for id in &ids {
            sock.wait_status(id, "EXECUTED", Duration::from_secs(40))
                .await?;
            // DELIVERED can be lost to the kill (recorded after the write to the device).
            let seen = sock.statuses(id);
            assert!(
                seen == ["DELIVERED", "EXECUTED"] || seen == ["EXECUTED"],
                "{id}: {seen:?}"
            );
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for id in &ids {
            assert_eq!(dev.runs_of(id), 1, "command {id} run count");
        }
        assert!(dev.states().iter().filter(|s| *s == "connected").count() >= 2);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_between_run_and_ack_is_not_run_again() {
    bounded(Duration::from_secs(90), async {
        let w = world().await?;
        let mut dev = w.device(&["--exec-delay-ms", "5000"])?;
        dev.wait_state("connected", T).await?;
        let mut sock = w.parent.socket(&w.relay).await?;
        let id = w.parent.command(&w.child, "LOCK_DEVICE", 300).await?;
        dev.wait_for("command run", T, is("command", id.clone()))
            .await?;
        dev.kill();
        assert!(
            dev.lines_of("completed").is_empty(),
            "killed before completing"
        );
        dev.restart()?;
        // The ack still arrives (FAILED "interrupted", design section 4) ...
        let c = sock.wait_status(&id, "FAILED", T).await?;
        assert_eq!(c["error"], "interrupted", "{c}");
        assert_eq!(c["deviceId"], w.device_id.as_str(), "{c}");
        assert_eq!(sock.statuses(&id), ["DELIVERED", "FAILED"]);
        dev.wait_for("ack", T, is("ack", id.clone())).await?;
        // ... and the command is never run again, even though the relay had it pending.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(dev.runs_of(&id), 1);
        // The restarted agent still works.
        let id2 = w.parent.command(&w.child, "UNLOCK_DEVICE", 300).await?;
        sock.wait_status(&id2, "EXECUTED", T).await?;
        assert_eq!(sock.statuses(&id2), ["DELIVERED", "EXECUTED"]);
        // The first command's status did not change again.
        assert_eq!(sock.statuses(&id), ["DELIVERED", "FAILED"]);
        assert_eq!(dev.runs_of(&id2), 1);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_made_while_relay_down_is_posted_when_it_returns() {
    bounded(Duration::from_secs(120), async {
        let mut w = world().await?;
        let dev = w.device(&["--exec-delay-ms", "2000"])?;
        dev.wait_state("connected", T).await?;
        let mut sock = w.parent.socket(&w.relay).await?;
        let id = w.parent.command(&w.child, "PAUSE", 600).await?;
        dev.wait_for("command run", T, is("command", id.clone()))
            .await?;
        w.relay.kill();
        dev.wait_for("completion", T, is("completed", id.clone()))
            .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(
            dev.lines_of("ack").is_empty(),
            "no ack while the relay is down"
        );
        w.relay.restart().await?;
        sock.resume(&w.relay, T).await?;
        dev.wait_for("ack", Duration::from_secs(40), is("ack", id.clone()))
            .await?;
        let st = sock.wait_status(&id, "EXECUTED", T).await?;
        assert_eq!(st["deviceId"], w.device_id.as_str(), "{st}");
        // DELIVERED is recorded after the write to the device: a kill right after the write
        // can lose it (the device then acks a PENDING command), never the EXECUTED.
        let seen = sock.statuses(&id);
        assert!(
            seen == ["DELIVERED", "EXECUTED"] || seen == ["EXECUTED"],
            "{seen:?}"
        );
        assert_eq!(dev.runs_of(&id), 1);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_token_stops_the_agent() {
    bounded(Duration::from_secs(90), async {
        let w = world().await?;
        let mut dev = w.device(&[])?;
        dev.wait_state("connected", T).await?;
        w.backend.revoke(&w.device_id).await?;
        dev.wait_state("unauthorized", T).await?;
        let n = dev.states().len();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            dev.states().len(),
            n,
            "no reconnect after revocation: {:?}",
            dev.states()
        );
        assert!(dev.running(), "the app keeps running, offline");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_gives_the_device_a_token() {
    bounded(Duration::from_secs(90), async {
        let w = world().await?;
        let relay = w.relay.ws();
        let dev = Device::start(
            &w.dir.path().join("paired"),
            &[
                "--relay",
                relay.as_str(),
                "--pair",
                "--device-name",
                "Leo's phone",
            ],
        )?;
        let pairing = dev
            .wait_for("pairing code", T, |v| v["type"] == "pairing")
            .await?;
        let code = pairing["code"].as_str().unwrap_or_default().to_owned();
        assert!(!code.is_empty());
        w.parent
            .api
            .ok(
                reqwest::Method::POST,
                "/api/pairing/claim",
                Some(json!({"code": code, "childId": w.child})),
            )
            .await?;
        let paired = dev
            .wait_for("paired", Duration::from_secs(40), |v| v["type"] == "paired")
            .await?;
        assert_eq!(paired["childId"], w.child.as_str());
        dev.wait_state("connected", T).await?;
        let mut sock = w.parent.socket(&w.relay).await?;
        let id = w.parent.command(&w.child, "SHOW_MESSAGE", 300).await?;
        let st = sock.wait_status(&id, "EXECUTED", T).await?;
        // Acknowledged by the paired device (a new one, not the world's).
        assert!(
            st["deviceId"].is_string() && st["deviceId"] != w.device_id.as_str(),
            "{st}"
        );
        assert_eq!(sock.statuses(&id), ["DELIVERED", "EXECUTED"]);
        assert_eq!(dev.runs_of(&id), 1);
        // The token never appears in the device's output or logs.
        let token_like = dev
            .out
            .all()
            .iter()
            .chain(dev.err.all().iter())
            .any(|l| l.contains("eyJ"));
        assert!(!token_like, "a JWT-looking token was printed");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_relay_and_agent_killed_no_duplicate_no_lost_ack() {
    bounded(Duration::from_secs(900), async {
        let mut w = world().await?;
        let mut dev = w.device(&["--exec-delay-ms", "50"])?;
        dev.wait_state("connected", T).await?;
        let mut sock = w.parent.socket(&w.relay).await?;
        let types = ["PAUSE", "RESUME", "LOCK_DEVICE", "UNLOCK_DEVICE", "SHOW_MESSAGE"];
        let mut ids = vec![];
        // `E2E_CHAOS_COMMANDS` (default 60) scales the run: six rounds, a kill after each.
        let per_round = std::env::var("E2E_CHAOS_COMMANDS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(60)
            .div_ceil(6);
        for round in 0..6 {
            for i in 0..per_round {
                ids.push(w.parent.command(&w.child, types[i % types.len()], 600).await?);
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
            if round % 2 == 0 {
                w.relay.kill();
                tokio::time::sleep(Duration::from_millis(300)).await;
                w.relay.restart().await?;
                sock.resume(&w.relay, T).await?;
            } else {
                dev.kill();
                tokio::time::sleep(Duration::from_millis(200)).await;
                dev.restart()?;
            }
        }
        let mut executed = 0;
        let mut interrupted = 0;
        // Every command ends on the parent's socket: EXECUTED, or FAILED "interrupted" (the
        // device was killed between running it and acknowledging it).
        for id in &ids {
            let c = sock.wait_final(id, Duration::from_secs(60)).await?;
            match c["status"].as_str() {
                Some("EXECUTED") => executed += 1,
                Some("FAILED") if c["error"] == "interrupted" => interrupted += 1,
                _ => return Err(format!("command {id} ended {c}")),
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let duplicates: Vec<&String> = ids.iter().filter(|id| dev.runs_of(id) > 1).collect();
        let never_run: Vec<&String> = ids.iter().filter(|id| dev.runs_of(id) == 0).collect();
        eprintln!(
            "chaos: {} commands, {executed} executed, {interrupted} interrupted, {} duplicate runs, {} never run",
            ids.len(),
            duplicates.len(),
            never_run.len()
        );
        assert!(duplicates.is_empty(), "run twice: {duplicates:?}");
        assert_eq!(executed + interrupted, ids.len());
        assert!(never_run.is_empty(), "acked without running: {never_run:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pongs_keep_an_idle_agent_connected_and_a_frozen_relay_is_detected() {
    bounded(Duration::from_secs(90), async {
        // A 2 s relay heartbeat: the agent must answer pings (or be dropped after 4 s) and
        // must notice silence after 5 s.
        let mut relay = Relay::start_with(vec![("SAFESTREAM_HEARTBEAT_SECS", "2")]).await?;
        let backend = Backend::new(&relay);
        backend.child("kid", "u1").await?;
        let (_d, token) = backend.device("kid", "tablet").await?;
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ws = relay.ws();
        let dev = Device::start(
            dir.path(),
            &["--relay", ws.as_str(), "--token", token.as_str()],
        )?;
        dev.wait_state("connected", T).await?;
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert_eq!(
            dev.states(),
            vec!["connecting", "connected"],
            "idle agent was dropped"
        );
        relay.freeze(true);
        let frozen = std::time::Instant::now();
        dev.wait_state("disconnected", Duration::from_secs(15))
            .await?;
        // 2.5 intervals after the last ping, which came at most one interval before.
        let waited = frozen.elapsed();
        assert!(
            waited >= Duration::from_millis(2500),
            "gave up too early: {waited:?}"
        );
        relay.freeze(false);
        dev.wait_state("connected", T).await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn self_hosted_relay_over_tls_with_an_extra_ca() {
    bounded(Duration::from_secs(90), async {
        let relay = Relay::start_tls().await?;
        let backend = Backend::new(&relay);
        backend.child("kid", "u1").await?;
        let (_d, token) = backend.device("kid", "tablet").await?;
        let parent = Parent::new(&relay, "u1");
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, relay.ca_pem.clone().unwrap_or_default()).map_err(|e| e.to_string())?;
        let wss = relay.ws();
        let ca_arg = ca.to_string_lossy().into_owned();

        // Without the CA the device refuses the relay's certificate.
        let untrusting = Device::start(
            &dir.path().join("untrusting"),
            &["--relay", wss.as_str(), "--token", token.as_str()],
        )?;
        untrusting.wait_state("disconnected", T).await?;
        assert!(!untrusting.states().contains(&"connected".to_owned()));

        // With it: wss socket and https acks (reqwest) both trust it.
        let dev = Device::start(
            &dir.path().join("trusting"),
            &[
                "--relay",
                wss.as_str(),
                "--token",
                token.as_str(),
                "--ca-file",
                ca_arg.as_str(),
            ],
        )?;
        dev.wait_state("connected", T).await?;
        let id = parent.command("kid", "PAUSE", 300).await?;
        dev.wait_for("ack", T, is("ack", id.clone())).await?;
        // The ack went over https: the relay recorded it. (REST here: the tests' socket
        // client has no TLS, and this test is about the device's TLS.)
        parent.wait_status(&id, "EXECUTED", T).await?;
        assert!(!untrusting.states().contains(&"connected".to_owned()));
        Ok(())
    })
    .await;
}
