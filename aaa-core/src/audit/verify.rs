//! Offline verification of a log, and reading it back (leaf hashes for proofs, summaries).
//!
//! Verification is one pass over all segments. They are cut into pieces of complete lines that
//! threads on the other cores hash (the Merkle leaf) and parse ahead, doing also the checks that
//! need no other record (the `prev` hash decoded, the body matching the kind, the time format);
//! the calling thread runs the checks that depend on order (sequence, hash link, origin, segment
//! names, tree, checkpoints, keys, anchor) on the results, in order. Signatures are collected and
//! batch-verified at the end; on a failure the first bad one is found. Lines in the shape the
//! writer produces are read by a strict fast path (`scan`), any other line by `serde_json`,
//! which then decides: both read the same record from the same line.

use std::{collections::BTreeMap, fmt, path::Path};

use base64::{Engine, engine::general_purpose::STANDARD as B64};

use super::{
    AuditError, EventKind,
    canonical::to_canonical,
    merkle::{Hash, LogLeaves, MerkleTree, leaf_hash},
    note::{Checkpoint, SignedNote, VerifierKey},
    record::{
        GENESIS_PREV, LogOrigin, ReadRecord, SCHEMA_VERSION, StoredRecord, event_statement, hex,
        key_change_statement,
    },
    retire::{RETIRED_FILE, RetiredHead, beside_retirements, log_start},
    writer::{Unreadable, read_segment, segment_files, segment_name},
};
use crate::Decision;

mod scan;

/// What a successful verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// The log's origin line, if it has records.
    pub origin: Option<String>,
    /// Records checked.
    pub records: u64,
    /// Event records among them.
    pub events: u64,
    /// Checkpoint records among them.
    pub checkpoints: u64,
    /// The sequence number of the last checkpoint record.
    pub last_checkpoint: Option<u64>,
    /// Records covered by the last checkpoint (its tree size).
    pub covered: u64,
    /// The last checkpoint's signed note (C2SP tlog-checkpoint text): it signs the root of the
    /// tree of the first [`covered`](Self::covered) records, against which inclusion proofs are
    /// given.
    pub checkpoint_note: Option<String>,
    /// Records after the last checkpoint: chained but not yet covered by a signature.
    pub uncovered: u64,
    /// Gap records, and the events they say were lost.
    pub gaps: u64,
    /// Events lost, as gap records count them.
    pub dropped: u64,
    /// Recovery records (crashes that cut a torn tail).
    pub recoveries: u64,
    /// Key changes.
    pub key_changes: u64,
    /// Events carrying their own signature (all verified).
    pub signed_events: u64,
    /// The root hash of the tree over all records.
    pub root: Hash,
    /// The size of the witness anchor checked against, if one was given.
    pub anchor_size: Option<u64>,
    /// Records retired from the log directory to an archive before its first record
    /// ([`retire`](super::retire)): not checked here. 0 when the log starts at record 0.
    pub retired: u64,
}

/// Where a problem was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The segment file name.
    pub segment: String,
    /// The line number in that file, from 1.
    pub line: u64,
    /// The sequence number the record should have there.
    pub seq: u64,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A segment's name is any file name of the form `audit-*.jsonl`: shown escaped.
        let segment = printable(&self.segment);
        write!(f, "{segment}:{} (seq {})", self.line, self.seq)
    }
}

/// What is wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// A segment could not be read.
    #[error("cannot read the segment: {0}")]
    Io(std::io::ErrorKind),
    /// A file named like a segment is not a regular file (a directory, a FIFO, a device): not
    /// read, since a FIFO would block the verifier forever.
    #[error("the segment is not a regular file")]
    NotAFile,
    /// The line is not a record (JSON error, missing or unknown field).
    #[error("not a valid record: {0}")]
    Malformed(String),
    /// The line has no final newline: a torn write, or a cut.
    #[error("the record is not terminated by a newline (torn or cut tail)")]
    Unterminated,
    /// The record's schema version is unknown.
    #[error("unknown schema version {0}")]
    Version(u64),
    /// The record names another log.
    #[error("the record names another log origin")]
    OriginChanged,
    /// The sequence number is not the next one: records were deleted, inserted or reordered.
    #[error(
        "sequence number {found}, expected {expected} (records deleted, inserted or reordered)"
    )]
    Sequence {
        /// The number expected.
        expected: u64,
        /// The number found.
        found: u64,
    },
    /// The `prev` hash does not match the previous record: it (or this field) was modified.
    #[error(
        "`prev` does not match the hash of the previous record (it or this record was modified)"
    )]
    HashLink,
    /// The record's `kind` does not match its body.
    #[error("the record kind does not match its body")]
    KindMismatch,
    /// A segment file's name does not match its first record.
    #[error("the segment name does not match its first record")]
    SegmentName,
    /// A checkpoint could not be parsed.
    #[error("malformed checkpoint: {0}")]
    CheckpointMalformed(&'static str),
    /// A checkpoint's origin, size or root does not match the records before it.
    #[error("the checkpoint does not match the records before it ({0})")]
    CheckpointMismatch(&'static str),
    /// No trusted key (or not the key currently in charge) signed the checkpoint.
    #[error("the checkpoint is not signed by a trusted key")]
    UntrustedKey,
    /// A signature does not verify.
    #[error("invalid signature")]
    BadSignature,
    /// A key change record is malformed or not introduced by the key in charge.
    #[error("invalid key change: {0}")]
    KeyChange(&'static str),
    /// The log is shorter than the witness anchor: a stale copy was restored, or the tail cut.
    #[error("the log has {log_size} records but the anchor covers {anchor_size} (rollback or cut)")]
    Rollback {
        /// Records in the log.
        log_size: u64,
        /// Records the anchor covers.
        anchor_size: u64,
    },
    /// The log disagrees with the witness anchor: history was rewritten.
    #[error("the log's tree at size {0} does not match the anchor (history rewritten)")]
    AnchorMismatch(u64),
    /// The anchor itself is malformed or not signed by a trusted key.
    #[error("the anchor is not a valid checkpoint signed by a trusted key")]
    BadAnchor,
    /// The log is shorter than the anchor, and no key the verifier trusts (given, or introduced
    /// by the log's key changes) signed the anchor: either the log was cut or restored from
    /// before a key change (a rollback that also took away the key change introducing the
    /// anchor's signer), or the anchor is not this log's. Verify with the newer key trusted too
    /// to tell: a rollback is then reported as [`Problem::Rollback`].
    #[error(
        "the log has {log_size} records but the anchor covers {anchor_size}, signed by no key \
         this log introduces: a rollback to before a key change, or another log's anchor"
    )]
    RollbackOrForeignAnchor {
        /// Records in the log.
        log_size: u64,
        /// Records the anchor says it covers.
        anchor_size: u64,
    },
    /// The log's oldest records were retired to an archive, and the verifier was not told to
    /// accept that ([`Verifier::allow_retired_head`]).
    #[error(
        "the records before seq {first_seq} were retired from the log directory (retired.json): \
         verify the log with the archives they went to (`verify_dirs`, `aaa audit verify \
         --archive`), or what is left with `allow_retired_head` (`--allow-retired`)"
    )]
    Retired {
        /// The sequence number of the first record left.
        first_seq: u64,
    },
    /// The log directory's note of its retired records is unusable.
    #[error("{0}")]
    RetiredNote(&'static str),
    /// The anchor predates the records left in the log directory.
    #[error(
        "the anchor covers {anchor_size} records, fewer than were retired ({retired}): check it \
         against the archive"
    )]
    AnchorRetired {
        /// The anchor's tree size.
        anchor_size: u64,
        /// The records retired.
        retired: u64,
    },
}

