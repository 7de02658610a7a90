//! Audit: what happened, when, and in what context, in a tamper-evident log.
//!
//! The [`Guard`](crate::Guard) describes each authentication, authorization decision and request
//! completion as an [`AuditEvent`] and hands it to an [`AuditSink`]. The default sink for
//! production is the [`AuditWriter`]: a directory of append-only segment files in which
//!
//! - each record is one line of canonical JSON ([`record`]): schema version, origin (service,
//!   instance), a contiguous `seq`, an event id, the time (UTC, µs), the hash of the previous
//!   record (`prev`), its `kind` (`event`, `checkpoint`, `gap`, `recovery`, `key_change`) and body.
//!   The stored bytes are the hashed bytes;
//! - records are the leaves of one RFC 6962 Merkle tree ([`merkle`]); every
//!   [`checkpoint_every`](AuditWriterConfig::checkpoint_every) records or
//!   [`checkpoint_interval`](AuditWriterConfig::checkpoint_interval) a checkpoint (C2SP
//!   tlog-checkpoint, signed as a C2SP signed note with Ed25519, [`note`]) is appended and
//!   handed to the [`Witness`];
//! - writing happens on one sequencer thread behind a bounded queue, with one `fdatasync` per
//!   batch of events that are waited for (group commit), and each event kind has an explicit
//!   [`Durability`]: strict, block with a deadline, or best effort, where drops are written later
//!   as a gap record. Events nobody waits for are written every few milliseconds and synced with
//!   the next checkpoint or strict event, so every record is durable and signed within
//!   [`checkpoint_interval`](AuditWriterConfig::checkpoint_interval).
//!
//! A [`Verifier`] checks a log offline against trusted [`VerifierKey`]s (and optionally a
//! witness anchor), and reports the first bad record by file, line and sequence number.
//!
//! ```
//! use aaa_core::audit::{
//!     AuditEvent, AuditSink, AuditWriter, AuditWriterConfig, EventKind, SigningKey, Verifier,
//! };
//! use aaa_core::{Decision, Reason, Timestamp};
//!
//! let dir = tempfile::tempdir()?;
//! let key = SigningKey::generate("audit.example/orders")?;
//! let trusted = key.verifier_key();
//! let log = AuditWriter::open(AuditWriterConfig::new(dir.path(), "orders", "pod-1"), key)?;
//!
//! # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
//! let event = AuditEvent::new(
//!     Timestamp::from_unix_seconds(1_700_000_000),
//!     EventKind::Authorization {
//!         decision: Decision::Allow, reason: Reason::Permitted, rules: vec!["r1".into()],
//!         errors: vec![], policy_version: None,
//!     },
//! );
//! // Authorization decisions are strict by default: durable before `record` returns.
//! let receipt = log.record(event).await?.expect("the file log gives receipts");
//! assert_eq!((receipt.log.as_str(), receipt.seq), ("orders/pod-1", 0));
//! # Ok::<(), aaa_core::audit::AuditError>(()) })?;
//! log.close()?; // writes a final checkpoint
//!
//! let report = Verifier::new([trusted.clone()]).verify_dir(dir.path())?;
//! assert_eq!(report.events, 1);
//! assert_eq!(report.uncovered, 0);
//!
//! // One flipped byte is found, and located.
//! let segment = dir.path().join("audit-00000000000000000000.jsonl");
//! let mut bytes = std::fs::read(&segment)?;
//! let at = bytes.iter().position(|&b| b == b'r').unwrap();
//! bytes[at] = b's';
//! std::fs::write(&segment, bytes)?;
//! let err = Verifier::new([trusted]).verify_dir(dir.path()).unwrap_err();
//! assert!(err.location.is_some());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Security considerations
//!
//! - **What is never recorded.** Events have no place for tokens, API keys, passwords,
//!   `Authorization` or `Cookie` headers, query strings or bodies; credentials appear only as a
//!   [`CredentialRef`](crate::CredentialRef) (a key id or a SHA-256). Strings from the request
//!   (user agent, request id, resource id) are cut by [`truncate_untrusted`]; JSON escaping means
//!   no string can end a line or forge a record.
//! - **What the signatures cover.** A checkpoint signs the Merkle root of every record before it.
//!   Records after the last checkpoint are chained but not signed: an attacker with write access
//!   can rewrite or cut them undetected, which is why a checkpoint is due within
//!   `checkpoint_interval`; the verifier reports how many records are uncovered.
//! - **Truncation and rollback.** Cutting the log at a checkpoint, or restoring an older copy,
//!   leaves a log that verifies on its own. Only an anchor kept elsewhere detects it: give the
//!   writer a [`Witness`] that stores checkpoints off the host, and give the verifier the latest
//!   anchor ([`Verifier::with_anchor`]). The writer refuses to open a log behind its anchor.
//! - **Keys.** The signing key must not be readable by whoever could edit the log, or the log
//!   only proves the absence of accidents. [`SigningKey`] zeroizes itself and never prints its
//!   secret; key files are created 0600. Rotation is a record signed by the old key; after it,
//!   only the new key is accepted for checkpoints.
//! - **Availability.** In strict mode a failing disk fails requests (503, fail closed); in best
//!   effort mode events may be lost, but each loss is counted in a gap record.

