//! Model checking of SafeStream's delivery protocol with [stateright].
//!
//! Two models, each with its properties as checkable predicates (`RELIABILITY.md` lists
//! them and what is and is not modelled):
//!
//! - [`delivery::Delivery`]: commands from the parent to the device and their acks. The
//!   device side is agent-core's own code ([`agent_core::sim::Device`]: the executor's
//!   decision, the ledger and its files, the outbox state machine); the relay side
//!   re-describes the durable command store's rules ([`relay`]).
//! - [`resume::Resume`]: a parent's events across reconnects, relay kills, pruning and a
//!   lossy bus, and the `resync` signal.
//!
//! [`check`] explores a model breadth-first and reports the states it saw and any
//! counterexample as a readable trace. `cargo test -p model` checks the CI bound and shows
//! that each planted fault is found; `cargo run --release -p model --example check` goes
//! deeper.

pub mod delivery;
pub mod relay;
pub mod resume;

use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use stateright::{Checker, Model};

/// What one exploration found.
#[derive(Debug)]
pub struct Report {
    /// Distinct states reached.
    pub unique_states: usize,
    /// States generated (with repeats).
    pub states: usize,
    /// The deepest path.
    pub max_depth: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// Properties violated (an `always` or `eventually` with a counterexample, or a
    /// `sometimes` never met), each with its trace.
    pub violations: Vec<(&'static str, String)>,
}

impl Report {
    /// The names of the violated properties.
    pub fn violated(&self) -> Vec<&'static str> {
        self.violations.iter().map(|(n, _)| *n).collect()
    }
}

/// Explores `model` depth-first (memory: one path and the fingerprints of the states seen) on `threads` threads and reports.
pub fn check<M>(model: M, threads: usize) -> Report
where
    M: Model + Send + Sync + 'static,
    M::State: Clone + Debug + Eq + Hash + Send + Sync + 'static,
    M::Action: Clone + Debug + Eq + Send + Sync + 'static,
{
    let start = Instant::now();
    let checker = model.checker().threads(threads).spawn_dfs().join();
    let model = checker.model();
    let mut violations = Vec::new();
    for p in model.properties() {
        let failed = match p.expectation {
            stateright::Expectation::Sometimes => checker.discovery(p.name).is_none(),
            _ => checker.discovery(p.name).is_some(),
        };
        if failed {
            let trace = checker
                .discovery(p.name)
                .map(|path| trace(&path.into_vec()))
                .unwrap_or_else(|| "never reached in the bound".to_owned());
            violations.push((p.name, trace));
        }
    }
    Report {
        unique_states: checker.unique_state_count(),
        states: checker.state_count(),
        max_depth: checker.max_depth(),
        elapsed: start.elapsed(),
        violations,
    }
}

/// A counterexample as numbered steps, each with the state it led to.
fn trace<S: Debug, A: Debug>(path: &[(S, Option<A>)]) -> String {
    let mut out = String::new();
    if let Some((first, _)) = path.first() {
        out.push_str(&format!("initial state: {first:?}\n"));
    }
    for (i, w) in path.windows(2).enumerate() {
        let (_, action) = &w[0];
        let (next, _) = &w[1];
        if let Some(a) = action {
            out.push_str(&format!("{:>3}. {a:?}\n     -> {next:?}\n", i + 1));
        }
    }
    out
}