/// A log failed verification: the first problem, where it is, and what was verified before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", location.as_ref().map_or_else(|| "log".to_owned(), ToString::to_string))]
pub struct VerifyError {
    /// Where, when the problem is in a record.
    pub location: Option<Location>,
    /// What.
    pub problem: Problem,
    /// What was verified up to the problem.
    pub report: Box<VerifyReport>,
}

/// Verifies logs against a set of trusted keys and, optionally, a witness anchor.
///
/// ```
/// use aaa_core::audit::{AuditSink, AuditWriter, AuditWriterConfig, AuditEvent, EventKind, SigningKey, Verifier};
/// use aaa_core::Timestamp;
///
/// let dir = tempfile::tempdir()?;
/// let key = SigningKey::generate("example/audit")?;
/// let trusted = key.verifier_key();
/// let log = AuditWriter::open(AuditWriterConfig::new(dir.path(), "svc", "i1"), key)?;
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let event = AuditEvent::new(Timestamp::UNIX_EPOCH, EventKind::RequestCompleted { status: 200, latency_us: 5 });
/// log.record(event).await?;
/// # Ok::<(), aaa_core::audit::AuditError>(()) })?;
/// log.close()?; // writes a final checkpoint
///
/// let report = Verifier::new([trusted]).verify_dir(dir.path())?;
/// assert_eq!((report.events, report.uncovered), (1, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<VerifierKey>,
    anchor: Option<String>,
    allow_retired: bool,
}

struct PendingSig {
    ordinal: u64,
    location: Option<Location>,
    problem: Problem,
    message: Vec<u8>,
    signature: [u8; 64],
    key: VerifierKey,
}

/// Where a line is, cheaply; turned into a [`Location`] only when needed.
struct At<'s> {
    segment: &'s str,
    line: u64,
    seq: u64,
}

impl At<'_> {
    fn location(&self) -> Location {
        Location {
            segment: self.segment.to_owned(),
            line: self.line,
            seq: self.seq,
        }
    }
}

struct State<'k> {
    verifier: &'k Verifier,
    report: VerifyReport,
    origin: Option<LogOrigin>,
    origin_line: String,
    tree: MerkleTree,
    prev: Hash,
    current_key: Option<VerifierKey>,
    /// The key a key change retired, until the next checkpoint (which the writer signs with the
    /// new key, then the retired one).
    retiring: Option<VerifierKey>,
    known_keys: Vec<VerifierKey>,
    pending: Vec<PendingSig>,
    anchor: Option<Checkpoint>,
    anchor_root: Option<Hash>,
    ordinal: u64,
}

type Failure = (Option<Location>, Problem);

impl Verifier {
    /// A verifier trusting `keys`. Keys introduced by valid key change records are trusted from
    /// there on.
    pub fn new(keys: impl IntoIterator<Item = VerifierKey>) -> Self {
        Verifier {
            keys: keys.into_iter().collect(),
            anchor: None,
            allow_retired: false,
        }
    }

    /// Accepts a log directory whose oldest segments were retired to an archive
    /// ([`retire`](super::retire)): the log is checked from its first record left, starting from
    /// the tree `retired.json` notes, which the first checkpoint left must then sign (a forged
    /// note fails there). The report says how many records were retired
    /// ([`VerifyReport::retired`]). Without this, such a log is refused
    /// ([`Problem::Retired`]): records missing from the front are not accepted unasked.
    #[must_use]
    pub fn allow_retired_head(mut self) -> Self {
        self.allow_retired = true;
        self
    }

    /// Also checks the log against a witness anchor (a signed checkpoint): the log must reach
    /// its size and agree with its root.
    #[must_use]
    pub fn with_anchor(mut self, anchor_note: impl Into<String>) -> Self {
        self.anchor = Some(anchor_note.into());
        self
    }

    /// Verifies the segment files in `dir`, reading them one at a time, in order: a log of any
    /// length verifies in about the memory of its largest segment. A log whose oldest segments
    /// were retired is checked from its first record left if
    /// [`allow_retired_head`](Self::allow_retired_head) was asked for, and refused otherwise
    /// ([`verify_dirs`](Self::verify_dirs) checks it with its archives).
    ///
    /// # Errors
    ///
    /// [`VerifyError`] with the first problem found, located.
    pub fn verify_dir(&self, dir: &Path) -> Result<VerifyReport, VerifyError> {
        self.verify_dirs(&[dir])
    }

    /// Verifies one log kept in several directories by retirements
    /// ([`retire`](super::retire)): the archives its oldest records were moved to, oldest first,
    /// then the log directory. It is checked as one log, as if its segments were in one
    /// directory (the key in charge, a key change and its checkpoints, the anchor and the
    /// records not yet covered by a checkpoint carry across), and each directory after the first
    /// must start where the one before ends: its `retired.json` must note the tree and the last
    /// leaf of the records before it. The first may itself start after retired records only if
    /// [`allow_retired_head`](Self::allow_retired_head) was asked for. Archive segments from the
    /// log directory's first record on are copies of segments still there, which a retirement
    /// running or interrupted before its note leaves: they are checked there. One segment in
    /// memory at a time, as [`verify_dir`](Self::verify_dir).
    ///
    /// # Errors
    ///
    /// [`VerifyError`] with the first problem found, located; [`Problem::RetiredNote`] when a
    /// directory does not start where the one before ends, holds no segment (of several), or
    /// none is given.
    pub fn verify_dirs(&self, dirs: &[&Path]) -> Result<VerifyReport, VerifyError> {
        let Some(live) = dirs.last() else {
            return Err(VerifyError {
                location: None,
                problem: Problem::RetiredNote("no log directory given"),
                report: Box::default(),
            });
        };
        // A retirement beside the check may remove segments it listed: checked again then.
        beside_retirements(live, || self.verify_dirs_once(dirs))
    }

