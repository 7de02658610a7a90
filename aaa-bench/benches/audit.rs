//! Audit log costs: durable append throughput with group commit, the request-path cost of
//! recording one event, verification throughput and the writer's start-up scan; each next to a plain unsigned `serde_json`
//! JSON-lines writer with the same fsync policy.
//!
//! Run with: `cargo bench -p aaa-bench --bench audit -- --warm-up-time 1 --measurement-time 3`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    reason = "benchmarks fail loudly"
)]

use std::{
    fs::OpenOptions,
    future::Future,
    hint::black_box,
    io::{BufWriter, Write},
    pin::pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use aaa_core::{
    Decision, FixedClock, Principal, PrincipalKind, Reason, Timestamp,
    audit::{
        Actor, AuditEvent, AuditSink, AuditWriter, AuditWriterConfig, Durability, DurabilityPolicy,
        EventKind, RequestInfo, SigningKey, Target, Verifier,
    },
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A typical authorization event (about 600 bytes as a record).
fn event(i: u64) -> AuditEvent {
    let mut e = AuditEvent::new(
        Timestamp::from_unix_seconds(1_700_000_000),
        EventKind::Authorization {
            decision: Decision::Allow,
            reason: Reason::Permitted,
            rules: vec!["editors-write".into()],
            errors: vec![],
            policy_version: Some("2026-11-01".into()),
        },
    );
    e.actor = Some(std::sync::Arc::new(Actor::from(&Principal::new(
        format!("user-{}", i % 100),
        PrincipalKind::User,
        "https://idp.example.com/",
    ))));
    e.target = Some(std::sync::Arc::new(Target {
        action: Some("write".into()),
        resource_type: Some("Document".into()),
        resource_id: Some(format!("doc-{i}")),
        tenant: Some("acme".into()),
        route: Some("/tenants/{tenant}/docs/{id}".into()),
    }));
    e.request = Some(std::sync::Arc::new(RequestInfo {
        ignored_credential: None,
        relayed_by: None,
        request_id: Some(format!("req-{i:016x}")),
        trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
        method: Some("PUT".into()),
        peer_ip: Some("10.1.2.3".parse().unwrap()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0".into()),
    }));
    e
}

fn block_on<F: Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

/// Polls a future that is expected to be ready at once (best-effort `record`).
fn poll_ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("best-effort record must not wait"),
    }
}

fn writer(dir: &std::path::Path, queue: usize) -> AuditWriter {
    let mut c = AuditWriterConfig::new(dir, "bench", "i1");
    c.clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000)));
    c.durability = DurabilityPolicy::all(Durability::BestEffort);
    c.queue_capacity = queue;
    AuditWriter::open(c, SigningKey::from_seed("bench/audit", &[1; 32]).unwrap()).unwrap()
}

const BATCH: u64 = 1000;

fn durable_append(c: &mut Criterion) {
    let mut g = c.benchmark_group("audit/durable_append");
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(20);
    let events: Vec<AuditEvent> = (0..BATCH).map(event).collect();

    let dir = tempfile::tempdir().unwrap();
    let log = writer(dir.path(), 1 << 16);
    g.bench_function("aaa_signed_merkle_group_commit", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for e in &events {
                    poll_ready(log.record(e.clone())).unwrap();
                }
                block_on(log.flush()).unwrap();
            }
            start.elapsed()
        });
    });
    assert_eq!(log.pending_drops(), 0);
    drop(log);

    let dir = tempfile::tempdir().unwrap();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("plain.jsonl"))
        .unwrap();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    g.bench_function("plain_serde_json_lines_same_fsync", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                for e in &events {
                    let e = e.clone();
                    serde_json::to_writer(&mut out, &e).unwrap();
                    out.write_all(b"\n").unwrap();
                }
                out.flush().unwrap();
                out.get_ref().sync_data().unwrap();
            }
            start.elapsed()
        });
    });
    g.finish();
}

fn request_path(c: &mut Criterion) {
    let mut g = c.benchmark_group("audit/request_path");
    g.throughput(Throughput::Elements(1));
    let template = event(7);
    let dir = tempfile::tempdir().unwrap();
    let log = writer(dir.path(), 1 << 22);
    g.bench_function("aaa_enqueue_one_event", |b| {
        b.iter_custom(|iters| {
            let events: Vec<AuditEvent> = (0..iters).map(|_| template.clone()).collect();
            let start = Instant::now();
            for e in events {
                black_box(poll_ready(log.record(e)).unwrap());
            }
            let elapsed = start.elapsed();
            block_on(log.flush()).unwrap();
            elapsed
        });
    });
    assert_eq!(
        log.pending_drops(),
        0,
        "the queue must not overflow while measuring"
    );
    drop(log);

    let dir = tempfile::tempdir().unwrap();
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("plain.jsonl"))
        .unwrap();
    let mut out = BufWriter::with_capacity(1 << 20, file);
    g.bench_function("plain_serde_json_line_to_buffered_file", |b| {
        b.iter_custom(|iters| {
            let events: Vec<AuditEvent> = (0..iters).map(|_| template.clone()).collect();
            let start = Instant::now();
            for e in events {
                serde_json::to_writer(&mut out, &e).unwrap();
                out.write_all(b"\n").unwrap();
            }
            start.elapsed()
        });
    });
    g.finish();
}

