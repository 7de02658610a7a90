//! Findings of a review of the demo services (2026-12-03): each test failed on the reviewed code.

use std::{net::SocketAddr, path::Path, sync::Arc};

use crate::{adapters, docs_demo};

/// Starts the axum demo on 127.0.0.1:0 with its audit log in `dir` (as `--audit-dir DIR`).
async fn start(dir: &Path) -> Result<(SocketAddr, Arc<docs_demo::Demo>), String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = docs_demo::demo::Options::new(dir);
    let demo = Arc::new(docs_demo::Demo::new(&options, addr, None)?);
    let app = docs_demo::router(demo.clone());
    adapters::serve_axum(listener, app);
    Ok((addr, demo))
}

/// Two demos started with one `--audit-dir` (two `--listen` addresses, the axum and the actix
/// demo both on the default `./audit-data`, or `--self-test` next to a running demo) both
/// appended to one log: their records interleaved with clashing sequence numbers, the log no
/// longer verified, and no later start on the directory succeeded. The audit writer now locks
/// its directory: the second start is refused, and the first one's log verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_demo_on_the_same_audit_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (first, demo) = start(dir.path()).await.unwrap();
    let refused = start(dir.path()).await.map(|_| ()).unwrap_err();
    assert!(refused.contains("in use"), "{refused}");
    for _ in 0..3 {
        assert_eq!(
            adapters::send(first, "GET", "/health", &[]).await.status,
            200
        );
    }
    let report = demo.verify_log(dir.path()).await.unwrap();
    assert!(report.events >= 3, "{report:?}");
}

/// The demo's identity provider mints tokens for anyone who asks (administrators, MFA). On a
/// `--listen` beyond loopback it served them to anyone who could reach the port, with the same
/// banner as on 127.0.0.1. It is now refused there unless `--expose-demo-idp` says so, and then
/// the banner says what it means.
#[test]
fn the_demo_idp_is_not_exposed_beyond_loopback_unless_asked() {
    let dir = tempfile::tempdir().unwrap();
    let addr: SocketAddr = "0.0.0.0:18080".parse().unwrap();
    let options = docs_demo::demo::Options::new(dir.path());
    let refused = docs_demo::Demo::new(&options, addr, None)
        .map(|_| ())
        .unwrap_err();
    assert!(refused.contains("--expose-demo-idp"), "{refused}");
    assert!(
        !dir.path().join("log").exists(),
        "refused before opening the log"
    );

    let options = docs_demo::demo::Options::parse(
        [
            "--audit-dir",
            &dir.path().display().to_string(),
            "--expose-demo-idp",
        ]
        .map(str::to_owned),
    )
    .unwrap();
    assert!(options.expose_demo_idp);
    let demo = docs_demo::Demo::new(&options, addr, None).unwrap();
    let banner = demo.banner(addr, dir.path());
    assert!(
        banner.starts_with("WARNING: the demo's identity provider serves on 0.0.0.0:18080"),
        "{banner}"
    );
    drop(demo);
    // On loopback, no warning.
    let loopback: SocketAddr = "127.0.0.1:18080".parse().unwrap();
    let other = tempfile::tempdir().unwrap();
    let demo =
        docs_demo::Demo::new(&docs_demo::demo::Options::new(other.path()), loopback, None).unwrap();
    assert!(!demo.banner(loopback, other.path()).contains("WARNING"));
}

/// With `audit.key` deleted but the log and `audit.pub` left, a start made a new key before the
/// writer refused it ("signed by another key"), so the directory could not be used again
/// without repair. Now nothing is written: the start is refused and names the missing key.
/// An `audit.pub` that does not match the key is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_audit_key_is_not_replaced_by_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, demo) = start(dir.path()).await.unwrap();
    assert_eq!(
        adapters::send(addr, "GET", "/health", &[]).await.status,
        200
    );
    demo.verify_log(dir.path()).await.unwrap();
    drop(demo);
    let key = dir.path().join("audit.key");
    let kept = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let options = docs_demo::demo::Options::new(dir.path());
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let refused = docs_demo::Demo::new(&options, loopback, None)
        .map(|_| ())
        .unwrap_err();
    assert!(refused.contains("audit.key is missing"), "{refused}");
    assert!(!key.exists(), "no new key was written");

    // A public key of another key is refused as well (the file is restored first).
    std::fs::write(&key, &kept).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let public = dir.path().join("audit.pub");
    let real = std::fs::read_to_string(&public).unwrap();
    std::fs::write(&public, "docs-service+00000000+AAAA\n").unwrap();
    let refused = docs_demo::Demo::new(&options, loopback, None)
        .map(|_| ())
        .unwrap_err();
    assert!(
        refused.contains("does not hold the public key"),
        "{refused}"
    );
    std::fs::write(&public, real).unwrap();
    // With both files right, the start gets past the key checks, to the log, which the first
    // demo (still serving) holds.
    let refused = docs_demo::Demo::new(&options, loopback, None)
        .map(|_| ())
        .unwrap_err();
    assert!(refused.contains("in use"), "{refused}");
}

/// The conformance case "a 64 KiB token is refused before decoding" checked the status and
/// that d1's body was absent, which a token decoded and then found invalid also gives (with the
/// length check switched off, it still passed). This one asks for the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_kib_token_is_refused_as_too_long() {
    let running = docs_demo::axum().await;
    let header = format!("Authorization: Bearer {}", "a".repeat(65536));
    let r = adapters::send(running.addr, "GET", "/docs/d1", &[header.as_str()]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        r.header("www-authenticate")
            .is_some_and(|c| c.contains("too long")),
        "refused for its length, not after decoding: {:?} {}",
        r.header("www-authenticate"),
        r.body
    );
}
