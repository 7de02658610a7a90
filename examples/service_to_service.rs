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

use std::{net::SocketAddr, sync::Arc};

use aaa::audit::{Verifier, VerifierKey};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("aaa-s2s-{}", std::process::id()));
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
        let status = get(addr, path, header).await?;
        println!("indexer reads {what}: GET {path} -> {status}");
        if status != expected {
            return Err(format!("GET {path}: expected {expected}, got {status}"));
        }
    }

    docs.audit
        .checkpoint_now()
        .await
        .map_err(|e| e.to_string())?;
    let key = VerifierKey::parse(&docs.verifier_key).map_err(|e| e.to_string())?;
    let report = Verifier::new([key])
        .verify_dir(&dir.join("log"))
        .map_err(|e| e.to_string())?;
    println!(
        "audit log verified: {} records; the API key appears in none of them",
        report.records
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn get(addr: SocketAddr, path: &str, header: &str) -> Result<u16, String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let extra = if header.is_empty() {
        String::new()
    } else {
        format!("{header}\r\n")
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: docs\r\nConnection: close\r\n{extra}\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&reply)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "no status line".to_owned())
}
