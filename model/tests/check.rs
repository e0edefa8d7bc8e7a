//! The delivery and resume protocols hold every property within the CI bound, and each
//! planted fault is found with a readable counterexample (issue 22).
//!
//! `cargo test -p model -- --nocapture` prints the state counts and the traces.

use agent_core::sim::Faults;
use model::delivery::{Bounds, Delivery};
use model::relay::RelayFaults;
use model::resume::{self, Resume, ResumeFaults};
use model::{check, Report};

const NEVER_TWICE: &str = "a command never runs twice";
const NOT_AFTER_EXPIRY: &str = "nothing runs after its expiry by relay time";
const ACK_KEPT: &str = "a recorded ack is never lost or contradicted";
const ONE_OUTCOME: &str = "the device never posts two outcomes for one command";
const ENDS: &str = "every command ends, and one that ran is not reported EXPIRED";
const IN_ORDER: &str = "every event reaches the parent once and in order, or it is told to resync";

fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(2))
}

fn show(name: &str, r: &Report) {
    println!(
        "{name}: {} distinct states ({} generated), depth {}, {:.1} s",
        r.unique_states,
        r.states,
        r.max_depth,
        r.elapsed.as_secs_f64()
    );
}

/// A small bound: one command, and only the faults a planted bug needs.
fn small() -> Bounds {
    Bounds {
        commands: 1,
        max_tick: 2,
        device_kills: 0,
        relay_kills: 0,
        link_drops: 0,
        losses: 0,
        dups: 0,
        pulls: 0,
    }
}

/// Checks a model with a planted fault; asserts `property` has a counterexample and prints it.
fn found(name: &str, model: Delivery, property: &str) {
    let r = check(model, threads());
    show(name, &r);
    let Some((_, trace)) = r.violations.iter().find(|(p, _)| *p == property) else {
        panic!(
            "{name}: the checker did not find a violation of {property:?}; found {:?}",
            r.violated()
        );
    };
    println!("{name}: counterexample for {property:?}:\n{trace}");
    assert!(trace.lines().count() > 2, "a trace with steps: {trace}");
}

#[test]
fn the_real_delivery_protocol_holds_every_property_in_the_ci_bound() {
    let r = check(Delivery::real(Bounds::CI), threads());
    show("delivery, CI bound", &r);
    for (p, trace) in &r.violations {
        println!("VIOLATED {p}:\n{trace}");
    }
    assert!(r.violations.is_empty(), "violated: {:?}", r.violated());
    assert!(
        r.unique_states > 10_000,
        "the bound explores something: {}",
        r.unique_states
    );
}

#[test]
fn the_real_resume_protocol_holds_every_property_in_the_ci_bound() {
    let r = check(
        Resume {
            bounds: resume::Bounds::CI,
            faults: ResumeFaults::default(),
        },
        threads(),
    );
    show("resume, CI bound", &r);
    for (p, trace) in &r.violations {
        println!("VIOLATED {p}:\n{trace}");
    }
    assert!(r.violations.is_empty(), "violated: {:?}", r.violated());
    assert!(r.unique_states > 1_000);
}

#[test]
fn recording_started_after_the_host_call_runs_a_command_twice() {
    let mut m = Delivery::real(Bounds {
        device_kills: 1,
        ..small()
    });
    m.faults = Faults {
        start_after_run: true,
        ..Faults::NONE
    };
    found("start recorded after the run", m, NEVER_TWICE);
}

#[test]
fn without_the_dedup_check_a_duplicate_runs_twice() {
    let mut m = Delivery::real(Bounds { dups: 1, ..small() });
    m.faults = Faults {
        no_dedup: true,
        ..Faults::NONE
    };
    found("no dedup check", m, NEVER_TWICE);
}

#[test]
fn acking_before_the_ledger_write_contradicts_the_ack() {
    let mut m = Delivery::real(Bounds {
        device_kills: 1,
        ..small()
    });
    m.faults = Faults {
        ack_before_write: true,
        ..Faults::NONE
    };
    found("ack before the ledger write", m, ONE_OUTCOME);
}

#[test]
fn trusting_the_device_clock_runs_an_expired_command() {
    let mut m = Delivery::real(small());
    m.faults = Faults {
        device_clock: true,
        ..Faults::NONE
    };
    found("expiry by the device's clock", m, NOT_AFTER_EXPIRY);
}

#[test]
fn a_relay_that_redelivers_acknowledged_commands_loses_the_ack() {
    let mut m = Delivery::real(Bounds {
        link_drops: 1,
        ..small()
    });
    m.relay_faults = RelayFaults {
        redeliver_acked: true,
        ..Default::default()
    };
    found("relay redelivers acknowledged commands", m, ACK_KEPT);
}

/// The bug this checker found in the real relay (fixed 2026-12-05): with the old late-ack
/// rule, a command whose delivery record died with the relay ends EXPIRED although it ran.
#[test]
fn the_old_late_ack_rule_reports_a_command_that_ran_as_expired() {
    let mut m = Delivery::real(Bounds {
        relay_kills: 1,
        ..small()
    });
    m.relay_faults = RelayFaults {
        late_ack_needs_delivered_at: true,
        ..Default::default()
    };
    found("late ack only with delivered_at (the old rule)", m, ENDS);
}

#[test]
fn a_replay_blind_to_pruning_skips_events_silently() {
    let m = Resume {
        bounds: resume::Bounds::CI,
        faults: ResumeFaults {
            no_gap_check: true,
            ..Default::default()
        },
    };
    let r = check(m, threads());
    show("resume without the gap check", &r);
    let trace = &r
        .violations
        .iter()
        .find(|(p, _)| *p == IN_ORDER)
        .expect("found")
        .1;
    println!("{trace}");
}

#[test]
fn a_session_that_resends_what_it_replayed_duplicates_events() {
    let m = Resume {
        bounds: resume::Bounds::CI,
        faults: ResumeFaults {
            no_live_dedup: true,
            ..Default::default()
        },
    };
    let r = check(m, threads());
    show("resume without the live dedup", &r);
    let trace = &r
        .violations
        .iter()
        .find(|(p, _)| *p == IN_ORDER)
        .expect("found")
        .1;
    println!("{trace}");
}