    /// One check of the log in `dirs`, for [`verify_dirs`](Self::verify_dirs).
    fn verify_dirs_once(&self, dirs: &[&Path]) -> Result<VerifyReport, VerifyError> {
        let refuse = |problem| VerifyError {
            location: None,
            problem,
            report: Box::default(),
        };
        let (head, mut files) = log_segments(dirs).map_err(|(location, problem)| VerifyError {
            location,
            problem,
            report: Box::default(),
        })?;
        if let Some(head) = &head
            && !self.allow_retired
        {
            return Err(refuse(Problem::Retired {
                first_seq: head.size(),
            }));
        }
        // One segment in memory at a time: a log of any length verifies in the memory of its
        // largest segment (`segment_max_bytes`, 64 MiB by default).
        self.verify_each(head, files.len(), |i| {
            let (name, path, joins) = files
                .get_mut(i)
                .ok_or((None, Problem::Io(std::io::ErrorKind::NotFound)))?;
            let data = read_segment(path).map_err(|e| {
                (
                    Some(Location {
                        segment: name.clone(),
                        line: 0,
                        seq: 0,
                    }),
                    match e {
                        Unreadable::NotAFile => Problem::NotAFile,
                        Unreadable::Io(e) => Problem::Io(e.kind()),
                    },
                )
            })?;
            Ok((name.clone(), data, joins.take()))
        })
    }

    /// Verifies segments given as `(file name, contents)`, in order.
    ///
    /// # Errors
    ///
    /// [`VerifyError`] with the first problem found, located.
    pub fn verify_segments(
        &self,
        segments: &[(String, Vec<u8>)],
    ) -> Result<VerifyReport, VerifyError> {
        self.verify_each(None, segments.len(), |i| {
            segments
                .get(i)
                .map(|(name, data)| {
                    let data = std::borrow::Cow::Borrowed(data.as_slice());
                    (name.clone(), data, None)
                })
                .ok_or((None, Problem::Io(std::io::ErrorKind::NotFound)))
        })
    }

    /// Verifies `count` segments, asking `segment` for each in order and dropping it once
    /// checked; a segment that starts another directory of the log comes with where that
    /// directory says it starts ([`Joins`]).
    fn verify_each<D: AsRef<[u8]>>(
        &self,
        head: Option<RetiredHead>,
        count: usize,
        mut segment: impl FnMut(usize) -> Result<(String, D, Option<Joins>), Failure>,
    ) -> Result<VerifyReport, VerifyError> {
        let retired = head.as_ref().map_or(0, RetiredHead::size);
        let (tree, prev) = head.map_or((MerkleTree::new(), [0; 32]), |h| (h.tree, h.prev));
        let mut state = State {
            verifier: self,
            report: VerifyReport {
                retired,
                ..VerifyReport::default()
            },
            origin: None,
            origin_line: String::new(),
            tree,
            prev,
            current_key: None,
            retiring: None,
            known_keys: self.keys.clone(),
            pending: Vec::new(),
            anchor: None,
            anchor_root: None,
            ordinal: 0,
        };
        let structural = state.begin().and_then(|anchor_note| {
            for i in 0..count {
                let (name, data, joins) = segment(i)?;
                if let Some(joins) = joins {
                    state.joins(joins)?;
                }
                state.segment(&name, data.as_ref(), i + 1 == count)?;
                // The signatures of each segment are checked at its end, so that they are not
                // kept for the whole log; a bad one comes before any problem of a later segment.
                if let Some((_, failure)) = state.check_signatures() {
                    return Err(failure);
                }
            }
            state.end(anchor_note)
        });
        let structural_ordinal = state.ordinal;
        let sig_failure = state.check_signatures();
        let first = match (structural, sig_failure) {
            (Err(s), Some((ord, f))) => Some(if ord < structural_ordinal { f } else { s }),
            (Err(s), None) => Some(s),
            (Ok(()), Some((_, f))) => Some(f),
            (Ok(()), None) => None,
        };
        let mut report = state.report;
        report.root = state.tree.root();
        match first {
            None => Ok(report),
            Some((location, problem)) => Err(VerifyError {
                location,
                problem,
                report: Box::new(report),
            }),
        }
    }
}

/// The value of a lowercase hex digit, or `0xff` (selects, not branches).
fn hex_digit(c: u8) -> u8 {
    let digit = c.wrapping_sub(b'0');
    let letter = c.wrapping_sub(b'a');
    if digit < 10 {
        digit
    } else if letter < 6 {
        letter + 10
    } else {
        0xff
    }
}

/// The hash in a `prev` field: exactly 64 lowercase hex digits. Without a branch per digit.
pub(crate) fn parse_prev(prev: &str) -> Option<Hash> {
    let digits: &[u8; 64] = prev.as_bytes().try_into().ok()?;
    let mut out = [0u8; 32];
    let mut bad = 0u8;
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let (hi, lo) = match pair {
            [hi, lo] => (hex_digit(*hi), hex_digit(*lo)),
            _ => (0xff, 0xff),
        };
        bad |= hi | lo;
        *byte = (hi << 4) | lo;
    }
    (bad & 0xf0 == 0).then_some(out)
}

/// A segment file of a log kept in one directory or several: its name, its path, and for the
/// first of each directory after the first, where that directory says it starts.
type LogSegment = (String, std::path::PathBuf, Option<Joins>);

/// The segments of the log kept in `dirs` (archives oldest first, then the log directory), in
/// order, each directory's from where its note says it starts, and the tree before the first
/// (the first directory's retired head, if any). Archive segments from the log directory's
/// first record on are left out: a retirement into an archive copies segments there before it
/// notes them in the log directory, so an archive may end with copies of segments still there
/// (a retirement running, or interrupted before its note); they are read there. Of several
/// directories, one with no segment is refused.
fn log_segments(dirs: &[&Path]) -> Result<(Option<RetiredHead>, Vec<LogSegment>), Failure> {
    let mut files: Vec<LogSegment> = Vec::new();
    let mut head = None;
    let mut dir_start = 0;
    for (i, dir) in dirs.iter().enumerate() {
        let at_dir = |problem| {
            let location = Location {
                segment: dir.display().to_string(),
                line: 0,
                seq: 0,
            };
            (Some(location), problem)
        };
        let listed =
            segment_files(dir).map_err(|_| at_dir(Problem::Io(std::io::ErrorKind::NotFound)))?;
        let (start, dir_head) =
            log_start(dir, &listed).map_err(|e| at_dir(Problem::RetiredNote(e)))?;
        let listed = listed.into_iter().skip(start);
        if i == 0 {
            head = dir_head;
            files.extend(listed.map(|(name, path)| (name, path, None)));
        } else {
            // A directory's segments are in order: an archive's copies are a suffix of it, or
            // all of it.
            if i + 1 == dirs.len()
                && let Some(h) = &dir_head
            {
                files.retain(|(name, ..)| {
                    super::retire::first_seq(name).is_none_or(|seq| seq < h.size())
                });
            }
            let mut joins = Some(Joins {
                location: match &dir_head {
                    Some(_) => dir.join(RETIRED_FILE).display().to_string(),
                    None => dir.display().to_string(),
                },
                head: dir_head,
            });
            dir_start = files.len();
            files.extend(listed.map(|(name, path)| (name, path, joins.take())));
        }
        if dirs.len() > 1 && files.len() == dir_start {
            return Err(at_dir(Problem::RetiredNote(
                "a directory of the log holds no segment (an archive a retirement has not filled \
                 yet: run it again)",
            )));
        }
    }
    Ok((head, files))
}

