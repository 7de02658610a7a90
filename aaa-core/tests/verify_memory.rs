//! The verifier and `retire` read a log one segment at a time: a log of any length is verified
//! or retired in about the memory of its largest segment. Alone in its test binary, because it
//! reads the process's peak resident memory (Linux: `VmHWM`, reset through
//! `/proc/self/clear_refs`).
#![cfg(target_os = "linux")]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::{fs, path::Path, sync::Arc};

use aaa_core::{
    FixedClock, Timestamp,
    audit::{
        AuditEvent, AuditSink, AuditWriter, AuditWriterConfig, Durability, DurabilityPolicy,
        EventKind, RequestInfo, SigningKey, Verifier,
    },
};

const SEGMENT_BYTES: u64 = 1 << 20;
const SEGMENTS: u64 = 24;

/// The process's peak resident memory since the last [`reset_peak`], in bytes.
fn peak_resident() -> u64 {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// Resets the peak to the current resident memory.
fn reset_peak() {
    fs::write("/proc/self/clear_refs", "5").unwrap();
}

fn event(i: u64) -> AuditEvent {
    let mut e = AuditEvent::new(
        Timestamp::from_unix_seconds(1_700_000_000),
        EventKind::RequestCompleted {
            status: 200,
            latency_us: i,
        },
    );
    e.request = Some(Arc::new(RequestInfo {
        request_id: Some(format!("req-{i}")),
        user_agent: Some("x".repeat(400)),
        ..RequestInfo::default()
    }));
    e
}

/// Writes events until the log has `SEGMENTS` segments of about `SEGMENT_BYTES`.
fn write_log(dir: &Path, key: SigningKey) {
    let mut config = AuditWriterConfig::new(dir, "docs", "pod-1");
    config.clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000)));
    config.segment_max_bytes = SEGMENT_BYTES;
    config.durability =
        DurabilityPolicy::all(Durability::Block(std::time::Duration::from_secs(10)));
    let log = AuditWriter::open(config, key).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // Records are about 750 bytes: enough events for SEGMENTS full segments.
    let events = SEGMENTS * SEGMENT_BYTES / 700;
    runtime.block_on(async {
        for i in 0..events {
            log.record(event(i)).await.unwrap();
        }
        log.flush().await.unwrap();
    });
    log.close().unwrap();
}

#[test]
fn a_long_log_verifies_and_retires_in_the_memory_of_one_segment() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed("docs/audit", &[7; 32]).unwrap();
    let verifier = Verifier::new([key.verifier_key()]);
    write_log(dir.path(), key);
    let total: u64 = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert!(total >= SEGMENTS * SEGMENT_BYTES, "{total} bytes of log");

    reset_peak();
    let before = peak_resident();
    let report = verifier.verify_dir(dir.path()).unwrap();
    let grown = peak_resident().saturating_sub(before);

    assert!(report.events > 0);
    eprintln!("verified {total} bytes; peak resident memory grew by {grown} bytes");
    // Reading every segment at once would take the whole log (24 MiB) and more; one at a time
    // takes one segment, the pieces being checked and the tree (32 bytes a record).
    assert!(
        grown < total / 3,
        "verifying {total} bytes of log grew the peak resident memory by {grown} bytes"
    );

    // Retiring all but the last two segments reads and copies them one at a time, too.
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.sort();
    let cut: u64 = names[names.len() - 2]
        .trim_start_matches("audit-")
        .trim_end_matches(".jsonl")
        .parse()
        .unwrap();
    let archive = tempfile::tempdir().unwrap();
    reset_peak();
    let before = peak_resident();
    let retired = aaa_core::audit::retire(dir.path(), cut, archive.path()).unwrap();
    let grown = peak_resident().saturating_sub(before);
    eprintln!(
        "retired {} segments; peak resident memory grew by {grown} bytes",
        retired.segments.len()
    );
    assert_eq!(retired.segments.len(), names.len() - 2);
    assert!(
        grown < total / 3,
        "retiring {total} bytes of log grew the peak resident memory by {grown} bytes"
    );
}
