//! The documents service demo on actix-web: the same routes, policy, users and audit log as
//! `examples/docs_service` (axum), through the `aaa-actix` middleware.
//!
//! Run with:
//!
//! ```text
//! cargo run --example docs_service_actix --features full
//! cargo run --example docs_service_actix --features full -- --listen 127.0.0.1:9001 --audit-dir /tmp/docs-audit-actix
//! ```

#[path = "../docs_service/demo.rs"]
mod demo;

mod app;

use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use demo::{Demo, Options};

#[actix_web::main]
async fn main() -> std::process::ExitCode {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(options).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("docs-service: {message}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(options: Options) -> Result<(), String> {
    let listener = std::net::TcpListener::bind(options.listen)
        .map_err(|e| format!("{}: {e}", options.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let demo = Arc::new(Demo::new(&options, addr, None)?);
    println!("{}", demo.banner(addr, &options.audit_dir));
    let shared = demo.clone();
    HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(shared.clone()))
            .wrap(app::middleware(&shared))
            .configure(app::routes)
    })
    .listen(listener)
    .map_err(|e| e.to_string())?
    .run()
    .await
    .map_err(|e| e.to_string())?;
    demo.audit.checkpoint_now().await.map_err(|e| e.to_string())
}
