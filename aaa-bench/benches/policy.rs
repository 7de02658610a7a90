//! Policy evaluation on the docs-service workload, scaling with the number of rules, and
//! load+compile time.
//!
//! Run with `cargo bench -p aaa-bench --bench policy`.

#![allow(
    clippy::indexing_slicing,
    clippy::unwrap_used,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    missing_docs,
    reason = "a benchmark over fixed, known inputs"
)]

use std::hint::black_box;

use aaa_bench::docs_service::{Workload, policy_text, policy_with_rules};
use aaa_core::policy::PolicySet;
use criterion::{Criterion, criterion_group, criterion_main};

fn bench(c: &mut Criterion) {
    let Ok(w) = Workload::load() else {
        eprintln!("workload fixtures missing");
        return;
    };
    let inputs = w.aaa_inputs();
    let n = w.requests.len();

    let mut group = c.benchmark_group("policy");
    for rules in [10, 1_000, 10_000] {
        let Ok(text) = policy_with_rules(rules) else {
            return;
        };
        let Ok(policy) = PolicySet::from_toml(&text, "grown.toml") else {
            eprintln!("grown policy does not compile");
            return;
        };
        // A window of 256 requests: their data stay in cache, so what is measured is the
        // engine, not memory latency.
        let mut i = 0;
        group.bench_function(format!("decide/docs-service/{rules}-rules"), |b| {
            b.iter(|| {
                i = (i + 1) % 256;
                let r = &w.requests[i];
                black_box(policy.decide(
                    &inputs.principals[r.user][usize::from(r.mfa)],
                    &inputs.actions[i],
                    &inputs.resources[r.resource],
                    &inputs.contexts[i],
                ))
            });
        });
    }
    let Ok(text) = policy_text() else { return };
    let Ok(policy) = PolicySet::from_toml(&text, "docs_service.toml") else {
        return;
    };
    // Cold: cycling through all 20,000 requests (each request's data mostly out of cache).
    let mut i = 0;
    group.bench_function("decide/docs-service/cold", |b| {
        b.iter(|| {
            i = (i + 1) % n;
            let r = &w.requests[i];
            black_box(policy.decide(
                &inputs.principals[r.user][usize::from(r.mfa)],
                &inputs.actions[i],
                &inputs.resources[r.resource],
                &inputs.contexts[i],
            ))
        });
    });
    let mut i = 0;
    group.bench_function("evaluate/docs-service", |b| {
        b.iter(|| {
            i = (i + 1) % 256;
            let r = &w.requests[i];
            black_box(policy.evaluate(
                &inputs.principals[r.user][usize::from(r.mfa)],
                &inputs.actions[i],
                &inputs.resources[r.resource],
                &inputs.contexts[i],
            ))
        });
    });
    if let Ok(big) = policy_with_rules(10_000) {
        group.sample_size(10);
        group.bench_function("load+compile/10000-rules", |b| {
            b.iter(|| black_box(PolicySet::from_toml(&big, "big.toml").is_ok()));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
