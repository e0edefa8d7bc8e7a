//! Notifications, screen time, restricted-content attempts, and the publish API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{reply, ApiPath, ApiQuery, Caller, JsonBody};
use crate::app::App;
use crate::auth::Actor;
use crate::bus::{room, BusMessage, OutFrame};
use crate::error::ApiError;
use crate::model::{
    check_id, now_ms, opt_int, opt_object, opt_str, req_str, require_object, valid_id,
    NOTIFICATION_TYPES,
};
use crate::store::NewNotification;

/// Event names that belong to the socket protocol itself; the publish API refuses them.
const CONTROL_EVENTS: &[&str] = &[
    "auth",
    "auth:refresh",
    "auth:refreshed",
    "ready",
    "resync",
    "error",
    "ping",
    "pong",
    "heartbeat",
];

/// `POST /api/dashboard/notifications`.
pub async fn create_notification(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.backend()?;
    require_object(&body)?;
    let user_id = match body.get("userId") {
        Some(Value::String(s)) if valid_id(s) => s.clone(),
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => n.to_string(),
        _ => return Err(ApiError::bad_request("userId must be a user id")),
    };
    let kind = req_str(&body, "type", 64)?;
    if !NOTIFICATION_TYPES.contains(&kind.as_str()) {
        return Err(ApiError::bad_request(format!(
            "type must be one of {}",
            NOTIFICATION_TYPES.join(", ")
        )));
    }
    let title = req_str(&body, "title", 200)?;
    let message = opt_str(&body, "message", 0, 2000)?.unwrap_or_default();
    let metadata = opt_object(&body, "metadata", 8 * 1024)?;
    let n = NewNotification {
        user_id,
        kind,
        title,
        message,
        metadata,
    };
    let notif = app.store.create_notification(n, now_ms()).await?;
    Ok(reply(StatusCode::CREATED, json!({"notification": notif})))
}

/// `GET /api/dashboard/notifications`.
pub async fn list_notifications(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let user = caller.parent()?;
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 200"))?,
        None => 50,
    };
    let before = q.get("before");
    if let Some(b) = before {
        check_id("before", b)?;
    }
    let list = app
        .store
        .list_notifications(user, limit, before.map(String::as_str))
        .await?;
    Ok(reply(StatusCode::OK, json!({"notifications": list})))
}

/// `POST /api/dashboard/notifications/{id}/read`.
pub async fn mark_read(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_id("id", &id)?;
    let user = caller.parent()?;
    let n = app.store.mark_read(user, &id, now_ms()).await?;
    Ok(reply(StatusCode::OK, json!({"notification": n})))
}

/// `POST /api/dashboard/screen-time`.
pub async fn screen_time(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    require_object(&body)?;
    let child_id = req_str(&body, "childId", 128)?;
    check_id("childId", &child_id)?;
    let minutes = opt_int(&body, "minutesUsed", 0, 1440)?.ok_or_else(|| {
        ApiError::bad_request("minutesUsed is required (an integer from 0 to 1440)")
    })?;
    match &caller.0 {
        Actor::Backend => {}
        Actor::Device { child_id: own, .. } if *own == child_id => {}
        Actor::Device { .. } => {
            return Err(ApiError::forbidden(
                "a device reports only for its own child",
            ))
        }
        Actor::Parent { .. } => {
            return Err(ApiError::forbidden(
                "only a device or the backend may report screen time",
            ))
        }
    }
    let out = app
        .store
        .record_screen_time(&child_id, minutes, now_ms())
        .await?;
    Ok(reply(
        StatusCode::OK,
        json!({
            "screenTime": {"childId": child_id, "day": out.day, "minutesUsed": out.minutes_used, "limit": out.limit},
            "alert": out.alert,
        }),
    ))
}

/// `POST /api/devices/me/restricted-attempts`.
pub async fn restricted_attempt(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    require_object(&body)?;
    let url = opt_str(&body, "url", 0, 2000)?;
    let title = opt_str(&body, "title", 0, 2000)?;
    let reason = opt_str(&body, "reason", 0, 2000)?;
    let metadata = opt_object(&body, "metadata", 8 * 1024)?;
    let (device_id, child_id) = caller.device()?;
    let child = app
        .store
        .child(child_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such child"))?;
    let what = title
        .clone()
        .or_else(|| url.clone())
        .unwrap_or_else(|| "restricted content".into());
    let message = match &reason {
        Some(r) => format!("{} tried to open \"{}\" ({r}).", child.name, what),
        None => format!("{} tried to open \"{}\".", child.name, what),
    };
    let meta = json!({
        "childId": child_id, "deviceId": device_id, "url": url, "title": title,
        "reason": reason, "details": metadata,
    });
    let n = app
        .store
        .notify_guardians(
            child_id,
            "RESTRICTED_CONTENT",
            "Restricted content blocked",
            &message,
            meta,
            now_ms(),
        )
        .await?;
    Ok(reply(StatusCode::CREATED, json!({"notified": n})))
}

/// `POST /api/publish`.
pub async fn publish(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.backend()?;
    require_object(&body)?;
    let target = req_str(&body, "room", 140)?;
    let target = match target.split_once(':') {
        Some(("user", id)) if valid_id(id) => room::user(id),
        Some(("child", id)) if valid_id(id) => room::child(id),
        None if target == room::ADMINS => room::ADMINS.to_string(),
        _ => {
            return Err(ApiError::bad_request(
                "room must be user:<id>, child:<id> or admins",
            ))
        }
    };
    let event = req_str(&body, "event", 64)?;
    if !valid_id(&event) || CONTROL_EVENTS.contains(&event.as_str()) {
        return Err(ApiError::bad_request(
            "event must be 1-64 characters of A-Z a-z 0-9 _ . : - and not a protocol event (auth, ready, resync, error, pong, ...)",
        ));
    }
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    app.bus.publish(BusMessage::deliver(
        target,
        Arc::new(OutFrame::event(&event, None, &data)),
    ));
    Ok(reply(StatusCode::ACCEPTED, json!({"accepted": true})))
}
