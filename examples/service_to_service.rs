//! Service-to-service calls with an API key: an `indexer` service reads documents from the
//! documents service, which authenticates it by its key (stored only as a hash), authorizes it
//! with the same policy as people (it is a viewer of tenant acme), and audits every call.
//!
//! Run with:
//!
//! ```text
//! cargo run --example service_to_service --features full
//! ```
//!
//! It starts the documents service on a free port of 127.0.0.1 with a throw-away audit log, makes
//! the indexer's calls over real HTTP, prints what each got, verifies the audit log and exits.

#[path = "docs_service/demo.rs"]
mod demo;

#[path = "docs_service/app.rs"]
mod app;

use std::sync::Arc;

/// Removes the throw-away audit log however `main` ends.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let temp = TempDir(std::env::temp_dir().join(format!("aaa-s2s-{}", std::process::id())));
    let dir = temp.0.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let docs = Arc::new(demo::Demo::new(&demo::Options::new(&dir), addr, None)?);
    tokio::spawn(app::serve(listener, docs.clone()));

    // The indexer holds its key in its own configuration; here it is handed over directly.
    let key = format!("x-api-key: {}", docs.indexer_key);
    let wrong = "x-api-key: aaa_indexer_0000000000000000000000000000000000000000000000";
    for (what, path, header, expected) in [
        (
            "public document of its tenant",
            "/docs/d3",
            key.as_str(),
            200,
        ),
        (
            "internal document of its tenant (viewers read those too)",
            "/docs/d1",
            key.as_str(),
            200,
        ),
        ("secret document", "/docs/d2", key.as_str(), 403),
        ("another tenant's document", "/docs/d4", key.as_str(), 403),
        ("the admin console", "/admin/policy", key.as_str(), 403),
        ("with a wrong key", "/docs/d3", wrong, 401),
        ("with no key", "/docs/d3", "", 401),
    ] {
        let status = demo::status_of(addr, "GET", path, header).await?;
        demo::say(format_args!("indexer reads {what}: GET {path} -> {status}"));
        if status != expected {
            return Err(format!("GET {path}: expected {expected}, got {status}"));
        }
    }

    let report = docs.verify_log(&dir).await?;
    // The key, and its secret part alone, must appear in no record.
    let secret = docs.indexer_key.rsplit('_').next().unwrap_or_default();
    for entry in std::fs::read_dir(dir.join("log")).map_err(|e| e.to_string())? {
        let path = entry.map_err(|e| e.to_string())?.path();
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
        if text.contains(secret) {
            return Err(format!("the API key appears in {}", path.display()));
        }
    }
    demo::say(format_args!(
        "audit log verified: {} records; the API key appears in none of them",
        report.records
    ));
    Ok(())
}
