//! Refusals of anonymous callers after admission, recorded with the completion (also when the
//! request is dropped meanwhile, or the refusal cannot be recorded), and inner errors passed on
//! by the actix middleware as they are. (Found by a review; each test failed before its fix.)

use std::{net::SocketAddr, sync::Arc, time::Duration};

use aaa::{
    BoxFuture, Decision, Resource,
    audit::{AuditError, AuditEvent, AuditReceipt, AuditSink, EventKind, MemorySink},
};
use actix_web::{App, HttpResponse, dev::Service as _, web};
use tokio::io::AsyncWriteExt;

use super::{completions, kinds, send};

/// What the sink does with a denial: take it and wait (a strict `fdatasync` that has not
/// returned yet), or fail it (a strict `fdatasync` that failed). Everything else is taken at
/// once, as `AuditWriter` does with best-effort completions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnDeny {
    Wait,
    Fail,
}

#[derive(Debug)]
struct Denials {
    events: MemorySink,
    on_deny: OnDeny,
    taken: tokio::sync::watch::Sender<usize>,
}

impl AuditSink for Denials {
    fn record<'a>(
        &'a self,
        event: AuditEvent,
    ) -> BoxFuture<'a, Result<Option<AuditReceipt>, AuditError>> {
        let deny = matches!(
            event.kind,
            EventKind::Authorization {
                decision: Decision::Deny,
                ..
            }
        );
        if deny && self.on_deny == OnDeny::Fail {
            return Box::pin(std::future::ready(Err(AuditError::Unavailable(
                "fdatasync failed",
            ))));
        }
        let taken = self.events.record(event);
        self.taken.send_modify(|n| *n += 1);
        let wait = deny && self.on_deny == OnDeny::Wait;
        Box::pin(async move {
            let receipt = taken.await;
            if wait {
                std::future::pending::<()>().await;
            }
            receipt
        })
    }
}

fn denials(on_deny: OnDeny) -> (Arc<Denials>, tokio::sync::watch::Receiver<usize>) {
    let (taken, counted) = tokio::sync::watch::channel(0);
    let sink = Arc::new(Denials {
        events: MemorySink::new(),
        on_deny,
        taken,
    });
    (sink, counted)
}

async fn serve_axum(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    super::serve_axum(listener, app);
    addr
}

/// Serves `/health`, public, with a handler that requires a caller (`Authenticated`), on
/// `adapter` over `sink`.
async fn requiring_a_caller(adapter: &str, sink: &Arc<Denials>) -> SocketAddr {
    if adapter == "axum" {
        let app = axum::Router::new()
            .route(
                "/health",
                axum::routing::get(|who: aaa::tower::Authenticated| async move { who.id.clone() }),
            )
            .layer(aaa::tower::AaaLayer::new(super::guard(sink.clone())));
        serve_axum(app).await
    } else {
        serve_actix!(super::guard(sink.clone()), aaa => App::new()
            .route(
                "/health",
                web::get().to(|who: aaa::actix::Authenticated| async move { who.id.clone() }),
            )
            .wrap(aaa))
    }
}

/// Waits (bounded) until the sink has taken `n` events; whether it did.
async fn taken(counted: &tokio::sync::watch::Receiver<usize>, n: usize, secs: u64) -> bool {
    let mut counted = counted.clone();
    tokio::time::timeout(Duration::from_secs(secs), counted.wait_for(|c| *c >= n))
        .await
        .is_ok()
}

