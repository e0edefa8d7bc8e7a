//! The `floor` phase: what one delivery costs a sender that does nothing but write.
//!
//! A child process (this binary run with `--floor-serve N`) accepts N plain TCP sockets on
//! loopback and, for each line it reads on stdin, writes the same pre-encoded WebSocket text
//! frame (the fan-out phase's frame, byte for byte) to every socket with one blocking
//! `write` each, from one thread: no event loop (the process's tokio runtime stays idle), no
//! framing work, no per-socket task. Its CPU per delivered
//! message is the floor that the relay's fan-out figure is compared against: on loopback the
//! kernel charges the sender for its own TCP transmit path and for the receiver's TCP
//! receive path and wake-up, which the relay cannot avoid either.

use std::io::{BufRead, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;

/// A server-to-client (unmasked) WebSocket text frame.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x81);
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= u16::MAX as usize => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

/// The fan-out phase's frame for `round`.
fn payload(round: usize) -> String {
    serde_json::json!({"event": "bench:fan", "data": {"round": round}}).to_string()
}

/// The child: accept `n` sockets, then one frame to each per stdin line. Exits on EOF.
pub fn serve(n: usize) -> std::io::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", listener.local_addr()?)?;
    out.flush()?;
    let mut socks = Vec::with_capacity(n);
    for _ in 0..n {
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        socks.push(s);
    }
    writeln!(out, "ready")?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        let frame = text_frame(line?.as_bytes());
        for s in &mut socks {
            s.write_all(&frame)?;
        }
        writeln!(out, "sent")?;
        out.flush()?;
    }
    Ok(())
}

/// The phase: `n` sockets, `rounds` frames to each; prints one table, or why it could not.
pub async fn run(n: usize, rounds: usize) {
    if n == 0 || rounds == 0 {
        eprintln!("floor: needs --fanout-size and --fanout-rounds above 0");
        return;
    }
    if let Err(e) = measure(n, rounds).await {
        eprintln!("floor: {e}");
    }
}

async fn measure(n: usize, rounds: usize) -> Result<(), String> {
    println!(
        "## floor: the same frame written to {n} plain sockets by a bare sender, {rounds} times\n"
    );
    let me = std::env::current_exe().map_err(|e| format!("this binary's path: {e}"))?;
    let mut child = tokio::process::Command::new(me)
        .args(["--floor-serve", &n.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting the sender: {e}"))?;
    let pid = child.id().ok_or("the sender exited at once")?.to_string();
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the sender's pipes are missing".into());
    };
    let mut lines = BufReader::new(stdout).lines();
    let addr: SocketAddr = lines
        .next_line()
        .await
        .ok()
        .flatten()
        .and_then(|l| l.parse().ok())
        .ok_or("the sender did not print its address")?;
    let got = Arc::new(AtomicU64::new(0));
    for i in 0..n {
        let src = Ipv4Addr::new(127, 0, 0, 2 + (i % 50) as u8);
        let sock = TcpSocket::new_v4().map_err(|e| format!("socket {i}: {e}"))?;
        sock.bind(SocketAddr::from((src, 0)))
            .map_err(|e| format!("binding socket {i} to {src}: {e}"))?;
        let mut s = sock
            .connect(addr)
            .await
            .map_err(|e| format!("connecting socket {i}: {e}"))?;
        let _ = s.set_nodelay(true);
        let got = got.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(k) = s.read(&mut buf).await {
                if k == 0 {
                    break;
                }
                got.fetch_add(k as u64, Ordering::Relaxed);
            }
        });
    }
    if lines.next_line().await.ok().flatten().as_deref() != Some("ready") {
        return Err("the sender did not accept every socket".into());
    }
    let cpu0 = crate::proc::cpu_secs(&pid);
    let me0 = crate::me_cpu();
    let t_all = Instant::now();
    let mut expected = 0u64;
    let mut times = vec![];
    for round in 0..rounds {
        let p = payload(round);
        expected += (text_frame(p.as_bytes()).len() * n) as u64;
        let t0 = Instant::now();
        stdin
            .write_all(format!("{p}\n").as_bytes())
            .await
            .map_err(|e| format!("writing to the sender: {e}"))?;
        stdin
            .flush()
            .await
            .map_err(|e| format!("writing to the sender: {e}"))?;
        let _ = lines.next_line().await;
        while got.load(Ordering::Relaxed) < expected && t0.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        times.push(t0.elapsed().as_secs_f64() * 1000.0);
    }
    let wall = t_all.elapsed().as_secs_f64();
    let cpu = crate::proc::cpu_secs(&pid) - cpu0;
    let me = crate::me_cpu() - me0;
    let delivered = (rounds * n) as f64;
    let complete = got.load(Ordering::Relaxed) >= expected;
    times.sort_by(|a, b| a.total_cmp(b));
    println!("| sockets | writes | delivered msgs/s | time until all received, median / max (ms) | sender CPU per delivered message (µs) | bench CPU (s) | all bytes arrived |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {n} | {} | {:.0} | {:.1} / {:.1} | {:.2} | {:.1} | {} |\n",
        rounds * n,
        delivered / wall,
        times[times.len() / 2],
        times[times.len() - 1],
        cpu * 1e6 / delivered,
        me,
        if complete { "yes" } else { "no" },
    );
    drop(stdin);
    let _ = child.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_their_length() {
        assert_eq!(text_frame(b"hi"), vec![0x81, 2, b'h', b'i']);
        let long = vec![b'x'; 300];
        let f = text_frame(&long);
        assert_eq!(&f[..4], &[0x81, 126, 1, 44]);
        assert_eq!(f.len(), 304);
    }
}
