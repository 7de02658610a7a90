//! The audit log: RFC 6962/9162 vectors, the tamper suite, receipts and proofs, key rotation,
//! checkpoint timing, gaps, and the guarantee that credentials never reach the log.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use aaa::{
    Action, AuthInfo, AuthMethod, Authenticator, AuthnError, Authorizer, BoxFuture, Context,
    CredentialRef, Decision, Evaluation, FixedClock, Guard, Identity, Outcome, Principal,
    PrincipalKind, Reason, Resource, RouteBinding, Timestamp,
    audit::{
        self, Actor, AuditEvent, AuditSink, AuditWriter, AuditWriterConfig, Durability,
        DurabilityPolicy, EventKind, FileWitness, Problem, RequestInfo, SigningKey, Target,
        Verifier, VerifierKey,
        merkle::{self, consistency_proof, inclusion_proof, verify_consistency, verify_inclusion},
        note::{Checkpoint, SignedNote},
    },
    http::RequestFacts,
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use proptest::prelude::*;
use serde_json::Value;

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn b64(v: &Value) -> Vec<u8> {
    B64.decode(v.as_str().unwrap_or_default()).unwrap()
}

fn proof_of(v: &Value) -> Vec<Vec<u8>> {
    v.as_array()
        .map(|a| a.iter().map(b64).collect())
        .unwrap_or_default()
}

/// The transparency-dev Merkle vectors of one kind (`inclusion`, `consistency`), at least 98.
fn merkle_vectors(kind: &str) -> serde_json::Map<String, Value> {
    let all: Value =
        serde_json::from_slice(&fs::read(fixture("vectors/transparency-dev-merkle.json")).unwrap())
            .unwrap();
    let cases = all[kind].as_object().unwrap().clone();
    assert!(cases.len() >= 98);
    cases
}

#[test]
fn transparency_dev_inclusion_vectors() {
    for (name, c) in &merkle_vectors("inclusion") {
        let got = verify_inclusion(
            c["leafIdx"].as_u64().unwrap(),
            c["treeSize"].as_u64().unwrap(),
            &b64(&c["leafHash"]),
            &proof_of(&c["proof"]),
            &b64(&c["root"]),
        );
        assert_eq!(
            got.is_err(),
            c["wantErr"].as_bool().unwrap(),
            "{name}: {got:?}"
        );
    }
}

#[test]
fn transparency_dev_consistency_vectors() {
    for (name, c) in &merkle_vectors("consistency") {
        let got = verify_consistency(
            c["size1"].as_u64().unwrap(),
            c["size2"].as_u64().unwrap(),
            &proof_of(&c["proof"]),
            &b64(&c["root1"]),
            &b64(&c["root2"]),
        );
        assert_eq!(
            got.is_err(),
            c["wantErr"].as_bool().unwrap(),
            "{name}: {got:?}"
        );
    }
}

pub(crate) fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

pub(crate) fn key(name: &str, seed: u8) -> SigningKey {
    SigningKey::from_seed(name, &[seed; 32]).unwrap()
}

pub(crate) fn decision(i: usize, allow: bool) -> AuditEvent {
    let mut e = AuditEvent::new(
        Timestamp::from_unix_seconds(1_700_000_000 + i as i64),
        EventKind::Authorization {
            decision: if allow {
                Decision::Allow
            } else {
                Decision::Deny
            },
            reason: if allow {
                Reason::Permitted
            } else {
                Reason::NotPermitted
            },
            rules: vec![format!("rule-{}", i % 4).into()],
            errors: vec![],
            policy_version: Some("v1".into()),
        },
    );
    e.actor = Some(std::sync::Arc::new(Actor::from(&Principal::new(
        format!("user{}", i % 3),
        PrincipalKind::User,
        "https://idp.example",
    ))));
    e.target = Some(std::sync::Arc::new(Target {
        action: Some("read".into()),
        resource_type: Some("Document".into()),
        resource_id: Some(format!("d{i}")),
        tenant: None,
        route: Some(
            if i.is_multiple_of(2) {
                "/docs/{id}"
            } else {
                "/a/{id}"
            }
            .into(),
        ),
    }));
    e.request = Some(std::sync::Arc::new(RequestInfo {
        request_id: Some(format!("req-{i}")),
        user_agent: Some("curl/8.5\r\n{\"seq\":0}".into()),
        ..RequestInfo::default()
    }));
    e
}

pub(crate) fn config(dir: &Path) -> AuditWriterConfig {
    let mut c = AuditWriterConfig::new(dir, "docs", "pod-1");
    c.clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000)));
    c.checkpoint_every = 8;
    c.durability = DurabilityPolicy::all(Durability::BestEffort);
    c
}

/// Appends `n` events (numbered from `from`) to the log in `dir` and closes it.
fn append(dir: &Path, signer: SigningKey, from: usize, n: usize, witness: Option<&Path>) {
    let mut c = config(dir);
    if let Some(w) = witness {
        c.witness = Some(Arc::new(FileWitness::new(w)));
    }
    let log = AuditWriter::open(c, signer).unwrap();
    rt().block_on(async {
        for i in from..from + n {
            log.record(decision(i, i % 5 != 0)).await.unwrap();
        }
        log.flush().await.unwrap();
    });
    log.close().unwrap();
}

fn only_segment(dir: &Path) -> PathBuf {
    let mut segs: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    assert_eq!(segs.len(), 1);
    segs.pop().unwrap()
}

fn lines(path: &Path) -> Vec<Vec<u8>> {
    fs::read(path)
        .unwrap()
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

pub(crate) fn trusted() -> Verifier {
    Verifier::new([key("docs/audit", 1).verifier_key()])
}

/// A good log of 40 events (plus checkpoints) in a fresh directory.
fn good_log() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let witness = dir.path().join("witness.note");
    append(
        &dir.path().join("log"),
        key("docs/audit", 1),
        0,
        40,
        Some(&witness),
    );
    (dir, witness)
}

#[test]
fn good_log_verifies_and_reports_coverage() {
    let (dir, witness) = good_log();
    let log = dir.path().join("log");
    let report = trusted()
        .with_anchor(fs::read_to_string(&witness).unwrap())
        .verify_dir(&log)
        .unwrap();
    assert_eq!(report.events, 40);
    assert_eq!(report.checkpoints, 5, "one after every 8 records");
    assert_eq!(report.uncovered, 0);
    assert_eq!(report.records, 45);
    assert_eq!(report.anchor_size, Some(44));
    // Hostile strings stay inside one line.
    assert_eq!(lines(&only_segment(&log)).len(), 45);
}

