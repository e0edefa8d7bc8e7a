//! The `roundtrip` phase: open-loop command round trips at fixed offered rates, timed from the
//! scheduled send to the device's delivery and to the parent's `command:status`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::load::{event, http, parent_token, protocol, Samples};
use crate::{connect_spread, me_cpu, reader, setup_devices, start_nodes, Args};

/// One offered-rate run of the round-trip phase.
struct Run {
    id: u64,
    start: Instant,
    rate: u64,
    ids: Mutex<std::collections::HashMap<String, u64>>,
    /// `command:status` that arrived before the POST's answer was read: id -> arrival.
    early: Mutex<std::collections::HashMap<String, Instant>>,
    /// Microseconds from `start` to the last completion.
    last_done_us: AtomicU64,
    to_device: Samples,
    to_parent: Samples,
    /// How late each POST started against its scheduled time (the load generator's own lag).
    lag: Samples,
    errors: AtomicU64,
    done: AtomicU64,
}

impl Run {
    fn sched(&self, k: u64) -> Instant {
        self.start + Duration::from_micros(k * 1_000_000 / self.rate)
    }

    fn complete(&self, k: u64, at: Instant) {
        self.to_parent
            .push(at.saturating_duration_since(self.sched(k)).as_micros() as u64);
        self.done.fetch_add(1, Ordering::Relaxed);
        self.last_done_us.fetch_max(
            at.saturating_duration_since(self.start).as_micros() as u64,
            Ordering::Relaxed,
        );
    }
}

