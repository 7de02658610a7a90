//! Properties of the audit log (verifier, writer, keys) from an adversarial review: each states
//! what the documentation promises; those about the final line, key rotation and segment names
//! failed before their fixes.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    task::{Context as TaskContext, Poll, Waker},
};

use crate::audit::{key, rt};

use aaa::{
    Clock, Decision, Reason, Timestamp,
    audit::{
        AuditError, AuditEvent, AuditSink, AuditWriter, AuditWriterConfig, Durability,
        DurabilityPolicy, EventKind, Verifier,
    },
};

fn event(i: i64) -> AuditEvent {
    AuditEvent::new(
        Timestamp::from_unix_seconds(1_700_000_000 + i),
        EventKind::Authorization {
            decision: Decision::Allow,
            reason: Reason::Permitted,
            rules: vec!["r".into()],
            errors: vec![],
            policy_version: Some("v1".into()),
        },
    )
}

fn config(dir: &Path) -> AuditWriterConfig {
    let mut c = AuditWriterConfig::new(dir, "rev", "pod-1");
    c.clock = Arc::new(aaa::FixedClock::new(Timestamp::from_unix_seconds(
        1_700_000_000,
    )));
    c.checkpoint_every = 8;
    c.durability = DurabilityPolicy::all(Durability::Strict);
    c
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    segs.sort();
    segs
}

/// A closed log of 10 events (its last line is a checkpoint) signed by `rev/audit` seed 1.
fn closed_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditWriter::open(config(dir.path()), key("rev/audit", 1)).unwrap();
    rt().block_on(async {
        for i in 0..10 {
            log.record(event(i)).await.unwrap();
        }
    });
    log.close().unwrap();
    dir
}

fn trusted() -> Verifier {
    Verifier::new([key("rev/audit", 1).verifier_key()])
}

/// Replaces the last line of the only segment (without its newline) by `f(line)`.
fn rewrite_last_line(dir: &Path, f: impl FnOnce(&str) -> String) -> (String, String) {
    let seg = segments(dir).pop().unwrap();
    let text = fs::read_to_string(&seg).unwrap();
    let body = text.strip_suffix('\n').unwrap();
    let (head, last) = body.rsplit_once('\n').map_or(("", body), |(h, l)| (h, l));
    let new = f(last);
    let out = if head.is_empty() {
        format!("{new}\n")
    } else {
        format!("{head}\n{new}\n")
    };
    fs::write(&seg, out).unwrap();
    (last.to_owned(), new)
}

// ---------------------------------------------------------------------------------------------
// Finding 1: the last record of a log (the final checkpoint) can be re-encoded, bytes changed,
// and the verifier still says "verified" (with a different root than the writer's).
// ---------------------------------------------------------------------------------------------

/// A change of one line's text.
type Rewrite = Box<dyn Fn(&str) -> String>;