fn expect_error(dir: &Path, verifier: &Verifier) -> audit::VerifyError {
    verifier
        .verify_dir(dir)
        .expect_err("tampering must be detected")
}

#[test]
fn tamper_one_byte_flipped_is_detected_and_located() {
    let (dir, _) = good_log();
    let log = dir.path().join("log");
    let seg = only_segment(&log);
    let original = fs::read(&seg).unwrap();
    for pos in (0..original.len()).step_by(97) {
        let mut bytes = original.clone();
        bytes[pos] ^= 0x01;
        fs::write(&seg, &bytes).unwrap();
        let err = expect_error(&log, &trusted());
        let line = 1 + original[..pos].iter().filter(|&&b| b == b'\n').count() as u64;
        let at = err.location.as_ref().expect("located").line;
        assert!(
            at == line || at == line + 1,
            "byte {pos} on line {line}, reported {err}"
        );
    }
}

#[test]
fn tamper_deleted_record_is_detected_and_located() {
    let (dir, _) = good_log();
    let log = dir.path().join("log");
    let seg = only_segment(&log);
    let mut l = lines(&seg);
    l.remove(10);
    fs::write(&seg, l.concat()).unwrap();
    let err = expect_error(&log, &trusted());
    let loc = err.location.unwrap();
    assert_eq!((loc.line, loc.seq), (11, 10));
    assert_eq!(
        err.problem,
        Problem::Sequence {
            expected: 10,
            found: 11
        }
    );
}

#[test]
fn tamper_swapped_records_are_detected_and_located() {
    let (dir, _) = good_log();
    let log = dir.path().join("log");
    let seg = only_segment(&log);
    let mut l = lines(&seg);
    l.swap(20, 21);
    fs::write(&seg, l.concat()).unwrap();
    let err = expect_error(&log, &trusted());
    assert_eq!(err.location.unwrap().line, 21);
    assert!(matches!(err.problem, Problem::Sequence { .. }));
}

#[test]
fn tamper_tail_cut_is_reported_against_the_last_checkpoint_and_the_anchor() {
    let (dir, witness) = good_log();
    let log = dir.path().join("log");
    let seg = only_segment(&log);
    let l = lines(&seg);
    // Cut the final checkpoint and the last three events: the log still chains, but the report
    // shows the last checkpoint covers fewer records and three are uncovered...
    fs::write(&seg, l[..l.len() - 4].concat()).unwrap();
    let report = trusted().verify_dir(&log).unwrap();
    assert_eq!(report.last_checkpoint, Some(35));
    assert_eq!(report.covered, 35);
    assert_eq!(report.uncovered, 5);
    // ...and against the witness anchor it is a rollback.
    let err = expect_error(
        &log,
        &trusted().with_anchor(fs::read_to_string(&witness).unwrap()),
    );
    assert_eq!(
        err.problem,
        Problem::Rollback {
            log_size: 41,
            anchor_size: 44
        }
    );
    // A cut in the middle of a line is a torn record, located.
    let mut bytes = l[..l.len() - 4].concat();
    bytes.extend_from_slice(&l[l.len() - 4][..50]);
    fs::write(&seg, bytes).unwrap();
    let err = expect_error(&log, &trusted());
    assert_eq!(err.problem, Problem::Unterminated);
    assert_eq!(err.location.unwrap().line, 42);
}

#[test]
fn tamper_log_rewritten_with_another_key_is_detected() {
    let (dir, witness) = good_log();
    let log = dir.path().join("log");
    fs::remove_dir_all(&log).unwrap();
    append(&log, key("docs/audit", 2), 0, 40, None);
    let err = expect_error(&log, &trusted());
    assert_eq!(err.problem, Problem::UntrustedKey);
    assert_eq!(err.location.unwrap().line, 9, "the first checkpoint");
    // The same name and a forged key id do not help either: the anchor disagrees too.
    let err = expect_error(
        &log,
        &Verifier::new([key("docs/audit", 2).verifier_key()])
            .with_anchor(fs::read_to_string(&witness).unwrap()),
    );
    assert_eq!(err.problem, Problem::BadAnchor);
}

/// A copy from before a key change, restored: the anchor is signed by the key that change
/// introduced, which the copy does not know. The verifier says so (a rollback, or another log's
/// anchor); trusting the newer key too, it says rollback.
#[test]
fn tamper_stale_copy_from_before_a_key_change_is_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let witness = dir.path().join("witness.note");
    append(&log, key("docs/audit", 1), 0, 20, Some(&witness));
    let stale = fs::read(only_segment(&log)).unwrap();
    let mut c = config(&log);
    c.witness = Some(Arc::new(FileWitness::new(&witness)));
    let writer = AuditWriter::open(c, key("docs/audit", 1)).unwrap();
    rt().block_on(async {
        writer.rotate_key(key("docs/audit-2", 2)).await.unwrap();
        for i in 20..30 {
            writer.record(decision(i, true)).await.unwrap();
        }
        writer.checkpoint_now().await.unwrap();
    });
    writer.close().unwrap();
    let anchor = fs::read_to_string(&witness).unwrap();
    assert!(
        trusted()
            .with_anchor(anchor.clone())
            .verify_dir(&log)
            .is_ok()
    );
    fs::write(only_segment(&log), stale).unwrap();

    let err = expect_error(&log, &trusted().with_anchor(anchor.clone()));
    assert!(
        matches!(
            err.problem,
            Problem::RollbackOrForeignAnchor { log_size, anchor_size } if log_size < anchor_size
        ),
        "{err}"
    );
    let both = Verifier::new([
        key("docs/audit", 1).verifier_key(),
        key("docs/audit-2", 2).verifier_key(),
    ]);
    let err = expect_error(&log, &both.with_anchor(anchor));
    assert!(matches!(err.problem, Problem::Rollback { .. }), "{err}");
}

