//! `aaa audit` run as a real process: keygen, verify (good and tampered logs), summary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::{path::Path, process::Command, sync::Arc};

use aaa_core::{
    Decision, FixedClock, Principal, PrincipalKind, Reason, Timestamp,
    audit::{
        self, Actor, AuditEvent, AuditSink, AuditWriter, AuditWriterConfig, EventKind, RequestInfo,
        SigningKey, Target, merkle,
        note::{Checkpoint, SignedNote},
    },
};

/// The proof of `aaa audit prove`'s answer.
fn proof_of(answer: &serde_json::Value) -> Vec<[u8; 32]> {
    answer["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect()
}

/// The 32 bytes a hex string of `aaa audit prove`'s answer gives.
fn unhex(h: &str) -> [u8; 32] {
    let bytes: Vec<u8> = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn aaa(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_aaa"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn write_log(dir: &Path, key: SigningKey) {
    let mut c = AuditWriterConfig::new(dir, "docs", "pod-1");
    c.clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000)));
    c.checkpoint_every = 4;
    let log = AuditWriter::open(c, key).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for i in 0..10 {
            let allow = i != 3;
            let mut e = AuditEvent::new(
                Timestamp::from_unix_seconds(1_700_000_000),
                EventKind::Authorization {
                    decision: if allow {
                        Decision::Allow
                    } else {
                        Decision::Deny
                    },
                    reason: if allow {
                        Reason::Permitted
                    } else {
                        Reason::Forbidden
                    },
                    rules: vec![],
                    errors: vec![],
                    policy_version: None,
                },
            );
            e.actor = Some(std::sync::Arc::new(Actor::from(&Principal::new(
                if i % 2 == 0 { "alice" } else { "bob" },
                PrincipalKind::User,
                "idp",
            ))));
            e.target = Some(std::sync::Arc::new(Target {
                route: Some("/docs/{id}".into()),
                ..Target::default()
            }));
            // A forged forwarded identity on the denied request, a relayed one on two others.
            e.request = Some(Arc::new(RequestInfo {
                ignored_credential: (i == 3)
                    .then(|| "forwarded_identity_from_untrusted_peer".to_owned()),
                relayed_by: (i >= 8).then(|| "spiffe://acme/ns/prod/sa/web".to_owned()),
                ..RequestInfo::default()
            }));
            log.record(e).await.unwrap();
        }
    });
    log.close().unwrap();
}

