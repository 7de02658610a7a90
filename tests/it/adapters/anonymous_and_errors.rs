//! What both adapters must record alike for anonymous callers refused by a handler, what actix
//! must answer for an inner error that carries its response, and actix routing inside scopes
//! (with a tail, a regex parameter, escapes and HEAD) wrapped on the resource or like the app.
//! (Found by a review of the previous fixes; the first three failed before theirs.)

use std::sync::Arc;

use aaa::{
    Resource,
    actix::{Authenticated, Authorizer},
    audit::{EventKind, MemorySink},
};
use actix_web::{App, HttpResponse, dev::Service as _, guard, web};

use super::{completions, guard as rules_guard, send};

/// Starts `$app` (an expression using the middleware `$aaa`, over the shared `Rules` policy) on
/// 127.0.0.1:0.
macro_rules! serve {
    ($aaa:ident => $app:expr) => {{
        let audit = Arc::new(MemorySink::new());
        let addr = serve_actix!(rules_guard(audit.clone()), $aaa => $app);
        (addr, audit)
    }};
}

/// An inner middleware that refuses `x-limit` requests with an error carrying its own response
/// (`InternalError::from_response`, as rate limiters and actix's extractor configs build them).
macro_rules! limited {
    ($app:expr) => {
        $app.service(web::resource("/health").to(|| async { "ok" }))
            .wrap_fn(|req, srv| {
                let limited = req.headers().contains_key("x-limit");
                let served = srv.call(req);
                async move {
                    if limited {
                        return Err(actix_web::error::InternalError::from_response(
                            "limited",
                            HttpResponse::TooManyRequests().body("slow down"),
                        )
                        .into());
                    }
                    served.await
                }
            })
    };
}

/// The client must get the inner error's own response, and the completion must record its
/// status, as without the middleware.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_error_carrying_its_response_reaches_the_client_intact() {
    let (plain, _) = serve!(aaa => limited!(App::new()));
    let r = send(plain, "GET", "/health", &["x-limit: 1"]).await;
    eprintln!("without Aaa: {} {:?}", r.status, r.body);
    assert_eq!((r.status, r.body.as_str()), (429, "slow down"));

    let (addr, audit) = serve!(aaa => limited!(App::new()).wrap(aaa));
    let r = send(addr, "GET", "/health", &["x-limit: 1"]).await;
    eprintln!(
        "with Aaa: {} {:?}; completions {:?}",
        r.status,
        r.body,
        completions(&audit)
    );
    assert_eq!(
        (r.status, r.body.as_str(), completions(&audit)),
        (429, "slow down", vec![429])
    );
}

fn decisions(audit: &MemorySink) -> Vec<String> {
    audit
        .events()
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Authorization { decision, .. } => Some(format!("{decision:?}")),
            EventKind::RequestCompleted { status, .. } => Some(status.to_string()),
            _ => None,
        })
        .collect()
}