#[test]
fn tamper_stale_copy_restored_is_a_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let witness = dir.path().join("witness.note");
    append(&log, key("docs/audit", 1), 0, 20, Some(&witness));
    let stale = fs::read(only_segment(&log)).unwrap();
    append(&log, key("docs/audit", 1), 20, 20, Some(&witness));
    fs::write(only_segment(&log), stale).unwrap();

    // The verifier, given the anchor, says rollback.
    let err = expect_error(
        &log,
        &trusted().with_anchor(fs::read_to_string(&witness).unwrap()),
    );
    assert!(matches!(err.problem, Problem::Rollback { .. }), "{err}");
    // The writer refuses to start on it.
    let mut c = config(&log);
    c.witness = Some(Arc::new(FileWitness::new(&witness)));
    let refused = AuditWriter::open(c, key("docs/audit", 1)).unwrap_err();
    assert!(
        matches!(refused, audit::AuditError::Rollback { .. }),
        "{refused}"
    );
}

#[test]
fn tamper_forged_checkpoint_is_detected() {
    let (dir, _) = good_log();
    let log = dir.path().join("log");
    let seg = only_segment(&log);
    let original = lines(&seg);
    let line = String::from_utf8(original[8].clone()).unwrap();
    assert!(line.contains("\"kind\":\"checkpoint\""));
    let mut record: Value = serde_json::from_str(&line).unwrap();
    let note = SignedNote::parse(record["checkpoint"].as_str().unwrap()).unwrap();
    let mut cp = Checkpoint::parse_body(&note.body).unwrap();

    // 1. A checkpoint signed by an attacker's key under the trusted key's name.
    let attacker = key("docs/audit", 9);
    record["checkpoint"] = cp.sign(&[&attacker]).into();
    let mut forged = original.clone();
    let mut bytes = Vec::new();
    audit::record::write_canonical(&record, &mut bytes);
    bytes.push(b'\n');
    forged[8] = bytes;
    fs::write(&seg, forged.concat()).unwrap();
    let err = expect_error(&log, &trusted());
    assert_eq!(err.location.unwrap().line, 9);
    assert_eq!(err.problem, Problem::UntrustedKey);

    // The checkpoint record rewritten with `body` and the trusted key's real signature, changed
    // by `change`: the error the verifier gives.
    let real_sig = note.signatures[0].clone();
    let resigned = |body: &str, change: &dyn Fn(&mut Vec<u8>)| {
        let mut text = body.to_owned();
        text.push('\n');
        let mut blob = real_sig.id.to_vec();
        let mut sig = real_sig.signature.clone();
        change(&mut sig);
        blob.extend_from_slice(&sig);
        text.push_str(&format!(
            "\u{2014} {} {}\n",
            real_sig.name,
            B64.encode(blob)
        ));
        let mut record = record.clone();
        record["checkpoint"] = text.into();
        let mut bytes = Vec::new();
        audit::record::write_canonical(&record, &mut bytes);
        bytes.push(b'\n');
        let mut forged = original.clone();
        forged[8] = bytes;
        fs::write(&seg, forged.concat()).unwrap();
        expect_error(&log, &trusted())
    };

    // 2. The trusted key's name and id, but a signature over another root.
    cp.root = [0; 32];
    let err = resigned(&cp.body(), &|_| {});
    assert_eq!(err.location.unwrap().line, 9);
    assert!(matches!(err.problem, Problem::CheckpointMismatch(_)));

    // 3. The right body with a corrupted signature.
    let err = resigned(&note.body, &|sig| sig[10] ^= 1);
    assert_eq!(err.location.unwrap().line, 9);
    assert_eq!(err.problem, Problem::BadSignature);

    // 4. The right signature re-encoded with S + L (the same scalar, not a canonical form).
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let err = resigned(&note.body, &|sig| {
        let mut carry = 0u16;
        for (s, l) in sig[32..].iter_mut().zip(L) {
            let v = u16::from(*s) + u16::from(l) + carry;
            *s = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0, "S + L still fits in 32 bytes");
    });
    assert_eq!(err.location.unwrap().line, 9);
    assert_eq!(err.problem, Problem::BadSignature);
}

fn good_segment() -> &'static (String, Vec<u8>) {
    static SEGMENT: OnceLock<(String, Vec<u8>)> = OnceLock::new();
    SEGMENT.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        append(dir.path(), key("docs/audit", 1), 0, 12, None);
        let seg = only_segment(dir.path());
        let name = seg.file_name().unwrap().to_string_lossy().into_owned();
        (name, fs::read(seg).unwrap())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn any_single_byte_change_is_detected(pos in any::<prop::sample::Index>(), delta in 1u8..=255) {
        let (name, bytes) = good_segment();
        let mut bytes = bytes.clone();
        let i = pos.index(bytes.len());
        bytes[i] = bytes[i].wrapping_add(delta);
        let result = trusted().verify_segments(&[(name.clone(), bytes)]);
        prop_assert!(result.is_err(), "change at {} undetected", i);
    }
}

#[test]
fn receipts_give_inclusion_and_consistency_proofs() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.durability = DurabilityPolicy::default();
    let log = AuditWriter::open(c, key("docs/audit", 1)).unwrap();
    let receipts = rt().block_on(async {
        let mut out = Vec::new();
        for i in 0..20 {
            out.push(log.record(decision(i, true)).await.unwrap().unwrap());
        }
        out
    });
    log.close().unwrap();
    trusted().verify_dir(dir.path()).unwrap();
    let leaves = audit::leaf_hashes(dir.path()).unwrap();
    // Checkpoints in the log, by (size, root).
    let checkpoints: Vec<Checkpoint> = lines(&only_segment(dir.path()))
        .iter()
        .filter_map(|l| {
            let r: Value = serde_json::from_slice(l).ok()?;
            let note = SignedNote::parse(r["checkpoint"].as_str()?).ok()?;
            Checkpoint::parse_body(&note.body).ok()
        })
        .collect();
    let last = checkpoints.last().unwrap();
    for r in &receipts {
        assert_eq!(r.log, "docs/pod-1");
        let leaf = leaves[r.seq as usize];
        assert_eq!(r.leaf_hash, hex(&leaf));
        let proof = inclusion_proof(&leaves[..last.size as usize], r.seq).unwrap();
        verify_inclusion(r.seq, last.size, &leaf, &proof, &last.root).unwrap();
    }
    let first = &checkpoints[0];
    let proof = consistency_proof(&leaves[..last.size as usize], first.size).unwrap();
    verify_consistency(first.size, last.size, &proof, &first.root, &last.root).unwrap();
    assert_eq!(merkle::root_of(&leaves[..first.size as usize]), first.root);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn key_rotation_is_signed_by_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditWriter::open(config(dir.path()), key("docs/audit", 1)).unwrap();
    rt().block_on(async {
        for i in 0..5 {
            log.record(decision(i, true)).await.unwrap();
        }
        log.rotate_key(key("docs/audit-2", 2)).await.unwrap();
        for i in 5..10 {
            log.record(decision(i, true)).await.unwrap();
        }
    });
    log.close().unwrap();
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!(report.key_changes, 1);
    // Trusting only the new key does not vouch for what the old one signed.
    let err = expect_error(
        dir.path(),
        &Verifier::new([key("docs/audit-2", 2).verifier_key()]),
    );
    assert!(matches!(err.problem, Problem::KeyChange(_)), "{err}");
    // The retired key can no longer append.
    let refused = AuditWriter::open(config(dir.path()), key("docs/audit", 1)).unwrap_err();
    assert_eq!(refused, audit::AuditError::WrongKey);
    // The new one can, and its checkpoints anchor: an anchor signed by the new key only is
    // accepted by a verifier that trusts the old key, through the key change.
    let witness = dir.path().join("witness.note");
    let mut c = config(dir.path());
    c.witness = Some(Arc::new(FileWitness::new(&witness)));
    let log = AuditWriter::open(c, key("docs/audit-2", 2)).unwrap();
    rt().block_on(async {
        log.record(decision(10, true)).await.unwrap();
        log.checkpoint_now().await.unwrap();
    });
    log.close().unwrap();
    let anchor = fs::read_to_string(&witness).unwrap();
    assert!(SignedNote::parse(&anchor).unwrap().signatures.len() == 1);
    trusted()
        .with_anchor(anchor)
        .verify_dir(dir.path())
        .unwrap();
}