/// Where a directory of a log kept in several ([`Verifier::verify_dirs`]) says it starts.
struct Joins {
    /// Its `retired.json`'s tree and last leaf (`None`: it starts at record 0).
    head: Option<RetiredHead>,
    /// Its `retired.json`'s path (the directory's, without one), to locate a mismatch.
    location: String,
}

impl State<'_> {
    /// Checks that a directory whose note is `joins` starts where the records read so far end.
    fn joins(&self, joins: Joins) -> Result<(), Failure> {
        let reason = match &joins.head {
            Some(head) if head.tree == self.tree && head.prev == self.prev => return Ok(()),
            None if self.tree.size() == 0 => return Ok(()),
            Some(_) => {
                "the directory does not start where the one before it ends (its retired.json \
                 does not note the records before it): give the archives oldest first, then the \
                 log directory"
            }
            None => {
                "the directory starts at record 0 (it has no retired.json), not where the one \
                 before it ends: give the archives oldest first, then the log directory"
            }
        };
        Err((
            Some(Location {
                segment: joins.location,
                line: 0,
                seq: self.tree.size(),
            }),
            Problem::RetiredNote(reason),
        ))
    }

    /// Reads the anchor, if any; its note is checked by [`end`](Self::end).
    fn begin(&mut self) -> Result<Option<SignedNote>, Failure> {
        let mut anchor_note = None;
        if let Some(text) = &self.verifier.anchor {
            let note = SignedNote::parse(text).map_err(|_| (None, Problem::BadAnchor))?;
            let cp = Checkpoint::parse_body(&note.body).map_err(|_| (None, Problem::BadAnchor))?;
            self.report.anchor_size = Some(cp.size);
            if cp.size < self.tree.size() {
                return Err((
                    None,
                    Problem::AnchorRetired {
                        anchor_size: cp.size,
                        retired: self.tree.size(),
                    },
                ));
            }
            if cp.size == self.tree.size() {
                self.anchor_root = Some(self.tree.root());
            }
            self.anchor = Some(cp);
            anchor_note = Some(note);
        }
        Ok(anchor_note)
    }

    /// Checks the records of one segment, in order; `last` says whether it is the log's last.
    fn segment(&mut self, name: &str, data: &[u8], last: bool) -> Result<(), Failure> {
        // Complete lines, cut into pieces hashed and parsed on all cores; the order-dependent
        // checks run here, on the results in order, while the next pieces are prepared.
        let complete = memchr::memrchr(b'\n', data).map_or(0, |p| p + 1);
        let (body, torn) = data.split_at(complete);
        let work = split_work(body);
        let mut line_no = 0u64;
        prepared_in_order(&work, |prepared| {
            for prepared in &prepared {
                line_no += 1;
                let at = At {
                    segment: name,
                    line: line_no,
                    seq: self.tree.size(),
                };
                if line_no == 1 && !segment_name_matches(name, self.tree.size()) {
                    return Err((Some(at.location()), Problem::SegmentName));
                }
                self.record(prepared, &at)
                    .map_err(|p| (Some(at.location()), p))?;
                self.ordinal += 1;
            }
            Ok(())
        })?;
        self.segment_end(name, line_no, last, torn)
    }

    /// After the last segment: the anchor, if any, against the log.
    fn end(&mut self, anchor_note: Option<SignedNote>) -> Result<(), Failure> {
        // Only a checkpoint left signs the tree a retired head claims; a retirement always
        // leaves one (the segment it retires up to holds one). Without it the note, and every
        // record after it, could be anybody's.
        if self.report.retired > 0 && self.report.checkpoints == 0 {
            return Err((None, Problem::RetiredNote(NO_CHECKPOINT_AFTER_RETIRED)));
        }
        if let Some(note) = anchor_note {
            // Signed by a trusted key (one given, or one introduced by a valid key change), and
            // every trusted key's line verifies (C2SP signed-note: a known key's signature is
            // checked, and one that fails rejects the note), whatever order the keys came in.
            let mut signed = false;
            for key in &self.known_keys {
                if !note.has_line_by(key) {
                    continue;
                }
                let Some(signature) = note.signature_by(key) else {
                    return Err((None, Problem::BadAnchor));
                };
                signed = true;
                self.pending.push(PendingSig {
                    ordinal: u64::MAX,
                    location: None,
                    problem: Problem::BadAnchor,
                    message: note.body.clone().into_bytes(),
                    signature,
                    key: key.clone(),
                });
            }
            if !signed {
                // A log cut before a key change does not introduce the key of a later anchor.
                if let Some(anchor) = &self.anchor
                    && anchor.size > self.tree.size()
                {
                    return Err((
                        None,
                        Problem::RollbackOrForeignAnchor {
                            log_size: self.tree.size(),
                            anchor_size: anchor.size,
                        },
                    ));
                }
                return Err((None, Problem::BadAnchor));
            }
        }
        if let Some(anchor) = &self.anchor {
            if !self.origin_line.is_empty() && anchor.origin != self.origin_line {
                return Err((None, Problem::BadAnchor));
            }
            match self.anchor_root {
                None => {
                    return Err((
                        None,
                        Problem::Rollback {
                            log_size: self.tree.size(),
                            anchor_size: anchor.size,
                        },
                    ));
                }
                Some(root) if root != anchor.root => {
                    return Err((None, Problem::AnchorMismatch(anchor.size)));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// The end of a segment: a torn tail (no final newline) is an error.
    fn segment_end(
        &self,
        name: &str,
        line_no: u64,
        last: bool,
        torn: &[u8],
    ) -> Result<(), Failure> {
        // No record to check its name against: an empty segment is one the writer made for
        // the next record (and crashed), so only the last, named for that record.
        if line_no == 0 && (!last || !segment_name_matches(name, self.tree.size())) {
            return Err((
                Some(Location {
                    segment: name.to_owned(),
                    line: 1,
                    seq: self.tree.size(),
                }),
                Problem::SegmentName,
            ));
        }
        if !torn.is_empty() {
            return Err((
                Some(Location {
                    segment: name.to_owned(),
                    line: line_no + 1,
                    seq: self.tree.size(),
                }),
                Problem::Unterminated,
            ));
        }
        Ok(())
    }

    fn record(&mut self, prepared: &Prepared<'_>, at: &At<'_>) -> Result<(), Problem> {
        let rec = prepared
            .parsed
            .as_ref()
            .map_err(|e| Problem::Malformed(e.clone()))?;
        if rec.v != SCHEMA_VERSION {
            return Err(Problem::Version(rec.v));
        }
        match &self.origin {
            None => {
                let origin = rec.origin.to_owned();
                if !origin.is_valid() {
                    return Err(Problem::Malformed(
                        "the origin's service or instance is empty or holds `/` or a control \
                         character"
                            .to_owned(),
                    ));
                }
                self.report.origin = Some(origin.line());
                self.origin_line = origin.line();
                self.origin = Some(origin);
            }
            Some(o) if !rec.origin.is(o) => return Err(Problem::OriginChanged),
            Some(_) => {}
        }
        let seq = self.tree.size();
        if rec.seq != seq {
            return Err(Problem::Sequence {
                expected: seq,
                found: rec.seq,
            });
        }
        let link_ok = if seq == 0 {
            rec.prev == GENESIS_PREV
        } else {
            prepared.prev == Some(self.prev)
        };
        if !link_ok {
            return Err(Problem::HashLink);
        }
        if !prepared.shape_ok {
            return Err(Problem::KindMismatch);
        }
        let origin_line = std::mem::take(&mut self.origin_line);
        let result = self.body(rec, seq, &origin_line, at);
        self.origin_line = origin_line;
        result?;
        self.tree.push(prepared.leaf);
        self.prev = prepared.leaf;
        self.report.records += 1;
        self.report.uncovered += 1;
        if rec.kind == "checkpoint" {
            self.report.uncovered = 0;
        }
        if self
            .anchor
            .as_ref()
            .is_some_and(|a| a.size == self.tree.size())
        {
            self.anchor_root = Some(self.tree.root());
        }
        Ok(())
    }

    fn body(
        &mut self,
        rec: &StoredRecord<'_>,
        seq: u64,
        origin_line: &str,
        at: &At<'_>,
    ) -> Result<(), Problem> {
        match rec.kind.as_ref() {
            "event" => {
                self.report.events += 1;
                if let (Some(sig), Some(event)) = (&rec.event_sig, rec.event) {
                    self.event_signature(sig, event, origin_line, seq, &rec.prev, at)?;
                }
            }
            "gap" => {
                self.report.gaps += 1;
                self.report.dropped += rec.gap.as_ref().map_or(0, |g| g.dropped);
            }
            "recovery" => self.report.recoveries += 1,
            "checkpoint" => {
                let text = rec.checkpoint.as_deref().unwrap_or_default();
                let own = [format!("time {}", rec.time), format!("id {}", rec.id)];
                self.checkpoint(text, origin_line, seq, &own, at)?;
            }
            "key_change" => {
                let Some(change) = &rec.key_change else {
                    return Err(Problem::KindMismatch);
                };
                let old = VerifierKey::parse(&change.old_key)
                    .map_err(|_| Problem::KeyChange("malformed old key"))?;
                let new = VerifierKey::parse(&change.new_key)
                    .map_err(|_| Problem::KeyChange("malformed new key"))?;
                let in_charge = match &self.current_key {
                    Some(k) => *k == old,
                    None => self.known_keys.contains(&old),
                };
                if !in_charge {
                    return Err(Problem::KeyChange("not signed by the key in charge"));
                }
                let signature: [u8; 64] = B64
                    .decode(&change.signature)
                    .ok()
                    .and_then(|s| s.try_into().ok())
                    .ok_or(Problem::KeyChange("malformed signature"))?;
                self.pending.push(PendingSig {
                    ordinal: self.ordinal,
                    location: Some(at.location()),
                    problem: Problem::KeyChange("bad signature by the old key"),
                    message: key_change_statement(
                        origin_line,
                        seq,
                        &change.old_key,
                        &change.new_key,
                    )
                    .into_bytes(),
                    signature,
                    key: old.clone(),
                });
                self.known_keys.push(new.clone());
                self.current_key = Some(new);
                self.retiring = Some(old);
                self.report.key_changes += 1;
            }
            _ => return Err(Problem::KindMismatch),
        }
        Ok(())
    }

    fn event_signature(
        &mut self,
        sig: &str,
        event: &str,
        origin_line: &str,
        seq: u64,
        prev: &str,
        at: &At<'_>,
    ) -> Result<(), Problem> {
        let (name, blob) = sig
            .split_once(' ')
            .ok_or(Problem::Malformed("malformed event signature".to_owned()))?;
        let blob = B64
            .decode(blob)
            .map_err(|_| Problem::Malformed("malformed event signature".to_owned()))?;
        let (id, signature) = blob.split_at_checked(4).ok_or(Problem::BadSignature)?;
        let signature: [u8; 64] = signature.try_into().map_err(|_| Problem::BadSignature)?;
        let key = self
            .known_keys
            .iter()
            .find(|k| k.name() == name && k.id() == id)
            .ok_or(Problem::UntrustedKey)?;
        if self.current_key.as_ref().is_some_and(|c| c != key) {
            return Err(Problem::UntrustedKey);
        }
        use sha2::Digest;
        let digest = hex(&sha2::Sha256::digest(event.as_bytes()));
        self.pending.push(PendingSig {
            ordinal: self.ordinal,
            location: Some(at.location()),
            problem: Problem::BadSignature,
            message: event_statement(origin_line, seq, prev, &digest).into_bytes(),
            signature,
            key: key.clone(),
        });
        self.report.signed_events += 1;
        Ok(())
    }

    fn checkpoint(
        &mut self,
        text: &str,
        origin_line: &str,
        seq: u64,
        own: &[String; 2],
        at: &At<'_>,
    ) -> Result<(), Problem> {
        let note = SignedNote::parse(text).map_err(|e| Problem::CheckpointMalformed(e.0))?;
        let cp =
            Checkpoint::parse_body(&note.body).map_err(|e| Problem::CheckpointMalformed(e.0))?;
        if cp.origin != origin_line {
            return Err(Problem::CheckpointMismatch("origin"));
        }
        if cp.size != seq {
            return Err(Problem::CheckpointMismatch("tree size"));
        }
        if cp.root != self.tree.root() {
            return Err(Problem::CheckpointMismatch("root hash"));
        }
        if cp.extensions.as_slice() != own.as_slice() {
            return Err(Problem::CheckpointMismatch(
                "time or id of the checkpoint record",
            ));
        }
        // Every signature line must be by a known key and verify (nothing in the line is left
        // unchecked), and the key in charge must be among them.
        let mut signers = Vec::new();
        for sig in &note.signatures {
            let key = self
                .known_keys
                .iter()
                .find(|k| k.name() == sig.name && k.id() == sig.id)
                .ok_or(Problem::UntrustedKey)?;
            let signature: [u8; 64] = sig
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| Problem::BadSignature)?;
            signers.push((key.clone(), signature));
        }
        let in_charge = match &self.current_key {
            Some(k) => signers.iter().find(|(s, _)| s == k).map(|(s, _)| s.clone()),
            None => signers.first().map(|(s, _)| s.clone()),
        };
        let Some(key) = in_charge else {
            return Err(Problem::UntrustedKey);
        };
        // The signatures the writer makes, in its order: the key in charge; after a key change,
        // then the retired key. Any other order or signer would let the last line, which no
        // later record links, be rewritten (its signature lines swapped) and still verify. The
        // key in charge alone is the writer's too after a key change whose own checkpoint a crash
        // cut (the restarted writer has only the new key); so a retired key's line may be missing,
        // as a signed note's cosignature may be: the key change record carries its endorsement.
        let keys: Vec<&VerifierKey> = signers.iter().map(|(k, _)| k).collect();
        let expected = match self.retiring.take() {
            Some(old) => keys == [&key, &old] || keys == [&key],
            None => keys == [&key],
        };
        if !expected {
            return Err(Problem::CheckpointMalformed(
                "the signatures are not the writer's (the key in charge, then a retired one)",
            ));
        }
        for (signer, signature) in signers {
            self.pending.push(PendingSig {
                ordinal: self.ordinal,
                location: Some(at.location()),
                problem: Problem::BadSignature,
                message: note.body.clone().into_bytes(),
                signature,
                key: signer,
            });
        }
        self.current_key = Some(key);
        self.report.checkpoints += 1;
        self.report.last_checkpoint = Some(seq);
        self.report.covered = seq;
        self.report.checkpoint_note = Some(text.to_owned());
        Ok(())
    }

    /// Batch-verifies all signatures; on failure finds the first bad one.
    /// Checks the signatures gathered since the last call, and forgets them.
    fn check_signatures(&mut self) -> Option<(u64, Failure)> {
        if self.pending.is_empty() {
            return None;
        }
        let pending = std::mem::take(&mut self.pending);
        let messages: Vec<&[u8]> = pending.iter().map(|p| p.message.as_slice()).collect();
        let signatures: Vec<ed25519_dalek::Signature> = pending
            .iter()
            .map(|p| ed25519_dalek::Signature::from_bytes(&p.signature))
            .collect();
        let keys: Vec<ed25519_dalek::VerifyingKey> =
            pending.iter().map(|p| *p.key.dalek()).collect();
        // S below the group order is checked here too (see `crate::ed25519`); a signature
        // failing it is found by the one-by-one pass below.
        let canonical = pending
            .iter()
            .all(|p| crate::ed25519::signature_s_below_order(&p.signature));
        if canonical && ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
            return None;
        }
        pending
            .iter()
            .find(|p| !p.key.verify(&p.message, &p.signature))
            .map(|p| (p.ordinal, (p.location.clone(), p.problem.clone())))
            .or(Some((0, (None, Problem::BadSignature))))
    }
}

/// Bytes of complete lines hashed and parsed at a time, by one thread.
const WORK_BYTES: usize = 128 * 1024;

/// Pieces prepared ahead of the checks, per thread.
const AHEAD: usize = 2;

/// Cuts `body` (complete lines) into pieces of about [`WORK_BYTES`], each complete lines.
fn split_work(body: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::with_capacity(body.len() / WORK_BYTES + 1);
    let mut rest = body;
    while !rest.is_empty() {
        let cut = rest.get(WORK_BYTES..).map_or(rest.len(), |tail| {
            memchr::memchr(b'\n', tail).map_or(rest.len(), |p| WORK_BYTES + p + 1)
        });
        let (lines, tail) = rest.split_at(cut);
        out.push(lines);
        rest = tail;
    }
    out
}

/// A line hashed and parsed, with the checks that need no other record done.
struct Prepared<'a> {
    leaf: Hash,
    /// The `prev` hash decoded.
    prev: Option<Hash>,
    /// The body matches the kind, and the time has the writer's format.
    shape_ok: bool,
    parsed: Result<StoredRecord<'a>, String>,
}