/// A public route serving anonymous callers some of the time (`Option<Authenticated>`), with a
/// handler-level check for the rest: an anonymous caller's one refusal (by `Authorizer::check`,
/// which records it) must be recorded once, as on axum.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_anonymous_refusal_is_recorded_once() {
    let (addr, audit) = serve!(aaa => App::new()
        .route(
            "/health",
            web::get().to(|who: Option<Authenticated>, authz: Authorizer| async move {
                if who.is_none() {
                    // Anonymous callers see the public part only if the policy says so.
                    authz.check("read", &Resource::new("Document").with_id("1")).await?;
                }
                Ok::<_, aaa::actix::Rejection>("ok")
            }),
        )
        .wrap(aaa));
    let r = send(addr, "GET", "/health", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let got = decisions(&audit);
    eprintln!("actix: {got:?}");

    // The same handler on axum.
    let axum_audit = Arc::new(MemorySink::new());
    let app = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(
                |who: Option<aaa::tower::Authenticated>, authz: aaa::tower::Authorizer| async move {
                    if who.is_none() {
                        authz
                            .check("read", &Resource::new("Document").with_id("1"))
                            .await?;
                    }
                    Ok::<_, aaa::tower::Rejection>("ok")
                },
            ),
        )
        .layer(aaa::tower::AaaLayer::new(rules_guard(axum_audit.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let axum_addr = listener.local_addr().unwrap();
    super::serve_axum(listener, app);
    let r = send(axum_addr, "GET", "/health", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let axum_got = decisions(&axum_audit);
    eprintln!("axum: {axum_got:?}");

    assert_eq!(axum_got, ["Allow", "Deny", "401"]);
    assert_eq!(got, axum_got, "actix records the one refusal twice");
}

/// Public: the one route named, or every matched route; anything else is unmapped (denied).
#[derive(Debug)]
struct PublicRoutes(Option<&'static str>);

impl aaa::Authorizer for PublicRoutes {
    fn bind_route(&self, facts: &aaa::http::RequestFacts) -> aaa::RouteBinding {
        match (facts.matched_route(), self.0) {
            (Some(route), Some(public)) if route != public => aaa::RouteBinding::Unmapped,
            (Some(_), _) => aaa::RouteBinding::Public,
            (None, _) => aaa::RouteBinding::Unmapped,
        }
    }

    fn authorize(
        &self,
        _: &aaa::Identity,
        _: &aaa::Action,
        _: &Resource,
        _: &aaa::Context,
    ) -> aaa::Evaluation {
        aaa::Evaluation::not_permitted()
    }
}

fn public_guard(public: Option<&'static str>, audit: Arc<MemorySink>) -> aaa::Guard {
    aaa::Guard::builder()
        .authenticator(super::Bearer)
        .policies(PublicRoutes(public))
        .audit_arc(audit)
        .build()
        .unwrap()
}

/// The limit the crate's documentation states: wrapping the app, a route whose parameters are
/// only its scope's (or none) and that scope's default service on the same path cannot be told
/// apart once actix has routed (actix names the route for a request no resource matched): an
/// anonymous request decided as the public (guarded) tenant page is served by the tenant
/// scope's default service. Asserted so that it stays visible; wrapping each resource avoids it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_default_service_behind_a_route_of_the_scope_s_parameters_is_the_documented_limit()
{
    let audit = Arc::new(MemorySink::new());
    let addr = serve_actix!(public_guard(Some("/t/{tenant}"), audit.clone()), aaa => App::new()
        // The public page, served to browsers only.
        .service(
            web::resource("/t/{tenant}")
                .guard(guard::Header("accept", "text/html"))
                .to(|| async { "tenant page" }),
        )
        // The tenant's console: every route in it unmapped, so refused; its default service
        // should never serve an unchecked request.
        .service(
            web::scope("/t/{tenant}")
                .service(web::resource("/settings").to(|| async { "settings" }))
                .default_service(web::to(|| async { "tenant console" })),
        )
        .wrap(aaa));
    let page = send(addr, "GET", "/t/acme", &["accept: text/html"]).await;
    assert_eq!((page.status, page.body.as_str()), (200, "tenant page"));
    let r = send(addr, "GET", "/t/acme", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "tenant console"));
    // Below the scope's path no route matches: refused (404) before the default service runs.
    let r = send(addr, "GET", "/t/acme/x", &[]).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(!r.body.contains("tenant console"));
}

/// `Resource::wrap` on resources inside scopes, and the same wrapped like the app: a tail, a
/// regex parameter, percent-encoded values and HEAD are all decided and served alike.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_inside_scopes_are_decided_on_what_the_handler_gets() {
    for per_resource in [true, false] {
        let audit = Arc::new(MemorySink::new());
        let addr = serve_actix!(public_guard(None, audit.clone()), aaa => {
            let tail = web::resource("/{rest}*").to(|p: web::Path<(String, String)>| async move {
                let (t, rest) = p.into_inner();
                format!("tail {t} {rest}")
            });
            let re = web::resource(r"/v/{file:\d{2}[a-z%0-9]*}").to(
                |p: web::Path<(String, String)>| async move {
                    let (t, f) = p.into_inner();
                    format!("re {t} {f}")
                },
            );
            let health = web::resource("/health").to(|who: Option<Authenticated>| async move {
                format!("ok {}", who.map_or("-".to_owned(), |w| w.id.clone()))
            });
            if per_resource {
                App::new().service(
                    web::scope("/s/{t}")
                        .service(web::scope("/r").service(re.wrap(aaa.clone())))
                        .service(health.wrap(aaa.clone()))
                        .service(tail.wrap(aaa.clone())),
                )
            } else {
                App::new().service(
                    web::scope("").wrap(aaa.clone()).service(
                        web::scope("/s/{t}")
                            .service(web::scope("/r").service(re))
                            .service(health)
                            .service(tail),
                    ),
                )
            }
        });
        for (method, path, want) in [
            ("GET", "/s/x%2Fy/a%20b/c%2Fd", "tail x/y a b/c/d"),
            ("GET", "/s/x/r/v/12ab", "re x 12ab"),
            ("GET", "/s/x/r/v/12a%25", "re x 12a%"),
            ("GET", "/s/%78/%68ealth", "ok -"),
            ("GET", "/s/x/health", "ok -"),
            ("HEAD", "/s/x/health", ""),
        ] {
            let r = send(addr, method, path, &[]).await;
            assert_eq!((r.status, r.body.as_str()), (200, want), "{method} {path}");
        }
        assert_eq!(super::completions(&audit).len(), 6, "one completion each");
    }
}

/// axum's `Result<Authenticated, Rejection>` (the handler handles the refusal and serves the
/// anonymous caller): nothing was refused, yet a denial is recorded; actix records none for the
/// same handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handled_extractor_refusal_is_not_a_recorded_denial() {
    let axum_audit = Arc::new(MemorySink::new());
    let app = axum::Router::new()
        .route(
            "/health",
            axum::routing::get(
                |who: Result<aaa::tower::Authenticated, aaa::tower::Rejection>| async move {
                    who.map_or("ok anonymous".to_owned(), |w| format!("ok {}", w.id))
                },
            ),
        )
        .layer(aaa::tower::AaaLayer::new(rules_guard(axum_audit.clone())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let axum_addr = listener.local_addr().unwrap();
    super::serve_axum(listener, app);
    let r = send(axum_addr, "GET", "/health", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok anonymous"));
    let axum_got = decisions(&axum_audit);

    let (addr, audit) = serve!(aaa => App::new()
        .route(
            "/health",
            web::get().to(|who: Result<Authenticated, aaa::actix::Rejection>| async move {
                who.map_or("ok anonymous".to_owned(), |w| format!("ok {}", w.id))
            }),
        )
        .wrap(aaa));
    let r = send(addr, "GET", "/health", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok anonymous"));
    let got = decisions(&audit);
    eprintln!("axum: {axum_got:?}; actix: {got:?}");
    assert_eq!(got, ["Allow", "200"]);
    assert_eq!(
        axum_got, got,
        "axum records a denial for a request it served"
    );
}
