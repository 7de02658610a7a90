//! `aaa audit keygen | verify | prove | retire | summary`.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use aaa_core::audit::{self, SigningKey, Verifier, VerifierKey, VerifyReport};

const USAGE: &str = "usage:
  aaa audit keygen --name NAME --out PRIVATE_KEY_FILE
      generate an Ed25519 key; write the private key (mode 0600, never overwritten) and print
      the verifier key `name+keyid+base64`
  aaa audit verify DIR --key VERIFIER_KEY_FILE... [--anchor CHECKPOINT_FILE] [--allow-retired]
                   [--archive ARCHIVE_DIR...]
      check every record, hash link, sequence number, checkpoint and signature of the log in DIR;
      exit 0 if it verifies, 1 if not (the first bad record is located), 2 on usage errors.
      A log whose oldest segments were retired (`retire`) is refused unless --allow-retired:
      it is then checked from its first record left. With the archives they were retired to
      (`--archive`, oldest first), the archives and DIR are checked as one log, each starting
      where the one before ends (--allow-retired then concerns the oldest archive)
  aaa audit prove DIR (--seq SEQ | --since SIZE) --key VERIFIER_KEY_FILE... [--anchor FILE]
                  [--allow-retired] [--at SIZE] [--archive ARCHIVE_DIR...]
      verify the log, then print as JSON the inclusion proof of record SEQ (the `seq` of an
      audit receipt) in the tree the log's last checkpoint signs, with that checkpoint: whoever
      holds the receipt checks the checkpoint's signature with the service's verifier key, then
      the proof against its root (RFC 9162), and knows the record is in the log for good. With
      --since, the consistency proof from an earlier checkpoint's tree of SIZE records to it:
      the log only grew since. With --at, in the tree of an earlier checkpoint of SIZE records
      (one the client holds) instead of the last one's. Records retired from DIR are proved
      with the archives they were retired to (`--archive`, oldest first), checked with DIR as
      one log
  aaa audit retire DIR --before SEQ --to ARCHIVE_DIR
      move the segments holding the records before SEQ (the first record of a segment, as in
      its file name) to ARCHIVE_DIR, and note in DIR the tree they make, so that what is left
      still verifies and the writer continues it; safe while the service writes. The archive
      continues from one retirement to the next. Verify the log first
  aaa audit summary DIR [--archive ARCHIVE_DIR...]
      count authorization decisions per principal (id and issuer), per route, per relaying
      service (relayed requests), and those on requests carrying an ignored credential (a
      forged forwarded identity) (does not verify; control characters in names are shown
      escaped). Of a log whose oldest segments were retired, counts the records left and says
      how many are in the archive; with the archives (`--archive`, oldest first), counts them
      all";