mod canonical;
mod encode;
mod event;
pub mod merkle;
pub mod note;
mod policy;
pub mod record;
mod retire;
mod sinks;
mod verify;
mod witness;
mod writer;

pub use canonical::{CanonicalError, to_canonical};
pub use encode::encode_event;
pub use merkle::{Hash, LogLeaves, MerkleTree, ProofError};
pub use note::{Checkpoint, KeyError, MAX_NOTE_SIGNATURES, SignedNote, SigningKey, VerifierKey};
pub use policy::{Durability, DurabilityPolicy, Level, RecordingPolicy, RecordingRule};
pub use record::{LogOrigin, RecordBody};
pub use retire::{Retired, retire};
pub use sinks::{StdoutSink, TracingSink};
pub use verify::{
    DecisionCounts, Location, Problem, Summary, Verifier, VerifyError, VerifyReport,
    checkpoint_note, leaf_hashes, log_leaves, printable, summarize, summarize_dirs,
};
pub use witness::{FileWitness, Witness};
pub use writer::{AuditWriter, AuditWriterConfig, load_or_generate_key, write_private_key};

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
    /// The event should be taken when `record` is called, and the future only wait for its
    /// durability: a request whose future is dropped while its allow is being made durable is
    /// then recorded as abandoned after its allow, in that order (every sink of this crate does
    /// so).
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
    /// An I/O operation on the log failed.
    #[error("{context}: {kind}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The I/O error kind.
        kind: std::io::ErrorKind,
    },
    /// The log is shorter than the latest checkpoint anchored with the witness: an older copy
    /// was restored, or records were cut. The writer refuses to start.
    #[error("the log has {log_size} records but the witness anchored {anchor_size} (rollback)")]
    Rollback {
        /// Records in the log.
        log_size: u64,
        /// Records covered by the anchor.
        anchor_size: u64,
    },
    /// The log's tree at the anchored size does not match the anchored root: history rewritten.
    #[error("the log disagrees with the witness anchor at size {size}")]
    Diverged {
        /// The anchored size.
        size: u64,
    },
    /// A complete record of the existing log is damaged; only a torn tail is repaired.
    #[error("the log is corrupt at {segment}:{line}: {reason}")]
    Corrupt {
        /// The segment file.
        segment: String,
        /// The line, from 1.
        line: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// The key given to the writer is not the key in charge of the log: the one the last key
    /// change introduced (even when a crash cut the checkpoint after it) or, without a key
    /// change, the one that signed the last checkpoint. A retired key is refused.
    #[error(
        "the log is signed by another key: start the writer with the key in charge (the last \
         key change's new key); rotate keys with `rotate_key` on a running writer"
    )]
    WrongKey,
    /// A key could not be parsed or generated.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The configuration is invalid.
    #[error("invalid audit configuration: {0}")]
    Config(&'static str),
    /// Another writer has the log directory open (in this process or another): two writers
    /// would interleave their records and break the chain. The writer refuses to start.
    #[error(
        "the log directory is in use by another audit writer (it is locked): stop that one \
         first, or give this one a directory of its own"
    )]
    InUse,
    /// Write failures lost `events` that nobody waited for (`block` and `best-effort` events)
    /// since the last successful flush. Answered by [`AuditWriter::flush`],
    /// [`AuditWriter::checkpoint_now`] and [`AuditWriter::close`]; the log holds a gap record
    /// counting them when it could still be written.
    #[error("{events} audit events were lost to write failures")]
    Lost {
        /// How many.
        events: u64,
    },
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
