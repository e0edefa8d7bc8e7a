//! The `safestream-relay` binary itself: refusing to start without secrets or with short
//! ones, `--help`, SIGKILL between a 201 and the device's connect, SIGTERM, a connection
//! flood under a small open-file limit, a second relay on a SQLite file in use.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_safestream-relay");

/// Starts the binary on a free port with `db`; returns the child and its base URL.
async fn spawn(db: &str) -> (Child, String) {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("SAFESTREAM_LISTEN", "127.0.0.1:0")
        .env("SAFESTREAM_DB", db)
        .env("SAFESTREAM_JWT_SECRET", SECRET)
        .env("SAFESTREAM_SERVER_KEY", SERVER_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("relay binary starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .expect("relay prints its address")
        .unwrap()
        .unwrap();
    let url = line.rsplit(' ').next().unwrap().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{line}");
    (child, url)
}

fn relay_at(base: &str, dir: tempfile::TempDir) -> Relay {
    let mut cfg = relay::Config::for_tests("unused", SECRET, SERVER_KEY);
    cfg.dev = false;
    Relay {
        running: None,
        base: base.to_string(),
        ws_url: format!("{}/api/socket", base.replace("http://", "ws://")),
        dir,
        http: reqwest::Client::new(),
        cfg,
    }
}

#[tokio::test]
async fn refuses_to_start_without_secrets_and_documents_its_flags() {
    let out = Command::new(BIN)
        .env_clear()
        .env("SAFESTREAM_LISTEN", "127.0.0.1:0")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to start") && err.contains("SAFESTREAM_JWT_SECRET"),
        "{err}"
    );
    let out = Command::new(BIN).arg("--help").output().await.unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--db",
        "--redis",
        "--jwt-secret",
        "--server-key",
        "--dev",
        "SAFESTREAM_LISTEN",
    ] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
}

