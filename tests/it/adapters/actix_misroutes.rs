//! actix apps whose routing the middleware, wrapping the app, cannot see before actix routes:
//! scopes with default services, resources of several patterns, prefix services, parameters
//! repeated across scopes, and middleware that rewrites the path. None may serve a request
//! decided on another route or other parameters, none may panic, and every refusal is recorded.
//! (Found by a review; each test failed before the fix.)

use std::{fmt, sync::Arc};

use aaa::{
    Action, Authorizer as Policy, Context, Evaluation, Guard, Identity, Resource, RouteBinding,
    actix::Authenticated,
    audit::{EventKind, MemorySink},
    http::RequestFacts,
};
use actix_web::{
    App, HttpResponse, ResponseError,
    dev::{AppService, HttpServiceFactory, ResourceDef, Service as _, ServiceRequest, fn_service},
    guard,
    middleware::{NormalizePath, TrailingSlash},
    web,
};

use super::{Bearer, completions, send};

/// `/{file:.*}`, `/static` (a mounted prefix service) and `/users/{id}/docs/{id}` public; `/docs`
/// lists for any member; `/docs/{id}` and `/files/{path:.*}` read one item, any but `secret`.
#[derive(Debug)]
struct Table;

impl Policy for Table {
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
        let read = |id: Option<&str>| match id {
            Some(id) => RouteBinding::Protected {
                action: Action::new("read"),
                resource: Resource::new("Document").with_id(id),
            },
            None => RouteBinding::Unmapped,
        };
        match facts.matched_route() {
            Some("/{file:.*}" | "/static" | "/users/{id}/docs/{id}") => RouteBinding::Public,
            Some("/docs") => RouteBinding::Protected {
                action: Action::new("list"),
                resource: Resource::new("Document"),
            },
            Some("/docs/{id}") => read(facts.param("id")),
            Some("/files/{path:.*}") => read(facts.param("path")),
            _ => RouteBinding::Unmapped,
        }
    }

    fn authorize(
        &self,
        who: &Identity,
        action: &Action,
        res: &Resource,
        _: &Context,
    ) -> Evaluation {
        if who.principal().is_none() {
            return Evaluation::not_permitted();
        }
        match action.as_str() {
            "list" => Evaluation::permit(["members-list"]),
            "read" if res.id.as_deref() != Some("secret") => Evaluation::permit(["members-read"]),
            _ => Evaluation::not_permitted(),
        }
    }
}

fn table_guard(audit: Arc<MemorySink>) -> Guard {
    Guard::builder()
        .authenticator(Bearer)
        .policies(Table)
        .audit_arc(audit)
        .build()
        .unwrap()
}

/// Starts `$app` (an expression using the middleware `$aaa`) on 127.0.0.1:0.
macro_rules! serve {
    ($aaa:ident => $app:expr) => {{
        let audit = Arc::new(MemorySink::new());
        let addr = serve_actix!(table_guard(audit.clone()), $aaa => $app);
        (addr, audit)
    }};
}

