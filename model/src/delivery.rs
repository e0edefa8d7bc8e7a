//! The command delivery protocol: the relay's durable store, the socket and HTTPS paths,
//! a faulty network, kills of either side, and agent-core's own device logic
//! ([`agent_core::sim::Device`]).
//!
//! Time is in ticks of [`TICK_MS`]; a command created at tick `t` expires at tick `t + 1`.
//! The device's wall clock reads a day behind the relay (a child moved it): the real agent
//! never looks at it for a decision, and the planted fault `device_clock` shows what would
//! happen if it did. The relay's clock as the device knows it is the relay's exact time
//! (the real estimate lags by the one-way delay of `ready`; `tests/clock.rs` covers that).

use std::collections::BTreeSet;

use agent_core::sim::{Answer, Device, Effect, Faults};
use serde_json::{json, Value};
use stateright::{Model, Property};

use crate::relay::{self, RelayFaults, Row, Status};

/// One tick of the relay's clock: 11 minutes, so that two ticks past a command's expiry
/// are past the agent's forget grace (10 minutes) and the agent may forget its id.
pub const TICK_MS: i64 = 11 * 60 * 1000;
/// The relay's clock at tick 0 (2026-12-05T00:00:00Z).
const BASE_MS: i64 = 1_796_428_800_000;
/// How far behind the relay the device's wall clock is.
const SKEW_MS: i64 = 24 * 3600 * 1000;

/// What may go wrong, and how often: the bound of the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Commands the parent creates (1–3).
    pub commands: u8,
    /// The last tick of the relay's clock.
    pub max_tick: u8,
    /// Kills (then restarts) of the device's process.
    pub device_kills: u8,
    /// Kills (then restarts) of the relay.
    pub relay_kills: u8,
    /// Socket drops (the connection ends; frames not yet read on it are lost: a socket
    /// loses frames only by ending, and any of them may have been read before).
    pub link_drops: u8,
    /// Lost HTTP messages, and posts the device gives up on while their request
    /// is still on its way.
    pub losses: u8,
    /// Frames written twice, or HTTP requests duplicated.
    pub dups: u8,
    /// HTTPS pulls (`syncNow`).
    pub pulls: u8,
}

impl Bounds {
    /// The bound CI checks (about 2 million states): two commands, a device kill, a relay
    /// kill, a socket drop and a pull racing the socket. HTTP losses and written-twice frames
    /// are left to [`Bounds::FULL`].
    pub const CI: Bounds = Bounds {
        commands: 2,
        max_tick: 2,
        device_kills: 1,
        relay_kills: 1,
        link_drops: 1,
        losses: 0,
        dups: 0,
        pulls: 1,
    };

    /// One of each fault (`--example check -- full`).
    pub const FULL: Bounds = Bounds {
        commands: 2,
        max_tick: 2,
        device_kills: 1,
        relay_kills: 1,
        link_drops: 1,
        losses: 1,
        dups: 1,
        pulls: 1,
    };
}

/// The model: its bounds and the faults planted in it.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The bound.
    pub bounds: Bounds,
    /// Faults planted in agent-core's code (`Faults::NONE`: the real code).
    pub faults: Faults,
    /// Faults planted in the relay's rules.
    pub relay_faults: RelayFaults,
}

impl Delivery {
    /// The real protocol within `bounds`.
    pub fn real(bounds: Bounds) -> Self {
        Self {
            bounds,
            faults: Faults::NONE,
            relay_faults: RelayFaults::default(),
        }
    }
}

/// A frame on the device's socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Frame {
    /// `command:new` for this command.
    Command(u8),
}

/// An HTTP message on its way. `current`: it belongs to the request the device waits on
/// (a request the device gave up on may still reach the relay; an answer to one is dropped
/// at once, since nothing would read it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Http {
    /// `PATCH /api/dashboard/remote-control/{id}`.
    AckReq {
        /// Whether the device still waits on it.
        current: bool,
        /// The command.
        cmd: u8,
        /// The status posted.
        status: Status,
    },
    /// Its answer.
    AckAns {
        /// Whether the device still waits on it.
        current: bool,
        /// The command.
        cmd: u8,
        /// The HTTP status.
        code: u16,
    },
    /// `GET /api/devices/me/commands`.
    PullReq {
        /// Whether the device still waits on it.
        current: bool,
    },
    /// Its answer: the commands listed.
    PullAns {
        /// Whether the device still waits on it.
        current: bool,
        /// The commands listed (marked DELIVERED before the answer left).
        cmds: Vec<u8>,
    },
}