/// Every variant of the final checkpoint line below has the same meaning but other bytes; the
/// stored bytes are the hashed bytes, so a verifier must not accept any of them.
#[test]
fn final_checkpoint_line_reencoded_is_detected() {
    let variants: Vec<(&str, Rewrite)> = vec![
        ("trailing space", Box::new(|l: &str| format!("{l} "))),
        (
            "CR before the newline",
            Box::new(|l: &str| format!("{l}\r")),
        ),
        ("leading space", Box::new(|l: &str| format!(" {l}"))),
        (
            "whitespace after a colon",
            Box::new(|l: &str| l.replacen("\"kind\":", "\"kind\": ", 1)),
        ),
        (
            "keys reordered",
            Box::new(|l: &str| {
                // Move `"v":1` to the front.
                let inner = l
                    .strip_prefix('{')
                    .unwrap()
                    .strip_suffix(",\"v\":1}")
                    .unwrap();
                format!("{{\"v\":1,{inner}}}")
            }),
        ),
        (
            "a character escaped",
            Box::new(|l: &str| {
                l.replacen(
                    "\"kind\":\"checkpoint\"",
                    "\"kind\":\"\\u0063heckpoint\"",
                    1,
                )
            }),
        ),
        (
            "solidus escaped in the origin line of the note",
            Box::new(|l: &str| l.replacen("rev/pod-1\\n", "rev\\/pod-1\\n", 1)),
        ),
        (
            "CR at the end of the signature line of the note",
            Box::new(|l: &str| {
                let (head, tail) = l.rsplit_once("\\n\",\"id\"").unwrap();
                format!("{head}\\r\\n\",\"id\"{tail}")
            }),
        ),
        (
            "signature line of the note duplicated",
            Box::new(|l: &str| {
                let start = l.find("\u{2014} ").unwrap();
                let end = start + l[start..].find("\\n").unwrap() + 2;
                let sig_line = &l[start..end];
                format!("{}{}{}", &l[..end], sig_line, &l[end..])
            }),
        ),
    ];
    let mut accepted = Vec::new();
    for (what, f) in &variants {
        let dir = closed_log();
        let good = trusted().verify_dir(dir.path()).unwrap();
        assert_eq!(good.uncovered, 0, "the last line is a checkpoint");
        let (old, new) = rewrite_last_line(dir.path(), f);
        assert_ne!(old, new, "{what}: the variant changes the bytes");
        if let Ok(report) = trusted().verify_dir(dir.path()) {
            assert_ne!(report.root, good.root, "{what}: the bytes hashed changed");
            accepted.push(*what);
        }
    }
    assert!(
        accepted.is_empty(),
        "the verifier accepted a final checkpoint line modified by: {accepted:?}"
    );
}

