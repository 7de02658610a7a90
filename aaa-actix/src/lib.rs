//! The actix-web adapter of `aaa`: `App::new().wrap(Aaa::new(guard))` and every request is
//! authenticated, authorized and audited.
//!
//! The adapter only translates: it turns the `ServiceRequest` into
//! [`RequestFacts`](aaa_core::http::RequestFacts) — with the pattern actix matched
//! (`match_pattern`) and the parameters decoded exactly as `web::Path` decodes them — calls
//! [`Guard::check`](aaa_core::Guard::check), and either forwards the request (with the
//! [`Identity`](aaa_core::Identity), the `Arc<`[`Principal`](aaa_core::Principal)`>` of an
//! authenticated caller, the [`Evaluation`](aaa_core::Evaluation) and the
//! [`Admitted`](aaa_core::Admitted) request in its extensions) or answers the rejection. After
//! the handler answers it records the request's completion (with the status of an error an inner
//! service returns); a request dropped before that is recorded with status 499.
//!
//! ```
//! use aaa_actix::{Aaa, Authenticated};
//! use aaa_core::{Guard, audit::MemorySink};
//! use actix_web::{App, web};
//! # use aaa_core::{Action, Authorizer, Context, Evaluation, Identity, Resource, RouteBinding, http::RequestFacts};
//! # #[derive(Debug)] struct Policy;
//! # impl Authorizer for Policy {
//! #     fn bind_route(&self, _: &RequestFacts) -> RouteBinding { RouteBinding::Unmapped }
//! #     fn authorize(&self, _: &Identity, _: &Action, _: &Resource, _: &Context) -> Evaluation { Evaluation::not_permitted() }
//! # }
//!
//! let guard = Guard::builder().policies(Policy).audit(MemorySink::new()).build().unwrap();
//! let app = App::new()
//!     .wrap(Aaa::new(guard))
//!     .route("/me", web::get().to(|who: Authenticated| async move { who.id.clone() }));
//! # let _ = app;
//! ```
//!
//! # Differences from axum
//!
//! actix routes on the path after decoding unreserved percent-escapes (`/%61dmin` is `/admin`),
//! axum on the raw path (`/%61dmin` matches nothing). Either way the policy decides on the route
//! the router dispatches to. `Option<Authenticated>` uses actix's own `Option` extractor,
//! which turns every extraction error into `None`: it cannot tell a missing middleware from an
//! anonymous caller. actix answers `Expect: 100-continue` before any middleware runs, so such a
//! client sends its body even when aaa then refuses the request (the body is read by no
//! handler); hyper sends `100 Continue` only once a handler reads the body.
//!
//! # A client that goes away
//!
//! axum (hyper) drops a request whose client closed the connection, and its completion is
//! recorded with status 499. actix-web, by default, does not: it allows half-closed HTTP/1
//! connections and does not watch the socket while a handler runs, so the handler runs to its
//! end and the completion records the handler's status (a handler that never answers is never
//! recorded complete). Refuse half-closures to have actix drop such requests, recorded 499:
//!
//! ```no_run
//! # use actix_web::{App, HttpServer};
//! # fn serve() -> std::io::Result<()> {
//! let server = HttpServer::new(|| App::new())
//!     .h1_allow_half_closed(false)
//!     .bind(("127.0.0.1", 8080))?;
//! # let _ = server; Ok(()) }
//! ```
//!
//! A client that shuts down only its writing side after sending its request, and still waits for
//! the answer, is then dropped too; such clients are rare.
//!
//! An upload cut short is recorded with the status the handler answers (actix's body extractors
//! answer 400), on both adapters.
//!
//! # Where to install it
//!
//! axum runs a route layer after routing; actix runs an app's middleware (`App::wrap`) before.
//! Wrapping the app covers every route, including those added later, so it is the usual way;
//! the middleware then finds the route as actix's router does, from the resource map, which
//! does not know actix's *guards* (`guard::Host`, `guard::Header`, and the method guards of
//! `App::route`), nor which pattern of a resource of several patterns, or which file of a
//! prefix service, a path is for.
//!
//! - When the same path can reach two routes depending on such guards (or a default service,
//!   when every matching route's guards refuse), actix may serve another route than the one
//!   decided on. The adapter does not let that pass unnoticed: once actix has routed, the route,
//!   the path and the parameters served must be the ones decided on. Otherwise the
//!   `Authenticated` and `Authorizer` extractors refuse with 500 before the handler runs, and the
//!   middleware replaces the answer with a 500 and records that status (a default service's own
//!   404 or 405 passes). **But a handler that uses neither extractor has already run** when the
//!   middleware sees what actix served: its answer is withheld, its side effects are not.
//! - One case stays invisible: a route whose parameters are only its scope's (or none) and that
//!   scope's default service on the same path (`/t/{tenant}` beside
//!   `web::scope("/t/{tenant}").default_service(..)`): actix names the route for a request no
//!   resource matched, and the path and parameters agree.
//! - A resource of several patterns (`web::resource(["/a/{id}", "/b/{id}"])`, static aliases
//!   included) is decided on its first pattern only, and a service mounted on a prefix
//!   (`actix_files::Files`) not at all: other paths are refused (400, recorded) before anything
//!   runs, as are routes whose scopes repeat a parameter name (`/users/{id}/docs/{id}`).
//! - Middleware that rewrites the path (`NormalizePath`) belongs outside `Aaa` (wrapped after
//!   it): inside, the rewritten request is refused as misrouted.
//!
//! For apps whose routes overlap under guards or use such resources, wrap each resource instead
//! (`web::resource(..).wrap(aaa.clone())`): installed on a resource, the middleware runs after
//! routing and decides on exactly the route and parameters the handler gets (still refusing a
//! resource matched by a pattern other than its first when that pattern's parameters differ).
//! Leave public prefix services such as static files outside, unwrapped.
#![deny(missing_docs)]

mod extract;
mod middleware;

pub use extract::{Authenticated, Authorizer, Rejection};
pub use middleware::{Aaa, AaaMiddleware};