fn verification(c: &mut Criterion) {
    const EVENTS: u64 = 20_000;
    let key = SigningKey::from_seed("bench/audit", &[1; 32]).unwrap();
    let trusted = key.verifier_key();
    let dir = tempfile::tempdir().unwrap();
    let log = writer(dir.path(), 1 << 16);
    block_on(async {
        for i in 0..EVENTS {
            log.record(event(i)).await.unwrap();
        }
        log.flush().await.unwrap();
    });
    drop(log);
    let mut segments = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue; // the writer's resume point
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        segments.push((name, std::fs::read(&path).unwrap()));
    }
    segments.sort();
    let verifier = Verifier::new([trusted]);
    let records = verifier.verify_segments(&segments).unwrap().records;

    let mut g = c.benchmark_group("audit/verify");
    g.throughput(Throughput::Elements(records));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("aaa_verify_all_records", |b| {
        b.iter(|| black_box(verifier.verify_segments(&segments).unwrap()));
    });
    // The writer's start-up: from its last checkpoint (`resume.json`), and, without that note,
    // through the whole log to rebuild its chain and tree.
    let reopen = || {
        let log = AuditWriter::open(
            {
                let mut c = AuditWriterConfig::new(dir.path(), "bench", "i1");
                c.clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000)));
                c
            },
            SigningKey::from_seed("bench/audit", &[1; 32]).unwrap(),
        )
        .unwrap();
        log.close().unwrap();
    };
    g.bench_function("aaa_writer_start_up_from_its_last_checkpoint", |b| {
        b.iter(reopen)
    });
    g.bench_function("aaa_writer_start_up_scan", |b| {
        b.iter(|| {
            let _ = std::fs::remove_file(dir.path().join("resume.json"));
            reopen();
        });
    });
    g.bench_function("plain_serde_json_parse_all_lines", |b| {
        b.iter(|| {
            let mut n = 0u64;
            for (_, data) in &segments {
                for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    let v: serde_json::Value = serde_json::from_slice(line).unwrap();
                    n += u64::from(v.is_object());
                }
            }
            black_box(n)
        });
    });
    g.finish();
}

/// Where the time goes, per event or line.
fn parts(c: &mut Criterion) {
    let mut g = c.benchmark_group("audit/parts");
    g.throughput(Throughput::Elements(1));
    let e = event(7);
    g.bench_function("event_clone", |b| b.iter(|| black_box(e.clone())));
    type Encode = fn(&AuditEvent, &mut Vec<u8>);
    let encoders: [(&str, Encode); 4] = [
        ("canonical_encode_via_value", |e, out| {
            let v = serde_json::to_value(e).unwrap();
            aaa_core::audit::record::write_canonical(&v, out);
        }),
        ("canonical_encode_direct", |e, out| {
            aaa_core::audit::to_canonical(e, out).unwrap();
        }),
        ("canonical_encode_event", |e, out| {
            aaa_core::audit::encode_event(e, out).unwrap();
        }),
        ("plain_serde_json_encode", |e, out| {
            serde_json::to_writer(out, e).unwrap();
        }),
    ];
    for (name, encode) in encoders {
        g.bench_function(name, |b| {
            let mut out = Vec::with_capacity(1024);
            b.iter(|| {
                out.clear();
                encode(black_box(&e), &mut out);
                black_box(out.len())
            });
        });
    }
    let mut line = Vec::new();
    aaa_core::audit::record::write_canonical(&serde_json::to_value(&e).unwrap(), &mut line);
    g.bench_function("leaf_hash_sha256", |b| {
        b.iter(|| black_box(aaa_core::audit::merkle::leaf_hash(black_box(&line))));
    });
    g.bench_function("parse_skipping_values", |b| {
        b.iter(|| {
            black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(&line)).unwrap())
        });
    });
    g.finish();
}

criterion_group!(benches, request_path, durable_append, verification, parts);
criterion_main!(benches);
