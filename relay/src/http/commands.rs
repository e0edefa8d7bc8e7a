//! Remote commands: create, list, read, acknowledge, and the device's HTTPS sync.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{reply, reply_command, ApiPath, ApiQuery, Caller, JsonBody};
use crate::app::App;
use crate::auth::Actor;
use crate::error::ApiError;
use crate::model::{now_ms, parse_rfc3339, rfc3339, CommandStatus};
use crate::store::{AckOutcome, CommandFilter, NewCommand};
use wire::rest::{AckCommand, CreateCommand, FromBody};
use wire::validate::check_id;

/// `POST /api/dashboard/remote-control`.
pub async fn create_command(
    State(app): State<Arc<App>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let user = caller.parent()?.to_string();
    let req = CreateCommand::from_body(&body)?;
    let ttl = req
        .expires_in_seconds
        .unwrap_or(app.cfg.default_command_ttl_secs as i64);
    let now = now_ms();
    let new = NewCommand {
        created_by: user,
        child_id: req.child_id,
        device_id: req.device_id,
        command_type: req.command_type,
        payload: req.payload.unwrap_or_else(|| json!({})),
        expires_at: now + ttl * 1000,
    };
    let cmd = app.store.create_command(new, now).await?;
    tracing::debug!(command_id = %cmd.id, child_id = %cmd.child_id, command_type = %cmd.command_type, "command created");
    Ok(reply_command(StatusCode::CREATED, &cmd))
}

/// `GET /api/dashboard/remote-control`.
pub async fn list_commands(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let user = caller.parent()?;
    let mut f = CommandFilter {
        limit: 50,
        ..Default::default()
    };
    if let Some(c) = q.get("childId") {
        check_id("childId", c)?;
        f.child_id = Some(c.clone());
    }
    if let Some(s) = q.get("status") {
        f.status = Some(CommandStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request("status must be PENDING, DELIVERED, EXECUTED, FAILED or EXPIRED")
        })?);
    }
    if let Some(l) = q.get("limit") {
        f.limit = l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 200"))?;
    }
    if let Some(b) = q.get("before") {
        f.before = Some(
            parse_rfc3339(b)
                .ok_or_else(|| ApiError::bad_request("before must be an RFC 3339 time"))?,
        );
    }
    if let Some(c) = &f.child_id {
        app.store.check_guardian(user, c).await?;
    }
    let commands = app.store.list_commands(user, &f).await?;
    Ok(reply(StatusCode::OK, json!({"commands": commands})))
}

/// `GET /api/dashboard/remote-control/{id}`.
pub async fn get_command(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    check_id("id", &id)?;
    let cmd = app
        .store
        .command(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such command"))?;
    match &caller.0 {
        Actor::Parent { user_id, .. } => app.store.check_guardian(user_id, &cmd.child_id).await?,
        Actor::Device { child_id, .. } if *child_id == cmd.child_id => {}
        Actor::Device { .. } => {
            return Err(ApiError::forbidden("this command is not for your child"))
        }
        Actor::Backend => {}
    }
    Ok(reply_command(StatusCode::OK, &cmd))
}

/// `PATCH /api/dashboard/remote-control/{id}` — the device's durable ack.
pub async fn ack_command(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    // Input first: a malformed ack is 400 whatever the command's state.
    check_id("id", &id)?;
    let ack = AckCommand::from_body(&body)?;
    let (device_id, child_id) = caller.device()?;
    let outcome = app
        .store
        .ack_command(
            &id,
            device_id,
            child_id,
            ack.status.status(),
            ack.error,
            now_ms(),
        )
        .await?;
    let cmd = match outcome {
        AckOutcome::Updated(c) => {
            tracing::debug!(command_id = %c.id, status = c.status.as_str(), device_id, "command acknowledged");
            c
        }
        AckOutcome::Unchanged(c) => c,
    };
    Ok(reply_command(StatusCode::OK, &cmd))
}

/// `GET /api/devices/me/commands` — pending commands over HTTPS (`syncNow`).
pub async fn my_commands(
    State(app): State<Arc<App>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    let (device_id, child_id) = caller.device()?;
    // The device is awake: its wake-up is done. Before the read, so that a command committed
    // after the read has a wake-up row of its own.
    app.store.settle_push(device_id).await?;
    let now = now_ms();
    // One page of 500, oldest first; `more` says whether to ask again after acking these.
    let mut pending = app
        .store
        .pending_for_device(device_id, child_id, now, None, 501)
        .await?;
    let more = pending.len() > 500;
    pending.truncate(500);
    let list: Vec<_> = pending.iter().map(|c| c.device_frame_data()).collect();
    if !pending.is_empty() {
        app.store
            .mark_delivered(
                pending.iter().map(|c| c.id.clone()).collect(),
                device_id,
                now,
            )
            .await?;
    }
    // `serverTime`: the agent judges expiry by the relay's clock, not the device's.
    Ok(reply(
        StatusCode::OK,
        json!({"commands": list, "more": more, "serverTime": rfc3339(now_ms())}),
    ))
}
