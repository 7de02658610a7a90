//! `PolicySet::decide` allocates nothing: all 20,000 docs-service requests under a counting
//! global allocator.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    missing_docs,
    reason = "a test over fixed inputs"
)]

use std::alloc::System;

use aaa_bench::docs_service::{Workload, policy_text};
use aaa_core::{Decision, policy::PolicySet};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn decide_does_not_allocate() {
    let w = Workload::load().unwrap();
    let inputs = w.aaa_inputs();
    let policy = PolicySet::from_toml(&policy_text().unwrap(), "docs_service.toml").unwrap();
    let mut allowed = 0usize;
    let region = Region::new(GLOBAL);
    for (i, r) in w.requests.iter().enumerate() {
        let d = policy.decide(
            &inputs.principals[r.user][usize::from(r.mfa)],
            &inputs.actions[i],
            &inputs.resources[r.resource],
            &inputs.contexts[i],
        );
        allowed += usize::from(d == Decision::Allow);
    }
    let stats = region.change();
    assert_eq!(allowed, 9_096);
    assert_eq!(stats.allocations, 0, "{stats:?}");
    assert_eq!(stats.reallocations, 0, "{stats:?}");
}
