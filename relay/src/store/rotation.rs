//! Device token rotation: which generations of a device's token are accepted, starting a
//! rotation, and making the pending generation current at its first use.
//!
//! A device has a current generation and, while a rotation is pending, a pending one; both
//! are accepted. The first authenticated use of the pending generation (socket `auth`,
//! `auth:refresh`, any REST call) promotes it: a conditional `UPDATE`, so it happens once
//! cluster-wide, and [`BusMessage::TokenPromoted`] tells every node to forget its cached
//! state and to close the device's sockets that still use an older generation (4401).
//! From then on older generations are refused. See `docs/protocol.md`, "Device token
//! rotation".
//!
//! The cache (`registry.rs`) answers the common case (the current generation) without a
//! read. A generation newer than the cache knows (a rotation started on another node) is
//! looked up in the database before it is refused; an older one is refused at once
//! (generations only move forward).

use super::db::args;
use super::registry::{read_auth, DeviceAuth, TokenGens};
use super::{Store, StoreError, StoreResult};
use crate::message::BusMessage;
use crate::model::Millis;

/// What the store says about a device token of some generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenVerdict {
    /// Accepted; the device's generations after this use (a pending generation that was
    /// just used is current now).
    Accepted(TokenGens),
    /// The device is revoked.
    Revoked,
    /// No such device, or it belongs to another child than the token says.
    Unknown,
    /// An older generation than the current one (or one never issued).
    Superseded,
}

/// A pending rotation, as started (or found) by [`Store::rotate_device_token`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The device's child (the token carries it).
    pub child_id: String,
    /// The pending generation.
    pub gen: i64,
    /// When it was issued (ms); its token is derived from the generation and this.
    pub issued_at: Millis,
    /// Whether this call started it (false: it was already pending).
    pub started: bool,
}

/// How a generation relates to what is known of the device.
enum Judged {
    Current,
    Pending,
    Newer,
    Older,
    Refused(TokenVerdict),
}

fn judge(a: &DeviceAuth, child_id: &str, gen: i64) -> Judged {
    if a.revoked {
        return Judged::Refused(TokenVerdict::Revoked);
    }
    if a.child_id != child_id {
        return Judged::Refused(TokenVerdict::Unknown);
    }
    let t = &a.token;
    if gen == t.current {
        Judged::Current
    } else if t.pending.is_some_and(|(p, _)| p == gen) {
        Judged::Pending
    } else if gen > t.current {
        Judged::Newer
    } else {
        Judged::Older
    }
}

impl Store {
    /// Whether device `device_id` of `child_id` may use a token of generation `gen`; the
    /// first use of a pending generation promotes it (a write).
    pub async fn check_device_token(
        &self,
        device_id: &str,
        child_id: &str,
        gen: i64,
        now: Millis,
    ) -> StoreResult<TokenVerdict> {
        let Some(a) = self.device_auth(device_id).await? else {
            return Ok(TokenVerdict::Unknown);
        };
        let a = match judge(&a, child_id, gen) {
            Judged::Current => return Ok(TokenVerdict::Accepted(a.token)),
            Judged::Pending => return self.promote_token(device_id, child_id, gen, now).await,
            Judged::Older => return Ok(TokenVerdict::Superseded),
            Judged::Refused(v) => return Ok(v),
            // Newer than this node knows: a rotation may have started elsewhere.
            Judged::Newer => match self.device_auth_fresh(device_id).await? {
                Some(a) => a,
                None => return Ok(TokenVerdict::Unknown),
            },
        };
        match judge(&a, child_id, gen) {
            Judged::Current => Ok(TokenVerdict::Accepted(a.token)),
            Judged::Pending => self.promote_token(device_id, child_id, gen, now).await,
            Judged::Older | Judged::Newer => Ok(TokenVerdict::Superseded),
            Judged::Refused(v) => Ok(v),
        }
    }

    /// Makes pending generation `gen` current (once, whoever gets there first) and tells
    /// every node; then judges `gen` against the result.
    async fn promote_token(
        &self,
        device_id: &str,
        child_id: &str,
        gen: i64,
        now: Millis,
    ) -> StoreResult<TokenVerdict> {
        let id = device_id.to_string();
        let auth = self
            .write(move |w| {
                let n = w.conn.exec(
                    "UPDATE devices SET token_gen = pending_gen, token_issued_at = pending_issued_at, \
                     token_promoted_at = ?3, pending_gen = NULL, pending_issued_at = NULL \
                     WHERE id = ?1 AND pending_gen = ?2 AND revoked_at IS NULL",
                    args![id, gen, now],
                )?;
                let auth = read_auth(w.conn, &id, false)?;
                if n == 1 {
                    w.publish(BusMessage::TokenPromoted {
                        device_id: id.clone(),
                        gen,
                    });
                }
                Ok(auth)
            })
            .await?;
        let Some(auth) = auth else {
            return Ok(TokenVerdict::Unknown);
        };
        self.cache_device(device_id, auth.clone());
        Ok(match judge(&auth, child_id, gen) {
            Judged::Current => {
                tracing::info!(device_id = %device_id, gen, "device token rotated");
                TokenVerdict::Accepted(auth.token)
            }
            Judged::Refused(v) => v,
            Judged::Pending | Judged::Newer | Judged::Older => TokenVerdict::Superseded,
        })
    }

