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
//! costs at the least on this machine; not in the default set), `webhooks` (one node drains
//! a backlog of webhook events into a local receiver; not in the default set).
//! `--webhook-sink` runs every relay with webhooks to a local receiver (compare the round
//! trip's relay CPU per command with and without it).
//! The relay and this load generator share the machine; both CPUs are reported.
//!
//! Each phase is a module (`idle`, `roundtrip`, `fanout`, `storm`, `floor`); this file holds
//! the arguments, starting relays (one, or several on PostgreSQL + Redis), populating them and
//! connecting device sockets. `load` holds the clients, `proc` the relay process.

mod fanout;
mod floor;
mod idle;
mod load;
mod proc;
mod roundtrip;
mod rtfloor;
mod sink;
mod storm;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use clap::Parser;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use load::{connect, each, http, new_device, put_child};
use proc::RelayProc;

use fanout::fanout;
use idle::idle;
use roundtrip::roundtrip;
use storm::storm;

#[derive(Parser, Debug)]
#[command(
    name = "relay-bench",
    about = "Benchmark safestream-relay from another process over loopback"
)]
struct Args {
    /// Clients speak Socket.IO (Engine.IO v4 over WebSocket, what socket.io-client does after
    /// its upgrade) instead of the native protocol: the `idle`, `fanout` and `roundtrip` phases.
    #[arg(long)]
    socketio: bool,
    /// Phases to run, comma-separated: idle, roundtrip, fanout, storm, floor, webhooks.
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
    /// Seconds of an unreported first run at the first rate, per device count (a warm-up for
    /// servers that compile their code as they run it: the Node baseline).
    #[arg(long, default_value_t = 0)]
    rt_warmup: u64,
    /// Room size for fan-out.
    #[arg(long, default_value_t = 10000)]
    fanout_size: usize,
    /// Publishes to the room.
    #[arg(long, default_value_t = 20)]
    fanout_rounds: usize,
    /// Devices in the reconnect storm.
    #[arg(long, default_value_t = 10000)]
    storm_devices: usize,
    /// The relay binary (default: next to this one). A `.mjs` file is run with `node` instead:
    /// `tests/bench/node-baseline/server.mjs` (after `npm ci` there) is the plan's Node
    /// Socket.IO server, for `--phases roundtrip --socketio` (see BENCHMARKS.md).
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
    /// Send webhooks from every relay started to a receiver in this process (answers 204).
    #[arg(long)]
    webhook_sink: bool,
    /// Events in the `webhooks` phase.
    #[arg(long, default_value_t = 20000)]
    webhook_events: usize,
    /// Internal: run as the round trip's floor server (`rtfloor.rs`); what `--relay-bin`
    /// naming this binary starts.
    #[arg(long, hide = true)]
    rt_floor_serve: bool,
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
    if args.webhook_sink && !env.iter().any(|(k, _)| k == "SAFESTREAM_WEBHOOK_URLS") {
        env.extend(sink::relay_env(&webhook_sink().await));
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
        if args.webhook_sink {
            env.extend(sink::relay_env(&webhook_sink().await));
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

/// The URL of this process's webhook sink (`--webhook-sink`), started on first use.
async fn webhook_sink() -> String {
    static SINK: tokio::sync::OnceCell<sink::Sink> = tokio::sync::OnceCell::const_new();
    SINK.get_or_init(sink::start).await.url.clone()
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
/// A Socket.IO client answers the relay's Engine.IO ping (`2`) with a pong (`3`).
fn reader(mut ws: load::Ws, closed: Arc<AtomicU64>, on_text: impl Fn(&str) + Send + 'static) {
    tokio::spawn(async move {
        while let Some(m) = ws.next().await {
            match m {
                Ok(Message::Text(t)) if t.as_str() == "2" && load::socketio() => {
                    use futures_util::SinkExt;
                    if ws.send(Message::Text("3".into())).await.is_err() {
                        break;
                    }
                }
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
    load::SOCKETIO.store(args.socketio, Ordering::Relaxed);
    if args.socketio
        && args
            .phases
            .iter()
            .any(|p| !matches!(p.as_str(), "idle" | "fanout" | "roundtrip"))
    {
        eprintln!("relay-bench: --socketio measures the idle, fanout and roundtrip phases only");
        std::process::exit(2);
    }
    if args.rt_floor_serve {
        // Its own current-thread runtime, on a thread of its own (not inside this one).
        let r = std::thread::spawn(rtfloor::serve)
            .join()
            .unwrap_or_else(|_| Err("the floor server panicked".into()));
        if let Err(e) = r {
            eprintln!("relay-bench round-trip floor: {e}");
            std::process::exit(1);
        }
        return;
    }
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
            "webhooks" => sink::webhooks(&args).await,
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
