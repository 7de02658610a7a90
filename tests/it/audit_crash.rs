//! Crash safety and write failures, with real processes: the test binary re-executes itself as
//! the child (selected by `AAA_AUDIT_CHILD_DIR` and an `--exact` filter).

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use aaa::{
    Decision, Principal, PrincipalKind, Reason, Timestamp,
    audit::{
        Actor, AuditEvent, AuditSink, AuditWriter, AuditWriterConfig, Durability, DurabilityPolicy,
        EventKind, SigningKey, Target, Verifier, leaf_hashes, load_or_generate_key,
        write_private_key,
    },
};

const CHILD_TEST: &str = "audit_crash::child";

fn event(i: usize) -> AuditEvent {
    let mut e = AuditEvent::new(
        Timestamp::from_unix_seconds(1_700_000_000),
        EventKind::Authorization {
            decision: Decision::Allow,
            reason: Reason::Permitted,
            rules: vec!["readers-read".into()],
            errors: vec![],
            policy_version: Some("v1".into()),
        },
    );
    e.actor = Some(std::sync::Arc::new(Actor::from(&Principal::new(
        format!("user-{}", i % 7),
        PrincipalKind::User,
        "https://idp.example",
    ))));
    e.target = Some(std::sync::Arc::new(Target {
        action: Some("read".into()),
        resource_type: Some("Document".into()),
        resource_id: Some(format!("doc-{i}-{}", "x".repeat(200))),
        tenant: Some("acme".into()),
        route: Some("/docs/{id}".into()),
    }));
    e
}

fn config(dir: &Path, best_effort: bool) -> AuditWriterConfig {
    let mut c = AuditWriterConfig::new(dir.join("log"), "crash", "child");
    c.checkpoint_every = 16;
    c.max_batch = 16;
    c.segment_max_bytes = if best_effort { 1 << 20 } else { 48 << 10 };
    c.durability = DurabilityPolicy::all(if best_effort {
        Durability::BestEffort
    } else {
        Durability::Strict
    });
    c
}

/// The child: appends events from 8 concurrent tasks and prints `ACK <seq> <leaf hash>` (flushed)
/// after each durable acknowledgement, `ERR` after each failure. Does nothing in a normal run.
#[test]
fn child() {
    let Ok(dir) = std::env::var("AAA_AUDIT_CHILD_DIR") else {
        return;
    };
    let dir = PathBuf::from(dir);
    let best_effort = std::env::var("AAA_AUDIT_CHILD_MODE").as_deref() == Ok("best-effort");
    let limit: usize = std::env::var("AAA_AUDIT_CHILD_EVENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    let key = load_or_generate_key(&dir.join("key"), "crash/audit").unwrap();
    let log = Arc::new(AuditWriter::open(config(&dir, best_effort), key).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let next = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (log, next) = (log.clone(), next.clone());
                tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= limit {
                            break;
                        }
                        let line = match log.record(event(i)).await {
                            Ok(Some(r)) => format!("ACK {} {}\n", r.seq, r.leaf_hash),
                            Ok(None) => continue,
                            Err(_) => "ERR\n".to_owned(),
                        };
                        let mut out = std::io::stdout().lock();
                        out.write_all(line.as_bytes()).unwrap();
                        out.flush().unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        if best_effort {
            let _ = log.flush().await;
        }
    });
    drop(log);
}

