//! Notifications, screen time, and pairing.

use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::registry::{guardians_in, insert_device};
use super::{Store, StoreError, StoreResult, WriteTx};
use crate::model::{day_in, Device, Millis, Notification};

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

/// Result of a screen-time report.
#[derive(Debug, Clone)]
pub struct ScreenTimeOutcome {
    /// The child's calendar day the report counts for.
    pub day: String,
    /// Minutes used today, as reported.
    pub minutes_used: i64,
    /// The child's daily limit.
    pub limit: Option<i64>,
    /// Whether this report raised the day's alert.
    pub alert: bool,
}

/// Pairing states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairingStatus {
    /// Waiting for a parent to enter the code.
    Pending,
    /// A parent entered the code; waiting for approval.
    Claimed,
    /// Approved: a device exists.
    Approved,
    /// Refused by the parent.
    Rejected,
}

impl PairingStatus {
    /// Wire / storage spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            PairingStatus::Pending => "PENDING",
            PairingStatus::Claimed => "CLAIMED",
            PairingStatus::Approved => "APPROVED",
            PairingStatus::Rejected => "REJECTED",
        }
    }
    fn parse(s: &str) -> PairingStatus {
        match s {
            "CLAIMED" => PairingStatus::Claimed,
            "APPROVED" => PairingStatus::Approved,
            "REJECTED" => PairingStatus::Rejected,
            _ => PairingStatus::Pending,
        }
    }
}

/// A pairing request.
#[derive(Debug, Clone)]
pub struct Pairing {
    /// Id given to the device.
    pub id: String,
    /// The code the app shows (normalized, no dash).
    pub code: String,
    /// SHA-256 (hex) of the device's secret.
    pub secret_hash: String,
    /// Name the device gave.
    pub device_name: String,
    /// State.
    pub status: PairingStatus,
    /// The parent who entered the code.
    pub claimed_by: Option<String>,
    /// The child it was approved for.
    pub child_id: Option<String>,
    /// The device created on approval.
    pub device_id: Option<String>,
    /// Expiry.
    pub expires_at: Millis,
}

const NOTIF_COLS: &str = "id, user_id, type, title, message, metadata, created_at, read_at";
const PAIR_COLS: &str =
    "id, code, secret_hash, device_name, status, claimed_by, child_id, device_id, expires_at";

fn notification_from_row(r: &AnyRow) -> Result<Notification, sqlx::Error> {
    let metadata: String = r.try_get("metadata")?;
    Ok(Notification {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        kind: r.try_get("type")?,
        title: r.try_get("title")?,
        message: r.try_get("message")?,
        metadata: serde_json::from_str(&metadata).unwrap_or(Value::Null),
        created_at: r.try_get("created_at")?,
        read: r.try_get::<Option<i64>, _>("read_at")?.is_some(),
    })
}

fn pairing_from_row(r: &AnyRow) -> Result<Pairing, sqlx::Error> {
    Ok(Pairing {
        id: r.try_get("id")?,
        code: r.try_get("code")?,
        secret_hash: r.try_get("secret_hash")?,
        device_name: r.try_get("device_name")?,
        status: PairingStatus::parse(&r.try_get::<String, _>("status")?),
        claimed_by: r.try_get("claimed_by")?,
        child_id: r.try_get("child_id")?,
        device_id: r.try_get("device_id")?,
        expires_at: r.try_get("expires_at")?,
    })
}

/// Inserts a notification and logs `notification:new` for its user.
async fn insert_notification(
    w: &mut WriteTx<'_>,
    n: NewNotification,
    now: Millis,
) -> StoreResult<Notification> {
    let notif = Notification {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: n.user_id,
        kind: n.kind,
        title: n.title,
        message: n.message,
        metadata: n.metadata,
        created_at: now,
        read: false,
    };
    sqlx::query(&format!(
        "INSERT INTO notifications ({NOTIF_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL)"
    ))
    .bind(&notif.id)
    .bind(&notif.user_id)
    .bind(&notif.kind)
    .bind(&notif.title)
    .bind(&notif.message)
    .bind(notif.metadata.to_string())
    .bind(now)
    .execute(&mut *w.tx)
    .await?;
    let data = serde_json::to_value(&notif).unwrap_or(Value::Null);
    Store::log_event(w, &notif.user_id, "notification:new", &data, now).await?;
    Ok(notif)
}

