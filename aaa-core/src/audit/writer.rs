//! The file-backed audit log writer: one sequencer thread, a bounded queue, group commit.

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering, fence},
    },
    thread::JoinHandle,
    time::Duration,
};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TryRecvError, TrySendError};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::{
    AuditError, AuditEvent, AuditReceipt, AuditSink, encode_event,
    merkle::{Hash, MerkleTree, leaf_hash},
    note::{Checkpoint, SignedNote, SigningKey},
    policy::{Durability, DurabilityPolicy, RecordingPolicy},
    record::{
        Body, Envelope, GENESIS_PREV, GapInfo, KeyChangeInfo, LogOrigin, RecordBody, RecoveryInfo,
        StoredRecord, encode_record, hex, key_change_statement,
    },
    retire::{beside_retirements, log_start},
    verify::retired_corrupt,
    witness::Witness,
};
use crate::{BoxFuture, Clock, SystemClock, Timestamp};

/// File name prefix and suffix of segment files: `audit-<first seq, 20 digits>.jsonl`.
pub(crate) const SEGMENT_PREFIX: &str = "audit-";
pub(crate) const SEGMENT_SUFFIX: &str = ".jsonl";

/// File name prefix of the side files that keep a torn tail's bytes from the moment it is cut
/// until its recovery record is durable: `torn-<offset, 20 digits>-<16 hex digits of its
/// SHA-256>-<segment>`. A start that fails or is killed in between leaves the file, and the next
/// start records the cut from it.
const TORN_PREFIX: &str = "torn-";

/// The file where the writer notes its last durable checkpoint, so that a restart reads the log
/// from there instead of from its first record (see [`Resume`]).
const RESUME_FILE: &str = "resume.json";

/// Where a restart may resume: the last durable checkpoint, and the tree before it. Only a hint:
/// written without `fsync` after the checkpoint is durable, and trusted only once the
/// checkpoint's line is found where it says, signed by the writer's key, with a root equal to
/// that of the tree it gives. Anything else (missing, stale, forged) and the start reads the whole
/// log, as without it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Resume {
    /// The segment holding the checkpoint's line.
    segment: String,
    /// The offset of the checkpoint's line in the segment, and just past its newline.
    start: u64,
    end: u64,
    /// The tree before the checkpoint record: its size (the checkpoint's) and frontier (hex,
    /// largest subtree first).
    size: u64,
    frontier: Vec<String>,
    /// The verifier key in charge when the checkpoint was written.
    key: String,
}

/// The state a restart takes from a [`Resume`] it has checked.
struct ResumePoint {
    /// The index of the segment to continue reading, and where in it.
    index: usize,
    offset: u64,
    tree: MerkleTree,
    prev: Hash,
    note: String,
    /// The anchor's root, when the anchor is the checkpoint itself.
    anchor_root: Option<Hash>,
}

/// Notes `resume` for the next start: written aside, then renamed over the last one.
fn write_resume(dir: &Path, resume: &Resume) {
    let tmp = dir.join(format!("{RESUME_FILE}.tmp"));
    let written = serde_json::to_vec(resume)
        .map_err(std::io::Error::other)
        .and_then(|json| fs::write(&tmp, json))
        .and_then(|()| fs::rename(&tmp, dir.join(RESUME_FILE)));
    if let Err(e) = written {
        // The next start reads the whole log.
        tracing::debug!(target: "aaa::audit", error = %e, "the resume point was not written");
    }
}

/// Room reserved for one encoded event: a request's events take 400 to 700 bytes.
const EVENT_CAPACITY: usize = 768;

/// Event buffers kept for reuse: about two batches' worth at 100 000 events a second.
const SPARE_BUFFERS: usize = 512;

/// Buffers that grew beyond this (an unusually large event) are freed, not kept.
const MAX_SPARE_CAPACITY: usize = 4096;

/// Settings of an [`AuditWriter`]. Build with [`AuditWriterConfig::new`], then adjust fields.
#[derive(Debug, Clone)]
pub struct AuditWriterConfig {
    /// The directory holding the segment files.
    pub dir: PathBuf,
    /// Which service and instance write this log (recorded in every record; the checkpoint
    /// origin line is `<service>/<instance>`).
    pub origin: LogOrigin,
    /// A checkpoint is appended after this many records. Defaults to 1024: one Ed25519
    /// signature (about 14 µs) per 1024 records costs well under 1% of the append path.
    pub checkpoint_every: u64,
    /// A checkpoint is appended once the oldest uncovered record is this old, so that every
    /// record is covered by a signature within about this time. Defaults to 1 s: it bounds what
    /// an attacker who takes over the host can rewrite unnoticed, at one signature per second
    /// on an idle log.
    pub checkpoint_interval: Duration,
    /// Capacity of the queue between requests and the sequencer. Defaults to 8192.
    ///
    /// The queue absorbs the sequencer's pauses: at R events a second it holds capacity / R
    /// seconds (8192 is about 90 ms at 90 000 events a second, a request making two). While the
    /// sequencer waits for a slow `fdatasync` (some shared disks take hundreds of milliseconds
    /// now and then), a full queue makes `block` events wait for room up to their deadline and
    /// then fail (the guard answers 503), and `best-effort` events be dropped and counted in a
    /// gap record. Size it for the disk's slowest sync at the peak rate.
    pub queue_capacity: usize,
    /// Most commands written per batch (per `fdatasync`). Defaults to 1024.
    pub max_batch: usize,
    /// Group commit for events that wait for the disk (strict events, [`flush`](AuditWriter::flush)):
    /// after the first one arrives, the sequencer waits for more, in steps of a fifth of this,
    /// for as long as more keep arriving and at most this long in all, so that they share one
    /// `fdatasync`. A strict event waits up to this much longer. Defaults to 500 µs; zero writes
    /// at once.
    pub group_commit_delay: Duration,
    /// How long events that nobody waits for (`block` and `best-effort`) may stay queued: while
    /// they keep arriving, the sequencer wakes once per this interval and writes what has
    /// accumulated, instead of being woken by each event; once the queue is half full it is woken
    /// at once. They are handed to the operating system (and so survive a crash of the process)
    /// within about this time, and made durable (`fdatasync`) with the next checkpoint or strict
    /// event, so within [`checkpoint_interval`](Self::checkpoint_interval). Defaults to 2 ms:
    /// 500 wake-ups a second on a busy service instead of one per event.
    pub write_delay: Duration,
    /// A new segment file is started once the current one reaches this size. Defaults to 64 MiB.
    pub segment_max_bytes: u64,
    /// How long a strict event waits for room in a full queue before failing. Defaults to 1 s.
    pub strict_enqueue_timeout: Duration,
    /// The durability mode of each event kind. See [`DurabilityPolicy`] for the defaults.
    pub durability: DurabilityPolicy,
    /// What is recorded. Defaults to everything, with request attributes.
    pub recording: RecordingPolicy,
    /// The clock stamping records. Defaults to [`SystemClock`].
    pub clock: Arc<dyn Clock>,
    /// Where checkpoints are anchored. Defaults to none.
    pub witness: Option<Arc<dyn Witness>>,
    /// Which events also carry their own Ed25519 signature (`event_sig`), verifiable at once
    /// rather than at the next checkpoint. Costs one signature (about 14 µs) per selected event
    /// on the sequencer. Defaults to none (`|_| false`); for example
    /// `|e| matches!(e.kind, EventKind::IdentityChange { .. })`.
    pub sign_events: fn(&AuditEvent) -> bool,
}

impl AuditWriterConfig {
    /// Defaults for a log in `dir`, written by `instance` of `service`.
    pub fn new(
        dir: impl Into<PathBuf>,
        service: impl Into<String>,
        instance: impl Into<String>,
    ) -> Self {
        AuditWriterConfig {
            dir: dir.into(),
            origin: LogOrigin {
                service: service.into(),
                instance: instance.into(),
            },
            checkpoint_every: 1024,
            checkpoint_interval: Duration::from_secs(1),
            queue_capacity: 8192,
            max_batch: 1024,
            group_commit_delay: Duration::from_micros(500),
            write_delay: Duration::from_millis(2),
            segment_max_bytes: 64 << 20,
            strict_enqueue_timeout: Duration::from_secs(1),
            durability: DurabilityPolicy::default(),
            recording: RecordingPolicy::default(),
            clock: Arc::new(SystemClock),
            witness: None,
            sign_events: |_| false,
        }
    }
}

enum Command {
    /// An event, encoded by the caller (see [`encode_event`]): the sequencer, the log's one
    /// serial stage, only frames, hashes and writes it.
    Event {
        json: Vec<u8>,
        sign: bool,
        ack: Option<oneshot::Sender<Result<AuditReceipt, AuditError>>>,
    },
    Flush {
        checkpoint: bool,
        ack: oneshot::Sender<Result<(), AuditError>>,
    },
    RotateKey {
        key: Box<SigningKey>,
        ack: oneshot::Sender<Result<(), AuditError>>,
    },
}

#[derive(Debug)]
struct Shared {
    origin_line: String,
    dropped: AtomicU64,
    recording: RecordingPolicy,
    durability: DurabilityPolicy,
    strict_enqueue_timeout: Duration,
    /// Set by the sequencer while it sleeps with nothing queued: the next event wakes it.
    idle: AtomicBool,
    /// Queue length from which any event wakes the sequencer.
    wake_at: usize,
    sign_events: fn(&AuditEvent) -> bool,
    /// Event buffers the sequencer has written out, for callers to encode the next events
    /// into: no allocation per event, and no buffer freed by a thread other than its own.
    spare: (Sender<Vec<u8>>, Receiver<Vec<u8>>),
}