fn child_command(program: &str, dir: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("AAA_AUDIT_CHILD_DIR", dir)
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

const CHILD_ARGS: [&str; 5] = [
    CHILD_TEST,
    "--exact",
    "--nocapture",
    "--test-threads=1",
    "-q",
];

fn parse_ack(line: &str) -> Option<(u64, String)> {
    let mut parts = line.strip_prefix("ACK ")?.split_whitespace();
    Some((parts.next()?.parse().ok()?, parts.next()?.to_owned()))
}

fn setup() -> (tempfile::TempDir, Verifier) {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate("crash/audit").unwrap();
    write_private_key(&dir.path().join("key"), &key).unwrap();
    let verifier = Verifier::new([key.verifier_key()]);
    (dir, verifier)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn assert_present(dir: &Path, acked: &[(u64, String)]) {
    let leaves = leaf_hashes(&dir.join("log")).unwrap();
    for (seq, leaf) in acked {
        let stored = leaves.get(*seq as usize).map(|l| hex(l));
        assert_eq!(
            stored.as_deref(),
            Some(leaf.as_str()),
            "acknowledged seq {seq} lost"
        );
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    let (dir, verifier) = setup();
    let exe = std::env::current_exe().unwrap();
    let exe = exe.to_str().unwrap();
    let mut rng: u64 = 0x5eed_a0d1_7000_0005;
    let mut acked = Vec::new();
    for round in 0..100 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        // Kill right away (during open or recovery), or after 1..=15 acknowledgements.
        let kill_after = rng % 16;
        let mut child = child_command(exe, dir.path())
            .args(CHILD_ARGS)
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut seen = 0;
        let mut line = String::new();
        while seen < kill_after {
            line.clear();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            if let Some(ack) = parse_ack(&line) {
                acked.push(ack);
                seen += 1;
            }
        }
        child.kill().unwrap(); // SIGKILL
        for line in reader.lines() {
            if let Some(ack) = parse_ack(&line.unwrap()) {
                acked.push(ack);
            }
        }
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            Some(9),
            "round {round}: the child died on its own: {status}"
        );
    }
    // The next start cuts any torn tail and records the recovery.
    let key = load_or_generate_key(&dir.path().join("key"), "crash/audit").unwrap();
    AuditWriter::open(config(dir.path(), false), key)
        .unwrap()
        .close()
        .unwrap();
    let report = verifier.verify_dir(&dir.path().join("log")).unwrap();
    eprintln!("{} acknowledged; {report:?}", acked.len());
    assert!(acked.len() >= 100, "only {} acknowledgements", acked.len());
    assert!(report.events >= acked.len() as u64);
    assert_eq!(report.uncovered, 0);
    assert_present(dir.path(), &acked);
}

/// Runs the child under a file size limit (`RLIMIT_FSIZE` through `ulimit -f`, with `SIGXFSZ`
/// ignored so writes fail with `EFBIG`): segments cannot grow past 32 KiB.
fn run_with_full_disk(dir: &Path, mode: &str, events: usize) -> (Vec<(u64, String)>, usize) {
    let exe = std::env::current_exe().unwrap();
    let output = child_command("sh", dir)
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 64; exec \"$0\" \"$@\"")
        .arg(exe)
        .args(CHILD_ARGS)
        .env("AAA_AUDIT_CHILD_MODE", mode)
        .env("AAA_AUDIT_CHILD_EVENTS", events.to_string())
        .output()
        .unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let text = String::from_utf8(output.stdout).unwrap();
    let acks = text.lines().filter_map(parse_ack).collect();
    let errors = text.lines().filter(|l| *l == "ERR").count();
    (acks, errors)
}

#[test]
fn full_disk_in_strict_mode_fails_requests_and_loses_nothing_acknowledged() {
    let (dir, verifier) = setup();
    let (acked, errors) = run_with_full_disk(dir.path(), "strict", 400);
    assert!(errors > 0, "the size limit must make some writes fail");
    assert!(!acked.is_empty());
    assert_eq!(acked.len() + errors, 400);
    let report = verifier.verify_dir(&dir.path().join("log")).unwrap();
    assert_eq!(
        report.events,
        acked.len() as u64,
        "failed requests are not in the log"
    );
    assert_present(dir.path(), &acked);
}

#[test]
fn full_disk_in_best_effort_mode_writes_a_gap_record() {
    let (dir, verifier) = setup();
    let (acked, errors) = run_with_full_disk(dir.path(), "best-effort", 400);
    assert_eq!(
        (acked.len(), errors),
        (0, 0),
        "best effort never waits nor fails"
    );
    let report = verifier.verify_dir(&dir.path().join("log")).unwrap();
    assert!(report.gaps > 0, "{report:?}");
    assert!(report.dropped > 0);
    assert_eq!(
        report.events + report.dropped,
        400,
        "nothing lost without a record"
    );
}