/// A scope's default service, reached for the scope's own path because the route the guard
/// decided on (a guarded catch-all) was skipped by its actix guard: `served()` falls back to the
/// resource map (no resource was matched), which names the decided route again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scope_default_service_is_not_served_as_the_route_decided_on() {
    let (addr, audit) = serve!(aaa => App::new()
        .service(
            web::resource("/{file:.*}")
                .guard(guard::Header("x-cdn", "1"))
                .to(|| async { "public file" }),
        )
        .service(web::scope("/admin").default_service(web::to(|| async { "admin console" })))
        .service(web::scope("/ops").default_service(web::to(|who: Authenticated| async move {
            format!("ops console for {}", who.id)
        })))
        .wrap(aaa));

    // Anonymous, no extractor: decided as the public catch-all, served by /admin's default.
    let r = send(addr, "GET", "/admin", &[]).await;
    eprintln!(
        "GET /admin -> {} {:?}; completions {:?}",
        r.status,
        r.body,
        completions(&audit)
    );
    let decided: Vec<_> = audit
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Authorization { .. }))
        .map(|e| e.target.as_ref().unwrap().route.clone())
        .collect();
    eprintln!("decided on {decided:?}");
    // With the Authenticated extractor, which is documented to refuse a misrouted request.
    let ops = send(addr, "GET", "/ops", &["Authorization: Bearer good-ann"]).await;
    eprintln!("GET /ops -> {} {:?}", ops.status, ops.body);
    // For contrast: below the scope's path, the default service is caught (500).
    let below = send(addr, "GET", "/admin/x", &[]).await;
    eprintln!("GET /admin/x -> {} {:?}", below.status, below.body);

    assert!(!r.body.contains("admin console"), "{} {}", r.status, r.body);
    assert_ne!(r.status, 200);
    assert!(
        !ops.body.contains("ops console"),
        "{} {}",
        ops.status,
        ops.body
    );
}

/// A resource of several patterns whose first is static: its other pattern's parameter is what
/// the handler's `web::Path` gets.
fn docs_of_several_patterns() -> actix_web::Resource {
    web::resource(["/docs", "/docs/{id}"]).route(web::get().to(
        |id: Option<web::Path<String>>| async move {
            id.map_or_else(|| "all documents".to_owned(), |id| format!("document {id}"))
        },
    ))
}

/// Such a resource was decided as its first pattern, without the parameter, however the
/// middleware was installed: now a request for another pattern is refused on the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_of_several_patterns_is_not_decided_without_its_parameters() {
    let ann = ["Authorization: Bearer good-ann"];
    let installed = [
        (
            "on the resource",
            serve!(aaa => App::new().service(docs_of_several_patterns().wrap(aaa))),
        ),
        // (An empty scope wraps like the app.)
        (
            "on a scope",
            serve!(aaa => App::new()
            .service(web::scope("").wrap(aaa).service(docs_of_several_patterns()))),
        ),
        (
            "on the app",
            serve!(aaa => App::new().service(docs_of_several_patterns()).wrap(aaa)),
        ),
    ];
    for (how, (addr, audit)) in installed {
        let r = send(addr, "GET", "/docs/secret", &ann).await;
        assert_eq!(r.status, 400, "{how}: {}", r.body);
        assert!(!r.body.contains("document"), "{how}: {}", r.body);
        assert!(
            refused_as_malformed(&audit, "/docs"),
            "{how}: {:?}",
            audit.events()
        );
        // Its first pattern is decided as usual.
        let r = send(addr, "GET", "/docs", &ann).await;
        assert_eq!((r.status, r.body.as_str()), (200, "all documents"), "{how}");
    }
}

/// A service mounted on a path prefix, as `actix_files::Files` registers itself
/// (`ResourceDef::root_prefix`, no nested map).
struct Mount;

impl HttpServiceFactory for Mount {
    fn register(self, config: &mut AppService) {
        let rdef = if config.is_root() {
            ResourceDef::root_prefix("/static")
        } else {
            ResourceDef::prefix("/static")
        };
        let files = fn_service(|req: ServiceRequest| async move {
            let file = req.match_info().unprocessed().to_owned();
            Ok(req.into_response(HttpResponse::Ok().body(format!("file {file}"))))
        });
        config.register_service(rdef, None, files, None);
    }
}

/// Whether the log has one refusal of `route` as malformed (400, recorded before anything ran).
fn refused_as_malformed(audit: &MemorySink, route: &str) -> bool {
    audit.events().iter().any(|e| {
        matches!(
            e.kind,
            EventKind::Authorization {
                decision: aaa::Decision::Deny,
                reason: aaa::Reason::Malformed,
                ..
            }
        ) && e.target.as_ref().and_then(|t| t.route.as_deref()) == Some(route)
    })
}