#[test]
fn checkpoint_is_due_after_the_interval_on_the_injected_clock() {
    let dir = tempfile::tempdir().unwrap();
    let clock = FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000));
    let mut c = config(dir.path());
    c.clock = Arc::new(clock.clone());
    c.checkpoint_every = 1_000_000;
    c.durability = DurabilityPolicy::all(Durability::Strict);
    let log = AuditWriter::open(c, key("docs/audit", 1)).unwrap();
    let count = |dir: &Path| {
        fs::read_to_string(only_segment(dir))
            .unwrap()
            .matches("\"kind\":\"checkpoint\"")
            .count()
    };
    rt().block_on(async {
        log.record(decision(0, true)).await.unwrap();
        log.record(decision(1, true)).await.unwrap();
        log.flush().await.unwrap();
        assert_eq!(count(dir.path()), 0);
        clock.advance_micros(1_000_001);
        log.record(decision(2, true)).await.unwrap();
        log.flush().await.unwrap();
        assert_eq!(count(dir.path()), 1);
    });
    drop(log);
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!(report.uncovered, 0);
}

/// Events nobody waits for do not wake the sequencer one by one, but the first after a quiet
/// spell does: it reaches the file with no flush and no checkpoint due (a sequencer left asleep
/// would only look again after a quarter of the hour-long checkpoint interval).
#[test]
fn events_nobody_waits_for_are_written_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.checkpoint_interval = std::time::Duration::from_secs(3600);
    c.checkpoint_every = 1_000_000;
    let log = AuditWriter::open(c, key("docs/audit", 1)).unwrap();
    let written = |n: usize| {
        fs::read_to_string(only_segment(dir.path()))
            .unwrap()
            .lines()
            .count()
            >= n
    };
    rt().block_on(async {
        for round in 1..=3 {
            log.record(decision(round, true)).await.unwrap();
            // Waits for an observable result (the line in the file), not for a time.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while !written(round) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "event {round} not written"
                );
                std::thread::yield_now();
            }
        }
    });
    drop(log);
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!((report.events, report.uncovered), (3, 0));
}

/// Event buffers go round between the callers and the sequencer: whatever the order of long and
/// short events, each record holds exactly its own event.
#[test]
fn reused_event_buffers_carry_nothing_over() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditWriter::open(config(dir.path()), key("docs/audit", 1)).unwrap();
    let events: Vec<AuditEvent> = (0..1500)
        .map(|i| {
            let mut e = decision(i, true);
            // Long, short, and now and then longer than any kept buffer.
            let len = [300, 1, 40, 9000][i % 4];
            e.target = Some(std::sync::Arc::new(Target {
                resource_id: Some("x".repeat(len)),
                ..Target::default()
            }));
            e
        })
        .collect();
    rt().block_on(async {
        for e in &events {
            log.record(e.clone()).await.unwrap();
        }
        log.flush().await.unwrap();
    });
    drop(log);
    let written: Vec<Value> = fs::read_to_string(only_segment(dir.path()))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["kind"] == "event")
        .map(|r| r["event"].clone())
        .collect();
    assert_eq!(written.len(), events.len());
    for (got, want) in written.iter().zip(&events) {
        assert_eq!(*got, serde_json::to_value(want).unwrap());
    }
    trusted().verify_dir(dir.path()).unwrap();
}

/// Closing the writer right behind a burst of queued events covers all of them, even when they
/// are drained together with the news that the writer is gone.
#[test]
fn closing_covers_the_last_queued_events_with_a_checkpoint() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.checkpoint_every = 1_000_000;
        let log = AuditWriter::open(c, key("docs/audit", 1)).unwrap();
        rt().block_on(async {
            log.checkpoint_now().await.unwrap();
            for i in 0..5 {
                log.record(decision(i, true)).await.unwrap();
            }
        });
        log.close().unwrap();
        let report = trusted().verify_dir(dir.path()).unwrap();
        assert_eq!((report.events, report.uncovered), (5, 0));
    }
}

#[test]
fn best_effort_drops_become_a_gap_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.queue_capacity = 1;
    c.max_batch = 1;
    let log = AuditWriter::open(c, key("docs/audit", 1)).unwrap();
    let sent = 2000;
    rt().block_on(async {
        for i in 0..sent {
            assert_eq!(log.record(decision(i, true)).await.unwrap(), None);
        }
        log.flush().await.unwrap();
    });
    log.close().unwrap();
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert!(report.dropped > 0, "a queue of one must overflow");
    assert_eq!(
        report.events + report.dropped,
        sent as u64,
        "nothing lost without a record"
    );
    assert!(report.gaps > 0);
}