impl Http {
    fn current(&self) -> bool {
        match self {
            Http::AckReq { current, .. }
            | Http::AckAns { current, .. }
            | Http::PullReq { current }
            | Http::PullAns { current, .. } => *current,
        }
    }

    fn is_ack(&self) -> bool {
        matches!(self, Http::AckReq { .. } | Http::AckAns { .. })
    }

    /// The device stopped waiting on this exchange.
    fn forget(&mut self) {
        match self {
            Http::AckReq { current, .. }
            | Http::AckAns { current, .. }
            | Http::PullReq { current }
            | Http::PullAns { current, .. } => *current = false,
        }
    }
}

/// The budget of faults left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Left {
    device_kills: u8,
    relay_kills: u8,
    link_drops: u8,
    losses: u8,
    dups: u8,
    pulls: u8,
}

/// The whole system's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The relay's clock.
    pub tick: u8,
    /// The relay's committed commands, by creation order.
    pub rows: Vec<Row>,
    /// Deliveries written to the socket whose `mark_delivered` has not committed (a
    /// background task in `ws/device.rs`; a relay kill loses them).
    pub marks: BTreeSet<u8>,
    /// The last status guardians were told, per command (events commit with the change).
    pub seen: Vec<Status>,
    /// A guardian was told a status that ranks below one it was told before.
    pub backwards: bool,
    /// The first ack status the relay recorded, per command.
    pub recorded: Vec<Option<Status>>,
    /// The device: agent-core's own logic and durable files.
    pub device: Device,
    /// The device's socket is up (after `ready`).
    pub link: bool,
    /// Frames on the socket, in any order.
    pub frames: Vec<Frame>,
    /// HTTP messages on their way, in any order.
    pub net: Vec<Http>,
    /// The command whose ack post the device waits on.
    pub post: Option<u8>,
    /// The device waits on a pull.
    pub pull: bool,
    /// Times the host ran each command.
    pub runs: Vec<u8>,
    /// Runs at or after the command's expiry by the relay's clock.
    pub late_runs: u8,
    /// Statuses the device posted, per command.
    pub posted: Vec<BTreeSet<Status>>,
    /// Faults left.
    pub left: Left,
}

/// A step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// The parent creates the next command (written at once to an open socket).
    Create,
    /// The relay's clock moves on a tick.
    Tick,
    /// The relay's expiry sweep.
    Expire,
    /// A background `mark_delivered` commits.
    CommitMark(u8),
    /// The device connects: `ready` (the relay's time), then every deliverable command.
    Connect,
    /// The socket drops.
    DropLink,
    /// The device reads this frame.
    ReadFrame(usize),
    /// This frame is written to the socket again (a catch-up after the bus reconnected
    /// re-sends open commands on the same socket).
    DupFrame(usize),
    /// The host completes this running command (EXECUTED).
    Complete(u8),
    /// Planted fault: the late "started" record.
    RecordStart(u8),
    /// Planted fault: the late ledger write of an outcome.
    WriteOutcome(u8),
    /// The outbox's retry timer fires.
    Retry,
    /// The device asks for its commands over HTTPS.
    Pull,
    /// The relay handles this request.
    Serve(usize),
    /// The device gets this answer.
    Receive(usize),
    /// The network loses this HTTP message.
    LoseHttp(usize),
    /// The network duplicates this request.
    DupHttp(usize),
    /// The device's ack post fails (no answer).
    PostFails,
    /// The device's pull fails (no answer).
    PullFails,
    /// The device's process is killed and started again.
    KillDevice,
    /// The relay is killed and started again.
    KillRelay,
}

fn relay_ms(tick: u8) -> i64 {
    BASE_MS + i64::from(tick) * TICK_MS
}

fn wall_ms(tick: u8) -> i64 {
    relay_ms(tick) - SKEW_MS
}

/// `2026-12-05THH:MM:00.000Z` for a time on the model's first day.
fn rfc3339(ms: i64) -> String {
    let min = (ms - BASE_MS) / 60_000;
    format!("2026-12-05T{:02}:{:02}:00.000Z", min / 60, min % 60)
}

