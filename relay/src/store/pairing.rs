//! Pairing: a device asks with a code, a parent claims it and approves it for a child (which
//! creates the device and notifies the guardians), or rejects it.

use serde_json::json;

use super::db::{args, Db, Row};
use super::notifications::{insert_notification, NewNotification};
use super::registry::{child_exists, device_from_row, guardians_of, insert_device, DEVICE_COLS};
use super::{Store, StoreError, StoreResult, W};
use crate::model::{Device, Millis};

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

const PAIR_COLS: &str =
    "id, code, secret_hash, device_name, status, claimed_by, child_id, device_id, expires_at";

fn pairing_from_row(r: &Row<'_>) -> StoreResult<Pairing> {
    Ok(Pairing {
        id: r.text(0)?,
        code: r.text(1)?,
        secret_hash: r.text(2)?,
        device_name: r.text(3)?,
        status: PairingStatus::parse(&r.text(4)?),
        claimed_by: r.opt_text(5)?,
        child_id: r.opt_text(6)?,
        device_id: r.opt_text(7)?,
        expires_at: r.int(8)?,
    })
}

/// One pairing; `lock` takes its row lock (PostgreSQL) for a read-then-write step.
fn load_pairing(c: Db<'_>, id: &str, lock: bool) -> StoreResult<Option<Pairing>> {
    let suffix = if lock { c.for_update() } else { "" };
    c.opt(
        &format!("SELECT {PAIR_COLS} FROM pairings WHERE id = ?1{suffix}"),
        args![id],
        pairing_from_row,
    )
}

/// Ok if `user_id` guards `child_id`; `NotFound` for no such child, else `Forbidden`.
fn check_guardian_in(c: Db<'_>, user_id: &str, child_id: &str) -> StoreResult<()> {
    if !child_exists(c, child_id)? {
        return Err(StoreError::NotFound("no such child".into()));
    }
    if !guardians_of(c, child_id)?.iter().any(|g| g == user_id) {
        return Err(StoreError::Forbidden(
            "you are not a guardian of this child".into(),
        ));
    }
    Ok(())
}

