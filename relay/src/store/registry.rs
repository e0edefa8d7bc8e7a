//! Children, their guardians, and devices.
//!
//! Device authentication (`device_auth`) runs on every device request and socket, so it is
//! served from an in-memory cache that the store keeps exact: devices are never deleted,
//! only revoked, and revocation goes through [`Store::revoke_device`], which updates it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::db::{args, Db, Row};
use super::{Store, StoreError, StoreResult, W};
use crate::model::{Child, Device, Millis};

/// Most devices kept in the authentication cache before it is cleared.
const DEVICE_CACHE_MAX: usize = 200_000;

/// Fields of `PUT /api/children/{id}`; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ChildPatch {
    /// Display name (required to create).
    pub name: Option<String>,
    /// `Some(None)` clears the limit.
    pub daily_limit_minutes: Option<Option<i64>>,
    /// IANA zone, already validated.
    pub timezone: Option<String>,
    /// Replaces the guardian set (backend only).
    pub guardians: Option<Vec<String>>,
}

/// Who is writing a child.
#[derive(Debug, Clone)]
pub enum ChildWriter {
    /// The backend: may create, update and set guardians.
    Backend,
    /// A parent: may create (becoming guardian) or update their own child.
    Parent(String),
}

/// What authenticating a device needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuth {
    /// The child it belongs to.
    pub child_id: String,
    /// Revoked devices are refused everywhere.
    pub revoked: bool,
    /// Which token generations it has (see `rotation.rs`).
    pub token: TokenGens,
}

/// A device's token generations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenGens {
    /// The current generation.
    pub current: i64,
    /// When the current generation was issued (ms).
    pub issued_at: Millis,
    /// The pending generation and when it was issued (ms), while a rotation is pending.
    pub pending: Option<(i64, Millis)>,
}

impl TokenGens {
    /// The generations of a device registered at `at`.
    pub fn first(at: Millis) -> TokenGens {
        TokenGens {
            current: 0,
            issued_at: at,
            pending: None,
        }
    }

    /// Orders the states a device goes through: `(g, none) < (g, pending) < (g + 1, none)`.
    /// The cache keeps the later of two reads, so a slow read never brings back an older
    /// state.
    pub(super) fn order(&self) -> (i64, bool) {
        (self.current, self.pending.is_some())
    }
}

/// Columns read into a [`DeviceAuth`] by [`auth_from_row`].
pub(super) const AUTH_COLS: &str = "child_id, revoked_at, token_gen, \
    COALESCE(token_issued_at, created_at), pending_gen, pending_issued_at";

pub(super) fn auth_from_row(r: &Row<'_>) -> StoreResult<DeviceAuth> {
    Ok(DeviceAuth {
        child_id: r.text(0)?,
        revoked: r.opt_int(1)?.is_some(),
        token: TokenGens {
            current: r.int(2)?,
            issued_at: r.int(3)?,
            pending: match (r.opt_int(4)?, r.opt_int(5)?) {
                (Some(g), Some(at)) => Some((g, at)),
                _ => None,
            },
        },
    })
}

/// Reads what authenticating device `id` needs (`lock`: `FOR UPDATE` on PostgreSQL).
pub(super) fn read_auth(c: Db<'_>, id: &str, lock: bool) -> StoreResult<Option<DeviceAuth>> {
    let lock = if lock { c.for_update() } else { "" };
    c.opt(
        &format!("SELECT {AUTH_COLS} FROM devices WHERE id = ?1{lock}"),
        args![id],
        auth_from_row,
    )
}

const CHILD_COLS: &str = "id, name, daily_limit_minutes, timezone, created_at, updated_at";
pub(super) const DEVICE_COLS: &str = "id, child_id, name, created_at, revoked_at, last_seen";

fn child_from_row(r: &Row<'_>) -> StoreResult<Child> {
    Ok(Child {
        id: r.text(0)?,
        name: r.text(1)?,
        daily_limit_minutes: r.opt_int(2)?,
        timezone: r.text(3)?,
        guardians: Vec::new(),
        created_at: r.int(4)?,
        updated_at: r.int(5)?,
    })
}

