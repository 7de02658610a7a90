//! Retiring a log's oldest segments to an archive, so that the directory of a long-running
//! service does not grow without end, while what stays still verifies.
//!
//! [`retire`] copies whole segments from the front of the log to an archive directory (synced),
//! notes the tree over the records it moved in `retired.json` (synced, renamed into place), and
//! only then removes them from the log directory. The log in the directory then starts at a
//! later record: the writer continues it and the [`Verifier`](super::Verifier) checks it from
//! there when told to accept a retired head
//! ([`allow_retired_head`](super::Verifier::allow_retired_head)). The note is not trusted: the
//! first record left must link to its last leaf, and the first checkpoint left must sign the root
//! of its tree extended by the records that follow; a forged note fails there. The archive is a
//! log of its own that continues from one retirement to the next, verifiable on its own (its
//! last records are covered by checkpoints of the live log).

use std::{
    fs::{self, File},
    io::{Read, Write},
    path::Path,
};

use serde::{Deserialize, Serialize};

use super::{
    AuditError,
    merkle::{Hash, MerkleTree, leaf_hash},
    record::{GENESIS_PREV, StoredRecord, hex},
    verify::{parse_prev, segment_error},
    writer::{
        SEGMENT_PREFIX, SEGMENT_SUFFIX, Unreadable, io_error, open_regular, read_segment,
        segment_files, segment_name, sync_dir,
    },
};

/// The note, in the log directory, of the tree over the records retired from it.
pub(crate) const RETIRED_FILE: &str = "retired.json";

/// The lock file that keeps two retirements of one log apart.
const RETIRE_LOCK: &str = "retire.lock";

/// Sizes from this on are refused (no log reaches them; near 2^64 the sequence numbers of the
/// next records would overflow).
const MAX_RETIRED: u64 = 1 << 62;

/// The largest note read (a frontier has at most 64 hashes: under 5 KiB).
const MAX_NOTE_BYTES: u64 = 64 * 1024;

/// The content of [`RETIRED_FILE`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Note {
    /// How many records were retired: the sequence number of the first record left.
    size: u64,
    /// The leaf hash of the last retired record, hex: the first record left has it as `prev`.
    prev: String,
    /// The roots of the perfect subtrees of the tree over the retired records, largest first,
    /// hex.
    frontier: Vec<String>,
}

/// The tree over the records retired from a log directory, from its [`RETIRED_FILE`].
#[derive(Debug, Clone)]
pub(crate) struct RetiredHead {
    /// The tree over the retired records.
    pub(crate) tree: MerkleTree,
    /// The leaf hash of the last retired record.
    pub(crate) prev: Hash,
}

impl RetiredHead {
    /// The number of retired records: the sequence number of the first record left.
    pub(crate) fn size(&self) -> u64 {
        self.tree.size()
    }
}

/// The bytes of `dir`'s [`RETIRED_FILE`], unparsed: `Ok(None)` when there is none.
pub(crate) fn retired_text(dir: &Path) -> Result<Option<Vec<u8>>, &'static str> {
    let file = match open_regular(&dir.join(RETIRED_FILE)) {
        Ok(file) => file,
        Err(Unreadable::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(Unreadable::NotAFile) => return Err("retired.json is not a regular file"),
        Err(Unreadable::Io(_)) => return Err("cannot read retired.json"),
    };
    let mut text = Vec::new();
    file.take(MAX_NOTE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(|_| "cannot read retired.json")?;
    if text.len() as u64 > MAX_NOTE_BYTES {
        return Err("retired.json is too large");
    }
    Ok(Some(text))
}

/// Reads `dir`'s [`RETIRED_FILE`]: `Ok(None)` when nothing was ever retired from the log.
pub(crate) fn read_retired(dir: &Path) -> Result<Option<RetiredHead>, &'static str> {
    let Some(text) = retired_text(dir)? else {
        return Ok(None);
    };
    let note: Note = serde_json::from_slice(&text).map_err(|_| "retired.json is malformed")?;
    let prev = parse_prev(&note.prev).ok_or("retired.json is malformed")?;
    let frontier = note
        .frontier
        .iter()
        .map(|h| parse_prev(h))
        .collect::<Option<Vec<Hash>>>()
        .ok_or("retired.json is malformed")?;
    // No log reaches 2^62 records; a size near 2^64 would leave no room for the next ones.
    let tree = MerkleTree::from_frontier(note.size, frontier)
        .filter(|_| note.size > 0 && note.size < MAX_RETIRED)
        .ok_or("retired.json is malformed")?;
    Ok(Some(RetiredHead { tree, prev }))
}