#[tokio::test]
async fn refuses_to_start_with_short_secrets_and_says_how_to_make_one() {
    let dir = tempfile::tempdir().unwrap();
    let long = "0123456789abcdef0123456789abcdef"; // 32 bytes
    for (jwt, key, named, size) in [
        ("short", long, "SAFESTREAM_JWT_SECRET", "is 5 bytes"),
        (long, "k", "SAFESTREAM_SERVER_KEY", "is 1 byte"),
    ] {
        let out = Command::new(BIN)
            .env_clear()
            .env("SAFESTREAM_LISTEN", "127.0.0.1:0")
            .env("SAFESTREAM_DB", dir.path().join("relay.db"))
            .env("SAFESTREAM_JWT_SECRET", jwt)
            .env("SAFESTREAM_SERVER_KEY", key)
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("refusing to start")
                && err.contains(named)
                && err.contains(size)
                && err.contains("at least 32 bytes")
                && err.contains("openssl rand -base64 32"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn sigkill_between_201_and_connect_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = test_db(dir.path());
    let (mut child, base) = spawn(&db).await;
    let r = relay_at(&base, dir);
    r.child("c1", &["p1"]).await;
    let (_, d1) = r.device("c1").await;
    let p1 = parent("p1");
    let cmd = r.command(&p1, "c1", "LOCK_DEVICE").await;
    let (s, _) = r
        .post(
            "/api/dashboard/notifications",
            SERVER_KEY,
            json!({"userId": "p1", "type": "RESTRICTED_CONTENT", "title": "kept"}),
        )
        .await;
    assert_eq!(s, 201);
    child.start_kill().unwrap(); // SIGKILL
    child.wait().await.unwrap();
    let (mut child, base) = spawn(&db).await;
    let r = relay_at(&base, r.dir);
    let (mut ws, _) = Ws::ready(&r, &d1).await;
    let got = ws.expect("command:new").await;
    assert_eq!(got["id"], cmd["id"]);
    assert_eq!(
        r.ack(&d1, cmd["id"].as_str().unwrap(), "EXECUTED").await.0,
        200
    );
    let (_, n) = r.get("/api/dashboard/notifications", &p1).await;
    assert_eq!(n["notifications"][0]["title"], "kept");
    // SIGTERM: sockets get 1001 and the process exits cleanly.
    let pid = child.id().unwrap() as i32;
    let status = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(ws.expect_close(Duration::from_secs(10)).await, Some(1001));
    let exit = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

/// One relay per SQLite file: a second process on a file in use waits for it (a restart
/// overlapping the old process's exit), then exits with what to do; it never serves.
#[tokio::test]
async fn a_second_relay_on_the_same_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    // SQLite whatever SAFESTREAM_TEST_DB says: on PostgreSQL several relays are the point.
    let db = dir.path().join("relay.db").to_str().unwrap().to_string();
    let (mut first, base) = spawn(&db).await;
    let started = std::time::Instant::now();
    let second = Command::new(BIN)
        .env_clear()
        .env("SAFESTREAM_LISTEN", "127.0.0.1:0")
        .env("SAFESTREAM_DB", &db)
        .env("SAFESTREAM_JWT_SECRET", SECRET)
        .env("SAFESTREAM_SERVER_KEY", SERVER_KEY)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(30), second)
        .await
        .expect("the second relay gives up")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "it never listened: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(stderr.contains("another relay is using"), "{stderr}");
    assert!(
        started.elapsed() >= Duration::from_secs(5),
        "it waited for the first to exit"
    );
    // The first one still serves.
    let r = relay_at(&base, dir);
    r.child("c1", &["p1"]).await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
}

/// Opens `n` plain connections that send nothing; returns them and how many the relay closed
/// at once (end of stream or reset within 500 ms).
async fn open_idle(addr: &str, n: usize) -> (Vec<tokio::net::TcpStream>, usize) {
    let mut socks = Vec::new();
    for _ in 0..n {
        socks.push(tokio::net::TcpStream::connect(addr).await.unwrap());
    }
    let reads = socks.iter_mut().map(|s| async move {
        let mut b = [0u8; 1];
        let r = tokio::time::timeout(
            Duration::from_millis(500),
            tokio::io::AsyncReadExt::read(s, &mut b),
        )
        .await;
        matches!(r, Ok(Ok(0)) | Ok(Err(_)))
    });
    let closed = futures_util::future::join_all(reads)
        .await
        .into_iter()
        .filter(|c| *c)
        .count();
    (socks, closed)
}

/// Under a small open-file limit the relay lowers its connection cap to fit (400 files: 200
/// connections), closes connections past it at once instead of running out of files, keeps
/// serving once they are gone, and counts WebSockets (even unauthenticated ones) in the cap.
#[tokio::test]
async fn a_connection_flood_is_capped_under_the_open_file_limit() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flood.db");
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("ulimit -n 400 && exec \"$0\"")
        .arg(BIN)
        .env_clear()
        .env("SAFESTREAM_LISTEN", "127.0.0.1:0")
        .env("SAFESTREAM_DB", db.to_str().unwrap())
        .env("SAFESTREAM_JWT_SECRET", SECRET)
        .env("SAFESTREAM_SERVER_KEY", SERVER_KEY)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("relay binary starts");
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(20), out.next_line())
        .await
        .expect("relay prints its address")
        .unwrap()
        .unwrap();
    let base = line.rsplit(' ').next().unwrap().to_string();
    let addr = base.trim_start_matches("http://").to_string();
    let warned = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(l)) = err.next_line().await {
            // (The log may be coloured: look for the words and the number apart.)
            if l.contains("max connections lowered") && l.contains("200") {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(warned, "the relay says it lowered its cap to 200");
    // Keep reading its log so that a full pipe never blocks it.
    tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });

    // 300 idle connections: 200 are held, 100 are closed by the relay at once.
    let (socks, closed) = open_idle(&addr, 300).await;
    assert_eq!(closed, 100, "connections past the cap are closed at once");
    assert!(
        child.try_wait().unwrap().is_none(),
        "the relay is still running"
    );
    drop(socks);
    // Once they are gone the relay serves again (and was never out of files). No idle
    // keep-alive connection stays behind to hold a place under the cap.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut ok = false;
    for _ in 0..50 {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                ok = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "the relay answers /readyz after the flood");
    // WebSockets that never authenticate count too: 150 of them and 100 plain connections
    // leave room for 50 of the latter.
    // Give the relay time to see every close of the first flood (each frees a place).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let ws_url = format!("ws://{addr}/api/socket");
    let mut sockets = Vec::new();
    for _ in 0..150 {
        let (ws, _) = tokio_tungstenite::connect_async(ws_url.as_str())
            .await
            .expect("upgrade");
        sockets.push(ws);
    }
    let (plain, closed) = open_idle(&addr, 100).await;
    assert_eq!(closed, 50, "open WebSockets hold their place under the cap");
    drop(sockets);
    drop(plain);
    // Until the relay has seen those closes, a new connection may still find the cap full
    // (and be closed at once): ask again for a while.
    let mut metrics = None;
    for _ in 0..50 {
        if let Ok(r) = http.get(format!("{base}/metrics")).send().await {
            if let Ok(t) = r.text().await {
                metrics = Some(t);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let metrics = metrics.expect("the relay answers /metrics after the flood");
    assert!(
        !metrics.contains("reason=\"accept_failed\""),
        "accept never failed for want of files"
    );
}
