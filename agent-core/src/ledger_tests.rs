use super::*;
use crate::storage::MemoryStorage;

const DAY: i64 = 24 * 3600 * 1000;

fn open(s: &MemoryStorage) -> (Ledger, Vec<String>) {
    Ledger::load(Arc::new(s.clone()), 1_000).unwrap()
}

/// A command run and acked, its ack answered: the usual life.
fn run(l: &mut Ledger, id: &str, exp: i64) {
    l.begin(id, Some(exp), 0).unwrap();
    assert!(l.finish(id, AckStatus::Executed, None, 0).unwrap());
    l.remove_ack(id).unwrap();
}

#[test]
fn remembers_ids_across_restart() {
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    run(&mut l, "a", DAY);
    let (l2, interrupted) = open(&s);
    assert!(l2.knows("a"));
    assert!(interrupted.is_empty());
    assert_eq!(l2.outbox_len(), 0);
}

#[test]
fn started_becomes_interrupted_once() {
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    l.begin("a", Some(DAY), 1).unwrap();
    drop(l);
    let (l2, interrupted) = open(&s);
    assert_eq!(interrupted, vec!["a".to_owned()]);
    let ack = l2.outbox()[0].clone();
    assert_eq!(ack.status, AckStatus::Failed);
    assert_eq!(ack.error.as_deref(), Some(INTERRUPTED));
    drop(l2);
    let (l3, again) = open(&s);
    assert!(again.is_empty(), "interrupted is recorded durably");
    assert_eq!(l3.outbox_len(), 1);
}

#[test]
fn finished_with_queued_ack_is_not_interrupted() {
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    l.begin("a", Some(DAY), 1).unwrap();
    assert!(l.finish("a", AckStatus::Executed, None, 2).unwrap());
    assert!(!l
        .finish("a", AckStatus::Failed, Some("x".into()), 3)
        .unwrap());
    let (l2, interrupted) = open(&s);
    assert!(interrupted.is_empty());
    assert_eq!(l2.outbox()[0].status, AckStatus::Executed);
}

#[test]
fn failed_write_does_not_start() {
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    s.set_fail_saves(true);
    assert!(l.begin("a", Some(DAY), 1).is_err());
    assert!(!l.knows("a"));
    s.set_fail_saves(false);
    let (l2, _) = open(&s);
    assert!(!l2.knows("a"));
}

#[test]
fn no_count_cap_and_each_transition_is_one_small_append() {
    // 2,000 commands queued while offline, each run and acked but no ack answered yet:
    // every id and every ack is kept (the old ledger dropped acks past 512 and could then
    // forget their ids, so a re-sent command ran twice).
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    for i in 0..2000 {
        let id = format!("c{i}");
        let before = s.get(JOURNAL_FILE).map_or(0, |j| j.len());
        l.begin(&id, Some(DAY), 0).unwrap();
        l.finish(&id, AckStatus::Executed, None, 0).unwrap();
        let after = s.get(JOURNAL_FILE).map_or(0, |j| j.len());
        // Either two records of a couple of hundred bytes were appended, or the journal
        // was just folded into the snapshot.
        assert!(
            after < before || after - before < 400,
            "{} bytes",
            after - before
        );
    }
    assert_eq!(l.ids_len(), 2000);
    assert_eq!(l.outbox_len(), 2000);
    let (l2, interrupted) = open(&s);
    assert!(interrupted.is_empty());
    assert_eq!(l2.ids_len(), 2000);
    assert_eq!(l2.outbox_len(), 2000);
    assert!((0..2000).all(|i| l2.knows(&format!("c{i}"))));
}

#[test]
fn ids_are_forgotten_only_when_they_can_never_come_back() {
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    run(&mut l, "done", 1_000);
    l.begin("ack-waiting", Some(1_000), 0).unwrap();
    l.finish("ack-waiting", AckStatus::Executed, None, 0)
        .unwrap();
    l.begin("running", Some(1_000), 0).unwrap();
    run(&mut l, "later", 10 * DAY);
    l.record_final(
        "refused",
        Some(1_000),
        AckStatus::Failed,
        Some("x".into()),
        0,
    )
    .unwrap();
    l.remove_ack("refused").unwrap();

    // Not yet past expiry plus the grace period: nothing goes.
    assert_eq!(l.forget_expired(1_000 + FORGET_GRACE_MS).unwrap(), 0);
    // Past it: only what is finished and whose ack the relay answered.
    assert_eq!(l.forget_expired(1_001 + FORGET_GRACE_MS).unwrap(), 2);
    assert!(!l.knows("done"));
    assert!(!l.knows("refused"));
    assert!(l.knows("ack-waiting"), "its ack still waits");
    assert!(l.knows("running") && l.is_started("running"), "started");
    assert!(l.knows("later"), "not expired");
    let (l2, _) = open(&s);
    assert!(!l2.knows("done") && l2.knows("ack-waiting") && l2.knows("later"));
}

#[test]
fn a_torn_last_record_is_ignored() {
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    run(&mut l, "a", DAY);
    s.append(
        JOURNAL_FILE,
        br#"{"seq":99,"op":"put","entry":{"id":"b","ph"#,
    )
    .unwrap();
    let (l2, _) = open(&s);
    assert!(l2.knows("a"));
    assert!(!l2.knows("b"));
}

