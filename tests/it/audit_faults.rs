//! The audit writer under faults of its directory: a segment removed, renamed or replaced while
//! the writer runs, a start that fails right after cutting a torn tail, and write failures that
//! last until a flush or until the log closes. Nothing acknowledged may be lost, and nothing
//! lost may go unreported.

use std::{
    fs,
    path::{Path, PathBuf},
};

use crate::{
    audit::{key, rt},
    audit_proofs::sha256,
};

use aaa::{
    Timestamp,
    audit::{
        AuditError, AuditEvent, AuditSink, AuditWriter, AuditWriterConfig, Durability,
        DurabilityPolicy, EventKind, Verifier,
    },
};

fn strict_event(i: i64) -> AuditEvent {
    AuditEvent::new(
        Timestamp::from_unix_seconds(1_700_000_000 + i),
        EventKind::IdentityChange {
            change: aaa::audit::IdentityChange::RoleGranted,
            subject: format!("user-{i}"),
            detail: None,
        },
    )
}

fn loose_event(i: i64) -> AuditEvent {
    AuditEvent::new(
        Timestamp::from_unix_seconds(1_700_000_000 + i),
        EventKind::RequestCompleted {
            status: 200,
            latency_us: 1,
        },
    )
}

/// Identity changes are strict, request completions best effort.
fn config(dir: &Path) -> AuditWriterConfig {
    let mut c = AuditWriterConfig::new(dir, "faults", "pod-1");
    c.clock = std::sync::Arc::new(aaa::FixedClock::new(Timestamp::from_unix_seconds(
        1_700_000_000,
    )));
    c.checkpoint_every = 1000;
    c.durability = DurabilityPolicy::all(Durability::BestEffort);
    c.durability.identity_change = Durability::Strict;
    c
}

fn trusted() -> Verifier {
    Verifier::new([key("faults/audit", 1).verifier_key()])
}

fn open(c: AuditWriterConfig) -> Result<AuditWriter, AuditError> {
    AuditWriter::open(c, key("faults/audit", 1))
}

fn segment(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("audit-{first_seq:020}.jsonl"))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// What happens to the open segment while the writer runs.
#[derive(Debug, Clone, Copy)]
enum Fault {
    Deleted,
    Renamed,
    /// Another file (here a copy of its bytes, as a restore would leave) put in its place.
    Replaced,
}

/// A strict event is acknowledged only once it is durable in the log directory: after the open
/// segment is removed, renamed or replaced, the writer answers the error instead of a receipt
/// for a record written to a file nobody will read, and goes on in a new segment. A directory
/// that lost the old segment no longer verifies; one that holds a copy of it does.
#[test]
fn no_receipt_from_a_segment_that_left_the_directory() {
    for fault in [Fault::Deleted, Fault::Renamed, Fault::Replaced] {
        let dir = tempfile::tempdir().unwrap();
        let log = open(config(dir.path())).unwrap();
        let runtime = rt();
        let first = runtime.block_on(log.record(strict_event(0))).unwrap();
        assert_eq!(first.unwrap().seq, 0);
        let current = segment(dir.path(), 0);
        match fault {
            Fault::Deleted => fs::remove_file(&current).unwrap(),
            Fault::Renamed => fs::rename(&current, dir.path().join("moved.jsonl")).unwrap(),
            Fault::Replaced => {
                let copy = dir.path().join("copy");
                fs::copy(&current, &copy).unwrap();
                fs::rename(&copy, &current).unwrap();
            }
        }
        let lost = runtime.block_on(log.record(strict_event(1)));
        assert!(
            matches!(lost, Err(AuditError::Unavailable(_))),
            "{fault:?}: {lost:?}"
        );
        // The writer goes on in a segment named for the record it writes next.
        let next = runtime
            .block_on(log.record(strict_event(2)))
            .unwrap()
            .unwrap();
        assert_eq!(next.seq, 1, "{fault:?}");
        let text = fs::read_to_string(segment(dir.path(), 1)).unwrap();
        let leaves: Vec<String> = text
            .lines()
            .map(|line| hex(&aaa::audit::merkle::leaf_hash(line.as_bytes())))
            .collect();
        assert!(leaves.contains(&next.leaf_hash), "{fault:?}: {text}");
        log.close().unwrap();
        let verified = trusted().verify_dir(dir.path());
        match fault {
            // Every acknowledged record is in the directory, the copy holding the first.
            Fault::Replaced => assert_eq!(verified.unwrap().events, 2),
            Fault::Deleted | Fault::Renamed => assert!(
                verified.is_err(),
                "{fault:?}: a directory missing acknowledged records verified"
            ),
        }
    }
}

