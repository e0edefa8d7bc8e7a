//! The `safestream-relay` binary itself: refusing to start without secrets, `--help`,
//! SIGKILL between a 201 and the device's connect, SIGTERM.

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