/// The client goes away while the extractor's denial (recorded by `Guard::complete`, before
/// the completion) is made durable: the request still gets a completion record (499), as it
/// does when it goes away while its allow is made durable, or while the handler runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_while_the_anonymous_denial_is_made_durable_gets_a_completion() {
    let mut got = Vec::new();
    // (axum only: actix-web keeps running a request whose client went away.)
    for adapter in ["axum"] {
        let (sink, counted) = denials(OnDeny::Wait);
        let addr = requiring_a_caller(adapter, &sink).await;
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        // The allow, then the extractor's denial: taken, its durable write not acknowledged.
        assert!(
            taken(&counted, 2, 30).await,
            "{adapter}: the denial never came"
        );
        // The client goes away; the server drops the request's future.
        drop(client);
        taken(&counted, 3, 30).await;
        let kinds = kinds(&sink.events.events());
        eprintln!("{adapter}: {kinds:?}");
        got.push((adapter, kinds));
    }
    for (adapter, kinds) in got {
        assert_eq!(
            kinds,
            ["authz Allow", "authz Deny", "done 499"],
            "{adapter}: an admitted request without a completion record"
        );
    }
}

/// Strict audit: the extractor's denial cannot be recorded (its `fdatasync` failed), so the
/// client gets 503, fail-closed; that 503 is recorded as the request's completion (the sink
/// takes completions: best effort by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecordable_anonymous_denial_still_records_the_503_completion() {
    let mut got = Vec::new();
    for adapter in ["axum", "actix"] {
        let (sink, _) = denials(OnDeny::Fail);
        let addr = requiring_a_caller(adapter, &sink).await;
        let r = send(addr, "GET", "/health", &[]).await;
        assert_eq!(r.status, 503, "{adapter}: fail closed: {}", r.body);
        let kinds = kinds(&sink.events.events());
        eprintln!("{adapter}: 503 answered; recorded {kinds:?}");
        got.push((adapter, kinds));
    }
    for (adapter, kinds) in got {
        assert_eq!(
            kinds,
            ["authz Allow", "done 503"],
            "{adapter}: the 503 answered is recorded nowhere"
        );
    }
}

/// An inner middleware's error (`ErrorForbidden`: an error whose response actix can build again
/// and again), under an outer middleware that reads the error's response (for a metric, a log
/// line, an error reporter) and passes the error on.
macro_rules! forbidden_inside_read_outside {
    ($app:expr) => {
        $app.wrap_fn(|req, srv| {
            let served = srv.call(req);
            async move {
                match served.await {
                    Ok(response) => Ok(response),
                    Err(error) => {
                        let status = error.error_response().status();
                        eprintln!("outer middleware: the error answers {status}");
                        Err(error)
                    }
                }
            }
        })
    };
}

/// An app serving `/health` under an inner middleware that fails with `$error` once the route
/// has answered.
macro_rules! failing_inside {
    ($error:expr) => {
        App::new()
            .service(web::resource("/health").to(|| async { "ok" }))
            .wrap_fn(|req, srv| {
                let served = srv.call(req);
                async move {
                    drop(served.await?);
                    Err::<actix_web::dev::ServiceResponse, actix_web::Error>($error.into())
                }
            })
    };
}

macro_rules! forbidden_inside {
    () => {
        failing_inside!(actix_web::error::ErrorForbidden("nope"))
    };
}

/// Asks `/health` of the same app without and with `Aaa`: both answer `want`.
async fn answered_alike(plain: SocketAddr, wrapped: SocketAddr, want: (u16, &str)) {
    for (addr, how) in [(plain, "without Aaa"), (wrapped, "with Aaa")] {
        let r = send(addr, "GET", "/health", &[]).await;
        assert_eq!((r.status, r.body.as_str()), want, "{how}");
    }
}

/// An inner error is passed on as it is: an outer middleware that reads its `error_response()`
/// leaves the client the same answer as without `Aaa`, which records that status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outer_middleware_reading_the_error_does_not_change_the_answer() {
    let audit = Arc::new(MemorySink::new());
    let plain = serve_actix!(super::guard(audit.clone()), aaa =>
        forbidden_inside_read_outside!(forbidden_inside!()));
    let audit = Arc::new(MemorySink::new());
    let wrapped = serve_actix!(super::guard(audit.clone()), aaa =>
        forbidden_inside_read_outside!(forbidden_inside!().wrap(aaa)));
    answered_alike(plain, wrapped, (403, "nope")).await;
    assert_eq!(completions(&audit), [403]);
}

