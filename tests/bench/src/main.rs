//! `relay-bench`: starts `safestream-relay` (release build, fresh database) and measures it from
//! this process over loopback. Prints one Markdown table per phase.
//!
//! ```text
//! cargo build --release -p relay -p relay-bench
//! target/release/relay-bench --phases idle,roundtrip,fanout,storm
//! ```
//!
//! Phases: `idle` (memory and CPU per idle device socket), `roundtrip` (open-loop command
//! round trips at fixed rates), `fanout` (one publish to a room of N sockets), `storm`
//! (N devices with pending commands reconnecting after the relay is SIGKILLed and restarted),
//! `floor` (the fan-out's frame written to N plain sockets by a bare sender: what a delivery
//! costs at the least on this machine; not in the default set).
//! The relay and this load generator share the machine; both CPUs are reported.

mod floor;
mod load;
mod proc;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use load::{connect, each, http, new_device, parent_token, put_child, RateMeter, Samples};
use proc::{RelayProc, SERVER_KEY};

#[derive(Parser, Debug)]
#[command(
    name = "relay-bench",
    about = "Benchmark safestream-relay from another process over loopback"
)]
struct Args {
    /// Phases to run, comma-separated: idle, roundtrip, fanout, storm, floor.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "idle,roundtrip,fanout,storm"
    )]
    phases: Vec<String>,
    /// Idle socket counts.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,19000")]
    idle_sizes: Vec<usize>,
    /// Seconds of idleness measured (the relay's heartbeat is 25 s).
    #[arg(long, default_value_t = 60)]
    idle_secs: u64,
    /// Device counts for round trips.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
    rt_devices: Vec<usize>,
    /// Offered command rates per second.
    #[arg(long, value_delimiter = ',', default_value = "500,1000,2000,5000")]
    rates: Vec<u64>,
    /// Seconds per offered rate.
    #[arg(long, default_value_t = 10)]
    rt_secs: u64,
    /// Room size for fan-out.
    #[arg(long, default_value_t = 10000)]
    fanout_size: usize,
    /// Publishes to the room.
    #[arg(long, default_value_t = 20)]
    fanout_rounds: usize,
    /// Devices in the reconnect storm.
    #[arg(long, default_value_t = 10000)]
    storm_devices: usize,
    /// The relay binary (default: next to this one).
    #[arg(long)]
    relay_bin: Option<PathBuf>,
    /// Extra environment for the relay, `KEY=VALUE` (repeatable).
    #[arg(long = "relay-env")]
    relay_env: Vec<String>,
    /// Round trip only: relay nodes sharing PostgreSQL and Redis (needs --pg and --redis).
    /// Devices, parents, POSTs and acks are spread so that each command crosses nodes.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// PostgreSQL server for --nodes > 1 (a fresh database is created on it).
    #[arg(long, env = "SAFESTREAM_TEST_PG")]
    pg: Option<String>,
    /// Redis for --nodes > 1.
    #[arg(long)]
    redis: Option<String>,
    /// Internal: run as the `floor` phase's sender with this many sockets.
    #[arg(long, hide = true)]
    floor_serve: Option<usize>,
}

fn relay_bin(args: &Args) -> PathBuf {
    if let Some(p) = &args.relay_bin {
        return p.clone();
    }
    let me = std::env::current_exe().expect("current exe");
    let p = me.with_file_name("safestream-relay");
    assert!(
        p.exists(),
        "{} not found: cargo build --release -p relay",
        p.display()
    );
    p
}

fn free_addr() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").to_string()
}

struct Fresh {
    relay: RelayProc,
    base: String,
    _dir: tempfile::TempDir,
}

async fn fresh(args: &Args, env: &[(&str, &str)]) -> Fresh {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = free_addr();
    let mut env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    for kv in &args.relay_env {
        if let Some((k, v)) = kv.split_once('=') {
            env.push((k.to_string(), v.to_string()));
        }
    }
    let relay = RelayProc::start(&relay_bin(args), &addr, &dir.path().join("bench.db"), &env).await;
    Fresh {
        base: format!("http://{}", relay.addr),
        relay,
        _dir: dir,
    }
}

/// One relay (embedded defaults) or several on PostgreSQL + Redis.
struct Nodes {
    procs: Vec<RelayProc>,
    bases: Vec<String>,
    addrs: Vec<String>,
    _dir: tempfile::TempDir,
}

impl Nodes {
    fn cpu(&self) -> f64 {
        self.procs.iter().map(|p| p.cpu()).sum()
    }

    async fn kill(self) {
        for mut p in self.procs {
            p.kill().await;
        }
    }
}