/// A one-bit flip anywhere in the final checkpoint line (the last line of a closed log) must be
/// detected. Exhaustive over the line.
#[test]
fn final_checkpoint_line_every_bit_flip_is_detected() {
    let dir = closed_log();
    let seg = segments(dir.path()).pop().unwrap();
    let original = fs::read(&seg).unwrap();
    let last_start = original[..original.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let mut accepted = Vec::new();
    for pos in last_start..original.len() {
        for bit in 0..8 {
            let mut bytes = original.clone();
            bytes[pos] ^= 1 << bit;
            let segs = vec![(
                seg.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
            )];
            if trusted().verify_segments(&segs).is_ok() {
                accepted.push((pos - last_start, bit));
            }
        }
    }
    assert!(
        accepted.is_empty(),
        "bit flips accepted (offset in line, bit): {accepted:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Finding 2: after a key rotation, the writer reopens with the retired key and signs checkpoints
// that no verifier accepts (the retired key is no longer in charge).
// ---------------------------------------------------------------------------------------------

/// `AuditWriter::open` documents `WrongKey` "when the last checkpoint was not signed by `key`".
/// Right after a rotation the last checkpoint is signed by both keys, and the writer accepts the
/// retired key: the log it then writes no longer verifies (fail open: strict events are
/// acknowledged into an unverifiable log).
#[test]
fn retired_key_cannot_reopen_the_log_right_after_a_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditWriter::open(config(dir.path()), key("rev/audit", 1)).unwrap();
    rt().block_on(async {
        for i in 0..3 {
            log.record(event(i)).await.unwrap();
        }
        log.rotate_key(key("rev/audit-2", 2)).await.unwrap();
    });
    log.close().unwrap();
    trusted().verify_dir(dir.path()).unwrap();

    // The service restarts with the old key file (a rollback of its configuration).
    match AuditWriter::open(config(dir.path()), key("rev/audit", 1)) {
        Err(e) => assert_eq!(e, aaa::audit::AuditError::WrongKey),
        Ok(log) => {
            let acked = rt().block_on(log.record(event(99)));
            assert!(acked.is_ok(), "a strict event was acknowledged: {acked:?}");
            log.close().unwrap();
            let verified = trusted().verify_dir(dir.path());
            assert!(
                verified.is_ok(),
                "the writer accepted the retired key and acknowledged an event into a log that \
                 no longer verifies: {}",
                verified.unwrap_err()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Finding 3: two key rotations in the same batch both succeed, and the log no longer verifies.
// ---------------------------------------------------------------------------------------------

/// A clock that, once armed, blocks the next caller of `now` (the sequencer, at the start of a
/// batch) until released, and tells when it is blocked: a deterministic way to queue several
/// commands for one batch.
#[derive(Debug, Default)]
struct GateClock {
    state: Mutex<(bool, bool)>, // (armed, blocked)
    cv: Condvar,
}

impl GateClock {
    fn arm(&self) {
        self.state.lock().unwrap().0 = true;
    }
    fn wait_blocked(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.1 {
            s = self.cv.wait(s).unwrap();
        }
    }
    fn release(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = false;
        self.cv.notify_all();
    }
}

impl Clock for GateClock {
    fn now(&self) -> Timestamp {
        let mut s = self.state.lock().unwrap();
        if s.0 {
            s.1 = true;
            self.cv.notify_all();
            while s.0 {
                s = self.cv.wait(s).unwrap();
            }
            s.1 = false;
        }
        Timestamp::from_unix_seconds(1_700_000_000)
    }
}

/// Polls `f` once (so that it sends its command), without waiting.
fn poll_once<F: std::future::Future>(f: &mut std::pin::Pin<Box<F>>) -> Poll<F::Output> {
    f.as_mut().poll(&mut TaskContext::from_waker(Waker::noop()))
}

#[test]
fn two_rotations_in_one_batch_leave_a_verifiable_log() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(GateClock::default());
    let mut c = config(dir.path());
    c.clock = gate.clone();
    c.durability = DurabilityPolicy::all(Durability::BestEffort);
    let log = AuditWriter::open(c, key("rev/audit", 1)).unwrap();
    let runtime = rt();
    runtime.block_on(log.record(event(0))).unwrap();
    runtime.block_on(log.flush()).unwrap();

    // Hold the sequencer inside a batch, queue two rotations, let it go: they form one batch.
    gate.arm();
    runtime.block_on(log.record(event(1))).unwrap(); // best effort: wakes the sequencer
    gate.wait_blocked();
    let mut first = Box::pin(log.rotate_key(key("rev/audit-2", 2)));
    let mut second = Box::pin(log.rotate_key(key("rev/audit-3", 3)));
    assert!(poll_once(&mut first).is_pending());
    assert!(poll_once(&mut second).is_pending());
    gate.release();
    let first = runtime.block_on(first);
    let second = runtime.block_on(second);
    log.close().unwrap();

    assert!(first.is_ok(), "{first:?}");
    assert!(
        second.is_err(),
        "the second rotation of the batch is refused"
    );
    let verified = trusted().verify_dir(dir.path());
    assert!(
        verified.is_ok(),
        "rotations answered {first:?} and {second:?}, and the log does not verify: {}",
        verified.unwrap_err()
    );
}

// ---------------------------------------------------------------------------------------------
// From a review of the fixes above (2026-12-03): rotating to the key in charge signed the
// checkpoint twice with one key; a signed event after a rotation in the same batch was signed by
// the retired key. The probes pin down crashes inside a rotation and the verifier's slow path.
// ---------------------------------------------------------------------------------------------

#[test]
fn rotating_to_the_key_in_charge_leaves_a_log_that_verifies_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditWriter::open(config(dir.path()), key("rev/audit", 1)).unwrap();
    let rotated = rt().block_on(async {
        for i in 0..3 {
            log.record(event(i)).await.unwrap();
        }
        // e.g. a configuration reload that "rotates" to the key file it already uses.
        log.rotate_key(key("rev/audit", 1)).await
    });
    log.close().unwrap();
    // The key is in charge already: nothing to change, nothing written.
    assert!(rotated.is_ok(), "{rotated:?}");
    let verified = trusted().verify_dir(dir.path()).map(|r| r.key_changes);
    let reopened = AuditWriter::open(config(dir.path()), key("rev/audit", 1)).map(|_| ());
    assert!(
        verified == Ok(0) && reopened.is_ok(),
        "rotate_key(same key): verifying the log gives {verified:?} (key changes), reopening it \
         with the key gives {reopened:?}"
    );
}

/// A signed event (`sign_events`) in the same batch as a rotation, after it, is signed by the new
/// key: the verifier refuses the retired key's signature from the key change on.
#[test]
fn signed_event_after_a_rotation_in_the_same_batch_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(GateClock::default());
    let mut c = config(dir.path());
    c.clock = gate.clone();
    c.durability = DurabilityPolicy::all(Durability::BestEffort);
    c.sign_events = |_| true;
    let log = AuditWriter::open(c, key("rev/audit", 1)).unwrap();
    let runtime = rt();
    runtime.block_on(log.record(event(0))).unwrap();
    runtime.block_on(log.flush()).unwrap();

    // Hold the sequencer inside a batch; queue a rotation, then an event: they form one batch.
    gate.arm();
    runtime.block_on(log.record(event(1))).unwrap();
    gate.wait_blocked();
    let mut rotation = Box::pin(log.rotate_key(key("rev/audit-2", 2)));
    assert!(poll_once(&mut rotation).is_pending());
    runtime.block_on(log.record(event(2))).unwrap(); // best effort: queued behind the rotation
    gate.release();
    let rotated = runtime.block_on(rotation);
    log.close().unwrap();
    assert!(rotated.is_ok(), "{rotated:?}");
    let verified = trusted().verify_dir(dir.path());
    assert!(
        verified.is_ok(),
        "the rotation answered Ok, and the log does not verify: {}\n{}",
        verified.unwrap_err(),
        fs::read_to_string(segments(dir.path()).pop().unwrap()).unwrap()
    );
}

/// Probe: a crash at every byte of a rotation. Exactly the key in charge reopens the log (the old
/// one before the key change record is whole, the new one after), and what it writes verifies.
#[test]
fn probe_crash_at_every_byte_of_a_rotation() {
    let base = tempfile::tempdir().unwrap();
    let log = AuditWriter::open(config(base.path()), key("rev/audit", 1)).unwrap();
    rt().block_on(async {
        for i in 0..3 {
            log.record(event(i)).await.unwrap();
        }
        log.checkpoint_now().await.unwrap();
    });
    let before = fs::read(segments(base.path()).pop().unwrap())
        .unwrap()
        .len();
    rt().block_on(async {
        log.rotate_key(key("rev/audit-2", 2)).await.unwrap();
    });
    drop(log);
    let seg = segments(base.path()).pop().unwrap();
    let full = fs::read(&seg).unwrap();
    let name = seg.file_name().unwrap().to_owned();
    // The key change record ends at the first newline after `before`.
    let kc_end = before + full[before..].iter().position(|&b| b == b'\n').unwrap() + 1;
    let mut cuts: Vec<usize> = (before..=full.len()).step_by(7).collect();
    cuts.extend([
        before,
        before + 1,
        kc_end - 1,
        kc_end,
        kc_end + 1,
        full.len() - 1,
        full.len(),
    ]);
    for cut in cuts {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(&name), &full[..cut]).unwrap();
        let old = AuditWriter::open(config(dir.path()), key("rev/audit", 1));
        let old_ok = old.is_ok();
        if let Ok(l) = old {
            l.close().unwrap();
        }
        // Start again from the cut for the other key.
        fs::write(dir.path().join(&name), &full[..cut]).unwrap();
        let new = AuditWriter::open(config(dir.path()), key("rev/audit-2", 2));
        let new_ok = new.is_ok();
        let in_charge = cut >= kc_end;
        assert_eq!(
            (old_ok, new_ok),
            (!in_charge, in_charge),
            "cut at {cut} (key change ends at {kc_end})"
        );
        let log = match new {
            Ok(l) => l,
            Err(_) => {
                fs::write(dir.path().join(&name), &full[..cut]).unwrap();
                AuditWriter::open(config(dir.path()), key("rev/audit", 1)).unwrap()
            }
        };
        rt().block_on(log.record(event(50))).unwrap();
        log.close().unwrap();
        let verified = trusted().verify_dir(dir.path());
        assert!(verified.is_ok(), "cut at {cut}: {}", verified.unwrap_err());
    }
}

/// Probe: every record kind, events full of escapes and non-ASCII text (the verifier's slow,
/// canonical path), signed events, gaps, recoveries, key changes: what the writer writes verifies.
#[test]
fn probe_writer_lines_on_the_slow_path_verify() {
    use aaa::audit::{RequestInfo, Target};
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.sign_events = |_| true;
    c.checkpoint_every = 3;
    let log = AuditWriter::open(c, key("rev/audit", 1)).unwrap();
    let strings = [
        "",
        "\"quoted\" \\ back/slash",
        "\u{0}\u{1f}\u{7f}\u{85}\u{2028}\u{2029}",
        "\u{feff}é😀 日本",
        "\r\n\t",
    ];
    rt().block_on(async {
        for (i, s) in strings.iter().enumerate() {
            let mut e = AuditEvent::new(
                Timestamp::from_unix_micros(i64::MAX - i as i64),
                EventKind::IdentityChange {
                    change: aaa::audit::IdentityChange::ApiKeyRevoked,
                    subject: (*s).into(),
                    detail: Some(s.repeat(3)),
                },
            );
            e.request = Some(Arc::new(RequestInfo {
                ignored_credential: None,
                relayed_by: None,
                method: Some((*s).into()),
                peer_ip: Some("::ffff:1.2.3.4".parse().unwrap()),
                request_id: Some((*s).into()),
                trace_id: Some((*s).into()),
                user_agent: Some((*s).into()),
            }));
            e.target = Some(Arc::new(Target {
                action: Some((*s).into()),
                resource_id: Some((*s).into()),
                resource_type: Some((*s).into()),
                route: Some((*s).into()),
                tenant: Some((*s).into()),
            }));
            log.record(e).await.unwrap();
            log.record(AuditEvent::new(
                Timestamp::from_unix_micros(i64::MIN + i as i64),
                EventKind::RequestCompleted {
                    status: u16::MAX,
                    latency_us: u64::MAX,
                },
            ))
            .await
            .unwrap();
        }
        log.rotate_key(key("rev/audit-2", 2)).await.unwrap();
        log.record(event(7)).await.unwrap();
    });
    log.close().unwrap();
    trusted().verify_dir(dir.path()).unwrap();
    // Crash: a torn tail; the restart writes a recovery record.
    let seg = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&seg).unwrap();
    bytes.extend_from_slice(b"{\"torn");
    fs::write(&seg, bytes).unwrap();
    let log = AuditWriter::open(config(dir.path()), key("rev/audit-2", 2)).unwrap();
    rt().block_on(log.record(event(8))).unwrap();
    log.close().unwrap();
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!(report.recoveries, 1);
    assert_eq!(report.key_changes, 1);
}

// ---------------------------------------------------------------------------------------------
// Finding 4: segment names are matched loosely (any decimal spelling of the first seq), and the
// writer does not check them at all: a stray empty file named like a segment makes the writer
// write into a wrongly named segment, producing a log that no longer verifies.
// ---------------------------------------------------------------------------------------------

/// The format names segments `audit-<first seq, 20 decimal digits>.jsonl`; a renamed segment must
/// be detected.
#[test]
fn segment_renamed_to_another_spelling_of_its_number_is_detected() {
    let dir = closed_log();
    let seg = segments(dir.path()).pop().unwrap();
    for name in ["audit-0.jsonl", "audit-+0.jsonl", "audit-000.jsonl"] {
        let renamed = dir.path().join(name);
        fs::rename(segments(dir.path()).pop().unwrap(), &renamed).unwrap();
        assert!(
            trusted().verify_dir(dir.path()).is_err(),
            "segment renamed to {name} verified"
        );
    }
    let _ = seg;
}

/// An empty file named like a later segment (a stray file, or one restored by a backup tool):
/// the verifier refuses it (an empty segment is only the writer's newest, named for the next
/// record), and the writer refuses to start rather than write into it.
#[test]
fn a_stray_empty_segment_file_is_refused() {
    let dir = closed_log();
    fs::write(dir.path().join("audit-00000000000000000500.jsonl"), b"").unwrap();
    let refused = trusted().verify_dir(dir.path()).unwrap_err();
    assert_eq!(refused.problem, aaa::audit::Problem::SegmentName);
    assert!(matches!(
        AuditWriter::open(config(dir.path()), key("rev/audit", 1)),
        Err(aaa::audit::AuditError::Corrupt { .. })
    ));
    // The writer's own empty newest segment (a crash right after it was made) is fine.
    fs::remove_file(dir.path().join("audit-00000000000000000500.jsonl")).unwrap();
    fs::write(dir.path().join("audit-00000000000000000012.jsonl"), b"").unwrap();
    trusted().verify_dir(dir.path()).unwrap();
    let log = AuditWriter::open(config(dir.path()), key("rev/audit", 1)).unwrap();
    rt().block_on(log.record(event(50))).unwrap();
    log.close().unwrap();
    trusted().verify_dir(dir.path()).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Malformed input: a clear error, never a panic, never "verified".
// ---------------------------------------------------------------------------------------------

fn good_first_line() -> String {
    let dir = closed_log();
    let seg = segments(dir.path()).pop().unwrap();
    let text = fs::read_to_string(seg).unwrap();
    text.lines().next().unwrap().to_owned()
}

#[test]
fn malformed_lines_are_errors_not_panics() {
    let line = good_first_line();
    let name = "audit-00000000000000000000.jsonl".to_owned();
    let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("NUL", format!("{line}\0\n").into_bytes()),
        ("invalid utf-8", {
            let mut b = line.clone().into_bytes();
            b.insert(5, 0xff);
            b.push(b'\n');
            b
        }),
        (
            "seq out of range",
            format!(
                "{}\n",
                line.replacen("\"seq\":0", "\"seq\":18446744073709551616", 1)
            )
            .into_bytes(),
        ),
        (
            "seq as float",
            format!("{}\n", line.replacen("\"seq\":0", "\"seq\":0.0", 1)).into_bytes(),
        ),
        (
            "v huge",
            format!("{}\n", line.replacen("\"v\":1", "\"v\":1e400", 1)).into_bytes(),
        ),
        (
            "deeply nested event",
            format!(
                "{}\n",
                line.replacen("\"event\":{", &format!("\"event\":{{\"x\":{deep},"), 1)
            )
            .into_bytes(),
        ),
        (
            "deeply nested envelope",
            format!("{}{}\n", "{\"a\":".repeat(100_000), "}".repeat(100_000)).into_bytes(),
        ),
        ("huge line", {
            let mut b = line
                .replacen("\"r\"", &format!("\"{}\"", "r".repeat(8 << 20)), 1)
                .into_bytes();
            b.push(b'\n');
            b
        }),
        ("empty line", b"\n".to_vec()),
        (
            "only newline after good",
            format!("{line}\n\n").into_bytes(),
        ),
        (
            "duplicate key",
            format!("{}\n", line.replacen("\"v\":1}", "\"v\":1,\"v\":1}", 1)).into_bytes(),
        ),
    ];
    // The line is the log's only record, an event not covered by any checkpoint: a change that
    // keeps it a valid record (a deeply nested or huge event) is legitimately accepted as
    // "1 uncovered record"; it must only not panic or overflow the stack.
    let valid_json = ["deeply nested event", "huge line"];
    for (what, bytes) in cases.drain(..) {
        let result =
            std::panic::catch_unwind(|| trusted().verify_segments(&[(name.clone(), bytes)]));
        match result {
            Err(_) => panic!("{what}: the verifier panicked"),
            Ok(Ok(report)) if valid_json.contains(&what) => {
                assert_eq!((report.records, report.uncovered), (1, 1), "{what}");
            }
            Ok(Ok(report)) => panic!("{what}: verified {report:?}"),
            Ok(Err(_)) => {}
        }
    }
}

/// The verifier reads only origins the writer can open: a service or instance with `/` (`a/b` +
/// `c` and `a` + `b/c` would both be the origin line `a/b/c`), a control character, or empty.
/// The log's only record, uncovered, so that nothing but the origin decides.
#[test]
fn an_origin_the_writer_refuses_is_refused_by_the_verifier() {
    let line = good_first_line();
    let name = "audit-00000000000000000000.jsonl".to_owned();
    let with_service = |service: &str| {
        let changed = line.replacen("\"service\":\"rev\"", &format!("\"service\":{service}"), 1);
        assert_ne!(changed, line);
        format!("{changed}\n").into_bytes()
    };
    let report = trusted()
        .verify_segments(&[(name.clone(), with_service("\"billing\""))])
        .unwrap();
    assert_eq!((report.records, report.uncovered), (1, 1));
    assert_eq!(report.origin.as_deref(), Some("billing/pod-1"));
    for bad in ["\"rev/pod-1\"", "\"\"", "\"do\\ncs\"", "\"do\\u001bcs\""] {
        let e = trusted()
            .verify_segments(&[(name.clone(), with_service(bad))])
            .unwrap_err();
        assert!(
            matches!(e.problem, aaa::audit::Problem::Malformed(_)),
            "{bad}: {e}"
        );
        assert_eq!(e.location.unwrap().line, 1, "{bad}");
    }
}

/// A crash while the rotation's batch was being written: the key change record reached the disk,
/// its checkpoint (signed by both keys) was torn. From the key change on the new key is in charge
/// (the verifier says so); the writer still judges by the last *checkpoint*, signed by the old
/// key only. Restarted with the old key it writes checkpoints no verifier accepts; restarted with
/// the new key it refuses to start.
#[test]
fn crash_after_a_key_change_record_retired_key_fails_closed() {
    // Old key: must be refused (WrongKey), or the log must still verify.
    let dir = torn_rotation_log();
    match AuditWriter::open(config(dir.path()), key("rev/audit", 1)) {
        Err(_) => {}
        Ok(log) => {
            rt().block_on(log.record(event(50))).unwrap();
            log.close().unwrap();
            let verified = trusted().verify_dir(dir.path());
            assert!(
                verified.is_ok(),
                "reopened with the retired key after a crash mid-rotation, the writer \
                 acknowledged an event into a log that does not verify: {}",
                verified.unwrap_err()
            );
        }
    }
}

/// The other half: the new key, in charge since the key change record, is refused with
/// `WrongKey` (the writer looks at the last checkpoint only), so the service cannot restart with
/// either key without breaking the log.
#[test]
fn crash_after_a_key_change_record_the_new_key_can_reopen() {
    let dir = torn_rotation_log();
    let reopened = AuditWriter::open(config(dir.path()), key("rev/audit-2", 2));
    let log = reopened.expect("the key introduced by the key change record is the key in charge");
    rt().block_on(log.record(event(50))).unwrap();
    log.close().unwrap();
    trusted().verify_dir(dir.path()).unwrap();
}

/// A log whose last line, the checkpoint of a key rotation, was torn by a crash.
fn torn_rotation_log() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditWriter::open(config(dir.path()), key("rev/audit", 1)).unwrap();
    rt().block_on(async {
        for i in 0..3 {
            log.record(event(i)).await.unwrap();
        }
        log.checkpoint_now().await.unwrap();
        log.rotate_key(key("rev/audit-2", 2)).await.unwrap();
    });
    log.close().unwrap();
    // Tear the last line (the rotation's checkpoint): cut its second half and the newline.
    let seg = segments(dir.path()).pop().unwrap();
    let bytes = fs::read(&seg).unwrap();
    let last_start = bytes[..bytes.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    assert!(bytes[last_start..].starts_with(b"{\"checkpoint\":"));
    let cut = last_start + (bytes.len() - last_start) / 2;
    fs::write(&seg, &bytes[..cut]).unwrap();
    dir
}

/// The hand-written encoder agrees with the generic canonical serializer on edge values.
#[test]
fn hand_written_encoder_agrees_on_edge_values() {
    use aaa::audit::{RequestInfo, Target, encode_event, to_canonical};
    let strings = [
        "",
        "\u{2028}\u{2029}\u{7f}\u{85}",
        "\u{0}\u{1f}\"\\/",
        "\u{feff}é😀",
    ];
    let times = [
        i64::MIN,
        -1,
        0,
        253_402_300_799_999_999,
        253_402_300_800_000_000,
        i64::MAX,
    ];
    let ips = [
        "::ffff:1.2.3.4",
        "::",
        "fe80::1",
        "255.255.255.255",
        "0.0.0.0",
    ];
    for (i, s) in strings.iter().enumerate() {
        for &t in &times {
            for ip in ips {
                for kind in [
                    EventKind::RequestCompleted {
                        status: u16::MAX,
                        latency_us: u64::MAX,
                    },
                    EventKind::Authorization {
                        decision: Decision::Deny,
                        reason: Reason::Malformed,
                        rules: vec![(*s).into(), "".into()],
                        errors: vec![aaa::EvaluationError {
                            rule: (*s).into(),
                            message: (*s).into(),
                        }],
                        policy_version: Some((*s).into()),
                    },
                ] {
                    let mut e = AuditEvent::new(Timestamp::from_unix_micros(t), kind);
                    e.request = Some(Arc::new(RequestInfo {
                        ignored_credential: None,
                        relayed_by: None,
                        method: Some((*s).into()),
                        peer_ip: Some(ip.parse().unwrap()),
                        request_id: Some((*s).into()),
                        trace_id: None,
                        user_agent: Some(s.repeat(i + 1)),
                    }));
                    e.target = Some(Arc::new(Target {
                        action: Some((*s).into()),
                        ..Target::default()
                    }));
                    let (mut fast, mut generic) = (Vec::new(), Vec::new());
                    encode_event(&e, &mut fast).unwrap();
                    to_canonical(&e, &mut generic).unwrap();
                    assert_eq!(
                        String::from_utf8(fast).unwrap(),
                        String::from_utf8(generic).unwrap()
                    );
                }
            }
        }
    }
}

/// A write failure (the next segment's path is taken by a directory): the strict event of the
/// failed batches gets an error, the events nobody waited for are counted, and once the disk is
/// back a signed gap record says how many were lost, and the next checkpoint reports the loss.
/// Nothing is lost without a record.
#[test]
fn failed_writes_are_recorded_as_a_gap_once_the_disk_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(GateClock::default());
    let mut c = config(dir.path());
    c.clock = gate.clone();
    c.checkpoint_every = 1000;
    c.segment_max_bytes = 1; // every batch after the first starts a new segment
    c.durability = DurabilityPolicy::all(Durability::BestEffort);
    c.durability.identity_change = Durability::Strict;
    let log = AuditWriter::open(c, key("rev/audit", 1)).unwrap();
    let runtime = rt();
    // The next segment will be `audit-…1.jsonl`: a directory takes its place.
    let blocker = dir.path().join("audit-00000000000000000001.jsonl");
    fs::create_dir(&blocker).unwrap();
    let strict = || {
        AuditEvent::new(
            Timestamp::from_unix_seconds(1_700_000_000),
            EventKind::IdentityChange {
                change: aaa::audit::IdentityChange::RoleGranted,
                subject: "bob".into(),
                detail: None,
            },
        )
    };
    runtime.block_on(log.record(strict())).unwrap();

    gate.arm();
    runtime.block_on(log.record(event(1))).unwrap();
    gate.wait_blocked();
    for i in 2..6 {
        runtime.block_on(log.record(event(i))).unwrap();
    }
    let mut strict = Box::pin(log.record(strict()));
    assert!(poll_once(&mut strict).is_pending());
    gate.release();
    assert!(runtime.block_on(strict).is_err(), "the strict event failed");
    fs::remove_dir(&blocker).unwrap();
    // The next checkpoint writes the gap record and reports the loss; the one after is clean.
    assert_eq!(
        runtime.block_on(log.checkpoint_now()),
        Err(AuditError::Lost { events: 5 })
    );
    runtime.block_on(log.checkpoint_now()).unwrap();
    log.close().unwrap();
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!(report.events, 1);
    assert_eq!(report.dropped, 5, "{report:?}");
    assert_eq!(report.uncovered, 0);
}
