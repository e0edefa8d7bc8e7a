//! A TCP fault proxy for the chaos suite: it sits between agents and the relay (WebSocket
//! and HTTP share the relay's port) and, while it is "active", injects faults into the
//! connections it carries, drawn from a seeded RNG:
//!
//! - **drop**: both sides closed with a FIN, mid-stream (also: refused right after accept);
//! - **reset**: both sides closed with an RST (`SO_LINGER` 0);
//! - **stall**: nothing forwarded either way for 0.5–4 s, then the stream resumes;
//! - **half-open**: nothing forwarded either way, nothing closed, for up to 15 s (a peer
//!   that vanished without a FIN; both ends must notice by their heartbeats);
//! - **one-way loss**: from a random point on, bytes in one direction are read and thrown
//!   away while the other direction keeps flowing.
//!
//! Every loop is bounded: a connection lives at most as long as its peers, a half-open one
//! at most 15 s, and the accept loop stops when the proxy is dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// The kinds of fault, in the order of [`FaultCounts`].
pub const FAULT_KINDS: [&str; 7] = [
    "refused",
    "drop",
    "reset",
    "stall",
    "half_open",
    "loss_to_relay",
    "loss_to_agent",
];

/// How many faults of each kind were injected.
#[derive(Default)]
pub struct FaultCounts(pub [AtomicU64; 7]);

impl FaultCounts {
    /// (kind, count) pairs.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        FAULT_KINDS
            .iter()
            .zip(self.0.iter())
            .map(|(k, c)| (*k, c.load(Ordering::Relaxed)))
            .collect()
    }

    /// All faults.
    pub fn total(&self) -> u64 {
        self.0.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    fn add(&self, kind: usize) {
        self.0[kind].fetch_add(1, Ordering::Relaxed);
    }
}

struct Shared {
    upstream: u16,
    active: AtomicBool,
    /// Probability that a connection gets a fault at each of its fault checks.
    fault_rate: f64,
    counts: FaultCounts,
    connections: AtomicU64,
}

/// The proxy; stops accepting when dropped.
pub struct FaultProxy {
    /// The port agents connect to.
    pub port: u16,
    shared: Arc<Shared>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free 127.0.0.1 port and forwards to `127.0.0.1:upstream`.
    /// `seed` makes every connection's fault schedule reproducible (given the same order of
    /// connections); `fault_rate` (0–1) is the chance of a fault at each check (every
    /// 0.3–6 s of a connection's life).
    pub async fn start(upstream: u16, seed: u64, fault_rate: f64) -> std::io::Result<FaultProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream,
            active: AtomicBool::new(false),
            fault_rate,
            counts: FaultCounts::default(),
            connections: AtomicU64::new(0),
        });
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            let mut seeds = StdRng::seed_from_u64(seed);
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                s.connections.fetch_add(1, Ordering::Relaxed);
                let conn_seed: u64 = seeds.gen();
                tokio::spawn(serve(client, s.clone(), conn_seed));
            }
        });
        Ok(FaultProxy {
            port,
            shared,
            accept,
        })
    }

    /// Starts (`true`) or stops (`false`) injecting faults. Stopping also ends every
    /// stall and half-open state within 100 ms; connections already cut stay cut.
    pub fn set_active(&self, active: bool) {
        self.shared.active.store(active, Ordering::SeqCst);
    }

    /// Faults injected so far.
    pub fn counts(&self) -> &FaultCounts {
        &self.shared.counts
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// `ws://127.0.0.1:port`
    pub fn ws(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

#[allow(deprecated)] // zero linger: the close sends an RST at once, nothing blocks
fn set_rst(s: &tokio::net::tcp::OwnedWriteHalf) {
    let _ = s.as_ref().set_linger(Some(Duration::ZERO));
}

async fn serve(client: TcpStream, s: Arc<Shared>, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    if s.active.load(Ordering::SeqCst) && rng.gen_bool((s.fault_rate / 4.0).clamp(0.0, 1.0)) {
        s.counts.add(0);
        return; // accepted, then closed before a byte: a refused connection
    }
    let Ok(Ok(server)) = tokio::time::timeout(
        Duration::from_secs(5),
        TcpStream::connect(("127.0.0.1", s.upstream)),
    )
    .await
    else {
        return; // relay down: the agent sees its connection closed
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let mut bc = vec![0u8; 16 * 1024];
    let mut bs = vec![0u8; 16 * 1024];
    let mut drop_c2s = false;
    let mut drop_s2c = false;
    let mut stalled_until: Option<Instant> = None;
    let mut half_open_until: Option<Instant> = None;
    let mut next_check = Instant::now() + Duration::from_millis(rng.gen_range(300..6000));
    loop {
        let now = Instant::now();
        let active = s.active.load(Ordering::SeqCst);
        if !active {
            stalled_until = None;
            if half_open_until.is_some() {
                return; // end of chaos: the half-open connection is finally closed
            }
        }
        if let Some(t) = half_open_until {
            if now >= t {
                return;
            }
        }
        let paused = half_open_until.is_some() || stalled_until.is_some_and(|t| now < t);
        tokio::select! {
            _ = tokio::time::sleep_until(next_check) => {
                next_check = Instant::now() + Duration::from_millis(rng.gen_range(300..6000));
                if !active || !rng.gen_bool(s.fault_rate.clamp(0.0, 1.0)) {
                    continue;
                }
                match rng.gen_range(0..6) {
                    0 => { s.counts.add(1); return; }
                    1 => { s.counts.add(2); set_rst(&cw); set_rst(&sw); return; }
                    2 => {
                        s.counts.add(3);
                        stalled_until = Some(Instant::now() + Duration::from_millis(rng.gen_range(500..4000)));
                    }
                    3 => {
                        s.counts.add(4);
                        half_open_until = Some(Instant::now() + Duration::from_secs(15));
                    }
                    4 if !drop_c2s && !drop_s2c => { s.counts.add(5); drop_c2s = true; }
                    _ if !drop_c2s && !drop_s2c => { s.counts.add(6); drop_s2c = true; }
                    _ => {}
                }
            }
            r = cr.read(&mut bc), if !paused => {
                match r {
                    Ok(0) | Err(_) => { let _ = sw.shutdown().await; return; }
                    Ok(n) if !drop_c2s => { if sw.write_all(&bc[..n]).await.is_err() { return; } }
                    Ok(_) => {}
                }
            }
            r = sr.read(&mut bs), if !paused => {
                match r {
                    Ok(0) | Err(_) => { let _ = cw.shutdown().await; return; }
                    Ok(n) if !drop_s2c => { if cw.write_all(&bs[..n]).await.is_err() { return; } }
                    Ok(_) => {}
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(100)), if paused => {}
        }
    }
}
