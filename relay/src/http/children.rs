//! Children and devices.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{reply, ApiPath, Caller, JsonBody};
use crate::app::App;
use crate::auth::Actor;
use crate::error::ApiError;
use crate::model::{now_ms, parse_tz, Device};
use crate::store::{ChildPatch, ChildWriter};
use wire::rest::{CreateDevice, FromBody, PutChild, RotateTokenAccepted};
use wire::validate::check_id;

/// Checks that the caller is the backend or a guardian of `child_id`.
pub(super) async fn backend_or_guardian(
    app: &App,
    caller: &Caller,
    child_id: &str,
) -> Result<(), ApiError> {
    match &caller.0 {
        Actor::Backend => {
            if app.store.child(child_id).await?.is_none() {
                return Err(ApiError::not_found("no such child"));
            }
            Ok(())
        }
        Actor::Parent { user_id, .. } => Ok(app.store.check_guardian(user_id, child_id).await?),
        Actor::Device { .. } => Err(ApiError::forbidden("a device may not call this")),
    }
}

fn parse_patch(body: &Value) -> Result<ChildPatch, ApiError> {
    let req = PutChild::from_body(body)?;
    if let Some(tz) = &req.timezone {
        if parse_tz(tz).is_none() {
            return Err(ApiError::bad_request(
                "timezone must be an IANA time zone name such as Europe/Paris",
            ));
        }
    }
    Ok(ChildPatch {
        name: req.name,
        daily_limit_minutes: req.daily_limit_minutes,
        timezone: req.timezone,
        guardians: req.guardians,
    })
}

