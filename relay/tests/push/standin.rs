//! Local stand-ins of the push providers for the tests, on 127.0.0.1:
//!
//! - FCM: the OAuth 2 token endpoint (it verifies the RS256 assertion with the service
//!   account's public key) and `POST /v1/projects/{project}/messages:send` (plain HTTP);
//! - APNs: `POST /3/device/{token}` over HTTP/2 with TLS (a self-signed certificate the relay
//!   is told to trust with `--push-ca-file`), verifying the ES256 provider token.
//!
//! Both record every send and answer as the test says ([`Mode`]). Keys and the certificate
//! are made by the `openssl` CLI, as `relay/tests/tls.rs` does.
//!
//! Shared by `relay/tests/push` and the multi-process suite (`tests/tests/push.rs`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, Version};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Router};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

/// The Firebase project of the stand-in.
pub const PROJECT: &str = "demo-project";
/// APNs key id, team id and topic the relay is configured with.
pub const KEY_ID: &str = "ABC123DEFG";
pub const TEAM_ID: &str = "TEAM123456";
pub const TOPIC: &str = "com.example.safestream";

/// How the stand-ins answer sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 200.
    Ok,
    /// The token is no longer valid (FCM 404 UNREGISTERED, APNs 410 Unregistered).
    Unregistered,
    /// 503 with `Retry-After: 1`.
    Down,
}

/// One send as received.
#[derive(Debug, Clone)]
pub struct Got {
    /// `fcm` or `apns`.
    pub provider: &'static str,
    /// The device token it was for.
    pub token: String,
    /// The JSON body.
    pub body: Value,
    /// The request's headers.
    pub headers: HeaderMap,
    /// Whether it came over HTTP/2.
    pub http2: bool,
    /// Whether its authorization verified.
    pub authorized: bool,
    /// What was answered.
    pub status: u16,
}

struct Shared {
    mode: Mutex<Mode>,
    got: Mutex<Vec<Got>>,
    rsa_public: Vec<u8>,
    ec_public: Vec<u8>,
    token_uri: Mutex<String>,
    oauth_tokens: AtomicU64,
}

/// Both stand-ins, their keys, and the relay flags that point at them.
pub struct Providers {
    shared: Arc<Shared>,
    /// The FCM base URL.
    pub fcm_base: String,
    /// The APNs base URL.
    pub apns_base: String,
    /// The service-account key file.
    pub service_account: PathBuf,
    /// The APNs `.p8` key.
    pub p8: PathBuf,
    /// The stand-in's certificate, to trust.
    pub ca: PathBuf,
    _dir: tempfile::TempDir,
}

fn openssl(args: &[&str], dir: &Path) {
    let ok = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("the openssl CLI is installed (.ci/run installs it)")
        .success();
    assert!(ok, "openssl {args:?}");
}

