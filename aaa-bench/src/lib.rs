//! Benchmarks of `aaa` (`cargo bench -p aaa-bench`) and, with the feature `peers`, side-by-side
//! comparisons with peer engines. See `BENCHMARKS.md` at the repository root for the latest
//! figures and the exact commands.
#![deny(missing_docs)]

pub mod docs_service;