fn cmd_id(c: u8) -> String {
    format!("cmd-{c}")
}

fn cmd_index(id: &str) -> u8 {
    id.strip_prefix("cmd-")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u8::MAX)
}

/// The `command:new` data the relay writes for a command (`Command::device_frame_data`).
fn item(c: u8, row: &Row) -> Value {
    json!({
        "id": cmd_id(c),
        "commandType": "LOCK_DEVICE",
        "payload": {},
        "expiresAt": rfc3339(relay_ms(row.exp_tick)),
    })
}

impl State {
    /// Records what the device did.
    fn effects(&mut self, effects: Vec<Effect>) {
        for e in effects {
            match e {
                Effect::Ran(id) => {
                    let c = usize::from(cmd_index(&id));
                    self.runs[c] += 1;
                    if self.tick >= self.rows[c].exp_tick {
                        self.late_runs += 1;
                    }
                }
                Effect::Post { id, status } => {
                    let c = cmd_index(&id);
                    self.stop_waiting(true);
                    self.post = Some(c);
                    let status = Status::of_ack(status);
                    self.posted[usize::from(c)].insert(status);
                    self.net.push(Http::AckReq {
                        current: true,
                        cmd: c,
                        status,
                    });
                }
            }
        }
    }

    /// The device stops waiting on its ack post (`ack`) or its pull: its request, if still
    /// on its way, is stale; an answer to it is dropped.
    fn stop_waiting(&mut self, ack: bool) {
        self.net.retain(|m| {
            !(m.is_ack() == ack
                && m.current()
                && matches!(m, Http::AckAns { .. } | Http::PullAns { .. }))
        });
        for m in self.net.iter_mut().filter(|m| m.is_ack() == ack) {
            m.forget();
        }
        if ack {
            self.post = None;
        } else {
            self.pull = false;
        }
    }

    fn tell(&mut self, c: usize, st: Status) {
        if st.rank() <= self.seen[c].rank() {
            self.backwards = true;
        }
        self.seen[c] = st;
    }

    /// Whether a message of the exchange the device waits on is still on its way.
    fn on_its_way(&self, ack: bool) -> bool {
        self.net.iter().any(|m| m.is_ack() == ack && m.current())
    }
}

