//! Notifications: creating them (each logs `notification:new` for its user), listing them
//! newest first, marking them read, pruning them.

use serde_json::Value;
use wire::event;

use super::db::{args, Row};
use super::{Store, StoreError, StoreResult, W};
use crate::model::{Millis, Notification};

/// A notification to create.
#[derive(Debug, Clone)]
pub struct NewNotification {
    /// Recipient.
    pub user_id: String,
    /// One of the known types.
    pub kind: String,
    /// Title.
    pub title: String,
    /// Body.
    pub message: String,
    /// JSON object.
    pub metadata: Value,
}

const NOTIF_COLS: &str = "id, user_id, type, title, message, metadata, created_at, read_at";

fn notification_from_row(r: &Row<'_>) -> StoreResult<Notification> {
    let metadata = r.text(5)?;
    Ok(Notification {
        id: r.text(0)?,
        user_id: r.text(1)?,
        kind: r.text(2)?,
        title: r.text(3)?,
        message: r.text(4)?,
        metadata: serde_json::from_str(&metadata).unwrap_or(Value::Null),
        created_at: r.int(6)?,
        read: r.opt_int(7)?.is_some(),
    })
}

/// Inserts a notification and logs `notification:new` for its user.
pub(super) fn insert_notification(
    w: &mut W<'_>,
    n: NewNotification,
    now: Millis,
) -> StoreResult<Notification> {
    let notif = Notification {
        // Time-ordered (and ordered within a millisecond in this process): the list is
        // newest first by (created_at, id), so two notifications of the same millisecond
        // keep their order.
        id: uuid::Uuid::now_v7().to_string(),
        user_id: n.user_id,
        kind: n.kind,
        title: n.title,
        message: n.message,
        metadata: n.metadata,
        created_at: now,
        read: false,
    };
    w.conn.exec(
        &format!(
            "INSERT INTO notifications ({NOTIF_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL)"
        ),
        args![
            notif.id,
            notif.user_id,
            notif.kind,
            notif.title,
            notif.message,
            notif.metadata.to_string(),
            now
        ],
    )?;
    let data = serde_json::to_value(&notif).unwrap_or(Value::Null);
    Store::log_event(w, &notif.user_id, event::NOTIFICATION_NEW, &data, now)?;
    // The view has no user (a parent lists their own); the backend needs it.
    w.webhook(wire::webhook::NOTIFICATION_CREATED, now, || {
        let mut data = data;
        data["userId"] = notif.user_id.clone().into();
        data
    });
    Ok(notif)
}

impl Store {
    /// Creates a notification; its user gets `notification:new`.
    pub async fn create_notification(
        &self,
        n: NewNotification,
        now: Millis,
    ) -> StoreResult<Notification> {
        self.write(move |w| insert_notification(w, n, now)).await
    }

    /// Creates the same notification for every guardian of a child; returns how many.
    pub async fn notify_guardians(
        &self,
        child_id: &str,
        kind: &str,
        title: &str,
        message: &str,
        metadata: Value,
        now: Millis,
    ) -> StoreResult<usize> {
        let (child_id, kind, title, message) = (
            child_id.to_string(),
            kind.to_string(),
            title.to_string(),
            message.to_string(),
        );
        self.write(move |w| {
            let guardians = w.guardians(&child_id)?;
            for g in guardians.iter() {
                let n = NewNotification {
                    user_id: g.clone(),
                    kind: kind.clone(),
                    title: title.clone(),
                    message: message.clone(),
                    metadata: metadata.clone(),
                };
                insert_notification(w, n, now)?;
            }
            Ok(guardians.len())
        })
        .await
    }

    /// A user's notifications, newest first; `before` is the id that ended the previous page.
    pub async fn list_notifications(
        &self,
        user_id: &str,
        limit: i64,
        before: Option<&str>,
    ) -> StoreResult<Vec<Notification>> {
        let (user_id, before) = (user_id.to_string(), before.map(str::to_string));
        self.read(move |c| {
            let rows = match before {
                Some(b) => {
                    let at = c
                        .opt(
                            "SELECT created_at FROM notifications WHERE id = ?1 AND user_id = ?2",
                            args![b, user_id],
                            |r| r.int(0),
                        )?
                        .ok_or_else(|| StoreError::BadRequest("before: no such notification".into()))?;
                    c.map(
                        &format!(
                            "SELECT {NOTIF_COLS} FROM notifications WHERE user_id = ?1 \
                             AND (created_at < ?2 OR (created_at = ?2 AND id < ?3)) \
                             ORDER BY created_at DESC, id DESC LIMIT ?4"
                        ),
                        args![user_id, at, b, limit],
                        notification_from_row,
                    )?
                }
                None => c.map(
                    &format!(
                        "SELECT {NOTIF_COLS} FROM notifications WHERE user_id = ?1 ORDER BY created_at DESC, id DESC LIMIT ?2"
                    ),
                    args![user_id, limit],
                    notification_from_row,
                )?,
            };
            Ok(rows)
        })
        .await
    }

    /// Marks a notification read; `NotFound` unless it is the user's.
    pub async fn mark_read(
        &self,
        user_id: &str,
        id: &str,
        now: Millis,
    ) -> StoreResult<Notification> {
        let (user_id, id) = (user_id.to_string(), id.to_string());
        self.write(move |w| {
            w.conn
                .opt(
                    &format!(
                        "UPDATE notifications SET read_at = COALESCE(read_at, ?3) WHERE id = ?1 AND user_id = ?2 RETURNING {NOTIF_COLS}"
                    ),
                    args![id, user_id, now],
                    notification_from_row,
                )?
                .ok_or_else(|| StoreError::NotFound("no such notification".into()))
        })
        .await
    }

    /// Deletes notifications created before `before`.
    pub async fn prune_notifications(&self, before: Millis) -> StoreResult<u64> {
        self.write(move |w| {
            w.conn.exec(
                "DELETE FROM notifications WHERE created_at < ?1",
                args![before],
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::test_store;

    #[tokio::test]
    async fn notifications_of_the_same_millisecond_list_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(&dir).await;
        let now = 1_700_000_000_000;
        for i in 0..20 {
            let n = crate::store::NewNotification {
                user_id: "u1".into(),
                kind: "RESTRICTED_CONTENT".into(),
                title: format!("n{i}"),
                message: "m".into(),
                metadata: serde_json::json!({}),
            };
            store.create_notification(n, now).await.unwrap();
        }
        let titles: Vec<String> = store
            .list_notifications("u1", 50, None)
            .await
            .unwrap()
            .into_iter()
            .map(|n| n.title)
            .collect();
        let expected: Vec<String> = (0..20).rev().map(|i| format!("n{i}")).collect();
        assert_eq!(titles, expected);
    }
}