/// Approves a claimed pairing for `child_id` (idempotent for the same child): creates the
/// device, notifies the child's guardians, and gives the device ten more minutes to collect
/// its token.
fn approve_in(
    w: &mut W<'_>,
    p: &Pairing,
    user_id: &str,
    child_id: &str,
    name: Option<String>,
    now: Millis,
) -> StoreResult<Device> {
    if p.status == PairingStatus::Approved {
        if p.child_id.as_deref() == Some(child_id) {
            let dev = p.device_id.clone().unwrap_or_default();
            return w.conn.one(
                &format!("SELECT {DEVICE_COLS} FROM devices WHERE id = ?1"),
                args![dev],
                device_from_row,
            );
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
    check_guardian_in(w.conn, user_id, child_id)?;
    let guardians = w.guardians(child_id)?;
    let name = name.unwrap_or_else(|| p.device_name.clone());
    let device = insert_device(w, child_id, &name, user_id, now)?;
    w.conn.exec(
        "UPDATE pairings SET status = 'APPROVED', child_id = ?2, device_id = ?3, \
         expires_at = CASE WHEN expires_at > ?4 THEN expires_at ELSE ?4 END WHERE id = ?1",
        args![p.id, child_id, device.id, now + 10 * 60 * 1000],
    )?;
    w.webhook(wire::webhook::PAIRING_APPROVED, now, || {
        json!({"pairingId": p.id, "childId": child_id, "deviceId": device.id,
               "deviceName": name, "approvedBy": user_id})
    });
    for g in guardians.iter() {
        let n = NewNotification {
            user_id: g.clone(),
            kind: "DEVICE_PAIRING".into(),
            title: "New device paired".into(),
            message: format!("\"{name}\" was paired."),
            metadata: json!({"pairingId": p.id, "deviceId": device.id, "childId": child_id,
                             "deviceName": name}),
        };
        insert_notification(w, n, now)?;
    }
    Ok(device)
}

/// The claimer's pairing, unexpired.
fn claimed_pairing(c: Db<'_>, id: &str, user_id: &str, now: Millis) -> StoreResult<Pairing> {
    let p =
        load_pairing(c, id, true)?.ok_or_else(|| StoreError::NotFound("no such pairing".into()))?;
    if p.claimed_by.as_deref() != Some(user_id) {
        return Err(StoreError::NotFound("no such pairing".into()));
    }
    if p.expires_at <= now {
        return Err(StoreError::Gone("the pairing expired".into()));
    }
    Ok(p)
}

impl Store {
    /// Stores a new pairing request. `Conflict` if the code is taken (the caller retries).
    pub async fn create_pairing(&self, p: &Pairing, now: Millis) -> StoreResult<()> {
        let p = p.clone();
        self.write(move |w| {
            if w.conn.exists("SELECT 1 FROM pairings WHERE code = ?1", args![p.code])? {
                return Err(StoreError::Conflict("code taken".into()));
            }
            w.conn.exec(
                "INSERT INTO pairings (id, code, secret_hash, device_name, status, created_at, expires_at) \
                 VALUES (?1, ?2, ?3, ?4, 'PENDING', ?5, ?6)",
                args![p.id, p.code, p.secret_hash, p.device_name, now, p.expires_at],
            )?;
            Ok(())
        })
        .await
    }

    /// One pairing by id.
    pub async fn pairing(&self, id: &str) -> StoreResult<Option<Pairing>> {
        let id = id.to_string();
        self.read(move |c| load_pairing(c, &id, false)).await
    }

    /// A parent enters a code: the pairing becomes theirs and they get a DEVICE_PAIRING
    /// notification. With `approve_for`, it is also approved for that child in the same
    /// transaction (checked first, so a refusal changes nothing). `NotFound` for an unknown
    /// or expired code.
    pub async fn claim_pairing(
        &self,
        code: &str,
        user_id: &str,
        approve_for: Option<String>,
        now: Millis,
    ) -> StoreResult<(Pairing, Option<Device>)> {
        let (code, user_id) = (code.to_string(), user_id.to_string());
        self.write(move |w| {
            if let Some(child) = &approve_for {
                check_guardian_in(w.conn, &user_id, child)?;
            }
            let mut p = w
                .conn
                .opt(
                    &format!(
                        "SELECT {PAIR_COLS} FROM pairings WHERE code = ?1 AND expires_at > ?2{}",
                        w.conn.for_update()
                    ),
                    args![code, now],
                    pairing_from_row,
                )?
                .ok_or_else(|| {
                    StoreError::NotFound("no such pairing code, or it expired".into())
                })?;
            match (&p.status, &p.claimed_by) {
                (PairingStatus::Pending, _) => {
                    w.conn.exec(
                        "UPDATE pairings SET status = 'CLAIMED', claimed_by = ?2 WHERE id = ?1",
                        args![p.id, user_id],
                    )?;
                    p.status = PairingStatus::Claimed;
                    p.claimed_by = Some(user_id.clone());
                    w.webhook(wire::webhook::PAIRING_REQUESTED, now, || {
                        json!({"pairingId": p.id, "deviceName": p.device_name,
                               "claimedBy": user_id, "expiresAt": crate::model::rfc3339(p.expires_at)})
                    });
                    if approve_for.is_none() {
                        let n = NewNotification {
                            user_id: user_id.clone(),
                            kind: "DEVICE_PAIRING".into(),
                            title: "A device wants to pair".into(),
                            message: format!(
                                "\"{}\" asks to be paired. Approve it for one of your children.",
                                p.device_name
                            ),
                            metadata: json!({"pairingId": p.id, "deviceName": p.device_name,
                                             "expiresAt": crate::model::rfc3339(p.expires_at)}),
                        };
                        insert_notification(w, n, now)?;
                    }
                }
                (PairingStatus::Claimed | PairingStatus::Approved, Some(u)) if *u == user_id => {}
                _ => return Err(StoreError::Conflict("this code was already used".into())),
            }
            let device = match &approve_for {
                Some(child) => Some(approve_in(w, &p, &user_id, child, None, now)?),
                None => None,
            };
            Ok((p, device))
        })
        .await
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
        let (id, user_id, child_id) = (id.to_string(), user_id.to_string(), child_id.to_string());
        self.write(move |w| {
            let p = claimed_pairing(w.conn, &id, &user_id, now)?;
            approve_in(w, &p, &user_id, &child_id, name, now)
        })
        .await
    }

    /// The claiming parent refuses a pairing.
    pub async fn reject_pairing(&self, id: &str, user_id: &str, now: Millis) -> StoreResult<()> {
        let (id, user_id) = (id.to_string(), user_id.to_string());
        self.write(move |w| {
            let p = claimed_pairing(w.conn, &id, &user_id, now)?;
            if p.status == PairingStatus::Approved {
                return Err(StoreError::Conflict(
                    "this pairing was already approved".into(),
                ));
            }
            w.conn.exec(
                "UPDATE pairings SET status = 'REJECTED' WHERE id = ?1",
                args![id],
            )?;
            Ok(())
        })
        .await
    }

    /// Deletes pairings that expired before `before`.
    pub async fn prune_pairings(&self, before: Millis) -> StoreResult<u64> {
        self.write(move |w| {
            w.conn
                .exec("DELETE FROM pairings WHERE expires_at < ?1", args![before])
        })
        .await
    }
}