/// A tamper-evident audit log in a directory of segment files, written off the request path.
///
/// Records are chained and made leaves of an RFC 6962 Merkle tree; signed checkpoints are
/// appended every [`checkpoint_every`](AuditWriterConfig::checkpoint_every) records or
/// [`checkpoint_interval`](AuditWriterConfig::checkpoint_interval). Each event is encoded as
/// canonical JSON by the thread that records it (a few hundred nanoseconds, into a reused
/// buffer), so that the one serial stage stays short. One dedicated thread (the sequencer) owns
/// the files: it frames, chains and hashes the encoded events, takes whatever is queued (up to
/// [`max_batch`](AuditWriterConfig::max_batch)), writes it with one `write` and, when somebody
/// waits for it or it holds a checkpoint, one `fdatasync`, then acknowledges the strict events
/// of the batch. Events nobody waits for do not wake it: it collects them every
/// [`write_delay`](AuditWriterConfig::write_delay). A plain thread rather than a
/// tokio task because `fdatasync` blocks, and because the log must work (and be flushed on
/// drop) whatever runtime the service uses.
///
/// Dropping the writer (or [`close`](AuditWriter::close)) writes what is queued and a final
/// checkpoint, and waits for the thread.
///
/// A service wires it up like this: a key generated on first start, a witness file, the guard.
///
/// ```
/// use std::sync::Arc;
/// use aaa_core::audit::{load_or_generate_key, AuditWriter, AuditWriterConfig, FileWitness, Verifier};
/// use aaa_core::{Guard, Outcome, http::RequestFacts};
/// # use aaa_core::{Action, Authorizer, Context, Evaluation, Identity, Resource, RouteBinding};
/// # #[derive(Debug)] struct Policy;
/// # impl Authorizer for Policy {
/// #     fn bind_route(&self, _: &RequestFacts) -> RouteBinding { RouteBinding::Public }
/// #     fn authorize(&self, _: &Identity, _: &Action, _: &Resource, _: &Context) -> Evaluation { Evaluation::not_permitted() }
/// # }
///
/// let state = tempfile::tempdir()?; // the service's state directory
/// let key = load_or_generate_key(&state.path().join("audit.key"), "orders/audit")?;
/// let trusted = key.verifier_key(); // publish `trusted.to_string()` for verifiers
/// let mut config = AuditWriterConfig::new(state.path().join("audit"), "orders", "pod-1");
/// config.witness = Some(Arc::new(FileWitness::new(state.path().join("audit.anchor"))));
/// let log = Arc::new(AuditWriter::open(config, key)?);
/// let guard = Guard::builder().policies(Policy).audit_arc(log.clone()).build()?;
///
/// # tokio::runtime::Builder::new_current_thread().build()?.block_on(async {
/// let facts = RequestFacts::new(http::Method::GET, "/health").with_matched_route("/health");
/// let Outcome::Proceed(admission) = guard.check(&facts).await else { panic!() };
/// // Authorization decisions are strict by default: the receipt says where it landed.
/// let receipt = admission.receipt.as_ref().expect("strict events have receipts");
/// assert_eq!((receipt.log.as_str(), receipt.seq), ("orders/pod-1", 0));
/// # });
/// drop(guard);
/// drop(log); // the last handle closes the log with a final checkpoint
/// let report = Verifier::new([trusted]).verify_dir(&state.path().join("audit"))?;
/// assert_eq!((report.events, report.uncovered), (1, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AuditWriter {
    tx: Option<Sender<Command>>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<Result<(), AuditError>>>,
}

impl fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditWriter")
            .field("origin", &self.shared.origin_line)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
struct Chain {
    tree: MerkleTree,
    seq: u64,
    prev: Hash,
    since_checkpoint: u64,
    uncovered_since: Option<Timestamp>,
}

impl Chain {
    /// Before any record.
    fn empty() -> Chain {
        Chain {
            tree: MerkleTree::new(),
            seq: 0,
            prev: [0; 32],
            since_checkpoint: 0,
            uncovered_since: None,
        }
    }
}

struct Sequencer {
    /// The log directory's lock, held as long as the sequencer lives (the writer's drop waits
    /// for it).
    _lock: fs::File,
    dir: PathBuf,
    origin: LogOrigin,
    origin_line: String,
    nonce: u64,
    key: SigningKey,
    clock: Arc<dyn Clock>,
    witness: Option<Arc<dyn Witness>>,
    shared: Arc<Shared>,
    file: Option<File>,
    /// The path of the open segment, checked before each batch is acknowledged.
    seg_path: PathBuf,
    seg_len: u64,
    need_new_segment: bool,
    chain: Chain,
    checkpoint_every: u64,
    checkpoint_interval: Duration,
    segment_max_bytes: u64,
    max_batch: usize,
    group_commit_delay: Duration,
    write_delay: Duration,
    /// Bytes written to the current segment since its last `fdatasync`.
    unsynced: bool,
    /// The writer was dropped: this batch is the last and ends with a checkpoint.
    closing: bool,
    /// Torn tails cut from the log and not yet in a durable recovery record, each with the
    /// side file that keeps its bytes until then (see [`TORN_PREFIX`]).
    pending_recovery: Vec<(RecoveryInfo, PathBuf)>,
    write_failed_drops: u64,
    /// Events nobody waited for that write failures lost since the last successful flush: the
    /// next [`AuditWriter::flush`] reports them ([`AuditError::Lost`]).
    lost_since_flush: u64,
    /// The key a key change of the current batch introduced: in charge from that record on,
    /// and [`Sequencer::key`] once the batch is durable.
    incoming: Option<Box<SigningKey>>,
    /// The resume point of the current batch's last checkpoint, noted once the batch is durable.
    resume: Option<Resume>,
    buf: Vec<u8>,
    /// Reused for each record's `prev` and `id`.
    prev_hex: String,
    id: String,
}

pub(crate) fn io_error(context: &'static str, e: &std::io::Error) -> AuditError {
    AuditError::Io {
        context,
        kind: e.kind(),
    }
}

