//! Retiring a log's oldest segments to an archive: what is left verifies (from a note the first
//! checkpoint left must sign, never unasked), the writer continues it, the archive verifies on
//! its own and rejoins the rest, and nothing is lost when a retirement is interrupted.

use std::{
    fs,
    path::{Path, PathBuf},
};

use aaa::audit::{
    self, AuditError, AuditSink, AuditWriter, AuditWriterConfig, FileWitness, Problem, Retired,
    Verifier, merkle,
};

use super::audit::{key, rt};

/// Settings for a log of many small segments, each holding a checkpoint.
fn small_segments(dir: &Path) -> AuditWriterConfig {
    let mut c = super::audit::config(dir);
    c.segment_max_bytes = 2048;
    c.max_batch = 4;
    c.checkpoint_every = 4;
    c
}

/// Appends events `from..from + n` to the log in `dir` through `log`.
fn record(log: &AuditWriter, from: usize, n: usize) {
    rt().block_on(async {
        for i in from..from + n {
            log.record(super::audit::decision(i, i % 5 != 0))
                .await
                .unwrap();
        }
        log.flush().await.unwrap();
    });
}

/// Writes `n` events (numbered from `from`) to the log in `dir` in small segments, and closes it.
fn write(dir: &Path, from: usize, n: usize) {
    let log = AuditWriter::open(small_segments(dir), key("docs/audit", 1)).unwrap();
    record(&log, from, n);
    log.close().unwrap();
}

/// The segment files of `dir`, in order, with their first sequence numbers.
fn segments(dir: &Path) -> Vec<(u64, PathBuf)> {
    let mut out: Vec<(u64, PathBuf)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_str().unwrap();
            (name.trim_start_matches("audit-").parse().unwrap(), p)
        })
        .collect();
    out.sort();
    out
}

fn verify(dir: &Path) -> Result<audit::VerifyReport, audit::VerifyError> {
    super::audit::trusted().allow_retired_head().verify_dir(dir)
}

/// A closed log of 60 events in small segments, in `tmp/log`.
fn log_of_segments(tmp: &Path) -> PathBuf {
    let dir = tmp.join("log");
    write(&dir, 0, 60);
    assert!(
        segments(&dir).len() > 8,
        "{} segments",
        segments(&dir).len()
    );
    dir
}

/// `log_of_segments`, retired up to its third segment into `tmp/archive`; and that segment's
/// first record.
fn retired_log(tmp: &Path) -> (PathBuf, u64) {
    let dir = log_of_segments(tmp);
    let cut = segments(&dir)[2].0;
    audit::retire(&dir, cut, &tmp.join("archive")).unwrap();
    (dir, cut)
}