#[test]
fn a_crash_between_snapshot_and_journal_reset_replays_nothing_twice() {
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    l.begin("a", Some(DAY), 0).unwrap();
    let journal = s.get(JOURNAL_FILE).unwrap();
    l.finish("a", AckStatus::Executed, None, 0).unwrap();
    l.remove_ack("a").unwrap();
    l.fold().unwrap();
    // As if the process died after the snapshot was written but before the journal was
    // emptied: the journal still holds the "begin" the snapshot already includes.
    s.save(JOURNAL_FILE, &journal).unwrap();
    let (l2, interrupted) = open(&s);
    assert!(interrupted.is_empty(), "the old begin was replayed again");
    assert!(l2.knows("a"));
    assert_eq!(l2.outbox_len(), 0);
}

#[test]
fn a_version_1_file_loads_and_keeps_its_old_bound() {
    let s = MemoryStorage::default();
    let commands: Vec<String> = (0..600)
        .map(|i| format!(r#"{{"id":"old{i}","phase":"finished","at":{i}}}"#))
        .collect();
    let v1 = format!(
        r#"{{"version":1,"commands":[{}],"outbox":[{{"id":"old599","status":"EXECUTED","attempts":1}}]}}"#,
        commands.join(",")
    );
    s.save(STATE_FILE, v1.as_bytes()).unwrap();
    let (l, _) = open(&s);
    assert_eq!(l.ids_len(), MAX_LEGACY_IDS);
    assert!(l.knows("old599"));
    assert!(!l.knows("old0"));
    assert_eq!(l.outbox()[0].attempts, 1);
}

#[test]
fn corrupt_file_is_set_aside() {
    let s = MemoryStorage::default();
    s.save(STATE_FILE, b"{not json").unwrap();
    let (l, _) = open(&s);
    assert_eq!(l.outbox_len(), 0);
    assert!(s.get("agent-state.json.corrupt").is_some());
}

#[test]
fn attempts_are_counted_and_kept() {
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    l.record_final("u", None, AckStatus::Failed, Some("unsupported".into()), 0)
        .unwrap();
    assert_eq!(l.count_attempt("u"), 1);
    assert_eq!(l.count_attempt("u"), 2);
    assert_eq!(l.count_attempt("absent"), 0);
    assert_eq!(l.outbox()[0].attempts, 2);
    // Written with the next change.
    l.record_final("v", None, AckStatus::Failed, Some("unsupported".into()), 0)
        .unwrap();
    let (l2, _) = open(&s);
    assert_eq!(l2.outbox()[0].attempts, 2);
}

#[test]
fn nothing_is_appended_after_a_torn_record() {
    // A torn append with no records after it: the next run must not glue its own records
    // onto the torn line (they would all be lost at the following load).
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    run(&mut l, "a", DAY);
    drop(l);
    s.append(JOURNAL_FILE, br#"{"seq":99,"op":"put","entry":{"id":"b"#)
        .unwrap();
    let (mut l2, _) = open(&s);
    l2.begin("x", Some(DAY), 0).unwrap();
    drop(l2);
    let (l3, interrupted) = open(&s);
    assert!(
        l3.knows("x"),
        "a record written after the torn one was lost"
    );
    assert_eq!(interrupted, vec!["x".to_owned()]);
}

#[test]
fn a_failed_append_neither_reuses_its_number_nor_lets_records_follow_it() {
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    run(&mut l, "a", DAY);
    // The append of "x" fails (as if at fsync, its bytes maybe on disk): x does not run.
    s.set_fail_saves(true);
    assert!(l.begin("x", Some(DAY), 0).is_err());
    s.set_fail_saves(false);
    // As if its bytes had reached the file anyway, whole.
    s.append(
        JOURNAL_FILE,
        br#"{"seq":4,"op":"put","entry":{"id":"x","phase":"started","at":0,"exp":1}}
"#,
    )
    .unwrap();
    l.begin("z", Some(DAY), 0).unwrap();
    drop(l);
    let (l2, interrupted) = open(&s);
    assert!(l2.knows("z"), "z's record was taken for x's");
    assert_eq!(interrupted, vec!["z".to_owned()]);
}

#[test]
fn a_refusal_is_one_record_with_its_ack() {
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    l.record_final(
        "u",
        Some(DAY),
        AckStatus::Failed,
        Some("unsupported".into()),
        0,
    )
    .unwrap();
    let journal = String::from_utf8(s.get(JOURNAL_FILE).unwrap()).unwrap();
    assert_eq!(journal.lines().count(), 1, "{journal}");
    let (l2, _) = open(&s);
    assert!(l2.knows("u") && l2.has_ack("u"));
}

#[test]
fn a_journal_beside_an_older_snapshot_is_stale() {
    // An older app version ran last: it rewrote the snapshot (version 1, no seq) and left
    // the newer journal; replaying it would apply old transitions on newer state.
    let s = MemoryStorage::default();
    let (mut l, _) = open(&s);
    l.begin("old-run", Some(DAY), 0).unwrap();
    drop(l);
    s.save(
        STATE_FILE,
        br#"{"version":1,"commands":[{"id":"old-run","phase":"finished","at":5}],"outbox":[]}"#,
    )
    .unwrap();
    let (l2, interrupted) = open(&s);
    assert!(interrupted.is_empty(), "a stale journal was replayed");
    assert!(l2.knows("old-run"));
    assert_eq!(l2.outbox_len(), 0);
}
