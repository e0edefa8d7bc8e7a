//! `GET /api/admin/overview`: what an operator looks at first, for parents whose token says
//! `isAdmin: true` (the same claim that joins the `admins` room).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{reply, Caller};
use crate::app::App;
use crate::auth::Actor;
use crate::error::ApiError;
use crate::model::now_ms;

/// Children listed in `pendingByChild`.
const PENDING_CHILDREN: i64 = 50;
/// Commands listed in `recentFailures`.
const RECENT_FAILURES: i64 = 20;

/// `GET /api/admin/overview` — admin parents only (every other caller gets 403): this
/// node's sockets, the children with the most open commands, the newest failures. Counts
/// span every family: an admin is the operator of the deployment.
pub async fn overview(State(app): State<Arc<App>>, caller: Caller) -> Result<Response, ApiError> {
    match &caller.0 {
        Actor::Parent { is_admin: true, .. } => {}
        _ => return Err(ApiError::forbidden("only an admin parent may call this")),
    }
    let pending = app
        .store
        .pending_by_child(now_ms(), PENDING_CHILDREN)
        .await?;
    let failures = app.store.recent_failures(RECENT_FAILURES).await?;
    let (total, devices) = (app.hub.len(), app.hub.devices());
    Ok(reply(
        StatusCode::OK,
        json!({
            "node": {"id": app.node_id, "parents": total.saturating_sub(devices), "devices": devices},
            "pendingByChild": pending
                .into_iter()
                .map(|(child_id, n)| json!({"childId": child_id, "pending": n}))
                .collect::<Vec<_>>(),
            "recentFailures": failures,
        }),
    ))
}