/// Locks the log directory `dir` for one writer: an exclusive lock (`flock`) on the directory
/// itself on Unix, so that nothing is added to it (elsewhere, on a `LOCK` file in it). The
/// operating system releases it when the process ends, however it ends.
///
/// # Errors
///
/// [`AuditError::InUse`] when another writer holds it, [`AuditError::Io`] when it cannot be
/// opened or locked.
fn lock_dir(dir: &Path) -> Result<fs::File, AuditError> {
    #[cfg(unix)]
    let file = fs::File::open(dir);
    #[cfg(not(unix))]
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"));
    let file = file.map_err(|e| io_error("cannot open the log directory to lock it", &e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(AuditError::InUse),
        Err(fs::TryLockError::Error(e)) => Err(io_error("cannot lock the log directory", &e)),
    }
}

/// The segment files of `dir`, sorted by name (which is by first sequence number).
pub(crate) fn segment_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, AuditError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| io_error("cannot list the log directory", &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot list the log directory", &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(SEGMENT_PREFIX) && name.ends_with(SEGMENT_SUFFIX) {
            out.push((name, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Why a file of the log directory could not be read.
pub(crate) enum Unreadable {
    /// Not a regular file (a directory, a FIFO, a device): refused before it is opened.
    NotAFile,
    /// The file system's error.
    Io(std::io::Error),
}

/// Opens `path` for reading if it is a regular file (after symbolic links): a FIFO named like
/// a log file would block its reader forever, a device would never end.
pub(crate) fn open_regular(path: &Path) -> Result<File, Unreadable> {
    if !fs::metadata(path).map_err(Unreadable::Io)?.is_file() {
        return Err(Unreadable::NotAFile);
    }
    File::open(path).map_err(Unreadable::Io)
}

/// Reads a segment file, a regular file only ([`open_regular`]).
pub(crate) fn read_segment(path: &Path) -> Result<Vec<u8>, Unreadable> {
    read_segment_from(path, 0)
}

/// Reads a segment file from `offset` on (an `UnexpectedEof` error when it is shorter).
fn read_segment_from(path: &Path, offset: u64) -> Result<Vec<u8>, Unreadable> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = open_regular(path)?;
    if offset > 0 {
        if file.metadata().map_err(Unreadable::Io)?.len() < offset {
            return Err(Unreadable::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        file.seek(SeekFrom::Start(offset)).map_err(Unreadable::Io)?;
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data).map_err(Unreadable::Io)?;
    Ok(data)
}

/// The id of record `seq` of the run with `nonce`: `{nonce:016x}{seq:016x}`, appended to `out`.
fn push_record_id(nonce: u64, seq: u64, out: &mut String) {
    crate::identity::hex_to(&nonce.to_be_bytes(), out);
    crate::identity::hex_to(&seq.to_be_bytes(), out);
}

fn record_id(nonce: u64, seq: u64) -> String {
    let mut id = String::with_capacity(32);
    push_record_id(nonce, seq, &mut id);
    id
}

pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{SEGMENT_PREFIX}{first_seq:020}{SEGMENT_SUFFIX}")
}

pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Creates the log directory and any missing parents, and syncs each new directory's entry in
/// its parent: a new log survives a crash with its directory (segments are synced into it).
fn create_log_dir(dir: &Path) -> Result<(), AuditError> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .collect();
    fs::create_dir_all(dir).map_err(|e| io_error("cannot create the log directory", &e))?;
    for created in missing {
        sync_dir(parent_dir(created));
    }
    Ok(())
}

/// The side file name keeping a torn tail (see [`TORN_PREFIX`]).
fn torn_name(info: &RecoveryInfo) -> String {
    let digest = info.cut_sha256.get(..16).unwrap_or_default();
    format!("{TORN_PREFIX}{:020}-{digest}-{}", info.offset, info.segment)
}

/// Keeps `bytes`, the torn tail `info` describes, in a synced side file of `dir` before the
/// segment is cut: written under a temporary name, synced, renamed, and the directory synced.
fn keep_torn(dir: &Path, info: &RecoveryInfo, bytes: &[u8]) -> Result<PathBuf, AuditError> {
    let name = torn_name(info);
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let kept = File::create(&tmp)
        .and_then(|mut file| {
            file.write_all(bytes)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, &path));
    if kept.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    kept.map_err(|e| io_error("cannot keep the torn tail before cutting it", &e))?;
    sync_dir(dir);
    Ok(path)
}

/// The torn tails an earlier start cut but did not record (their side files), oldest offset
/// first. Temporary files of an interrupted [`keep_torn`] are removed: the segment was not cut
/// before the side file was complete, so the bytes are still there.
fn kept_torn(dir: &Path) -> Result<Vec<(RecoveryInfo, PathBuf)>, AuditError> {
    let mut out = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| io_error("cannot list the log directory", &e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("cannot list the log directory", &e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!(".{TORN_PREFIX}")) && name.ends_with(".tmp") {
            let _ = fs::remove_file(entry.path());
            continue;
        }
        let Some(rest) = name.strip_prefix(TORN_PREFIX) else {
            continue;
        };
        let mut parts = rest.splitn(3, '-');
        let (Some(offset), Some(_digest), Some(segment)) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let (Ok(offset), true) = (offset.parse::<u64>(), segment.starts_with(SEGMENT_PREFIX))
        else {
            tracing::warn!(target: "aaa::audit", file = %super::printable(&name), "ignoring a file that looks like a kept torn tail but is not named like one");
            continue;
        };
        let bytes =
            fs::read(entry.path()).map_err(|e| io_error("cannot read a kept torn tail", &e))?;
        out.push((
            RecoveryInfo {
                segment: segment.to_owned(),
                offset,
                cut_bytes: bytes.len() as u64,
                cut_sha256: hex(&Sha256::digest(&bytes)),
            },
            entry.path(),
        ));
    }
    out.sort_by(|a, b| (&a.0.segment, a.0.offset).cmp(&(&b.0.segment, b.0.offset)));
    Ok(out)
}

/// Whether `file`, opened at `path`, is still the file there: not removed, renamed or replaced
/// since. Events written to a segment that is no longer in the directory would be acknowledged
/// and lost.
#[cfg(unix)]
fn still_at(file: &File, path: &Path) -> Result<(), AuditError> {
    use std::os::unix::fs::MetadataExt;
    const GONE: AuditError = AuditError::Unavailable(
        "the current segment was removed, renamed or replaced: its records are no longer in the \
         log directory",
    );
    let open = file
        .metadata()
        .map_err(|e| io_error("cannot check the current segment", &e))?;
    let there = fs::metadata(path).map_err(|_| GONE)?;
    if open.nlink() == 0 || open.dev() != there.dev() || open.ino() != there.ino() {
        return Err(GONE);
    }
    Ok(())
}

/// Whether `file`, opened at `path`, is still the file there (known on Unix only; elsewhere the
/// open file keeps its name).
#[cfg(not(unix))]
fn still_at(_file: &File, _path: &Path) -> Result<(), AuditError> {
    Ok(())
}

impl AuditWriter {
    /// Opens (or creates) the log in `config.dir`, signing checkpoints with `key`.
    ///
    /// Opening reads every segment: checks the chain, rebuilds the Merkle frontier, cuts a torn
    /// tail (a last line without its newline, left by a crash) and records the cut in a recovery
    /// record, and compares the log with the witness's latest anchor. It then appends a
    /// checkpoint if records are not yet covered by one, and starts the sequencer thread.
    ///
    /// # Errors
    ///
    /// - [`AuditError::Rollback`] when the log is shorter than the latest anchored checkpoint;
    /// - [`AuditError::Diverged`] when it disagrees with that checkpoint;
    /// - [`AuditError::Corrupt`] when a complete record is damaged (only a torn tail is repaired);
    /// - [`AuditError::WrongKey`] when `key` is not the key in charge: the one the last key
    ///   change introduced or, without a key change, the one that signed the last checkpoint;
    /// - [`AuditError::Config`] for an invalid origin or one that differs from the log's;
    /// - [`AuditError::InUse`] when another writer has the directory open (each writer holds
    ///   an exclusive lock on it while it runs);
    /// - [`AuditError::Io`] when the files cannot be read or written.
    pub fn open(config: AuditWriterConfig, key: SigningKey) -> Result<AuditWriter, AuditError> {
        if !config.origin.is_valid() {
            return Err(AuditError::Config(
                "service and instance must be non-empty, without `/` or control characters",
            ));
        }
        if config.checkpoint_every == 0 || config.queue_capacity == 0 || config.max_batch == 0 {
            return Err(AuditError::Config(
                "checkpoint_every, queue_capacity and max_batch must be positive",
            ));
        }
        create_log_dir(&config.dir)?;
        let lock = lock_dir(&config.dir)?;
        let origin_line = config.origin.line();
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce).map_err(|_| AuditError::Unavailable("no randomness"))?;
        let shared = Arc::new(Shared {
            origin_line: origin_line.clone(),
            dropped: AtomicU64::new(0),
            recording: config.recording.clone(),
            durability: config.durability,
            strict_enqueue_timeout: config.strict_enqueue_timeout,
            idle: AtomicBool::new(false),
            wake_at: (config.queue_capacity / 2).max(1),
            sign_events: config.sign_events,
            spare: crossbeam_channel::bounded(SPARE_BUFFERS),
        });
        let mut seq = Sequencer {
            _lock: lock,
            dir: config.dir.clone(),
            origin: config.origin.clone(),
            origin_line,
            nonce: u64::from_be_bytes(nonce),
            key,
            clock: config.clock.clone(),
            witness: config.witness.clone(),
            shared: shared.clone(),
            file: None,
            seg_path: PathBuf::new(),
            seg_len: 0,
            need_new_segment: true,
            chain: Chain::empty(),
            checkpoint_every: config.checkpoint_every,
            checkpoint_interval: config.checkpoint_interval,
            segment_max_bytes: config.segment_max_bytes,
            max_batch: config.max_batch,
            group_commit_delay: config.group_commit_delay,
            write_delay: config.write_delay,
            unsynced: false,
            closing: false,
            pending_recovery: Vec::new(),
            write_failed_drops: 0,
            lost_since_flush: 0,
            incoming: None,
            resume: None,
            buf: Vec::with_capacity(1 << 16),
            prev_hex: String::with_capacity(64),
            id: String::with_capacity(32),
        };
        seq.scan()?;
        // Cover what the previous run left uncovered, and record any recovery, before anything new.
        if !seq.pending_recovery.is_empty() || seq.chain.since_checkpoint > 0 {
            seq.chain.uncovered_since = Some(Timestamp::from_unix_micros(i64::MIN));
        }
        seq.process(&mut Vec::new())?;
        let (tx, rx) = crossbeam_channel::bounded(config.queue_capacity);
        let thread = std::thread::Builder::new()
            .name("aaa-audit".into())
            .spawn(move || seq.run(&rx))
            .map_err(|e| io_error("cannot start the audit thread", &e))?;
        Ok(AuditWriter {
            tx: Some(tx),
            shared,
            thread: Some(thread),
        })
    }

    /// The log's origin line, `<service>/<instance>`.
    pub fn origin(&self) -> &str {
        &self.shared.origin_line
    }

    /// Events dropped (best effort) and not yet written as a gap record.
    pub fn pending_drops(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    fn sender(&self) -> Result<&Sender<Command>, AuditError> {
        self.tx
            .as_ref()
            .ok_or(AuditError::Unavailable("the audit writer is closed"))
    }

    /// Wakes the sequencer if it sleeps with nothing queued, if the queue is filling up, or if
    /// `urgent` (somebody waits for the disk).
    fn wake(&self, urgent: bool) {
        // Pairs with the fence in `Sequencer::run`: either it sees what was queued before it
        // sleeps, or this sees `idle` and wakes it.
        fence(Ordering::SeqCst);
        let wake = urgent
            || self.shared.idle.load(Ordering::Relaxed)
            || self
                .tx
                .as_ref()
                .is_some_and(|tx| tx.len() >= self.shared.wake_at);
        if let (true, Some(thread)) = (wake, &self.thread) {
            thread.thread().unpark();
        }
    }

    fn send(&self, cmd: Command, wait: Duration, urgent: bool) -> Result<(), AuditError> {
        const STOPPED: AuditError = AuditError::Unavailable("the audit writer stopped");
        let tx = self.sender()?;
        let sent = match tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Disconnected(_)) => Err(STOPPED),
            Err(TrySendError::Full(cmd)) => {
                self.wake(true);
                tx.send_timeout(cmd, wait).map_err(|e| match e {
                    SendTimeoutError::Timeout(_) => {
                        AuditError::Unavailable("the audit queue is full")
                    }
                    SendTimeoutError::Disconnected(_) => STOPPED,
                })
            }
        };
        if sent.is_ok() {
            self.wake(urgent);
        }
        sent
    }

    async fn control(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), AuditError>>) -> Command,
    ) -> Result<(), AuditError> {
        let (ack, rx) = oneshot::channel();
        self.send(make(ack), self.shared.strict_enqueue_timeout, true)?;
        rx.await
            .unwrap_or(Err(AuditError::Unavailable("the audit writer stopped")))
    }

    /// Waits until everything queued before this call is durable.
    ///
    /// # Errors
    ///
    /// - [`AuditError::Lost`] when write failures lost events nobody waited for (`block` and
    ///   `best-effort` events) since the last successful flush: the log now holds a gap record
    ///   counting them, and everything else queued before this call is durable;
    /// - another [`AuditError`] when the writer stopped or the write failed.
    pub async fn flush(&self) -> Result<(), AuditError> {
        self.control(|ack| Command::Flush {
            checkpoint: false,
            ack,
        })
        .await
    }

    /// Writes everything queued and a checkpoint covering it, now, and waits until durable.
    ///
    /// # Errors
    ///
    /// As [`flush`](Self::flush): [`AuditError::Lost`] when write failures lost events since the
    /// last successful flush (the checkpoint is written and covers their gap record).
    pub async fn checkpoint_now(&self) -> Result<(), AuditError> {
        self.control(|ack| Command::Flush {
            checkpoint: true,
            ack,
        })
        .await
    }

    /// Replaces the signing key: appends a key change record signed by the current key that
    /// introduces `key`, then a checkpoint signed by both. Records after the key change,
    /// signed events among them, are signed by `key`.
    ///
    /// Rotating to the key already in charge (same name and public key, e.g. a configuration
    /// reload) changes nothing and writes nothing.
    ///
    /// # Errors
    ///
    /// [`AuditError`] when the writer stopped or the write failed (the old key stays in use), or
    /// when another rotation is in the same batch ([`AuditError::Unavailable`]; ask again).
    pub async fn rotate_key(&self, key: SigningKey) -> Result<(), AuditError> {
        self.control(|ack| Command::RotateKey {
            key: Box::new(key),
            ack,
        })
        .await
    }

    /// Writes what is queued and a final checkpoint, and stops the sequencer.
    ///
    /// Dropping the writer does the same and logs what this returns as errors (under the
    /// `tracing` target `aaa::audit`).
    ///
    /// # Errors
    ///
    /// - [`AuditError::Lost`] when write failures lost events nobody waited for since the last
    ///   successful [`flush`](Self::flush) (recorded in the log as a gap when it could still be
    ///   written);
    /// - [`AuditError::Io`] when the final batch, its checkpoint or the gap record could not be
    ///   written.
    pub fn close(mut self) -> Result<(), AuditError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), AuditError> {
        self.tx = None;
        match self.thread.take() {
            Some(thread) => {
                thread.thread().unpark();
                thread
                    .join()
                    .unwrap_or(Err(AuditError::Unavailable("the audit thread panicked")))
            }
            None => Ok(()),
        }
    }
}