#[test]
fn what_is_left_verifies_the_writer_goes_on_and_the_archive_rejoins_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_of_segments(tmp.path());
    let archive = tmp.path().join("archive");
    let whole = super::audit::trusted().verify_dir(&dir).unwrap();
    let whole_summary = audit::summarize(&dir).unwrap();
    let all_leaves = audit::leaf_hashes(&dir).unwrap();
    let before_segments = segments(&dir);
    let cut = before_segments[3].0;

    let retired: Retired = audit::retire(&dir, cut, &archive).unwrap();
    assert_eq!((retired.records, retired.first_seq), (cut, cut));
    assert_eq!(retired.segments.len(), 3);
    assert_eq!(segments(&dir).first().unwrap().0, cut);
    assert_eq!(segments(&archive).len(), 3);

    // Records missing from the front are refused unless the caller accepts a retired head.
    let refused = super::audit::trusted().verify_dir(&dir).unwrap_err();
    assert_eq!(refused.problem, Problem::Retired { first_seq: cut });
    let left = verify(&dir).unwrap();
    assert_eq!(left.retired, cut);
    assert_eq!(left.records, whole.records - cut);
    assert_eq!(left.root, whole.root, "the same tree as the whole log");
    assert!(left.checkpoints > 0);
    // The summary of what is left says how much it leaves out; with the archive, it is the
    // whole log's.
    let left_summary = audit::summarize(&dir).unwrap();
    assert_eq!(left_summary.retired, cut);
    assert!(left_summary.by_route != whole_summary.by_route);
    assert_eq!(
        audit::summarize_dirs(&[&archive, &dir]).unwrap(),
        whole_summary
    );
    // The archive is the log's head, verifiable on its own.
    let head = super::audit::trusted().verify_dir(&archive).unwrap();
    assert_eq!((head.records, head.retired), (cut, 0));
    // The proofs of the records left are those of the whole log; retired ones have none here.
    assert!(matches!(
        audit::leaf_hashes(&dir),
        Err(AuditError::Unavailable(_))
    ));
    let kept = audit::log_leaves(&dir).unwrap();
    assert_eq!((kept.size(), kept.retired()), (whole.records, cut));
    for m in [cut, cut + 1, whole.records - 1] {
        let proof = kept.inclusion_proof(m).unwrap();
        assert_eq!(
            Some(&proof),
            merkle::inclusion_proof(&all_leaves, m).as_ref()
        );
        merkle::verify_inclusion(
            m,
            whole.records,
            &all_leaves[m as usize],
            &proof,
            &whole.root,
        )
        .unwrap();
    }
    assert_eq!(kept.inclusion_proof(cut - 1), None);
    assert_eq!(
        kept.consistency_proof(cut),
        merkle::consistency_proof(&all_leaves, cut)
    );

    // The writer goes on, from its resume point and from a whole scan.
    write(&dir, 60, 10);
    fs::remove_file(dir.join("resume.json")).unwrap();
    write(&dir, 70, 10);
    let grown = verify(&dir).unwrap();
    assert_eq!(grown.retired, cut);
    assert!(grown.events >= left.events + 20);

    // A second retirement continues the archive.
    let cut2 = segments(&dir)[2].0;
    let again = audit::retire(&dir, cut2, &archive).unwrap();
    assert_eq!((again.records, again.first_seq), (cut2 - cut, cut2));
    let head = super::audit::trusted().verify_dir(&archive).unwrap();
    assert_eq!(head.records, cut2);
    let left = verify(&dir).unwrap();
    assert_eq!(left.retired, cut2);

    // Put back beside the rest, the archive makes the whole log again, from record 0.
    for (_, path) in segments(&archive) {
        fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    fs::remove_file(dir.join("retired.json")).unwrap();
    let rejoined = super::audit::trusted().verify_dir(&dir).unwrap();
    assert_eq!(rejoined.retired, 0);
    assert_eq!(rejoined.records, cut2 + left.records);
    assert_eq!(rejoined.root, left.root);
    assert_eq!(
        audit::leaf_hashes(&dir).unwrap().len() as u64,
        rejoined.records
    );
}

/// The note is not trusted: a changed frontier fails at the first checkpoint left, a changed
/// `prev` at the first record, a broken note before any record; the writer refuses to start on a
/// broken note rather than start a new log.
#[test]
fn a_forged_or_broken_retirement_note_is_caught() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, cut) = retired_log(tmp.path());
    let note_path = dir.join("retired.json");
    let good = fs::read_to_string(&note_path).unwrap();
    let note: serde_json::Value = serde_json::from_str(&good).unwrap();
    let flip = |hex: &str| {
        let mut h = hex.to_owned();
        let first = if h.starts_with('0') { "1" } else { "0" };
        h.replace_range(..1, first);
        h
    };

    let mut forged = note.clone();
    forged["frontier"][0] = flip(note["frontier"][0].as_str().unwrap()).into();
    fs::write(&note_path, forged.to_string()).unwrap();
    let e = verify(&dir).unwrap_err();
    assert_eq!(e.problem, Problem::CheckpointMismatch("root hash"), "{e}");

    let mut forged = note.clone();
    forged["prev"] = flip(note["prev"].as_str().unwrap()).into();
    fs::write(&note_path, forged.to_string()).unwrap();
    let e = verify(&dir).unwrap_err();
    assert_eq!(e.problem, Problem::HashLink, "{e}");
    assert_eq!(e.location.unwrap().seq, cut);

    let mut elsewhere = note.clone();
    elsewhere["size"] = (cut + 1).into();
    // A size that leaves no room for the next sequence numbers, with a frontier that fits it.
    let mut huge = note.clone();
    huge["size"] = u64::MAX.into();
    huge["frontier"] = vec![note["prev"].clone(); 64].into();
    for (text, expected) in [
        (huge.to_string(), "retired.json is malformed"),
        ("{".to_owned(), "retired.json is malformed"),
        (
            elsewhere.to_string(),
            // One frontier hash per bit of the size: a size moved alone does not parse, or
            // names no segment.
            if (cut + 1).count_ones() == cut.count_ones() {
                "no segment starts where retired.json says the log starts"
            } else {
                "retired.json is malformed"
            },
        ),
    ] {
        fs::write(&note_path, text).unwrap();
        let e = verify(&dir).unwrap_err();
        assert_eq!(e.problem, Problem::RetiredNote(expected), "{e}");
        let _ = fs::remove_file(dir.join("resume.json"));
        let refused = AuditWriter::open(small_segments(&dir), key("docs/audit", 1)).unwrap_err();
        assert!(
            matches!(&refused, AuditError::Corrupt { segment, .. } if segment == "retired.json"),
            "{refused}"
        );
    }
    // Not a regular file (a FIFO would block its reader): refused by name, unopened.
    fs::remove_file(&note_path).unwrap();
    fs::create_dir(&note_path).unwrap();
    let e = verify(&dir).unwrap_err();
    assert_eq!(
        e.problem,
        Problem::RetiredNote("retired.json is not a regular file")
    );
    fs::remove_dir(&note_path).unwrap();
    fs::write(&note_path, good).unwrap();
    verify(&dir).unwrap();
}

