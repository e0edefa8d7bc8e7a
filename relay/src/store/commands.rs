//! The command lifecycle: PENDING -> DELIVERED -> EXECUTED | FAILED, and -> EXPIRED.
//!
//! Every transition is one write that also logs `command:status` (or `command:sent`) for
//! every guardian, so a parent that resumes sees each transition exactly once.

use serde_json::Value;

use super::db::{args, Arg, Db, Row};
use super::registry::child_exists;
use super::write::W;
use super::{Store, StoreError, StoreResult};
use crate::message::{room, BusMessage, OutFrame};
use crate::model::{Command, CommandStatus, CommandType, Millis};
use wire::{event, webhook};

/// A validated `POST /api/dashboard/remote-control`.
#[derive(Debug, Clone)]
pub struct NewCommand {
    /// The parent sending it.
    pub created_by: String,
    /// Target child.
    pub child_id: String,
    /// Target device, or every device of the child.
    pub device_id: Option<String>,
    /// What to do.
    pub command_type: CommandType,
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

/// The columns [`command_from_row`] reads, in its order (a macro, so that the hot
/// statements are `concat!`ed constants instead of a `format!` per run).
macro_rules! cols {
    () => {
        "id, child_id, device_id, command_type, payload, status, created_by, created_at, \
         expires_at, delivered_at, executed_at, error, ack_device_id"
    };
}
const COLS: &str = cols!();
/// One command by id.
const SELECT_BY_ID: &str = concat!("SELECT ", cols!(), " FROM commands WHERE id = ?1");
/// What an ack records.
macro_rules! ack_record {
    () => {
        "UPDATE commands SET status = ?2, executed_at = ?3, error = ?4, \
         ack_device_id = ?5, delivered_at = COALESCE(delivered_at, ?3) WHERE id = ?1"
    };
}

fn command_from_row(r: &Row<'_>) -> StoreResult<Command> {
    let status = r.text(5)?;
    let payload = r.text(4)?;
    let command_type = r.text(3)?;
    Ok(Command {
        id: r.text(0)?,
        child_id: r.text(1)?,
        device_id: r.opt_text(2)?,
        command_type,
        payload: serde_json::from_str(&payload).unwrap_or(Value::Null),
        status: CommandStatus::parse(&status)
            .ok_or_else(|| StoreError::Db(format!("unknown command status {status}")))?,
        created_by: r.text(6)?,
        created_at: r.int(7)?,
        expires_at: r.int(8)?,
        delivered_at: r.opt_int(9)?,
        executed_at: r.opt_int(10)?,
        error: r.opt_text(11)?,
        ack_device_id: r.opt_text(12)?,
    })
}

/// Runs `update` (an `UPDATE commands ... WHERE id = ?1 ...`) and returns the updated row,
/// if any. PostgreSQL: with `RETURNING` (one round trip, and the row as this statement left
/// it). SQLite: the `UPDATE`, then a read by key in the same transaction of the one writer —
/// the same row, without the ephemeral table SQLite builds for every `RETURNING` (~20,000
/// instructions, a tenth of a transition's cost; BENCHMARKS.md, 2026-12-06).
fn update_returning(
    db: Db<'_>,
    update: &str,
    args: &[Arg<'_>],
    id: &str,
) -> StoreResult<Option<Command>> {
    if db.is_pg() {
        return db.opt(
            &format!("{update} RETURNING {COLS}"),
            args,
            command_from_row,
        );
    }
    if db.exec(update, args)? == 0 {
        return Ok(None);
    }
    db.opt(SELECT_BY_ID, args![id], command_from_row)
}

/// PENDING -> DELIVERED for each of `ids` still PENDING; guardians told. Returns how many
/// changed.
fn deliver(w: &mut W<'_>, ids: Vec<String>, device_id: &str, now: Millis) -> StoreResult<usize> {
    let mut changed = 0;
    for id in ids {
        let row = update_returning(
            w.conn,
            "UPDATE commands SET status = 'DELIVERED', delivered_at = ?3, ack_device_id = ?2 \
             WHERE id = ?1 AND status = 'PENDING'",
            args![id, device_id, now],
            &id,
        )?;
        if let Some(cmd) = row {
            // First delivery only: re-sends after a reconnect do not skew it.
            metrics::histogram!("safestream_delivery_latency_seconds")
                .record((now - cmd.created_at).max(0) as f64 / 1000.0);
            tell_guardians(w, &cmd, now)?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Logs `command:status` for every guardian of `cmd`'s child and its webhook event: what
/// each status change tells.
fn tell_guardians(w: &mut W<'_>, cmd: &Command, now: Millis) -> StoreResult<()> {
    let guardians = w.guardians(&cmd.child_id)?;
    Store::log_event_for_all(
        w,
        &guardians,
        event::COMMAND_STATUS,
        &cmd.status_frame(),
        now,
    )?;
    w.webhook(webhook::COMMAND_STATUS, now, || cmd);
    Ok(())
}

/// Counts first deliveries, once they are committed.
fn count_delivered(n: usize) {
    if n > 0 {
        metrics::counter!("safestream_commands_total", "status" => "DELIVERED").increment(n as u64);
    }
}

impl Store {
    /// Creates a command if `created_by` is a guardian of the child; logs `command:sent` for
    /// every guardian and sends `command:new` to the target devices.
    pub async fn create_command(&self, new: NewCommand, now: Millis) -> StoreResult<Command> {
        // Every refusal comes before the first write.
        let cmd = self
            .write_checks_first(move |w| {
                // A guardian row implies the child (foreign key): the child's existence is
                // only looked up to tell 404 from 403.
                let guardians = w.guardians(&new.child_id)?;
                if !guardians.contains(&new.created_by) {
                    if !child_exists(w.conn, &new.child_id)? {
                        return Err(StoreError::NotFound("no such child".into()));
                    }
                    return Err(StoreError::Forbidden("you are not a guardian of this child".into()));
                }
                if let Some(dev) = &new.device_id {
                    if !w.conn.exists(
                        "SELECT 1 FROM devices WHERE id = ?1 AND child_id = ?2 AND revoked_at IS NULL",
                        args![dev, new.child_id],
                    )? {
                        return Err(StoreError::NotFound("no such device for this child".into()));
                    }
                }
                let cmd = Command {
                    id: uuid::Uuid::now_v7().to_string(),
                    child_id: new.child_id,
                    device_id: new.device_id,
                    command_type: new.command_type.as_str().to_owned(),
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
                w.conn.exec(
                    concat!(
                        "INSERT INTO commands (",
                        cols!(),
                        ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, NULL, NULL, NULL)"
                    ),
                    args![
                        cmd.id,
                        cmd.child_id,
                        cmd.device_id,
                        cmd.command_type,
                        cmd.payload.to_string(),
                        cmd.status.as_str(),
                        cmd.created_by,
                        cmd.created_at,
                        cmd.expires_at
                    ],
                )?;
                Self::log_event_for_all(w, &guardians, event::COMMAND_SENT, &cmd.sent_frame(), now)?;
                w.webhook(webhook::COMMAND_STATUS, now, || &cmd);
                // The wake-up of a sleeping phone, in this same transaction.
                w.wake_devices(&cmd.child_id, cmd.device_id.as_deref(), now)?;
                let target = match &cmd.device_id {
                    Some(d) => room::device(d),
                    None => room::child(&cmd.child_id),
                };
                w.publish(BusMessage::deliver(target, OutFrame::command_new(&cmd)));
                Ok(cmd)
            })
            .await?;
        metrics::counter!("safestream_commands_total", "status" => "PENDING").increment(1);
        Ok(cmd)
    }

    /// One command.
    pub async fn command(&self, id: &str) -> StoreResult<Option<Command>> {
        let id = id.to_string();
        self.read(move |c| c.opt(SELECT_BY_ID, args![id], command_from_row))
            .await
    }

    /// Commands a device should run: open, unexpired, for its child and either for every
    /// device or for it; oldest first.
    ///
    /// One page of at most `limit`, after `after` (the `(created_at, id)` of the last command
    /// of the previous page).
    pub async fn pending_for_device(
        &self,
        device_id: &str,
        child_id: &str,
        now: Millis,
        after: Option<(Millis, String)>,
        limit: i64,
    ) -> StoreResult<Vec<Command>> {
        let (device_id, child_id) = (device_id.to_string(), child_id.to_string());
        let (after_at, after_id) = after.unwrap_or((i64::MIN, String::new()));
        self.read(move |c| {
            c.map(
                &format!(
                    "SELECT {COLS} FROM commands WHERE child_id = ?1 AND (device_id IS NULL OR device_id = ?2) \
                     AND status IN ('PENDING', 'DELIVERED') AND expires_at > ?3 \
                     AND (created_at > ?4 OR (created_at = ?4 AND id > ?5)) \
                     ORDER BY created_at, id LIMIT ?6"
                ),
                args![child_id, device_id, now, after_at, after_id, limit],
                command_from_row,
            )
        })
        .await
    }

    /// Commands still PENDING that were created in `[from, to)`, unexpired at `now`, newest
    /// first (the cluster's in-flight sweep: with more than `limit`, mostly commands for
    /// offline devices, the newest are the ones a dead node may not have announced).
    pub async fn recent_pending(
        &self,
        from: Millis,
        to: Millis,
        now: Millis,
        limit: i64,
    ) -> StoreResult<Vec<Command>> {
        self.read(move |c| {
            c.map(
                &format!(
                    "SELECT {COLS} FROM commands WHERE status = 'PENDING' AND created_at >= ?1 \
                     AND created_at < ?2 AND expires_at > ?3 ORDER BY created_at DESC LIMIT ?4"
                ),
                args![from, to, now, limit],
                command_from_row,
            )
        })
        .await
    }

    /// Records that commands were written to `device_id`. Only a first delivery changes
    /// anything (PENDING -> DELIVERED, guardians told).
    pub async fn mark_delivered(
        &self,
        ids: Vec<String>,
        device_id: &str,
        now: Millis,
    ) -> StoreResult<usize> {
        let device_id = device_id.to_string();
        let n = self
            .write_checks_first(move |w| deliver(w, ids, &device_id, now))
            .await?;
        count_delivered(n);
        Ok(n)
    }

    /// [`Store::mark_delivered`] without waiting: the record joins the next write, or commits
    /// within a few milliseconds (see `Store::write_later`). What a socket session uses
    /// after writing commands to its device.
    pub fn mark_delivered_later(&self, ids: Vec<String>, device_id: &str, now: Millis) {
        let device_id = device_id.to_string();
        self.write_later(
            "could not record delivery",
            move |w| deliver(w, ids, &device_id, now),
            count_delivered,
        );
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
        let (id, device_id, child_id) =
            (id.to_string(), device_id.to_string(), child_id.to_string());
        // Every refusal (no such command, not yours, already done) comes after an `UPDATE`
        // that changed nothing and before any write.
        let out = self
            .write_checks_first(move |w| {
                let record = ack_record!();
                // The usual case in one statement: an open command (or an expired one: a late
                // ack, see below) of this device's child, for every device or for this one.
                // Anything else is looked at next, to answer why. "Not EXECUTED or FAILED" is
                // PENDING, DELIVERED or EXPIRED, written with two values: SQLite compares a
                // list of at most two, and builds an ephemeral table for a longer one at every
                // execution (~10,000 instructions, 2 % of a command; BENCHMARKS.md, 2026-12-07).
                let usual = update_returning(
                    w.conn,
                    concat!(
                        ack_record!(),
                        " AND child_id = ?6 AND (device_id IS NULL OR device_id = ?5) \
                         AND status NOT IN ('EXECUTED', 'FAILED')"
                    ),
                    args![id, status.as_str(), now, error, device_id, child_id],
                    &id,
                )?;
                let cmd = match usual {
                    Some(cmd) => cmd,
                    None => {
                        // Locked (PostgreSQL) until commit: an expiry or another ack on another
                        // node waits for this one and then sees its outcome.
                        let cmd = w
                            .conn
                            .opt(
                                &format!(
                                    "SELECT {COLS} FROM commands WHERE id = ?1{}",
                                    w.conn.for_update()
                                ),
                                args![id],
                                command_from_row,
                            )?
                            .ok_or_else(|| StoreError::NotFound("no such command".into()))?;
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
                        // A late ack after expiry is recorded whether or not `delivered_at` is: a
                        // socket delivery is recorded after the frame is written, so a relay that
                        // dies in between (or a write that fails after the device read it) leaves
                        // no record of a command the device did get, and only a device that got
                        // the id can ack it. Refusing it left EXPIRED for a command that ran
                        // (found by the model checker, `model/`, RELIABILITY.md).
                        let late = cmd.status == CommandStatus::Expired;
                        if !cmd.status.is_open() && !late {
                            if cmd.status == status {
                                return Ok(AckOutcome::Unchanged(cmd));
                            }
                            return Err(StoreError::Conflict(format!(
                                "the command is already {}",
                                cmd.status.as_str()
                            )));
                        }
                        update_returning(
                            w.conn,
                            record,
                            args![id, status.as_str(), now, error, device_id],
                            &id,
                        )?
                        .ok_or_else(|| StoreError::Db("the command vanished".into()))?
                    }
                };
                tell_guardians(w, &cmd, now)?;
                Ok(AckOutcome::Updated(cmd))
            })
            .await?;
        if let AckOutcome::Updated(_) = &out {
            metrics::counter!("safestream_commands_total", "status" => status.as_str())
                .increment(1);
        }
        Ok(out)
    }

    /// Expires up to `limit` open commands whose time has come; guardians are told. Each
    /// command is expired by exactly one writer (the status is re-checked by the UPDATE).
    /// The inner query names both definitions of "open" so that either engine's partial
    /// `commands_open` index serves it (SQLite's is by `executed_at`/`error`, migration 8).
    pub async fn expire_due(&self, now: Millis, limit: i64) -> StoreResult<usize> {
        // Nothing due is the usual answer: a reader says so without taking the write lock
        // (the sweep runs twice a second, busy or idle).
        let due = self
            .read(move |c| {
                c.exists(
                    "SELECT 1 FROM commands WHERE status IN ('PENDING', 'DELIVERED') \
                     AND executed_at IS NULL AND error IS NULL AND expires_at <= ?1 LIMIT 1",
                    args![now],
                )
            })
            .await?;
        if !due {
            return Ok(0);
        }
        let n = self
            .write(move |w| {
                let rows = w.conn.map(
                    &format!(
                        "UPDATE commands SET status = 'EXPIRED', error = 'expired' \
                         WHERE status IN ('PENDING', 'DELIVERED') AND id IN \
                         (SELECT id FROM commands WHERE status IN ('PENDING', 'DELIVERED') \
                          AND executed_at IS NULL AND error IS NULL AND expires_at <= ?1 \
                          ORDER BY expires_at LIMIT ?2) RETURNING {COLS}"
                    ),
                    args![now, limit],
                    command_from_row,
                )?;
                for mut cmd in rows.iter().cloned() {
                    if cmd.delivered_at.is_none() {
                        cmd.ack_device_id = None;
                    }
                    tell_guardians(w, &cmd, now)?;
                }
                Ok(rows.len())
            })
            .await?;
        if n > 0 {
            metrics::counter!("safestream_commands_total", "status" => "EXPIRED")
                .increment(n as u64);
        }
        Ok(n)
    }

    /// How many commands are in each status (for `/metrics`).
    pub async fn command_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        self.read(|c| {
            c.map(
                "SELECT status, COUNT(*) FROM commands GROUP BY status",
                args![],
                |r| Ok((r.text(0)?, r.int(1)?)),
            )
        })
        .await
    }

    /// Deletes finished commands (executed, failed, expired) created before `before`.
    pub async fn prune_commands(&self, before: Millis) -> StoreResult<u64> {
        self.write(move |w| {
            w.conn.exec(
                "DELETE FROM commands WHERE created_at < ?1 AND status IN ('EXECUTED', 'FAILED', 'EXPIRED')",
                args![before],
            )
        })
        .await
    }

    /// Children with open commands (PENDING or DELIVERED, unexpired at `now`), most first,
    /// at most `limit` (the admin overview; every family).
    pub async fn pending_by_child(
        &self,
        now: Millis,
        limit: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        self.read(move |c| {
            c.map(
                "SELECT child_id, COUNT(*) FROM commands WHERE status IN ('PENDING', 'DELIVERED') \
                 AND executed_at IS NULL AND error IS NULL AND expires_at > ?1 GROUP BY child_id ORDER BY 2 DESC, child_id LIMIT ?2",
                args![now, limit],
                |r| Ok((r.text(0)?, r.int(1)?)),
            )
        })
        .await
    }

    /// The newest FAILED and EXPIRED commands of every family, newest first (the admin
    /// overview).
    pub async fn recent_failures(&self, limit: i64) -> StoreResult<Vec<Command>> {
        self.read(move |c| {
            c.map(
                &format!(
                    "SELECT {COLS} FROM commands WHERE status IN ('FAILED', 'EXPIRED') \
                     ORDER BY created_at DESC, id DESC LIMIT ?1"
                ),
                args![limit],
                command_from_row,
            )
        })
        .await
    }

    /// Commands of the children `user_id` is guardian of, newest first.
    pub async fn list_commands(
        &self,
        user_id: &str,
        f: &CommandFilter,
    ) -> StoreResult<Vec<Command>> {
        let mut sql = format!(
            "SELECT {COLS} FROM commands WHERE child_id IN (SELECT child_id FROM guardians WHERE user_id = ?1)"
        );
        let (user_id, f) = (user_id.to_string(), f.clone());
        let mut n = 1;
        if f.child_id.is_some() {
            n += 1;
            sql.push_str(&format!(" AND child_id = ?{n}"));
        }
        if f.status.is_some() {
            n += 1;
            sql.push_str(&format!(" AND status = ?{n}"));
        }
        if f.before.is_some() {
            n += 1;
            sql.push_str(&format!(" AND created_at < ?{n}"));
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id DESC LIMIT ?{}",
            n + 1
        ));
        self.read(move |c| {
            let mut a: Vec<Arg<'_>> = vec![Arg::Text(&user_id)];
            if let Some(child) = &f.child_id {
                a.push(Arg::Text(child));
            }
            if let Some(s) = f.status {
                a.push(Arg::Text(s.as_str()));
            }
            if let Some(b) = f.before {
                a.push(Arg::Int(b));
            }
            a.push(Arg::Int(f.limit));
            c.map(&sql, &a, command_from_row)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::NewCommand;
    use crate::model::CommandType;
    use crate::store::db::args;
    use crate::store::{test_store, ChildPatch, ChildWriter, StoreError};

    /// A relay reads back a command of a type it does not know (one a newer relay created,
    /// during a rolling deploy or after a rollback) instead of failing the device's whole
    /// delivery: the agent answers it FAILED "unsupported".
    #[tokio::test]
    async fn a_command_of_an_unknown_type_is_read_back_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(&dir).await;
        let now = 1_700_000_000_000;
        let patch = ChildPatch {
            name: Some("Kid".into()),
            guardians: Some(vec!["u1".into()]),
            ..Default::default()
        };
        store
            .upsert_child(ChildWriter::Backend, "k1", patch, now)
            .await
            .unwrap();
        let new = NewCommand {
            created_by: "u1".into(),
            child_id: "k1".into(),
            device_id: None,
            command_type: CommandType::Pause,
            payload: serde_json::json!({}),
            expires_at: now + 60_000,
        };
        let cmd = store.create_command(new, now).await.unwrap();
        store
            .write(|w| {
                w.conn.exec(
                    "UPDATE commands SET command_type = 'TELEPORT' WHERE child_id = ?1",
                    args!["k1"],
                )
            })
            .await
            .unwrap();
        let back = store.command(&cmd.id).await.unwrap().unwrap();
        assert_eq!(back.command_type, "TELEPORT");
        assert_eq!(back.device_frame().command_type, "TELEPORT");
    }

    /// The writer remembers guardians (`registry::GuardianCache`), but a command is only
    /// ever authorized by the guardians the database holds: after the backend replaces
    /// them, and after a write that changed them (and read them back) was rolled back.
    #[tokio::test]
    async fn commands_are_authorized_by_the_guardians_the_database_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = test_store(&dir).await;
        let now = 1_700_000_000_000;
        let set = |guardians: &[&str]| ChildPatch {
            name: Some("Kid".into()),
            guardians: Some(guardians.iter().map(|g| g.to_string()).collect()),
            ..Default::default()
        };
        let new = |by: &str| NewCommand {
            created_by: by.into(),
            child_id: "k1".into(),
            device_id: None,
            command_type: CommandType::Pause,
            payload: serde_json::json!({}),
            expires_at: now + 60_000,
        };
        let forbidden = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Forbidden(_)));
        store
            .upsert_child(ChildWriter::Backend, "k1", set(&["u1"]), now)
            .await
            .unwrap();
        store.create_command(new("u1"), now).await.unwrap();
        store
            .upsert_child(ChildWriter::Backend, "k1", set(&["u2"]), now)
            .await
            .unwrap();
        assert!(forbidden(store.create_command(new("u1"), now).await));
        store.create_command(new("u2"), now).await.unwrap();
        let undone = store
            .write(|w| {
                w.conn
                    .exec("DELETE FROM guardians WHERE child_id = ?1", args!["k1"])?;
                w.conn.exec(
                    "INSERT INTO guardians (child_id, user_id) VALUES (?1, ?2)",
                    args!["k1", "u3"],
                )?;
                assert_eq!(&*w.guardians("k1")?, ["u3".to_string()]);
                Err::<(), _>(StoreError::Conflict("changed my mind".into()))
            })
            .await;
        assert!(matches!(undone, Err(StoreError::Conflict(_))));
        assert!(forbidden(store.create_command(new("u3"), now).await));
        store.create_command(new("u2"), now).await.unwrap();
    }
}