impl Drop for AuditWriter {
    fn drop(&mut self) {
        // Failures were logged by the sequencer.
        let _ = self.shutdown();
    }
}

impl AuditSink for AuditWriter {
    fn record<'a>(
        &'a self,
        event: AuditEvent,
    ) -> BoxFuture<'a, Result<Option<AuditReceipt>, AuditError>> {
        let Some(event) = self.shared.recording.apply(event) else {
            return Box::pin(crate::ReadyWith(|| Ok(None)));
        };
        let durability = self.shared.durability.for_kind(&event.kind);
        let sign = (self.shared.sign_events)(&event);
        // Encoded here, on the caller's thread: the sequencer stays a short serial stage, and
        // the event's parts are freed by the thread that allocated them.
        let mut json = self
            .shared
            .spare
            .1
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(EVENT_CAPACITY));
        if encode_event(&event, &mut json).is_err() {
            return Box::pin(std::future::ready(Err(AuditError::Unavailable(
                "the event cannot be encoded",
            ))));
        }
        drop(event);
        match durability {
            Durability::Strict => {
                let (ack, rx) = oneshot::channel();
                let sent = self.send(
                    Command::Event {
                        json,
                        sign,
                        ack: Some(ack),
                    },
                    self.shared.strict_enqueue_timeout,
                    true,
                );
                Box::pin(async move {
                    sent?;
                    rx.await
                        .unwrap_or(Err(AuditError::Unavailable("the audit writer stopped")))
                        .map(Some)
                })
            }
            Durability::Block(wait) => {
                let sent = self.send(
                    Command::Event {
                        json,
                        sign,
                        ack: None,
                    },
                    wait,
                    false,
                );
                match sent {
                    Ok(()) => Box::pin(crate::ReadyWith(|| Ok(None))),
                    Err(e) => Box::pin(std::future::ready(Err(e))),
                }
            }
            Durability::BestEffort => {
                let result = match self.sender() {
                    Err(e) => Err(e),
                    Ok(tx) => match tx.try_send(Command::Event {
                        json,
                        sign,
                        ack: None,
                    }) {
                        Ok(()) => {
                            self.wake(false);
                            Ok(None)
                        }
                        Err(TrySendError::Full(_)) => {
                            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                            Ok(None)
                        }
                        Err(TrySendError::Disconnected(_)) => {
                            Err(AuditError::Unavailable("the audit writer stopped"))
                        }
                    },
                };
                match result {
                    Ok(None) => Box::pin(crate::ReadyWith(|| Ok(None))),
                    other => Box::pin(std::future::ready(other)),
                }
            }
        }
    }
}

impl Command {
    /// Whether somebody waits for this command to be durable.
    fn waits(&self) -> bool {
        match self {
            Command::Event { ack, .. } => ack.is_some(),
            Command::Flush { .. } | Command::RotateKey { .. } => true,
        }
    }
}

enum Ack {
    Event(oneshot::Sender<Result<AuditReceipt, AuditError>>, u64, Hash),
    Done(oneshot::Sender<Result<(), AuditError>>),
    /// A flush: answered with [`AuditError::Lost`] when write failures lost events before it.
    Flush(oneshot::Sender<Result<(), AuditError>>),
}

impl Sequencer {
    /// Group commit: waits, in short steps and at most `group_commit_delay` in all, while more
    /// records keep arriving, so that they share one write and one `fdatasync`.
    fn linger(&self, rx: &Receiver<Command>) {
        if self.group_commit_delay.is_zero() {
            return;
        }
        let deadline = std::time::Instant::now() + self.group_commit_delay;
        let step = (self.group_commit_delay / 5).max(Duration::from_micros(20));
        let mut queued = rx.len();
        while queued < self.max_batch && std::time::Instant::now() < deadline {
            std::thread::sleep(step);
            let now = rx.len();
            if now == queued {
                break;
            }
            queued = now;
        }
    }

    /// Takes queued commands into `cmds`, up to `max_batch`; whether the queue is disconnected
    /// (the writer was dropped) and empty.
    fn drain(&self, rx: &Receiver<Command>, cmds: &mut Vec<Command>) -> bool {
        while cmds.len() < self.max_batch {
            match rx.try_recv() {
                Ok(cmd) => cmds.push(cmd),
                Err(TryRecvError::Empty) => return false,
                Err(TryRecvError::Disconnected) => return true,
            }
        }
        false
    }

    /// The final batch: writes what is queued and a checkpoint covering everything. Reports
    /// events that write failures lost since the last flush ([`AuditError::Lost`]), and logs
    /// an error when some of them could not even be recorded as a gap.
    fn finish(&mut self, cmds: &mut Vec<Command>) -> Result<(), AuditError> {
        self.closing = true;
        let mut outcome = self.process(cmds);
        if outcome.is_err() {
            // The failed batch's losses are counted; write them (in a new segment) as a gap
            // record, with the final checkpoint, so that nothing is lost without a record.
            outcome = self.process(&mut Vec::new());
        }
        let unrecorded = self.write_failed_drops + self.shared.dropped.load(Ordering::Relaxed);
        if let Err(e) = &outcome {
            tracing::error!(
                target: "aaa::audit",
                error = %e,
                unrecorded,
                "the audit log closed without its final checkpoint; events nobody waited for \
                 were lost and are recorded nowhere but here"
            );
        }
        match self.lost_since_flush {
            0 => outcome,
            events => Err(AuditError::Lost { events }),
        }
    }

