//! A parent's resume: durable per-user event positions, the replay at connect, live events
//! from the bus with their gaps filled from the database, pruning of old events, and the
//! `resync` signal. The relay's rules are re-described from `relay/src/ws/parent.rs`
//! (`parent_start`, `replay`, `fill_gaps`, `catch_up`); the client is a parent that keeps
//! the last `seq` it got and sends it as `lastSeq` when it reconnects.
//!
//! Abstractions: a connect is one step (the socket is registered with the hub before the
//! database is read, so an event committed meanwhile is both replayed and queued live, and
//! the live copy is skipped by its `seq`); the bus may reorder and duplicate live events,
//! and loses them only by disconnecting, after which the node runs a catch-up.

use stateright::{Model, Property};

/// Largest replay before `resync` (1,000 in the relay; small here so the bound reaches it).
pub const MAX_REPLAY: u8 = 2;

/// What may go wrong, and how often.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Bounds {
    /// Events committed for the parent.
    pub events: u8,
    /// Events pruned by retention (oldest first).
    pub prunes: u8,
    /// Socket drops.
    pub drops: u8,
    /// Relay kills (the node and its hub die; committed events stay).
    pub relay_kills: u8,
    /// Live events delivered twice by the bus.
    pub dups: u8,
    /// Bus disconnects (live events on their way lost, then a catch-up).
    pub bus_losses: u8,
}

impl Bounds {
    /// The bound CI checks.
    pub const CI: Bounds = Bounds {
        events: 4,
        prunes: 2,
        drops: 2,
        relay_kills: 1,
        dups: 1,
        bus_losses: 1,
    };
}

/// Faults planted in the relay's rules, for the tests that show the checker can fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ResumeFaults {
    /// The replay does not notice events pruned while it reads: no `resync` for the gap.
    pub no_gap_check: bool,
    /// A live event already sent (by the replay) is sent again.
    pub no_live_dedup: bool,
}

/// The model.
#[derive(Clone, Debug)]
pub struct Resume {
    /// The bound.
    pub bounds: Bounds,
    /// Planted faults (`default()`: the relay's rules).
    pub faults: ResumeFaults,
}

/// A frame to the parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Frame {
    /// An event with this `seq`.
    Event(u8),
    /// `resync`: refetch over REST, continue after this `seq`.
    Resync(u8),
}

/// The state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    /// The newest committed `seq` (events `1..=newest`).
    pub newest: u8,
    /// Events up to this `seq` are pruned.
    pub pruned: u8,
    /// The session's position (the last `seq` it sent), while connected.
    pub session: Option<u8>,
    /// Frames on the socket, in order.
    pub frames: Vec<Frame>,
    /// Live events on their way from the bus to the session, in any order.
    pub bus: Vec<u8>,
    /// A catch-up is due (the bus reconnected).
    pub catch_up: bool,
    /// The client's position: the last `seq` it got (or was told to continue after).
    pub client: u8,
    /// The client got an event that was not the next one (a gap, a repeat, a reorder)
    /// without a `resync` for it.
    pub broken: bool,
    /// Faults left: prunes, drops, relay kills, dups, bus losses.
    pub left: [u8; 5],
}

/// A step.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// An event for the parent commits (and goes to the bus).
    Commit,
    /// Retention prunes the oldest kept event.
    Prune,
    /// The parent connects with its `lastSeq`.
    Connect,
    /// The socket drops.
    Drop,
    /// The relay dies and restarts.
    KillRelay,
    /// The session handles this live event.
    Live(usize),
    /// The bus delivers this live event twice.
    DupLive(usize),
    /// The bus disconnects: live events on their way are lost.
    BusLoss,
    /// The catch-up after the bus came back.
    CatchUp,
    /// The client reads the next frame.
    Read,
}

impl Resume {
    /// The relay's `replay(before)`: events after the session's position and below
    /// `before`, from the database, a `resync` before any gap.
    fn replay(&self, s: &mut State, before: u8) {
        let Some(mut last) = s.session else { return };
        for ev in (s.pruned + 1).max(last + 1)..=s.newest {
            if ev >= before {
                break;
            }
            if ev > last + 1 && !self.faults.no_gap_check {
                s.frames.push(Frame::Resync(ev - 1));
            }
            s.frames.push(Frame::Event(ev));
            last = ev;
        }
        // Everything before the live event that revealed the gap is gone: say so (the
        // check `fill_gaps` gained when this model found the gap passed over silently).
        if before != u8::MAX && before > last + 1 && !self.faults.no_gap_check {
            s.frames.push(Frame::Resync(before - 1));
            last = before - 1;
        }
        s.session = Some(last);
    }
}

impl Model for Resume {
    type State = State;
    type Action = Action;

