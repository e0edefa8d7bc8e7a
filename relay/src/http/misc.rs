//! Notifications, screen time, restricted-content attempts, and the publish API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{reply, ApiPath, ApiQuery, Caller, JsonBody};
use crate::app::App;
use crate::auth::Actor;
use crate::bus::{room, BusMessage, OutFrame};
use crate::error::ApiError;
use crate::model::now_ms;
use crate::store::NewNotification;
use wire::records::NotificationType;
use wire::rest::{
    CreateNotification, FromBody, Publish, PublishRoom, RestrictedAttempt, ScreenTimeReport,
};
use wire::validate::check_id;

/// `POST /api/dashboard/notifications`.
pub async fn create_notification(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.backend()?;
    let req = CreateNotification::from_body(&body)?;
    let n = NewNotification {
        user_id: req.user_id,
        kind: req.kind.as_str().to_owned(),
        title: req.title,
        message: req.message,
        metadata: req.metadata,
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
    let ScreenTimeReport {
        child_id,
        minutes_used: minutes,
    } = ScreenTimeReport::from_body(&body)?;
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
    let RestrictedAttempt {
        url,
        title,
        reason,
        metadata,
    } = RestrictedAttempt::from_body(&body)?;
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
            NotificationType::RestrictedContent.as_str(),
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
    let Publish { room, event, data } = Publish::from_body(&body)?;
    let target = match room {
        PublishRoom::User(id) => room::user(&id),
        PublishRoom::Child(id) => room::child(&id),
        PublishRoom::Admins => room::ADMINS.to_string(),
    };
    app.bus.publish(BusMessage::deliver(
        target,
        Arc::new(OutFrame::event(&event, None, &data)),
    ));
    Ok(reply(StatusCode::ACCEPTED, json!({"accepted": true})))
}