/// Where the log of `dir` starts among its `segments` (sorted): the index of its first segment,
/// and the tree over the retired records before it (`None`: the log starts at record 0).
/// Segments before a retired head are what an interrupted [`retire`] had archived but not yet
/// removed: not part of the log.
pub(crate) fn log_start<T>(
    dir: &Path,
    segments: &[(String, T)],
) -> Result<(usize, Option<RetiredHead>), &'static str> {
    let head = read_retired(dir);
    #[cfg(test)]
    if let Some(hook) = tests_hook::AFTER_LOG_START.with(|h| h.borrow_mut().take()) {
        hook();
    }
    let Some(head) = head? else {
        return Ok((0, None));
    };
    let first = segment_name(head.size());
    let index = segments
        .iter()
        .position(|(name, _)| *name == first)
        .ok_or("no segment starts where retired.json says the log starts")?;
    Ok((index, Some(head)))
}

/// How many times [`beside_retirements`] reads a log again; each time, a retirement finished
/// (one waits for the other).
const MAX_REREADS: u32 = 8;

/// Runs `read` over the log in `dir`, and again when it fails while `retired.json` changed: a
/// [`retire`] beside it writes its note, then removes the segments it moved, so a read that
/// found where the log starts before the note may miss segments (they are in the archive, and
/// the new note covers them). A read that fails with the note unchanged fails; so does the
/// last of [`MAX_REREADS`] reads again.
pub(crate) fn beside_retirements<T, E>(
    dir: &Path,
    mut read: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut rereads = 0;
    loop {
        let note = retired_text(dir);
        let result = read();
        if result.is_ok() || rereads == MAX_REREADS || retired_text(dir) == note {
            return result;
        }
        rereads += 1;
    }
}

#[cfg(test)]
pub(crate) mod tests_hook {
    use std::cell::RefCell;

    thread_local! {
        /// Runs once, in the next [`log_start`](super::log_start) on this thread, after it read
        /// the note and before the caller reads the segments: where a retirement beside a
        /// reader bites.
        pub(crate) static AFTER_LOG_START: RefCell<Option<Box<dyn FnOnce()>>> =
            const { RefCell::new(None) };
    }
}

/// The first sequence number of the segment file `name`, if it is named like one.
pub(crate) fn first_seq(name: &str) -> Option<u64> {
    let seq = name
        .strip_prefix(SEGMENT_PREFIX)?
        .strip_suffix(SEGMENT_SUFFIX)?
        .parse()
        .ok()?;
    (segment_name(seq) == name).then_some(seq)
}

/// What [`retire`] moved.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Retired {
    /// The segment files moved to the archive, in order.
    pub segments: Vec<String>,
    /// The records in them.
    pub records: u64,
    /// The sequence number of the first record left in the log directory.
    pub first_seq: u64,
}

