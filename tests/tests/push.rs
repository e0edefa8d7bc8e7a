//! Push wake-ups with real relay processes against the FCM and APNs stand-ins (shared with
//! the relay's own suite): a relay SIGKILLed right after the 201 still sends the push once
//! restarted, and three nodes on PostgreSQL + Redis send one push, not three.
//!
//! The cluster test needs `SAFESTREAM_TEST_PG` and `redis-server` (`./scripts/test.sh`
//! provides both) and fails without them.

#[path = "../../relay/tests/push/standin.rs"]
mod standin;

use std::time::Duration;

use reqwest::Method;
use safestream_tests::cluster::Cluster;
use safestream_tests::*;
use serde_json::json;
use standin::Providers;

const FCM_TOKEN: &str = "fcm-e2e:APA91b-token";

/// A child `kid` of `u1` with one device whose FCM token is `token`; returns the device token.
async fn pushable_device(relay: &Relay, kid: &str, token: &str) -> R<String> {
    let b = Backend::new(relay);
    b.child(kid, "u1").await?;
    let (_, dev) = b.device(kid, "phone").await?;
    Client::new(relay, &dev)
        .ok(
            Method::PUT,
            "/api/devices/me/push-token",
            Some(json!({"provider": "fcm", "token": token})),
        )
        .await?;
    Ok(dev)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_right_after_the_201_still_sends_the_push() {
    bounded(Duration::from_secs(120), async {
        let p = Providers::start().await;
        let env = p.env();
        let mut relay =
            Relay::start_with(env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()).await?;
        pushable_device(&relay, "kid-kill", FCM_TOKEN).await?;
        Parent::new(&relay, "u1")
            .command("kid-kill", "LOCK_DEVICE", 600)
            .await?;
        // SIGKILL at once: the push waits 200 ms for company, so it has not gone yet.
        relay.kill();
        assert!(
            p.got().is_empty(),
            "the kill came before the push: {:?}",
            p.got()
        );
        relay.restart().await?;
        let got = p
            .wait_delivered(FCM_TOKEN, 1, Duration::from_secs(30))
            .await;
        assert_eq!(got.len(), 1, "the wake-up survived the kill: {:?}", p.got());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(p.delivered_to(FCM_TOKEN).len(), 1, "and was sent once");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_send_one_push_not_three() {
    bounded(Duration::from_secs(180), async {
        let p = Providers::start().await;
        let env = p.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let c = Cluster::start(3, &env).await?;
        let devices = 6;
        for d in 0..devices {
            pushable_device(&c.nodes[d % 3], &format!("kid-{d}"), &format!("fcm-{d}")).await?;
        }
        // A burst for every device, its commands posted through all three nodes.
        for round in 0..3 {
            for d in 0..devices {
                Parent::new(&c.nodes[(d + round) % 3], "u1")
                    .command(&format!("kid-{d}"), "PAUSE", 600)
                    .await?;
            }
        }
        for d in 0..devices {
            let token = format!("fcm-{d}");
            let got = p.wait_delivered(&token, 1, Duration::from_secs(30)).await;
            assert_eq!(got.len(), 1, "{token}: {:?}", p.got());
        }
        // Every node polls; none sends the same wake-up again.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let got = p.got();
        assert_eq!(got.len(), devices, "one push per device: {got:?}");
        assert!(got.iter().all(|g| g.status == 200 && g.authorized));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pull_racing_the_socket_runs_each_command_once() {
    bounded(Duration::from_secs(150), async {
        let p = Providers::start().await;
        let env = p.env();
        let relay =
            Relay::start_with(env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()).await?;
        let b = Backend::new(&relay);
        b.child("kid-race", "u1").await?;
        let (_, dev_token) = b.device("kid-race", "phone").await?;
        let parent = Parent::new(&relay, "u1");
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ws = relay.ws();
        let args = ["--relay", ws.as_str(), "--token", dev_token.as_str()];
        let mut dev = Device::start(&dir.path().join("phone"), &args)?;
        dev.wait_state("connected", Duration::from_secs(20)).await?;
        dev.send(&json!({"pushToken": {"provider": "fcm", "token": FCM_TOKEN}}))?;
        dev.wait_for("token registered", Duration::from_secs(20), |v| {
            v["type"] == "push_token" && v["ok"] == true
        })
        .await?;
        let mut ids = Vec::new();
        for round in 0..4 {
            // The phone sleeps (the OS killed the app); commands are queued and it is woken.
            dev.kill();
            tokio::time::sleep(Duration::from_millis(300)).await;
            for kind in ["PAUSE", "LOCK_DEVICE", "SHOW_MESSAGE"] {
                ids.push(parent.command("kid-race", kind, 600).await?);
            }
            let pushes = p
                .wait_delivered(FCM_TOKEN, round + 1, Duration::from_secs(30))
                .await;
            assert_eq!(
                pushes.len(),
                round + 1,
                "round {round}: woken once: {:?}",
                p.got()
            );
            // The push starts the app: its socket connects while the push handler pulls.
            dev.restart()?;
            dev.send(&json!({"sync": 10_000}))?;
            for id in &ids[round * 3..] {
                dev.wait_for("ack", Duration::from_secs(30), |v| {
                    v["type"] == "ack" && v["id"] == id.as_str()
                })
                .await?;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        for id in &ids {
            assert_eq!(dev.runs_of(id), 1, "{id} ran once");
        }
        for id in &ids {
            let c = parent.get_command(id).await?;
            assert_eq!(c["status"], "EXECUTED", "{c}");
        }
        let synced: Vec<_> = dev
            .out
            .json()
            .into_iter()
            .filter(|v| v["type"] == "synced")
            .collect();
        assert_eq!(synced.len(), 4, "{synced:?}");
        // The race did happen: pulls while the socket was still connecting.
        assert!(synced.iter().any(|v| v["pulled"] == true), "{synced:?}");
        Ok(())
    })
    .await;
}
