//! The `idle` phase: memory and CPU per idle device socket.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{connect_all, fresh, me_cpu, reader, setup_devices, Args};

/// The `idle` phase: idle device sockets (heartbeat 25 s); prints one table.
pub async fn idle(args: &Args) {
    println!(
        "## idle device sockets, {} (heartbeat 25 s, idle window {} s)\n",
        crate::load::protocol(),
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
