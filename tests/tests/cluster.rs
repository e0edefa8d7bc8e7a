//! Three relay nodes on one PostgreSQL and one Redis, no sticky sessions: every client talks
//! to whichever node the test picks, as a load balancer would.
//!
//! Needs `SAFESTREAM_TEST_PG` (a PostgreSQL server) and `redis-server` on the PATH; fails
//! loudly without them (see `safestream_tests::cluster`). `./scripts/test.sh` provides both.

use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use safestream_tests::cluster::Cluster;
use safestream_tests::*;
use serde_json::{json, Value};

const T: Duration = Duration::from_secs(15);

fn ack_path(id: &str) -> String {
    format!("/api/dashboard/remote-control/{id}")
}

/// A child `kid` with guardian `u1` and one device, registered on `nodes[0]`.
async fn family(c: &Cluster) -> R<(String, String)> {
    let backend = Backend::new(&c.nodes[0]);
    backend.child("kid", "u1").await?;
    backend.device("kid", "tablet").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_posted_on_b_reaches_a_device_on_a_and_its_ack_on_c_reaches_the_parent_on_b() {
    bounded(Duration::from_secs(90), async {
        let c = Cluster::start(3, &[]).await?;
        let (a, b, cn) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
        let (device_id, token) = family(&c).await?;
        let parent_b = Parent::new(b, "u1");
        let mut psock = open_socket(b, &parent_b.jwt, None).await?;
        let mut dsock = open_socket(a, &token, None).await?;
        // Presence written by A is seen by B (event) and C (REST).
        psock
            .wait("device:status", T, |d| {
                d["deviceId"] == device_id.as_str() && d["online"] == true
            })
            .await?;
        let via_c = Client::new(cn, &parent_b.jwt)
            .ok(Method::GET, "/api/children/kid/devices", None)
            .await?;
        assert_eq!(via_c["devices"][0]["online"], true, "{via_c}");

        let id = parent_b.command("kid", "PAUSE", 60).await?;
        dsock
            .wait("command:new", T, |d| d["id"] == id.as_str())
            .await?;
        psock
            .wait("command:status", T, |d| {
                d["commandId"] == id.as_str() && d["status"] == "DELIVERED"
            })
            .await?;
        Client::new(cn, &token)
            .ok(
                Method::PATCH,
                &ack_path(&id),
                Some(json!({"status": "EXECUTED"})),
            )
            .await?;
        let st = psock
            .wait("command:status", T, |d| {
                d["commandId"] == id.as_str() && d["status"] == "EXECUTED"
            })
            .await?;
        assert_eq!(st["deviceId"], device_id.as_str());
        // Each transition reached the parent once, with gap-free positions.
        psock.collect_for(Duration::from_millis(500)).await?;
        let seqs: Vec<i64> = psock
            .events
            .iter()
            .filter_map(|v| v["seq"].as_i64())
            .collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as i64).collect::<Vec<_>>(),
            "{seqs:?}"
        );
        assert_eq!(
            seqs.len(),
            3,
            "sent, delivered, executed: {:?}",
            psock.events
        );
        // Revocation on C closes the device's socket on A (4403).
        Backend::new(cn).revoke(&device_id).await?;
        let closed = dsock.wait("never", T, |_| false).await.unwrap_err();
        assert!(closed.contains("closed"), "{closed}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_resumes_on_another_node() {
    bounded(Duration::from_secs(90), async {
        let c = Cluster::start(3, &[]).await?;
        let (a, b, cn) = (&c.nodes[0], &c.nodes[1], &c.nodes[2]);
        family(&c).await?;
        let parent = Parent::new(a, "u1");
        let mut s = open_socket(a, &parent.jwt, None).await?;
        let first = parent.command("kid", "PAUSE", 60).await?;
        s.wait("command:sent", T, |d| d["commandId"] == first.as_str())
            .await?;
        let last = s
            .events
            .iter()
            .filter_map(|v| v["seq"].as_i64())
            .max()
            .ok_or("no seq")?;
        s.close().await;
        // Meanwhile, on C: three more commands.
        let on_c = Parent::new(cn, "u1");
        let mut missed = Vec::new();
        for _ in 0..3 {
            missed.push(on_c.command("kid", "LOCK_DEVICE", 60).await?);
        }
        // Back, on B, from the last position seen on A.
        let mut r = open_socket(b, &parent.jwt, Some(last)).await?;
        assert_eq!(r.events[0]["data"]["resumed"], true, "{:?}", r.events);
        for id in &missed {
            r.wait("command:sent", T, |d| d["commandId"] == id.as_str())
                .await?;
        }
        let seqs: Vec<i64> = r.events.iter().filter_map(|v| v["seq"].as_i64()).collect();
        assert_eq!(seqs, vec![last + 1, last + 2, last + 3], "{:?}", r.events);
        assert!(
            !r.of("command:sent")
                .iter()
                .any(|v| v["data"]["commandId"] == first.as_str()),
            "nothing at or before lastSeq is replayed"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_and_the_daily_screen_time_alert_happen_once_cluster_wide() {
    bounded(Duration::from_secs(90), async {
        let c = Cluster::start(3, &[]).await?;
        family(&c).await?;
        let mut s = open_socket(&c.nodes[0], &parent_jwt("u1"), None).await?;
        // 12 short-lived commands over the three nodes; no device takes them.
        let mut ids = Vec::new();
        for i in 0..12 {
            let p = Parent::new(&c.nodes[i % 3], "u1");
            ids.push(p.command("kid", "PAUSE", 1).await?);
        }
        // The limit, then the same over-limit report to every node at once, three times.
        Client::new(&c.nodes[1], SERVER_KEY)
            .ok(
                Method::PUT,
                "/api/children/kid",
                Some(json!({"dailyLimitMinutes": 30})),
            )
            .await?;
        let mut reports = Vec::new();
        for i in 0..9 {
            let cl = Client::new(&c.nodes[i % 3], SERVER_KEY);
            reports.push(tokio::spawn(async move {
                cl.ok(
                    Method::POST,
                    "/api/dashboard/screen-time",
                    Some(json!({"childId": "kid", "minutesUsed": 45})),
                )
                .await
            }));
        }
        let mut alerts = 0;
        for r in reports {
            let v = r.await.map_err(|e| e.to_string())??;
            if v["alert"] == true {
                alerts += 1;
            }
        }
        assert_eq!(alerts, 1, "exactly one report raises the alert");
        // Every sweeper on every node has had time to run (500 ms period, 1 s expiry).
        s.collect_for(Duration::from_secs(4)).await?;
        let mut expired: HashMap<String, usize> = HashMap::new();
        for v in s.of("command:status") {
            if v["data"]["status"] == "EXPIRED" {
                *expired
                    .entry(v["data"]["commandId"].as_str().unwrap_or("").to_owned())
                    .or_default() += 1;
            }
        }
        for id in &ids {
            assert_eq!(expired.get(id), Some(&1), "{id} expired once: {expired:?}");
        }
        assert_eq!(s.of("screentime:alert").len(), 1, "{:?}", s.events);
        let notes = Client::new(&c.nodes[2], &parent_jwt("u1"))
            .ok(Method::GET, "/api/dashboard/notifications", None)
            .await?;
        let limit_notes = notes["notifications"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|n| n["type"] == "SCREEN_TIME_LIMIT")
                    .count()
            })
            .unwrap_or(0);
        assert_eq!(limit_notes, 1, "{notes}");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_right_after_accepting_loses_nothing() {
    bounded(Duration::from_secs(90), async {
        let mut c = Cluster::start(3, &[]).await?;
        let (_, token) = family(&c).await?;
        let mut dsock = open_socket(&c.nodes[1], &token, None).await?;
        // 20 commands accepted by node 0 at once; SIGKILL it as soon as the last 201 is in.
        let mut posts = Vec::new();
        for _ in 0..20 {
            let p = Parent::new(&c.nodes[0], "u1");
            posts.push(tokio::spawn(
                async move { p.command("kid", "PAUSE", 120).await },
            ));
        }
        let mut ids = Vec::new();
        for p in posts {
            ids.push(p.await.map_err(|e| e.to_string())??);
        }
        c.nodes[0].kill();
        // Delivered live, or by the in-flight sweep of node 1 (within a few seconds).
        for id in &ids {
            dsock
                .wait("command:new", T, |d| d["id"] == id.as_str())
                .await?;
        }
        let parent = Parent::new(&c.nodes[2], "u1");
        for id in &ids {
            parent.wait_status(id, "DELIVERED", T).await?;
        }
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarting_delays_delivery_but_loses_nothing() {
    bounded(Duration::from_secs(120), async {
        let mut c = Cluster::start(3, &[]).await?;
        let (device_id, token) = family(&c).await?;
        let mut dsock = open_socket(&c.nodes[0], &token, None).await?;
        let parent = Parent::new(&c.nodes[1], "u1");
        let mut psock = open_socket(&c.nodes[2], &parent.jwt, None).await?;
        c.redis.kill();
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(parent.command("kid", "PAUSE", 120).await?);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        c.redis.restart();
        for id in &ids {
            dsock
                .wait("command:new", Duration::from_secs(30), |d| {
                    d["id"] == id.as_str()
                })
                .await?;
        }
        // The parent on node 2 gets every event (from the bus or by catching up), in order.
        for id in &ids {
            psock
                .wait("command:sent", Duration::from_secs(30), |d| {
                    d["commandId"] == id.as_str()
                })
                .await?;
        }
        let seqs: Vec<i64> = psock
            .events
            .iter()
            .filter_map(|v| v["seq"].as_i64())
            .collect();
        let mut sorted = seqs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(seqs, sorted, "in order, no duplicates: {seqs:?}");
        // Live again through Redis: an ack on node 0 reaches the parent on node 2.
        Client::new(&c.nodes[0], &token)
            .ok(
                Method::PATCH,
                &ack_path(&ids[0]),
                Some(json!({"status": "EXECUTED"})),
            )
            .await?;
        psock
            .wait("command:status", T, |d| {
                d["commandId"] == ids[0].as_str() && d["status"] == "EXECUTED"
            })
            .await?;
        assert!(!device_id.is_empty());
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_of_a_dead_node_go_offline_within_two_heartbeats() {
    bounded(Duration::from_secs(90), async {
        let mut c = Cluster::start(3, &[("SAFESTREAM_HEARTBEAT_SECS", "2")]).await?;
        let (device_id, token) = family(&c).await?;
        let mut psock = open_socket(&c.nodes[1], &parent_jwt("u1"), None).await?;
        let _dsock = open_socket(&c.nodes[0], &token, None).await?;
        psock
            .wait("device:status", T, |d| {
                d["deviceId"] == device_id.as_str() && d["online"] == true
            })
            .await?;
        c.nodes[0].kill();
        let started = std::time::Instant::now();
        psock
            .wait("device:status", T, |d| {
                d["deviceId"] == device_id.as_str() && d["online"] == false
            })
            .await?;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(8),
            "offline after {took:?} (entries live 2 heartbeats = 4 s)"
        );
        let devices: Value = Client::new(&c.nodes[2], &parent_jwt("u1"))
            .ok(Method::GET, "/api/children/kid/devices", None)
            .await?;
        assert_eq!(devices["devices"][0]["online"], false, "{devices}");
        // Reported once, by one node.
        psock.collect_for(Duration::from_secs(2)).await?;
        let offline = psock
            .of("device:status")
            .into_iter()
            .filter(|v| v["data"]["online"] == false)
            .count();
        assert_eq!(offline, 1, "{:?}", psock.events);
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_made_while_redis_is_down_still_reaches_the_other_nodes() {
    bounded(Duration::from_secs(90), async {
        let mut c = Cluster::start(3, &[]).await?;
        let (device_id, token) = family(&c).await?;
        // Node 0 authenticated the device just now: it is in node 0's cache.
        let mut dsock = open_socket(&c.nodes[0], &token, None).await?;
        c.redis.kill();
        Backend::new(&c.nodes[2]).revoke(&device_id).await?;
        // No message announces it; node 0 finds it in the database (in-flight sweep).
        let closed = dsock
            .wait("never", T, |_| false)
            .await
            .expect_err("the socket is closed");
        assert!(closed.contains("closed"), "{closed}");
        let (status, body) = Client::new(&c.nodes[0], &token)
            .call(Method::GET, "/api/devices/me/commands", None)
            .await?;
        assert_eq!(status, 401, "{body}");
        c.redis.restart();
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_no_message_announced_is_delivered_from_the_database() {
    bounded(Duration::from_secs(90), async {
        // With Redis down no node hears another: what a node committed but never published
        // (as when it dies between COMMIT and publish) must still reach the others' sockets,
        // from the database, by the in-flight sweep.
        let mut c = Cluster::start(3, &[]).await?;
        let (_, token) = family(&c).await?;
        let mut dsock = open_socket(&c.nodes[0], &token, None).await?;
        let parent = Parent::new(&c.nodes[1], "u1");
        let mut psock = open_socket(&c.nodes[2], &parent.jwt, None).await?;
        c.redis.kill();
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(parent.command("kid", "PAUSE", 120).await?);
        }
        for id in &ids {
            dsock
                .wait("command:new", T, |d| d["id"] == id.as_str())
                .await?;
            psock
                .wait("command:sent", T, |d| d["commandId"] == id.as_str())
                .await?;
        }
        c.redis.restart();
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_started_on_one_node_reaches_the_device_on_another_live_and_at_connect() {
    bounded(Duration::from_secs(90), async {
        let c = Cluster::start(2, &[]).await?;
        let (a, b) = (&c.nodes[0], &c.nodes[1]);
        let (device_id, token) = family(&c).await?;
        // B authenticates the device (its cache: nothing pending).
        let mut on_b = open_socket(b, &token, None).await?;
        let (status, body) = Backend::new(a)
            .0
            .call(
                Method::POST,
                &format!("/api/devices/{device_id}/rotate-token"),
                None,
            )
            .await?;
        assert_eq!(status, 202, "{body}");
        // Live: B derives the frame itself (no token crosses Redis).
        let live = on_b.wait("auth:rotate", T, |_| true).await?;
        let new = live["token"]
            .as_str()
            .ok_or("auth:rotate without a token")?;
        assert_ne!(new, token.as_str());
        drop(on_b);
        // At connect: B must not trust a cache from before the rotation.
        let mut again = open_socket(b, &token, None).await?;
        let at_connect = again.wait("auth:rotate", T, |_| true).await?;
        assert_eq!(at_connect["token"], new, "{at_connect}");
        Ok(())
    })
    .await
}
