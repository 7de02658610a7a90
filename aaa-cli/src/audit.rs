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
      (`--archive`, oldest first), each is checked too, and they must end where DIR starts:
      the log is whole again
  aaa audit prove DIR (--seq SEQ | --since SIZE) --key VERIFIER_KEY_FILE... [--anchor FILE]
                  [--allow-retired] [--at SIZE] [--archive ARCHIVE_DIR...]
      verify the log, then print as JSON the inclusion proof of record SEQ (the `seq` of an
      audit receipt) in the tree the log's last checkpoint signs, with that checkpoint: whoever
      holds the receipt checks the checkpoint's signature with the service's verifier key, then
      the proof against its root (RFC 9162), and knows the record is in the log for good. With
      --since, the consistency proof from an earlier checkpoint's tree of SIZE records to it:
      the log only grew since. With --at, in the tree of an earlier checkpoint of SIZE records
      (one the client holds) instead of the last one's. Records retired from DIR are proved
      with the archives they were retired to (`--archive`, oldest first; each verified, and
      they must join DIR's retired head)
  aaa audit retire DIR --before SEQ --to ARCHIVE_DIR
      move the segments holding the records before SEQ (the first record of a segment, as in
      its file name) to ARCHIVE_DIR, and note in DIR the tree they make, so that what is left
      still verifies and the writer continues it; safe while the service writes. The archive
      continues from one retirement to the next. Verify the log first
  aaa audit summary DIR
      count authorization decisions per principal (id and issuer), per route, per relaying
      service (relayed requests), and those on requests carrying an ignored credential (a
      forged forwarded identity) (does not verify; control characters in names are shown
      escaped). Of a log whose oldest segments were retired, counts the records left and says
      how many are in the archive";

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
) -> Result<(PathBuf, Verifier, Vec<VerifierKey>), Result<ExitCode, Usage>> {
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
    let mut verifier = Verifier::new(keys.clone());
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
    if !dir.is_dir() {
        eprintln!(
            "aaa audit {command}: `{}` is not a directory",
            dir.display()
        );
        return Err(Ok(ExitCode::from(2)));
    }
    Ok((dir, verifier, keys))
}