    fn run(mut self, rx: &Receiver<Command>) -> Result<(), AuditError> {
        let tick = (self.checkpoint_interval / 4).max(Duration::from_millis(1));
        // Reused from batch to batch (commands are large: growing a new vector each time would
        // copy them again and again).
        let mut cmds = Vec::with_capacity(self.max_batch.min(1024));
        loop {
            let mut disconnected = self.drain(rx, &mut cmds);
            if cmds.is_empty() && !disconnected {
                // Nothing queued: sleep until the next event wakes us (see `AuditWriter::wake`)
                // or the tick, when a due checkpoint is written.
                self.shared.idle.store(true, Ordering::Relaxed);
                fence(Ordering::SeqCst);
                if rx.is_empty() {
                    std::thread::park_timeout(tick);
                }
                self.shared.idle.store(false, Ordering::Relaxed);
                disconnected = self.drain(rx, &mut cmds);
            }
            if cmds.iter().any(Command::waits) {
                self.linger(rx);
                disconnected |= self.drain(rx, &mut cmds);
            }
            if disconnected {
                return self.finish(&mut cmds);
            }
            let busy = !cmds.is_empty();
            // A failure is logged, and answered to those who wait, by `process`.
            let _ = self.process(&mut cmds);
            if busy {
                // Events are arriving: let the next ones gather for `write_delay` (producers do
                // not wake us meanwhile unless they wait for the disk or the queue fills up).
                std::thread::park_timeout(self.write_delay);
            }
        }
    }

    /// Reads the existing log (from the resume point, when it holds: see [`Resume`]), checks its
    /// chain, rebuilds the tree, cuts a torn tail.
    ///
    /// A retirement beside this start is read around ([`beside_retirements`]).
    fn scan(&mut self) -> Result<(), AuditError> {
        let dir = self.dir.clone();
        beside_retirements(&dir, || {
            self.chain = Chain::empty();
            self.scan_once()
        })
    }