/// A typed error of an inner middleware (a quota service's own error type).
#[derive(Debug)]
struct QuotaExceeded;

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("quota exceeded")
    }
}

impl actix_web::ResponseError for QuotaExceeded {
    fn status_code(&self) -> actix_web::http::StatusCode {
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE
    }
}

/// The outer middleware of test 4: it answers 429 for the inner `QuotaExceeded` error.
macro_rules! quota_app {
    ($app:expr) => {
        $app.wrap_fn(|req, srv| {
            let served = srv.call(req);
            async move {
                match served.await {
                    Err(error) if error.as_error::<QuotaExceeded>().is_some() => {
                        Err(actix_web::error::ErrorTooManyRequests("retry later"))
                    }
                    other => other,
                }
            }
        })
    };
}

macro_rules! quota_inside {
    () => {
        failing_inside!(QuotaExceeded)
    };
}

/// An outer middleware that recognizes an inner error by its type (`Error::as_error`) still
/// does with `Aaa` between them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outer_middleware_still_recognizes_the_inner_error_type() {
    let audit = Arc::new(MemorySink::new());
    let plain = serve_actix!(super::guard(audit.clone()), aaa => quota_app!(quota_inside!()));
    let audit = Arc::new(MemorySink::new());
    let wrapped = serve_actix!(super::guard(audit.clone()), aaa =>
        quota_app!(quota_inside!().wrap(aaa)));
    answered_alike(plain, wrapped, (429, "retry later")).await;
    assert_eq!(completions(&audit), [503], "the inner error's own status");
}

/// Serves `/health` with the handler `$axum` on axum and `$actix` on actix, each behind the
/// shared guard over a log of its own: `[(address, log); 2]`, axum first.
macro_rules! on_both {
    ($axum:expr, $actix:expr) => {{
        let axum_audit = Arc::new(MemorySink::new());
        let app = axum::Router::new()
            .route("/health", axum::routing::get($axum))
            .layer(aaa::tower::AaaLayer::new(super::guard(axum_audit.clone())));
        let axum_addr = serve_axum(app).await;
        let audit = Arc::new(MemorySink::new());
        let addr = serve_actix!(super::guard(audit.clone()), aaa => App::new()
            .route("/health", web::get().to($actix))
            .wrap(aaa));
        [(axum_addr, axum_audit), (addr, audit)]
    }};
}

/// The same handler on both adapters: `Option<Authenticated>`, and its own 401 for a reason of
/// its own (a webhook whose signature is missing): no denial is recorded on either (actix's
/// `Option` runs the extractor, which refuses; only aaa's own 401 as the answer is recorded).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn option_authenticated_and_a_handler_s_own_401_are_recorded_alike() {
    let served = on_both!(
        |who: Option<aaa::tower::Authenticated>, headers: axum::http::HeaderMap| async move {
            if who.is_none() && !headers.contains_key("x-signature") {
                return (axum::http::StatusCode::UNAUTHORIZED, "unsigned".to_owned());
            }
            (axum::http::StatusCode::OK, "ok".to_owned())
        },
        |who: Option<aaa::actix::Authenticated>, req: actix_web::HttpRequest| async move {
            if who.is_none() && !req.headers().contains_key("x-signature") {
                return HttpResponse::Unauthorized().body("unsigned");
            }
            HttpResponse::Ok().body("ok")
        }
    );
    for (addr, audit) in &served {
        let r = send(*addr, "GET", "/health", &[]).await;
        assert_eq!((r.status, r.body.as_str()), (401, "unsigned"));
        assert_eq!(kinds(&audit.events()), ["authz Allow", "done 401"]);
    }
}