#[test]
fn torn_tail_is_cut_and_a_recovery_record_written() {
    let dir = tempfile::tempdir().unwrap();
    append(dir.path(), key("docs/audit", 1), 0, 10, None);
    let seg = only_segment(dir.path());
    let mut bytes = fs::read(&seg).unwrap();
    let good_len = bytes.len();
    bytes.extend_from_slice(b"{\"event\":{\"actor\":");
    fs::write(&seg, &bytes).unwrap();
    assert_eq!(
        expect_error(dir.path(), &trusted()).problem,
        Problem::Unterminated
    );
    append(dir.path(), key("docs/audit", 1), 10, 2, None);
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!(report.recoveries, 1);
    assert_eq!(report.events, 12);
    let text = fs::read_to_string(&seg).unwrap();
    let recovery = text
        .lines()
        .find(|l| l.contains("\"kind\":\"recovery\""))
        .unwrap();
    assert!(
        recovery.contains(&format!("\"offset\":{good_len}")),
        "{recovery}"
    );
    assert!(recovery.contains("\"cut_bytes\":18"), "{recovery}");
}

#[test]
fn segments_rotate_and_stay_continuous() {
    let dir = tempfile::tempdir().unwrap();
    let names = rotated_log(dir.path(), 30);
    let segments = names.len();
    assert!(segments > 3, "{segments} segments");
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!(report.events, 30);
    // Deleting a whole middle segment is noticed.
    fs::remove_file(&names[1]).unwrap();
    let err = expect_error(dir.path(), &trusted());
    assert_eq!(err.problem, Problem::SegmentName);
}

/// Segments are read and checked one at a time, in order: the first problem of the log is the
/// one reported, even when a later segment cannot be read at all.
#[test]
fn the_first_problem_in_log_order_is_reported_before_a_later_unreadable_segment() {
    let dir = tempfile::tempdir().unwrap();
    let names = rotated_log(dir.path(), 40);
    // A byte of the first segment's second record flipped; the last segment made unreadable (a
    // directory where the file was).
    let first = &names[0];
    let mut records = lines(first);
    let at = records[1].iter().position(|&b| b == b'u').unwrap();
    records[1][at] = b'v';
    fs::write(first, records.concat()).unwrap();
    let last = names.last().unwrap();
    fs::remove_file(last).unwrap();
    fs::create_dir(last).unwrap();

    let err = expect_error(dir.path(), &trusted());
    let location = err.location.expect("located");
    assert_eq!(
        location.segment,
        first.file_name().unwrap().to_str().unwrap()
    );
    assert!(
        matches!(location.line, 2 | 3),
        "{location:?}: {:?}",
        err.problem
    );
    assert!(!matches!(err.problem, Problem::Io(_)), "{:?}", err.problem);
}

/// Signatures are checked segment by segment: a forged checkpoint signature is reported at its
/// checkpoint, before the broken link it causes (in the same segment or the next one).
#[test]
fn a_forged_checkpoint_signature_is_reported_at_its_checkpoint_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let names = rotated_log(dir.path(), 40);
    let checkpoints: Vec<(PathBuf, usize)> = names
        .iter()
        .flat_map(|path| {
            lines(path)
                .into_iter()
                .enumerate()
                .filter(|(_, l)| l.starts_with(b"{\"checkpoint\""))
                .map(|(i, _)| (path.clone(), i))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(checkpoints.len() > 2, "{} checkpoints", checkpoints.len());
    // Each checkpoint in turn, a character of its signature changed (the record stays well
    // formed: `A` and `B` are both base64).
    for (path, line) in &checkpoints {
        let original = fs::read(path).unwrap();
        let mut records = lines(path);
        let text = String::from_utf8(records[*line].clone()).unwrap();
        let sig_at = text.find("\\n\",\"id\"").unwrap() - 10;
        records[*line][sig_at] = if text.as_bytes()[sig_at] == b'A' {
            b'B'
        } else {
            b'A'
        };
        fs::write(path, records.concat()).unwrap();

        let err = expect_error(dir.path(), &trusted());
        assert_eq!(err.problem, Problem::BadSignature, "{path:?} line {line}");
        let location = err.location.expect("located");
        assert_eq!(
            location.segment,
            path.file_name().unwrap().to_str().unwrap()
        );
        assert_eq!(location.line, *line as u64 + 1);
        fs::write(path, original).unwrap();
    }
    trusted().verify_dir(dir.path()).unwrap();
}

#[test]
fn recording_policy_first_match_wins() {
    use aaa::audit::{Level, RecordingPolicy, RecordingRule};
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.recording = RecordingPolicy::new([
        RecordingRule::new(Level::None).with_route("/a/*"),
        RecordingRule::new(Level::Metadata).with_decision(Decision::Allow),
    ]);
    let log = AuditWriter::open(c, key("docs/audit", 1)).unwrap();
    rt().block_on(async {
        for i in 0..10 {
            log.record(decision(i, i != 4)).await.unwrap();
        }
    });
    log.close().unwrap();
    let text = fs::read_to_string(only_segment(dir.path())).unwrap();
    assert!(
        !text.contains("/a/{id}"),
        "odd events on /a/* are not recorded"
    );
    // Even events: 0, 2, 6, 8 allowed (metadata only), 4 denied (with request attributes).
    assert_eq!(text.matches("\"route\":\"/docs/{id}\"").count(), 5);
    assert_eq!(text.matches("req-").count(), 1);
    assert!(text.contains("req-4"));
}

const SECRET_TOKEN: &str = "eyJhbGciOiJFUzI1NiJ9.c2VjcmV0LXRva2VuLXBheWxvYWQ.c2lnbmF0dXJl";

#[derive(Debug)]
struct Bearer;

impl Authenticator for Bearer {
    fn authenticate<'a>(
        &'a self,
        facts: &'a RequestFacts,
    ) -> BoxFuture<'a, Result<Identity, AuthnError>> {
        let token = facts
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        Box::pin(async move {
            Ok(match token {
                Some(t) if t == SECRET_TOKEN => Principal::new("alice", PrincipalKind::User, "idp")
                    .with_roles(["reader"])
                    .with_auth(AuthInfo::new(
                        AuthMethod::Jwt,
                        Timestamp::UNIX_EPOCH,
                        CredentialRef::token(t.as_bytes()),
                    ))
                    .into(),
                Some(_) => return Err(AuthnError::MultipleCredentials),
                None => Identity::Anonymous,
            })
        })
    }
}

#[derive(Debug)]
struct Readers;

