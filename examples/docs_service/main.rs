//! The documents service demo: a multi-tenant document API on axum that authenticates (JWT from
//! its own small identity provider, or from a real OIDC issuer), authorizes (the docs-service
//! policy in `examples/policies/docs_service.toml`) and audits (a signed, hash-linked log in
//! `./audit-data`) every request.
//!
//! Run with:
//!
//! ```text
//! cargo run --example docs_service --features full
//! cargo run --example docs_service --features full -- --listen 127.0.0.1:9000 --audit-dir /tmp/docs-audit
//! cargo run --example docs_service --features full -- --issuer https://idp.example --audience docs
//! cargo run --example docs_service --features full -- --issuer https://idp.example --audience docs --no-demo-idp
//! ```
//!
//! `--self-test` starts the service on a free port, sends a few requests, verifies the audit log
//! and exits (CI runs it).

mod app;
mod demo;

use std::{net::SocketAddr, sync::Arc};

use demo::{Demo, Options};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // The library's warnings (a key file others can read, an issuer whose keys cannot be had)
    // go to stderr.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_writer(std::io::stderr)
        .init();
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let self_test = args.iter().any(|a| a == "--self-test");
    args.retain(|a| a != "--self-test");
    let mut options = match Options::parse(args) {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    if self_test {
        options.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    }
    match run(options, self_test).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("docs-service: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(options: Options, self_test: bool) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|e| format!("{}: {e}", options.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let demo = Arc::new(Demo::new(&options, addr, None)?);
    demo::say(format_args!("{}", demo.banner(addr, &options.audit_dir)));
    for route in demo::unmapped(&demo) {
        eprintln!("warning: the policy does not map {route}: every request to it is denied");
    }
    let server = tokio::spawn(app::serve(listener, demo.clone()));
    if self_test {
        let result = demo::exercise(addr, &demo).await;
        server.abort();
        let report = demo.verify_log(&options.audit_dir).await?;
        demo::say(format_args!(
            "audit log verified: {} records, {} checkpoints, {} not yet covered",
            report.records, report.checkpoints, report.uncovered
        ));
        return result;
    }
    tokio::select! {
        result = server => result.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?,
        _ = tokio::signal::ctrl_c() => demo::say(format_args!("shutting down")),
    }
    demo.audit.checkpoint_now().await.map_err(|e| e.to_string())
}
