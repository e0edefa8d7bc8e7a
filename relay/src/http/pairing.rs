//! Device pairing: a device asks for a code, a parent claims and approves it, the device
//! collects its token. See `docs/protocol.md#pairing`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::{reply, ApiPath, ApiQuery, Caller, JsonBody};
use crate::app::App;
use crate::auth::bearer;
use crate::error::ApiError;
use crate::model::{now_ms, rfc3339};
use crate::store::{Pairing, PairingStatus, StoreError};
use wire::rest::{ApprovePairing, ClaimPairing, CreatePairing, FromBody};
use wire::validate::check_id;

/// Letters and digits that cannot be confused when read aloud or typed.
const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
const CODE_LEN: usize = 8;
const PAIRING_TTL_MS: i64 = 10 * 60 * 1000;

fn new_code() -> String {
    let mut rng = rand::thread_rng();
    (0..CODE_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Normalizes an entered code: case-insensitive, dashes and spaces ignored.
fn normalize_code(s: &str) -> Option<String> {
    let c: String = s
        .chars()
        .filter(|c| *c != '-' && !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (c.len() == CODE_LEN && c.bytes().all(|b| ALPHABET.contains(&b))).then_some(c)
}

fn display_code(c: &str) -> String {
    format!("{}-{}", &c[..4], &c[4..])
}

fn hash_secret(secret: &str) -> String {
    Sha256::digest(secret.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `POST /api/pairing` — no credential; rate limited per source address.
pub async fn create(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: axum::http::HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let client_ip = app.client_ip(peer.ip(), &headers);
    let device_name = CreatePairing::from_body(&body)?
        .device_name
        .unwrap_or_else(|| "New device".into());
    if app.limits.pairing_by_ip.check_key(&client_ip).is_err() {
        return Err(ApiError::rate_limited(
            "too many pairing requests from this address",
            60,
        ));
    }
    let mut secret = [0u8; 32];
    rand::thread_rng().fill(&mut secret);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret);
    let now = now_ms();
    for _ in 0..5 {
        let p = Pairing {
            id: uuid::Uuid::new_v4().to_string(),
            code: new_code(),
            secret_hash: hash_secret(&secret),
            device_name: device_name.clone(),
            status: PairingStatus::Pending,
            claimed_by: None,
            child_id: None,
            device_id: None,
            expires_at: now + PAIRING_TTL_MS,
        };
        match app.store.create_pairing(&p, now).await {
            Ok(()) => {
                return Ok(reply(
                    StatusCode::CREATED,
                    json!({"pairingId": p.id, "code": display_code(&p.code), "secret": secret, "expiresAt": rfc3339(p.expires_at)}),
                ))
            }
            Err(StoreError::Conflict(_)) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::internal())
}

/// `POST /api/pairing/claim` — a parent enters the code (optionally approving at once).
pub async fn claim(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let user = caller.parent()?.to_string();
    let ClaimPairing { code, child_id } = ClaimPairing::from_body(&body)?;
    let code = normalize_code(&code)
        .ok_or_else(|| ApiError::bad_request("code must be the 8 characters the device shows"))?;
    if app.limits.pairing_claims.check_key(&user).is_err() {
        return Err(ApiError::rate_limited(
            "too many pairing codes entered; wait a few minutes",
            60,
        ));
    }
    let (p, device) = app
        .store
        .claim_pairing(&code, &user, child_id, now_ms())
        .await?;
    match device {
        None => Ok(reply(
            StatusCode::OK,
            json!({"pairing": {"id": p.id, "deviceName": p.device_name, "status": p.status.as_str(), "expiresAt": rfc3339(p.expires_at)}}),
        )),
        Some(d) => Ok(reply(
            StatusCode::CREATED,
            json!({"deviceId": d.id, "childId": d.child_id, "pairingId": p.id}),
        )),
    }
}

/// `POST /api/pairing/{id}/approve`.
pub async fn approve(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    check_id("pairingId", &id)?;
    let user = caller.parent()?;
    let ApprovePairing { child_id, name } = ApprovePairing::from_body(&body)?;
    let d = app
        .store
        .approve_pairing(&id, user, &child_id, name, now_ms())
        .await?;
    tracing::info!(device_id = %d.id, child_id = %d.child_id, "device paired");
    Ok(reply(
        StatusCode::CREATED,
        json!({"deviceId": d.id, "childId": d.child_id}),
    ))
}

/// `POST /api/pairing/{id}/reject`.
pub async fn reject(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_id("pairingId", &id)?;
    let user = caller.parent()?;
    app.store.reject_pairing(&id, user, now_ms()).await?;
    Ok(reply(StatusCode::OK, json!({"status": "REJECTED"})))
}

/// `GET /api/pairing/{id}?wait=N` — the device long-polls with its pairing secret.
pub async fn wait(
    State(app): State<Arc<App>>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    check_id("pairingId", &id)?;
    let wait_secs = match q.get("wait") {
        Some(w) => w
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= 30)
            .ok_or_else(|| ApiError::bad_request("wait must be an integer from 0 to 30"))?,
        None => 0,
    };
    let secret = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)
        .ok_or_else(|| {
            ApiError::unauthorized("send the pairing secret as Authorization: Bearer <secret>")
        })?;
    let want = hash_secret(secret);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait_secs);
    let mut shutdown = app.shutdown_signal();
    loop {
        let p = app
            .store
            .pairing(&id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such pairing"))?;
        if !bool::from(p.secret_hash.as_bytes().ct_eq(want.as_bytes())) {
            return Err(ApiError::unauthorized("wrong pairing secret"));
        }
        if p.expires_at <= now_ms() {
            return Err(ApiError::gone("the pairing expired; ask for a new code"));
        }
        match p.status {
            PairingStatus::Approved => {
                let (device_id, child_id) = (
                    p.device_id.unwrap_or_default(),
                    p.child_id.unwrap_or_default(),
                );
                let token = app.keys.issue_device_token(&device_id, &child_id);
                return Ok(reply(
                    StatusCode::OK,
                    json!({"status": "APPROVED", "deviceId": device_id, "childId": child_id, "token": token}),
                ));
            }
            PairingStatus::Rejected => {
                return Ok(reply(StatusCode::OK, json!({"status": "REJECTED"})))
            }
            PairingStatus::Pending | PairingStatus::Claimed => {
                if tokio::time::Instant::now() >= deadline || app.is_shutting_down() {
                    return Ok(reply(
                        StatusCode::OK,
                        json!({"status": p.status.as_str(), "expiresAt": rfc3339(p.expires_at)}),
                    ));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        let c = new_code();
        assert_eq!(c.len(), 8);
        assert_eq!(
            normalize_code(&display_code(&c)).as_deref(),
            Some(c.as_str())
        );
        assert_eq!(normalize_code("k7qf-m2xd").as_deref(), Some("K7QFM2XD"));
        assert_eq!(normalize_code("K7QF M2XD").as_deref(), Some("K7QFM2XD"));
        assert_eq!(normalize_code("K7QF-M2X"), None);
        assert_eq!(normalize_code("K7QF-M2X0"), None); // 0 is not in the alphabet
    }
}