#[test]
fn keygen_verify_summary_and_tamper_detection() {
    let tmp = tempfile::tempdir().unwrap();
    let private = tmp.path().join("audit.key");
    let private_s = private.to_str().unwrap();

    let (code, stdout, _) = aaa(&[
        "audit",
        "keygen",
        "--name",
        "docs/audit",
        "--out",
        private_s,
    ]);
    assert_eq!(code, 0);
    let verifier_key = stdout.trim().to_owned();
    assert!(verifier_key.starts_with("docs/audit+"), "{verifier_key}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let text = std::fs::read_to_string(&private).unwrap();
    assert!(
        !stdout.contains(text.trim()),
        "the private key is never printed"
    );
    // Never overwritten.
    let (code, _, _) = aaa(&[
        "audit",
        "keygen",
        "--name",
        "docs/audit",
        "--out",
        private_s,
    ]);
    assert_eq!(code, 1);
    assert_eq!(std::fs::read_to_string(&private).unwrap(), text);

    let pubfile = tmp.path().join("audit.pub");
    std::fs::write(&pubfile, format!("# trusted\n{verifier_key}\n")).unwrap();
    let log = tmp.path().join("log");
    write_log(&log, SigningKey::from_private_text(&text).unwrap());

    let (code, stdout, stderr) = aaa(&[
        "audit",
        "verify",
        log.to_str().unwrap(),
        "--key",
        pubfile.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(
        stdout.starts_with("ok: 13 records (10 events, 3 checkpoints"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 records after it are not yet covered"),
        "{stdout}"
    );

    // A directory without a record is not "ok": a wrong path proves nothing.
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, stdout, _) = aaa(&[
        "audit",
        "verify",
        empty.to_str().unwrap(),
        "--key",
        pubfile.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.starts_with("FAILED: no audit record"), "{stdout}");

    // Into a closed pipe (`aaa … | head`): the result's exit code, no panic.
    for (args, expected) in [
        (
            vec![
                "audit",
                "verify",
                log.to_str().unwrap(),
                "--key",
                pubfile.to_str().unwrap(),
            ],
            0,
        ),
        (
            vec![
                "audit",
                "verify",
                empty.to_str().unwrap(),
                "--key",
                pubfile.to_str().unwrap(),
            ],
            1,
        ),
        (vec!["audit", "summary", log.to_str().unwrap()], 0),
        (vec!["--help"], 0),
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(env!("CARGO_BIN_EXE_aaa"))
            .args(&args)
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }

    let (code, stdout, _) = aaa(&["audit", "summary", log.to_str().unwrap()]);
    assert_eq!(code, 0);
    // The words of the summary's line that starts with `first`.
    let row = |first: &str| -> Vec<&str> {
        let line = stdout.lines().find(|l| l.starts_with(first));
        line.unwrap_or_else(|| panic!("no line for {first}:\n{stdout}"))
            .split_whitespace()
            .collect()
    };
    assert_eq!(row("alice"), ["alice", "(idp)", "5", "0"]);
    assert_eq!(row("bob"), ["bob", "(idp)", "4", "1"]);
    assert_eq!(row("/docs/{id}"), ["/docs/{id}", "9", "1"]);
    assert_eq!(
        row("spiffe://acme/ns/prod/sa/web"),
        ["spiffe://acme/ns/prod/sa/web", "2", "0"]
    );
    assert_eq!(
        row("forwarded_identity_from_untrusted_peer"),
        ["forwarded_identity_from_untrusted_peer", "1"]
    );

    // Flip one byte of the third line: found and located.
    let segment = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let third = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(1)
        .unwrap()
        .0
        + 1;
    let at = third
        + bytes[third..]
            .windows(5)
            .position(|w| w == b"alice" || w == b"bob\",")
            .unwrap();
    bytes[at] ^= 0x20;
    std::fs::write(&segment, bytes).unwrap();
    let (code, stdout, _) = aaa(&[
        "audit",
        "verify",
        log.to_str().unwrap(),
        "--key",
        &verifier_key,
    ]);
    assert_eq!(code, 1, "{stdout}");
    let name = segment.file_name().unwrap().to_str().unwrap();
    assert!(
        stdout.starts_with(&format!("FAILED: {name}:4 (seq 3): `prev` does not match")),
        "{stdout}"
    );

    // Usage errors exit 2.
    assert_eq!(aaa(&["audit", "verify", log.to_str().unwrap()]).0, 2);
    assert_eq!(aaa(&["audit", "frobnicate"]).0, 2);
}

/// Text from a log reaches the terminal escaped: a principal id with ESC and CR (an IdP may let
/// users choose the claim aaa reads as the id), an unknown field's name in a tampered record
/// (quoted by the JSON parser's message), a segment file's name. Before, `summary` and `verify`
/// printed them raw: `mallory\x1b[2K\r` erased its own line and wrote what it liked in its place.
#[test]
fn names_from_a_log_are_shown_escaped() {
    let no_raw_controls = |out: &str| {
        assert!(
            !out.chars()
                .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
            "{out:?}"
        );
    };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    let key = SigningKey::generate("test/audit").unwrap();
    let verifier_key = key.verifier_key().to_string();
    let mut c = AuditWriterConfig::new(&log, "docs", "pod-1");
    c.clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000)));
    let writer = AuditWriter::open(c, key).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        for (id, issuer) in [
            ("mallory\u{1b}[2K\rok: alice", "idp"),
            ("alice", "idp"),
            ("alice", "other-idp"),
            ("eve\u{202e}nimda", "idp"),
        ] {
            let mut e = AuditEvent::new(
                Timestamp::from_unix_seconds(1_700_000_000),
                EventKind::Authorization {
                    decision: Decision::Allow,
                    reason: Reason::Permitted,
                    rules: vec![],
                    errors: vec![],
                    policy_version: None,
                },
            );
            e.actor = Some(Arc::new(Actor::from(&Principal::new(
                id,
                PrincipalKind::User,
                issuer,
            ))));
            writer.record(e).await.unwrap();
        }
    });
    writer.close().unwrap();

    let (code, stdout, _) = aaa(&["audit", "summary", log.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}");
    no_raw_controls(&stdout);
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    for row in [
        vec!["mallory\\u{1b}[2K\\u{d}ok:", "alice", "(idp)", "1", "0"],
        vec!["alice", "(idp)", "1", "0"],
        vec!["alice", "(other-idp)", "1", "0"],
        vec!["eve\\u{202e}nimda", "(idp)", "1", "0"],
    ] {
        assert!(rows.contains(&row), "{row:?} in {stdout}");
    }

    // A tampered record with an unknown field whose name is `ESC [2K`, as JSON escapes.
    let segment = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .unwrap();
    let text = std::fs::read_to_string(&segment).unwrap();
    let tampered = text.replacen("{\"event\":", "{\"\\u001b[2K\\rx\":1,\"event\":", 1);
    assert_ne!(tampered, text);
    std::fs::write(&segment, &tampered).unwrap();
    let (code, stdout, _) = aaa(&[
        "audit",
        "verify",
        log.to_str().unwrap(),
        "--key",
        &verifier_key,
    ]);
    assert_eq!(code, 1, "{stdout}");
    no_raw_controls(&stdout);
    assert!(stdout.contains("\\u{1b}[2K\\u{d}x"), "{stdout}");

    // A segment file named with ESC and CR (any `audit-*.jsonl` is read as a segment).
    std::fs::write(&segment, &text).unwrap();
    std::fs::write(log.join("audit-\u{1b}[2K\r.jsonl"), &text).unwrap();
    let (code, stdout, _) = aaa(&[
        "audit",
        "verify",
        log.to_str().unwrap(),
        "--key",
        &verifier_key,
    ]);
    assert_eq!(code, 1, "{stdout}");
    no_raw_controls(&stdout);
    assert!(stdout.contains("audit-\\u{1b}[2K\\u{d}.jsonl"), "{stdout}");
}