/// Hashes and parses the lines of a piece (each ends with a newline).
fn prepare(lines: &[u8]) -> Vec<Prepared<'_>> {
    let mut out = Vec::with_capacity(lines.len() / 512 + 1);
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', lines) {
        let line = lines.get(start..end).unwrap_or_default();
        start = end + 1;
        let parsed = scan::parse(line).map_or_else(|| parse_canonical(line), Ok);
        let (prev, shape_ok) = parsed.as_ref().map_or((None, false), |r| {
            (
                parse_prev(&r.prev),
                r.body_matches_kind() && is_record_time(&r.time),
            )
        });
        out.push(Prepared {
            leaf: leaf_hash(line),
            prev,
            shape_ok,
            parsed,
        });
    }
    out
}

/// Parses a line the writer's shape did not match, and checks that it is canonical JSON: the
/// stored bytes are the hashed bytes, so another text of the same record (spaces, key order,
/// escapes) is refused. Inside the log a changed text breaks the next record's link anyway; the
/// log's last line (its final checkpoint) has no next record.
fn parse_canonical(line: &[u8]) -> Result<StoredRecord<'_>, String> {
    // The parser's messages quote the line (an unknown field's name): shown escaped.
    let message = |e: &dyn std::fmt::Display| printable(&e.to_string()).into_owned();
    let record: StoredRecord<'_> = serde_json::from_slice(line).map_err(|e| message(&e))?;
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| message(&e))?;
    let mut canonical = Vec::with_capacity(line.len());
    to_canonical(&value, &mut canonical).map_err(|e| message(&e))?;
    if canonical != line {
        return Err("the record is not in canonical form".to_owned());
    }
    Ok(record)
}

