//! Anchoring checkpoints outside the log, so that a restored stale copy is noticed.

use std::{
    fmt,
    fs::{self, File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
};

use super::{
    AuditError,
    note::{Checkpoint, SignedNote},
};

/// Receives every checkpoint the writer appends, after it is durable in the log, and remembers
/// the latest one.
///
/// The writer refuses to open a log that is shorter than, or disagrees with, the latest anchored
/// checkpoint: an attacker who restores an old copy of the log (to erase recent records) must also
/// roll back the witness, which should live elsewhere (another host, a transparency log, a
/// write-once store).
pub trait Witness: Send + Sync + fmt::Debug {
    /// Stores `note` (a signed checkpoint) as the latest anchor.
    ///
    /// # Errors
    ///
    /// [`AuditError`] when the anchor could not be stored (the writer logs it and goes on).
    fn anchor(&self, note: &str) -> Result<(), AuditError>;

    /// The latest anchored signed checkpoint, if any.
    ///
    /// # Errors
    ///
    /// [`AuditError`] when the anchor could not be read (the writer then refuses to start).
    fn latest(&self) -> Result<Option<String>, AuditError>;
}

/// A witness that keeps the latest checkpoint in one file, replaced atomically. Only checkpoints
/// of the same log at least as large as the stored one replace it; one of another log, or of the
/// stored size with another root (a fork), is refused and the stored one kept, the evidence.
#[derive(Debug)]
pub struct FileWitness {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileWitness {
    /// A witness storing its anchor at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileWitness {
            path: path.into(),
            lock: Mutex::new(()),
        }
    }

    /// Where the anchor is stored.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn checkpoint_of(note: &str) -> Option<Checkpoint> {
    let note = SignedNote::parse(note).ok()?;
    Checkpoint::parse_body(&note.body).ok()
}

impl Witness for FileWitness {
    fn anchor(&self, note: &str) -> Result<(), AuditError> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let new = checkpoint_of(note).ok_or(AuditError::Unavailable("malformed checkpoint"))?;
        if let Some(old) = self.latest()?.as_deref().and_then(checkpoint_of) {
            if old.origin != new.origin {
                return Err(AuditError::Unavailable(
                    "the checkpoint is of another log than the witness anchor",
                ));
            }
            if old.size == new.size && old.root != new.root {
                return Err(AuditError::Diverged { size: new.size });
            }
            if old.size > new.size {
                return Ok(());
            }
        }
        let tmp = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut file = OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(&tmp)?;
            file.write_all(note.as_bytes())?;
            file.sync_data()?;
            fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent()
                && let Ok(d) = File::open(dir)
            {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|_| AuditError::Unavailable("cannot write the witness anchor"))
    }

    fn latest(&self) -> Result<Option<String>, AuditError> {
        match fs::read_to_string(&self.path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(_) => Err(AuditError::Unavailable("cannot read the witness anchor")),
        }
    }
}