async fn start_nodes(args: &Args) -> Nodes {
    if args.nodes <= 1 {
        let f = fresh(args, &[]).await;
        return Nodes {
            bases: vec![f.base.clone()],
            addrs: vec![f.relay.addr.clone()],
            procs: vec![f.relay],
            _dir: f._dir,
        };
    }
    let (Some(pg), Some(redis)) = (args.pg.clone(), args.redis.clone()) else {
        eprintln!("relay-bench: --nodes > 1 needs --pg (or SAFESTREAM_TEST_PG) and --redis");
        std::process::exit(2);
    };
    let db = fresh_pg_database(&pg);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut nodes = Nodes {
        procs: vec![],
        bases: vec![],
        addrs: vec![],
        _dir: dir,
    };
    for i in 0..args.nodes {
        let addr = free_addr();
        let mut env = vec![
            ("SAFESTREAM_DB".to_string(), db.clone()),
            ("SAFESTREAM_REDIS".to_string(), redis.clone()),
            (
                "SAFESTREAM_REDIS_PREFIX".to_string(),
                format!("bench{}", std::process::id()),
            ),
            ("SAFESTREAM_NODE_ID".to_string(), format!("node-{i}")),
        ];
        for kv in &args.relay_env {
            if let Some((k, v)) = kv.split_once('=') {
                env.push((k.to_string(), v.to_string()));
            }
        }
        let p = RelayProc::start(
            &relay_bin(args),
            &addr,
            &nodes._dir.path().join("unused.db"),
            &env,
        )
        .await;
        nodes.bases.push(format!("http://{}", p.addr));
        nodes.addrs.push(p.addr.clone());
        nodes.procs.push(p);
    }
    nodes
}

/// Creates a fresh database on the server of `admin`; returns its URL.
fn fresh_pg_database(admin: &str) -> String {
    let name = format!("bench_{}_{}", std::process::id(), rand_suffix());
    let (a, create) = (admin.to_string(), format!("CREATE DATABASE {name}"));
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&a, postgres::NoTls).expect("connect to --pg");
        c.batch_execute(&create).expect("CREATE DATABASE");
    })
    .join()
    .expect("creating the bench database");
    let (base, _) = admin.rsplit_once('/').expect("--pg ends with /<database>");
    format!("{base}/{name}")
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64 % 1_000_000)
        .unwrap_or(0)
}

fn me_cpu() -> f64 {
    proc::cpu_secs("self")
}

/// Creates `n` devices in children of `per_child`, guardians `p<j % parents>`; returns tokens.
async fn setup_devices(base: &str, n: usize, per_child: usize, parents: usize) -> Vec<String> {
    let h = http();
    let children = n.div_ceil(per_child);
    each(children, 64, |c| {
        let h = h.clone();
        async move {
            put_child(
                &h,
                base,
                &format!("c{c}"),
                &[format!("p{}", c % parents.max(1))],
            )
            .await;
        }
    })
    .await;
    each(n, 64, |i| {
        let h = h.clone();
        async move { new_device(&h, base, &format!("c{}", i / per_child)).await }
    })
    .await
}

async fn connect_all(addr: &str, tokens: &[String]) -> Vec<load::Ws> {
    connect_spread(&[addr.to_string()], 0, tokens).await
}

/// Socket `i` goes to `addrs[(i + offset) % addrs.len()]`.
async fn connect_spread(addrs: &[String], offset: usize, tokens: &[String]) -> Vec<load::Ws> {
    let out = each(tokens.len(), 256, |i| {
        let t = tokens[i].clone();
        let addr = addrs[(i + offset) % addrs.len()].clone();
        async move { connect(&addr, i, &t).await }
    })
    .await;
    out.into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|e| panic!("socket {i}: {e}")))
        .collect()
}

