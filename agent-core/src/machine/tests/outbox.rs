//! The outbox machine, driven directly.

use std::time::Duration;

use crate::backoff::Rng;
use crate::command::AckStatus;
use crate::ledger::PendingAck;
use crate::machine::outbox::{self, Answer, Outbox};
use crate::machine::Time;
use crate::platform::AckResult;

use outbox::Action as O;
use outbox::Event as OE;

const S: Duration = Duration::from_secs(1);

fn ack(id: &str) -> PendingAck {
    PendingAck {
        id: id.to_owned(),
        status: AckStatus::Executed,
        error: None,
        attempts: 0,
    }
}

fn answered(id: &str, answer: Answer) -> OE {
    OE::Answered {
        id: id.to_owned(),
        answer,
    }
}

fn retryable(retry_after: Option<Duration>) -> Answer {
    Answer::Retryable { retry_after }
}

fn new_outbox() -> Outbox {
    Outbox::new(true, Rng::seeded(3))
}

#[test]
fn acks_are_posted_in_order_one_at_a_time() {
    let mut o = new_outbox();
    assert_eq!(
        o.handle(Time::ZERO, OE::Queued(ack("a"))),
        vec![O::Post(ack("a"))]
    );
    assert_eq!(o.handle(Time::ZERO, OE::Queued(ack("b"))), vec![]);
    assert_eq!(o.next_deadline(), None, "nothing to wake for while posting");
    assert_eq!(
        o.handle(Time::ms(5), answered("a", Answer::Ok)),
        vec![
            O::Finished {
                ack: ack("a"),
                result: AckResult::Confirmed
            },
            O::Post(ack("b"))
        ]
    );
    assert_eq!(o.len(), 1);
}

#[test]
fn retryable_answers_keep_the_ack_with_growing_backoff() {
    let mut o = new_outbox();
    let mut now = Time::ZERO;
    o.handle(now, OE::Queued(ack("a")));
    for n in 0..8u32 {
        let actions = o.handle(now, answered("a", retryable(None)));
        let [O::Retry {
            id,
            attempts,
            delay,
        }] = &actions[..]
        else {
            panic!("{actions:?}");
        };
        assert_eq!((id.as_str(), *attempts), ("a", n + 1));
        assert!(
            *delay >= Duration::from_millis(250) && *delay <= crate::backoff::ACK.ceiling(n),
            "attempt {n}: {delay:?}"
        );
        assert_eq!(o.next_deadline(), Some(now + *delay));
        // Not before its time.
        assert_eq!(
            o.handle(now + (*delay - Duration::from_millis(1)), OE::Timer),
            vec![]
        );
        now = now + *delay;
        let mut again = ack("a");
        again.attempts = n + 1;
        assert_eq!(o.handle(now, OE::Timer), vec![O::Post(again)]);
    }
}

#[test]
fn retry_after_is_honoured_and_capped() {
    let mut o = new_outbox();
    o.handle(Time::ZERO, OE::Queued(ack("a")));
    let a = o.handle(Time::ZERO, answered("a", retryable(Some(40 * S))));
    assert!(
        matches!(&a[..], [O::Retry { delay, .. }] if *delay == 40 * S),
        "{a:?}"
    );
    o.handle(Time::ZERO + 40 * S, OE::Timer);
    let a = o.handle(
        Time::ZERO + 40 * S,
        answered("a", retryable(Some(7200 * S))),
    );
    assert!(
        matches!(&a[..], [O::Retry { delay, .. }] if *delay == outbox::MAX_RETRY_AFTER),
        "{a:?}"
    );
}

#[test]
fn final_answers_give_up_on_the_ack() {
    let mut o = new_outbox();
    o.handle(Time::ZERO, OE::Queued(ack("a")));
    o.handle(Time::ZERO, OE::Queued(ack("b")));
    assert_eq!(
        o.handle(Time::ZERO, answered("a", Answer::Final { status: 409 })),
        vec![
            O::Finished {
                ack: ack("a"),
                result: AckResult::Rejected { status: 409 }
            },
            O::Post(ack("b"))
        ]
    );
    assert_eq!(
        o.handle(Time::ZERO, answered("b", Answer::Final { status: 0 })),
        vec![O::Finished {
            ack: ack("b"),
            result: AckResult::Rejected { status: 0 }
        }]
    );
    assert_eq!(o.len(), 0);
    assert_eq!(o.next_deadline(), None);
}