    /// Starts a rotation of the device's token, or returns the one already pending (a
    /// second rotation never replaces a pending token: the device may have stored it
    /// already), and announces it ([`BusMessage::RotationPending`], without the token):
    /// the device's open sockets on every node get `auth:rotate`, and the other nodes
    /// forget their cached state of the device, so that its next connect anywhere sees
    /// the pending generation. `NotFound` without such a device, `Conflict` when it is
    /// revoked.
    pub async fn rotate_device_token(&self, device_id: &str, now: Millis) -> StoreResult<Rotation> {
        let id = device_id.to_string();
        let (rotation, auth) = self
            .write(move |w| {
                let a = read_auth(w.conn, &id, true)?
                    .ok_or_else(|| StoreError::NotFound("no such device".into()))?;
                if a.revoked {
                    return Err(StoreError::Conflict("the device is revoked".into()));
                }
                if let Some((gen, issued_at)) = a.token.pending {
                    let r = Rotation {
                        child_id: a.child_id.clone(),
                        gen,
                        issued_at,
                        started: false,
                    };
                    w.publish(BusMessage::RotationPending {
                        device_id: id.clone(),
                        gen,
                        issued_at,
                    });
                    return Ok((r, a));
                }
                let gen = a.token.current + 1;
                w.conn.exec(
                    "UPDATE devices SET pending_gen = ?2, pending_issued_at = ?3 \
                     WHERE id = ?1 AND pending_gen IS NULL",
                    args![id, gen, now],
                )?;
                w.publish(BusMessage::RotationPending {
                    device_id: id.clone(),
                    gen,
                    issued_at: now,
                });
                let mut a = a;
                a.token.pending = Some((gen, now));
                let r = Rotation {
                    child_id: a.child_id.clone(),
                    gen,
                    issued_at: now,
                    started: true,
                };
                Ok((r, a))
            })
            .await?;
        self.cache_device(device_id, auth);
        Ok(rotation)
    }

    /// Devices whose pending token became current in `[from, to)`, with that generation
    /// (the cluster's in-flight sweep: a node that died between the promotion's COMMIT and
    /// its publication told no other node).
    pub async fn recently_promoted(
        &self,
        from: Millis,
        to: Millis,
    ) -> StoreResult<Vec<(String, i64)>> {
        self.read(move |c| {
            c.map(
                "SELECT id, token_gen FROM devices WHERE token_promoted_at >= ?1 \
                 AND token_promoted_at < ?2 LIMIT 1000",
                args![from, to],
                |r| Ok((r.text(0)?, r.int(1)?)),
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(current: i64, pending: Option<i64>, revoked: bool) -> DeviceAuth {
        DeviceAuth {
            child_id: "c1".into(),
            revoked,
            token: TokenGens {
                current,
                issued_at: 1,
                pending: pending.map(|g| (g, 2)),
            },
        }
    }

    fn verdict(a: &DeviceAuth, child: &str, gen: i64) -> &'static str {
        match judge(a, child, gen) {
            Judged::Current => "current",
            Judged::Pending => "pending",
            Judged::Newer => "newer",
            Judged::Older => "older",
            Judged::Refused(TokenVerdict::Revoked) => "revoked",
            Judged::Refused(TokenVerdict::Unknown) => "unknown",
            Judged::Refused(_) => "refused",
        }
    }

    #[test]
    fn the_current_and_the_pending_generation_are_accepted_and_nothing_else() {
        let a = auth(3, Some(4), false);
        assert_eq!(verdict(&a, "c1", 3), "current");
        assert_eq!(verdict(&a, "c1", 4), "pending");
        assert_eq!(verdict(&a, "c1", 2), "older");
        assert_eq!(verdict(&a, "c1", 0), "older");
        // Never issued, or issued by a rotation this node has not heard of: read again.
        assert_eq!(verdict(&a, "c1", 5), "newer");
        // The token's child must be the device's.
        assert_eq!(verdict(&a, "c2", 3), "unknown");
        // Revoked: every generation is refused.
        let r = auth(3, Some(4), true);
        assert_eq!(verdict(&r, "c1", 3), "revoked");
        assert_eq!(verdict(&r, "c1", 4), "revoked");
    }

    #[test]
    fn generation_states_are_ordered_so_a_stale_read_never_wins() {
        let none = auth(3, None, false).token;
        let pending = auth(3, Some(4), false).token;
        let promoted = auth(4, None, false).token;
        assert!(none.order() < pending.order());
        assert!(pending.order() < promoted.order());
    }
}
