//! The test app on axum.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use aaa::{
    Resource,
    audit::MemorySink,
    tower::{AaaLayer, Authenticated, Authorizer},
};
use axum::{Router, extract::Path, routing::get};

use super::{Server, guard};

pub(crate) async fn start() -> Server {
    let audit = Arc::new(MemorySink::new());
    let admin_hits = Arc::new(AtomicUsize::new(0));
    let hits = admin_hits.clone();
    let app = Router::new()
        .route(
            "/health",
            get(
                |who: Option<Authenticated>, headers: axum::http::HeaderMap| async move {
                    let who = who.map_or_else(|| "anonymous".to_owned(), |p| p.id.clone());
                    format!("ok {who}{}", super::echo(|n| headers.get(n)?.to_str().ok()))
                },
            ),
        )
        .route(
            "/docs/{id}",
            get(|who: Authenticated, Path(id): Path<String>| async move {
                format!("{} reads {id}", who.id)
            })
            .delete(|authz: Authorizer, Path(id): Path<String>| async move {
                let doc = Resource::new("Document")
                    .with_id(&id)
                    .with_attribute("owner", "ann");
                authz
                    .check("delete", &doc)
                    .await
                    .map(|_| format!("deleted {id}"))
            }),
        )
        .route(
            "/admin",
            get(move || {
                hits.fetch_add(1, Ordering::SeqCst);
                async { "admin area" }
            }),
        )
        .route("/unmapped", get(|| async { "should never be served" }))
        // Public, but the handler requires a caller.
        .route(
            "/whoami",
            get(|who: Authenticated| async move { who.id.clone() }),
        )
        .layer(AaaLayer::new(guard(audit.clone())).audit_receipt_header(true))
        .route(
            "/outside",
            get(|who: Authenticated| async move { who.id.clone() }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    super::serve_axum(listener, app);
    Server {
        name: "axum",
        addr,
        audit,
        admin_hits,
        has_outside: true,
    }
}