#[test]
fn a_waiting_ack_does_not_hold_up_the_next_and_retry_now_makes_it_due() {
    let mut o = new_outbox();
    o.handle(Time::ZERO, OE::Queued(ack("a")));
    o.handle(Time::ZERO, answered("a", retryable(Some(600 * S))));
    assert_eq!(
        o.handle(Time::ms(1), OE::Queued(ack("b"))),
        vec![O::Post(ack("b"))]
    );
    assert_eq!(o.handle(Time::ms(2), answered("b", Answer::Ok)).len(), 1);
    assert_eq!(o.next_deadline(), Some(Time::ZERO + 600 * S));
    // The relay is reachable again: no need to wait out the 600 s.
    let mut a = ack("a");
    a.attempts = 1;
    assert_eq!(o.handle(Time::ms(3), OE::RetryNow), vec![O::Post(a)]);
}

#[test]
fn nothing_is_posted_without_a_token_or_after_stop() {
    let mut o = Outbox::new(false, Rng::seeded(3));
    assert_eq!(o.handle(Time::ZERO, OE::Queued(ack("a"))), vec![]);
    assert_eq!(o.next_deadline(), None);
    assert_eq!(
        o.handle(Time::ZERO, OE::Token(true)),
        vec![O::Post(ack("a"))]
    );
    // The token went away before the post was made: it is abandoned, and made later.
    assert_eq!(o.handle(Time::ZERO, OE::Token(false)), vec![]);
    assert_eq!(
        o.handle(Time::ZERO, OE::Token(true)),
        vec![O::Post(ack("a"))]
    );
    assert_eq!(o.handle(Time::ZERO, OE::Stop), vec![]);
    assert!(o.is_stopped());
    assert_eq!(o.handle(Time::ZERO, OE::Queued(ack("b"))), vec![]);
    assert_eq!(o.handle(Time::ZERO, OE::RetryNow), vec![]);
    assert_eq!(o.next_deadline(), None);
}

#[test]
fn the_mirror_follows_the_ledger_rules() {
    // The same id again replaces the older ack and goes to the back.
    let mut o = Outbox::new(false, Rng::seeded(3));
    o.handle(Time::ZERO, OE::Queued(ack("x")));
    o.handle(Time::ZERO, OE::Queued(ack("y")));
    let mut failed = ack("x");
    failed.status = AckStatus::Failed;
    o.handle(Time::ZERO, OE::Queued(failed.clone()));
    assert_eq!(o.len(), 2);
    assert_eq!(
        o.handle(Time::ZERO, OE::Token(true)),
        vec![O::Post(ack("y"))]
    );
    assert_eq!(
        o.handle(Time::ZERO, answered("y", Answer::Ok))[1..],
        [O::Post(failed)]
    );

    // No count cap (exactly-once must not depend on one): 2,000 acks are all kept and
    // posted, oldest first, each once.
    let mut o = Outbox::new(false, Rng::seeded(3));
    for i in 0..2000 {
        o.handle(Time::ZERO, OE::Queued(ack(&format!("a{i}"))));
    }
    assert_eq!(o.len(), 2000);
    let mut posted = o.handle(Time::ZERO, OE::Token(true));
    for i in 0..2000 {
        assert_eq!(posted, vec![O::Post(ack(&format!("a{i}")))], "ack {i}");
        posted = o.handle(Time::ZERO, answered(&format!("a{i}"), Answer::Ok))[1..].to_vec();
    }
    assert!(posted.is_empty());
    assert_eq!(o.len(), 0);

    // A persisted attempt count carries on where it was.
    let mut o = new_outbox();
    let mut old = ack("p");
    old.attempts = 6;
    o.handle(Time::ZERO, OE::Queued(old));
    let a = o.handle(Time::ZERO, answered("p", retryable(None)));
    assert!(
        matches!(&a[..], [O::Retry { attempts: 7, delay, .. }] if *delay <= 60 * S),
        "{a:?}"
    );
}

#[test]
fn an_ack_refused_with_401_waits_for_a_new_token_and_is_never_dropped() {
    let mut o = new_outbox();
    o.handle(Time::ZERO, OE::Queued(ack("a")));
    o.handle(Time::ZERO, OE::Queued(ack("b")));
    // Refused with the current token: kept, and nothing else is posted with it.
    assert_eq!(
        o.handle(Time::ZERO, answered("a", Answer::Unauthorized)),
        vec![]
    );
    assert_eq!(o.len(), 2);
    assert_eq!(o.next_deadline(), None);
    assert_eq!(o.handle(Time::ZERO + 60 * S, OE::RetryNow), vec![]);
    assert_eq!(o.handle(Time::ZERO + 60 * S, OE::Token(true)), vec![]);
    // A new token (refreshed, rotated): the same ack again, first.
    assert_eq!(
        o.handle(Time::ZERO + 61 * S, OE::TokenChanged),
        vec![O::Post(ack("a"))]
    );
}
