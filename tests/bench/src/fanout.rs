//! The `fanout` phase: one publish to a room of N sockets.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::load::http;
use crate::proc::SERVER_KEY;
use crate::{connect_all, fresh, me_cpu, reader, setup_devices, Args};

/// The `fanout` phase: publishes to a room of `--fanout-size` sockets; prints one table.
pub async fn fanout(args: &Args) {
    let n = args.fanout_size;
    if n == 0 || args.fanout_rounds == 0 {
        eprintln!("fanout: needs --fanout-size and --fanout-rounds above 0");
        return;
    }
    println!(
        "## fan-out: one publish to a room of {n} sockets ({}), {} times\n",
        crate::load::protocol(),
        args.fanout_rounds
    );
    let f = fresh(args, &[]).await;
    let tokens = setup_devices(&f.base, n, n, 1).await;
    let got = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    for ws in connect_all(&f.relay.addr, &tokens).await {
        let got = got.clone();
        reader(ws, closed.clone(), move |t| {
            if t.contains("bench:fan") {
                got.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let h = http();
    let mut times = vec![];
    let (cpu0, me0) = (f.relay.cpu(), me_cpu());
    let t_all = Instant::now();
    for round in 0..args.fanout_rounds {
        let target = (round as u64 + 1) * n as u64;
        let t0 = Instant::now();
        let r = h
            .post(format!("{}/api/publish", f.base))
            .bearer_auth(SERVER_KEY)
            .json(&json!({"room": "child:c0", "event": "bench:fan", "data": {"round": round}}))
            .send()
            .await
            .expect("publish");
        assert_eq!(r.status().as_u16(), 202);
        while got.load(Ordering::Relaxed) < target && t0.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let wall = t_all.elapsed().as_secs_f64();
    let (cpu1, me1) = (f.relay.cpu(), me_cpu());
    let delivered = got.load(Ordering::Relaxed);
    times.sort_by(|a, b| a.total_cmp(b));
    println!("| room | publishes | delivered | delivered msgs/s | time until all received, median / max (ms) | relay CPU per delivered message (µs) | bench CPU (s) | dropped sockets |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {n} | {} | {delivered} | {:.0} | {:.1} / {:.1} | {:.2} | {:.1} | {} |\n",
        args.fanout_rounds,
        delivered as f64 / wall,
        times[times.len() / 2],
        times[times.len() - 1],
        (cpu1 - cpu0) * 1e6 / delivered.max(1) as f64,
        me1 - me0,
        closed.load(Ordering::Relaxed)
    );
    let mut relay = f.relay;
    relay.kill().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}
