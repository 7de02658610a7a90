//! Review findings on the tower/axum adapter (rev-b): each test fails on the code under review.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use aaa::{
    BoxFuture, Guard,
    audit::{AuditError, AuditEvent, AuditReceipt, AuditSink, EventKind, MemorySink},
    tower::{AaaLayer, Authenticated},
};
use axum::{Router, routing::get};
use tokio::io::AsyncWriteExt;

use super::{Bearer, Rules, completions, send};

/// A sink that takes every event at once (as `AuditWriter::record` enqueues it before its
/// future is polled) but, for decisions, answers only once `open` is set: what a strict
/// (fdatasync) decision looks like while the disk syncs.
#[derive(Debug)]
struct SlowDecisions {
    events: MemorySink,
    open: tokio::sync::watch::Receiver<bool>,
}

impl AuditSink for SlowDecisions {
    fn record<'a>(
        &'a self,
        event: AuditEvent,
    ) -> BoxFuture<'a, Result<Option<AuditReceipt>, AuditError>> {
        let decision = matches!(event.kind, EventKind::Authorization { .. });
        let taken = self.events.record(event);
        let mut open = self.open.clone();
        Box::pin(async move {
            let receipt = taken.await;
            if decision {
                let _ = open.wait_for(|o| *o).await;
            }
            receipt
        })
    }
}

fn kinds(events: &[AuditEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e.kind {
            EventKind::RequestCompleted { status, .. } => format!("done {status}"),
            EventKind::Authorization { decision, .. } => format!("authz {decision:?}"),
            _ => "other".to_owned(),
        })
        .collect()
}

async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    addr
}

/// Finding 1: a client that goes away while its (allowed) decision is being made durable leaves
/// an allow record and never a completion: the check future is dropped before the `Completion`
/// exists, so neither `finish` nor its 499-on-drop ever runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rev_b_abandoned_during_the_durable_decision_gets_a_completion() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let sink = Arc::new(SlowDecisions {
        events: MemorySink::new(),
        open: gate,
    });
    let guard = Guard::builder()
        .authenticator(Bearer)
        .policies(Rules)
        .audit_arc(sink.clone())
        .build()
        .unwrap();
    let handler_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ran = handler_ran.clone();
    let app = Router::new()
        .route(
            "/health",
            get(move || {
                ran.store(true, std::sync::atomic::Ordering::SeqCst);
                async { "ok" }
            }),
        )
        .layer(AaaLayer::new(guard));
    let addr = serve(app).await;

    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // The decision is in the log; its durable write has not been acknowledged yet.
    while sink.events.events().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The client goes away; the server drops the request.
    drop(client);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The disk catches up.
    open.send(true).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let got = kinds(&sink.events.events());
    eprintln!("records: {got:?}, handler ran: {handler_ran:?}");
    assert_eq!(
        got.len(),
        2,
        "an allowed request must get exactly one completion record: {got:?}"
    );
}

/// Finding 2: on a public route, the `Authenticated` extractor refuses an anonymous caller with
/// 401, but no refusal (authentication failure or denial) is recorded: only the public allow
/// and a completion. (`Authorizer::check` records the same refusal as a denial.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rev_b_a_401_from_the_authenticated_extractor_is_recorded_as_a_refusal() {
    let audit = Arc::new(MemorySink::new());
    let app = Router::new()
        .route(
            "/health",
            get(|who: Authenticated| async move { who.id.clone() }),
        )
        .layer(AaaLayer::new(super::guard(audit.clone())));
    let addr = serve(app).await;
    let r = send(addr, "GET", "/health", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let got = kinds(&audit.events());
    let refusals = audit
        .events()
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                EventKind::Authentication {
                    outcome: aaa::audit::AuthnOutcome::Failure,
                    ..
                } | EventKind::Authorization {
                    decision: aaa::Decision::Deny,
                    ..
                }
            )
        })
        .count();
    assert_eq!(
        refusals, 1,
        "a 401 must be recorded once as a refusal: {got:?}"
    );
}