fn verify(args: &[String]) -> Result<ExitCode, Usage> {
    let (positional, options) = parse(args, &["key", "anchor", "archive"], &["allow-retired"])?;
    let (dir, mut verifier, keys) = match log_and_verifier("verify", &positional, &options) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    let archives = archive_dirs(&options);
    if !archives.is_empty() {
        verifier = verifier.allow_retired_head();
    }
    match verifier.verify_dir(&dir) {
        // A wrong path, or segments renamed away: nothing was shown to be intact.
        Ok(report) if report.records == 0 => {
            out!(
                "FAILED: no audit record in `{}` (no `audit-<seq>.jsonl` segment, or only an empty one)",
                dir.display()
            );
            Ok(ExitCode::FAILURE)
        }
        Ok(report) if archives.is_empty() => {
            out!("ok: {}", describe(&report));
            Ok(ExitCode::SUCCESS)
        }
        // The archives verify, and end where the log starts: the log is whole again.
        Ok(report) => {
            let allow_retired = option(&options, "allow-retired").is_some();
            match with_archives(&dir, &archives, &keys, allow_retired) {
                Ok(whole) => {
                    out!("ok: {}", describe(&report));
                    out!(
                        "with the archives, the log is whole from record {} ({} records)",
                        whole.retired(),
                        whole.size()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(why) => {
                    out!("FAILED: {why}");
                    out!("the log alone verified: {}", describe(&report));
                    Ok(ExitCode::FAILURE)
                }
            }
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
    // The inclusion of record `seq`, or the consistency of the tree of `since` records.
    let (seq, since) = match (number("seq")?, number("since")?) {
        (Some(seq), None) => (Some(seq), None),
        (None, Some(since)) => (None, Some(since)),
        _ => return Err(Usage("give one of `--seq` and `--since`".to_owned())),
    };
    let (dir, mut verifier, keys) = match log_and_verifier("prove", &positional, &options) {
        Ok(found) => found,
        Err(exit) => return exit,
    };
    let failed = |why: String| {
        out!("FAILED: {why}");
        Ok(ExitCode::FAILURE)
    };
    // The archives of the records retired from the log, oldest first: with them, the log's
    // retired head is not missing (they must join it), and their records are proved too.
    let archives = archive_dirs(&options);
    if !archives.is_empty() {
        verifier = verifier.allow_retired_head();
    }
    // Only from a log that verifies, against the tree its last checkpoint signs (or the
    // earlier one `--at` names).
    let report = match verifier.verify_dir(&dir) {
        Ok(report) => report,
        Err(e) => return failed(format!("the log does not verify: {e}")),
    };
    let allow_retired = option(&options, "allow-retired").is_some();
    let leaves = match with_archives(&dir, &archives, &keys, allow_retired) {
        Ok(leaves) => leaves,
        Err(why) => return failed(why),
    };
    let Some(last) = report.checkpoint_note.clone() else {
        return failed("no checkpoint signs the log yet".to_owned());
    };
    let (covered, note) = match number("at")? {
        None => (report.covered, last),
        Some(at) if at > report.covered => {
            return failed(format!(
                "`--at` {at} is past the last checkpoint's tree ({} records)",
                report.covered
            ));
        }
        Some(at) if at < report.retired => {
            // In an archive, if one was given.
            let found = archives
                .iter()
                .find_map(|archive| audit::checkpoint_note(archive, at).ok().flatten());
            match found {
                Some(note) => (at, note),
                None => {
                    return failed(format!(
                        "the checkpoint of {at} records was retired to an archive: give it \
                         with `--archive`"
                    ));
                }
            }
        }
        Some(at) => match audit::checkpoint_note(&dir, at) {
            Ok(Some(note)) => (at, note),
            Ok(None) => {
                return failed(format!(
                    "no checkpoint in the log signs the tree of {at} records: `--at` takes the \
                     size of one (the second line of its note)"
                ));
            }
            Err(e) => return failed(e.to_string()),
        },
    };
    let leaves = leaves.first(covered);
    let Some(leaves) = leaves else {
        return failed("the log changed while it was read: ask again".to_owned());
    };
    if let Some(since) = since {
        if since == 0 || since > covered {
            return failed(format!(
                "`--since` is a tree size from 1 to the checkpoint's, {covered}"
            ));
        }
        let Some(proof) = leaves.consistency_proof(since) else {
            return failed(format!(
                "the proof from size {since} needs records retired to an archive: give it with \
                 `--archive`"
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
        return failed(format!(
            "record {seq} was retired to an archive: give it with `--archive`"
        ));
    }
    let leaf = usize::try_from(seq - leaves.retired())
        .ok()
        .and_then(|i| leaves.kept().get(i).copied());
    let (Some(leaf), Some(proof)) = (leaf, leaves.inclusion_proof(seq)) else {
        return failed("the log changed while it was read: ask again".to_owned());
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

/// The leaves of the log in `dir` after those of the `archives` its oldest records were retired
/// to (oldest first; none: the log's own). Each archive is verified first, as a log of its own
/// (the first with a retired head only if `allow_retired`, the others' heads being the archives
/// before them), and each must end where the next starts, the last where `dir` does: the tree
/// over them is the one `retired.json` notes. `Err` says why they do not join.
fn with_archives(
    dir: &Path,
    archives: &[&Path],
    keys: &[VerifierKey],
    allow_retired: bool,
) -> Result<audit::LogLeaves, String> {
    let mut joined: Option<audit::LogLeaves> = None;
    for (i, archive) in archives.iter().enumerate() {
        let mut check = Verifier::new(keys.to_vec());
        if allow_retired || i > 0 {
            check = check.allow_retired_head();
        }
        check
            .verify_dir(archive)
            .map_err(|e| format!("the archive `{}` does not verify: {e}", archive.display()))?;
        let leaves = audit::log_leaves(archive).map_err(|e| e.to_string())?;
        joined = Some(match joined {
            None => leaves,
            Some(earlier) => earlier.join(leaves).ok_or_else(|| {
                format!(
                    "the archive `{}` does not continue the one before it: give the archives \
                     oldest first",
                    archive.display()
                )
            })?,
        });
    }
    let leaves = audit::log_leaves(dir).map_err(|e| e.to_string())?;
    match joined {
        None => Ok(leaves),
        Some(archived) => archived.join(leaves).ok_or_else(|| {
            "the archives do not end where the log's records start (or hold other records than \
             those retired from it)"
                .to_owned()
        }),
    }
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
    let (positional, _) = parse(args, &[], &[])?;
    let [dir] = positional.as_slice() else {
        return Err(Usage("summary takes exactly one directory".to_owned()));
    };
    match audit::summarize(Path::new(dir)) {
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
                     here: summarize the archive too)",
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
