//! `--webhook-sink` and the `webhooks` phase: a minimal webhook receiver in this process
//! (HTTP/1.1 keep-alive, answers 204, counts requests; no signature check: that is the
//! tests' job), and the phase that measures how fast one relay drains its outbox into it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::load::{each, http};
use crate::proc::SERVER_KEY;
use crate::{fresh, me_cpu, Args};

/// The signing secret the bench gives the relay.
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A running sink: its URL and how many requests it answered.
pub struct Sink {
    /// `http://127.0.0.1:<port>/hook`.
    pub url: String,
    /// Requests answered.
    pub count: Arc<AtomicU64>,
}

/// The relay environment that sends webhooks to `url`.
pub fn relay_env(url: &str) -> Vec<(String, String)> {
    vec![
        ("SAFESTREAM_WEBHOOK_URLS".into(), url.to_string()),
        ("SAFESTREAM_WEBHOOK_SECRETS".into(), SECRET.into()),
    ]
}

/// Starts a sink on `listener`.
pub fn serve(listener: TcpListener) -> Sink {
    let count = Arc::new(AtomicU64::new(0));
    let url = format!(
        "http://{}/hook",
        listener.local_addr().expect("sink address")
    );
    let c = count.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(connection(s, c.clone()));
        }
    });
    Sink { url, count }
}

/// Starts a sink on a free port.
pub async fn start() -> Sink {
    serve(TcpListener::bind("127.0.0.1:0").await.expect("sink bind"))
}

async fn connection(s: TcpStream, count: Arc<AtomicU64>) {
    let _ = s.set_nodelay(true);
    let mut s = BufReader::new(s);
    let mut line = String::new();
    loop {
        let mut len = 0usize;
        loop {
            line.clear();
            match s.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        if s.read_exact(&mut body).await.is_err() {
            return;
        }
        count.fetch_add(1, Ordering::Relaxed);
        if s.get_mut()
            .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The `webhooks` phase: one relay, its endpoint down while `n` notifications are created
/// (each one outbox row), then up: how fast the relay delivers the backlog, and its CPU per
/// event.
pub async fn webhooks(args: &Args) {
    let n = args.webhook_events;
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let env = relay_env(&format!("http://{port}/hook"));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let f = fresh(args, &env).await;
    let h = http();
    let base = f.base.clone();
    each(n, 64, |i| {
        let (h, base) = (h.clone(), base.clone());
        async move {
            let r = h
                .post(format!("{base}/api/dashboard/notifications"))
                .bearer_auth(SERVER_KEY)
                .json(&serde_json::json!({"userId": format!("u{}", i % 100), "type": "RESTRICTED_CONTENT",
                                          "title": format!("n{i}"), "message": "bench"}))
                .send()
                .await;
            assert!(
                matches!(&r, Ok(r) if r.status().as_u16() == 201),
                "notification {i}: {r:?}"
            );
        }
    })
    .await;
    // The relay's first attempts failed (nothing listens): they come due within 1-2 s.
    let sink = serve(TcpListener::bind(port).await.expect("sink bind"));
    let (cpu0, me0, t0) = (f.relay.cpu(), me_cpu(), Instant::now());
    let deadline = t0 + Duration::from_secs(600);
    while sink.count.load(Ordering::Relaxed) < n as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    let got = sink.count.load(Ordering::Relaxed);
    let (cpu1, me1) = (f.relay.cpu(), me_cpu());
    println!("## webhooks: one node drains a backlog into a local receiver\n");
    println!("| events | delivered | seconds | events/s | relay CPU per event (ms) | bench CPU (% of a core) |");
    println!("|---|---|---|---|---|---|");
    println!(
        "| {n} | {got} | {secs:.1} | {:.0} | {:.3} | {:.0} |\n",
        got as f64 / secs,
        (cpu1 - cpu0) * 1000.0 / got.max(1) as f64,
        (me1 - me0) * 100.0 / secs
    );
    println!(
        "(includes the wait for the first retries, up to 2 s; `--webhook-sink` makes the other \
         phases send webhooks too)\n"
    );
}
