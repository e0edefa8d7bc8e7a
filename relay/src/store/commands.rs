//! The command lifecycle: PENDING -> DELIVERED -> EXECUTED | FAILED, and -> EXPIRED.
//!
//! Every transition is one transaction that also logs `command:status` (or `command:sent`)
//! for every guardian, so a parent that resumes sees each transition exactly once.

use std::sync::Arc;

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::Row;

use super::registry::guardians_in;
use super::{Store, StoreError, StoreResult};
use crate::bus::{room, BusMessage, CommandMeta, OutFrame};
use crate::model::{Command, CommandStatus, Millis};

/// A validated `POST /api/dashboard/remote-control`.
#[derive(Debug, Clone)]
pub struct NewCommand {
    /// The parent sending it.
    pub created_by: String,
    /// Target child.
    pub child_id: String,
    /// Target device, or every device of the child.
    pub device_id: Option<String>,
    /// One of the known types.
    pub command_type: String,
    /// JSON object.
    pub payload: Value,
    /// Absolute expiry.
    pub expires_at: Millis,
}

/// Filters of `GET /api/dashboard/remote-control`.
#[derive(Debug, Clone, Default)]
pub struct CommandFilter {
    /// Only this child.
    pub child_id: Option<String>,
    /// Only this status.
    pub status: Option<CommandStatus>,
    /// Created strictly before this time.
    pub before: Option<Millis>,
    /// Page size.
    pub limit: i64,
}

/// What an ack did.
#[derive(Debug)]
pub enum AckOutcome {
    /// The status changed; guardians were told.
    Updated(Command),
    /// The same ack again: nothing changed.
    Unchanged(Command),
}

const COLS: &str =
    "id, child_id, device_id, command_type, payload, status, created_by, created_at, \
                    expires_at, delivered_at, executed_at, error, ack_device_id";

fn command_from_row(r: &AnyRow) -> Result<Command, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let payload: String = r.try_get("payload")?;
    Ok(Command {
        id: r.try_get("id")?,
        child_id: r.try_get("child_id")?,
        device_id: r.try_get("device_id")?,
        command_type: r.try_get("command_type")?,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        status: CommandStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown status {status}").into()))?,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        delivered_at: r.try_get("delivered_at")?,
        executed_at: r.try_get("executed_at")?,
        error: r.try_get("error")?,
        ack_device_id: r.try_get("ack_device_id")?,
    })
}

/// The `command:new` frame for devices, with the metadata sockets need.
pub fn device_frame(c: &Command) -> Arc<OutFrame> {
    let mut f = OutFrame::event("command:new", None, &c.device_frame_data());
    f.command = Some(CommandMeta {
        id: c.id.clone(),
        expires_at: c.expires_at,
        created_at: c.created_at,
    });
    Arc::new(f)
}