impl Authorizer for Readers {
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
        RouteBinding::Protected {
            action: Action::new("read"),
            resource: Resource::new("Document").with_id(facts.param("id").unwrap_or_default()),
        }
    }
    fn authorize(&self, who: &Identity, _: &Action, _: &Resource, _: &Context) -> Evaluation {
        match who.principal() {
            Some(p) if p.roles.contains("reader") => Evaluation::permit(["readers-read"]),
            _ => Evaluation::not_permitted(),
        }
    }
}

#[test]
fn a_token_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.durability = DurabilityPolicy::default();
    let log = Arc::new(AuditWriter::open(c, key("docs/audit", 1)).unwrap());
    let guard = Guard::builder()
        .authenticator(Bearer)
        .policies(Readers)
        .audit_arc(log.clone())
        .build()
        .unwrap();
    rt().block_on(async {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {SECRET_TOKEN}").parse().unwrap(),
        );
        headers.insert(
            http::header::COOKIE,
            "session=cookie-secret-42".parse().unwrap(),
        );
        headers.insert(http::header::USER_AGENT, "agent/1".parse().unwrap());
        let facts = RequestFacts::new(http::Method::GET, "/docs/7?api_key=query-secret-99")
            .with_matched_route("/docs/{id}")
            .with_param("id", "7")
            .with_headers(headers);
        let Outcome::Proceed(admission) = guard.check(&facts).await else {
            panic!("alice may read")
        };
        let receipt = admission
            .receipt
            .clone()
            .expect("strict decisions give receipts");
        assert_eq!(receipt.log, "docs/pod-1");
        guard.complete(&admission, 200).await.unwrap();
        log.checkpoint_now().await.unwrap();
    });
    drop(guard);
    drop(log);
    let text = fs::read_to_string(only_segment(dir.path())).unwrap();
    assert!(text.contains("\"id\":\"alice\""));
    for secret in [
        SECRET_TOKEN,
        "c2VjcmV0LXRva2VuLXBheWxvYWQ",
        "cookie-secret-42",
        "query-secret-99",
        "Bearer",
    ] {
        assert!(!text.contains(secret), "{secret} reached the log");
    }
    trusted().verify_dir(dir.path()).unwrap();
}

#[test]
fn strict_events_fail_when_the_writer_is_gone() {
    // A writer that cannot open its directory is an error at start, not a silent sink.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    fs::write(&file, b"x").unwrap();
    assert!(AuditWriter::open(config(&file), key("docs/audit", 1)).is_err());
}

#[test]
fn verifier_keys_round_trip_as_text() {
    let k = key("docs/audit", 1).verifier_key();
    let parsed: VerifierKey = k.to_string().parse().unwrap();
    assert_eq!(parsed, k);
}

/// The stored fixtures pin the record format: a log written by this version must keep verifying.
/// Regenerate with `AAA_REGEN_AUDIT_FIXTURES=1 cargo test --test it audit::fixture`.
#[test]
fn fixture_logs_good_tampered_and_reordered() {
    let root = fixture("audit");
    if std::env::var_os("AAA_REGEN_AUDIT_FIXTURES").is_some() {
        let _ = fs::remove_dir_all(&root);
        let good = root.join("good");
        append(&good, key("docs/audit", 1), 0, 10, None);
        fs::write(
            root.join("trusted.pub"),
            format!("{}\n", key("docs/audit", 1).verifier_key()),
        )
        .unwrap();
        let seg = only_segment(&good);
        let name = seg.file_name().unwrap().to_owned();
        let l = lines(&seg);
        let mut swapped = l.clone();
        swapped.swap(2, 3);
        fs::create_dir_all(root.join("reordered")).unwrap();
        fs::write(root.join("reordered").join(&name), swapped.concat()).unwrap();
        let mut tampered = l.concat();
        let at = tampered.windows(5).position(|w| w == b"user1").unwrap();
        tampered[at + 4] = b'2';
        fs::create_dir_all(root.join("tampered")).unwrap();
        fs::write(root.join("tampered").join(&name), tampered).unwrap();
    }
    let pubkey = fs::read_to_string(root.join("trusted.pub")).unwrap();
    let verifier = Verifier::new([VerifierKey::parse(pubkey.trim()).unwrap()]);
    let report = verifier.verify_dir(&root.join("good")).unwrap();
    assert_eq!((report.events, report.uncovered), (10, 0));
    let err = verifier.verify_dir(&root.join("reordered")).unwrap_err();
    assert_eq!(err.location.unwrap().line, 3);
    let err = verifier.verify_dir(&root.join("tampered")).unwrap_err();
    assert_eq!(err.problem, Problem::HashLink);
    assert_eq!(err.location.unwrap().line, 3);
}

/// A witness that blocks the sequencer inside `anchor` until released: a deterministic way to
/// make the queue fill up.
#[derive(Debug)]
struct StallingWitness {
    entered: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl audit::Witness for StallingWitness {
    fn anchor(&self, _note: &str) -> Result<(), audit::AuditError> {
        let _ = self.entered.lock().unwrap().send(());
        let _ = self.release.lock().unwrap().recv();
        Ok(())
    }
    fn latest(&self) -> Result<Option<String>, audit::AuditError> {
        Ok(None)
    }
}

#[test]
fn block_deadline_and_strict_fail_closed_when_the_log_cannot_keep_up() {
    let dir = tempfile::tempdir().unwrap();
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let mut c = config(dir.path());
    c.witness = Some(Arc::new(StallingWitness {
        entered: std::sync::Mutex::new(entered_tx),
        release: std::sync::Mutex::new(release_rx),
    }));
    c.checkpoint_every = 1;
    c.queue_capacity = 1;
    c.strict_enqueue_timeout = std::time::Duration::from_millis(20);
    c.durability = DurabilityPolicy {
        authentication: Durability::Block(std::time::Duration::from_millis(5)),
        authorization: Durability::Strict,
        request_completed: Durability::BestEffort,
        identity_change: Durability::Strict,
    };
    let log = Arc::new(AuditWriter::open(c, key("docs/audit", 1)).unwrap());
    let guard = Guard::builder()
        .authenticator(Bearer)
        .policies(Readers)
        .audit_arc(log.clone())
        .build()
        .unwrap();
    let authn = || {
        AuditEvent::new(
            Timestamp::UNIX_EPOCH,
            EventKind::Authentication {
                outcome: audit::AuthnOutcome::Failure,
                reason: Some("invalid_token".into()),
            },
        )
    };
    let completed = || {
        AuditEvent::new(
            Timestamp::UNIX_EPOCH,
            EventKind::RequestCompleted {
                status: 200,
                latency_us: 1,
            },
        )
    };
    rt().block_on(async {
        // The first event's checkpoint stalls the sequencer in the witness.
        log.record(authn()).await.unwrap();
        entered.recv().unwrap();
        // One more fills the queue.
        log.record(authn()).await.unwrap();
        // Block mode gives up after its deadline.
        assert_eq!(
            log.record(authn()).await,
            Err(audit::AuditError::Unavailable("the audit queue is full"))
        );
        // Best effort drops and counts.
        assert_eq!(log.record(completed()).await, Ok(None));
        assert_eq!(log.pending_drops(), 1);
        // Strict fails closed: the guard answers 503.
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::AUTHORIZATION,
            format!("Bearer {SECRET_TOKEN}").parse().unwrap(),
        );
        let facts = RequestFacts::new(http::Method::GET, "/docs/1")
            .with_matched_route("/docs/{id}")
            .with_param("id", "1")
            .with_headers(headers);
        let Outcome::Reject(rejection) = guard.check(&facts).await else {
            panic!("a decision that cannot be recorded must not let the request through")
        };
        assert_eq!(rejection.status(), 503);
        // Let the sequencer go: everything accepted is written, the drop as a gap record.
        drop(release);
        log.flush().await.unwrap();
    });
    drop(guard);
    drop(log);
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!((report.events, report.dropped), (2, 1));
}

