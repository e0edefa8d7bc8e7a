//! Several relay processes on one PostgreSQL database and one Redis: the multi-node harness.
//!
//! PostgreSQL must be running (`scripts/services.sh start` starts a throwaway one and prints
//! `SAFESTREAM_TEST_PG`); each cluster gets a fresh database on it. Redis is started here, one
//! `redis-server` process per cluster on a free port, so a test can kill and restart it. A
//! test that needs them **fails** when either is missing: it never passes by skipping.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, Relay, R};

/// The PostgreSQL server URL for tests (an admin database on it); panics with the way to
/// get one when unset.
pub fn test_pg() -> String {
    match std::env::var("SAFESTREAM_TEST_PG") {
        Ok(u) if u.starts_with("postgres") => u,
        _ => panic!(
            "SAFESTREAM_TEST_PG is not set: the multi-node tests need PostgreSQL. Run \
             `eval \"$(scripts/services.sh start)\"` first (./scripts/test.sh does), or set it \
             to postgres://user@host:port/db of a server where the user may CREATE DATABASE."
        ),
    }
}

/// Creates a fresh database on the test server; returns its URL.
pub fn fresh_database() -> String {
    let admin = test_pg();
    let name = format!("c_{:016x}", rand::random::<u64>());
    let create = format!("CREATE DATABASE {name}");
    let a = admin.clone();
    std::thread::spawn(move || -> Result<(), String> {
        let mut c = postgres::Client::connect(&a, postgres::NoTls)
            .map_err(|e| format!("SAFESTREAM_TEST_PG={a}: cannot connect: {e}"))?;
        c.batch_execute(&create).map_err(|e| e.to_string())
    })
    .join()
    .unwrap_or_else(|_| Err("the database thread panicked".into()))
    .unwrap_or_else(|e| panic!("creating the cluster database: {e}"));
    let (base, _) = admin.rsplit_once('/').expect("URL ends with /<database>");
    format!("{base}/{name}")
}

/// A private `redis-server` on a free loopback port.
pub struct RedisServer {
    /// Its port (kept across restarts).
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one; panics when `redis-server` is not installed.
    pub fn start() -> RedisServer {
        let mut r = RedisServer {
            port: free_port(),
            child: None,
        };
        r.spawn();
        r
    }

    fn bin() -> String {
        std::env::var("SAFESTREAM_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
    }

    fn spawn(&mut self) {
        let child = Command::new(Self::bin())
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start redis-server ({e}): the multi-node tests need it \
                     (apt-get install redis-server)"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen in 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `redis://127.0.0.1:port/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILLs it (all its state is gone: it keeps nothing on disk).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `n` relay nodes sharing one fresh database and one Redis.
pub struct Cluster {
    /// Redis.
    pub redis: RedisServer,
    /// The nodes, `node-0`, `node-1`, ...
    pub nodes: Vec<Relay>,
    /// The database URL.
    pub db: String,
}

impl Cluster {
    /// Starts Redis and `n` nodes (`extra` environment for every node).
    pub async fn start(n: usize, extra: &[(&str, &str)]) -> R<Cluster> {
        let db = fresh_database();
        let redis = RedisServer::start();
        let url = redis.url();
        let mut nodes = Vec::new();
        for i in 0..n {
            let id = format!("node-{i}");
            let mut env = vec![
                ("SAFESTREAM_DB", db.as_str()),
                ("SAFESTREAM_REDIS", url.as_str()),
                ("SAFESTREAM_NODE_ID", id.as_str()),
            ];
            env.extend_from_slice(extra);
            nodes.push(Relay::start_with(env).await?);
        }
        Ok(Cluster { redis, nodes, db })
    }
}