/// An anonymous caller, and a handler that checks two resources (`Authorizer::check`) and
/// serves what it may: each check is a decision on its own resource, recorded as for an
/// authenticated caller.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_handler_level_denial_of_an_anonymous_caller_is_recorded() {
    let served = on_both!(
        |authz: aaa::tower::Authorizer| async move {
            let mut visible = 0;
            for id in ["1", "2"] {
                let doc = Resource::new("Document").with_id(id);
                if authz.check("read", &doc).await.is_ok() {
                    visible += 1;
                }
            }
            format!("visible {visible}")
        },
        |authz: aaa::actix::Authorizer| async move {
            let mut visible = 0;
            for id in ["1", "2"] {
                let doc = Resource::new("Document").with_id(id);
                if authz.check("read", &doc).await.is_ok() {
                    visible += 1;
                }
            }
            format!("visible {visible}")
        }
    );
    for (addr, audit) in &served {
        let r = send(*addr, "GET", "/health", &[]).await;
        assert_eq!((r.status, r.body.as_str()), (200, "visible 0"));
        // For comparison, an authenticated caller: two decisions recorded as well.
        let ann = ["Authorization: Bearer good-ann"];
        let r = send(*addr, "GET", "/health", &ann).await;
        assert_eq!((r.status, r.body.as_str()), (200, "visible 2"));
        assert_eq!(
            kinds(&audit.events()),
            [
                "authz Allow",
                "authz Deny",
                "authz Deny",
                "done 200",
                "authz Allow",
                "authz Allow",
                "authz Allow",
                "done 200",
            ]
        );
    }
}

/// An inner middleware requiring a caller with aaa's own `Authenticated` extractor (an auth
/// middleware on a resource) and passing its rejection on with `?`: on axum the rejection is a
/// response, on actix it reaches `Aaa` as an inner `Err`; on both the denial is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aaa_s_401_from_an_inner_middleware_is_recorded_on_both() {
    let axum_audit = Arc::new(MemorySink::new());
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "ok" }))
        .layer(axum::middleware::from_fn(
            |_who: aaa::tower::Authenticated,
             req: axum::extract::Request,
             next: axum::middleware::Next| async move { next.run(req).await },
        ))
        .layer(aaa::tower::AaaLayer::new(super::guard(axum_audit.clone())));
    let axum_addr = serve_axum(app).await;

    let actix_audit = Arc::new(MemorySink::new());
    // On the resource (once actix has routed: an app-level middleware is refused as misrouted).
    let actix_addr = serve_actix!(super::guard(actix_audit.clone()), aaa => App::new()
        .service(web::resource("/health").route(web::get().to(|| async { "ok" }))
        .wrap_fn(|mut req, srv| {
            let refused = req
                .extract::<aaa::actix::Authenticated>()
                .into_inner()
                .err();
            let served = refused.is_none().then(|| srv.call(req));
            async move {
                if let Some(rejection) = refused {
                    return Err(rejection.into());
                }
                served.unwrap().await
            }
        }))
        .wrap(aaa));

    let mut got = Vec::new();
    for (name, addr, audit) in [
        ("axum", axum_addr, &axum_audit),
        ("actix", actix_addr, &actix_audit),
    ] {
        let r = send(addr, "GET", "/health", &[]).await;
        let k = kinds(&audit.events());
        got.push((name, r.status, k));
    }
    for (name, status, k) in got {
        assert_eq!(status, 401, "{name}");
        assert_eq!(k, ["authz Allow", "authz Deny", "done 401"], "{name}");
    }
}

/// The cause of an error that is not a string: an application's own error type.
#[derive(Debug)]
struct Incident(u32);

impl std::fmt::Display for Incident {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "incident {}", self.0)
    }
}