impl Model for Delivery {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let b = self.bounds;
        vec![State {
            tick: 0,
            rows: Vec::new(),
            marks: BTreeSet::new(),
            seen: Vec::new(),
            backwards: false,
            recorded: Vec::new(),
            device: Device::new(self.faults, wall_ms(0)),
            link: false,
            frames: Vec::new(),
            net: Vec::new(),
            post: None,
            pull: false,
            runs: Vec::new(),
            late_runs: 0,
            posted: Vec::new(),
            left: Left {
                device_kills: b.device_kills,
                relay_kills: b.relay_kills,
                link_drops: b.link_drops,
                losses: b.losses,
                dups: b.dups,
                pulls: b.pulls,
            },
        }]
    }

    fn actions(&self, s: &State, out: &mut Vec<Action>) {
        let b = self.bounds;
        if (s.rows.len() as u8) < b.commands {
            out.push(Action::Create);
        }
        if s.tick < b.max_tick {
            out.push(Action::Tick);
        }
        if s.rows
            .iter()
            .any(|r| r.status.is_open() && s.tick >= r.exp_tick)
        {
            out.push(Action::Expire);
        }
        out.extend(s.marks.iter().map(|c| Action::CommitMark(*c)));
        if s.link {
            if s.left.link_drops > 0 {
                out.push(Action::DropLink);
            }
        } else {
            out.push(Action::Connect);
        }
        for (i, f) in s.frames.iter().enumerate() {
            if s.frames[..i].contains(f) {
                continue;
            }
            out.push(Action::ReadFrame(i));
            if s.left.dups > 0 {
                out.push(Action::DupFrame(i));
            }
        }
        out.extend(s.device.running().map(|id| Action::Complete(cmd_index(id))));
        out.extend(
            s.device
                .unrecorded()
                .map(|id| Action::RecordStart(cmd_index(id))),
        );
        out.extend(
            s.device
                .unwritten()
                .map(|id| Action::WriteOutcome(cmd_index(id))),
        );
        if s.post.is_none() && s.device.waiting_acks() > 0 {
            out.push(Action::Retry);
        }
        if !s.pull && s.left.pulls > 0 {
            out.push(Action::Pull);
        }
        for (i, m) in s.net.iter().enumerate() {
            if s.net[..i].contains(m) {
                continue;
            }
            match m {
                Http::AckReq { .. } | Http::PullReq { .. } => {
                    out.push(Action::Serve(i));
                    if s.left.dups > 0 {
                        out.push(Action::DupHttp(i));
                    }
                }
                Http::AckAns { .. } | Http::PullAns { .. } => out.push(Action::Receive(i)),
            }
            if s.left.losses > 0 {
                out.push(Action::LoseHttp(i));
            }
        }
        // A post whose messages are all gone fails by its timeout; one whose request or
        // answer is still on its way may be given up on too (it arrives late), as a loss.
        if s.post.is_some() && (!s.on_its_way(true) || s.left.losses > 0) {
            out.push(Action::PostFails);
        }
        if s.pull && (!s.on_its_way(false) || s.left.losses > 0) {
            out.push(Action::PullFails);
        }
        if s.left.device_kills > 0 {
            out.push(Action::KillDevice);
        }
        if s.left.relay_kills > 0 {
            out.push(Action::KillRelay);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        let rf = self.relay_faults;
        let now = relay_ms(s.tick);
        match action {
            Action::Create => {
                let c = s.rows.len() as u8;
                s.rows.push(Row {
                    status: Status::Pending,
                    delivered: false,
                    exp_tick: s.tick + 1,
                });
                s.seen.push(Status::Pending);
                s.recorded.push(None);
                s.runs.push(0);
                s.posted.push(BTreeSet::new());
                if s.link {
                    // Written to the open socket; the delivery is recorded in the background.
                    s.frames.push(Frame::Command(c));
                    s.marks.insert(c);
                }
            }
            Action::Tick => s.tick += 1,
            Action::Expire => {
                for c in 0..s.rows.len() {
                    if relay::expire(&mut s.rows[c], s.tick) {
                        s.tell(c, Status::Expired);
                    }
                }
            }
            Action::CommitMark(c) => {
                s.marks.remove(&c);
                let i = usize::from(c);
                if let Some(st) = relay::mark_delivered(&mut s.rows[i], rf) {
                    s.tell(i, st);
                }
            }
            Action::Connect => {
                s.link = true;
                // `ready` carries the relay's time: the executor forgets what can never
                // come again, and the outbox retries at once.
                s.device.relay_time(now);
                let fx = s.device.retry_now();
                s.effects(fx);
                for c in 0..s.rows.len() {
                    if relay::deliverable(&s.rows[c], s.tick, rf) {
                        s.frames.push(Frame::Command(c as u8));
                        s.marks.insert(c as u8);
                    }
                }
            }
            Action::DropLink => {
                s.left.link_drops -= 1;
                s.link = false;
                s.frames.clear();
            }
            Action::ReadFrame(i) => {
                let Frame::Command(c) = s.frames.remove(i);
                let it = item(c, &s.rows[usize::from(c)]);
                let fx = s.device.deliver(&it, Some(now), wall_ms(s.tick));
                s.effects(fx);
            }
            Action::DupFrame(i) => {
                s.left.dups -= 1;
                let f = s.frames[i];
                s.frames.push(f);
            }
            Action::Complete(c) => {
                let fx = s.device.complete(&cmd_id(c), None, wall_ms(s.tick));
                s.effects(fx);
            }
            Action::RecordStart(c) => s.device.record_start(&cmd_id(c), wall_ms(s.tick)),
            Action::WriteOutcome(c) => s.device.write_outcome(&cmd_id(c), wall_ms(s.tick)),
            Action::Retry => {
                let fx = s.device.retry_now();
                s.effects(fx);
            }
            Action::Pull => {
                s.left.pulls -= 1;
                s.pull = true;
                s.net.push(Http::PullReq { current: true });
            }
            Action::Serve(i) => match s.net.remove(i) {
                Http::AckReq {
                    current,
                    cmd,
                    status,
                } => {
                    let c = usize::from(cmd);
                    let (code, changed) = relay::ack(&mut s.rows[c], status, rf);
                    if let Some(st) = changed {
                        s.tell(c, st);
                        if s.recorded[c].is_none() {
                            s.recorded[c] = Some(st);
                        }
                    }
                    if current {
                        s.net.push(Http::AckAns { current, cmd, code });
                    }
                }
                Http::PullReq { current } => {
                    // Listed and marked DELIVERED in the request, before the answer leaves.
                    let mut cmds = Vec::new();
                    for c in 0..s.rows.len() {
                        if relay::deliverable(&s.rows[c], s.tick, rf) {
                            cmds.push(c as u8);
                            if let Some(st) = relay::mark_delivered(&mut s.rows[c], rf) {
                                s.tell(c, st);
                            }
                        }
                    }
                    if current {
                        s.net.push(Http::PullAns { current, cmds });
                    }
                }
                _ => return None,
            },
            Action::Receive(i) => match s.net.remove(i) {
                Http::AckAns { cmd, code, .. } => {
                    s.post = None;
                    let fx = s.device.answered(&cmd_id(cmd), Answer::Status(code));
                    s.effects(fx);
                }
                Http::PullAns { cmds, .. } => {
                    s.pull = false;
                    s.device.relay_time(now);
                    for c in cmds {
                        let it = item(c, &s.rows[usize::from(c)]);
                        let fx = s.device.deliver(&it, Some(now), wall_ms(s.tick));
                        s.effects(fx);
                    }
                }
                _ => return None,
            },
            Action::LoseHttp(i) => {
                s.left.losses -= 1;
                s.net.remove(i);
            }
            Action::DupHttp(i) => {
                s.left.dups -= 1;
                let m = s.net[i].clone();
                s.net.push(m);
            }
            Action::PostFails => {
                let cmd = s.post?;
                if s.on_its_way(true) {
                    s.left.losses -= 1;
                }
                s.stop_waiting(true);
                let fx = s.device.answered(&cmd_id(cmd), Answer::Network);
                s.effects(fx);
            }
            Action::PullFails => {
                if s.on_its_way(false) {
                    s.left.losses -= 1;
                }
                s.stop_waiting(false);
            }
            Action::KillDevice => {
                s.left.device_kills -= 1;
                s.link = false;
                s.frames.clear();
                // Requests already sent may still reach the relay; answers find no one.
                s.stop_waiting(true);
                s.stop_waiting(false);
                let fx = s.device.kill_and_restart(wall_ms(s.tick));
                s.effects(fx);
            }
            Action::KillRelay => {
                s.left.relay_kills -= 1;
                // Only what committed remains: background marks are lost, every socket and
                // HTTP exchange dies (the device's waits end by their timeouts).
                s.marks.clear();
                s.link = false;
                s.frames.clear();
                s.net.clear();
            }
        }
        s.frames.sort();
        s.net.sort();
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always("a command never runs twice", |_, s: &State| {
                s.runs.iter().all(|n| *n <= 1)
            }),
            Property::always(
                "an EXECUTED at the relay was run on the device",
                |_, s: &State| {
                    s.rows
                        .iter()
                        .zip(&s.runs)
                        .all(|(r, n)| r.status != Status::Executed || *n > 0)
                },
            ),
            Property::always(
                "nothing runs after its expiry by relay time",
                |_, s: &State| s.late_runs == 0,
            ),
            Property::always(
                "a recorded ack is never lost or contradicted",
                |_, s: &State| {
                    s.recorded
                        .iter()
                        .zip(&s.rows)
                        .all(|(rec, r)| rec.is_none_or(|st| st == r.status))
                },
            ),
            Property::always(
                "the device never posts two outcomes for one command",
                |_, s: &State| s.posted.iter().all(|p| p.len() <= 1),
            ),
            Property::always(
                "a guardian never sees a status go backwards",
                |_, s: &State| !s.backwards,
            ),
            Property::eventually(
                "every command ends, and one that ran is not reported EXPIRED",
                |m: &Delivery, s: &State| {
                    s.rows.len() == usize::from(m.bounds.commands)
                        && s.rows.iter().zip(&s.runs).all(|(r, n)| {
                            !r.status.is_open() && (*n == 0 || r.status != Status::Expired)
                        })
                },
            ),
            Property::sometimes(
                "a command runs and its EXECUTED is recorded",
                |_, s: &State| {
                    s.rows
                        .iter()
                        .zip(&s.runs)
                        .any(|(r, n)| r.status == Status::Executed && *n == 1)
                },
            ),
        ]
    }
}