    fn init_states(&self) -> Vec<State> {
        let b = self.bounds;
        vec![State {
            newest: 0,
            pruned: 0,
            session: None,
            frames: Vec::new(),
            bus: Vec::new(),
            catch_up: false,
            client: 0,
            broken: false,
            left: [b.prunes, b.drops, b.relay_kills, b.dups, b.bus_losses],
        }]
    }

    fn actions(&self, s: &State, out: &mut Vec<Action>) {
        if s.newest < self.bounds.events {
            out.push(Action::Commit);
        }
        if s.left[0] > 0 && s.pruned < s.newest {
            out.push(Action::Prune);
        }
        match s.session {
            None => out.push(Action::Connect),
            Some(_) => {
                if s.left[1] > 0 {
                    out.push(Action::Drop);
                }
                for (i, e) in s.bus.iter().enumerate() {
                    if s.bus[..i].contains(e) {
                        continue;
                    }
                    out.push(Action::Live(i));
                    if s.left[3] > 0 {
                        out.push(Action::DupLive(i));
                    }
                }
                if s.left[4] > 0 && !s.bus.is_empty() {
                    out.push(Action::BusLoss);
                }
                if s.catch_up {
                    out.push(Action::CatchUp);
                }
            }
        }
        if s.left[2] > 0 {
            out.push(Action::KillRelay);
        }
        if !s.frames.is_empty() {
            out.push(Action::Read);
        }
    }

    fn next_state(&self, last: &State, action: Action) -> Option<State> {
        let mut s = last.clone();
        match action {
            Action::Commit => {
                s.newest += 1;
                if s.session.is_some() {
                    s.bus.push(s.newest);
                }
            }
            Action::Prune => {
                s.left[0] -= 1;
                s.pruned += 1;
            }
            Action::Connect => {
                // `parent_start`: resync when lastSeq is ahead of every position, when the
                // event after it is pruned, or when it is more than MAX_REPLAY behind.
                let ls = s.client;
                let next_kept = ls >= s.newest || ls + 1 > s.pruned;
                if ls > s.newest || !next_kept || s.newest - ls > MAX_REPLAY {
                    s.frames.push(Frame::Resync(s.newest));
                    s.session = Some(s.newest);
                } else {
                    s.session = Some(ls);
                    self.replay(&mut s, u8::MAX);
                }
            }
            Action::Drop => {
                s.left[1] -= 1;
                s.session = None;
                s.frames.clear();
                s.bus.clear();
                s.catch_up = false;
            }
            Action::KillRelay => {
                s.left[2] -= 1;
                s.session = None;
                s.frames.clear();
                s.bus.clear();
                s.catch_up = false;
            }
            Action::Live(i) => {
                // `fill_gaps`: skip what was sent; fill a gap from the database first.
                let ev = s.bus.remove(i);
                let pos = s.session?;
                if ev <= pos && !self.faults.no_live_dedup {
                    // Already sent.
                } else {
                    if ev > pos + 1 {
                        if ev - pos - 1 > MAX_REPLAY {
                            s.frames.push(Frame::Resync(ev - 1));
                            s.session = Some(ev - 1);
                        }
                        self.replay(&mut s, ev);
                    }
                    s.frames.push(Frame::Event(ev));
                    s.session = Some(ev.max(s.session.unwrap_or(0)));
                }
            }
            Action::DupLive(i) => {
                s.left[3] -= 1;
                let e = s.bus[i];
                s.bus.push(e);
            }
            Action::BusLoss => {
                s.left[4] -= 1;
                s.bus.clear();
                s.catch_up = true;
            }
            Action::CatchUp => {
                // `catch_up`: too far behind → resync to the newest; else replay the rest.
                s.catch_up = false;
                let pos = s.session?;
                if s.newest.saturating_sub(pos) > MAX_REPLAY {
                    s.frames.push(Frame::Resync(s.newest));
                    s.session = Some(s.newest);
                } else {
                    self.replay(&mut s, u8::MAX);
                }
            }
            Action::Read => match s.frames.remove(0) {
                Frame::Event(e) => {
                    if e != s.client + 1 {
                        s.broken = true;
                    }
                    s.client = e;
                }
                Frame::Resync(seq) => s.client = seq,
            },
        }
        s.bus.sort();
        Some(s)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::always(
                "every event reaches the parent once and in order, or it is told to resync",
                |_, s: &State| !s.broken,
            ),
            Property::eventually(
                "the parent catches up with every event",
                |m: &Resume, s: &State| {
                    s.newest == m.bounds.events
                        && s.client == s.newest
                        && s.session.is_some()
                        && s.frames.is_empty()
                },
            ),
            Property::sometimes(
                "a parent gets events after a socket drop",
                |m: &Resume, s: &State| s.left[1] < m.bounds.drops && s.client >= 2 && !s.broken,
            ),
        ]
    }
}