/// Moves the segments of the log in `dir` that hold the records before `before` to the
/// directory `archive`, and notes the tree over them in the log directory (`retired.json`), so
/// that the log left there keeps verifying and the writer keeps continuing it. Safe while a
/// writer appends to the log: only whole segments before the one it writes are moved. Safe
/// while a writer starts, or the log is verified, summarized or read for proofs
/// ([`log_leaves`](super::log_leaves), [`checkpoint_note`](super::checkpoint_note)): each of
/// these reads the log again, from the new note, when segments go away under it (`aaa audit
/// prove`, which makes several such reads, may ask to be run again).
///
/// `before` must be the first record of a segment (the number in its file name) other than the
/// log's first and last, and that segment must hold a checkpoint: the verifier checks the note
/// against it, and a witness anchor (the writer's last checkpoint) then never predates the
/// records left.
///
/// Each segment is copied to `archive` and synced, then the note is written (synced, renamed
/// into place), then the segments are removed from `dir`: a crash at any point loses nothing,
/// and a new call finishes what an interrupted one left. The archive continues from one call to
/// the next (it must end where the moved records start, or be empty); it is a log of its own,
/// verifiable with [`Verifier::allow_retired_head`](super::Verifier::allow_retired_head) when
/// it does not start at record 0 (it then holds its own `retired.json`).
///
/// The records moved are checked for what the tree needs (order, sequence numbers, hash links),
/// not verified: verify the log first.
///
/// # Errors
///
/// - [`AuditError::Config`] when `before` is not a segment that may be retired up to, or the
///   archive does not end where the moved records start;
/// - [`AuditError::Corrupt`] when a moved segment is not a contiguous part of the log, or the log
///   directory's `retired.json` is malformed;
/// - [`AuditError::Unavailable`] when another retirement of the log is running;
/// - [`AuditError::Io`] when a file cannot be read, written or removed (nothing was removed
///   from the log directory before its copy and the note were durable).
pub fn retire(dir: &Path, before: u64, archive: &Path) -> Result<Retired, AuditError> {
    // Not truncated: whatever the name holds is only locked.
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(RETIRE_LOCK))
        .map_err(|e| io_error("cannot create the retirement lock", &e))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            return Err(AuditError::Unavailable(
                "another retirement of this log is running",
            ));
        }
        Err(fs::TryLockError::Error(e)) => {
            return Err(io_error("cannot lock the retirement lock", &e));
        }
    }
    let corrupt = |segment: &str, line: u64, reason: &'static str| AuditError::Corrupt {
        segment: segment.to_owned(),
        line,
        reason,
    };
    let segments = segment_files(dir)?;
    let (start, head) =
        log_start(dir, &segments).map_err(|reason| corrupt(RETIRED_FILE, 0, reason))?;
    // An interrupted retirement: these were archived and noted; remove them now.
    for (_, path) in segments.get(..start).unwrap_or_default() {
        fs::remove_file(path).map_err(|e| io_error("cannot remove a retired segment", &e))?;
    }
    let live = segments.get(start..).unwrap_or_default();
    let cut = live
        .iter()
        .position(|(name, _)| *name == segment_name(before))
        .filter(|&i| i > 0 && i + 1 < live.len())
        .ok_or(AuditError::Config(
            "records can be retired up to the first record of a segment other than the log's \
             first and last (the number in a segment file's name)",
        ))?;
    let (moving, rest) = live.split_at(cut);
    // The first segment left: it must hold a checkpoint (read, and dropped before the others are
    // read).
    let Some((_, kept)) = rest.first() else {
        return Err(AuditError::Config(
            "nothing would be left in the log directory",
        ));
    };
    {
        let data = read_segment(kept).map_err(|e| segment_error(&e))?;
        let checkpointed = data.split(|&b| b == b'\n').any(|line| {
            serde_json::from_slice::<StoredRecord<'_>>(line).is_ok_and(|r| r.kind == "checkpoint")
        });
        if !checkpointed {
            return Err(AuditError::Config(
                "the segment records are retired up to holds no checkpoint yet: retire up to an \
                 earlier segment, or later",
            ));
        }
    }

    let from = head.as_ref().map_or(0, RetiredHead::size);
    let names: Vec<&str> = moving.iter().map(|(name, _)| name.as_str()).collect();
    prepare_archive(dir, from, &names, archive)?;
    // One segment in memory at a time: checked, then copied.
    let (mut tree, mut prev) = head.map_or((MerkleTree::new(), [0; 32]), |h| (h.tree, h.prev));
    for (name, path) in moving {
        if *name != segment_name(tree.size()) {
            return Err(corrupt(
                name,
                1,
                "segment name does not match its first record",
            ));
        }
        let data = read_segment(path).map_err(|e| segment_error(&e))?;
        let Some(body) = data.strip_suffix(b"\n") else {
            return Err(corrupt(
                name,
                1,
                "an empty or unterminated segment that is not the last",
            ));
        };
        for (i, line) in body.split(|&b| b == b'\n').enumerate() {
            let line_no = i as u64 + 1;
            let rec: StoredRecord<'_> =
                serde_json::from_slice(line).map_err(|_| corrupt(name, line_no, "not a record"))?;
            if rec.seq != tree.size() {
                return Err(corrupt(name, line_no, "sequence number out of order"));
            }
            let linked = if rec.seq == 0 {
                rec.prev == GENESIS_PREV
            } else {
                parse_prev(&rec.prev) == Some(prev)
            };
            if !linked {
                return Err(corrupt(name, line_no, "hash link broken"));
            }
            prev = leaf_hash(line);
            tree.push(prev);
        }
        match already_there(&archive.join(name))? {
            // Copied by an interrupted run.
            Some(there) if there == data => {}
            Some(_) => return Err(DISCONTINUOUS),
            None => write_durably(archive, name, &data, path)?,
        }
    }
    sync_dir(archive);
    if tree.size() != before {
        return Err(corrupt(
            &segment_name(before),
            1,
            "segment name does not match its first record",
        ));
    }

    let note = Note {
        size: tree.size(),
        prev: hex(&prev),
        frontier: tree.frontier().iter().map(|h| hex(h)).collect(),
    };
    let json = serde_json::to_vec(&note).map_err(|_| AuditError::Unavailable("cannot encode"))?;
    write_durably(dir, RETIRED_FILE, &json, kept)?;
    sync_dir(dir);
    for (_, path) in moving {
        fs::remove_file(path).map_err(|e| io_error("cannot remove a retired segment", &e))?;
    }
    sync_dir(dir);
    Ok(Retired {
        segments: names.into_iter().map(str::to_owned).collect(),
        records: before - from,
        first_seq: before,
    })
}

