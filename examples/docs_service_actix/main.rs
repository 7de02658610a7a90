//! The documents service demo on actix-web: the same routes, policy, users and audit log as
//! `examples/docs_service` (axum), through the `aaa-actix` middleware.
//!
//! Run with:
//!
//! ```text
//! cargo run --example docs_service_actix --features full
//! cargo run --example docs_service_actix --features full -- --listen 127.0.0.1:9001 --audit-dir /tmp/docs-audit-actix
//! ```
//!
//! `--self-test` starts the service on a free port, runs the same short session as the axum demo,
//! verifies the audit log and exits (CI runs it).

#[path = "../docs_service/demo.rs"]
mod demo;

mod app;

use std::{net::SocketAddr, sync::Arc};

use actix_web::{App, HttpServer, web};
use demo::{Demo, Options};

#[actix_web::main]
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
    let listener = std::net::TcpListener::bind(options.listen)
        .map_err(|e| format!("{}: {e}", options.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let demo = Arc::new(Demo::new(&options, addr, None)?);
    demo::say(format_args!("{}", demo.banner(addr, &options.audit_dir)));
    for route in demo::unmapped(&demo) {
        eprintln!("warning: the policy does not map {route}: every request to it is denied");
    }
    let shared = demo.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(shared.clone()))
            .wrap(app::middleware(&shared))
            .configure(app::routes)
    })
    // A client that goes away is dropped (its request recorded 499, as on axum) instead of its
    // handler running on unseen (see aaa-actix's documentation).
    .h1_allow_half_closed(false);
    let server = if self_test { server.workers(1) } else { server };
    let server = server.listen(listener).map_err(|e| e.to_string())?.run();
    if self_test {
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let result = demo::exercise(addr, &demo).await;
        handle.stop(true).await;
        let report = demo.verify_log(&options.audit_dir).await?;
        demo::say(format_args!(
            "audit log verified: {} records, {} checkpoints, {} not yet covered",
            report.records, report.checkpoints, report.uncovered
        ));
        return result;
    }
    server.await.map_err(|e| e.to_string())?;
    demo.audit.checkpoint_now().await.map_err(|e| e.to_string())
}