pub(super) fn device_from_row(r: &Row<'_>) -> StoreResult<Device> {
    Ok(Device {
        id: r.text(0)?,
        child_id: r.text(1)?,
        name: r.text(2)?,
        created_at: r.int(3)?,
        revoked: r.opt_int(4)?.is_some(),
        last_seen: r.opt_int(5)?,
    })
}

/// Each child's guardians, remembered by SQLite's one writer: three lookups per command
/// (the create's authorization, and the parents told of each transition) were ~4 % of a
/// command's instructions.
///
/// It must never answer what the database would not. Every change to `guardians` on the
/// writer's connection raises `changed` (an SQLite update hook, set when the writer
/// starts), and the next lookup starts empty; a rolled-back job or transaction empties it
/// too ([`super::events::SeqCache`] calls [`GuardianCache::clear`]), since what it
/// remembered may have been read from rows that are gone. One relay process per database
/// (the lock file), so no other writer changes the table under it. SQLite skips the hook
/// for a `DELETE` without `WHERE` (its truncate optimization) and for rows an `INSERT OR
/// REPLACE` deletes: neither may be used on `guardians`.
#[derive(Default)]
pub(super) struct GuardianCache {
    by_child: HashMap<String, Arc<[String]>>,
    changed: Arc<AtomicBool>,
}

/// Children remembered at most (an entry is ~200 bytes: ~2 MiB at most); past it the cache
/// starts empty again. Only writes fill it (commands, notifications, pairings, screen
/// time); a device's connect reads guardians through a reader.
const GUARDIAN_CACHE_MAX: usize = 10_000;

impl GuardianCache {
    /// The flag the writer's update hook raises when a `guardians` row changes.
    pub(super) fn changed_flag(&self) -> Arc<AtomicBool> {
        self.changed.clone()
    }

    /// Forgets everything.
    pub(super) fn clear(&mut self) {
        self.by_child.clear();
    }

    /// [`guardians_of`], remembered.
    pub(super) fn get(&mut self, c: Db<'_>, child_id: &str) -> StoreResult<Arc<[String]>> {
        if self.changed.swap(false, Ordering::Relaxed) || self.by_child.len() >= GUARDIAN_CACHE_MAX
        {
            self.by_child.clear();
        }
        if let Some(g) = self.by_child.get(child_id) {
            return Ok(g.clone());
        }
        let g: Arc<[String]> = guardians_of(c, child_id)?.into();
        self.by_child.insert(child_id.to_string(), g.clone());
        Ok(g)
    }
}

/// The guardians of a child, sorted.
pub(super) fn guardians_of(c: Db<'_>, child_id: &str) -> StoreResult<Vec<String>> {
    c.map(
        "SELECT user_id FROM guardians WHERE child_id = ?1 ORDER BY user_id",
        args![child_id],
        |r| r.text(0),
    )
}

pub(super) fn child_exists(c: Db<'_>, id: &str) -> StoreResult<bool> {
    c.exists("SELECT 1 FROM children WHERE id = ?1", args![id])
}

fn load_child(c: Db<'_>, id: &str) -> StoreResult<Option<Child>> {
    let child = c.opt(
        &format!("SELECT {CHILD_COLS} FROM children WHERE id = ?1"),
        args![id],
        child_from_row,
    )?;
    match child {
        Some(mut ch) => {
            ch.guardians = guardians_of(c, id)?;
            Ok(Some(ch))
        }
        None => Ok(None),
    }
}