/// Calls `consume(prepared)` for every piece of `work`, in order, while other threads
/// prepare the pieces ahead (at most [`AHEAD`] each); stops at the first error.
fn prepared_in_order<'a, E>(
    work: &[&'a [u8]],
    mut consume: impl FnMut(Vec<Prepared<'a>>) -> Result<(), E>,
) -> Result<(), E> {
    let threads = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(work.len());
    if threads < 2 {
        for w in work {
            consume(prepare(w))?;
        }
        return Ok(());
    }
    std::thread::scope(|scope| {
        let mut receivers = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD);
            handles.push(scope.spawn(move || {
                for w in work.iter().skip(t).step_by(threads) {
                    // The checks stopped: nobody waits for more.
                    if tx.send(prepare(w)).is_err() {
                        break;
                    }
                }
            }));
            receivers.push(rx);
        }
        let mut result = Ok(());
        for (k, w) in work.iter().enumerate() {
            // A thread that panicked: prepare its pieces here.
            let prepared = receivers
                .get(k % threads)
                .and_then(|rx| rx.recv().ok())
                .unwrap_or_else(|| prepare(w));
            result = consume(prepared);
            if result.is_err() {
                break;
            }
        }
        drop(receivers);
        for handle in handles {
            let _ = handle.join();
        }
        result
    })
}