#[test]
fn retire_refuses_what_it_cannot_retire_and_moves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_of_segments(tmp.path());
    let archive = tmp.path().join("archive");
    let before = segments(&dir);
    let last = before.last().unwrap().0;
    // Not the first record of a segment; the log's first segment; its last (being written).
    for cut in [before[2].0 + 1, 0, last, last + 1000] {
        let e = audit::retire(&dir, cut, &archive).unwrap_err();
        assert!(matches!(e, AuditError::Config(_)), "{cut}: {e}");
    }
    // An archive that does not end where the retired records start.
    let other = tmp.path().join("other");
    write(&other, 0, 12);
    let e = audit::retire(&dir, before[2].0, &other).unwrap_err();
    assert!(matches!(e, AuditError::Config(_)), "{e}");
    assert_eq!(segments(&dir), before);
    assert!(!dir.join("retired.json").exists());
    super::audit::trusted().verify_dir(&dir).unwrap();

    // A segment to retire that is not a contiguous part of the log: a record deleted, or one
    // whose link to the one before was changed.
    let second = &before[1].1;
    let good = fs::read(second).unwrap();
    let lines: Vec<&[u8]> = good.split_inclusive(|&b| b == b'\n').collect();
    let without_first: Vec<u8> = lines[1..].concat();
    let text = String::from_utf8(good.clone()).unwrap();
    let at = text.find("\"prev\":\"").unwrap() + "\"prev\":\"".len();
    let mut relinked = text.clone();
    let flipped = if text[at..].starts_with('0') {
        "1"
    } else {
        "0"
    };
    relinked.replace_range(at..=at, flipped);
    for (bad, reason) in [
        (without_first, "sequence number out of order"),
        (relinked.into_bytes(), "hash link broken"),
    ] {
        fs::write(second, &bad).unwrap();
        let e = audit::retire(&dir, before[2].0, &archive).unwrap_err();
        assert!(
            matches!(&e, AuditError::Corrupt { reason: r, line: 1, .. } if *r == reason),
            "{e}"
        );
        assert_eq!(segments(&dir), before);
    }
    fs::write(second, good).unwrap();

    // A FIFO named like a segment in the archive is refused unopened (it would block).
    let fifo_archive = tmp.path().join("fifo-archive");
    fs::create_dir(&fifo_archive).unwrap();
    let first_name = before[0].1.file_name().unwrap();
    let status = std::process::Command::new("mkfifo")
        .arg(fifo_archive.join(first_name))
        .status()
        .unwrap();
    assert!(status.success());
    let (d, cut) = (dir.clone(), before[2].0);
    let e = super::audit::returns(move || audit::retire(&d, cut, &fifo_archive)).unwrap_err();
    assert!(matches!(e, AuditError::Io { .. }), "{e}");
    assert_eq!(segments(&dir), before);
    super::audit::trusted().verify_dir(&dir).unwrap();
}

/// The service keeps writing while its old segments are retired.
#[test]
fn segments_are_retired_while_the_writer_appends() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let log = AuditWriter::open(small_segments(&dir), key("docs/audit", 1)).unwrap();
    record(&log, 0, 40);
    let cut = segments(&dir)[4].0;
    audit::retire(&dir, cut, &tmp.path().join("archive")).unwrap();
    record(&log, 40, 40);
    log.close().unwrap();
    let report = verify(&dir).unwrap();
    assert_eq!(report.retired, cut);
    assert!(report.events >= 40);
}

