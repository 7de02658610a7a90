//! Edges of the tower/axum adapter found by a review (each test failed before its fix): a request
//! abandoned while its allow is being made durable, the `Authenticated` extractor's refusal on a
//! public route, a layer outside that answers by itself, and IPv4 clients of a dual-stack
//! listener.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use aaa::{
    BoxFuture, Guard,
    audit::{AuditError, AuditEvent, AuditReceipt, AuditSink, EventKind, MemorySink},
    tower::{AaaLayer, Authenticated},
};
use axum::{Router, routing::get};
use tokio::io::AsyncWriteExt;

use super::{Bearer, Rules, completions, kinds, send};

/// A sink that takes every event at once (as `AuditWriter::record` enqueues it before its
/// future is polled) but, for decisions, answers only once `open` is set: what a strict
/// (fdatasync) decision looks like while the disk syncs.
#[derive(Debug)]
struct SlowDecisions {
    events: MemorySink,
    open: tokio::sync::watch::Receiver<bool>,
    /// How many events were taken, for the test to wait on.
    taken: tokio::sync::watch::Sender<usize>,
}

impl AuditSink for SlowDecisions {
    fn record<'a>(
        &'a self,
        event: AuditEvent,
    ) -> BoxFuture<'a, Result<Option<AuditReceipt>, AuditError>> {
        let decision = matches!(event.kind, EventKind::Authorization { .. });
        let taken = self.events.record(event);
        self.taken.send_modify(|n| *n += 1);
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

/// A client that goes away while its (allowed) decision is being made durable: the check's
/// future is dropped before the request is admitted, and the request is recorded as abandoned
/// (499) all the same; the handler never runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_while_its_allow_is_made_durable_the_request_gets_a_completion() {
    let (open, gate) = tokio::sync::watch::channel(false);
    let (taken, counted) = tokio::sync::watch::channel(0);
    let sink = Arc::new(SlowDecisions {
        events: MemorySink::new(),
        open: gate,
        taken,
    });
    let guard = super::guard(sink.clone());
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
    let addr = super::serve_axum_app(app).await;

    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client
        .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    // The allow is in the log; its durable write is not acknowledged (the gate stays shut).
    // (Bounded, so that a regression fails instead of hanging.)
    let within = |n: usize| {
        let mut counted = counted.clone();
        async move {
            tokio::time::timeout(Duration::from_secs(30), counted.wait_for(|c| *c >= n))
                .await
                .expect("the records never came")
                .map(|_| ())
        }
    };
    within(1).await.unwrap();
    // The client goes away; the server drops the request, and with it the check.
    drop(client);
    within(2).await.unwrap();
    assert_eq!(kinds(&sink.events.events()), ["authz Allow", "done 499"]);
    assert!(!handler_ran.load(std::sync::atomic::Ordering::SeqCst));
    drop(open);
}

/// On a public route, the `Authenticated` extractor refuses an anonymous caller with 401, and the
/// refusal is recorded as a denial, like every refusal (`Authorizer::check` records the same).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_401_from_the_authenticated_extractor_is_recorded_as_a_refusal() {
    let audit = Arc::new(MemorySink::new());
    let app = Router::new()
        .route(
            "/health",
            get(|who: Authenticated| async move { who.id.clone() }),
        )
        .layer(AaaLayer::new(super::guard(audit.clone())));
    let addr = super::serve_axum_app(app).await;
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
    assert_eq!(got, ["authz Allow", "authz Deny", "done 401"]);
}