/// Whether `time` has the shape `YYYY-MM-DDTHH:MM:SS.ffffffZ` the writer produces.
fn is_record_time(time: &str) -> bool {
    let b = time.as_bytes();
    b.len() == 27
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            26 => c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Whether `name` is exactly the writer's name for a segment starting at `seq`.
fn segment_name_matches(name: &str, seq: u64) -> bool {
    name == segment_name(seq)
}

/// A log whose oldest records were retired holds no checkpoint after them.
pub(crate) const NO_CHECKPOINT_AFTER_RETIRED: &str =
    "no checkpoint left signs the tree retired.json notes (a retirement leaves one after it)";

/// The error of a log directory whose `retired.json` is unusable.
pub(crate) fn retired_corrupt(reason: &'static str) -> AuditError {
    AuditError::Corrupt {
        segment: RETIRED_FILE.to_owned(),
        line: 0,
        reason,
    }
}

/// The error of a segment [`read_segment`] refused or could not read.
pub(crate) fn segment_error(e: &Unreadable) -> AuditError {
    match e {
        Unreadable::NotAFile => AuditError::Io {
            context: "a segment is not a regular file",
            kind: std::io::ErrorKind::InvalidInput,
        },
        Unreadable::Io(e) => AuditError::Io {
            context: "cannot read a segment",
            kind: e.kind(),
        },
    }
}

/// The leaf hashes of every record in `dir`, in order: the input for
/// [`inclusion_proof`](super::merkle::inclusion_proof) and
/// [`consistency_proof`](super::merkle::consistency_proof). Verify the log first.
///
/// # Errors
///
/// [`AuditError::Io`] when a segment cannot be read; [`AuditError::Unavailable`] when the log's
/// oldest records were retired ([`retire`](super::retire)): [`log_leaves`] gives the proofs of
/// the records left.
pub fn leaf_hashes(dir: &Path) -> Result<Vec<Hash>, AuditError> {
    match read_leaves(dir)? {
        (None, leaves) => Ok(leaves),
        (Some(_), _) => Err(AuditError::Unavailable(
            "the log's oldest records were retired: use log_leaves for the proofs of the records \
             left",
        )),
    }
}

/// The leaf hashes of the records in `dir`, after the tree over the records retired from it
/// ([`retire`](super::retire)), if any: the inclusion proof of every record left, and
/// consistency proofs from any size not below the retired ones
/// ([`LogLeaves`](super::merkle::LogLeaves)). Verify the log first.
///
/// # Errors
///
/// [`AuditError::Io`] when a segment cannot be read; [`AuditError::Corrupt`] when `retired.json`
/// is malformed.
pub fn log_leaves(dir: &Path) -> Result<LogLeaves, AuditError> {
    let (head, leaves) = read_leaves(dir)?;
    Ok(LogLeaves::after(
        head.map_or_else(MerkleTree::new, |h| h.tree),
        leaves,
    ))
}

/// The signed note of the checkpoint that signs the tree of the first `size` records of the log
/// in `dir`: that of the checkpoint record with sequence number `size` (a checkpoint signs the
/// records before it). `None` when that record is not a checkpoint, is not in the log yet, or
/// was retired ([`retire`](super::retire)). With [`LogLeaves::first`], the proofs against an
/// earlier checkpoint than the last (one a client holds). Verify the log first: the note is
/// returned as stored.
///
/// # Errors
///
/// [`AuditError::Io`] when a segment cannot be read; [`AuditError::Corrupt`] when the record is
/// not one, or `retired.json` is malformed.
pub fn checkpoint_note(dir: &Path, size: u64) -> Result<Option<String>, AuditError> {
    beside_retirements(dir, || checkpoint_note_once(dir, size))
}

/// One read of [`checkpoint_note`].
fn checkpoint_note_once(dir: &Path, size: u64) -> Result<Option<String>, AuditError> {
    let segments = segment_files(dir)?;
    let (start, _) = log_start(dir, &segments).map_err(retired_corrupt)?;
    let segments = segments.get(start..).unwrap_or_default();
    // The last segment starting at or before `size` holds it, if any does.
    let Some((first, name, path)) = segments.iter().rev().find_map(|(name, path)| {
        super::retire::first_seq(name)
            .filter(|&first| first <= size)
            .map(|first| (first, name, path))
    }) else {
        return Ok(None);
    };
    let data = read_segment(path).map_err(|e| segment_error(&e))?;
    let Some(line) = usize::try_from(size - first)
        .ok()
        .and_then(|i| data.split_inclusive(|&b| b == b'\n').nth(i))
        .and_then(|line| line.strip_suffix(b"\n"))
    else {
        return Ok(None);
    };
    let line_no = size - first + 1;
    let rec: StoredRecord<'_> = serde_json::from_slice(line).map_err(|_| AuditError::Corrupt {
        segment: name.clone(),
        line: line_no,
        reason: "not a record",
    })?;
    if rec.seq != size {
        return Err(AuditError::Corrupt {
            segment: name.clone(),
            line: line_no,
            reason: "sequence number out of order",
        });
    }
    Ok(rec.checkpoint.map(std::borrow::Cow::into_owned))
}

/// The retired head of the log in `dir`, if any, and the leaf hashes of the records after it.
fn read_leaves(dir: &Path) -> Result<(Option<RetiredHead>, Vec<Hash>), AuditError> {
    beside_retirements(dir, || read_leaves_once(dir))
}

/// One read of [`read_leaves`].
fn read_leaves_once(dir: &Path) -> Result<(Option<RetiredHead>, Vec<Hash>), AuditError> {
    let segments = segment_files(dir)?;
    let (start, head) = log_start(dir, &segments).map_err(retired_corrupt)?;
    let mut out = Vec::new();
    for (_, path) in segments.iter().skip(start) {
        let data = read_segment(path).map_err(|e| segment_error(&e))?;
        for line in data.split_inclusive(|&b| b == b'\n') {
            if let Some(line) = line.strip_suffix(b"\n") {
                out.push(leaf_hash(line));
            }
        }
    }
    Ok((head, out))
}

/// Counts of authorization decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecisionCounts {
    /// Requests allowed.
    pub allowed: u64,
    /// Requests denied.
    pub denied: u64,
}

