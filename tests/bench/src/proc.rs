//! The relay under test as a child process, and CPU / memory readings from `/proc`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Secrets the bench starts the relay with.
pub const SECRET: &str = "bench-jwt-secret-0123456789abcdef";
/// The backend key.
pub const SERVER_KEY: &str = "bench-server-key-0123456789abcdef";

/// Clock ticks per second for `/proc/<pid>/stat`.
fn clk_tck() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// User + system CPU seconds of a process.
pub fn cpu_secs(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / clk_tck()
}

/// Resident memory of a process in KiB.
pub fn rss_kib(pid: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A running relay process.
pub struct RelayProc {
    child: Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    bin: PathBuf,
    db: PathBuf,
    env: Vec<(String, String)>,
}

impl RelayProc {
    /// Starts `bin` on `addr` with database `db` and extra variables.
    pub async fn start(bin: &Path, addr: &str, db: &Path, env: &[(String, String)]) -> RelayProc {
        let child = spawn(bin, addr, db, env).await;
        RelayProc {
            child,
            addr: addr.to_string(),
            bin: bin.to_path_buf(),
            db: db.to_path_buf(),
            env: env.to_vec(),
        }
    }

    /// Its pid as a string (for `/proc`).
    pub fn pid(&self) -> String {
        self.child.id().map(|p| p.to_string()).unwrap_or_default()
    }

    /// CPU seconds used so far.
    pub fn cpu(&self) -> f64 {
        cpu_secs(&self.pid())
    }

    /// Resident memory now, KiB.
    pub fn rss(&self) -> u64 {
        rss_kib(&self.pid())
    }

    /// SIGKILL, then start again on the same address and database.
    pub async fn kill_and_restart(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        self.child = spawn(&self.bin, &self.addr, &self.db, &self.env).await;
    }

    /// SIGKILL and wait.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

async fn spawn(bin: &Path, addr: &str, db: &Path, env: &[(String, String)]) -> Child {
    // A `.mjs` server (the Node Socket.IO baseline in `tests/bench/node-baseline`) runs
    // under `node` from this process's PATH.
    let node = bin.extension().is_some_and(|e| e == "mjs");
    let mut cmd = if node {
        let mut c = Command::new("node");
        c.arg(bin);
        c
    } else if bin.file_name().is_some_and(|n| n == "relay-bench") {
        // relay-bench itself: the round trip's floor server (`rtfloor.rs`).
        let mut c = Command::new(bin);
        c.arg("--rt-floor-serve");
        c
    } else {
        Command::new(bin)
    };
    cmd.env_clear();
    if node {
        cmd.env("PATH", std::env::var_os("PATH").unwrap_or_default());
    }
    cmd.env("SAFESTREAM_LISTEN", addr)
        .env("SAFESTREAM_DB", db)
        .env("SAFESTREAM_JWT_SECRET", SECRET)
        .env("SAFESTREAM_SERVER_KEY", SERVER_KEY)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
    let stdout = child.stdout.take().expect("stdout piped");
    let mut lines = BufReader::new(stdout).lines();
    match tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await {
        Ok(Ok(Some(l))) if l.contains("listening") => {}
        other => panic!("the relay did not start: {other:?}"),
    }
    // Keep draining stdout so the relay never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}
