//! The workspace's integration tests: one binary, one module per area.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod adapters;
mod audit;
mod audit_crash;
mod audit_faults;
mod audit_locate;
mod audit_proofs;
mod audit_retire;
mod audit_review;
mod authn;
mod conformance;
mod credentials_review;
mod demo_review;
mod differential;
mod docs_demo;
mod docs_review;
mod guard_review;
mod hostile_input;
mod policy;
mod policy_review;
mod public_interface;
mod rng;