/// Finding 3: a layer outside `AaaLayer` that answers by itself and drops the inner future (a
/// timeout, as `tower_http::timeout::TimeoutLayer` does with 408) makes the completion record
/// say 499 ("the client closed the request") while the client got 408.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rev_b_an_outer_timeout_is_recorded_with_the_status_the_client_got() {
    use axum::{
        extract::Request,
        http::StatusCode,
        middleware::{self, Next},
        response::{IntoResponse, Response},
    };
    async fn timeout(request: Request, next: Next) -> Response {
        tokio::time::timeout(Duration::from_millis(100), next.run(request))
            .await
            .unwrap_or_else(|_| StatusCode::REQUEST_TIMEOUT.into_response())
    }
    let audit = Arc::new(MemorySink::new());
    let app = Router::new()
        .route(
            "/health",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "ok"
            }),
        )
        .layer(AaaLayer::new(super::guard(audit.clone())))
        .layer(middleware::from_fn(timeout));
    let addr = serve(app).await;
    let r = send(addr, "GET", "/health", &[]).await;
    assert_eq!(r.status, 408);
    assert_eq!(
        completions(&audit),
        [408],
        "the completion must carry the status the client got"
    );
}

/// Doc-only: a method added to an already-layered path after `Router::layer` is served without
/// the layer (axum's "layers apply to the routes added before"), silently: the path looks
/// protected. The crate docs do not warn about it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rev_b_a_method_added_after_the_layer_on_a_layered_path_is_decided() {
    let audit = Arc::new(MemorySink::new());
    let deleted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = deleted.clone();
    let app = Router::new()
        .route("/docs/{id}", get(|| async { "read" }))
        .layer(AaaLayer::new(super::guard(audit.clone())))
        .route(
            "/docs/{id}",
            axum::routing::delete(move || {
                d.store(true, std::sync::atomic::Ordering::SeqCst);
                async { "deleted" }
            }),
        );
    let addr = serve(app).await;
    let r = send(addr, "GET", "/docs/1", &[]).await;
    assert_eq!(r.status, 401, "GET is behind the layer");
    let r = send(addr, "DELETE", "/docs/1", &[]).await;
    eprintln!("DELETE: {} {:?} records {:?}", r.status, r.body, kinds(&audit.events()));
    assert!(
        !deleted.load(std::sync::atomic::Ordering::SeqCst),
        "an anonymous DELETE ran its handler without any decision"
    );
}

/// Exploration: what the layer decides in nested shapes (printed, asserted fail-closed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rev_b_explore_nested_shapes() {
    let audit = Arc::new(MemorySink::new());
    let ann = ["Authorization: Bearer good-ann"];
    // Layer inside a nested router.
    let inner = Router::new()
        .route("/docs/{id}", get(|| async { "inner doc" }))
        .layer(AaaLayer::new(super::guard(audit.clone())));
    let app = Router::new()
        .nest("/api", inner.clone())
        .nest_service("/svc", inner)
        .merge(
            Router::new()
                .nest_service(
                    "/opaque",
                    Router::new().route("/", get(|| async { "opaque root" })),
                )
                .route("/docs/{id}", get(|| async { "outer doc" }))
                .layer(AaaLayer::new(super::guard(audit.clone()))),
        );
    let addr = serve(app).await;
    for target in [
        "/api/docs/1",
        "/svc/docs/1",
        "/opaque",
        "/opaque/",
        "/opaque/x",
        "/docs/1",
    ] {
        let before = audit.events().len();
        let r = send(addr, "GET", target, &ann).await;
        let routes: Vec<_> = audit.events()[before..]
            .iter()
            .map(|e| e.target.as_ref().and_then(|t| t.route.clone()))
            .collect();
        eprintln!("{target}: {} {:?} routes {routes:?}", r.status, r.body);
    }
}