#[test]
fn large_segments_are_verified_in_parallel_with_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.checkpoint_every = 1024;
    c.queue_capacity = 1 << 14;
    let log = AuditWriter::open(c, key("docs/audit", 1)).unwrap();
    rt().block_on(async {
        for i in 0..6000 {
            log.record(decision(i, true)).await.unwrap();
        }
        log.flush().await.unwrap();
    });
    log.close().unwrap();
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!(report.events, 6000);
    let seg = only_segment(dir.path());
    let mut l = lines(&seg);
    l.swap(5000, 5001);
    fs::write(&seg, l.concat()).unwrap();
    let err = expect_error(dir.path(), &trusted());
    assert_eq!(err.location.unwrap().line, 5001);
}

#[test]
fn selected_events_carry_their_own_signature() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.sign_events = |e| matches!(e.kind, EventKind::IdentityChange { .. });
    let log = AuditWriter::open(c, key("docs/audit", 1)).unwrap();
    rt().block_on(async {
        for i in 0..6 {
            log.record(decision(i, true)).await.unwrap();
            let change = AuditEvent::new(
                Timestamp::UNIX_EPOCH,
                EventKind::IdentityChange {
                    change: audit::IdentityChange::RoleGranted,
                    subject: format!("user{i}"),
                    detail: Some("editor".into()),
                },
            );
            log.record(change).await.unwrap();
        }
    });
    log.close().unwrap();
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!(report.signed_events, 6);
    // Changing a signed event is caught at that very record, not only at the next one.
    let seg = only_segment(dir.path());
    let mut l = lines(&seg);
    let at = l
        .iter()
        .position(|x| x.windows(6).any(|w| w == b"editor"))
        .unwrap();
    let text = String::from_utf8(l[at].clone())
        .unwrap()
        .replace("editor", "admin!");
    l[at] = text.into_bytes();
    fs::write(&seg, l.concat()).unwrap();
    let err = expect_error(dir.path(), &trusted());
    assert_eq!(err.problem, Problem::BadSignature);
    assert_eq!(err.location.unwrap().line, at as u64 + 1);
}

#[test]
fn writer_refuses_a_log_rewritten_behind_its_witness() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let witness = dir.path().join("witness.note");
    append(&log, key("docs/audit", 1), 0, 20, Some(&witness));
    // Same key, same length, different history (as an insider with the key could produce).
    fs::remove_dir_all(&log).unwrap();
    append(&log, key("docs/audit", 1), 100, 20, None);
    let mut c = config(&log);
    c.witness = Some(Arc::new(FileWitness::new(&witness)));
    let refused = AuditWriter::open(c, key("docs/audit", 1)).unwrap_err();
    assert!(
        matches!(refused, audit::AuditError::Diverged { .. }),
        "{refused}"
    );
    let err = expect_error(
        &log,
        &trusted().with_anchor(fs::read_to_string(&witness).unwrap()),
    );
    assert!(matches!(err.problem, Problem::AnchorMismatch(_)), "{err}");
}

/// Runs `f` on its own thread and fails the test if it has not returned within a minute: a
/// reader that opened a FIFO would wait for a writer forever.
pub(crate) fn returns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(60))
        .expect("blocked: the log's reader never returned")
}

/// A file named like a segment that is not a regular file (a FIFO, a directory) is refused by
/// name, not read: the verifier, the summary, the proofs' leaf hashes and the writer's start-up
/// answer with a clear error instead of blocking on a FIFO.
#[test]
fn a_fifo_or_directory_named_like_a_segment_is_refused_not_read() {
    let (dir, _) = good_log();
    let log = dir.path().join("log");
    let name = "audit-00000000000000099999.jsonl";
    let status = std::process::Command::new("mkfifo")
        .arg(log.join(name))
        .status()
        .unwrap();
    assert!(status.success());

    let at = log.clone();
    let err = returns(move || trusted().verify_dir(&at).unwrap_err());
    assert_eq!(err.problem, Problem::NotAFile);
    assert_eq!(err.location.unwrap().segment, name);
    assert!(
        err.report.records > 40,
        "the segments before it were checked"
    );
    assert_eq!(err.problem.to_string(), "the segment is not a regular file");

    let at = log.clone();
    let refused = returns(move || audit::leaf_hashes(&at).unwrap_err());
    assert!(
        refused.to_string().contains("not a regular file"),
        "{refused}"
    );
    let at = log.clone();
    let refused = returns(move || audit::summarize(&at).unwrap_err());
    assert!(
        refused.to_string().contains("not a regular file"),
        "{refused}"
    );

    let at = log.clone();
    let refused = returns(move || {
        AuditWriter::open(config(&at), key("docs/audit", 1))
            .map(|log| log.close())
            .unwrap_err()
    });
    assert!(
        matches!(
            refused,
            audit::AuditError::Corrupt {
                reason: "the segment is not a regular file",
                ..
            }
        ),
        "{refused:?}"
    );

    // A directory in its place: the same.
    fs::remove_file(log.join(name)).unwrap();
    fs::create_dir(log.join(name)).unwrap();
    let err = trusted().verify_dir(&log).unwrap_err();
    assert_eq!(err.problem, Problem::NotAFile);
}