    /// One read of the log for [`scan`](Self::scan).
    fn scan_once(&mut self) -> Result<(), AuditError> {
        let anchor = match &self.witness {
            Some(w) => match w.latest()? {
                Some(text) => {
                    let note = SignedNote::parse(&text)
                        .map_err(|_| AuditError::Unavailable("malformed witness anchor"))?;
                    let cp = Checkpoint::parse_body(&note.body)
                        .map_err(|_| AuditError::Unavailable("malformed witness anchor"))?;
                    if cp.origin != self.origin_line {
                        return Err(AuditError::Config("the witness anchor is for another log"));
                    }
                    Some(cp)
                }
                None => None,
            },
            None => None,
        };
        // Cuts an earlier start made but did not record come first.
        self.pending_recovery = kept_torn(&self.dir)?;
        let mut torn_tail = None;
        let segments = segment_files(&self.dir)?;
        let count = segments.len();
        // After records retired to an archive, the log starts from the tree they make.
        let (start, head) = log_start(&self.dir, &segments).map_err(retired_corrupt)?;
        let retired = head.is_some();
        if let Some(head) = head {
            if anchor.as_ref().is_some_and(|a| a.size < head.size()) {
                return Err(retired_corrupt(
                    "the witness anchor predates the records left after the retired ones: check \
                     it against the archive",
                ));
            }
            self.chain.seq = head.size();
            self.chain.tree = head.tree;
            self.chain.prev = head.prev;
        }
        let mut anchor_root = None;
        if anchor
            .as_ref()
            .is_some_and(|a| a.size == self.chain.tree.size())
        {
            anchor_root = Some(self.chain.tree.root());
        }
        let mut last_note: Option<String> = None;
        // The key a key change record put in charge, and whether a checkpoint followed it.
        let mut key_changed_to: Option<String> = None;
        let mut key_change_after_checkpoint = false;
        let mut last_path = None;
        // From the last durable checkpoint when the resume point holds: a restart then reads
        // what follows it, not the whole log (the verifier checks all of it).
        let resume = self.resume_from(&segments, anchor.as_ref());
        let (first, mut skip) = match resume {
            Some(point) => {
                self.chain.tree = point.tree;
                self.chain.prev = point.prev;
                self.chain.seq = self.chain.tree.size();
                last_note = Some(point.note);
                if point.anchor_root.is_some() {
                    anchor_root = point.anchor_root;
                }
                (point.index, point.offset)
            }
            None => (start, 0),
        };
        for (i, (name, path)) in segments.iter().enumerate().skip(first) {
            // The resume point's segment is read from just after its checkpoint: the records
            // before it are not needed, and their number is the segment name's distance to the
            // checkpoint's `seq`.
            let start = std::mem::take(&mut skip);
            let lines_before = match start {
                0 => 0,
                _ => self
                    .chain
                    .seq
                    .saturating_sub(super::retire::first_seq(name).unwrap_or(0)),
            };
            let data = read_segment_from(path, start).map_err(|e| match e {
                Unreadable::NotAFile => AuditError::Corrupt {
                    segment: name.clone(),
                    line: 0,
                    reason: "the segment is not a regular file",
                },
                Unreadable::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    AuditError::Corrupt {
                        segment: name.clone(),
                        line: 0,
                        reason: "the resume point is past the segment's end",
                    }
                }
                Unreadable::Io(e) => io_error("cannot read a segment", &e),
            })?;
            let is_last = i + 1 == count;
            let complete = data.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let (rest, torn) = data.split_at(complete);
            if !torn.is_empty() {
                if !is_last {
                    return Err(AuditError::Corrupt {
                        segment: name.clone(),
                        line: lines_before + memchr::memchr_iter(b'\n', rest).count() as u64 + 1,
                        reason: "unterminated record in a segment that is not the last",
                    });
                }
                let info = RecoveryInfo {
                    segment: name.clone(),
                    offset: start + complete as u64,
                    cut_bytes: torn.len() as u64,
                    cut_sha256: hex(&Sha256::digest(torn)),
                };
                torn_tail = Some((info, torn.to_vec()));
            }
            // A segment is named after its first record; an empty one (a crash right after it
            // was made) only as the last, for the next record.
            if start == 0
                && (*name != segment_name(self.chain.seq) || (rest.is_empty() && !is_last))
            {
                return Err(AuditError::Corrupt {
                    segment: name.clone(),
                    line: 1,
                    reason: "segment name does not match its first record",
                });
            }
            for (line_no, line) in rest.split_inclusive(|&b| b == b'\n').enumerate() {
                let line = line.strip_suffix(b"\n").unwrap_or(line);
                let corrupt = |reason| AuditError::Corrupt {
                    segment: name.clone(),
                    line: lines_before + line_no as u64 + 1,
                    reason,
                };
                let rec: StoredRecord<'_> =
                    serde_json::from_slice(line).map_err(|_| corrupt("not a record"))?;
                if rec.v != super::record::SCHEMA_VERSION {
                    return Err(corrupt("unknown schema version"));
                }
                if !rec.origin.is(&self.origin) {
                    return Err(AuditError::Config("the log belongs to another origin"));
                }
                if rec.seq != self.chain.seq {
                    return Err(corrupt("sequence number out of order"));
                }
                let want_prev = if rec.seq == 0 {
                    GENESIS_PREV.to_owned()
                } else {
                    hex(&self.chain.prev)
                };
                if rec.prev != want_prev {
                    return Err(corrupt("hash link broken"));
                }
                // The tree a checkpoint signs must be the one read: it is what the next
                // checkpoints extend (after retired records, the note's tree is checked here).
                if let Some(note) = &rec.checkpoint {
                    let signed = SignedNote::parse(note)
                        .ok()
                        .and_then(|n| Checkpoint::parse_body(&n.body).ok());
                    if signed.is_none_or(|cp| {
                        cp.size != self.chain.tree.size() || cp.root != self.chain.tree.root()
                    }) {
                        return Err(corrupt(
                            "the checkpoint does not match the records before it",
                        ));
                    }
                }
                let leaf = leaf_hash(line);
                self.chain.tree.push(leaf);
                self.chain.prev = leaf;
                self.chain.seq += 1;
                if let Some(change) = &rec.key_change {
                    key_changed_to = Some(change.new_key.clone());
                    key_change_after_checkpoint = true;
                }
                if let Some(note) = &rec.checkpoint {
                    last_note = Some(note.to_string());
                    key_change_after_checkpoint = false;
                    self.chain.since_checkpoint = 0;
                } else {
                    self.chain.since_checkpoint += 1;
                }
                if anchor
                    .as_ref()
                    .is_some_and(|a| a.size == self.chain.tree.size())
                {
                    anchor_root = Some(self.chain.tree.root());
                }
            }
            last_path = Some((name.clone(), path.clone(), start + complete as u64));
        }
        // The tree a retired head claims must be signed by a checkpoint left (the resume point
        // is one): this writer would sign it otherwise.
        if retired && last_note.is_none() {
            return Err(retired_corrupt(super::verify::NO_CHECKPOINT_AFTER_RETIRED));
        }
        if let Some(anchor) = &anchor {
            match anchor_root {
                None => {
                    return Err(AuditError::Rollback {
                        log_size: self.chain.tree.size(),
                        anchor_size: anchor.size,
                    });
                }
                Some(root) if root != anchor.root => {
                    return Err(AuditError::Diverged { size: anchor.size });
                }
                Some(_) => {}
            }
        }
        // The writer's key must be the key in charge: the one the last key change introduced
        // (even when the crash cut the checkpoint after it), and the signer of the last
        // checkpoint. A retired key would sign checkpoints no verifier accepts.
        let own = self.key.verifier_key();
        if key_changed_to
            .as_ref()
            .is_some_and(|k| *k != own.to_string())
        {
            return Err(AuditError::WrongKey);
        }
        if let Some(note) = last_note.filter(|_| !key_change_after_checkpoint) {
            let signed = SignedNote::parse(&note).ok().is_some_and(|n| {
                n.signature_by(&own)
                    .is_some_and(|sig| own.verify(n.body.as_bytes(), &sig))
            });
            if !signed {
                return Err(AuditError::WrongKey);
            }
        }
        if let Some((_, path, complete)) = last_path {
            let file = OpenOptions::new()
                .append(true)
                .open(&path)
                .map_err(|e| io_error("cannot open the last segment", &e))?;
            if let Some((info, bytes)) = torn_tail {
                // Kept aside first: should this start fail or be killed before the recovery
                // record is durable, the next start still records the cut. (Already kept when
                // an earlier start died between keeping and cutting: recorded once.)
                let kept_before = self.pending_recovery.iter().any(|(p, _)| *p == info);
                let kept = keep_torn(&self.dir, &info, &bytes)?;
                file.set_len(complete)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| io_error("cannot cut the torn tail", &e))?;
                if !kept_before {
                    self.pending_recovery.push((info, kept));
                }
            }
            self.file = Some(file);
            self.seg_path = path;
            self.seg_len = complete;
            self.need_new_segment = false;
        }
        Ok(())
    }

    /// Checks the resume point left by the last run (see [`Resume`]); `None` when there is
    /// none or it does not hold, and the whole log is read.
    fn resume_from(
        &self,
        segments: &[(String, PathBuf)],
        anchor: Option<&Checkpoint>,
    ) -> Option<ResumePoint> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = open_regular(&self.dir.join(RESUME_FILE)).ok()?;
        if file.metadata().ok()?.len() > 64 * 1024 {
            return None;
        }
        let mut text = Vec::new();
        file.read_to_end(&mut text).ok()?;
        let resume: Resume = serde_json::from_slice(&text).ok()?;
        let index = segments
            .iter()
            .position(|(name, _)| *name == resume.segment)?;
        let (_, segment) = segments.get(index)?;
        let len = usize::try_from(resume.end.checked_sub(resume.start)?).ok()?;
        if len == 0 || len > 64 * 1024 {
            return None;
        }
        let mut line = vec![0; len];
        let mut file = open_regular(segment).ok()?;
        file.seek(SeekFrom::Start(resume.start)).ok()?;
        file.read_exact(&mut line).ok()?;
        let line = line.strip_suffix(b"\n")?;
        let rec: StoredRecord<'_> = serde_json::from_slice(line).ok()?;
        if rec.v != super::record::SCHEMA_VERSION
            || !rec.origin.is(&self.origin)
            || rec.seq != resume.size
        {
            return None;
        }
        let note = rec.checkpoint?.into_owned();
        let signed = SignedNote::parse(&note).ok()?;
        let cp = Checkpoint::parse_body(&signed.body).ok()?;
        let own = self.key.verifier_key();
        let frontier = resume
            .frontier
            .iter()
            .map(|h| super::verify::parse_prev(h))
            .collect::<Option<Vec<Hash>>>()?;
        let mut tree = MerkleTree::from_frontier(resume.size, frontier)?;
        // The key in charge is this writer's (a retired key, or a forged resume point, sends
        // the start through the whole log, which tells them apart).
        let holds = resume.key == own.to_string()
            && cp.size == resume.size
            && cp.origin == self.origin_line
            && cp.root == tree.root()
            && signed
                .signature_by(&own)
                .is_some_and(|sig| own.verify(signed.body.as_bytes(), &sig));
        if !holds {
            return None;
        }
        // An anchor before the checkpoint needs the tree at its size: only the whole log has it.
        let anchor_root = match anchor {
            Some(a) if a.size < cp.size => return None,
            Some(a) if a.size == cp.size => Some(cp.root),
            _ => None,
        };
        let prev = leaf_hash(line);
        tree.push(prev);
        Some(ResumePoint {
            index,
            offset: resume.end,
            tree,
            prev,
            note,
            anchor_root,
        })
    }

    fn open_segment(&mut self) -> Result<(), AuditError> {
        let name = segment_name(self.chain.seq);
        let path = self.dir.join(&name);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error("cannot create a segment", &e))?;
        file.set_len(0)
            .map_err(|e| io_error("cannot create a segment", &e))?;
        sync_dir(&self.dir);
        self.file = Some(file);
        self.seg_path = path;
        self.seg_len = 0;
        self.need_new_segment = false;
        Ok(())
    }

    /// Appends one record to the batch; `sign` signs an event record.
    fn stage(
        &mut self,
        body: Body<'_>,
        sign: bool,
        now: Timestamp,
    ) -> Result<(u64, Hash), AuditError> {
        let seq = self.chain.seq;
        self.prev_hex.clear();
        if seq == 0 {
            self.prev_hex.push_str(GENESIS_PREV);
        } else {
            crate::identity::hex_to(&self.chain.prev, &mut self.prev_hex);
        }
        self.id.clear();
        push_record_id(self.nonce, seq, &mut self.id);
        let start = self.buf.len();
        let envelope = Envelope {
            origin: &self.origin,
            seq,
            id: &self.id,
            time: now,
            prev: &self.prev_hex,
        };
        // `encode_record` signs event records only, with the key in charge at this record.
        let signer = sign.then(|| self.incoming.as_deref().unwrap_or(&self.key));
        if encode_record(&envelope, body, signer, &mut self.buf).is_err() {
            self.buf.truncate(start);
            return Err(AuditError::Unavailable("cannot encode the record"));
        }
        let leaf = leaf_hash(self.buf.get(start..).unwrap_or_default());
        self.buf.push(b'\n');
        self.chain.tree.push(leaf);
        self.chain.prev = leaf;
        self.chain.seq += 1;
        if matches!(body, Body::Record(RecordBody::Checkpoint(_))) {
            self.chain.since_checkpoint = 0;
            self.chain.uncovered_since = None;
        } else {
            self.chain.since_checkpoint += 1;
            self.chain.uncovered_since.get_or_insert(now);
        }
        Ok((seq, leaf))
    }

    fn stage_checkpoint(
        &mut self,
        now: Timestamp,
        notes: &mut Vec<String>,
    ) -> Result<(), AuditError> {
        // The checkpoint signs its own record's time and id too, so that nothing in the last
        // line of a log is left unsigned.
        let cp = Checkpoint {
            origin: self.origin_line.clone(),
            size: self.chain.tree.size(),
            root: self.chain.tree.root(),
            extensions: vec![
                format!("time {now}"),
                format!("id {}", record_id(self.nonce, self.chain.seq)),
            ],
        };
        let note = match self.incoming.as_deref() {
            Some(new) => cp.sign(&[new, &self.key]),
            None => cp.sign(&[&self.key]),
        };
        let size = self.chain.tree.size();
        let frontier = self.chain.tree.frontier().iter().map(|h| hex(h)).collect();
        let start = self.seg_len + self.buf.len() as u64;
        self.stage(
            Body::Record(&RecordBody::Checkpoint(note.clone())),
            false,
            now,
        )?;
        self.resume = Some(Resume {
            segment: self
                .seg_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            start,
            end: self.seg_len + self.buf.len() as u64,
            size,
            frontier,
            key: self
                .incoming
                .as_deref()
                .unwrap_or(&self.key)
                .verifier_key()
                .to_string(),
        });
        notes.push(note);
        Ok(())
    }

    /// Stages, writes and syncs one batch; acknowledges its commands.
    fn process(&mut self, cmds: &mut Vec<Command>) -> Result<(), AuditError> {
        let snapshot = self.chain.clone();
        let now = self.clock.now();
        self.buf.clear();
        let mut acks = Vec::new();
        let mut notes = Vec::new();
        // Should the batch fail, its events that nobody waits for are counted as lost (those
        // somebody waits for get the error).
        let unacked_events = cmds
            .iter()
            .filter(|c| matches!(c, Command::Event { ack: None, .. }))
            .count() as u64;
        let mut force = false;
        self.incoming = None;
        self.resume = None;
        let recovery = std::mem::take(&mut self.pending_recovery);
        let queue_drops = self.shared.dropped.swap(0, Ordering::Relaxed);
        let write_drops = std::mem::take(&mut self.write_failed_drops);

        let staged = (|| -> Result<(), AuditError> {
            if self.need_new_segment || (self.seg_len > 0 && self.seg_len >= self.segment_max_bytes)
            {
                if self.unsynced
                    && let Some(file) = &self.file
                {
                    // A segment is durable before the next one starts. After a failed batch
                    // (`need_new_segment`) this may fail again; the new segment starts anyway.
                    let synced = file.sync_data();
                    if !self.need_new_segment {
                        synced.map_err(|e| io_error("cannot write the audit log", &e))?;
                    }
                }
                self.unsynced = false;
                self.open_segment()?;
            }
            for (rec, _) in &recovery {
                self.stage(Body::Record(&RecordBody::Recovery(rec.clone())), false, now)?;
                force = true;
            }
            for (dropped, reason) in [(queue_drops, "queue_full"), (write_drops, "write_failed")] {
                if dropped > 0 {
                    let gap = GapInfo {
                        dropped,
                        reason: reason.to_owned(),
                    };
                    self.stage(Body::Record(&RecordBody::Gap(gap)), false, now)?;
                    force = true;
                }
            }
            for cmd in cmds.drain(..) {
                match cmd {
                    Command::Event {
                        mut json,
                        sign,
                        ack,
                    } => {
                        let staged = self.stage(Body::EncodedEvent(&json), sign, now);
                        if json.capacity() <= MAX_SPARE_CAPACITY {
                            json.clear();
                            // A full pool frees the buffer instead.
                            let _ = self.shared.spare.0.try_send(json);
                        }
                        let (seq, leaf) = staged?;
                        if let Some(ack) = ack {
                            acks.push(Ack::Event(ack, seq, leaf));
                        }
                    }
                    Command::Flush { checkpoint, ack } => {
                        force |= checkpoint;
                        acks.push(Ack::Flush(ack));
                    }
                    Command::RotateKey { key, ack } => {
                        if self.incoming.is_some() {
                            // One rotation per batch: a second would be signed by a key no
                            // longer in charge. The caller may ask again.
                            let _ = ack.send(Err(AuditError::Unavailable(
                                "another key rotation is under way",
                            )));
                            continue;
                        }
                        let old = self.key.verifier_key().to_string();
                        let new = key.verifier_key().to_string();
                        if old == new {
                            // Already in charge: a key change to itself would sign the
                            // checkpoint twice with one key, which no verifier accepts.
                            acks.push(Ack::Done(ack));
                            continue;
                        }
                        let statement =
                            key_change_statement(&self.origin_line, self.chain.seq, &old, &new);
                        let signature = base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            self.key.sign(statement.as_bytes()),
                        );
                        let change = KeyChangeInfo {
                            old_key: old,
                            new_key: new,
                            signature,
                        };
                        self.stage(Body::Record(&RecordBody::KeyChange(change)), false, now)?;
                        self.incoming = Some(key);
                        force = true;
                        acks.push(Ack::Done(ack));
                    }
                }
                if self.chain.since_checkpoint >= self.checkpoint_every {
                    self.stage_checkpoint(now, &mut notes)?;
                }
            }
            let interval = i64::try_from(self.checkpoint_interval.as_micros()).unwrap_or(i64::MAX);
            let due = self.closing
                || self
                    .chain
                    .uncovered_since
                    .is_some_and(|t| now.unix_micros().saturating_sub(t.unix_micros()) >= interval);
            if (force || due) && self.chain.since_checkpoint > 0 {
                self.stage_checkpoint(now, &mut notes)?;
            }
            // Only what somebody waits for, and checkpoints (which a witness may anchor), are
            // synced at once; other events are synced with the next of these.
            let sync = force || !acks.is_empty() || !notes.is_empty();
            if self.buf.is_empty() && !(sync && self.unsynced) {
                return Ok(());
            }
            let Some(file) = self.file.as_mut() else {
                return Err(AuditError::Unavailable("no segment is open"));
            };
            file.write_all(&self.buf)
                .and_then(|()| if sync { file.sync_data() } else { Ok(()) })
                .map_err(|e| io_error("cannot write the audit log", &e))?;
            // Nothing is acknowledged from a segment that left the directory (two `stat`s per
            // batch).
            still_at(file, &self.seg_path)?;
            self.seg_len += self.buf.len() as u64;
            self.unsynced = !sync && (self.unsynced || !self.buf.is_empty());
            Ok(())
        })();

        match staged {
            Ok(()) => {
                if let Some(key) = self.incoming.take() {
                    self.key = *key;
                }
                if let Some(resume) = self.resume.take() {
                    // The batch, checkpoint included, is durable (a checkpoint is synced).
                    write_resume(&self.dir, &resume);
                }
                if !recovery.is_empty() {
                    // Recorded: the kept bytes are no longer needed (a crash before this removal
                    // only records the cut a second time).
                    for (_, kept) in &recovery {
                        let _ = fs::remove_file(kept);
                    }
                    sync_dir(&self.dir);
                }
                // A flush answers for the events queued before it: those a write failure lost
                // (counted in a gap record) are reported to the next flush that succeeds.
                let lost = if acks.iter().any(|a| matches!(a, Ack::Flush(_))) {
                    std::mem::take(&mut self.lost_since_flush)
                } else {
                    0
                };
                for ack in acks {
                    match ack {
                        Ack::Event(tx, seq, leaf) => {
                            let _ = tx.send(Ok(AuditReceipt {
                                log: self.origin_line.clone(),
                                seq,
                                leaf_hash: hex(&leaf),
                            }));
                        }
                        Ack::Done(tx) => {
                            let _ = tx.send(Ok(()));
                        }
                        Ack::Flush(tx) => {
                            let _ = tx.send(if lost > 0 {
                                Err(AuditError::Lost { events: lost })
                            } else {
                                Ok(())
                            });
                        }
                    }
                }
                if let Some(w) = &self.witness {
                    for note in &notes {
                        if let Err(e) = w.anchor(note) {
                            tracing::warn!(target: "aaa::audit", error = %e, "checkpoint not anchored");
                        }
                    }
                }
                Ok(())
            }
            Err(e) => {
                // Nothing of this batch counts: cut what may have reached the file, roll the
                // chain back, and continue in a new segment.
                if let Some(file) = &self.file {
                    let _ = file.set_len(self.seg_len);
                }
                self.chain = snapshot;
                self.incoming = None;
                self.resume = None;
                self.need_new_segment = true;
                self.pending_recovery = recovery;
                self.shared
                    .dropped
                    .fetch_add(queue_drops, Ordering::Relaxed);
                self.write_failed_drops = write_drops + unacked_events;
                self.lost_since_flush += unacked_events;
                tracing::error!(
                    target: "aaa::audit",
                    error = %e,
                    lost = unacked_events,
                    unrecorded = self.write_failed_drops,
                    "audit batch failed: its strict events and flushes get the error; the events \
                     nobody waited for are lost and recorded as a gap once the log can be \
                     written again"
                );
                // Commands the batch did not reach fail too.
                for cmd in cmds.drain(..) {
                    match cmd {
                        Command::Event { ack: None, .. } => {}
                        Command::Event { ack: Some(tx), .. } => {
                            let _ = tx.send(Err(e.clone()));
                        }
                        Command::Flush { ack, .. } | Command::RotateKey { ack, .. } => {
                            let _ = ack.send(Err(e.clone()));
                        }
                    }
                }
                for ack in acks {
                    match ack {
                        Ack::Event(tx, ..) => {
                            let _ = tx.send(Err(e.clone()));
                        }
                        Ack::Done(tx) | Ack::Flush(tx) => {
                            let _ = tx.send(Err(e.clone()));
                        }
                    }
                }
                Err(e)
            }
        }
    }
}