impl Store {
    /// Creates a command if `created_by` is a guardian of the child; logs `command:sent` for
    /// every guardian and sends `command:new` to the target devices.
    pub async fn create_command(&self, new: NewCommand, now: Millis) -> StoreResult<Command> {
        let mut w = self.begin_write().await?;
        let child = sqlx::query("SELECT 1 AS one FROM children WHERE id = $1")
            .bind(&new.child_id)
            .fetch_optional(&mut *w.tx)
            .await?;
        if child.is_none() {
            return Err(StoreError::NotFound("no such child".into()));
        }
        let guardians = guardians_in(&mut w, &new.child_id).await?;
        if !guardians.contains(&new.created_by) {
            return Err(StoreError::Forbidden(
                "you are not a guardian of this child".into(),
            ));
        }
        if let Some(dev) = &new.device_id {
            let row = sqlx::query("SELECT 1 AS one FROM devices WHERE id = $1 AND child_id = $2 AND revoked_at IS NULL")
                .bind(dev)
                .bind(&new.child_id)
                .fetch_optional(&mut *w.tx)
                .await?;
            if row.is_none() {
                return Err(StoreError::NotFound("no such device for this child".into()));
            }
        }
        let cmd = Command {
            id: uuid::Uuid::new_v4().to_string(),
            child_id: new.child_id,
            device_id: new.device_id,
            command_type: new.command_type,
            payload: new.payload,
            status: CommandStatus::Pending,
            created_by: new.created_by,
            created_at: now,
            expires_at: new.expires_at,
            delivered_at: None,
            executed_at: None,
            error: None,
            ack_device_id: None,
        };
        sqlx::query(&format!(
            "INSERT INTO commands ({COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL, NULL, NULL)"
        ))
        .bind(&cmd.id)
        .bind(&cmd.child_id)
        .bind(&cmd.device_id)
        .bind(&cmd.command_type)
        .bind(cmd.payload.to_string())
        .bind(cmd.status.as_str())
        .bind(&cmd.created_by)
        .bind(cmd.created_at)
        .bind(cmd.expires_at)
        .execute(&mut *w.tx)
        .await?;
        Self::log_event_for_all(
            &mut w,
            &guardians,
            "command:sent",
            &cmd.sent_frame_data(),
            now,
        )
        .await?;
        let target = match &cmd.device_id {
            Some(d) => room::device(d),
            None => room::child(&cmd.child_id),
        };
        w.publish(BusMessage::deliver(target, device_frame(&cmd)));
        w.commit().await?;
        metrics::counter!("safestream_commands_total", "status" => "PENDING").increment(1);
        Ok(cmd)
    }