/// Keeps reading a socket (so pings are answered) and calls `on_text` for each text frame.
fn reader(mut ws: load::Ws, closed: Arc<AtomicU64>, on_text: impl Fn(&str) + Send + 'static) {
    tokio::spawn(async move {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Text(t)) => on_text(&t),
                Ok(Message::Close(_)) | Err(_) => break,
                Ok(_) => {}
            }
        }
        closed.fetch_add(1, Ordering::Relaxed);
    });
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Some(n) = args.floor_serve {
        if let Err(e) = floor::serve(n) {
            eprintln!("relay-bench floor sender: {e}");
            std::process::exit(1);
        }
        return;
    }
    if args.nodes > 1 && (args.pg.is_none() || args.redis.is_none()) {
        eprintln!("relay-bench: --nodes > 1 needs --pg (or SAFESTREAM_TEST_PG) and --redis");
        std::process::exit(2);
    }
    eprintln!("relay: {}", relay_bin(&args).display());
    println!("# relay-bench\n");
    println!(
        "machine: {} cores; open-file limit per process: {}\n",
        num_cpus(),
        nofile()
    );
    for p in args.phases.clone() {
        match p.as_str() {
            "idle" => idle(&args).await,
            "roundtrip" => roundtrip(&args).await,
            "fanout" => fanout(&args).await,
            "storm" => storm(&args).await,
            "floor" => floor::run(args.fanout_size, args.fanout_rounds).await,
            other => eprintln!("unknown phase {other}"),
        }
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn nofile() -> String {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Max open files"))
                .map(|l| {
                    l.split_whitespace()
                        .skip(3)
                        .take(2)
                        .collect::<Vec<_>>()
                        .join("/")
                })
        })
        .unwrap_or_else(|| "?".into())
}

async fn idle(args: &Args) {
    println!(
        "## idle device sockets (heartbeat 25 s, idle window {} s)\n",
        args.idle_secs
    );
    println!("| sockets | relay RSS before → after (MiB) | RSS per socket (KiB) | relay CPU per connect (ms) | connect wall (s) | relay CPU idle (% of a core) | bench CPU connect / idle (s) | dropped |");
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &args.idle_sizes {
        let f = fresh(args, &[]).await;
        let tokens = setup_devices(&f.base, n, 100, 1).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (rss0, cpu0, me0) = (f.relay.rss(), f.relay.cpu(), me_cpu());
        let t0 = Instant::now();
        let socks = connect_all(&f.relay.addr, &tokens).await;
        let wall = t0.elapsed().as_secs_f64();
        let closed = Arc::new(AtomicU64::new(0));
        for ws in socks {
            reader(ws, closed.clone(), |_| {});
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (rss1, cpu1, me1) = (f.relay.rss(), f.relay.cpu(), me_cpu());
        tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
        let (cpu2, me2) = (f.relay.cpu(), me_cpu());
        println!(
            "| {n} | {:.1} → {:.1} | {:.2} | {:.3} | {:.1} | {:.2} | {:.1} / {:.1} | {} |",
            rss0 as f64 / 1024.0,
            rss1 as f64 / 1024.0,
            (rss1.saturating_sub(rss0)) as f64 / n as f64,
            (cpu1 - cpu0) * 1000.0 / n as f64,
            wall,
            (cpu2 - cpu1) * 100.0 / args.idle_secs as f64,
            me1 - me0,
            me2 - me1,
            closed.load(Ordering::Relaxed),
        );
        let mut relay = f.relay;
        relay.kill().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!();
}

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

async fn roundtrip(args: &Args) {
    if args.nodes > 1 {
        println!(
            "## command round trip on {} nodes (PostgreSQL + Redis; device, parent, POST and ack each on a different node)\n",
            args.nodes
        );
    } else {
        println!("## command round trip (open loop; latency from the scheduled send time)\n");
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
                let v: Value = serde_json::from_str(t).unwrap_or(Value::Null);
                let id = v["data"]["commandId"].as_str().unwrap_or("");
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
                let v: Value = serde_json::from_str(t).unwrap_or(Value::Null);
                if v["data"]["payload"]["run"].as_u64() != Some(run.id) {
                    return;
                }
                let k = v["data"]["payload"]["n"].as_u64().unwrap_or(0);
                run.to_device
                    .push(run.sched(k).elapsed().as_micros() as u64);
                let id = v["data"]["id"].as_str().unwrap_or("").to_string();
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
        for (run_id, &rate) in args.rates.iter().enumerate() {
            let total = rate * args.rt_secs;
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
            println!(
                "| {d} | {rate} | {:.0} | {d50:.1} / {d99:.1} / {dmax:.1} | {p50:.1} / {p99:.1} / {pmax:.1} | {} (not completed: {lost}) | {:.3} | {:.0} | {l50:.2} / {l99:.2} |",
                n as f64 / wall,
                run.errors.load(Ordering::Relaxed),
                (cpu1 - cpu0) * 1000.0 / total as f64,
                (me1 - me0) * 100.0 / wall,
            );
            *current.lock().unwrap_or_else(|e| e.into_inner()) = None;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        f.kill().await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!();
}

async fn fanout(args: &Args) {
    let n = args.fanout_size;
    if n == 0 || args.fanout_rounds == 0 {
        eprintln!("fanout: needs --fanout-size and --fanout-rounds above 0");
        return;
    }
    println!(
        "## fan-out: one publish to a room of {n} sockets, {} times\n",
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

async fn storm(args: &Args) {
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
