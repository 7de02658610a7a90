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
//! anonymous caller.
//!
//! # Where to install it
//!
//! axum runs a route layer after routing; actix runs an app's middleware (`App::wrap`) before.
//! Wrapping the app covers every route, including those added later, so it is the usual way;
//! the middleware then finds the route as actix's router does, from the resource map, which
//! does not know actix's *guards* (`guard::Host`, `guard::Header`, and the method guards of
//! `App::route`). When the same path can reach two resources depending on such guards (or a
//! default service, when every matching route's guards refuse), actix may serve another route
//! than the one decided on. The adapter does not let that pass unnoticed: the `Authenticated` and
//! `Authorizer` extractors refuse with 500 before the handler runs, and the middleware replaces
//! the answer with a 500 and records that status (a default service's own 404 or 405 passes).
//! **But a handler that uses neither extractor has already run** when the middleware sees the
//! route actix served: its answer is withheld, its side effects are not. For apps whose routes
//! overlap under guards, wrap each resource instead (`web::resource(..).wrap(aaa.clone())`):
//! installed on a resource, the middleware runs after routing and decides on exactly the route
//! and parameters the handler gets. The same goes for a resource of several patterns with
//! parameters (`web::resource(["/a/{id}", "/b/{id}"])`): wrapping the app, its parameters cannot
//! be read for any but the first pattern, and such requests are refused (400, recorded).
#![deny(missing_docs)]

mod extract;
mod middleware;

pub use extract::{Authenticated, Authorizer, Rejection};
pub use middleware::{Aaa, AaaMiddleware};