/// `aaa audit retire` moves the oldest segments to an archive; `verify` then refuses the log
/// unless `--allow-retired`, and with it checks what is left; the archive verifies on its own.
#[test]
fn retire_then_verify_what_is_left_and_the_archive() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed("docs/audit", &[7; 32]).unwrap();
    let pubfile = tmp.path().join("audit.pub");
    std::fs::write(&pubfile, format!("{}\n", key.verifier_key())).unwrap();
    let log = tmp.path().join("log");
    let mut c = AuditWriterConfig::new(&log, "docs", "pod-1");
    c.clock = Arc::new(FixedClock::new(Timestamp::from_unix_seconds(1_700_000_000)));
    c.checkpoint_every = 4;
    c.max_batch = 4;
    c.segment_max_bytes = 1024;
    let writer = AuditWriter::open(c, key).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(async {
            for i in 0..30 {
                let mut e = AuditEvent::new(
                    Timestamp::from_unix_seconds(1_700_000_000),
                    EventKind::RequestCompleted {
                        status: 200,
                        latency_us: i,
                    },
                );
                e.target = Some(Arc::new(Target::default()));
                writer.record(e).await.unwrap();
            }
            writer.flush().await.unwrap();
        });
    writer.close().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&log)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".jsonl"))
        .collect();
    names.sort();
    assert!(names.len() > 4, "{names:?}");
    // The first record of the segment `names[i]`.
    let first_of = |i: usize| -> u64 {
        names[i]
            .trim_start_matches("audit-")
            .trim_end_matches(".jsonl")
            .parse()
            .unwrap()
    };
    let cut = first_of(2);
    let (log_s, key_s) = (log.to_str().unwrap(), pubfile.to_str().unwrap());
    let archive = tmp.path().join("archive");
    let archive_s = archive.to_str().unwrap();
    let retire = |before: u64, to: &str| {
        aaa(&[
            "audit",
            "retire",
            log_s,
            "--before",
            &before.to_string(),
            "--to",
            to,
        ])
    };

    let (code, stdout, _) = retire(cut, archive_s);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains(&format!("moved 2 segments ({cut} records)")),
        "{stdout}"
    );
    let (code, stdout, _) = aaa(&["audit", "verify", log_s, "--key", key_s]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("--allow-retired"), "{stdout}");
    let (code, stdout, _) = aaa(&["audit", "verify", log_s, "--key", key_s, "--allow-retired"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains(&format!("the {cut} records before seq {cut} were retired")),
        "{stdout}"
    );
    let (code, stdout, _) = aaa(&["audit", "verify", archive_s, "--key", key_s]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains(&format!("ok: {cut} records")), "{stdout}");
    // The summary of what is left says that it leaves out the retired records; with the
    // archive, it counts them all.
    let retired_line = format!("the {cut} records before seq {cut} were retired to an archive");
    let (code, stdout, _) = aaa(&["audit", "summary", log_s]);
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains(&retired_line), "{stdout}");
    let (code, stdout, _) = aaa(&["audit", "summary", archive_s]);
    assert_eq!(code, 0, "{stdout}");
    assert!(!stdout.contains("retired"), "{stdout}");
    let (code, stdout, _) = aaa(&["audit", "summary", log_s, "--archive", archive_s]);
    assert_eq!(code, 0, "{stdout}");
    assert!(!stdout.contains("retired"), "{stdout}");
    // Records left are proved; retired ones are not (from here).
    let prove = |seq: u64| {
        aaa(&[
            "audit",
            "prove",
            log_s,
            "--seq",
            &seq.to_string(),
            "--key",
            key_s,
            "--allow-retired",
        ])
    };
    assert_eq!(prove(cut).0, 0);
    let (code, stdout, _) = prove(cut - 1);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("retired"), "{stdout}");
    // Nor in the tree of a retired checkpoint.
    let (code, stdout, _) = aaa(&[
        "audit",
        "prove",
        log_s,
        "--seq",
        "0",
        "--at",
        &(cut - 1).to_string(),
        "--key",
        key_s,
        "--allow-retired",
    ]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("was retired to an archive"), "{stdout}");

    // With the archive, retired records are proved in the live log's last checkpoint, and in
    // the tree of a retired checkpoint (found in the archive).
    // `aaa audit COMMAND` of the log with the `archives` and `extra` arguments.
    let with_archives = |command: &str, archives: &[&str], extra: &[&str]| {
        let mut args = vec!["audit", command, log_s, "--key", key_s];
        for archive in archives {
            args.extend_from_slice(&["--archive", archive]);
        }
        args.extend_from_slice(extra);
        aaa(&args)
    };
    let with_archive = |extra: &[&str]| with_archives("prove", &[archive_s], extra);
    let first_line = |dir: &Path| {
        let text = std::fs::read(dir.join("audit-00000000000000000000.jsonl")).unwrap();
        merkle::leaf_hash(text.split(|&b| b == b'\n').next().unwrap())
    };
    // Record `seq` is proved in the answer's checkpoint, signed by the service's key, of the
    // tree the answer names; the size of that tree.
    let service_key = SigningKey::from_seed("docs/audit", &[7; 32])
        .unwrap()
        .verifier_key();
    let proved = |stdout: &str, seq: u64| {
        let answer: serde_json::Value = serde_json::from_str(stdout).unwrap();
        let note = SignedNote::parse(answer["checkpoint"].as_str().unwrap()).unwrap();
        let signature = note.signature_by(&service_key).unwrap();
        assert!(service_key.verify(note.body.as_bytes(), &signature));
        let checkpoint = Checkpoint::parse_body(&note.body).unwrap();
        assert_eq!(answer["tree_size"].as_u64(), Some(checkpoint.size));
        let proof = proof_of(&answer);
        merkle::verify_inclusion(
            seq,
            checkpoint.size,
            &first_line(&archive),
            &proof,
            &checkpoint.root,
        )
        .map(|()| checkpoint.size)
    };
    let (code, stdout, _) = with_archive(&["--seq", "0"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(proved(&stdout, 0).unwrap() > cut);
    // The consistency from the tree of the first record: it needs the retired nodes.
    let (code, stdout, _) = with_archive(&["--since", "1"]);
    assert_eq!(code, 0, "{stdout}");
    let grown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let note = SignedNote::parse(grown["checkpoint"].as_str().unwrap()).unwrap();
    let checkpoint = Checkpoint::parse_body(&note.body).unwrap();
    let consistency = proof_of(&grown);
    merkle::verify_consistency(
        1,
        checkpoint.size,
        &consistency,
        &first_line(&archive),
        &checkpoint.root,
    )
    .unwrap();
    let (code, stdout, _) = with_archives("prove", &[], &["--allow-retired", "--since", "1"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("--archive"), "{stdout}");
    let retired_checkpoint = (1..cut)
        .rev()
        .find(|&size| audit::checkpoint_note(&archive, size).unwrap().is_some())
        .unwrap();
    let (code, stdout, _) = with_archive(&["--seq", "0", "--at", &retired_checkpoint.to_string()]);
    assert_eq!(code, 0, "{stdout}");
    assert_eq!(proved(&stdout, 0), Ok(retired_checkpoint));
    // An archive that is not the retired part of this log is refused.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    for entry in std::fs::read_dir(&archive).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, other.join(path.file_name().unwrap())).unwrap();
    }
    let last = std::fs::read_dir(&other)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    std::fs::remove_file(last).unwrap();
    let (code, stdout, _) = with_archives("prove", &[other.to_str().unwrap()], &["--seq", "0"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("does not start where the one before it ends"),
        "{stdout}"
    );
    // A second retirement, into another directory: both archives, oldest first, prove record 0.
    let cut2 = first_of(3);
    let second = tmp.path().join("second");
    let second_s = second.to_str().unwrap();
    let (code, stdout, _) = retire(cut2, second_s);
    assert_eq!(code, 0, "{stdout}");
    let both = |first: &str, then: &str, extra: &[&str]| {
        let mut args = vec!["--seq", "0"];
        args.extend_from_slice(extra);
        with_archives("prove", &[first, then], &args)
    };
    let (code, stdout, _) = both(archive_s, second_s, &[]);
    assert_eq!(code, 0, "{stdout}");
    assert!(proved(&stdout, 0).unwrap() > cut2);
    // The wrong way round: the later archive alone starts with a retired head, and does not
    // end where the earlier one starts.
    let (code, stdout, _) = both(second_s, archive_s, &[]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("does not verify"), "{stdout}");
    let (code, stdout, _) = both(second_s, archive_s, &["--allow-retired"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("oldest first"), "{stdout}");
    // `verify` with the archives: the log is whole again, or they do not join it.
    let verify = |archives: &[&str]| with_archives("verify", archives, &[]);
    // Not a directory: a usage error, before anything is read.
    let missing = tmp.path().join("missing");
    assert_eq!(verify(&[missing.to_str().unwrap()]).0, 2);
    let (code, stdout, _) = verify(&[archive_s, second_s]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        stdout.contains("(checked as one log: 2 archives"),
        "{stdout}"
    );
    assert!(!stdout.contains("retired"), "{stdout}");
    for archives in [&[second_s][..], &[other.to_str().unwrap(), second_s]] {
        let (code, stdout, _) = verify(archives);
        assert_eq!(code, 1, "{archives:?}: {stdout}");
        assert!(stdout.contains("FAILED"), "{stdout}");
    }
    // Not a segment boundary: refused, nothing moved.
    let (code, stdout, _) = aaa(&["audit", "retire", log_s, "--before", "1", "--to", archive_s]);
    assert_eq!(code, 1, "{stdout}");
    assert_eq!(aaa(&["audit", "retire", log_s, "--to", archive_s]).0, 2);
}

/// `aaa audit prove` answers an audit receipt's `seq` with an inclusion proof against the last
/// checkpoint, which a holder of the service's verifier key checks alone; it refuses a record
/// no checkpoint covers yet, and a log that does not verify.
#[test]
fn prove_gives_an_inclusion_proof_a_receipt_holder_checks() {
    let tmp = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed("docs/audit", &[9; 32]).unwrap();
    let verifier_key = key.verifier_key();
    let pubfile = tmp.path().join("audit.pub");
    std::fs::write(&pubfile, format!("{verifier_key}\n")).unwrap();
    let log = tmp.path().join("log");
    write_log(&log, key);
    let (log_s, key_s) = (log.to_str().unwrap(), pubfile.to_str().unwrap());

    let (code, stdout, _) = aaa(&["audit", "prove", log_s, "--seq", "3", "--key", key_s]);
    assert_eq!(code, 0, "{stdout}");
    let answer: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // The checkpoint is the service's, and its root holds record 3 as stored.
    let note = SignedNote::parse(answer["checkpoint"].as_str().unwrap()).unwrap();
    let signature = note.signature_by(&verifier_key).unwrap();
    assert!(verifier_key.verify(note.body.as_bytes(), &signature));
    let checkpoint = Checkpoint::parse_body(&note.body).unwrap();
    assert_eq!(answer["tree_size"].as_u64().unwrap(), checkpoint.size);
    let segment = std::fs::read(log.join("audit-00000000000000000000.jsonl")).unwrap();
    let line = segment.split(|&b| b == b'\n').nth(3).unwrap();
    let leaf = unhex(answer["leaf_hash"].as_str().unwrap());
    assert_eq!(leaf, merkle::leaf_hash(line));
    let proof = proof_of(&answer);
    merkle::verify_inclusion(3, checkpoint.size, &leaf, &proof, &checkpoint.root).unwrap();
    // Another record's hash does not pass for it.
    let other = merkle::leaf_hash(segment.split(|&b| b == b'\n').nth(2).unwrap());
    assert!(
        merkle::verify_inclusion(3, checkpoint.size, &other, &proof, &checkpoint.root).is_err()
    );

    // Later, after more records: the consistency proof from the checkpoint the holder kept to
    // the latest one shows that the log only grew.
    write_log(&log, SigningKey::from_seed("docs/audit", &[9; 32]).unwrap());
    let (code, stdout, _) = aaa(&[
        "audit",
        "prove",
        log_s,
        "--since",
        &checkpoint.size.to_string(),
        "--key",
        key_s,
    ]);
    assert_eq!(code, 0, "{stdout}");
    let later: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let note2 = SignedNote::parse(later["checkpoint"].as_str().unwrap()).unwrap();
    assert!(verifier_key.verify(
        note2.body.as_bytes(),
        &note2.signature_by(&verifier_key).unwrap()
    ));
    let checkpoint2 = Checkpoint::parse_body(&note2.body).unwrap();
    assert!(checkpoint2.size > checkpoint.size);
    let consistency = proof_of(&later);
    merkle::verify_consistency(
        checkpoint.size,
        checkpoint2.size,
        &consistency,
        &checkpoint.root,
        &checkpoint2.root,
    )
    .unwrap();
    let mut rewritten = checkpoint.root;
    rewritten[0] ^= 1;
    assert!(
        merkle::verify_consistency(
            checkpoint.size,
            checkpoint2.size,
            &consistency,
            &rewritten,
            &checkpoint2.root,
        )
        .is_err()
    );
    assert_eq!(
        aaa(&["audit", "prove", log_s, "--since", "0", "--key", key_s]).0,
        1
    );

    // A holder of the earlier checkpoint asks for the proof in its tree: the same note, and a
    // proof that checks against its root.
    let at = checkpoint.size.to_string();
    let (code, stdout, _) = aaa(&[
        "audit", "prove", log_s, "--seq", "3", "--at", &at, "--key", key_s,
    ]);
    assert_eq!(code, 0, "{stdout}");
    let earlier: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(earlier["checkpoint"], answer["checkpoint"]);
    assert_eq!(earlier["tree_size"].as_u64(), Some(checkpoint.size));
    let proof = proof_of(&earlier);
    merkle::verify_inclusion(3, checkpoint.size, &leaf, &proof, &checkpoint.root).unwrap();
    // And the consistency from the tree of the first record to it.
    let (code, stdout, _) = aaa(&[
        "audit", "prove", log_s, "--since", "1", "--at", &at, "--key", key_s,
    ]);
    assert_eq!(code, 0, "{stdout}");
    let grown: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(grown["checkpoint"], answer["checkpoint"]);
    let first_line = segment.split(|&b| b == b'\n').next().unwrap();
    let consistency = proof_of(&grown);
    merkle::verify_consistency(
        1,
        checkpoint.size,
        &consistency,
        &merkle::leaf_hash(first_line),
        &checkpoint.root,
    )
    .unwrap();
    // A size no checkpoint signs, or past the last one: refused.
    for (size, why) in [
        (checkpoint.size - 1, "no checkpoint"),
        (checkpoint2.size + 1, "past the last checkpoint"),
    ] {
        let size = size.to_string();
        let (code, stdout, _) = aaa(&[
            "audit", "prove", log_s, "--seq", "0", "--at", &size, "--key", key_s,
        ]);
        assert_eq!(code, 1, "{stdout}");
        assert!(stdout.contains(why), "{stdout}");
    }
    assert_eq!(
        aaa(&[
            "audit", "prove", log_s, "--seq", "1", "--since", "1", "--key", key_s
        ])
        .0,
        2
    );

    // A record past the last checkpoint: not yet.
    let past = (checkpoint2.size + 1).to_string();
    let (code, stdout, _) = aaa(&["audit", "prove", log_s, "--seq", &past, "--key", key_s]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("not covered"), "{stdout}");
    // A log that does not verify gets no proof.
    let text = std::fs::read_to_string(log.join("audit-00000000000000000000.jsonl")).unwrap();
    std::fs::write(
        log.join("audit-00000000000000000000.jsonl"),
        text.replacen("alice", "alicf", 1),
    )
    .unwrap();
    let (code, stdout, _) = aaa(&["audit", "prove", log_s, "--seq", "3", "--key", key_s]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("does not verify"), "{stdout}");
    assert_eq!(aaa(&["audit", "prove", log_s, "--key", key_s]).0, 2);
}