/// `PUT /api/children/{childId}`.
pub async fn put_child(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(child_id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    check_id("childId", &child_id)?;
    let patch = parse_patch(&body)?;
    let writer = match &caller.0 {
        Actor::Backend => ChildWriter::Backend,
        Actor::Parent { user_id, .. } => {
            if patch.guardians.is_some() {
                return Err(ApiError::forbidden("only the backend may set guardians"));
            }
            ChildWriter::Parent(user_id.clone())
        }
        Actor::Device { .. } => {
            return Err(ApiError::forbidden("a device may not change children"))
        }
    };
    let (child, created) = app
        .store
        .upsert_child(writer, &child_id, patch, now_ms())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(reply(status, json!({"child": child})))
}

/// `GET /api/children`.
pub async fn list_children(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let user = caller.parent()?;
    let children = app.store.children_of(user).await?;
    Ok(reply(StatusCode::OK, json!({"children": children})))
}

/// `GET /api/children/{childId}`.
pub async fn get_child(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(child_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_id("childId", &child_id)?;
    backend_or_guardian(&app, &caller, &child_id).await?;
    let child = app
        .store
        .child(&child_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such child"))?;
    Ok(reply(StatusCode::OK, json!({"child": child})))
}

/// `POST /api/children/{childId}/devices`.
pub async fn create_device(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(child_id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    check_id("childId", &child_id)?;
    let CreateDevice { name } = CreateDevice::from_body(&body)?;
    backend_or_guardian(&app, &caller, &child_id).await?;
    let by = match &caller.0 {
        Actor::Parent { user_id, .. } => user_id.as_str(),
        _ => "backend",
    };
    let device = app
        .store
        .create_device(&child_id, &name, by, now_ms())
        .await?;
    let token = app.keys.issue_device_token(&device.id, &child_id);
    tracing::info!(device_id = %device.id, child_id = %child_id, by = caller.0.role(), "device registered");
    Ok(reply(
        StatusCode::CREATED,
        json!({"deviceId": device.id, "childId": child_id, "name": device.name, "token": token}),
    ))
}

/// The device record plus live presence (`live`: from any node), as listed to guardians.
pub(super) fn device_json(d: &Device, live: Option<crate::hub::Presence>) -> Value {
    let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
    if let Value::Object(m) = &mut v {
        m.insert("online".into(), Value::Bool(live.is_some()));
        let (active, video) = match &live {
            Some(p) => (p.active_viewing, p.current_video.clone()),
            None => (false, Value::Null),
        };
        m.insert("activeViewing".into(), Value::Bool(active));
        m.insert("currentVideo".into(), video);
        if let Some(p) = live {
            m.insert(
                "lastSeen".into(),
                Value::String(crate::model::rfc3339(p.last_seen)),
            );
        }
    }
    v
}

/// `GET /api/children/{childId}/devices`.
pub async fn list_devices(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(child_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_id("childId", &child_id)?;
    backend_or_guardian(&app, &caller, &child_id).await?;
    let devices = app.store.devices_of(&child_id).await?;
    let ids: Vec<String> = devices.iter().map(|d| d.id.clone()).collect();
    let mut live = crate::presence::lookup_many(&app, &ids).await;
    let list: Vec<Value> = devices
        .iter()
        .map(|d| device_json(d, live.remove(&d.id)))
        .collect();
    Ok(reply(StatusCode::OK, json!({"devices": list})))
}

/// `DELETE /api/devices/{deviceId}`.
pub async fn revoke_device(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(device_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_id("deviceId", &device_id)?;
    if let Actor::Device { .. } = caller.0 {
        return Err(ApiError::forbidden("a device may not revoke devices"));
    }
    let device = app
        .store
        .device(&device_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such device"))?;
    backend_or_guardian(&app, &caller, &device.child_id).await?;
    app.store.revoke_device(&device_id, now_ms()).await?;
    tracing::info!(device_id = %device_id, by = caller.0.role(), "device revoked");
    Ok(reply(
        StatusCode::OK,
        json!({"deviceId": device_id, "revoked": true}),
    ))
}

/// The data of the `auth:rotate` frame that hands a device its pending token. The token is
/// derived from the generation and its issue time, so the same frame can be sent again on
/// every connect while the rotation is pending; it is never logged.
pub(crate) fn rotation_data(
    app: &App,
    device_id: &str,
    r: &crate::store::Rotation,
) -> wire::frame::AuthRotate {
    let token = app
        .keys
        .issue_device_token_gen(device_id, &r.child_id, r.gen, r.issued_at / 1000);
    wire::frame::AuthRotate { token }
}

/// `POST /api/devices/{deviceId}/rotate-token`: gives the device a new token (202). The
/// device's open sockets get it now (`auth:rotate`); an offline device gets it when it next
/// connects. A rotation already pending is sent again, not replaced.
pub async fn rotate_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(device_id): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_id("deviceId", &device_id)?;
    // Who may ask comes first; a parent learns nothing of devices that are not theirs (an
    // unknown device and another family's device answer the same 404).
    match &caller.0 {
        Actor::Device { .. } => {
            return Err(ApiError::forbidden("a device may not rotate tokens"));
        }
        Actor::Backend => {}
        Actor::Parent { user_id, .. } => {
            let not_found = || ApiError::not_found("no such device");
            let device = app.store.device(&device_id).await?.ok_or_else(not_found)?;
            if !app
                .store
                .guardians(&device.child_id)
                .await?
                .contains(user_id)
            {
                return Err(not_found());
            }
        }
    }
    // The store announces it (`BusMessage::RotationPending`, no token on the bus): each
    // node holding a socket of the device derives the token and sends `auth:rotate`. The
    // store is the truth: a device that misses the frame gets it again when it next connects.
    let rotation = app.store.rotate_device_token(&device_id, now_ms()).await?;
    tracing::info!(
        device_id = %device_id,
        gen = rotation.gen,
        started = rotation.started,
        by = caller.0.role(),
        "device token rotation requested"
    );
    let body = RotateTokenAccepted {
        device_id,
        pending_generation: rotation.gen,
    };
    Ok(reply(
        StatusCode::ACCEPTED,
        serde_json::to_value(body).unwrap_or(Value::Null),
    ))
}
