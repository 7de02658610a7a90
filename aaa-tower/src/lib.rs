//! The Tower / axum adapter of `aaa`.
//!
//! Not built yet: the Tower `Layer`, the axum extractors and the demo service land with their own
//! issue. Until then this crate only re-exports [`aaa_core`] so the workspace shape is in place.
#![deny(missing_docs)]

pub use aaa_core;
