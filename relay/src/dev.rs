//! `--dev`: generated secrets, a demo child and device, and a "try it" banner.
//!
//! Dev mode prints secrets and tokens to standard output on purpose (that is its job); they
//! never go to the log. Never run it in production.

use std::net::SocketAddr;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::app::App;
use crate::config::Config;
use crate::model::now_ms;
use crate::store::{ChildPatch, ChildWriter, Store};

/// The demo parent's user id.
pub const DEMO_PARENT: &str = "demo-parent";
/// The demo child's id.
pub const DEMO_CHILD: &str = "demo-child";

/// What dev mode prepared.
#[derive(Debug, Clone)]
pub struct DevInfo {
    /// A parent JWT for [`DEMO_PARENT`], valid 24 h.
    pub parent_token: String,
    /// A device token for the demo device.
    pub device_token: String,
    /// The demo device's id.
    pub device_id: String,
    /// The console's address with the parent token in its fragment (never sent to a server).
    pub console_url: String,
    /// The text printed at start.
    pub banner: String,
}

/// Fills the secrets that are missing with ones generated once and kept in the database's
/// `meta` table (next to the device-token key), so a restart keeps the tokens it printed
/// valid. Returns whether any was filled.
pub async fn fill_secrets(cfg: &mut Config, store: &Store) -> Result<bool, String> {
    let err = |e: crate::store::StoreError| format!("dev mode secrets: {e}");
    let mut generated = false;
    if cfg.jwt_secret.as_deref().unwrap_or("").is_empty()
        && cfg.jwt_alg.eq_ignore_ascii_case("HS256")
    {
        cfg.jwt_secret = Some(store.meta_secret("dev_jwt_secret").await.map_err(err)?);
        generated = true;
    }
    if cfg.server_key.as_deref().unwrap_or("").is_empty() {
        cfg.server_key = Some(store.meta_secret("dev_server_key").await.map_err(err)?);
        generated = true;
    }
    Ok(generated)
}

/// Creates the demo child and device (once) and builds the banner.
pub async fn prepare(
    app: &App,
    addr: SocketAddr,
    generated: bool,
    tls: bool,
) -> Result<DevInfo, String> {
    let now = now_ms();
    let store = &app.store;
    let err = |e: crate::store::StoreError| format!("dev mode setup: {e}");
    if store.child(DEMO_CHILD).await.map_err(err)?.is_none() {
        let patch = ChildPatch {
            name: Some("Demo child".into()),
            daily_limit_minutes: Some(Some(120)),
            timezone: Some("UTC".into()),
            guardians: Some(vec![DEMO_PARENT.into()]),
        };
        store
            .upsert_child(ChildWriter::Backend, DEMO_CHILD, patch, now)
            .await
            .map_err(err)?;
    }
    let devices = store.devices_of(DEMO_CHILD).await.map_err(err)?;
    let device = match devices
        .into_iter()
        .find(|d| !d.revoked && d.name == "Demo device")
    {
        Some(d) => d,
        None => store
            .create_device(DEMO_CHILD, "Demo device", "backend", now)
            .await
            .map_err(err)?,
    };
    let device_token = app.keys.issue_device_token(&device.id, DEMO_CHILD);
    let secret = app.cfg.jwt_secret.clone().unwrap_or_default();
    let mut claims = json!({
        // An admin, so the console's admin view shows in the demo.
        "sub": DEMO_PARENT, "email": "parent@example.com", "isAdmin": true,
        "exp": now / 1000 + 24 * 3600,
    });
    if let Some(iss) = &app.cfg.jwt_issuer {
        claims["iss"] = json!(iss);
    }
    if let Some(aud) = &app.cfg.jwt_audience {
        claims["aud"] = json!(aud);
    }
    let parent_token = if app.cfg.jwt_alg.eq_ignore_ascii_case("HS256") {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .map_err(|e| format!("dev mode: minting the parent token: {e}"))?
    } else {
        "(asymmetric --jwt-alg: mint parent tokens with your own private key)".into()
    };
    let (http, ws) = if tls {
        ("https", "wss")
    } else {
        ("http", "ws")
    };
    // A wildcard listen address is not one a browser can open.
    let shown = if addr.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], addr.port()))
    } else {
        addr
    };
    let base = format!("{http}://{shown}");
    let console_url = format!("{base}/#token={parent_token}");
    let demo = if tls || app.cfg.no_demo_device {
        format!(
            "  (no simulated device{}: run one with\n\
             \x20  cargo run -p agent-core --example device -- --relay {ws}://{shown} --token {device_token} --state-dir /tmp/safestream-demo-device)\n",
            if tls { " with TLS" } else { "" }
        )
    } else {
        format!("  a simulated device (\"Demo device\", agent-core in this process) is paired to {DEMO_CHILD} and online\n")
    };
    let secrets = if generated {
        format!(
            "  JWT secret:   {}\n  server key:   {}\n  (generated once, kept in the database; set SAFESTREAM_JWT_SECRET / SAFESTREAM_SERVER_KEY for your own)\n",
            app.cfg.jwt_secret.as_deref().unwrap_or("(from config)"),
            app.cfg.server_key.as_deref().unwrap_or("")
        )
    } else {
        "  secrets:      from your configuration\n".into()
    };
    let banner = format!(
        "\nSafeStream relay — DEV MODE (never use in production)\n\
         listening on {base}  (WebSocket: {ws}://{shown}/api/socket)\n\
         {secrets}\
         \n  Open the console (signed in as {DEMO_PARENT}):\n  {console_url}\n\n\
         {demo}\
         \n  parent token  (user {DEMO_PARENT}, admin, 24 h):\n  {parent_token}\n\
         \n  device token  (device {dev}, child {DEMO_CHILD}):\n  {device_token}\n\
         \nOr from a terminal: send a command as the parent, then see its status go PENDING -> DELIVERED -> EXECUTED\n\
         \x20 curl -s -X POST {base}/api/dashboard/remote-control -H 'Authorization: Bearer {parent_token}' -H 'Content-Type: application/json' -d '{{\"childId\":\"{DEMO_CHILD}\",\"commandType\":\"LOCK_DEVICE\"}}'\n\
         \x20 curl -s {base}/api/dashboard/remote-control -H 'Authorization: Bearer {parent_token}'\n\
         \nA notification from the backend (a toast in the console):\n\
         \x20 curl -s -X POST {base}/api/dashboard/notifications -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' -d '{{\"userId\":\"{DEMO_PARENT}\",\"type\":\"RESTRICTED_CONTENT\",\"title\":\"Blocked a video\",\"message\":\"From the backend\"}}'\n",
        dev = device.id,
        key = app.cfg.server_key.as_deref().unwrap_or(""),
    );
    Ok(DevInfo {
        parent_token,
        device_token,
        device_id: device.id.clone(),
        console_url,
        banner,
    })
}
