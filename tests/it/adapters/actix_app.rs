//! The test app on actix-web.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use aaa::{
    Resource,
    actix::{Aaa, Authenticated, Authorizer},
    audit::MemorySink,
};
use actix_web::{App, HttpServer, web};

use super::{Server, guard};

fn routes(cfg: &mut web::ServiceConfig, hits: Arc<AtomicUsize>) {
    cfg.route(
        "/health",
        web::get().to(
            |who: Option<Authenticated>, req: actix_web::HttpRequest| async move {
                let who = who.map_or_else(|| "anonymous".to_owned(), |p| p.id.clone());
                format!(
                    "ok {who}{}",
                    super::echo(|n| req.headers().get(n)?.to_str().ok())
                )
            },
        ),
    )
    .service(
        web::resource("/docs/{id}")
            .route(
                web::get().to(|who: Authenticated, id: web::Path<String>| async move {
                    format!("{} reads {}", who.id, id.into_inner())
                }),
            )
            .route(
                web::delete().to(|authz: Authorizer, id: web::Path<String>| async move {
                    let id = id.into_inner();
                    let doc = Resource::new("Document")
                        .with_id(&id)
                        .with_attribute("owner", "ann");
                    authz
                        .check("delete", &doc)
                        .await
                        .map(|_| format!("deleted {id}"))
                }),
            ),
    )
    .route(
        "/admin",
        web::get().to(move || {
            hits.fetch_add(1, Ordering::SeqCst);
            async { "admin area" }
        }),
    )
    .route(
        "/unmapped",
        web::get().to(|| async { "should never be served" }),
    )
    // Public, but the handler requires a caller.
    .route(
        "/whoami",
        web::get().to(|who: Authenticated| async move { who.id.clone() }),
    );
}

/// `app_wrap`: the middleware wraps the whole `App`; otherwise it wraps a scope, and `/outside`
/// is served without it.
pub(crate) async fn start(app_wrap: bool) -> Server {
    let audit = Arc::new(MemorySink::new());
    let admin_hits = Arc::new(AtomicUsize::new(0));
    let g = guard(audit.clone());
    let hits = admin_hits.clone();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = if app_wrap {
        HttpServer::new(move || {
            let hits = hits.clone();
            App::new()
                .wrap(Aaa::new(g.clone()).audit_receipt_header(true))
                .configure(|cfg| routes(cfg, hits))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run()
    } else {
        HttpServer::new(move || {
            let hits = hits.clone();
            App::new()
                .route(
                    "/outside",
                    web::get().to(|who: Authenticated| async move { who.id.clone() }),
                )
                .service(
                    web::scope("")
                        .wrap(Aaa::new(g.clone()).audit_receipt_header(true))
                        .configure(|cfg| routes(cfg, hits)),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run()
    };
    tokio::spawn(server);
    Server {
        name: if app_wrap {
            "actix (App::wrap)"
        } else {
            "actix (Scope::wrap)"
        },
        addr,
        audit,
        admin_hits,
        has_outside: !app_wrap,
    }
}
