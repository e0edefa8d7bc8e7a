//! A device's push token: `PUT`, `GET`, `DELETE /api/devices/me/push-token`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{reply, Caller, JsonBody};
use crate::app::App;
use crate::error::ApiError;
use crate::model::now_ms;
use wire::push::PushToken;
use wire::rest::FromBody;

/// `PUT /api/devices/me/push-token`: stores (or replaces) the caller's token.
pub async fn put_token(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let token = PushToken::from_body(&body)?;
    let (device_id, _) = caller.device()?;
    app.store
        .set_push_token(device_id, token.clone(), now_ms())
        .await?;
    // The token itself is a credential of sorts: never logged.
    tracing::info!(
        device_id,
        provider = token.provider.as_str(),
        "push token stored"
    );
    Ok(reply(StatusCode::OK, json!({"pushToken": token})))
}

/// `GET /api/devices/me/push-token`: the caller's token, or 404.
pub async fn get_token(State(app): State<Arc<App>>, caller: Caller) -> Result<Response, ApiError> {
    let (device_id, _) = caller.device()?;
    match app.store.push_token(device_id).await? {
        Some(t) => Ok(reply(StatusCode::OK, json!({"pushToken": t}))),
        None => Err(ApiError::not_found("this device has no push token")),
    }
}

/// `DELETE /api/devices/me/push-token`: 204, whether there was one or not.
pub async fn delete_token(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let (device_id, _) = caller.device()?;
    app.store.delete_push_token(device_id).await?;
    Ok(axum::response::IntoResponse::into_response(
        StatusCode::NO_CONTENT,
    ))
}