/// The archive holds something else than the log's records just before those retired.
const DISCONTINUOUS: AuditError = AuditError::Config(
    "the archive does not end where the records to retire start: give an empty directory, or the \
     archive of the earlier retirements of this log",
);

/// Makes `archive` ready for the segments `names` (whose first record is `from`): checks that it
/// ends where they start (segments of theirs an interrupted run copied may be there). Into an
/// empty archive of a log retired from before, the log directory's note goes first, so that the
/// archive verifies on its own.
fn prepare_archive(
    dir: &Path,
    from: u64,
    names: &[&str],
    archive: &Path,
) -> Result<(), AuditError> {
    fs::create_dir_all(archive).map_err(|e| io_error("cannot create the archive", &e))?;
    let archived = segment_files(archive)?;
    // Those of an interrupted run may be there already; the archive must end just before.
    let earlier: Vec<_> = archived
        .iter()
        .filter(|(name, _)| first_seq(name).is_some_and(|seq| seq < from))
        .collect();
    let stray = archived.iter().any(|(name, _)| {
        first_seq(name).is_none_or(|seq| seq >= from) && !names.contains(&name.as_str())
    });
    if stray {
        return Err(DISCONTINUOUS);
    }
    match earlier.last() {
        None => {
            if from > 0 {
                let note = already_there(&dir.join(RETIRED_FILE))?
                    .ok_or(AuditError::Unavailable("retired.json went away"))?;
                match already_there(&archive.join(RETIRED_FILE))? {
                    Some(there) if there == note => {}
                    Some(_) => return Err(DISCONTINUOUS),
                    None => write_durably(archive, RETIRED_FILE, &note, &dir.join(RETIRED_FILE))?,
                }
            }
        }
        Some((name, path)) => {
            let data = read_segment(path).map_err(|e| segment_error(&e))?;
            let lines = memchr::memchr_iter(b'\n', &data).count() as u64;
            if first_seq(name).and_then(|seq| seq.checked_add(lines)) != Some(from) {
                return Err(DISCONTINUOUS);
            }
        }
    }
    Ok(())
}

/// The contents of the regular file `path`, `None` when there is none (a FIFO there would block
/// its reader: refused unopened).
fn already_there(path: &Path) -> Result<Option<Vec<u8>>, AuditError> {
    match read_segment(path) {
        Ok(data) => Ok(Some(data)),
        Err(Unreadable::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(segment_error(&e)),
    }
}

/// Writes `data` to `dir/name` under a temporary name, with the permissions of the file `like`
/// (a copy is no more readable than its original: a log names people), syncs it and renames it
/// into place (the caller syncs the directory).
fn write_durably(dir: &Path, name: &str, data: &[u8], like: &Path) -> Result<(), AuditError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = File::create(&tmp)
        .and_then(|mut file| {
            file.set_permissions(fs::metadata(like)?.permissions())?;
            file.write_all(data)?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&tmp, dir.join(name)));
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written.map_err(|e| io_error("cannot write to the archive or the log directory", &e))
}