/// `text` read from a log (or quoted from one) made safe to show on a terminal: control
/// characters (ESC, CR, LF, NUL, DEL, C1), the invisible characters that reorder or hide text
/// (bidirectional overrides and isolates, zero-width characters) and the backslash are shown as
/// escapes (`\u{1b}`, `\\`), so a principal id or a tampered record cannot move the cursor, rewrite
/// what a verifier printed before it, or pass for another name.
///
/// ```
/// use aaa_core::audit::printable;
///
/// assert_eq!(printable("alice"), "alice");
/// assert_eq!(printable("bob\u{1b}[2K\rok"), "bob\\u{1b}[2K\\u{d}ok");
/// assert_eq!(printable("admin\u{202e}nimda"), "admin\\u{202e}nimda");
/// ```
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    fn hidden(c: char) -> bool {
        c.is_control()
            || matches!(c, '\\' | '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}' | '\u{feff}')
    }
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if hidden(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Per-principal and per-route request counts (accounting), from authorization events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// By principal: its id and, in parentheses, the issuer that vouched for it (`alice
    /// (https://idp.example)`; one id from two issuers is two principals), `-` for anonymous.
    /// Ids are as recorded: show them with [`printable`].
    pub by_principal: BTreeMap<String, DecisionCounts>,
    /// By route template (`-` when unknown), as recorded: show them with [`printable`].
    pub by_route: BTreeMap<String, DecisionCounts>,
    /// By the service that relayed the request (`request.relayed_by`), for relayed requests
    /// only, as recorded: show them with [`printable`].
    pub by_relay: BTreeMap<String, DecisionCounts>,
    /// Decisions on requests that carried a credential ignored by design
    /// (`request.ignored_credential`: a forwarded identity from an untrusted peer, a forgery
    /// attempt or a proxy missing from the trusted list), by its code.
    pub ignored_credentials: BTreeMap<String, u64>,
    /// Events lost, as gap records count them.
    pub dropped: u64,
    /// Records retired from the log directory to an archive before its first record
    /// ([`retire`](super::retire)): not counted here ([`summarize_dirs`] counts them with the
    /// archives). 0 when the log starts at record 0.
    pub retired: u64,
}

/// Reads the log in `dir` and counts authorization decisions per principal and per route. It does
/// not verify the log: run a [`Verifier`] first. Of a log whose oldest records were retired, it
/// counts the records left ([`Summary::retired`] says how many are not).
///
/// # Errors
///
/// [`AuditError::Io`] when a segment cannot be read; [`AuditError::Corrupt`] for a line that is not
/// a record.
pub fn summarize(dir: &Path) -> Result<Summary, AuditError> {
    summarize_dirs(&[dir])
}

/// [`summarize`] of a log kept in several directories by retirements: the archives its oldest
/// records were moved to, oldest first, then the log directory, as [`Verifier::verify_dirs`]
/// reads them (an archive's copies of segments still in the log directory are counted once).
/// It does not check that they make one log: verify them first.
///
/// # Errors
///
/// As [`summarize`]; [`AuditError::Corrupt`] naming a directory that holds no segment, or none
/// given.
pub fn summarize_dirs(dirs: &[&Path]) -> Result<Summary, AuditError> {
    let Some(live) = dirs.last() else {
        return Err(retired_corrupt("no log directory given"));
    };
    beside_retirements(live, || summarize_once(dirs))
}

/// One read of [`summarize_dirs`].
fn summarize_once(dirs: &[&Path]) -> Result<Summary, AuditError> {
    let mut summary = Summary::default();
    let (head, segments) = log_segments(dirs).map_err(|(location, problem)| match problem {
        Problem::Io(kind) => AuditError::Io {
            context: "cannot list a log directory",
            kind,
        },
        Problem::RetiredNote(reason) => AuditError::Corrupt {
            segment: location.map_or_else(|| RETIRED_FILE.to_owned(), |l| l.segment),
            line: 0,
            reason,
        },
        _ => AuditError::Unavailable("cannot list the log"),
    })?;
    summary.retired = head.as_ref().map_or(0, RetiredHead::size);
    for (name, path, _) in segments {
        let data = read_segment(&path).map_err(|e| segment_error(&e))?;
        for (i, line) in data.split_inclusive(|&b| b == b'\n').enumerate() {
            let Some(line) = line.strip_suffix(b"\n") else {
                break;
            };
            let rec: ReadRecord =
                serde_json::from_slice(line).map_err(|_| AuditError::Corrupt {
                    segment: name.clone(),
                    line: i as u64 + 1,
                    reason: "not a record",
                })?;
            summary.dropped += rec.gap.map_or(0, |g| g.dropped);
            let Some(event) = rec.event else { continue };
            let EventKind::Authorization { decision, .. } = event.kind else {
                continue;
            };
            let principal = event
                .actor
                .map_or_else(|| "-".to_owned(), |a| format!("{} ({})", a.id, a.issuer));
            let route = event
                .target
                .and_then(|t| t.route.clone())
                .unwrap_or_else(|| "-".to_owned());
            let request = event.request.as_deref();
            if let Some(code) = request.and_then(|r| r.ignored_credential.clone()) {
                *summary.ignored_credentials.entry(code).or_default() += 1;
            }
            let relay = request
                .and_then(|r| r.relayed_by.clone())
                .map(|relay| summary.by_relay.entry(relay).or_default());
            for counts in [
                Some(summary.by_principal.entry(principal).or_default()),
                Some(summary.by_route.entry(route).or_default()),
                relay,
            ]
            .into_iter()
            .flatten()
            {
                match decision {
                    Decision::Allow => counts.allowed += 1,
                    Decision::Deny => counts.denied += 1,
                }
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prev_is_exactly_64_lowercase_hex_digits() {
        let hash: Hash = std::array::from_fn(|i| (i * 37) as u8);
        let text = hex(&hash);
        assert_eq!(parse_prev(&text), Some(hash));
        assert_eq!(parse_prev(GENESIS_PREV), Some([0; 32]));
        for bad in [
            text.to_uppercase(),
            text[..63].to_owned(),
            format!("{text}0"),
            format!("+{}", &text[1..]),
            format!("{}g", &text[..63]),
            format!("{} ", &text[..63]),
            format!("é{}", &text[2..]),
        ] {
            assert_eq!(parse_prev(&bad), None, "{bad}");
        }
    }

    /// Pieces come back in order, every line once; a consumer error stops the threads (no
    /// deadlock) and is returned.
    #[test]
    fn pieces_are_prepared_ahead_and_consumed_in_order() {
        let line = |i: usize| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 700));
        let data: Vec<u8> = (1..=3700).flat_map(|i| line(i).into_bytes()).collect();
        let work = split_work(&data);
        assert!(work.len() > 8, "several pieces per large segment");
        assert!(split_work(b"").is_empty());
        let mut seen = Vec::new();
        let result: Result<(), ()> = prepared_in_order(&work, |prepared| {
            seen.extend(prepared.iter().map(|p| p.leaf));
            Ok(())
        });
        assert!(result.is_ok());
        let expected: Vec<Hash> = (1..=3700)
            .map(|i| leaf_hash(line(i).trim_end_matches('\n').as_bytes()))
            .collect();
        assert_eq!(seen, expected);

        for stop_at in [0, 1, work.len() / 2, work.len() - 1] {
            let mut calls = 0;
            let result = prepared_in_order(&work, |_| {
                calls += 1;
                if calls > stop_at { Err(calls) } else { Ok(()) }
            });
            assert_eq!(result, Err(stop_at + 1));
        }
    }
}
