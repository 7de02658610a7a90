//! Audit: what happened, when, and in what context.
//!
//! The [`Guard`](crate::Guard) describes each authentication failure, authorization decision and
//! request completion as an [`AuditEvent`] and hands it to an [`AuditSink`].
//!
//! ```
//! use aaa_core::audit::{AuditEvent, AuditSink, EventKind, MemorySink};
//! use aaa_core::Timestamp;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let sink = MemorySink::new();
//! let event = AuditEvent::new(Timestamp::UNIX_EPOCH, EventKind::RequestCompleted { status: 200, latency_us: 150 });
//! let receipt = sink.record(event).await.unwrap().unwrap();
//! assert_eq!(receipt.seq, 0);
//! assert_eq!(sink.events().len(), 1);
//! # });
//! ```
//!
//! # Security considerations
//!
//! Events never hold tokens, API keys, `Authorization` or `Cookie` headers, query strings or
//! bodies: the types have no place for them. Strings that come from the request (user agent,
//! request id) are cut to a fixed length by their constructors.

mod event;

pub use event::{
    Actor, AuditEvent, AuthnOutcome, EventKind, IdentityChange, MAX_UNTRUSTED_LEN, RequestInfo,
    Target, truncate_untrusted,
};

use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use crate::BoxFuture;

/// Where audit events go.
///
/// An implementation decides how durable an event must be before `record` returns (see the
/// durability modes of the file writer). Returning an error makes the request fail closed (503).
pub trait AuditSink: Send + Sync + std::fmt::Debug {
    /// Records one event, returning a receipt when the sink gives one.
    ///
    /// # Errors
    ///
    /// [`AuditError`] when the event could not be recorded as its durability mode requires.
    fn record<'a>(
        &'a self,
        event: AuditEvent,
    ) -> BoxFuture<'a, Result<Option<AuditReceipt>, AuditError>>;
}

/// Where an event landed in a log: enough to ask later for an inclusion proof.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditReceipt {
    /// The log's origin line.
    pub log: String,
    /// The record's sequence number.
    pub seq: u64,
    /// Lowercase hex of the record's RFC 6962 leaf hash (empty for sinks without a tree).
    pub leaf_hash: String,
}

impl AuditReceipt {
    /// The value of the [`RECEIPT_HEADER`](crate::http::RECEIPT_HEADER) response header:
    /// `log="<origin>"; seq=<n>; leaf=<hex>`, or `None` if the log name cannot be sent in a header.
    pub fn header_value(&self) -> Option<::http::HeaderValue> {
        if self.log.bytes().any(|b| b == b'"' || b == b'\\') {
            return None;
        }
        let text = format!(
            "log=\"{}\"; seq={}; leaf={}",
            self.log, self.seq, self.leaf_hash
        );
        ::http::HeaderValue::from_str(&text).ok()
    }
}

/// An event could not be recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The log cannot accept or persist the event now (full queue past its deadline, I/O error in
    /// strict mode, writer stopped).
    #[error("the audit log is unavailable: {0}")]
    Unavailable(&'static str),
}

/// Keeps events in memory, in order. For tests and examples.
#[derive(Debug, Default)]
pub struct MemorySink {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemorySink {
    /// An empty sink.
    pub fn new() -> Self {
        MemorySink::default()
    }

    /// A copy of the events recorded so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl AuditSink for MemorySink {
    fn record<'a>(
        &'a self,
        event: AuditEvent,
    ) -> BoxFuture<'a, Result<Option<AuditReceipt>, AuditError>> {
        let mut events = self.events.lock().unwrap_or_else(PoisonError::into_inner);
        let seq = events.len() as u64;
        events.push(event);
        Box::pin(std::future::ready(Ok(Some(AuditReceipt {
            log: "memory".to_owned(),
            seq,
            leaf_hash: String::new(),
        }))))
    }
}