/// An inner error holding a 500 response of its own (`InternalError::from_response`, an error
/// page with a correlation id), of a string cause and of an application's error type: the client
/// gets that response with `Aaa` as without (asking `error_response()` for the status takes it
/// out: `Aaa` passes on what it took).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_internal_error_with_a_stored_500_keeps_its_response() {
    macro_rules! page {
        () => {
            HttpResponse::InternalServerError()
                .insert_header(("x-incident", "42"))
                .body("incident 42")
        };
    }
    macro_rules! by_string {
        () => {
            failing_inside!(actix_web::error::InternalError::from_response(
                "boom",
                page!()
            ))
        };
    }
    macro_rules! by_type {
        () => {
            failing_inside!(actix_web::error::InternalError::from_response(
                Incident(42),
                page!()
            ))
        };
    }
    let audit = Arc::new(MemorySink::new());
    let plain = serve_actix!(super::guard(audit.clone()), aaa => by_string!());
    let audit = Arc::new(MemorySink::new());
    let wrapped = serve_actix!(super::guard(audit.clone()), aaa => by_string!().wrap(aaa));
    stored_500_answered_alike(plain, wrapped, &audit).await;
    let audit = Arc::new(MemorySink::new());
    let plain = serve_actix!(super::guard(audit.clone()), aaa => by_type!());
    let audit = Arc::new(MemorySink::new());
    let wrapped = serve_actix!(super::guard(audit.clone()), aaa => by_type!().wrap(aaa));
    stored_500_answered_alike(plain, wrapped, &audit).await;
}

/// Asks `/health` of the same app without and with `Aaa`: both answer the stored page, and the
/// completion recorded is its 500.
async fn stored_500_answered_alike(plain: SocketAddr, wrapped: SocketAddr, audit: &MemorySink) {
    let mut got = Vec::new();
    for (addr, how) in [(plain, "without Aaa"), (wrapped, "with Aaa")] {
        let r = send(addr, "GET", "/health", &[]).await;
        got.push((
            how,
            r.status,
            r.header("x-incident").map(str::to_owned),
            r.body,
        ));
    }
    assert_eq!(completions(audit), [500]);
    for (how, status, incident, body) in got {
        assert_eq!(
            (status, incident.as_deref(), body.as_str()),
            (500, Some("42"), "incident 42"),
            "{how}"
        );
    }
}

/// An application's own error type of status 500 (the default), whose default `error_response()`
/// shows its `Display`: internal details an outer middleware hides.
#[derive(Debug)]
struct DbError;

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("db: connect postgres://app:hunter2@db.internal failed")
    }
}

impl actix_web::ResponseError for DbError {}

/// An outer middleware that hides the details of the application's `DbError`.
macro_rules! sanitizing {
    ($app:expr) => {
        $app.wrap_fn(|req, srv| {
            let served = srv.call(req);
            async move {
                match served.await {
                    Err(error) if error.as_error::<DbError>().is_some() => {
                        Err(actix_web::error::ErrorInternalServerError("internal error"))
                    }
                    other => other,
                }
            }
        })
    };
}

/// A middleware outside `Aaa` that recognizes a 500 error of the application by its type (to hide
/// its details) still does: `Aaa` passes it on as it is, not re-wrapped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outer_middleware_still_recognizes_an_inner_500_by_its_type() {
    let audit = Arc::new(MemorySink::new());
    let plain =
        serve_actix!(super::guard(audit.clone()), aaa => sanitizing!(failing_inside!(DbError)));
    let audit = Arc::new(MemorySink::new());
    let wrapped = serve_actix!(super::guard(audit.clone()), aaa =>
        sanitizing!(failing_inside!(DbError).wrap(aaa)));
    answered_alike(plain, wrapped, (500, "internal error")).await;
    assert_eq!(completions(&audit), [500]);
}

/// An outer middleware that asks a 500 error of the application for its response (for a log
/// line) and passes it on: the client still gets that response, as without `Aaa`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_500_read_outside_keeps_its_response() {
    let audit = Arc::new(MemorySink::new());
    let plain = serve_actix!(super::guard(audit.clone()), aaa =>
        forbidden_inside_read_outside!(failing_inside!(DbError)));
    let audit = Arc::new(MemorySink::new());
    let wrapped = serve_actix!(super::guard(audit.clone()), aaa =>
        forbidden_inside_read_outside!(failing_inside!(DbError).wrap(aaa)));
    answered_alike(
        plain,
        wrapped,
        (500, "db: connect postgres://app:hunter2@db.internal failed"),
    )
    .await;
    assert_eq!(completions(&audit), [500]);
}