impl Providers {
    /// Makes keys and a certificate, starts both stand-ins.
    pub async fn start() -> Providers {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
                "-out",
                "sa.pem",
            ],
            d,
        );
        openssl(&["pkey", "-in", "sa.pem", "-pubout", "-out", "sa.pub"], d);
        openssl(
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "apns.p8",
            ],
            d,
        );
        openssl(
            &["pkey", "-in", "apns.p8", "-pubout", "-out", "apns.pub"],
            d,
        );
        openssl(
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-keyout",
                "tls.key",
                "-out",
                "tls.pem",
            ],
            d,
        );
        let shared = Arc::new(Shared {
            mode: Mutex::new(Mode::Ok),
            got: Mutex::new(Vec::new()),
            rsa_public: std::fs::read(d.join("sa.pub")).unwrap(),
            ec_public: std::fs::read(d.join("apns.pub")).unwrap(),
            token_uri: Mutex::new(String::new()),
            oauth_tokens: AtomicU64::new(0),
        });
        let fcm = fcm_router(shared.clone());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fcm_addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(l, fcm).await;
        });
        let token_uri = format!("http://{fcm_addr}/token");
        *shared.token_uri.lock().unwrap() = token_uri.clone();
        let sa = json!({
            "type": "service_account",
            "project_id": PROJECT,
            "private_key_id": "k1",
            "private_key": std::fs::read_to_string(d.join("sa.pem")).unwrap(),
            "client_email": format!("relay@{PROJECT}.iam.gserviceaccount.com"),
            "token_uri": token_uri,
        });
        std::fs::write(d.join("sa.json"), sa.to_string()).unwrap();
        let apns_addr = serve_apns(shared.clone(), &d.join("tls.pem"), &d.join("tls.key")).await;
        Providers {
            shared,
            fcm_base: format!("http://{fcm_addr}"),
            apns_base: format!("https://{apns_addr}"),
            service_account: d.join("sa.json"),
            p8: d.join("apns.p8"),
            ca: d.join("tls.pem"),
            _dir: dir,
        }
    }

    /// The relay flags that point at the stand-ins, as `(flag, value)` pairs.
    pub fn flags(&self) -> Vec<(String, String)> {
        let p = |s: &Path| s.to_string_lossy().to_string();
        vec![
            ("--fcm-service-account".into(), p(&self.service_account)),
            ("--fcm-base-url".into(), self.fcm_base.clone()),
            ("--apns-key".into(), p(&self.p8)),
            ("--apns-key-id".into(), KEY_ID.into()),
            ("--apns-team-id".into(), TEAM_ID.into()),
            ("--apns-topic".into(), TOPIC.into()),
            ("--apns-base-url".into(), self.apns_base.clone()),
            ("--push-ca-file".into(), p(&self.ca)),
        ]
    }

    /// The same as environment variables (`SAFESTREAM_FCM_SERVICE_ACCOUNT`, ...), for relay
    /// processes.
    pub fn env(&self) -> Vec<(String, String)> {
        self.flags()
            .into_iter()
            .map(|(flag, v)| {
                let name = flag
                    .trim_start_matches("--")
                    .replace('-', "_")
                    .to_uppercase();
                (format!("SAFESTREAM_{name}"), v)
            })
            .collect()
    }

    /// How sends are answered from now on.
    pub fn set_mode(&self, m: Mode) {
        *self.shared.mode.lock().unwrap() = m;
    }

    /// Every send so far.
    pub fn got(&self) -> Vec<Got> {
        self.shared.got.lock().unwrap().clone()
    }

    /// Sends for `token` that were answered 200.
    pub fn delivered_to(&self, token: &str) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| g.token == token && g.status == 200)
            .collect()
    }

    /// OAuth access tokens issued.
    pub fn oauth_tokens(&self) -> u64 {
        self.shared.oauth_tokens.load(Ordering::SeqCst)
    }

    /// Waits until `n` sends to `token` were answered 200 (or `wait` passes).
    pub async fn wait_delivered(&self, token: &str, n: usize, wait: Duration) -> Vec<Got> {
        let end = tokio::time::Instant::now() + wait;
        loop {
            let got = self.delivered_to(token);
            if got.len() >= n || tokio::time::Instant::now() >= end {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until some send to `token` was made (any answer).
    pub async fn wait_any(&self, token: &str, wait: Duration) -> Vec<Got> {
        let end = tokio::time::Instant::now() + wait;
        loop {
            let got: Vec<Got> = self
                .got()
                .into_iter()
                .filter(|g| g.token == token)
                .collect();
            if !got.is_empty() || tokio::time::Instant::now() >= end {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn answer(s: &Shared, provider: &'static str) -> (u16, Value, Option<&'static str>) {
    let mode = *s.mode.lock().unwrap();
    match (mode, provider) {
        (Mode::Ok, "fcm") => (
            200,
            json!({"name": format!("projects/{PROJECT}/messages/1")}),
            None,
        ),
        (Mode::Ok, _) => (200, Value::Null, None),
        (Mode::Unregistered, "fcm") => (
            404,
            json!({"error": {"code": 404, "status": "NOT_FOUND", "details": [
                {"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": "UNREGISTERED"}]}}),
            None,
        ),
        (Mode::Unregistered, _) => (410, json!({"reason": "Unregistered", "timestamp": 1}), None),
        (Mode::Down, _) => (503, json!({"reason": "ServiceUnavailable"}), Some("1")),
    }
}

fn reply(status: u16, body: Value, retry_after: Option<&'static str>) -> Response {
    let mut r = (
        StatusCode::from_u16(status).unwrap(),
        if body.is_null() {
            String::new()
        } else {
            body.to_string()
        },
    )
        .into_response();
    if let Some(a) = retry_after {
        r.headers_mut().insert("retry-after", a.parse().unwrap());
    }
    r
}

fn fcm_router(s: Arc<Shared>) -> Router {
    Router::new()
        .route("/token", post(fcm_token))
        .route("/v1/projects/{project}/messages:send", post(fcm_send))
        .with_state(s)
}

async fn fcm_token(State(s): State<Arc<Shared>>, Form(f): Form<Vec<(String, String)>>) -> Response {
    let get = |k: &str| f.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let grant_ok =
        get("grant_type").as_deref() == Some("urn:ietf:params:oauth:grant-type:jwt-bearer");
    let uri = s.token_uri.lock().unwrap().clone();
    let mut v = Validation::new(Algorithm::RS256);
    v.set_audience(&[uri]);
    v.set_required_spec_claims(&["exp", "iat", "aud", "iss"]);
    let key = DecodingKey::from_rsa_pem(&s.rsa_public).unwrap();
    let ok = get("assertion")
        .and_then(|a| jsonwebtoken::decode::<Value>(&a, &key, &v).ok())
        .is_some_and(|t| {
            t.claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
                && t.claims["iss"] == format!("relay@{PROJECT}.iam.gserviceaccount.com")
        });
    if !grant_ok || !ok {
        return reply(400, json!({"error": "invalid_grant"}), None);
    }
    let n = s.oauth_tokens.fetch_add(1, Ordering::SeqCst) + 1;
    reply(
        200,
        json!({"access_token": format!("ya29.standin-{n}"), "expires_in": 3599, "token_type": "Bearer"}),
        None,
    )
}

async fn fcm_send(
    State(s): State<Arc<Shared>>,
    UrlPath(project): UrlPath<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorized = project == PROJECT
        && headers
            .get("authorization")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h.starts_with("Bearer ya29.standin-"));
    let (status, answer, after) = if authorized {
        answer(&s, "fcm")
    } else {
        (401, json!({"error": {"status": "UNAUTHENTICATED"}}), None)
    };
    s.got.lock().unwrap().push(Got {
        provider: "fcm",
        token: body["message"]["token"].as_str().unwrap_or("").to_string(),
        body,
        headers,
        http2: version == Version::HTTP_2,
        authorized,
        status,
    });
    reply(status, answer, after)
}

async fn apns_send(
    State(s): State<Arc<Shared>>,
    UrlPath(token): UrlPath<String>,
    version: Version,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let key = DecodingKey::from_ec_pem(&s.ec_public).unwrap();
    let mut v = Validation::new(Algorithm::ES256);
    v.required_spec_claims.clear();
    v.validate_exp = false;
    let authorized = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("bearer "))
        .and_then(|t| jsonwebtoken::decode::<Value>(t, &key, &v).ok())
        .is_some_and(|t| t.header.kid.as_deref() == Some(KEY_ID) && t.claims["iss"] == TEAM_ID);
    let (status, answer, after) = if authorized {
        answer(&s, "apns")
    } else {
        (403, json!({"reason": "InvalidProviderToken"}), None)
    };
    s.got.lock().unwrap().push(Got {
        provider: "apns",
        token,
        body,
        headers,
        http2: version == Version::HTTP_2,
        authorized,
        status,
    });
    reply(status, answer, after)
}

/// Serves the APNs stand-in over TLS (ALPN h2) on 127.0.0.1.
async fn serve_apns(s: Arc<Shared>, cert: &Path, key: &Path) -> SocketAddr {
    use tokio_rustls::rustls;
    let certs: Vec<_> = rustls_pemfile::certs(&mut std::fs::read(cert).unwrap().as_slice())
        .map(|c| c.unwrap())
        .collect();
    let key = rustls_pemfile::private_key(&mut std::fs::read(key).unwrap().as_slice())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let router = Router::new()
        .route("/3/device/{token}", post(apns_send))
        .with_state(s);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = l.accept().await else {
                return;
            };
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .http2_only()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                .await;
            });
        }
    });
    addr
}