/// A layer outside `AaaLayer` that answers by itself (a timeout, as tower-http's `TimeoutLayer`
/// answers 408) drops the inner future: the layer cannot see that answer, and records the request
/// as abandoned (499), as documented; a timeout added before `AaaLayer` (inside it) is recorded
/// with its own status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outer_layer_answering_by_itself_is_recorded_as_abandoned() {
    use axum::{
        extract::Request,
        http::StatusCode,
        middleware::{self, Next},
        response::{IntoResponse, Response},
    };
    async fn timeout(request: Request, next: Next) -> Response {
        tokio::time::timeout(Duration::from_millis(50), next.run(request))
            .await
            .unwrap_or_else(|_| StatusCode::REQUEST_TIMEOUT.into_response())
    }
    for outside in [true, false] {
        let audit = Arc::new(MemorySink::new());
        // A handler that never answers.
        let app = Router::new().route("/health", get(std::future::pending::<&str>));
        let app = if outside {
            app.layer(AaaLayer::new(super::guard(audit.clone())))
                .layer(middleware::from_fn(timeout))
        } else {
            app.layer(middleware::from_fn(timeout))
                .layer(AaaLayer::new(super::guard(audit.clone())))
        };
        let addr = super::serve_axum_app(app).await;
        let r = send(addr, "GET", "/health", &[]).await;
        assert_eq!(r.status, 408);
        let want = if outside { 499 } else { 408 };
        assert_eq!(completions(&audit), [want], "outside: {outside}");
    }
}

/// An IPv4 client of a dual-stack listener (`[::]:port`, the usual container setting) reaches
/// the layer as an IPv4-mapped IPv6 peer (`::ffff:127.0.0.1`). It is decided (and recorded) as
/// the IPv4 client it is: a `deny` on an IPv4 range holds (it let such clients through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deny_on_an_ipv4_range_holds_for_ipv4_clients_of_a_dual_stack_listener() {
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
    let v4 = super::serve_axum_app(app.clone()).await;
    let r = send(v4, "GET", "/docs/1", &ann).await;
    assert_eq!(r.status, 403, "on a v4 listener: {}", r.body);

    // Listening on [::] (dual stack), the same client from 127.0.0.1. (A machine without IPv6
    // cannot run this part; the facts' own unit test covers the mapping.)
    let Ok(listener) = tokio::net::TcpListener::bind("[::]:0").await else {
        eprintln!("no IPv6 here: the dual-stack part is skipped");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    super::serve_axum(listener, app);
    let r = send(
        SocketAddr::from(([127, 0, 0, 1], port)),
        "GET",
        "/docs/1",
        &ann,
    )
    .await;
    let peer = audit
        .events()
        .last()
        .and_then(|e| e.request.as_ref().and_then(|r| r.peer_ip));
    assert_eq!(
        r.status, 403,
        "the same IPv4 client on a dual-stack listener"
    );
    assert_eq!(peer, Some("127.0.0.1".parse().unwrap()));
}

/// An API key sent in a header whose name holds no credential word (`x-client`) reaches the
/// application marked sensitive like `x-api-key`, so that a `Debug` of the request headers (a
/// trace layer's, an error report's) never shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_header_of_any_name_reaches_the_handler_marked_sensitive() {
    const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQ";
    let c = crate::authn::clock();
    let mut config =
        aaa::ApiKeyConfig::new("aaa", [aaa::ApiKeyRecord::new("ci", "ci-runner", SECRET)]);
    config.header = "x-client".to_owned();
    let keys = aaa::ApiKeyAuthenticator::new(config, Arc::new(c.clone())).unwrap();
    let guard = Guard::builder()
        .authenticator(keys)
        .policies(Rules)
        .audit_disabled()
        .clock(c)
        .build()
        .unwrap();
    assert_eq!(guard.credential_headers(), ["x-client"]);
    let app = Router::new()
        .route(
            "/docs/{id}",
            get(|headers: axum::http::HeaderMap| async move { format!("{headers:?}") }),
        )
        .layer(AaaLayer::new(guard));
    let addr = super::serve_axum_app(app).await;
    let key = format!("x-client: aaa_ci_{SECRET}");
    let r = send(addr, "GET", "/docs/1", &[&key, "x-note: plain"]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"x-client\": Sensitive"), "{}", r.body);
    assert!(!r.body.contains(SECRET), "{}", r.body);
    assert!(r.body.contains("\"x-note\": \"plain\""), "{}", r.body);
}