/// Loads the signing key stored at `path`, or generates one named `name` and stores it there
/// (created with mode 0600 on Unix, never overwritten; see [`write_private_key`]). Two processes
/// starting at once agree on one key: the one that stores its key first wins, the other loads it.
///
/// A key file that other users may read (on Unix, any group or other permission bit, as a
/// Kubernetes secret volume's default mode 0644 gives) is loaded with a warning under the
/// `tracing` target `aaa::audit`: whoever can read it can sign a forged log.
///
/// # Errors
///
/// [`AuditError::Io`] when the file cannot be read or created; [`AuditError::Key`] when it does
/// not hold a key.
pub fn load_or_generate_key(path: &Path, name: &str) -> Result<SigningKey, AuditError> {
    match read_private_key(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SigningKey::generate(name).map_err(AuditError::Key)?;
            match store_private_key(path, &key) {
                Ok(()) => Ok(key),
                // Another process stored its key first: use that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_private_key(path)
                    .map_err(|e| io_error("cannot read the key file", &e))
                    .and_then(|text| SigningKey::from_private_text(&text).map_err(AuditError::Key)),
                Err(e) => Err(io_error("cannot create the key file", &e)),
            }
        }
        Err(e) => Err(io_error("cannot read the key file", &e)),
        Ok(text) => SigningKey::from_private_text(&text).map_err(AuditError::Key),
    }
}

/// The text of the key file at `path`, warning when other users may read it.
fn read_private_key(path: &Path) -> std::io::Result<zeroize::Zeroizing<String>> {
    let mut file = File::open(path)?;
    let mut text = zeroize::Zeroizing::new(String::new());
    std::io::Read::read_to_string(&mut file, &mut text)?;
    if let Ok(meta) = file.metadata()
        && readable_by_others(&meta)
    {
        tracing::warn!(
            target: "aaa::audit",
            path = %path.display(),
            "the audit signing key file may be read by other users: whoever reads it can sign a \
             forged log (chmod 600, or defaultMode: 0400 for a Kubernetes secret)"
        );
    }
    Ok(text)
}

/// Whether users other than the owner may read or write the file (Unix permission bits).
#[cfg(unix)]
fn readable_by_others(meta: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o077 != 0
}

/// Whether users other than the owner may read or write the file (not known off Unix).
#[cfg(not(unix))]
fn readable_by_others(_meta: &fs::Metadata) -> bool {
    false
}

/// Writes `key` to a new file at `path` (mode 0600 on Unix); refuses to overwrite.
///
/// The key is written and synced under a temporary name beside `path`, then linked to `path`
/// (which fails if `path` exists): a crash leaves either no key file or a whole one, never a
/// truncated key that would stop the next start.
///
/// # Errors
///
/// [`AuditError::Io`] when the file exists or cannot be written.
pub fn write_private_key(path: &Path, key: &SigningKey) -> Result<(), AuditError> {
    store_private_key(path, key).map_err(|e| io_error("cannot write the key file", &e))
}

