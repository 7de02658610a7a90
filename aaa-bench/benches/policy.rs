//! Policy evaluation on the docs-service workload, scaling with the number of rules, and
//! load+compile time; and the cost of `set<T>` attributes by the size of the set.
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
use aaa_core::{Context, Principal, PrincipalKind, Resource, Timestamp, Value, policy::PolicySet};
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
    sets(c);
}

/// A policy that reads two `set<T>` resource attributes: a reader list (`set<string>`, the
/// principal last) and blocked networks (`set<ip>`, held as strings, the way a resource loader
/// reading JSON gives them, none matching). Every read checks each element's type, so the cost
/// grows with the set; this measures by how much.
const SETS_POLICY: &str = r#"
version = "sets-1"
[schema.resource]
readers = "set<string>"
blocked = "set<ip>"
[[rules]]
id = "readers"
effect = "allow"
actions = ["docs:read"]
resources = ["Document"]
when = 'resource.readers.contains(principal.id)'
[[rules]]
id = "blocked-networks"
effect = "deny"
actions = ["docs:read"]
resources = ["Document"]
when = 'context.peer_ip in resource.blocked'
"#;

fn sets(c: &mut Criterion) {
    let policy = match PolicySet::from_toml(SETS_POLICY, "sets.toml") {
        Ok(p) => p,
        Err(e) => {
            eprintln!("the sets policy does not compile: {e}");
            return;
        }
    };
    let principal = Principal::new("reader-last", PrincipalKind::User, "bench");
    let mut context = Context::new(Timestamp::from_unix_seconds(1_700_000_000));
    context.peer_ip = "192.0.2.7".parse().ok();
    let mut group = c.benchmark_group("policy");
    // One attribute grows, the other holds one element.
    let readers = |n: usize| {
        let mut readers: Vec<String> = (1..n).map(|i| format!("reader-{i}")).collect();
        readers.push("reader-last".to_owned());
        Value::string_set(readers)
    };
    let blocked = |n: usize, as_strings: bool| {
        Value::Set(
            (0..n)
                .map(|i| {
                    let net = format!("10.{}.{}.0/24", i / 256, i % 256);
                    if as_strings {
                        Value::String(net)
                    } else {
                        Value::parse_ip(&net).unwrap_or(Value::Bool(false))
                    }
                })
                .collect(),
        )
    };
    for n in [10usize, 1_000] {
        for (name, r, bl) in [
            ("readers", readers(n), blocked(1, false)),
            ("ip-strings", readers(1), blocked(n, true)),
            ("ips", readers(1), blocked(n, false)),
        ] {
            let resource = Resource::new("Document")
                .with_id("d1")
                .with_attribute("readers", r)
                .with_attribute("blocked", bl);
            assert!(
                policy.decide(&principal, "docs:read", &resource, &context)
                    == aaa_core::Decision::Allow,
                "the reader is allowed"
            );
            group.bench_function(format!("decide/set-attribute/{name}/{n}"), |b| {
                b.iter(|| {
                    black_box(policy.decide(
                        black_box(&principal),
                        "docs:read",
                        black_box(&resource),
                        &context,
                    ))
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
