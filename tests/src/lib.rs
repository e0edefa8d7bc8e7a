//! End-to-end test support: the real `safestream-relay` binary, simulated devices (the
//! `agent-core` `device` example as a child process) and a parent client (REST + WebSocket
//! with an HS256 JWT minted from the test's secret).
//!
//! # Layout
//!
//! - [`Relay`] — builds (once) and runs the relay on a free 127.0.0.1 port with an explicit
//!   config (no dev mode), SIGKILLs and restarts it on the same database.
//! - [`Device`] — runs the simulated device and collects its JSON lines.
//! - [`World`] — the common fixture: a relay, one family, one registered device.
//! - [`Parent`] / [`Backend`] — REST calls as a parent (JWT) or as the backend (server key);
//!   [`ParentSocket`] — a parent's WebSocket: waits for events and `command:status`
//!   transitions, resumes from its last position after a relay restart.
//!
//! Every wait is bounded; every process is killed on drop.

#![warn(missing_docs)]

pub mod cluster;
mod device;
pub mod proxy;
mod socket;
mod world;

pub use device::Device;
pub use socket::{open_socket, ParentSocket};
pub use world::World;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// The HS256 secret shared by the relay and the tests' "main app".
pub const JWT_SECRET: &str = "e2e-test-secret-0123456789abcdef0123456789";
/// The backend's server key.
pub const SERVER_KEY: &str = "e2e-server-key-fedcba9876543210fedcba";

/// Result type of the helpers.
pub type R<T> = Result<T, String>;