/// Doc-only: a policy that lists `HEAD` for a route (here public) while the router serves HEAD
/// with the GET handler runs that handler under the HEAD decision: an anonymous caller learns
/// what GET would answer (status, headers, length) and the handler's side effects happen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rev_b_head_listed_in_the_policy_does_not_run_the_protected_get_handler() {
    let policy = aaa::policy::PolicySet::from_toml(
        r#"
version = "v"
[roles.reader]
[[rules]]
id = "readers"
effect = "allow"
principal = { role = "reader" }
actions = ["docs:read"]
resources = ["Document"]

[[routes]]
method = "HEAD"
route = "/docs/{id}"
public = true

[[routes]]
method = "GET"
route = "/docs/{id}"
action = "docs:read"
resource = "Document"
id = "id"
"#,
        "head.toml",
    )
    .unwrap();
    let audit = Arc::new(MemorySink::new());
    let guard = Guard::builder()
        .authenticator(Bearer)
        .policies(policy)
        .audit_arc(audit.clone())
        .build()
        .unwrap();
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let r2 = reads.clone();
    let app = Router::new()
        .route(
            "/docs/{id}",
            get(move || {
                r2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async { ([("x-doc-owner", "carol")], "secret text") }
            }),
        )
        .layer(AaaLayer::new(guard));
    let addr = serve(app).await;
    let r = send(addr, "GET", "/docs/d2", &[]).await;
    assert_eq!(r.status, 401);
    let r = send(addr, "HEAD", "/docs/d2", &[]).await;
    eprintln!("HEAD: {} {}", r.status, r.head);
    assert_eq!(
        reads.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the GET handler ran for an anonymous HEAD"
    );
}

/// An IPv4 client of a dual-stack listener (`[::]:port`, the usual container setting) reaches
/// the layer as an IPv4-mapped IPv6 peer (`::ffff:127.0.0.1`); by the documented semantics of
/// `isInRange` that is not in any IPv4 range, so a `deny` on an IPv4 range lets it through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rev_b_a_deny_on_an_ipv4_range_holds_for_ipv4_clients_of_a_dual_stack_listener() {
    let policy = aaa::policy::PolicySet::from_toml(
        r#"
version = "v"

[[rules]]
id = "anyone-reads"
effect = "allow"
actions = ["docs:read"]
resources = ["Document"]

[[rules]]
id = "forbid-loopback-v4"
effect = "deny"
actions = ["*"]
when = 'context.peer_ip.isInRange(ip("127.0.0.0/8"))'

[[routes]]
method = "GET"
route = "/docs/{id}"
action = "docs:read"
resource = "Document"
id = "id"
"#,
        "peer.toml",
    )
    .unwrap();
    let audit = Arc::new(MemorySink::new());
    let guard = Guard::builder()
        .authenticator(Bearer)
        .policies(policy)
        .audit_arc(audit.clone())
        .build()
        .unwrap();
    let app = Router::new()
        .route("/docs/{id}", get(|| async { "doc" }))
        .layer(AaaLayer::new(guard));
    let ann = ["Authorization: Bearer good-ann"];

    // Listening on 127.0.0.1: the deny holds.
    let v4 = serve(app.clone()).await;
    let r = send(v4, "GET", "/docs/1", &ann).await;
    assert_eq!(r.status, 403, "on a v4 listener: {}", r.body);

    // Listening on [::] (dual stack), the same client from 127.0.0.1.
    let listener = tokio::net::TcpListener::bind("[::]:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let r = send(SocketAddr::from(([127, 0, 0, 1], port)), "GET", "/docs/1", &ann).await;
    let peer = audit
        .events()
        .last()
        .and_then(|e| e.request.as_ref().and_then(|r| r.peer_ip));
    eprintln!("dual stack: {} {:?} peer {peer:?}", r.status, r.body);
    assert_eq!(r.status, 403, "the same IPv4 client on a dual-stack listener");
}
