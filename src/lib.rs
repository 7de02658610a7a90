#![doc = include_str!("../README.md")]
//!
//! # Feature flags
//!
//! | feature | what it adds |
//! |---|---|
//! | `tower` | [`tower`]: the Tower layer (`aaa-tower`) |
//! | `axum` | axum extractors in the Tower adapter |
//! | `actix` | [`actix`]: the actix-web middleware (`aaa-actix`) |
//! | `full` | all of the above |
//!
//! Without features, `aaa` is [`aaa_core`], re-exported at the root.
#![deny(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use aaa_core::*;

/// The Tower / axum adapter.
#[cfg(feature = "tower")]
pub use aaa_tower as tower;

/// The actix-web adapter.
#[cfg(feature = "actix")]
pub use aaa_actix as actix;