fn store_private_key(path: &Path, key: &SigningKey) -> std::io::Result<()> {
    let mut nonce = [0u8; 8];
    getrandom::fill(&mut nonce).map_err(|_| std::io::Error::other("no randomness"))?;
    let Some(file_name) = path.file_name() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the key path names no file",
        ));
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".{}.tmp", u64::from_le_bytes(nonce)));
    let tmp = path.with_file_name(tmp_name);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        let text = key.to_private_text();
        file.write_all(text.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()
    });
    // A hard link never replaces an existing file, unlike a rename.
    let linked = written.and_then(|()| fs::hard_link(&tmp, path));
    let _ = fs::remove_file(&tmp);
    linked?;
    if let Some(dir) = path.parent() {
        sync_dir(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        });
    }
    Ok(())
}

#[cfg(test)]
mod id_tests {
    /// Record ids are the nonce and the sequence number as 16 hex digits each.
    #[test]
    fn record_ids_agree() {
        for (nonce, seq) in [
            (0, 0),
            (1, 2),
            (u64::MAX, 0x0123_4567_89ab_cdef),
            (0xabc, 1 << 40),
        ] {
            let id = format!("{nonce:016x}{seq:016x}");
            assert_eq!(id, super::record_id(nonce, seq));
        }
    }
}

#[cfg(test)]
mod key_file_tests {
    use std::sync::{Arc, Barrier};

    use super::*;

    /// A generated key file is private, whole, alone (no temporary file left) and never
    /// replaced; a second `load_or_generate_key` loads it.
    #[test]
    fn a_generated_key_is_stored_privately_and_loaded_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        let key = load_or_generate_key(&path, "t/audit").unwrap();
        let again = load_or_generate_key(&path, "other/name").unwrap();
        assert_eq!(key.verifier_key(), again.verifier_key());
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["audit.key"]);
        assert!(!readable_by_others(&fs::metadata(&path).unwrap()));
        let other = SigningKey::generate("t/audit").unwrap();
        assert!(write_private_key(&path, &other).is_err());
        let kept = load_or_generate_key(&path, "t/audit").unwrap();
        assert_eq!(kept.verifier_key(), key.verifier_key());
    }

    /// Two processes starting at once (threads here) agree on one key.
    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("audit.key"));
        let barrier = Arc::new(Barrier::new(4));
        let keys: Vec<_> = (0..4)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    load_or_generate_key(&path, "t/audit").map(|k| k.verifier_key())
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap().unwrap())
            .collect();
        assert!(keys.iter().all(|k| *k == keys[0]), "{keys:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_key_file_others_may_read_is_noticed() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.key");
        write_private_key(&path, &SigningKey::generate("t/audit").unwrap()).unwrap();
        for (mode, exposed) in [(0o600, false), (0o400, false), (0o644, true), (0o640, true)] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(
                readable_by_others(&fs::metadata(&path).unwrap()),
                exposed,
                "{mode:o}"
            );
            // Loaded all the same (with a warning when exposed).
            assert!(load_or_generate_key(&path, "t/audit").is_ok());
        }
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;
    use crate::audit::{AuditEvent, AuditSink, EventKind, Verifier};

    fn open(dir: &Path, key: &SigningKey) -> Result<AuditWriter, AuditError> {
        let key = SigningKey::from_seed(key.name(), &[7; 32]).unwrap();
        AuditWriter::open(AuditWriterConfig::new(dir, "svc", "one"), key)
    }

    /// A second writer on a log directory is refused while the first runs (their records would
    /// interleave and break the chain for good); once the first is dropped, the log verifies and
    /// the next writer continues it.
    #[test]
    fn a_second_writer_on_one_log_is_refused_until_the_first_stops() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_seed("svc/audit", &[7; 32]).unwrap();
        let first = open(dir.path(), &key).unwrap();
        assert_eq!(open(dir.path(), &key).unwrap_err(), AuditError::InUse);
        let event = || {
            AuditEvent::new(
                crate::Timestamp::from_unix_seconds(1_700_000_000),
                EventKind::RequestCompleted {
                    status: 200,
                    latency_us: 1,
                },
            )
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(first.record(event())).unwrap();
        drop(first);
        let second = open(dir.path(), &key).unwrap();
        runtime.block_on(second.record(event())).unwrap();
        drop(second);
        let report = Verifier::new([key.verifier_key()])
            .verify_dir(dir.path())
            .unwrap();
        assert_eq!(report.events, 2, "{report:?}");
    }
}

#[cfg(test)]
mod retire_race_tests {
    use std::{cell::Cell, rc::Rc};

    use super::*;
    use crate::audit::{
        AuditEvent, AuditSink, EventKind, Verifier, checkpoint_note, log_leaves, retire, summarize,
    };

    fn config(dir: &Path) -> AuditWriterConfig {
        let mut c = AuditWriterConfig::new(dir, "svc", "one");
        c.segment_max_bytes = 2048;
        c.max_batch = 4;
        c.checkpoint_every = 4;
        c
    }

    fn key() -> SigningKey {
        SigningKey::from_seed("svc/audit", &[7; 32]).unwrap()
    }

    fn verifier() -> Verifier {
        Verifier::new([key().verifier_key()]).allow_retired_head()
    }

    fn record(log: &AuditWriter, n: u16) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            for i in 0..n {
                let event = AuditEvent::new(
                    crate::Timestamp::from_unix_seconds(1_700_000_000),
                    EventKind::RequestCompleted {
                        status: 200,
                        latency_us: u64::from(i),
                    },
                );
                log.record(event).await.unwrap();
            }
            log.flush().await.unwrap();
        });
    }

    /// A closed log of 60 events in small segments in `tmp/log`, without its resume point (a
    /// start reads all of it), and where to retire it up to (its fourth segment).
    fn closed_log(tmp: &Path) -> (PathBuf, u64) {
        let dir = tmp.join("log");
        let log = AuditWriter::open(config(&dir), key()).unwrap();
        record(&log, 60);
        log.close().unwrap();
        fs::remove_file(dir.join(RESUME_FILE)).unwrap();
        let segments = segment_files(&dir).unwrap();
        assert!(segments.len() > 5, "{segments:?}");
        (dir, retire::first_seq(&segments[3].0).unwrap())
    }

    /// Retires the log in `dir` up to `cut` (into `archive`) during the next read of where a
    /// log starts on this thread, after the reader read the note and before it reads the
    /// segments. The cell tells how many records the retirement moved (0 until it ran).
    fn retire_during_next_read(dir: &Path, cut: u64, archive: &Path) -> Rc<Cell<u64>> {
        let retired = Rc::new(Cell::new(0));
        let (d, a, r) = (dir.to_owned(), archive.to_owned(), retired.clone());
        retire::tests_hook::AFTER_LOG_START.with(|h| {
            *h.borrow_mut() = Some(Box::new(move || {
                r.set(retire::retire(&d, cut, &a).unwrap().records);
            }));
        });
        retired
    }

    /// A retirement that notes its cut and removes the segments it moved while a writer starts
    /// does not fail the start: it reads the log again from the new note, continues it, and the
    /// log verifies.
    #[test]
    fn a_start_beside_a_retirement_reads_the_log_again() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, cut) = closed_log(tmp.path());
        let first = segment_files(&dir).unwrap().remove(0).1;
        let archive = tmp.path().join("archive");
        let retired = retire_during_next_read(&dir, cut, &archive);
        let log = AuditWriter::open(config(&dir), key()).unwrap();
        assert_eq!(retired.get(), cut, "the retirement ran during the start");
        assert!(!first.exists());
        record(&log, 1);
        log.close().unwrap();
        let left = verifier().verify_dir(&dir).unwrap();
        let moved = verifier().verify_dir(&archive).unwrap();
        assert_eq!(left.retired, cut, "{left:?}");
        assert_eq!(left.events + moved.events, 61, "{left:?} {moved:?}");
    }

    /// The verifier, the proofs' leaves and checkpoints, and the summary read beside a
    /// retirement answer what they answer after it: no segment gone missing is taken for a
    /// broken log.
    #[test]
    fn readers_beside_a_retirement_read_the_log_again() {
        let tmp = tempfile::tempdir().unwrap();
        for reader in ["verify", "leaves", "summary", "checkpoint"] {
            let tmp = tmp.path().join(reader);
            let (dir, cut) = closed_log(&tmp);
            let archive = tmp.join("archive");
            // A checkpoint in a segment the retirement moves.
            let moved = (1..cut)
                .rev()
                .find(|&size| checkpoint_note(&dir, size).unwrap().is_some())
                .unwrap();
            let read = || match reader {
                "verify" => format!("{:?}", verifier().verify_dir(&dir).unwrap()),
                "leaves" => {
                    let leaves = log_leaves(&dir).unwrap();
                    format!("{} {:?}", leaves.retired(), leaves.kept())
                }
                "summary" => format!("{:?}", summarize(&dir).unwrap()),
                _ => format!("{:?}", checkpoint_note(&dir, moved).unwrap()),
            };
            let retired = retire_during_next_read(&dir, cut, &archive);
            let beside = read();
            assert_eq!(retired.get(), cut, "{reader}: the retirement ran");
            assert_eq!(beside, read(), "{reader}");
        }
    }
}