/// Runs `aaa audit ARGS...`.
pub(crate) fn main(args: &[String]) -> ExitCode {
    let result = match args.first().map(String::as_str) {
        Some("keygen") => keygen(args.get(1..).unwrap_or_default()),
        Some("verify") => verify(args.get(1..).unwrap_or_default()),
        Some("retire") => retire(args.get(1..).unwrap_or_default()),
        Some("prove") => prove(args.get(1..).unwrap_or_default()),
        Some("summary") => summary(args.get(1..).unwrap_or_default()),
        Some("--help" | "-h") => {
            out!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(Usage("unknown or missing audit command".to_owned())),
    };
    match result {
        Ok(code) => code,
        Err(Usage(msg)) => {
            eprintln!("aaa audit: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

struct Usage(String);

/// Positional arguments and `(flag, value)` options.
type Parsed = (Vec<String>, Vec<(String, String)>);

/// Splits `args` into positional arguments and `--flag value` options; `switches` take no
/// value (recorded with an empty one).
fn parse(args: &[String], flags: &[&str], switches: &[&str]) -> Result<Parsed, Usage> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if let Some(flag) = arg.strip_prefix("--") {
            if switches.contains(&flag) {
                options.push((flag.to_owned(), String::new()));
                continue;
            }
            if !flags.contains(&flag) {
                return Err(Usage(format!("unknown option `--{flag}`")));
            }
            let value = iter
                .next()
                .ok_or_else(|| Usage(format!("`--{flag}` needs a value")))?;
            options.push((flag.to_owned(), value.clone()));
        } else {
            positional.push(arg.clone());
        }
    }
    Ok((positional, options))
}

fn option<'a>(options: &'a [(String, String)], name: &str) -> Option<&'a str> {
    options
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn keygen(args: &[String]) -> Result<ExitCode, Usage> {
    let (positional, options) = parse(args, &["name", "out"], &[])?;
    if !positional.is_empty() {
        return Err(Usage("keygen takes no positional arguments".to_owned()));
    }
    let name = option(&options, "name").ok_or_else(|| Usage("`--name` is required".to_owned()))?;
    let out = option(&options, "out").ok_or_else(|| Usage("`--out` is required".to_owned()))?;
    let key = match SigningKey::generate(name) {
        Ok(key) => key,
        Err(e) => {
            eprintln!("aaa audit keygen: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Err(e) = audit::write_private_key(Path::new(out), &key) {
        eprintln!("aaa audit keygen: {e}");
        return Ok(ExitCode::FAILURE);
    }
    out!("{}", key.verifier_key());
    Ok(ExitCode::SUCCESS)
}

/// Reads verifier keys: a file with one key per line (blank lines and `#` comments ignored), or
/// the key text itself.
fn read_keys(arg: &str) -> Result<Vec<VerifierKey>, String> {
    let text = match std::fs::read_to_string(arg) {
        Ok(text) => text,
        Err(_) if VerifierKey::parse(arg).is_ok() => arg.to_owned(),
        Err(e) => return Err(format!("cannot read key file `{arg}`: {e}")),
    };
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| VerifierKey::parse(l).map_err(|e| format!("`{arg}`: {e}")))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn describe(report: &VerifyReport) -> String {
    let checkpoint = match report.last_checkpoint {
        Some(seq) => format!(
            "last checkpoint at seq {seq} covers {} records; {} records after it are not yet covered",
            report.covered, report.uncovered
        ),
        None => format!(
            "no checkpoint: none of the {} records is covered by a signature",
            report.records
        ),
    };
    let retired = match report.retired {
        0 => String::new(),
        n => format!(
            "\nthe {n} records before seq {n} were retired to an archive (not checked here)"
        ),
    };
    format!(
        "{} records ({} events, {} checkpoints, {} gaps with {} events lost, {} recoveries, {} key changes)\n{checkpoint}{retired}\nroot {}",
        report.records,
        report.events,
        report.checkpoints,
        report.gaps,
        report.dropped,
        report.recoveries,
        report.key_changes,
        hex(&report.root)
    )
}

/// The directory and the verifier that the arguments of `aaa audit COMMAND DIR --key ...
/// [--anchor FILE] [--allow-retired]` describe; `Err` is what to return (a usage error, or exit 2
/// after saying why).
fn log_and_verifier(
    command: &str,
    positional: &[String],
    options: &[(String, String)],
) -> Result<(PathBuf, Verifier), Result<ExitCode, Usage>> {
    let [dir] = positional else {
        return Err(Err(Usage(format!("{command} takes exactly one directory"))));
    };
    let mut keys = Vec::new();
    for (_, file) in options.iter().filter(|(k, _)| k == "key") {
        match read_keys(file) {
            Ok(k) => keys.extend(k),
            Err(e) => {
                eprintln!("aaa audit {command}: {e}");
                return Err(Ok(ExitCode::from(2)));
            }
        }
    }
    if keys.is_empty() {
        return Err(Err(Usage("at least one `--key` is required".to_owned())));
    }
    let mut verifier = Verifier::new(keys);
    if option(options, "allow-retired").is_some() {
        verifier = verifier.allow_retired_head();
    }
    if let Some(anchor) = option(options, "anchor") {
        match std::fs::read_to_string(anchor) {
            Ok(text) => verifier = verifier.with_anchor(text),
            Err(e) => {
                eprintln!("aaa audit {command}: cannot read anchor `{anchor}`: {e}");
                return Err(Ok(ExitCode::from(2)));
            }
        }
    }
    let dir = PathBuf::from(dir);
    for path in archive_dirs(options).into_iter().chain([dir.as_path()]) {
        if !path.is_dir() {
            eprintln!(
                "aaa audit {command}: `{}` is not a directory",
                path.display()
            );
            return Err(Ok(ExitCode::from(2)));
        }
    }
    Ok((dir, verifier))
}

fn verify(args: &[String]) -> Result<ExitCode, Usage> {
    let (positional, options) = parse(args, &["key", "anchor", "archive"], &["allow-retired"])?;
    let (dir, verifier) = match log_and_verifier("verify", &positional, &options) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    // The archives first, oldest first: one log, as if in one directory.
    let archives = archive_dirs(&options);
    let dirs: Vec<&Path> = archives.iter().copied().chain([dir.as_path()]).collect();
    match verifier.verify_dirs(&dirs) {
        // A wrong path, or segments renamed away: nothing was shown to be intact.
        Ok(report) if report.records == 0 => {
            out!(
                "FAILED: no audit record in `{}` (no `audit-<seq>.jsonl` segment, or only an empty one)",
                dir.display()
            );
            Ok(ExitCode::FAILURE)
        }
        Ok(report) => {
            out!("ok: {}", describe(&report));
            if !archives.is_empty() {
                out!(
                    "(checked as one log: {} archive{} and the log directory)",
                    archives.len(),
                    if archives.len() == 1 { "" } else { "s" }
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            out!("FAILED: {e}");
            out!("verified before the failure: {}", describe(&e.report));
            Ok(ExitCode::FAILURE)
        }
    }
}

fn prove(args: &[String]) -> Result<ExitCode, Usage> {
    let (positional, options) = parse(
        args,
        &["key", "anchor", "seq", "since", "at", "archive"],
        &["allow-retired"],
    )?;
    let number = |name: &str| {
        option(&options, name)
            .map(|v| {
                v.parse::<u64>()
                    .map_err(|_| Usage(format!("`--{name}` takes a number")))
            })
            .transpose()
    };
    // The inclusion of record `seq`, or the consistency of the tree of `since` records; in the
    // tree of the checkpoint of `at` records, or of the last one.
    let (seq, since) = match (number("seq")?, number("since")?) {
        (Some(seq), None) => (Some(seq), None),
        (None, Some(since)) => (None, Some(since)),
        _ => return Err(Usage("give one of `--seq` and `--since`".to_owned())),
    };
    let at = number("at")?;
    let (dir, verifier) = match log_and_verifier("prove", &positional, &options) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    let failed = |why: String| {
        out!("FAILED: {why}");
        Ok(ExitCode::FAILURE)
    };
    let changed = || failed("the log changed while it was read: ask again".to_owned());
    // The archives of the records retired from the log, oldest first, then the log: one log.
    let archives = archive_dirs(&options);
    let dirs: Vec<&Path> = archives.iter().copied().chain([dir.as_path()]).collect();
    let older = if archives.is_empty() {
        "give the archive it went to with `--archive`"
    } else {
        "give the older archive, first"
    };
    // Only from a log that verifies.
    let report = match verifier.verify_dirs(&dirs) {
        Ok(report) => report,
        Err(e) => return failed(format!("the log does not verify: {e}")),
    };
    let Some(last) = report.checkpoint_note.clone() else {
        return failed("no checkpoint signs the log yet".to_owned());
    };
    let leaves = match whole_leaves(&dirs) {
        Ok(Some(leaves)) => leaves,
        Ok(None) => return changed(),
        Err(e) => return failed(e.to_string()),
    };
    let (covered, note) = match at {
        None => (report.covered, last),
        Some(at) if at > report.covered => {
            return failed(format!(
                "`--at` {at} is past the last checkpoint's tree ({} records)",
                report.covered
            ));
        }
        Some(at) => match find_checkpoint(&dirs, at) {
            Ok(Some(note)) => (at, note),
            Ok(None) if at < leaves.retired() => {
                return failed(format!(
                    "the checkpoint of {at} records was retired to an archive: {older}"
                ));
            }
            Ok(None) => {
                return failed(format!(
                    "no checkpoint in the log signs the tree of {at} records: `--at` takes the \
                     size of one (the second line of its note)"
                ));
            }
            Err(e) => return failed(e.to_string()),
        },
    };
    let Some(leaves) = leaves.first(covered) else {
        return changed();
    };
    // The note, read apart from the leaves, must be of the tree the proof is given in (its
    // signature was checked with every checkpoint of the log; the client checks it again).
    if !signs_tree(&note, &leaves) {
        return changed();
    }
    if let Some(since) = since {
        if since == 0 || since > covered {
            return failed(format!(
                "`--since` is a tree size from 1 to the checkpoint's, {covered}"
            ));
        }
        let Some(proof) = leaves.consistency_proof(since) else {
            return failed(format!(
                "the proof from size {since} needs records retired to an archive: {older}"
            ));
        };
        let json = serde_json::json!({
            "since": since,
            "tree_size": covered,
            "proof": proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
            "checkpoint": note,
        });
        out!("{json}");
        return Ok(ExitCode::SUCCESS);
    }
    let seq = seq.unwrap_or_default();
    if seq >= covered {
        return failed(format!(
            "record {seq} is not covered by the checkpoint ({covered} records): ask again after \
             the next one, or name a later one"
        ));
    }
    if seq < leaves.retired() {
        return failed(format!("record {seq} was retired to an archive: {older}"));
    }
    let leaf = usize::try_from(seq - leaves.retired())
        .ok()
        .and_then(|i| leaves.kept().get(i).copied());
    let (Some(leaf), Some(proof)) = (leaf, leaves.inclusion_proof(seq)) else {
        return changed();
    };
    let json = serde_json::json!({
        "seq": seq,
        "leaf_hash": hex(&leaf),
        "tree_size": covered,
        "proof": proof.iter().map(|h| hex(h)).collect::<Vec<_>>(),
        "checkpoint": note,
    });
    out!("{json}");
    Ok(ExitCode::SUCCESS)
}

/// The leaves of the log kept in `dirs` (archives oldest first, then the log directory), each
/// directory's joined to those before it (an archive's copies of segments still in the next
/// directory, which a retirement running or interrupted leaves, are left out); `None` when they
/// do not join (after a verification that found them joined: the log changed in between).
fn whole_leaves(dirs: &[&Path]) -> Result<Option<audit::LogLeaves>, audit::AuditError> {
    let mut whole: Option<audit::LogLeaves> = None;
    for dir in dirs {
        let leaves = audit::log_leaves(dir)?;
        whole = match whole {
            None => Some(leaves),
            Some(before) => before
                .first(leaves.retired())
                .and_then(|before| before.join(leaves)),
        };
        if whole.is_none() {
            return Ok(None);
        }
    }
    Ok(whole)
}

/// The note of the checkpoint of the tree of `size` records, in whichever of `dirs` holds it.
fn find_checkpoint(dirs: &[&Path], size: u64) -> Result<Option<String>, audit::AuditError> {
    for dir in dirs {
        if let Some(note) = audit::checkpoint_note(dir, size)? {
            return Ok(Some(note));
        }
    }
    Ok(None)
}

/// Whether the checkpoint `note` is of the tree `leaves` make (its size and root).
fn signs_tree(note: &str, leaves: &audit::LogLeaves) -> bool {
    audit::SignedNote::parse(note)
        .ok()
        .and_then(|n| audit::Checkpoint::parse_body(&n.body).ok())
        .is_some_and(|cp| cp.size == leaves.size() && cp.root == leaves.root())
}

/// The `--archive` directories of `options`, in order.
fn archive_dirs(options: &[(String, String)]) -> Vec<&Path> {
    options
        .iter()
        .filter(|(k, _)| k == "archive")
        .map(|(_, v)| Path::new(v.as_str()))
        .collect()
}

fn retire(args: &[String]) -> Result<ExitCode, Usage> {
    let (positional, options) = parse(args, &["before", "to"], &[])?;
    let [dir] = positional.as_slice() else {
        return Err(Usage("retire takes exactly one directory".to_owned()));
    };
    let before = option(&options, "before")
        .ok_or_else(|| Usage("`--before` is required".to_owned()))?
        .parse::<u64>()
        .map_err(|_| Usage("`--before` takes a sequence number".to_owned()))?;
    let archive = option(&options, "to").ok_or_else(|| Usage("`--to` is required".to_owned()))?;
    match audit::retire(Path::new(dir), before, Path::new(archive)) {
        Ok(retired) => {
            out!(
                "moved {} segments ({} records) to `{archive}`; the log in `{dir}` now starts at seq {}",
                retired.segments.len(),
                retired.records,
                retired.first_seq
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            out!("FAILED: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn summary(args: &[String]) -> Result<ExitCode, Usage> {
    let (positional, options) = parse(args, &["archive"], &[])?;
    let [dir] = positional.as_slice() else {
        return Err(Usage("summary takes exactly one directory".to_owned()));
    };
    // The archives first, oldest first, as `verify` reads them.
    let archives = archive_dirs(&options);
    let dirs: Vec<&Path> = archives.iter().copied().chain([Path::new(dir)]).collect();
    match audit::summarize_dirs(&dirs) {
        Ok(summary) => {
            for (title, rows) in [
                ("principal", &summary.by_principal),
                ("route", &summary.by_route),
                ("relayed by (service)", &summary.by_relay),
            ] {
                if rows.is_empty() && title.starts_with("relayed") {
                    continue;
                }
                out!("{title:<40} {:>10} {:>10}", "allowed", "denied");
                for (name, counts) in rows {
                    let name = audit::printable(name);
                    out!("{name:<40} {:>10} {:>10}", counts.allowed, counts.denied);
                }
                out!();
            }
            if !summary.ignored_credentials.is_empty() {
                out!(
                    "{:<40} {:>10}",
                    "ignored credential (forgery?)",
                    "decisions"
                );
                for (code, n) in &summary.ignored_credentials {
                    out!("{:<40} {n:>10}", audit::printable(code));
                }
                out!();
            }
            out!("events lost (gap records): {}", summary.dropped);
            if summary.retired > 0 {
                out!(
                    "the {n} records before seq {n} were retired to an archive (not counted \
                     here: give it with `--archive`)",
                    n = summary.retired
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("aaa audit summary: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