/// Inserts a device registered by `created_by` (`"backend"` or a parent's user id).
pub(super) fn insert_device(
    w: &mut W<'_>,
    child_id: &str,
    name: &str,
    created_by: &str,
    now: Millis,
) -> StoreResult<Device> {
    if !child_exists(w.conn, child_id)? {
        return Err(StoreError::NotFound("no such child".into()));
    }
    // Time-ordered like command and notification ids: a child's devices are listed oldest
    // first by (created_at, id), so two registered in one millisecond keep their order.
    let id = uuid::Uuid::now_v7().to_string();
    w.conn.exec(
        "INSERT INTO devices (id, child_id, name, created_by, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        args![id, child_id, name, created_by, now],
    )?;
    let device = Device {
        id,
        child_id: child_id.to_string(),
        name: name.to_string(),
        created_at: now,
        revoked: false,
        last_seen: None,
    };
    w.webhook(wire::webhook::DEVICE_REGISTERED, now, || {
        let mut data = super::webhooks::data_of(&device);
        data["createdBy"] = created_by.into();
        data
    });
    Ok(device)
}

impl Store {
    /// Creates or updates a child. Returns it and whether it was created.
    pub async fn upsert_child(
        &self,
        writer: ChildWriter,
        id: &str,
        patch: ChildPatch,
        now: Millis,
    ) -> StoreResult<(Child, bool)> {
        let id = id.to_string();
        let cache = self.devices.clone();
        self.write(move |w| {
            // Lock the child row (PostgreSQL) so concurrent writers of one child take turns.
            let lock = format!("SELECT id FROM children WHERE id = ?1{}", w.conn.for_update());
            let existing = w.conn.exists(&lock, args![id])?;
            let guardians = guardians_of(w.conn, &id)?;
            if let ChildWriter::Parent(user) = &writer {
                if patch.guardians.is_some() {
                    return Err(StoreError::Forbidden(
                        "only the backend may set guardians".into(),
                    ));
                }
                if existing && !guardians.contains(user) {
                    return Err(StoreError::Forbidden(
                        "you are not a guardian of this child".into(),
                    ));
                }
            }
            if !existing {
                let name = patch.name.clone().ok_or_else(|| {
                    StoreError::BadRequest("name is required to create a child".into())
                })?;
                w.conn.exec(
                    &format!("INSERT INTO children ({CHILD_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"),
                    args![
                        id,
                        name,
                        patch.daily_limit_minutes.flatten(),
                        patch.timezone.clone().unwrap_or_else(|| "UTC".into()),
                        now
                    ],
                )?;
                if let ChildWriter::Parent(user) = &writer {
                    add_guardian(w.conn, &id, user)?;
                }
            } else {
                if let Some(name) = &patch.name {
                    w.conn.exec(
                        "UPDATE children SET name = ?2 WHERE id = ?1",
                        args![id, name],
                    )?;
                }
                if let Some(limit) = patch.daily_limit_minutes {
                    w.conn.exec(
                        "UPDATE children SET daily_limit_minutes = ?2 WHERE id = ?1",
                        args![id, limit],
                    )?;
                }
                if let Some(tz) = &patch.timezone {
                    w.conn.exec(
                        "UPDATE children SET timezone = ?2 WHERE id = ?1",
                        args![id, tz],
                    )?;
                }
                w.conn.exec(
                    "UPDATE children SET updated_at = ?2 WHERE id = ?1",
                    args![id, now],
                )?;
            }
            if let Some(list) = &patch.guardians {
                w.conn
                    .exec("DELETE FROM guardians WHERE child_id = ?1", args![id])?;
                for user in list {
                    add_guardian(w.conn, &id, user)?;
                }
                // A parent the backend no longer lists as guardian keeps nothing on this
                // child: the devices they registered are revoked (see docs/protocol.md).
                let removed: Vec<&String> = guardians.iter().filter(|g| !list.contains(g)).collect();
                for user in removed {
                    let ids: Vec<String> = w.conn.map(
                        "UPDATE devices SET revoked_at = ?3 WHERE child_id = ?1 AND created_by = ?2 \
                         AND revoked_at IS NULL RETURNING id",
                        args![id, user, now],
                        |r| r.text(0),
                    )?;
                    for device_id in ids {
                        w.forget_push(&device_id)?;
                        if let Some(a) = cache.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&device_id) {
                            a.revoked = true;
                        }
                        w.publish(crate::message::BusMessage::RevokeDevice { device_id });
                    }
                }
            }
            let child =
                load_child(w.conn, &id)?.ok_or_else(|| StoreError::Db("child vanished".into()))?;
            Ok((child, !existing))
        })
        .await
    }

    /// A child with its guardians.
    pub async fn child(&self, id: &str) -> StoreResult<Option<Child>> {
        let id = id.to_string();
        self.read(move |c| load_child(c, &id)).await
    }

    /// The children a user is guardian of.
    pub async fn children_of(&self, user_id: &str) -> StoreResult<Vec<Child>> {
        let user_id = user_id.to_string();
        self.read(move |c| {
            let mut out = c.map(
                &format!(
                    "SELECT {CHILD_COLS} FROM children WHERE id IN (SELECT child_id FROM guardians WHERE user_id = ?1) ORDER BY id"
                ),
                args![user_id],
                child_from_row,
            )?;
            for ch in &mut out {
                ch.guardians = guardians_of(c, &ch.id)?;
            }
            Ok(out)
        })
        .await
    }

    /// The guardians of a child (empty if none or no such child).
    pub async fn guardians(&self, child_id: &str) -> StoreResult<Vec<String>> {
        let child_id = child_id.to_string();
        self.read(move |c| guardians_of(c, &child_id)).await
    }

    /// Ok if `user_id` is a guardian of `child_id`; `NotFound` if no such child, else `Forbidden`.
    pub async fn check_guardian(&self, user_id: &str, child_id: &str) -> StoreResult<()> {
        let (user_id, child_id) = (user_id.to_string(), child_id.to_string());
        self.read(move |c| {
            if !child_exists(c, &child_id)? {
                return Err(StoreError::NotFound("no such child".into()));
            }
            if c.exists(
                "SELECT 1 FROM guardians WHERE child_id = ?1 AND user_id = ?2",
                args![child_id, user_id],
            )? {
                Ok(())
            } else {
                Err(StoreError::Forbidden(
                    "you are not a guardian of this child".into(),
                ))
            }
        })
        .await
    }

    /// Registers a device for a child; `created_by` is `"backend"` or the parent's user id.
    pub async fn create_device(
        &self,
        child_id: &str,
        name: &str,
        created_by: &str,
        now: Millis,
    ) -> StoreResult<Device> {
        let (child_id, name, by) = (
            child_id.to_string(),
            name.to_string(),
            created_by.to_string(),
        );
        let d = self
            .write(move |w| insert_device(w, &child_id, &name, &by, now))
            .await?;
        self.cache_device(
            &d.id,
            DeviceAuth {
                child_id: d.child_id.clone(),
                revoked: false,
                token: TokenGens::first(d.created_at),
            },
        );
        Ok(d)
    }

    pub(super) fn cache_device(&self, id: &str, auth: DeviceAuth) {
        let mut cache = self.devices.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= DEVICE_CACHE_MAX && !cache.contains_key(id) {
            cache.clear();
        }
        // Never un-revoke: a lookup that read the row before a revocation committed may
        // finish after it (devices are never un-revoked, so `true` is always right).
        // Token generations only move forward: keep the later state.
        match cache.get_mut(id) {
            Some(cur) => {
                cur.revoked |= auth.revoked;
                if auth.token.order() > cur.token.order() {
                    cur.token = auth.token;
                }
            }
            None => {
                cache.insert(id.to_string(), auth);
            }
        }
    }

    /// What authenticating device `id` needs: its child and whether it is revoked.
    pub async fn device_auth(&self, id: &str) -> StoreResult<Option<DeviceAuth>> {
        if let Some(a) = self
            .devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            return Ok(Some(a.clone()));
        }
        self.device_auth_fresh(id).await
    }

    /// [`Store::device_auth`] read from the database (and cached).
    pub async fn device_auth_fresh(&self, id: &str) -> StoreResult<Option<DeviceAuth>> {
        let key = id.to_string();
        let auth = self.read(move |c| read_auth(c, &key, false)).await?;
        if let Some(a) = &auth {
            self.cache_device(id, a.clone());
        }
        Ok(auth)
    }

    /// Forgets a cached device (this or another node revoked it).
    pub fn forget_device(&self, id: &str) {
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
    }

    /// Forgets every cached device (a revocation from another node may have been missed:
    /// the next authentication of each reads the database).
    pub fn forget_all_devices(&self) {
        self.devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Devices revoked in `[from, to)` (the cluster's in-flight sweep: a node that died
    /// between the revocation's COMMIT and its publication told no other node).
    pub async fn recently_revoked(&self, from: Millis, to: Millis) -> StoreResult<Vec<String>> {
        self.read(move |c| {
            c.map(
                "SELECT id FROM devices WHERE revoked_at >= ?1 AND revoked_at < ?2 LIMIT 1000",
                args![from, to],
                |r| r.text(0),
            )
        })
        .await
    }

    /// One device.
    pub async fn device(&self, id: &str) -> StoreResult<Option<Device>> {
        let id = id.to_string();
        self.read(move |c| {
            c.opt(
                &format!("SELECT {DEVICE_COLS} FROM devices WHERE id = ?1"),
                args![id],
                device_from_row,
            )
        })
        .await
    }

    /// The devices of a child, oldest first.
    pub async fn devices_of(&self, child_id: &str) -> StoreResult<Vec<Device>> {
        let child_id = child_id.to_string();
        self.read(move |c| {
            c.map(
                &format!(
                    "SELECT {DEVICE_COLS} FROM devices WHERE child_id = ?1 ORDER BY created_at, id"
                ),
                args![child_id],
                device_from_row,
            )
        })
        .await
    }

    /// Revokes a device (idempotent) and tells every node to close its sockets.
    pub async fn revoke_device(&self, id: &str, now: Millis) -> StoreResult<Device> {
        // Refuse the device from this moment, before the write even commits.
        if let Some(a) = self
            .devices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(id)
        {
            a.revoked = true;
        }
        let key = id.to_string();
        let (d, auth) = self
            .write(move |w| {
                let id = key;
                let revoked = w.conn.exec(
                    "UPDATE devices SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                    args![id, now],
                )? == 1;
                let d = w
                    .conn
                    .opt(
                        &format!("SELECT {DEVICE_COLS} FROM devices WHERE id = ?1"),
                        args![id],
                        device_from_row,
                    )?
                    .ok_or_else(|| StoreError::NotFound("no such device".into()))?;
                let auth = read_auth(w.conn, &id, false)?;
                if revoked {
                    w.forget_push(&id)?;
                    w.webhook(wire::webhook::DEVICE_REVOKED, now, || &d);
                }
                w.publish(crate::message::BusMessage::RevokeDevice {
                    device_id: d.id.clone(),
                });
                Ok((d, auth))
            })
            .await?;
        if let Some(auth) = auth {
            self.cache_device(&d.id, auth);
        }
        Ok(d)
    }

    /// Records when a device was last seen (when its last socket ended).
    pub async fn set_last_seen(&self, device_id: &str, at: Millis) -> StoreResult<()> {
        let device_id = device_id.to_string();
        self.write(move |w| {
            w.conn.exec(
                "UPDATE devices SET last_seen = ?2 WHERE id = ?1",
                args![device_id, at],
            )?;
            Ok(())
        })
        .await
    }
}

fn add_guardian(c: Db<'_>, child_id: &str, user_id: &str) -> StoreResult<()> {
    c.exec(
        "INSERT INTO guardians (child_id, user_id) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
        args![child_id, user_id],
    )?;
    Ok(())
}

impl crate::bus::DeviceCache for Store {
    fn forget_device(&self, id: &str) {
        Store::forget_device(self, id);
    }
    fn forget_all_devices(&self) {
        Store::forget_all_devices(self);
    }
}
