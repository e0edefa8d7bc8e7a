//! The `storm` phase: N devices with a pending command each reconnecting after the relay is
//! SIGKILLed and restarted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::load::{connect, each, http, parent_token, RateMeter};
use crate::{connect_all, fresh, setup_devices, Args};

/// The `storm` phase: a reconnect storm after SIGKILL and restart; prints one table.
pub async fn storm(args: &Args) {
    let n = args.storm_devices;
    println!("## reconnect storm: {n} devices with a pending command each, relay SIGKILLed and restarted\n");
    let parents = (n / 10).max(1);
    let f = fresh(args, &[]).await;
    let tokens = Arc::new(setup_devices(&f.base, n, 1, parents).await);
    let addr = f.relay.addr.clone();
    let received: Arc<Vec<AtomicBool>> = Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let received_after: Arc<Vec<AtomicBool>> =
        Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
    let restarted = Arc::new(AtomicBool::new(false));
    let handshakes = RateMeter::new();
    let back = Arc::new(AtomicU64::new(0));
    // Devices: connect, read; on close reconnect with full-jitter backoff (100 ms .. 2 s).
    let first = connect_all(&addr, &tokens).await;
    for (i, ws) in first.into_iter().enumerate() {
        let (tokens, addr) = (tokens.clone(), addr.clone());
        let (received, received_after, restarted, handshakes, back) = (
            received.clone(),
            received_after.clone(),
            restarted.clone(),
            handshakes.clone(),
            back.clone(),
        );
        tokio::spawn(async move {
            let mut ws = Some(ws);
            let mut attempt = 0u32;
            loop {
                let mut sock = match ws.take() {
                    Some(s) => s,
                    None => {
                        let cap = (100u64 << attempt.min(5)).min(2000);
                        let jitter = (i as u64 * 7919 + attempt as u64 * 104_729) % cap.max(1);
                        tokio::time::sleep(Duration::from_millis(jitter)).await;
                        match connect(&addr, i, &tokens[i]).await {
                            Ok(s) => {
                                attempt = 0;
                                handshakes.hit();
                                if restarted.load(Ordering::Relaxed) {
                                    back.fetch_add(1, Ordering::Relaxed);
                                }
                                s
                            }
                            Err(_) => {
                                attempt += 1;
                                continue;
                            }
                        }
                    }
                };
                while let Some(m) = sock.next().await {
                    match m {
                        Ok(Message::Text(t)) if t.contains("command:new") => {
                            if restarted.load(Ordering::Relaxed) {
                                received_after[i].store(true, Ordering::Relaxed);
                            } else {
                                received[i].store(true, Ordering::Relaxed);
                            }
                        }
                        Ok(Message::Close(_)) | Err(_) => break,
                        _ => {}
                    }
                }
                let _ = sock.close(None).await;
            }
        });
    }
    // One command per device, delivered but never acknowledged: still pending.
    let h = http();
    let base = f.base.clone();
    each(n, 64, |i| {
        let (h, base) = (h.clone(), base.clone());
        async move {
            let token = parent_token(&format!("p{}", i % parents));
            let r = h
                .post(format!("{base}/api/dashboard/remote-control"))
                .bearer_auth(token)
                .json(&json!({"childId": format!("c{i}"), "commandType": "LOCK_DEVICE", "expiresInSeconds": 3600}))
                .send()
                .await
                .expect("POST command");
            assert_eq!(r.status().as_u16(), 201);
        }
    })
    .await;
    let t = Instant::now();
    while received
        .iter()
        .filter(|b| b.load(Ordering::Relaxed))
        .count()
        < n
        && t.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = received
        .iter()
        .filter(|b| b.load(Ordering::Relaxed))
        .count();
    let mut relay = f.relay;
    restarted.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    relay.kill_and_restart().await;
    let restart_s = t0.elapsed().as_secs_f64();
    let cpu0 = relay.cpu();
    let mut all_back = None;
    let mut all_cmds = None;
    while t0.elapsed() < Duration::from_secs(120) && (all_back.is_none() || all_cmds.is_none()) {
        if all_back.is_none() && back.load(Ordering::Relaxed) >= n as u64 {
            all_back = Some(t0.elapsed().as_secs_f64());
        }
        if all_cmds.is_none() && received_after.iter().all(|b| b.load(Ordering::Relaxed)) {
            all_cmds = Some(t0.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let lost = received_after
        .iter()
        .filter(|b| !b.load(Ordering::Relaxed))
        .count();
    let cpu1 = relay.cpu();
    println!("| devices | delivered before kill | relay back up (s) | all reconnected (s) | all commands re-delivered (s) | peak handshakes/s | relay CPU during storm (s) | commands lost |");
    println!("|---|---|---|---|---|---|---|---|");
    let fmt = |o: Option<f64>| {
        o.map(|v| format!("{v:.2}"))
            .unwrap_or_else(|| "not within 120 s".into())
    };
    println!(
        "| {n} | {before} | {restart_s:.2} | {} | {} | {} | {:.2} | {lost} |\n",
        fmt(all_back),
        fmt(all_cmds),
        handshakes.peak_per_sec(),
        cpu1 - cpu0
    );
    relay.kill().await;
}
