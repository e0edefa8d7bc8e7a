//! The backend's view of webhooks: endpoints and their backlog, parked events, retry.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Value};

use super::{reply, ApiPath, ApiQuery, Caller};
use crate::app::App;
use crate::error::ApiError;
use crate::model::{now_ms, rfc3339};
use crate::store::FailedCursor;

/// `GET /api/webhooks/endpoints`: each configured endpoint with its backlog (secrets are
/// never shown; only how many are active).
pub async fn endpoints(State(app): State<Arc<App>>, caller: Caller) -> Result<Response, ApiError> {
    caller.backend()?;
    let settings =
        crate::webhooks::Settings::from_config(&app.cfg).map_err(|_| ApiError::internal())?;
    let mut list: Vec<Value> = Vec::new();
    let mut secrets = 0;
    if let Some(s) = &settings {
        secrets = s.secrets.len();
        for ep in &s.endpoints {
            let st = app.store.webhook_stats(&ep.raw).await?;
            list.push(json!({
                "url": ep.raw,
                "pending": st.pending,
                "failed": st.failed,
                "oldestPendingAt": st.oldest_pending.map(rfc3339),
            }));
        }
    }
    Ok(reply(
        StatusCode::OK,
        json!({"endpoints": list, "activeSecrets": secrets}),
    ))
}

/// `GET /api/webhooks/failed?limit=&after=`: parked events, newest first; `next` is the
/// cursor of the following page (null on the last one).
pub async fn failed(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    caller.backend()?;
    let limit = match q.get("limit") {
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=200).contains(n))
            .ok_or_else(|| ApiError::bad_request("limit must be an integer from 1 to 200"))?,
        None => 50,
    };
    let after = match q.get("after") {
        Some(a) => Some(FailedCursor::decode(a).ok_or_else(|| {
            ApiError::bad_request("after must be the `next` cursor of a previous page")
        })?),
        None => None,
    };
    let rows = app.store.failed_webhooks(after, limit + 1).await?;
    let more = rows.len() as i64 > limit;
    let page = &rows[..rows.len().min(limit as usize)];
    let next = match page.last() {
        Some(last) if more => Some(
            FailedCursor {
                failed_at: last.failed_at,
                id: last.id.clone(),
            }
            .encode(),
        ),
        _ => None,
    };
    let events: Vec<Value> = page.iter().map(|f| f.view()).collect();
    Ok(reply(
        StatusCode::OK,
        json!({"events": events, "next": next}),
    ))
}

/// `POST /api/webhooks/failed/{id}/retry`: the parked event is due again, with fresh
/// attempts and retry window. 404 for an unknown id, 409 for one not parked.
pub async fn retry(
    State(app): State<Arc<App>>,
    caller: Caller,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    caller.backend()?;
    if id.len() > 64 || !id.starts_with("evt_") {
        return Err(ApiError::not_found("no such webhook event"));
    }
    app.store.retry_failed_webhook(&id, now_ms()).await?;
    app.store.webhook_wake().notify_one();
    Ok(reply(
        StatusCode::ACCEPTED,
        json!({"id": id, "retrying": true}),
    ))
}
