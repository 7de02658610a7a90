//! actix-web routes by guards as well as paths, and an app's middleware runs before it routes:
//! the adapter must never let a request be served by another route than the one decided on.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use aaa::{
    Principal,
    actix::{Aaa, Authenticated},
    audit::{EventKind, MemorySink},
};
use actix_web::{App, HttpServer, dev::Service as _, error::ErrorTooManyRequests, guard, web};

use super::{completions, guard as test_guard, send};

/// Handler hits, by route.
#[derive(Default)]
struct Hits {
    admin: AtomicUsize,
    me: AtomicUsize,
}

/// A public catch-all served only to the CDN (`x-cdn: 1`), registered before `/admin` and
/// `/me`: for other callers actix skips it and serves the later routes. With `aaa`, each
/// resource is wrapped in the middleware.
fn routes(cfg: &mut web::ServiceConfig, hits: &Arc<Hits>, aaa: Option<&Aaa>) {
    let (a, m) = (hits.clone(), hits.clone());
    let files = web::resource("/{file:.*}")
        .guard(guard::Header("x-cdn", "1"))
        .route(
            web::get().to(|who: Option<web::ReqData<Arc<Principal>>>| async move {
                // The middleware leaves an authenticated caller's principal in the extensions.
                match who {
                    Some(who) => format!("public file for {}", who.id),
                    None => "public file".to_owned(),
                }
            }),
        );
    let admin = web::resource("/admin").route(web::get().to(move || {
        a.admin.fetch_add(1, Ordering::SeqCst);
        async { "admin area" }
    }));
    let me = web::resource("/me").route(web::get().to(move |who: Authenticated| {
        m.me.fetch_add(1, Ordering::SeqCst);
        async move { who.id.clone() }
    }));
    match aaa {
        Some(aaa) => cfg
            .service(files.wrap(aaa.clone()))
            .service(admin.wrap(aaa.clone()))
            .service(me.wrap(aaa.clone())),
        None => cfg.service(files).service(admin).service(me),
    };
}

/// `per_resource`: the middleware wraps each resource; otherwise the app, with a rate limiter
/// inside it that fails `x-limit` requests with an error.
async fn start(per_resource: bool) -> (std::net::SocketAddr, Arc<MemorySink>, Arc<Hits>) {
    let audit = Arc::new(MemorySink::new());
    let hits = Arc::new(Hits::default());
    let aaa = Aaa::new(test_guard(audit.clone()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let h = hits.clone();
    let server = if per_resource {
        HttpServer::new(move || App::new().configure(|cfg| routes(cfg, &h, Some(&aaa))))
            .workers(1)
            .disable_signals()
            .listen(listener)
            .unwrap()
            .run()
    } else {
        HttpServer::new(move || {
            App::new()
                // Resources of several patterns (before the catch-all): static aliases, and with
                // a parameter.
                .service(
                    web::resource(["/health", "/healthz"]).route(web::get().to(|| async { "ok" })),
                )
                .service(
                    web::resource(["/docs/{id}", "/documents/{id}"]).route(
                        web::get().to(|id: web::Path<String>| async move { id.into_inner() }),
                    ),
                )
                .configure(|cfg| routes(cfg, &h, None))
                // Reached only when every route's guards refuse a path some route matches.
                .default_service(web::to(|| async { "default service" }))
                .wrap_fn(|req, srv| {
                    let limited = req.headers().contains_key("x-limit");
                    let served = srv.call(req);
                    async move {
                        if limited {
                            return Err(ErrorTooManyRequests("slow down"));
                        }
                        served.await
                    }
                })
                .wrap(aaa.clone())
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run()
    };
    tokio::spawn(server);
    (addr, audit, hits)
}

/// Wrapping the app, the guard decides on the route actix's resource map names for the path
/// (here the public catch-all), but actix's guards send the request to `/admin`: the answer is
/// replaced with a 500 and recorded so, and a handler asking for the caller is never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_chosen_by_actix_guards_is_never_served_unchecked() {
    let (addr, audit, hits) = start(false).await;

    let r = send(addr, "GET", "/admin", &[]).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(!r.body.contains("admin area"), "{}", r.body);
    assert!(r.body.contains("not_installed"), "{}", r.body);
    assert_eq!(completions(&audit), [500]);
    // The limit the crate's documentation states: installed on the app, the middleware sees
    // the route actix served only once its handler has answered. The answer is withheld, but a
    // handler that uses neither extractor has run.
    assert_eq!(hits.admin.load(Ordering::SeqCst), 1);

    let r = send(addr, "GET", "/me", &[]).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(hits.me.load(Ordering::SeqCst), 0, "the handler never ran");

    // A default service reached because the catch-all's guard refused: not the route decided on.
    let r = send(addr, "GET", "/secret/thing", &[]).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(!r.body.contains("default service"), "{}", r.body);

    // Where the guess is right, nothing changes.
    let r = send(addr, "GET", "/index.html", &["x-cdn: 1"]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "public file"));
}

/// A resource of several patterns, wrapped with the app: before actix routes, a path its first
/// pattern does not match cannot be told from another resource's (its parameters, if any, cannot
/// be read), so only its first pattern is decided; the others are refused, on the record, even
/// static aliases (wrapping the resource itself decides them all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_of_several_patterns_are_decided_or_refused_on_the_record() {
    let (addr, audit, _) = start(false).await;
    let r = send(addr, "GET", "/health", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    let auth = "Authorization: Bearer good-ann";
    let r = send(addr, "GET", "/docs/5", &[auth]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "5"));
    for path in ["/healthz", "/documents/5"] {
        let before = audit.events().len();
        let r = send(addr, "GET", path, &[auth]).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        let events = audit.events();
        assert_eq!(events.len() - before, 1, "one record: {events:?}");
        assert!(matches!(
            events[before].kind,
            EventKind::Authorization {
                reason: aaa::Reason::Malformed,
                ..
            }
        ));
    }
}

/// Wrapping each resource, the middleware runs after actix routed, and decides on exactly the
/// route that is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrapping_each_resource_decides_on_the_route_actix_serves() {
    let (addr, audit, hits) = start(true).await;

    let r = send(addr, "GET", "/admin", &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let r = send(addr, "GET", "/admin", &["Authorization: Bearer good-ann"]).await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(hits.admin.load(Ordering::SeqCst), 0);
    let r = send(
        addr,
        "GET",
        "/admin",
        &["Authorization: Bearer good-root-admin"],
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "admin area"));

    let r = send(addr, "GET", "/me", &["Authorization: Bearer good-ann"]).await;
    assert_eq!(r.status, 403, "`/me` is not in the policy: {}", r.body);
    let r = send(addr, "GET", "/index.html", &["x-cdn: 1"]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "public file"));
    let r = send(
        addr,
        "GET",
        "/index.html",
        &["x-cdn: 1", "Authorization: Bearer good-ann"],
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (200, "public file for ann"));

    let routes: Vec<_> = audit
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Authorization { .. }))
        .map(|e| e.target.as_ref().unwrap().route.clone().unwrap())
        .collect();
    assert_eq!(
        routes,
        [
            "/admin",
            "/admin",
            "/admin",
            "/me",
            "/{file:.*}",
            "/{file:.*}"
        ],
        "every decision names the route actix served"
    );
}

/// An error from an inner middleware (actix answers it later) still completes the request's
/// record, with the status the client gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_error_is_recorded_as_the_completion() {
    let (addr, audit, _) = start(false).await;
    let r = send(addr, "GET", "/index.html", &["x-cdn: 1", "x-limit: 1"]).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(completions(&audit), [429]);
}