pub(crate) fn target_debug() -> PathBuf {
    // The test binary lives in <target>/debug/deps/.
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target/debug"))
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

static BUILD: Once = Once::new();

/// The relay binary: `SAFESTREAM_RELAY_BIN` when set, else the workspace's build.
pub fn relay_bin() -> PathBuf {
    std::env::var_os("SAFESTREAM_RELAY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_debug().join("safestream-relay"))
}

/// Builds the relay binary (unless `SAFESTREAM_RELAY_BIN` names one) and the device
/// example once per test process, in the tests' own target dir.
pub fn build_binaries() {
    BUILD.call_once(|| {
        let prebuilt = std::env::var_os("SAFESTREAM_RELAY_BIN").is_some();
        let target = target_debug()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| workspace_root().join("target"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        for args in [
            &["build", "-p", "relay", "--bin", "safestream-relay"][..],
            &["build", "-p", "agent-core", "--example", "device"][..],
        ] {
            if prebuilt && args[2] == "relay" {
                continue;
            }
            let status = Command::new(&cargo)
                .args(args)
                .current_dir(workspace_root())
                .env("CARGO_TARGET_DIR", &target)
                .status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "cargo {args:?} failed: {status:?}"
            );
        }
    });
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Collected stdout lines of a child process.
#[derive(Clone, Default)]
pub struct Lines(Arc<Mutex<Vec<(Instant, String)>>>);

impl Lines {
    fn spawn_reader(&self, out: impl std::io::Read + Send + 'static, echo: &'static str) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if std::env::var_os("E2E_VERBOSE").is_some() {
                    eprintln!("[{echo}] {line}");
                }
                if let Ok(mut l) = lines.lock() {
                    l.push((Instant::now(), line));
                }
            }
        });
    }

    /// All lines so far.
    pub fn all(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|l| l.iter().map(|(_, s)| s.clone()).collect())
            .unwrap_or_default()
    }

    /// All JSON-object lines with the instant each was read.
    pub fn timed_json(&self) -> Vec<(Instant, Value)> {
        self.0
            .lock()
            .map(|l| {
                l.iter()
                    .filter_map(|(t, s)| serde_json::from_str::<Value>(s).ok().map(|v| (*t, v)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// All lines that are JSON objects.
    pub fn json(&self) -> Vec<Value> {
        self.all()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }
}

/// The relay process.
pub struct Relay {
    /// The port it listens on (kept across restarts).
    pub port: u16,
    /// Its working directory and database.
    pub dir: tempfile::TempDir,
    child: Option<Child>,
    /// Its stdout and stderr lines.
    pub logs: Lines,
    extra_env: Vec<(String, String)>,
    /// The CA (PEM) that signed the relay's certificate when it serves TLS.
    pub ca_pem: Option<String>,
}

impl Relay {
    /// Starts a relay on a free port with a fresh database.
    pub async fn start() -> R<Relay> {
        Self::start_with(vec![]).await
    }

    /// Starts a relay with extra environment variables.
    pub async fn start_with(extra_env: Vec<(&str, &str)>) -> R<Relay> {
        build_binaries();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut relay = Relay {
            port: free_port(),
            dir,
            child: None,
            logs: Lines::default(),
            extra_env: extra_env
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            ca_pem: None,
        };
        relay.spawn().await?;
        Ok(relay)
    }

    /// Starts a relay serving HTTPS/WSS with a certificate for 127.0.0.1 signed by a
    /// private CA made here with the `openssl` CLI (a self-hosted relay).
    pub async fn start_tls() -> R<Relay> {
        build_binaries();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let d = dir.path();
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .map_err(|e| e.to_string())?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let steps: Vec<Vec<&str>> = vec![
            [
                &["req", "-x509"][..],
                &ec[..],
                &[
                    "-days",
                    "1",
                    "-subj",
                    "/CN=SafeStream Test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                ][..],
            ]
            .concat(),
            [
                &["req"][..],
                &ec[..],
                &[
                    "-subj",
                    "/CN=localhost",
                    "-keyout",
                    "key.pem",
                    "-out",
                    "leaf.csr",
                ][..],
            ]
            .concat(),
            vec![
                "x509",
                "-req",
                "-in",
                "leaf.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-out",
                "cert.pem",
                "-extfile",
                "ext.cnf",
            ],
        ];
        for args in steps {
            let ok = Command::new("openssl")
                .args(&args)
                .current_dir(d)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if !ok {
                return Err(format!(
                    "openssl {args:?} failed (is the openssl CLI installed?)"
                ));
            }
        }
        let ca_pem = std::fs::read_to_string(d.join("ca.pem")).map_err(|e| e.to_string())?;
        let mut relay = Relay {
            port: free_port(),
            extra_env: vec![
                (
                    "SAFESTREAM_TLS_CERT".into(),
                    d.join("cert.pem").to_string_lossy().into_owned(),
                ),
                (
                    "SAFESTREAM_TLS_KEY".into(),
                    d.join("key.pem").to_string_lossy().into_owned(),
                ),
            ],
            dir,
            child: None,
            logs: Lines::default(),
            ca_pem: Some(ca_pem),
        };
        relay.spawn().await?;
        Ok(relay)
    }

    /// An HTTP client that trusts the relay (its CA when it serves TLS).
    pub fn http_client(&self, timeout: Duration) -> reqwest::Client {
        let mut b = reqwest::Client::builder().timeout(timeout);
        if let Some(pem) = &self.ca_pem {
            if let Ok(cert) = reqwest::Certificate::from_pem(pem.as_bytes()) {
                b = b.add_root_certificate(cert);
            }
        }
        b.build().unwrap_or_default()
    }

    async fn spawn(&mut self) -> R<()> {
        let db = self.dir.path().join("relay.db");
        let mut cmd = Command::new(relay_bin());
        cmd.env("SAFESTREAM_LISTEN", format!("127.0.0.1:{}", self.port))
            .env("SAFESTREAM_DB", db.to_string_lossy().as_ref())
            .env("SAFESTREAM_JWT_SECRET", JWT_SECRET)
            .env("SAFESTREAM_SERVER_KEY", SERVER_KEY)
            .env("RUST_LOG", "info")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().map_err(|e| format!("spawn relay: {e}"))?;
        if let Some(o) = child.stdout.take() {
            self.logs.spawn_reader(o, "relay");
        }
        if let Some(e) = child.stderr.take() {
            self.logs.spawn_reader(e, "relay");
        }
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = self.http_client(Duration::from_secs(5));
        while Instant::now() < deadline {
            if let Ok(r) = client.get(format!("{}/readyz", self.http())).send().await {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    return Err(format!(
                        "relay exited: {status}; logs: {:?}",
                        self.logs.all()
                    ));
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!(
            "relay not ready in 30 s; logs: {:?}",
            self.logs.all()
        ))
    }

    /// `http://127.0.0.1:port` (`https` with TLS)
    pub fn http(&self) -> String {
        let s = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{s}://127.0.0.1:{}", self.port)
    }

    /// `ws://127.0.0.1:port` (`wss` with TLS)
    pub fn ws(&self) -> String {
        let s = if self.ca_pem.is_some() { "wss" } else { "ws" };
        format!("{s}://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the relay.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes (`SIGSTOP`, `true`) or thaws (`SIGCONT`, `false`) the relay: its sockets
    /// stay open but nothing answers, like a relay behind a dead network path.
    pub fn freeze(&mut self, frozen: bool) {
        if let Some(c) = self.child.as_ref() {
            let sig = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
            if let Ok(pid) = libc::pid_t::try_from(c.id()) {
                // SAFETY: sending a signal to our own child process.
                unsafe {
                    libc::kill(pid, sig);
                }
            }
        }
    }

    /// Starts it again on the same port and database.
    pub async fn restart(&mut self) -> R<()> {
        self.kill();
        self.spawn().await
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

pub(crate) fn tail(v: &[String], n: usize) -> Vec<String> {
    v[v.len().saturating_sub(n)..].to_vec()
}

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Runs a test body with a time limit: it fails (panics with the error) instead of hanging.
/// The binaries are built first, outside the limit (on a fresh clone that build takes longer
/// than any test's limit).
pub async fn bounded(limit: Duration, f: impl std::future::Future<Output = R<()>>) {
    build_binaries();
    match tokio::time::timeout(limit, f).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e}"),
        Err(_) => panic!("test did not finish in {limit:?}"),
    }
}

/// Mints a parent JWT (HS256, the test's secret).
pub fn parent_jwt(user_id: &str) -> String {
    let claims = json!({"sub": user_id, "email": format!("{user_id}@example.com"), "isAdmin": false, "exp": now_s() + 3600, "iat": now_s()});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap_or_default()
}

/// A REST caller with a bearer credential.
#[derive(Clone)]
pub struct Client {
    base: String,
    bearer: String,
    http: reqwest::Client,
}

impl Client {
    /// A client of `relay` with `bearer`.
    pub fn new(relay: &Relay, bearer: &str) -> Self {
        Self {
            base: relay.http(),
            bearer: bearer.to_owned(),
            http: relay.http_client(Duration::from_secs(40)),
        }
    }

    /// Calls `method path` with an optional JSON body; returns (status, body).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> R<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .bearer_auth(&self.bearer);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, v))
    }

    /// Like `call` but requires a 2xx.
    /// A 429 (the test itself polling faster than the relay's per-user rate) is retried
    /// for up to 10 s.
    pub async fn ok(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> R<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, v) = self.call(method.clone(), path, body.clone()).await?;
            if (200..300).contains(&status) {
                return Ok(v);
            }
            if status != 429 || Instant::now() >= deadline {
                return Err(format!("{path}: {status} {v}"));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The backend (server key): registers children and devices.
pub struct Backend(
    /// REST with the server key.
    pub Client,
);

impl Backend {
    /// The backend of `relay`.
    pub fn new(relay: &Relay) -> Self {
        Self(Client::new(relay, SERVER_KEY))
    }

    /// Creates child `child` with `guardian`.
    pub async fn child(&self, child: &str, guardian: &str) -> R<()> {
        self.0
            .ok(
                reqwest::Method::PUT,
                &format!("/api/children/{child}"),
                Some(json!({"name": format!("Child {child}"), "guardians": [guardian]})),
            )
            .await
            .map(|_| ())
    }

    /// Issues a device token; returns (deviceId, token).
    pub async fn device(&self, child: &str, name: &str) -> R<(String, String)> {
        let v = self
            .0
            .ok(
                reqwest::Method::POST,
                &format!("/api/children/{child}/devices"),
                Some(json!({"name": name})),
            )
            .await?;
        match (v["deviceId"].as_str(), v["token"].as_str()) {
            (Some(d), Some(t)) => Ok((d.to_owned(), t.to_owned())),
            _ => Err(format!("unexpected device answer {v}")),
        }
    }

    /// Revokes a device.
    pub async fn revoke(&self, device: &str) -> R<()> {
        self.0
            .ok(
                reqwest::Method::DELETE,
                &format!("/api/devices/{device}"),
                None,
            )
            .await
            .map(|_| ())
    }
}

/// A parent (dashboard user).
pub struct Parent {
    /// The user id.
    pub user: String,
    /// Its JWT.
    pub jwt: String,
    /// REST as this parent.
    pub api: Client,
}

impl Parent {
    /// Parent `user` of `relay`.
    pub fn new(relay: &Relay, user: &str) -> Self {
        let jwt = parent_jwt(user);
        Self {
            user: user.to_owned(),
            api: Client::new(relay, &jwt),
            jwt,
        }
    }

    /// Sends a command; returns its id.
    pub async fn command(&self, child: &str, ty: &str, expires_in: u64) -> R<String> {
        let v = self
            .api
            .ok(
                reqwest::Method::POST,
                "/api/dashboard/remote-control",
                Some(json!({"childId": child, "commandType": ty, "payload": {}, "expiresInSeconds": expires_in})),
            )
            .await?;
        v["command"]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("unexpected command answer {v}"))
    }

    /// The command as the relay has it.
    pub async fn get_command(&self, id: &str) -> R<Value> {
        let v = self
            .api
            .ok(
                reqwest::Method::GET,
                &format!("/api/dashboard/remote-control/{id}"),
                None,
            )
            .await?;
        Ok(v["command"].clone())
    }

    /// Polls REST (`GET /api/dashboard/remote-control/{id}`) until command `id` has
    /// `status`; returns it. For tests about the REST view; a test following a command's
    /// status transitions watches the parent's socket ([`ParentSocket::wait_status`]).
    pub async fn wait_status(&self, id: &str, status: &str, timeout: Duration) -> R<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.get_command(id).await?;
            if c["status"] == status {
                return Ok(c);
            }
            if Instant::now() >= deadline {
                return Err(format!("command {id} is {c}, wanted {status}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens the parent's WebSocket (first-frame auth) and waits for `ready`.
    pub async fn socket(&self, relay: &Relay) -> R<ParentSocket> {
        open_socket(relay, &self.jwt, None).await
    }
}