/// Posts command `k` of `run` for child `c{child}` and records its id (or an error).
async fn post_command(
    h: reqwest::Client,
    base: String,
    token: String,
    child: usize,
    k: u64,
    run: Arc<Run>,
) {
    run.lag.push(run.sched(k).elapsed().as_micros() as u64);
    let body = json!({"childId": format!("c{child}"), "commandType": "PAUSE", "payload": {"n": k, "run": run.id}});
    let r = h
        .post(format!("{base}/api/dashboard/remote-control"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await;
    match r {
        Ok(r) if r.status().as_u16() == 201 => {
            let v: Value = r.json().await.unwrap_or(Value::Null);
            if let Some(id) = v["command"]["id"].as_str() {
                let early = {
                    let mut ids = run.ids.lock().unwrap_or_else(|e| e.into_inner());
                    ids.insert(id.to_string(), k);
                    run.early
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(id)
                };
                if let Some(at) = early {
                    run.complete(k, at);
                }
            }
        }
        _ => {
            run.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The `roundtrip` phase: one open-loop run per offered rate; prints one table.
pub async fn roundtrip(args: &Args) {
    if args.nodes > 1 {
        println!(
            "## command round trip on {} nodes (PostgreSQL + Redis; device, parent, POST and ack each on a different node)\n",
            args.nodes
        );
    } else {
        println!(
            "## command round trip ({} clients; open loop; latency from the scheduled send time)\n",
            protocol()
        );
    }
    println!("| devices | offered /s | achieved /s | POST → device p50 / p99 / max (ms) | → parent `command:status` p50 / p99 / max (ms) | errors | relay CPU per command (ms) | bench CPU (% of a core) | send lag p50 / p99 (ms) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for &d in &args.rt_devices {
        let parents = (d / 5).max(1);
        let f = start_nodes(args).await;
        let n_nodes = f.bases.len();
        let tokens = setup_devices(&f.bases[0], d, 1, parents).await;
        let h = http();
        let current: Arc<Mutex<Option<Arc<Run>>>> = Arc::new(Mutex::new(None));
        let closed = Arc::new(AtomicU64::new(0));
        let parent_tokens: Vec<String> = (0..parents)
            .map(|j| parent_token(&format!("p{j}")))
            .collect();
        for ws in connect_spread(&f.addrs, 1, &parent_tokens).await {
            let cur = current.clone();
            reader(ws, closed.clone(), move |t| {
                if !t.contains("command:status") || !t.contains("EXECUTED") {
                    return;
                }
                let Some(run) = cur.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
                    return;
                };
                let Some((_, data)) = event(t) else { return };
                let id = data["commandId"].as_str().unwrap_or("");
                let now = Instant::now();
                let k = {
                    let ids = run.ids.lock().unwrap_or_else(|e| e.into_inner());
                    let k = ids.get(id).copied();
                    if k.is_none() {
                        // The round trip beat the POST's answer: resolved when it arrives.
                        run.early
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(id.to_string(), now);
                    }
                    k
                };
                if let Some(k) = k {
                    run.complete(k, now);
                }
            });
        }
        for (i, ws) in connect_spread(&f.addrs, 0, &tokens)
            .await
            .into_iter()
            .enumerate()
        {
            let cur = current.clone();
            let h = h.clone();
            let base = f.bases[(i + 2) % n_nodes].clone();
            let token = tokens[i].clone();
            reader(ws, closed.clone(), move |t| {
                if !t.contains("command:new") {
                    return;
                }
                let Some(run) = cur.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
                    return;
                };
                let Some((_, data)) = event(t) else { return };
                if data["payload"]["run"].as_u64() != Some(run.id) {
                    return;
                }
                let k = data["payload"]["n"].as_u64().unwrap_or(0);
                run.to_device
                    .push(run.sched(k).elapsed().as_micros() as u64);
                let id = data["id"].as_str().unwrap_or("").to_string();
                let (h, base, token) = (h.clone(), base.clone(), token.clone());
                tokio::spawn(async move {
                    let ok = h
                        .patch(format!("{base}/api/dashboard/remote-control/{id}"))
                        .bearer_auth(token)
                        .json(&json!({"status": "EXECUTED"}))
                        .send()
                        .await
                        .map(|r| r.status().is_success())
                        .unwrap_or(false);
                    if !ok {
                        run.errors.fetch_add(1, Ordering::Relaxed);
                    }
                });
            });
        }
        // With `--rt-warmup S`, a first run at the first rate for S seconds is not reported
        // (a JIT-compiled server, Node, is slow until its code is warm; the relay is not).
        let mut runs: Vec<(u64, u64, bool)> = Vec::new();
        if let (Some(&first), true) = (args.rates.first(), args.rt_warmup > 0) {
            runs.push((first, args.rt_warmup, false));
        }
        runs.extend(args.rates.iter().map(|&r| (r, args.rt_secs, true)));
        for (run_id, &(rate, secs, report)) in runs.iter().enumerate() {
            let total = rate * secs;
            let run = Arc::new(Run {
                id: run_id as u64 + 1,
                start: Instant::now() + Duration::from_millis(200),
                rate,
                ids: Mutex::new(Default::default()),
                early: Mutex::new(Default::default()),
                last_done_us: AtomicU64::new(0),
                to_device: Samples::default(),
                to_parent: Samples::default(),
                lag: Samples::default(),
                errors: AtomicU64::new(0),
                done: AtomicU64::new(0),
            });
            *current.lock().unwrap_or_else(|e| e.into_inner()) = Some(run.clone());
            let (cpu0, me0) = (f.cpu(), me_cpu());
            // The pacer is a thread of its own: tokio's timer ticks in whole milliseconds, which
            // made sends up to 1 ms late and counted that against the relay.
            let pacer = {
                let (run, h, bases, parent_tokens) = (
                    run.clone(),
                    h.clone(),
                    f.bases.clone(),
                    parent_tokens.clone(),
                );
                let rt = tokio::runtime::Handle::current();
                std::thread::spawn(move || {
                    for k in 0..total {
                        let at = run.sched(k);
                        let now = Instant::now();
                        if at > now {
                            std::thread::sleep(at - now);
                        }
                        let child = (k as usize) % d;
                        rt.spawn(post_command(
                            h.clone(),
                            bases[k as usize % n_nodes].clone(),
                            parent_tokens[child % parents].clone(),
                            child,
                            k,
                            run.clone(),
                        ));
                    }
                })
            };
            while !pacer.is_finished() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if let Err(panic) = pacer.join() {
                std::panic::resume_unwind(panic);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while run.done.load(Ordering::Relaxed) + run.errors.load(Ordering::Relaxed) < total
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let wall = (run.last_done_us.load(Ordering::Relaxed) as f64 / 1e6).max(1e-3);
            let (cpu1, me1) = (f.cpu(), me_cpu());
            let (_, d50, d99, dmax) = run.to_device.summary();
            let (n, p50, p99, pmax) = run.to_parent.summary();
            let (_, l50, l99, _) = run.lag.summary();
            let lost = total - run.done.load(Ordering::Relaxed);
            *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
            if !report {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            println!(
                "| {d} | {rate} | {:.0} | {d50:.1} / {d99:.1} / {dmax:.1} | {p50:.1} / {p99:.1} / {pmax:.1} | {} (not completed: {lost}) | {:.3} | {:.0} | {l50:.2} / {l99:.2} |",
                n as f64 / wall,
                run.errors.load(Ordering::Relaxed),
                (cpu1 - cpu0) * 1000.0 / total as f64,
                (me1 - me0) * 100.0 / wall,
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        f.kill().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!();
}