    /// One command.
    pub async fn command(&self, id: &str) -> StoreResult<Option<Command>> {
        let row = sqlx::query(&format!("SELECT {COLS} FROM commands WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(command_from_row).transpose()?)
    }

    /// Commands a device should run: open, unexpired, for its child and either for every
    /// device or for it; oldest first.
    pub async fn pending_for_device(
        &self,
        device_id: &str,
        child_id: &str,
        now: Millis,
    ) -> StoreResult<Vec<Command>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLS} FROM commands WHERE child_id = $1 AND (device_id IS NULL OR device_id = $2) \
             AND status IN ('PENDING', 'DELIVERED') AND expires_at > $3 ORDER BY created_at, id LIMIT 500"
        ))
        .bind(child_id)
        .bind(device_id)
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .iter()
            .map(command_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Records that a command was written to `device_id`. Only the first delivery changes
    /// anything (PENDING -> DELIVERED, guardians told).
    pub async fn mark_delivered(&self, id: &str, device_id: &str, now: Millis) -> StoreResult<()> {
        let mut w = self.begin_write().await?;
        let row = sqlx::query(&format!(
            "UPDATE commands SET status = 'DELIVERED', delivered_at = $3, ack_device_id = $2 \
             WHERE id = $1 AND status = 'PENDING' RETURNING {COLS}"
        ))
        .bind(id)
        .bind(device_id)
        .bind(now)
        .fetch_optional(&mut *w.tx)
        .await?;
        if let Some(row) = row {
            let cmd = command_from_row(&row)?;
            let guardians = guardians_in(&mut w, &cmd.child_id).await?;
            Self::log_event_for_all(
                &mut w,
                &guardians,
                "command:status",
                &cmd.status_frame_data(),
                now,
            )
            .await?;
            w.commit().await?;
            metrics::counter!("safestream_commands_total", "status" => "DELIVERED").increment(1);
        }
        Ok(())
    }

    /// A device's acknowledgment. See `docs/protocol.md` for every case.
    pub async fn ack_command(
        &self,
        id: &str,
        device_id: &str,
        child_id: &str,
        status: CommandStatus,
        error: Option<String>,
        now: Millis,
    ) -> StoreResult<AckOutcome> {
        let mut w = self.begin_write().await?;
        let row = sqlx::query(&format!("SELECT {COLS} FROM commands WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or_else(|| StoreError::NotFound("no such command".into()))?;
        let cmd = command_from_row(&row)?;
        if cmd.child_id != child_id {
            return Err(StoreError::Forbidden(
                "this command is not for your child".into(),
            ));
        }
        if cmd.device_id.as_deref().is_some_and(|d| d != device_id) {
            return Err(StoreError::Forbidden(
                "this command is for another device".into(),
            ));
        }
        let late = cmd.status == CommandStatus::Expired && cmd.delivered_at.is_some();
        if !cmd.status.is_open() && !late {
            if cmd.status == status {
                return Ok(AckOutcome::Unchanged(cmd));
            }
            return Err(StoreError::Conflict(format!(
                "the command is already {}",
                cmd.status.as_str()
            )));
        }
        let row = sqlx::query(&format!(
            "UPDATE commands SET status = $2, executed_at = $3, error = $4, ack_device_id = $5, \
             delivered_at = COALESCE(delivered_at, $3) WHERE id = $1 RETURNING {COLS}"
        ))
        .bind(id)
        .bind(status.as_str())
        .bind(now)
        .bind(error)
        .bind(device_id)
        .fetch_one(&mut *w.tx)
        .await?;
        let cmd = command_from_row(&row)?;
        let guardians = guardians_in(&mut w, &cmd.child_id).await?;
        Self::log_event_for_all(
            &mut w,
            &guardians,
            "command:status",
            &cmd.status_frame_data(),
            now,
        )
        .await?;
        w.commit().await?;
        metrics::counter!("safestream_commands_total", "status" => status.as_str()).increment(1);
        Ok(AckOutcome::Updated(cmd))
    }

    /// Expires up to `limit` open commands whose time has come; guardians are told. Safe to
    /// run on several nodes at once: each command is expired by exactly one of them.
    pub async fn expire_due(&self, now: Millis, limit: i64) -> StoreResult<usize> {
        let mut w = self.begin_write().await?;
        let rows = sqlx::query(&format!(
            "UPDATE commands SET status = 'EXPIRED', error = 'expired' \
             WHERE status IN ('PENDING', 'DELIVERED') AND id IN \
             (SELECT id FROM commands WHERE status IN ('PENDING', 'DELIVERED') AND expires_at <= $1 \
              ORDER BY expires_at LIMIT $2) RETURNING {COLS}"
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *w.tx)
        .await?;
        let n = rows.len();
        for row in rows {
            let mut cmd = command_from_row(&row)?;
            if cmd.delivered_at.is_none() {
                cmd.ack_device_id = None;
            }
            let guardians = guardians_in(&mut w, &cmd.child_id).await?;
            Self::log_event_for_all(
                &mut w,
                &guardians,
                "command:status",
                &cmd.status_frame_data(),
                now,
            )
            .await?;
        }
        w.commit().await?;
        if n > 0 {
            metrics::counter!("safestream_commands_total", "status" => "EXPIRED")
                .increment(n as u64);
        }
        Ok(n)
    }

    /// Commands of the children `user_id` is guardian of, newest first.
    pub async fn list_commands(
        &self,
        user_id: &str,
        f: &CommandFilter,
    ) -> StoreResult<Vec<Command>> {
        let mut sql = format!(
            "SELECT {COLS} FROM commands WHERE child_id IN (SELECT child_id FROM guardians WHERE user_id = $1)"
        );
        let mut n = 1;
        if f.child_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND child_id = ${n}"));
        }
        if f.status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND status = ${n}"));
        }
        if f.before.is_some() {
            n += 1;
            sql.push_str(&format!(" AND created_at < ${n}"));
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT ${}",
            n + 1
        ));
        let mut q = sqlx::query(&sql).bind(user_id);
        if let Some(c) = &f.child_id {
            q = q.bind(c);
        }
        if let Some(s) = f.status {
            q = q.bind(s.as_str());
        }
        if let Some(b) = f.before {
            q = q.bind(b);
        }
        let rows = q.bind(f.limit).fetch_all(&self.reader).await?;
        Ok(rows
            .iter()
            .map(command_from_row)
            .collect::<Result<_, _>>()?)
    }
}