/// A retirement interrupted after its note was written (the segments are archived, not yet
/// removed): the log starts at the note, the writer goes on, and the next retirement removes
/// them.
#[test]
fn an_interrupted_retirement_is_finished_by_the_next() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_of_segments(tmp.path());
    let archive = tmp.path().join("archive");
    let cut = segments(&dir)[2].0;
    audit::retire(&dir, cut, &archive).unwrap();
    let summary = audit::summarize(&dir).unwrap();
    // As if the removal had not happened.
    for (_, path) in segments(&archive) {
        fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    assert_eq!(verify(&dir).unwrap().retired, cut);
    // The summary does not count them twice either.
    assert_eq!(audit::summarize(&dir).unwrap(), summary);
    fs::remove_file(dir.join("resume.json")).unwrap();
    write(&dir, 60, 8);
    assert_eq!(verify(&dir).unwrap().retired, cut);
    let cut2 = segments(&dir)[4].0;
    audit::retire(&dir, cut2, &archive).unwrap();
    assert_eq!(segments(&dir).first().unwrap().0, cut2);
    assert_eq!(
        super::audit::trusted()
            .verify_dir(&archive)
            .unwrap()
            .records,
        cut2
    );
    verify(&dir).unwrap();
}

/// An anchor older than the records left cannot be checked here: refused, by the verifier
/// and by the writer, rather than passed unchecked.
#[test]
fn an_anchor_older_than_the_records_left_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let witness = tmp.path().join("witness.note");
    let mut c = small_segments(&dir);
    c.witness = Some(std::sync::Arc::new(FileWitness::new(&witness)));
    let log = AuditWriter::open(c, key("docs/audit", 1)).unwrap();
    record(&log, 0, 8);
    let old_anchor = fs::read_to_string(&witness).unwrap();
    record(&log, 8, 40);
    log.close().unwrap();
    let cut = segments(&dir)[5].0;
    audit::retire(&dir, cut, &tmp.path().join("archive")).unwrap();

    // The witness's latest anchor is checked against what is left.
    let latest = fs::read_to_string(&witness).unwrap();
    verify(&dir).unwrap();
    super::audit::trusted()
        .allow_retired_head()
        .with_anchor(latest)
        .verify_dir(&dir)
        .unwrap();
    let e = super::audit::trusted()
        .allow_retired_head()
        .with_anchor(old_anchor.clone())
        .verify_dir(&dir)
        .unwrap_err();
    assert!(
        matches!(e.problem, Problem::AnchorRetired { retired, .. } if retired == cut),
        "{e}"
    );
    fs::write(&witness, old_anchor).unwrap();
    fs::remove_file(dir.join("resume.json")).unwrap();
    let mut c = small_segments(&dir);
    c.witness = Some(std::sync::Arc::new(FileWitness::new(&witness)));
    assert!(AuditWriter::open(c, key("docs/audit", 1)).is_err());
}

/// A copy is no more readable than its original (a log names people): the archive's segments
/// and the note keep the permissions of the log's files.
#[cfg(unix)]
#[test]
fn the_archive_keeps_the_permissions_of_the_log() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_of_segments(tmp.path());
    let archive = tmp.path().join("archive");
    for (_, path) in segments(&dir) {
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let cut = segments(&dir)[2].0;
    audit::retire(&dir, cut, &archive).unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for (_, path) in segments(&archive) {
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert_eq!(mode(&dir.join("retired.json")), 0o600);
    // A second retirement into a new archive copies the note too, as restricted.
    let second = tmp.path().join("archive-2");
    audit::retire(&dir, segments(&dir)[2].0, &second).unwrap();
    assert_eq!(mode(&second.join("retired.json")), 0o600);
    assert!(segments(&second).iter().all(|(_, p)| mode(p) == 0o600));
    super::audit::trusted()
        .allow_retired_head()
        .verify_dir(&second)
        .unwrap();
}

/// A retired log, made once: its directory (with `retired.json`) for the property below.
fn retired_fixture() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let dir = log_of_segments(tmp.path());
        audit::retire(&dir, segments(&dir)[3].0, &tmp.path().join("archive")).unwrap();
        tmp
    })
    .path()
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

    /// Any one byte of the note changed: the verifier refuses the log, with an error and no
    /// panic, and the writer refuses to start (it would continue the log from a wrong tree, and
    /// sign it).
    #[test]
    fn any_byte_of_the_note_changed_is_caught(
        at in proptest::prelude::any::<proptest::sample::Index>(),
        byte in proptest::prelude::any::<u8>(),
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("log");
        fs::create_dir(&dir).unwrap();
        for entry in fs::read_dir(retired_fixture().join("log")).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
            }
        }
        fs::remove_file(dir.join("resume.json")).unwrap();
        let mut note = fs::read(dir.join("retired.json")).unwrap();
        let i = at.index(note.len());
        proptest::prop_assume!(note[i] != byte);
        note[i] = byte;
        fs::write(dir.join("retired.json"), &note).unwrap();
        proptest::prop_assert!(verify(&dir).is_err());
        let started = AuditWriter::open(small_segments(&dir), key("docs/audit", 1));
        proptest::prop_assert!(
            matches!(started, Err(AuditError::Corrupt { .. })),
            "{:?}",
            started.err()
        );
    }
}

