//! The report machine, driven directly.

use std::time::Duration;

use crate::backoff::{Rng, ACK};
use crate::machine::reports::{
    enqueue, Action as A, Answer, Event as E, Outcome, Owner, PendingReport, Report, Reports,
    MAX_RESTRICTED,
};
use crate::machine::Time;

const S: Duration = Duration::from_secs(1);

fn screen(seq: u64, minutes_used: u32) -> PendingReport {
    PendingReport {
        seq,
        owner: Owner::default(),
        report: Report::ScreenTime { minutes_used },
        attempts: 0,
    }
}

fn attempt(seq: u64) -> PendingReport {
    PendingReport {
        seq,
        owner: Owner::default(),
        report: Report::Restricted(wire::rest::RestrictedAttempt {
            url: Some(format!("https://x/{seq}")),
            ..Default::default()
        }),
        attempts: 0,
    }
}

fn answered(seq: u64, answer: Answer) -> E {
    E::Answered { seq, answer }
}

fn retryable(retry_after: Option<Duration>) -> Answer {
    Answer::Retryable { retry_after }
}

fn token(present: bool, changed: bool) -> E {
    E::Token { present, changed }
}

fn new_reports() -> Reports {
    Reports::new(true, Rng::seeded(5))
}

fn at(d: Duration) -> Time {
    Time(d)
}