/// The log `dir` with `events` strict events and a torn tail (half a record) at the end of its
/// last segment; returns the torn bytes.
fn torn_log(dir: &Path, events: i64) -> Vec<u8> {
    let log = open(config(dir)).unwrap();
    rt().block_on(async {
        for i in 0..events {
            log.record(strict_event(i)).await.unwrap();
        }
    });
    log.close().unwrap();
    let seg = segment(dir, 0);
    let text = fs::read(&seg).unwrap();
    let torn = br#"{"v":1,"origin":{"service":"faults","instance":"pod-1"},"seq":"#.to_vec();
    let mut out = text;
    out.extend_from_slice(&torn);
    fs::write(&seg, out).unwrap();
    torn
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A clock that stops the thread reading it: the start that reads it first (to stamp its
/// recovery record, right after cutting the torn tail) dies there, as if killed.
#[derive(Debug)]
struct DiesOnFirstRead;

impl aaa::Clock for DiesOnFirstRead {
    fn now(&self) -> Timestamp {
        panic!("killed while starting the audit log")
    }
}

/// A start cuts a torn tail and records the cut. When that start dies after the cut, before
/// the recovery record is written, the bytes are kept aside, and the next start records the
/// cut, with their length and hash.
#[test]
fn a_torn_tail_cut_by_a_start_that_dies_is_recorded_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let torn = torn_log(dir.path(), 3);
    let mut dying = config(dir.path());
    dying.clock = std::sync::Arc::new(DiesOnFirstRead);
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| open(dying)));
    assert!(died.is_err(), "the start went past the cut");
    // The segment was cut; the bytes it lost are beside it.
    let seg = fs::read(segment(dir.path(), 0)).unwrap();
    assert!(seg.ends_with(b"\n") && !seg.ends_with(&torn));
    assert!(
        names(dir.path()).iter().any(|n| n.starts_with("torn-")),
        "{:?}",
        names(dir.path())
    );

    open(config(dir.path())).unwrap().close().unwrap();
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!((report.events, report.recoveries), (3, 1), "{report:?}");
    let all: String = names(dir.path())
        .iter()
        .filter(|n| n.starts_with("audit-"))
        .map(|n| fs::read_to_string(dir.path().join(n)).unwrap())
        .collect();
    let sha = hex(&sha256(&torn));
    assert!(
        all.contains(&sha),
        "the recovery record names the cut bytes"
    );
    assert!(all.contains(&format!("\"cut_bytes\":{}", torn.len())));
    // Recorded: nothing is left aside, and the next start records nothing more.
    assert!(
        !names(dir.path()).iter().any(|n| n.contains("torn-")),
        "{:?}",
        names(dir.path())
    );
    open(config(dir.path())).unwrap().close().unwrap();
    assert_eq!(trusted().verify_dir(dir.path()).unwrap().recoveries, 1);
}

/// A start that died after keeping the torn tail aside but before cutting it leaves both the
/// side file (named as docs/audit.md says) and the tail: the next start records the cut once.
#[test]
fn a_torn_tail_kept_but_not_cut_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let torn = torn_log(dir.path(), 2);
    let seg = fs::read(segment(dir.path(), 0)).unwrap();
    let offset = seg.len() - torn.len();
    let sha = hex(&sha256(&torn));
    let side = format!("torn-{offset:020}-{}-audit-{:020}.jsonl", &sha[..16], 0);
    fs::write(dir.path().join(side), &torn).unwrap();
    assert_the_cut_of_two_events_is_recorded_once(dir.path());
}

/// A start that records its cut at once leaves nothing aside either.
#[test]
fn a_torn_tail_is_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    torn_log(dir.path(), 2);
    assert_the_cut_of_two_events_is_recorded_once(dir.path());
}

/// Starts and closes the log of `torn_log(dir, 2)`: one recovery record, nothing left aside
/// (but the writer's resume point).
fn assert_the_cut_of_two_events_is_recorded_once(dir: &Path) {
    open(config(dir)).unwrap().close().unwrap();
    let report = trusted().verify_dir(dir).unwrap();
    assert_eq!((report.events, report.recoveries), (2, 1), "{report:?}");
    assert!(
        names(dir)
            .iter()
            .all(|n| n.starts_with("audit-") || n == "resume.json"),
        "{:?}",
        names(dir)
    );
}

/// Events nobody waited for, lost to write failures that last until the log closes, cannot be
/// recorded in it: `close` reports how many.
#[test]
fn close_reports_events_lost_to_failures_that_last_until_then() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.segment_max_bytes = 1; // every batch after the first starts a new segment
    let log = open(c).unwrap();
    let runtime = rt();
    runtime.block_on(log.record(strict_event(0))).unwrap();
    fs::create_dir(segment(dir.path(), 1)).unwrap();
    for i in 1..=5 {
        assert_eq!(runtime.block_on(log.record(loose_event(i))), Ok(None));
    }
    assert_eq!(log.close(), Err(AuditError::Lost { events: 5 }));
    fs::remove_dir(segment(dir.path(), 1)).unwrap();
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!((report.events, report.dropped), (1, 0), "{report:?}");
}

/// `flush` promises that what was queued before it is durable. While writes fail it answers
/// the error; once they work again, the first flush writes the gap record and reports the
/// events lost meanwhile; the next one is clean.
#[test]
fn flush_reports_events_lost_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.segment_max_bytes = 1;
    let log = open(c).unwrap();
    let runtime = rt();
    runtime.block_on(log.record(strict_event(0))).unwrap();
    let blocker = segment(dir.path(), 1);
    fs::create_dir(&blocker).unwrap();
    for i in 1..=5 {
        runtime.block_on(log.record(loose_event(i))).unwrap();
    }
    let blocked = runtime.block_on(log.flush());
    assert!(matches!(blocked, Err(AuditError::Io { .. })), "{blocked:?}");
    fs::remove_dir(&blocker).unwrap();
    assert_eq!(
        runtime.block_on(log.flush()),
        Err(AuditError::Lost { events: 5 })
    );
    runtime.block_on(log.flush()).unwrap();
    runtime.block_on(log.record(loose_event(6))).unwrap();
    log.close().unwrap();
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!((report.events, report.dropped), (2, 5), "{report:?}");
}

/// A log in a directory that does not exist yet: the writer creates it and its parents.
#[test]
fn a_new_log_directory_is_created_with_its_parents() {
    let dir = tempfile::tempdir().unwrap();
    let deep = dir.path().join("a").join("b").join("log");
    let log = open(config(&deep)).unwrap();
    rt().block_on(log.record(strict_event(0))).unwrap();
    log.close().unwrap();
    assert_eq!(trusted().verify_dir(&deep).unwrap().events, 1);
}