/// `checkpoint_note(dir, size)` finds the note of the checkpoint record at `seq == size` (it
/// signs the tree of the records before it), and nothing for any other record, past the end, or
/// retired: the lookup behind `aaa audit prove --at`.
#[test]
fn the_checkpoint_of_a_size_is_found_and_only_its() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = log_of_segments(tmp.path());
    let kinds: Vec<(u64, bool)> = segments(&dir)
        .iter()
        .flat_map(|(_, path)| {
            fs::read_to_string(path)
                .unwrap()
                .lines()
                .map(|line| {
                    let rec: serde_json::Value = serde_json::from_str(line).unwrap();
                    (rec["seq"].as_u64().unwrap(), rec["kind"] == "checkpoint")
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let found = |seq: u64| {
        audit::checkpoint_note(&dir, seq).unwrap().map(|text| {
            audit::Checkpoint::parse_body(&audit::SignedNote::parse(&text).unwrap().body)
                .unwrap()
                .size
        })
    };
    for &(seq, checkpoint) in &kinds {
        assert_eq!(found(seq), checkpoint.then_some(seq), "seq {seq}");
    }
    assert!(kinds.iter().filter(|(_, c)| *c).count() > 5);
    assert_eq!(found(kinds.len() as u64), None);
    assert_eq!(found(u64::MAX), None);

    let cut = segments(&dir)[3].0;
    audit::retire(&dir, cut, &tmp.path().join("archive")).unwrap();
    for &(seq, checkpoint) in &kinds {
        let want = (checkpoint && seq >= cut).then_some(seq);
        assert_eq!(found(seq), want, "seq {seq} after the retirement");
    }
}

/// The archives and the log directory checked as one log (`Verifier::verify_dirs`): what the
/// archive taught about keys carries into the rest (a key change retired with its records still
/// puts the new key in charge), each directory must start where the one before ends, and the
/// order matters. Checked apart, the log left could not be verified with the first key alone.
#[test]
fn archives_and_the_log_verify_as_one_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("log");
    let first = key("docs/audit", 1);
    let log = AuditWriter::open(small_segments(&dir), key("docs/audit", 1)).unwrap();
    record(&log, 0, 20);
    rt().block_on(log.rotate_key(key("docs/audit-2", 2)))
        .unwrap();
    record(&log, 20, 40);
    log.close().unwrap();
    let whole = Verifier::new([first.verifier_key()])
        .verify_dir(&dir)
        .unwrap();
    assert_eq!(whole.key_changes, 1);
    let whole_summary = audit::summarize(&dir).unwrap();
    let key_change = segments(&dir)
        .iter()
        .flat_map(|(_, path)| {
            let text = fs::read_to_string(path).unwrap();
            text.lines()
                .filter(|line| line.contains("\"kind\":\"key_change\""))
                .map(|line| {
                    serde_json::from_str::<serde_json::Value>(line).unwrap()["seq"]
                        .as_u64()
                        .unwrap()
                })
                .collect::<Vec<_>>()
        })
        .next()
        .unwrap();
    // Retire past the key change, in two steps, into two archives.
    let cuts: Vec<u64> = segments(&dir).iter().map(|(seq, _)| *seq).collect();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let (cut_a, cut_b) = (cuts[cuts.len() / 2], cuts[cuts.len() / 2 + 2]);
    assert!(
        cut_a > key_change + 1,
        "the key change is retired: {cuts:?}"
    );
    audit::retire(&dir, cut_a, &a).unwrap();
    audit::retire(&dir, cut_b, &b).unwrap();

    let only_first = Verifier::new([first.verifier_key()]);
    let both_keys = Verifier::new([first.verifier_key(), key("docs/audit-2", 2).verifier_key()]);
    let report = only_first.verify_dirs(&[&a, &b, &dir]).unwrap();
    assert_eq!(
        (
            report.records,
            report.root,
            report.retired,
            report.key_changes
        ),
        (whole.records, whole.root, 0, 1)
    );
    // The log left alone: its checkpoints are signed by the second key, unknown without the
    // key change that introduced it.
    let e = only_first
        .clone()
        .allow_retired_head()
        .verify_dir(&dir)
        .unwrap_err();
    assert_eq!(e.problem, Problem::UntrustedKey, "{e}");
    // From the second archive on, a retired head asked for.
    let e = both_keys.verify_dirs(&[&b, &dir]).unwrap_err();
    assert_eq!(e.problem, Problem::Retired { first_seq: cut_a }, "{e}");
    let report = both_keys
        .clone()
        .allow_retired_head()
        .verify_dirs(&[&b, &dir])
        .unwrap();
    assert_eq!((report.retired, report.root), (cut_a, whole.root));
    // Out of order, one missing, or an empty one: refused.
    let empty = tmp.path().join("empty");
    fs::create_dir(&empty).unwrap();
    for dirs in [
        vec![a.as_path(), dir.as_path()],
        vec![b.as_path(), a.as_path(), dir.as_path()],
        vec![empty.as_path(), a.as_path(), b.as_path(), dir.as_path()],
        vec![a.as_path(), b.as_path(), empty.as_path(), dir.as_path()],
    ] {
        let e = both_keys
            .clone()
            .allow_retired_head()
            .verify_dirs(&dirs)
            .unwrap_err();
        assert!(
            matches!(e.problem, Problem::RetiredNote(_)),
            "{dirs:?}: {e}"
        );
    }

    // A retirement into the second archive, interrupted after its copies, before its note: the
    // archive ends with copies of segments still in the log directory. Likewise a third archive
    // it was starting (the log's note copied first). Checked in the log directory: one log.
    let (next, _) = segments(&dir)[0].clone();
    let (_, first_left) = &segments(&dir)[0];
    fs::copy(first_left, b.join(first_left.file_name().unwrap())).unwrap();
    let c = tmp.path().join("c");
    fs::create_dir(&c).unwrap();
    fs::copy(dir.join("retired.json"), c.join("retired.json")).unwrap();
    fs::copy(first_left, c.join(first_left.file_name().unwrap())).unwrap();
    assert_eq!(next, cut_b);
    for dirs in [vec![&a, &b, &dir], vec![&a, &b, &c, &dir]] {
        let dirs: Vec<&Path> = dirs.into_iter().map(PathBuf::as_path).collect();
        let report = only_first.verify_dirs(&dirs).unwrap();
        assert_eq!(
            (report.records, report.root),
            (whole.records, whole.root),
            "{dirs:?}"
        );
        // Counted once.
        assert_eq!(
            audit::summarize_dirs(&dirs).unwrap(),
            whole_summary,
            "{dirs:?}"
        );
    }

    // A tampered archive fails the whole.
    let (_, archived) = &segments(&a)[1];
    let text = fs::read_to_string(archived).unwrap();
    fs::write(archived, text.replacen("\"allow\"", "\"deny\"", 1)).unwrap();
    assert!(only_first.verify_dirs(&[&a, &b, &dir]).is_err());
}

/// A retired head with no checkpoint left after it (the records after the note cut before the
/// first checkpoint, or a note and records made up together) is refused by the verifier and by
/// the writer's start, which would sign the tree it claims: a retirement always leaves one.
#[test]
fn a_retired_head_no_checkpoint_signs_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (dir, _) = retired_log(tmp.path());
    verify(&dir).unwrap();
    let left = segments(&dir);
    let (_, first) = &left[0];
    let text = fs::read_to_string(first).unwrap();
    let before_checkpoint: String = text
        .split_inclusive('\n')
        .take_while(|line| !line.contains("\"kind\":\"checkpoint\""))
        .collect();
    assert!(before_checkpoint.len() < text.len());
    fs::write(first, before_checkpoint).unwrap();
    for (_, later) in &left[1..] {
        fs::remove_file(later).unwrap();
    }
    let _ = fs::remove_file(dir.join("resume.json"));
    let e = verify(&dir).unwrap_err();
    assert!(
        matches!(e.problem, Problem::RetiredNote(reason) if reason.contains("no checkpoint")),
        "{e}"
    );
    let refused = AuditWriter::open(small_segments(&dir), key("docs/audit", 1)).unwrap_err();
    assert!(
        matches!(&refused, AuditError::Corrupt { segment, reason, .. }
            if segment == "retired.json" && reason.contains("no checkpoint")),
        "{refused}"
    );
}