/// A prefix service (the way actix-files serves files), wrapped with the app: which of its
/// paths is asked cannot be told from a resource of several patterns before actix routes, so it
/// is refused before it runs, on the record (wrap the app's resources one by one instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_service_wrapped_with_the_app_is_refused_on_the_record() {
    let (addr, audit) = serve!(aaa => App::new().service(Mount).wrap(aaa));
    let r = send(addr, "GET", "/static/app.js", &[]).await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(!r.body.contains("file"), "{}", r.body);
    assert!(r.body.contains("Resource::wrap"), "{}", r.body);
    assert!(
        refused_as_malformed(&audit, "/static"),
        "{:?}",
        audit.events()
    );
    assert!(completions(&audit).is_empty());
}

/// Nested scopes may repeat a parameter name (actix routes them; its own resource map test has
/// `/user/{id}/article/{id}`). actix cannot compile the joined pattern (it panics), and a policy
/// could read only one of the two values: refused on the record, however installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_name_repeated_across_scopes_is_refused_not_a_panic() {
    for per_resource in [false, true] {
        let (addr, audit) = serve!(aaa => {
            let docs = web::resource("/docs/{id}").to(|| async { "a user's document" });
            if per_resource {
                App::new().service(web::scope("/users/{id}").service(docs.wrap(aaa)))
            } else {
                // (`App::wrap` gives another type: an empty scope wraps like the app.)
                App::new().service(
                    web::scope("")
                        .wrap(aaa)
                        .service(web::scope("/users/{id}").service(docs)),
                )
            }
        });
        let r = send(addr, "GET", "/users/1/docs/2", &[]).await;
        assert_eq!(r.status, 400, "per_resource={per_resource}: {}", r.body);
        assert!(!r.body.contains("document"), "{}", r.body);
        assert!(
            refused_as_malformed(&audit, "/users/{id}/docs/{id}"),
            "per_resource={per_resource}: {:?}",
            audit.events()
        );
    }
}

/// An error type that sets its status in `error_response` only (`status_code` keeps its default,
/// 500): what the client gets is 429.
#[derive(Debug)]
struct Slow;

impl fmt::Display for Slow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("slow down")
    }
}

impl ResponseError for Slow {
    fn error_response(&self) -> HttpResponse {
        HttpResponse::TooManyRequests().body("slow down")
    }
}

/// An inner middleware's error is recorded with the status the client gets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inner_error_is_recorded_with_the_status_the_client_gets() {
    let (addr, audit) = serve!(aaa => App::new()
        .service(web::resource("/{file:.*}").to(|| async { "public file" }))
        .wrap_fn(|req, srv| {
            let limited = req.headers().contains_key("x-limit");
            let served = srv.call(req);
            async move {
                if limited {
                    return Err(Slow.into());
                }
                served.await
            }
        })
        .wrap(aaa));
    let r = send(addr, "GET", "/index.html", &["x-limit: 1"]).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(completions(&audit), [429]);
}

/// A middleware inside `Aaa` that rewrites the path (`NormalizePath`): the route served is the
/// one decided on, but not the parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parameter_rewritten_after_the_decision_is_not_served() {
    let (addr, audit) = serve!(aaa => App::new()
        .service(web::resource("/files/{path:.*}").to(|path: web::Path<String>| async move {
            format!("file {}", path.into_inner())
        }))
        .wrap(NormalizePath::new(TrailingSlash::MergeOnly))
        .wrap(aaa));
    let ann = ["Authorization: Bearer good-ann"];
    let r = send(addr, "GET", "/files/secret", &ann).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = send(addr, "GET", "/files//secret", &ann).await;
    let ids: Vec<_> = audit
        .events()
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Authorization { .. }))
        .map(|e| e.target.as_ref().unwrap().resource_id.clone())
        .collect();
    eprintln!("{} {:?}; decided on ids {ids:?}", r.status, r.body);
    assert!(!r.body.contains("file secret"), "{} {}", r.status, r.body);
}
