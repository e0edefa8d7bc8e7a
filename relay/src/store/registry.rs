//! Children, their guardians, and devices.

use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use super::{Store, StoreError, StoreResult, WriteTx};
use crate::model::{Child, Device, Millis};

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

const CHILD_COLS: &str = "id, name, daily_limit_minutes, timezone, created_at, updated_at";
const DEVICE_COLS: &str = "id, child_id, name, created_at, revoked_at, last_seen";

fn child_from_row(r: &AnyRow, guardians: Vec<String>) -> Result<Child, sqlx::Error> {
    Ok(Child {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        daily_limit_minutes: r.try_get("daily_limit_minutes")?,
        timezone: r.try_get("timezone")?,
        guardians,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub(super) fn device_from_row(r: &AnyRow) -> Result<Device, sqlx::Error> {
    Ok(Device {
        id: r.try_get("id")?,
        child_id: r.try_get("child_id")?,
        name: r.try_get("name")?,
        created_at: r.try_get("created_at")?,
        revoked: r.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
        last_seen: r.try_get("last_seen")?,
    })
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
        let mut w = self.begin_write().await?;
        let existing = sqlx::query(&format!("SELECT {CHILD_COLS} FROM children WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *w.tx)
            .await?;
        let guardians = guardians_in(&mut w, id).await?;
        if let ChildWriter::Parent(user) = &writer {
            if patch.guardians.is_some() {
                return Err(StoreError::Forbidden(
                    "only the backend may set guardians".into(),
                ));
            }
            if existing.is_some() && !guardians.contains(user) {
                return Err(StoreError::Forbidden(
                    "you are not a guardian of this child".into(),
                ));
            }
        }
        let created = existing.is_none();
        if created {
            let name = patch.name.clone().ok_or_else(|| {
                StoreError::BadRequest("name is required to create a child".into())
            })?;
            sqlx::query(&format!(
                "INSERT INTO children ({CHILD_COLS}) VALUES ($1, $2, $3, $4, $5, $5)"
            ))
            .bind(id)
            .bind(name)
            .bind(patch.daily_limit_minutes.flatten())
            .bind(patch.timezone.clone().unwrap_or_else(|| "UTC".into()))
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
            if let ChildWriter::Parent(user) = &writer {
                add_guardian(&mut w, id, user).await?;
            }
        } else {
            let mut sets = vec![];
            let mut n = 1;
            if patch.name.is_some() {
                n += 1;
                sets.push(format!("name = ${n}"));
            }
            if patch.daily_limit_minutes.is_some() {
                n += 1;
                sets.push(format!("daily_limit_minutes = ${n}"));
            }
            if patch.timezone.is_some() {
                n += 1;
                sets.push(format!("timezone = ${n}"));
            }
            sets.push(format!("updated_at = ${}", n + 1));
            let sql = format!("UPDATE children SET {} WHERE id = $1", sets.join(", "));
            let mut q = sqlx::query(&sql).bind(id);
            if let Some(name) = patch.name.clone() {
                q = q.bind(name);
            }
            if let Some(limit) = patch.daily_limit_minutes {
                q = q.bind(limit);
            }
            if let Some(tz) = patch.timezone.clone() {
                q = q.bind(tz);
            }
            q.bind(now).execute(&mut *w.tx).await?;
        }
        if let Some(list) = &patch.guardians {
            sqlx::query("DELETE FROM guardians WHERE child_id = $1")
                .bind(id)
                .execute(&mut *w.tx)
                .await?;
            for user in list {
                add_guardian(&mut w, id, user).await?;
            }
        }
        let row = sqlx::query(&format!("SELECT {CHILD_COLS} FROM children WHERE id = $1"))
            .bind(id)
            .fetch_one(&mut *w.tx)
            .await?;
        let guardians = guardians_in(&mut w, id).await?;
        let child = child_from_row(&row, guardians)?;
        w.commit().await?;
        Ok((child, created))
    }

    /// A child with its guardians.
    pub async fn child(&self, id: &str) -> StoreResult<Option<Child>> {
        let row = sqlx::query(&format!("SELECT {CHILD_COLS} FROM children WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        match row {
            Some(r) => {
                let g = self.guardians(id).await?;
                Ok(Some(child_from_row(&r, g)?))
            }
            None => Ok(None),
        }
    }

    /// The children a user is guardian of.
    pub async fn children_of(&self, user_id: &str) -> StoreResult<Vec<Child>> {
        let rows = sqlx::query(&format!(
            "SELECT {CHILD_COLS} FROM children WHERE id IN (SELECT child_id FROM guardians WHERE user_id = $1) ORDER BY id"
        ))
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("id")?;
            let g = self.guardians(&id).await?;
            out.push(child_from_row(&r, g)?);
        }
        Ok(out)
    }

    /// The guardians of a child (empty if none or no such child).
    pub async fn guardians(&self, child_id: &str) -> StoreResult<Vec<String>> {
        guardians_of(&self.reader, child_id).await
    }

    /// Whether `user_id` is a guardian of `child_id`; `Err(NotFound)` if no such child.
    pub async fn check_guardian(&self, user_id: &str, child_id: &str) -> StoreResult<()> {
        let exists = sqlx::query("SELECT 1 AS one FROM children WHERE id = $1")
            .bind(child_id)
            .fetch_optional(&self.reader)
            .await?
            .is_some();
        if !exists {
            return Err(StoreError::NotFound("no such child".into()));
        }
        let g = sqlx::query("SELECT 1 AS one FROM guardians WHERE child_id = $1 AND user_id = $2")
            .bind(child_id)
            .bind(user_id)
            .fetch_optional(&self.reader)
            .await?;
        if g.is_some() {
            Ok(())
        } else {
            Err(StoreError::Forbidden(
                "you are not a guardian of this child".into(),
            ))
        }
    }

    /// Registers a device for a child.
    pub async fn create_device(
        &self,
        child_id: &str,
        name: &str,
        now: Millis,
    ) -> StoreResult<Device> {
        let mut w = self.begin_write().await?;
        let d = insert_device(&mut w, child_id, name, now).await?;
        w.commit().await?;
        Ok(d)
    }

    /// One device.
    pub async fn device(&self, id: &str) -> StoreResult<Option<Device>> {
        let row = sqlx::query(&format!("SELECT {DEVICE_COLS} FROM devices WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.as_ref().map(device_from_row).transpose()?)
    }

    /// The devices of a child, oldest first.
    pub async fn devices_of(&self, child_id: &str) -> StoreResult<Vec<Device>> {
        let rows = sqlx::query(&format!(
            "SELECT {DEVICE_COLS} FROM devices WHERE child_id = $1 ORDER BY created_at, id"
        ))
        .bind(child_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.iter().map(device_from_row).collect::<Result<_, _>>()?)
    }

    /// Revokes a device (idempotent) and tells every node to close its sockets.
    pub async fn revoke_device(&self, id: &str, now: Millis) -> StoreResult<Device> {
        let mut w = self.begin_write().await?;
        sqlx::query("UPDATE devices SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        let row = sqlx::query(&format!("SELECT {DEVICE_COLS} FROM devices WHERE id = $1"))
            .bind(id)
            .fetch_optional(&mut *w.tx)
            .await?
            .ok_or_else(|| StoreError::NotFound("no such device".into()))?;
        let d = device_from_row(&row)?;
        w.publish(crate::bus::BusMessage::RevokeDevice {
            device_id: d.id.clone(),
        });
        w.commit().await?;
        Ok(d)
    }

    /// Records when a device was last seen (when its last socket ended).
    pub async fn set_last_seen(&self, device_id: &str, at: Millis) -> StoreResult<()> {
        let mut w = self.begin_write().await?;
        sqlx::query("UPDATE devices SET last_seen = $2 WHERE id = $1")
            .bind(device_id)
            .bind(at)
            .execute(&mut *w.tx)
            .await?;
        w.commit().await?;
        Ok(())
    }
}

pub(super) async fn guardians_of(pool: &AnyPool, child_id: &str) -> StoreResult<Vec<String>> {
    let rows = sqlx::query("SELECT user_id FROM guardians WHERE child_id = $1 ORDER BY user_id")
        .bind(child_id)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>("user_id"))
        .collect::<Result<_, _>>()?)
}

pub(super) async fn guardians_in(w: &mut WriteTx<'_>, child_id: &str) -> StoreResult<Vec<String>> {
    let rows = sqlx::query("SELECT user_id FROM guardians WHERE child_id = $1 ORDER BY user_id")
        .bind(child_id)
        .fetch_all(&mut *w.tx)
        .await?;
    Ok(rows
        .iter()
        .map(|r| r.try_get::<String, _>("user_id"))
        .collect::<Result<_, _>>()?)
}

async fn add_guardian(w: &mut WriteTx<'_>, child_id: &str, user_id: &str) -> StoreResult<()> {
    sqlx::query("INSERT INTO guardians (child_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(child_id)
        .bind(user_id)
        .execute(&mut *w.tx)
        .await?;
    Ok(())
}

pub(super) async fn insert_device(
    w: &mut WriteTx<'_>,
    child_id: &str,
    name: &str,
    now: Millis,
) -> StoreResult<Device> {
    let exists = sqlx::query("SELECT 1 AS one FROM children WHERE id = $1")
        .bind(child_id)
        .fetch_optional(&mut *w.tx)
        .await?
        .is_some();
    if !exists {
        return Err(StoreError::NotFound("no such child".into()));
    }
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query("INSERT INTO devices (id, child_id, name, created_at) VALUES ($1, $2, $3, $4)")
        .bind(&id)
        .bind(child_id)
        .bind(name)
        .bind(now)
        .execute(&mut *w.tx)
        .await?;
    Ok(Device {
        id,
        child_id: child_id.to_string(),
        name: name.to_string(),
        created_at: now,
        revoked: false,
        last_seen: None,
    })
}