/// A multi-segment log of `events` events written in `dir` and closed, with the writer's resume
/// point; its segments, in order.
fn rotated_log(dir: &Path, events: usize) -> Vec<PathBuf> {
    let mut c = config(dir);
    c.segment_max_bytes = 2048;
    c.max_batch = 4;
    c.durability = DurabilityPolicy::all(Durability::Strict);
    let log = AuditWriter::open(c, key("docs/audit", 1)).unwrap();
    rt().block_on(async {
        for i in 0..events {
            log.record(decision(i, true)).await.unwrap();
        }
    });
    log.close().unwrap();
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    names.sort();
    assert!(names.len() > 3, "{} segments", names.len());
    assert!(dir.join("resume.json").is_file(), "a resume point is noted");
    names
}

/// Appends `n` more events to the log in `dir` (opened with the default segment size) and
/// closes it.
fn reopen_and_append(dir: &Path, n: usize) -> Result<(), audit::AuditError> {
    let log = AuditWriter::open(config(dir), key("docs/audit", 1))?;
    rt().block_on(async {
        for i in 100..100 + n {
            log.record(decision(i, true)).await.unwrap();
        }
        log.flush().await.unwrap();
    });
    log.close()
}

/// A restart reads the log from the last durable checkpoint the writer noted (`resume.json`),
/// not from its first record: a corrupt early segment no longer stops the writer from starting
/// (the verifier still finds it), and the log it goes on writing verifies.
#[test]
fn a_restart_reads_the_log_from_its_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let names = rotated_log(dir.path(), 40);
    // Continuing from the resume point, the log stays one log.
    reopen_and_append(dir.path(), 5).unwrap();
    let report = trusted().verify_dir(dir.path()).unwrap();
    assert_eq!(report.events, 45);

    // A record of the first segment changed: only the whole-log reading sees it.
    let first = &names[0];
    let mut records = lines(first);
    let at = records[1].iter().position(|&b| b == b'u').unwrap();
    records[1][at] = b'v';
    fs::write(first, records.concat()).unwrap();
    reopen_and_append(dir.path(), 5).unwrap();
    let err = expect_error(dir.path(), &trusted());
    assert_eq!(
        err.location.unwrap().segment,
        first.file_name().unwrap().to_str().unwrap()
    );
    // Without the resume point, the start reads everything and refuses the broken chain.
    fs::remove_file(dir.path().join("resume.json")).unwrap();
    assert!(matches!(
        reopen_and_append(dir.path(), 1),
        Err(audit::AuditError::Corrupt { .. })
    ));
}

/// A restart from the resume point reads only what follows the checkpoint, yet a bad record
/// there is located by its line in the segment.
#[test]
fn a_bad_record_after_the_resume_point_is_located_by_its_line() {
    let dir = tempfile::tempdir().unwrap();
    rotated_log(dir.path(), 40);
    let resume: Value =
        serde_json::from_slice(&fs::read(dir.path().join("resume.json")).unwrap()).unwrap();
    let name = resume["segment"].as_str().unwrap().to_owned();
    let path = dir.path().join(&name);
    let mut data = fs::read(&path).unwrap();
    assert_eq!(resume["end"].as_u64().unwrap(), data.len() as u64);
    let lines_before = data.iter().filter(|&&b| b == b'\n').count() as u64;
    assert!(
        lines_before > 1,
        "the checkpoint is not the segment's first line"
    );
    data.extend_from_slice(b"{\"not\":\"a record\"}\n");
    fs::write(&path, data).unwrap();
    let err = AuditWriter::open(config(dir.path()), key("docs/audit", 1)).unwrap_err();
    assert_eq!(
        err,
        audit::AuditError::Corrupt {
            segment: name,
            line: lines_before + 1,
            reason: "not a record",
        }
    );
}

/// A resume point that does not hold (garbage, a forged tree, a line that is not its checkpoint,
/// a segment that is gone, an offset past the end, another key in charge) is ignored: the start reads the whole log, and
/// the log goes on verifying.
#[test]
fn a_resume_point_that_does_not_hold_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    rotated_log(dir.path(), 40);
    let path = dir.path().join("resume.json");
    let good: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let flip_hex = |h: &str| {
        let mut h = h.to_owned();
        let c = if h.ends_with('0') { "1" } else { "0" };
        h.replace_range(h.len() - 1.., c);
        h
    };
    let forged_tree = edit(&|v| {
        let first = v["frontier"][0].as_str().unwrap().to_owned();
        v["frontier"][0] = Value::String(flip_hex(&first));
    });
    let bad_size = edit(&|v| v["size"] = Value::from(v["size"].as_u64().unwrap() - 1));
    let moved = edit(&|v| {
        v["start"] = Value::from(v["start"].as_u64().unwrap() + 1);
    });
    let past_end = edit(&|v| {
        v["start"] = Value::from(1u64 << 40);
        v["end"] = Value::from((1u64 << 40) + 100);
    });
    let gone = edit(&|v| v["segment"] = Value::from("audit-99999999999999999999.jsonl"));
    let other_key = edit(&|v| {
        v["key"] = Value::from(key("docs/audit", 2).verifier_key().to_string());
    });
    let mut events = 40;
    for (what, bytes) in [
        ("garbage", b"{not json".to_vec()),
        ("forged tree", forged_tree),
        ("wrong size", bad_size),
        ("not at a line", moved),
        ("past the end", past_end),
        ("segment gone", gone),
        ("another key in charge", other_key),
    ] {
        fs::write(&path, &bytes).unwrap();
        reopen_and_append(dir.path(), 3).unwrap_or_else(|e| panic!("{what}: {e}"));
        events += 3;
        let report = trusted()
            .verify_dir(dir.path())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(report.events, events, "{what}");
        // The writer noted a good one again.
        assert_ne!(fs::read(&path).unwrap(), bytes, "{what}");
    }
    // Nor is a FIFO in its place read (it would block the start).
    fs::remove_file(&path).unwrap();
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .unwrap()
            .success()
    );
    let at = dir.path().to_owned();
    returns(move || reopen_and_append(&at, 1)).unwrap();
}
