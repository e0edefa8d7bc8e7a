//! The relay's side of delivery: the durable command store's rules, re-described from
//! `relay/src/store/commands.rs` (the relay is a server with a database; the model keeps
//! its decisions, not its I/O). Each function names the code it mirrors.

use agent_core::sim::AckStatus;

/// A command's status at the relay (`wire::CommandStatus`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// Created, not yet written to a device.
    Pending,
    /// Written to a device (or listed by its HTTPS pull).
    Delivered,
    /// Its time passed before an ack.
    Expired,
    /// The device ran it.
    Executed,
    /// The device could not run it.
    Failed,
}

impl Status {
    /// Whether an ack may still change it by the ordinary rule.
    pub fn is_open(self) -> bool {
        matches!(self, Status::Pending | Status::Delivered)
    }

    /// The order a guardian may see statuses in: a status only moves up. EXPIRED ranks
    /// below the acks because a late ack may follow it (`docs/protocol.md`).
    pub fn rank(self) -> u8 {
        match self {
            Status::Pending => 0,
            Status::Delivered => 1,
            Status::Expired => 2,
            Status::Executed | Status::Failed => 3,
        }
    }

    /// The status an ack asks for.
    pub fn of_ack(s: AckStatus) -> Status {
        match s {
            AckStatus::Executed => Status::Executed,
            AckStatus::Failed => Status::Failed,
        }
    }
}

/// One committed row of the `commands` table.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Row {
    /// Its status.
    pub status: Status,
    /// `delivered_at` is set.
    pub delivered: bool,
    /// The tick at which it expires (`expires_at`): expired when the relay's clock has
    /// reached it.
    pub exp_tick: u8,
}

/// Relay faults planted for the tests that show the checker can fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RelayFaults {
    /// Delivery ignores the status: a finished command is written again at connect, and
    /// `mark_delivered` loses the `status = 'PENDING'` guard.
    pub redeliver_acked: bool,
    /// The rule before 2026-12-05: a late ack after expiry is accepted only when
    /// `delivered_at` was recorded (found by this checker; see `RELIABILITY.md`).
    pub late_ack_needs_delivered_at: bool,
}

/// `pending_for_device`: written at connect and listed by the pull when open and unexpired.
pub fn deliverable(row: &Row, tick: u8, f: RelayFaults) -> bool {
    (row.status.is_open() || f.redeliver_acked) && tick < row.exp_tick
}

/// `mark_delivered`: PENDING → DELIVERED, only a first delivery changes anything. Returns
/// the new status when it changed.
pub fn mark_delivered(row: &mut Row, f: RelayFaults) -> Option<Status> {
    if row.status == Status::Pending || (f.redeliver_acked && row.status != Status::Delivered) {
        row.status = Status::Delivered;
        row.delivered = true;
        return Some(Status::Delivered);
    }
    None
}

/// `ack_command` for the command's own device: the answer's HTTP status and the new
/// status when it changed.
///
/// - open → the acked status (200);
/// - the same terminal status again → 200, unchanged;
/// - EXPIRED → the late ack is recorded (200): the device holds the id only because it was
///   delivered, whether or not the relay's record of that delivery committed;
/// - any other terminal status → 409.
pub fn ack(row: &mut Row, want: Status, f: RelayFaults) -> (u16, Option<Status>) {
    let late = row.status == Status::Expired && (row.delivered || !f.late_ack_needs_delivered_at);
    if !row.status.is_open() && !late {
        if row.status == want {
            return (200, None);
        }
        return (409, None);
    }
    row.status = want;
    row.delivered = true;
    (200, Some(want))
}

/// `expire_due`: open commands whose time has come become EXPIRED. Returns whether it
/// changed.
pub fn expire(row: &mut Row, tick: u8) -> bool {
    if row.status.is_open() && tick >= row.exp_tick {
        row.status = Status::Expired;
        return true;
    }
    false
}