#[test]
fn reports_are_posted_in_order_one_at_a_time() {
    let mut r = new_reports();
    assert_eq!(
        r.handle(Time::ZERO, E::Queued(attempt(0))),
        vec![A::Post(attempt(0))]
    );
    assert_eq!(r.handle(Time::ZERO, E::Queued(screen(1, 5))), vec![]);
    assert_eq!(r.next_deadline(), None, "nothing to wake for while posting");
    assert_eq!(
        r.handle(Time::ms(10), answered(0, Answer::Ok)),
        vec![
            A::Finished {
                seq: 0,
                outcome: Outcome::Sent
            },
            A::Post(screen(1, 5))
        ]
    );
    assert_eq!(
        r.handle(Time::ms(20), answered(1, Answer::Ok)),
        vec![A::Finished {
            seq: 1,
            outcome: Outcome::Sent
        }]
    );
    assert_eq!(r.len(), 0);
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn retryable_answers_back_off_within_the_window_and_honour_retry_after() {
    let mut r = new_reports();
    r.handle(Time::ZERO, E::Queued(attempt(0)));
    let mut now = Time::ZERO;
    for n in 0..8u32 {
        let acts = r.handle(now, answered(0, retryable(None)));
        let [A::Retry {
            seq: 0,
            attempts,
            delay,
        }] = acts.as_slice()
        else {
            panic!("{acts:?}")
        };
        assert_eq!(*attempts, n + 1);
        assert!(
            *delay >= ACK.floor && *delay <= ACK.ceiling(n),
            "{n}: {delay:?}"
        );
        assert_eq!(r.next_deadline(), Some(now + *delay));
        // Not due before its time.
        assert_eq!(r.handle(now, E::Timer), vec![]);
        now = now + *delay;
        assert_eq!(
            r.handle(now, E::Timer),
            vec![A::Post({
                let mut p = attempt(0);
                p.attempts = n + 1;
                p
            })]
        );
    }
    let acts = r.handle(now, answered(0, retryable(Some(90 * S))));
    let [A::Retry { delay, .. }] = acts.as_slice() else {
        panic!("{acts:?}")
    };
    assert_eq!(*delay, 90 * S, "Retry-After wins over a shorter backoff");
    assert!(r.handle(now, E::Timer).is_empty());
    assert_eq!(r.handle(now + 90 * S, E::Timer).len(), 1);
    let acts = r.handle(now + 90 * S, answered(0, retryable(Some(100_000 * S))));
    let [A::Retry { delay, .. }] = acts.as_slice() else {
        panic!("{acts:?}")
    };
    assert_eq!(*delay, 3600 * S, "Retry-After is capped at an hour");
}

#[test]
fn final_answers_drop_the_report() {
    let mut r = new_reports();
    r.handle(Time::ZERO, E::Queued(attempt(0)));
    r.handle(Time::ZERO, E::Queued(attempt(1)));
    assert_eq!(
        r.handle(Time::ms(1), answered(0, Answer::Final { status: 400 })),
        vec![
            A::Finished {
                seq: 0,
                outcome: Outcome::Rejected { status: 400 }
            },
            A::Post(attempt(1))
        ]
    );
}

#[test]
fn unauthorized_waits_for_a_new_token() {
    let mut r = new_reports();
    r.handle(Time::ZERO, E::Queued(screen(0, 30)));
    assert_eq!(
        r.handle(Time::ms(1), answered(0, Answer::Unauthorized)),
        vec![]
    );
    assert_eq!(r.next_deadline(), None, "no retry timer while held");
    assert_eq!(r.handle(at(600 * S), E::Timer), vec![]);
    assert_eq!(r.handle(at(600 * S), E::RetryNow), vec![]);
    assert_eq!(r.handle(at(600 * S), E::Queued(attempt(1))), vec![]);
    assert_eq!(
        r.handle(at(600 * S), token(true, false)),
        vec![],
        "the same token does not end the wait"
    );
    assert_eq!(
        r.handle(at(601 * S), token(true, true)),
        vec![A::Post(screen(0, 30))]
    );
    assert_eq!(r.len(), 2);
}

#[test]
fn no_token_posts_nothing_until_one_comes() {
    let mut r = Reports::new(false, Rng::seeded(1));
    assert_eq!(r.handle(Time::ZERO, E::Queued(attempt(0))), vec![]);
    assert_eq!(r.next_deadline(), None);
    assert_eq!(
        r.handle(Time::ms(5), token(true, true)),
        vec![A::Post(attempt(0))]
    );
    // Losing the token abandons the post; a new one posts it again.
    assert_eq!(r.handle(Time::ms(6), token(false, true)), vec![]);
    assert_eq!(
        r.handle(Time::ms(7), token(true, true)),
        vec![A::Post(attempt(0))]
    );
}

#[test]
fn retry_now_ends_the_backoff_wait_but_not_retry_after() {
    let mut r = new_reports();
    r.handle(Time::ZERO, E::Queued(attempt(0)));
    r.handle(Time::ZERO, E::Queued(attempt(1)));
    // Grow the backoff past its floor first.
    let mut now = Time::ZERO;
    for _ in 0..6 {
        r.handle(now, answered(0, retryable(None)));
        now = r.next_deadline().unwrap();
        assert_eq!(r.handle(now, E::Timer).len(), 1);
    }
    r.handle(now, answered(0, retryable(None)));
    assert!(r.next_deadline().unwrap() > now);
    assert_eq!(r.handle(now, E::Timer), vec![]);
    // One post for the connect, not one per queued report.
    let acts = r.handle(now, E::RetryNow);
    assert_eq!(acts.len(), 1, "{acts:?}");
    r.handle(now, answered(0, retryable(Some(600 * S))));
    assert_eq!(r.handle(now + S, E::RetryNow), vec![], "Retry-After holds");
    assert_eq!(r.next_deadline(), Some(now + 600 * S));
    assert_eq!(r.handle(now + 600 * S, E::Timer).len(), 1);
}

#[test]
fn one_failure_holds_the_whole_queue_until_its_deadline() {
    let mut r = new_reports();
    for seq in 0..299 {
        r.handle(Time::ZERO, E::Queued(attempt(seq)));
    }
    let acts = r.handle(Time::ms(5), answered(0, retryable(None)));
    let [A::Retry { seq: 0, delay, .. }] = acts.as_slice() else {
        panic!("a 503 posts nothing else: {acts:?}")
    };
    let deadline = Time::ms(5) + *delay;
    assert_eq!(r.next_deadline(), Some(deadline));
    let before = Time(deadline.0 - Duration::from_millis(1));
    assert_eq!(r.handle(before, E::Timer), vec![]);
    assert_eq!(r.handle(before, E::Queued(attempt(1000))), vec![]);
    assert_eq!(r.handle(before, token(true, false)), vec![]);
    let acts = r.handle(deadline, E::Timer);
    let [A::Post(p)] = acts.as_slice() else {
        panic!("{acts:?}")
    };
    assert_eq!(p.seq, 0, "the queue resumes in order");
    // Consecutive failures grow the wait whichever report they are for; a 2xx resets it.
    let mut now = deadline;
    for n in 1..6u32 {
        let acts = r.handle(now, answered(0, retryable(None)));
        let [A::Retry { delay, .. }] = acts.as_slice() else {
            panic!("{acts:?}")
        };
        assert!(*delay <= ACK.ceiling(n), "{n}: {delay:?}");
        now = now + *delay;
        assert_eq!(r.handle(now, E::Timer).len(), 1);
    }
    let acts = r.handle(now, answered(0, Answer::Ok));
    assert_eq!(acts.len(), 2, "sent, then the next at once: {acts:?}");
    let acts = r.handle(now, answered(1, retryable(None)));
    let [A::Retry { delay, .. }] = acts.as_slice() else {
        panic!("{acts:?}")
    };
    assert!(*delay <= ACK.ceiling(0), "reset by the 2xx: {delay:?}");
}

#[test]
fn retry_after_holds_the_whole_queue() {
    let mut r = new_reports();
    for seq in 0..10 {
        r.handle(Time::ZERO, E::Queued(attempt(seq)));
    }
    let acts = r.handle(Time::ZERO, answered(0, retryable(Some(30 * S))));
    let [A::Retry { delay, .. }] = acts.as_slice() else {
        panic!("{acts:?}")
    };
    assert_eq!(*delay, 30 * S);
    assert_eq!(r.next_deadline(), Some(at(30 * S)));
    for t in [S, 10 * S, 29 * S] {
        assert_eq!(r.handle(at(t), E::Timer), vec![]);
        assert_eq!(r.handle(at(t), E::RetryNow), vec![]);
    }
    assert_eq!(
        r.handle(at(Duration::from_millis(29_999)), E::Timer),
        vec![]
    );
    assert_eq!(
        r.handle(at(30 * S), E::Timer),
        vec![A::Post({
            let mut p = attempt(0);
            p.attempts = 1;
            p
        })]
    );
}

#[test]
fn newer_screen_time_replaces_the_unsent_one_even_in_flight() {
    let mut r = new_reports();
    assert_eq!(
        r.handle(Time::ZERO, E::Queued(screen(0, 10))),
        vec![A::Post(screen(0, 10))]
    );
    r.handle(Time::ZERO, E::Queued(attempt(1)));
    // A newer value while the old one is in flight: the old one is forgotten.
    assert_eq!(r.handle(Time::ZERO, E::Queued(screen(2, 11))), vec![]);
    assert_eq!(r.handle(Time::ZERO, E::Queued(screen(3, 12))), vec![]);
    assert_eq!(r.len(), 2);
    // Its answer frees the line; a retryable one still makes the queue wait.
    assert_eq!(r.handle(Time::ms(1), answered(0, retryable(None))), vec![]);
    let t = r.next_deadline().unwrap();
    assert_eq!(r.handle(t, E::Timer), vec![A::Post(attempt(1))]);
    assert_eq!(
        r.handle(t, answered(1, Answer::Ok)),
        vec![
            A::Finished {
                seq: 1,
                outcome: Outcome::Sent
            },
            A::Post(screen(3, 12))
        ]
    );
}

#[test]
fn restricted_attempts_are_bounded_oldest_first() {
    let mut q = Vec::new();
    assert!(enqueue(&mut q, screen(0, 1)).is_empty());
    for seq in 1..=MAX_RESTRICTED as u64 {
        assert!(enqueue(&mut q, attempt(seq)).is_empty());
    }
    let gone = enqueue(&mut q, attempt(1000));
    assert_eq!(gone, vec![attempt(1)], "the oldest attempt goes");
    assert_eq!(q.len(), MAX_RESTRICTED + 1, "screen time is not counted");
    assert_eq!(q[0], screen(0, 1));
    let gone = enqueue(&mut q, screen(1001, 2));
    assert_eq!(gone, vec![screen(0, 1)]);
    assert_eq!(q.last(), Some(&screen(1001, 2)));
    assert_eq!(
        q.iter()
            .filter(|r| matches!(r.report, Report::ScreenTime { .. }))
            .count(),
        1
    );
}

#[test]
fn stop_posts_nothing_more() {
    let mut r = new_reports();
    r.handle(Time::ZERO, E::Queued(attempt(0)));
    assert_eq!(r.handle(Time::ZERO, E::Stop), vec![]);
    assert!(r.is_stopped());
    assert_eq!(r.handle(Time::ZERO, E::Queued(attempt(1))), vec![]);
    assert_eq!(
        r.handle(Time::ZERO, answered(0, Answer::Ok)),
        vec![A::Finished {
            seq: 0,
            outcome: Outcome::Sent
        }]
    );
    assert_eq!(r.next_deadline(), None);
}
