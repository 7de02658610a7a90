//! `aaa policy ...`, run as the built binary.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs,
    reason = "tests fail loudly"
)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn aaa(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_aaa"))
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const POLICY: &str = "examples/policies/docs_service.toml";

#[test]
fn check_accepts_a_valid_policy() {
    let out = aaa(&["policy", "check", repo(POLICY).to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("ok: "),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout).contains("version docs-service-1"));
}

#[test]
fn check_prints_diagnostics_with_positions_and_fails() {
    let file = repo("tests/fixtures/policy/bad_unknown_role.toml");
    let out = aaa(&["policy", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "error[aaa::policy::unknown_role]: role `editor` inherits from unknown role `viewr`"
        ),
        "{err}"
    );
    assert!(err.contains("bad_unknown_role.toml:4:13"), "{err}");
    assert!(
        err.contains("help: defined roles are: editor, viewer"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let out = aaa(&["policy", "check", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("aaa::policy::io"));
}

#[test]
fn test_runs_fixtures_with_coverage() {
    let out = aaa(&[
        "policy",
        "test",
        repo(POLICY).to_str().unwrap(),
        repo("tests/fixtures/policy/docs_service_cases.toml")
            .to_str()
            .unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("10 of 10 cases passed"), "{stdout}");
    assert!(
        stdout.contains("coverage: rule `admin-console` never applied"),
        "{stdout}"
    );

    let out = aaa(&[
        "policy",
        "test",
        repo(POLICY).to_str().unwrap(),
        repo("tests/fixtures/policy/failing_cases.toml")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("FAIL case `wrongly expects a viewer to delete`"));
}

#[test]
fn explain_says_why_from_a_file_or_stdin() {
    let request = repo("tests/fixtures/policy/explain_request.json");
    let out = aaa(&[
        "policy",
        "explain",
        repo(POLICY).to_str().unwrap(),
        request.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        stdout.starts_with("decision: deny (NotPermitted)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("nearest miss: rule `editor-write`, failed: principal role `editor`"),
        "{stdout}"
    );
    assert!(stdout.contains("\"decision\": \"deny\""), "{stdout}");

    let mut child = Command::new(env!("CARGO_BIN_EXE_aaa"))
        .args(["policy", "explain", repo(POLICY).to_str().unwrap(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let body = std::fs::read_to_string(&request)
        .unwrap()
        .replace("docs:update", "docs:read");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("decision: allow (Permitted)"),
        "{stdout}"
    );
    assert!(stdout.contains("rules: viewer-read"), "{stdout}");
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(aaa(&["policy", "frobnicate"]).status.code(), Some(2));
    assert_eq!(aaa(&["policy", "check"]).status.code(), Some(2));
    assert!(aaa(&["policy", "--help"]).status.success());
}