impl Store {
    /// Creates a notification; its user gets `notification:new`.
    pub async fn create_notification(
        &self,
        n: NewNotification,
        now: Millis,
    ) -> StoreResult<Notification> {
        let mut w = self.begin_write().await?;
        let notif = insert_notification(&mut w, n, now).await?;
        w.commit().await?;
        Ok(notif)
    }

    /// Creates the same notification for every guardian of a child.
    pub async fn notify_guardians(
        &self,
        child_id: &str,
        kind: &str,
        title: &str,
        message: &str,
        metadata: Value,
        now: Millis,
    ) -> StoreResult<usize> {
        let mut w = self.begin_write().await?;
        let guardians = guardians_in(&mut w, child_id).await?;
        for g in &guardians {
            let n = NewNotification {
                user_id: g.clone(),
                kind: kind.into(),
                title: title.into(),
                message: message.into(),
                metadata: metadata.clone(),
            };
            insert_notification(&mut w, n, now).await?;
        }
        w.commit().await?;
        Ok(guardians.len())
    }

    /// A user's notifications, newest first; `before` is the id that ended the previous page.
    pub async fn list_notifications(
        &self,
        user_id: &str,
        limit: i64,
        before: Option<&str>,
    ) -> StoreResult<Vec<Notification>> {
        let rows = match before {
            Some(b) => {
                let anchor = sqlx::query("SELECT created_at FROM notifications WHERE id = $1 AND user_id = $2")
                    .bind(b)
                    .bind(user_id)
                    .fetch_optional(&self.reader)
                    .await?
                    .ok_or_else(|| StoreError::BadRequest("before: no such notification".into()))?;
                let at: i64 = anchor.try_get("created_at")?;
                sqlx::query(&format!(
                    "SELECT {NOTIF_COLS} FROM notifications WHERE user_id = $1 \
                     AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
                     ORDER BY created_at DESC, id DESC LIMIT $4"
                ))
                .bind(user_id)
                .bind(at)
                .bind(b)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {NOTIF_COLS} FROM notifications WHERE user_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2"
                ))
                .bind(user_id)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?
            }
        };
        Ok(rows
            .iter()
            .map(notification_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Marks a notification read; `NotFound` unless it is the user's.
    pub async fn mark_read(
        &self,
        user_id: &str,
        id: &str,
        now: Millis,
    ) -> StoreResult<Notification> {
        let mut w = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "UPDATE notifications SET read_at = COALESCE(read_at, $3) WHERE id = $1 AND user_id = $2 RETURNING {NOTIF_COLS}"
        ))
        .bind(id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or_else(|| StoreError::NotFound("no such notification".into()))?;
        let n = notification_from_row(&row)?;
        w.commit().await?;
        Ok(n)
    }

    /// Records today's minutes for a child; raises the day's alert once.
    pub async fn record_screen_time(
        &self,
        child_id: &str,
        minutes: i64,
        now: Millis,
    ) -> StoreResult<ScreenTimeOutcome> {
        let mut w = self.begin_write().await?;
        let row =
            sqlx::query("SELECT name, daily_limit_minutes, timezone FROM children WHERE id = $1")
                .bind(child_id)
                .fetch_optional(&mut *w.tx)
                .await?
                .ok_or_else(|| StoreError::NotFound("no such child".into()))?;
        let name: String = row.try_get("name")?;
        let limit: Option<i64> = row.try_get("daily_limit_minutes")?;
        let tz: String = row.try_get("timezone")?;
        let day = day_in(&tz, now);
        sqlx::query(
            "INSERT INTO screen_time (child_id, day, minutes_used, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (child_id, day) DO UPDATE SET minutes_used = excluded.minutes_used, updated_at = excluded.updated_at",
        )
        .bind(child_id)
        .bind(&day)
        .bind(minutes)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
        let mut alert = false;
        if let Some(l) = limit {
            if minutes >= l {
                alert = sqlx::query(
                    "UPDATE screen_time SET alerted_at = $3 WHERE child_id = $1 AND day = $2 AND alerted_at IS NULL",
                )
                .bind(child_id)
                .bind(&day)
                .bind(now)
                .execute(&mut *w.tx)
                .await?
                .rows_affected()
                    == 1;
            }
        }
        if alert {
            let limit = limit.unwrap_or(0);
            let guardians = guardians_in(&mut w, child_id).await?;
            let data = json!({"childId": child_id, "childName": name, "minutesUsed": minutes, "limit": limit});
            Self::log_event_for_all(&mut w, &guardians, "screentime:alert", &data, now).await?;
            for g in guardians {
                let n = NewNotification {
                    user_id: g,
                    kind: "SCREEN_TIME_LIMIT".into(),
                    title: format!("{name} reached today's screen-time limit"),
                    message: format!("{name} has used {minutes} of {limit} minutes today."),
                    metadata: json!({"childId": child_id, "day": day, "minutesUsed": minutes, "limit": limit}),
                };
                insert_notification(&mut w, n, now).await?;
            }
        }
        w.commit().await?;
        Ok(ScreenTimeOutcome {
            day,
            minutes_used: minutes,
            limit,
            alert,
        })
    }

    // ---- pairing ------------------------------------------------------------------------

    /// Stores a new pairing request. `Conflict` if the code is taken (the caller retries).
    pub async fn create_pairing(&self, p: &Pairing, now: Millis) -> StoreResult<()> {
        let mut w = self.begin_write().await?;
        let taken = sqlx::query("SELECT 1 AS one FROM pairings WHERE code = $1")
            .bind(&p.code)
            .fetch_optional(&mut *w.tx)
            .await?;
        if taken.is_some() {
            return Err(StoreError::Conflict("code taken".into()));
        }
        sqlx::query(
            "INSERT INTO pairings (id, code, secret_hash, device_name, status, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, 'PENDING', $5, $6)",
        )
        .bind(&p.id)
        .bind(&p.code)
        .bind(&p.secret_hash)
        .bind(&p.device_name)
        .bind(now)
        .bind(p.expires_at)
        .execute(&mut *w.tx)
        .await?;
        w.commit().await?;
        Ok(())
    }

    /// One pairing by id.
    pub async fn pairing(&self, id: &str) -> StoreResult<Option<Pairing>> {
        let row = sqlx::query(&format!("SELECT {PAIR_COLS} FROM pairings WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(pairing_from_row).transpose()?)
    }

    /// A parent enters a code: the pairing becomes theirs and they get a DEVICE_PAIRING
    /// notification. `NotFound` for an unknown or expired code.
    pub async fn claim_pairing(
        &self,
        code: &str,
        user_id: &str,
        now: Millis,
    ) -> StoreResult<Pairing> {
        let mut w = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "SELECT {PAIR_COLS} FROM pairings WHERE code = $1 AND expires_at > $2"
        ))
        .bind(code)
        .bind(now)
        .fetch_optional(&mut *w.tx)
        .await?
        .ok_or_else(|| StoreError::NotFound("no such pairing code, or it expired".into()))?;
        let mut p = pairing_from_row(&row)?;
        match (&p.status, &p.claimed_by) {
            (PairingStatus::Pending, _) => {}
            (PairingStatus::Claimed, Some(u)) if u == user_id => return Ok(p),
            _ => return Err(StoreError::Conflict("this code was already used".into())),
        }
        sqlx::query("UPDATE pairings SET status = 'CLAIMED', claimed_by = $2 WHERE id = $1")
            .bind(&p.id)
            .bind(user_id)
            .execute(&mut *w.tx)
            .await?;
        p.status = PairingStatus::Claimed;
        p.claimed_by = Some(user_id.to_string());
        let n = NewNotification {
            user_id: user_id.to_string(),
            kind: "DEVICE_PAIRING".into(),
            title: "A device wants to pair".into(),
            message: format!(
                "\"{}\" asks to be paired. Approve it for one of your children.",
                p.device_name
            ),
            metadata: json!({"pairingId": p.id, "deviceName": p.device_name, "expiresAt": crate::model::rfc3339(p.expires_at)}),
        };
        insert_notification(&mut w, n, now).await?;
        w.commit().await?;
        Ok(p)
    }

    /// The claiming parent approves a pairing for one of their children: a device is
    /// created and the child's guardians are notified.
    pub async fn approve_pairing(
        &self,
        id: &str,
        user_id: &str,
        child_id: &str,
        name: Option<String>,
        now: Millis,
    ) -> StoreResult<Device> {
        let mut w = self.begin_write().await?;
        let p = self.locked_pairing(&mut w, id, user_id, now).await?;
        if p.status == PairingStatus::Approved {
            if p.child_id.as_deref() == Some(child_id) {
                let row = sqlx::query("SELECT id, child_id, name, created_at, revoked_at, last_seen FROM devices WHERE id = $1")
                    .bind(p.device_id.unwrap_or_default())
                    .fetch_one(&mut *w.tx)
                    .await?;
                return Ok(super::registry::device_from_row(&row)?);
            }
            return Err(StoreError::Conflict(
                "this pairing was already approved".into(),
            ));
        }
        if p.status != PairingStatus::Claimed {
            return Err(StoreError::Conflict(format!(
                "the pairing is {}",
                p.status.as_str()
            )));
        }
        let guardians = guardians_in(&mut w, child_id).await?;
        if guardians.is_empty() {
            let exists = sqlx::query("SELECT 1 AS one FROM children WHERE id = $1")
                .bind(child_id)
                .fetch_optional(&mut *w.tx)
                .await?
                .is_some();
            if !exists {
                return Err(StoreError::NotFound("no such child".into()));
            }
        }
        if !guardians.iter().any(|g| g == user_id) {
            return Err(StoreError::Forbidden(
                "you are not a guardian of this child".into(),
            ));
        }
        let name = name.unwrap_or_else(|| p.device_name.clone());
        let device = insert_device(&mut w, child_id, &name, now).await?;
        sqlx::query(
            "UPDATE pairings SET status = 'APPROVED', child_id = $2, device_id = $3 WHERE id = $1",
        )
        .bind(id)
        .bind(child_id)
        .bind(&device.id)
        .execute(&mut *w.tx)
        .await?;
        for g in guardians {
            let n = NewNotification {
                user_id: g,
                kind: "DEVICE_PAIRING".into(),
                title: "New device paired".into(),
                message: format!("\"{name}\" was paired."),
                metadata: json!({"pairingId": id, "deviceId": device.id, "childId": child_id, "deviceName": name}),
            };
            insert_notification(&mut w, n, now).await?;
        }
        w.commit().await?;
        Ok(device)
    }

    /// The claiming parent refuses a pairing.
    pub async fn reject_pairing(&self, id: &str, user_id: &str, now: Millis) -> StoreResult<()> {
        let mut w = self.begin_write().await?;
        let p = self.locked_pairing(&mut w, id, user_id, now).await?;
        if p.status == PairingStatus::Approved {
            return Err(StoreError::Conflict(
                "this pairing was already approved".into(),
            ));
        }
        sqlx::query("UPDATE pairings SET status = 'REJECTED' WHERE id = $1")
            .bind(id)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(())
    }

    async fn locked_pairing(
        &self,
        w: &mut WriteTx<'_>,
        id: &str,
        user_id: &str,
        now: Millis,
    ) -> StoreResult<Pairing> {
        let row = sqlx::query(&format!("SELECT {PAIR_COLS} FROM pairings WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or_else(|| StoreError::NotFound("no such pairing".into()))?;
        let p = pairing_from_row(&row)?;
        if p.claimed_by.as_deref() != Some(user_id) {
            return Err(StoreError::NotFound("no such pairing".into()));
        }
        if p.expires_at <= now {
            return Err(StoreError::Gone("the pairing expired".into()));
        }
        Ok(p)
    }

    /// Deletes pairings that expired before `before`.
    pub async fn prune_pairings(&self, before: Millis) -> StoreResult<u64> {
        let mut w = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM pairings WHERE expires_at < $1")
            .bind(before)
            .execute(&mut *w.tx)
            .await?
            .rows_affected();
        w.commit().await?;
        Ok(n)
    }
}
