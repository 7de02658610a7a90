//! The Tower / axum adapter of `aaa`: one `.layer(..)` and every request is authenticated,
//! authorized and audited.
//!
//! The adapter only translates: it turns the request into [`RequestFacts`](aaa_core::http::RequestFacts)
//! (with the route template the router matched), calls [`Guard::check`](aaa_core::Guard::check),
//! and either forwards the request (with the [`Identity`](aaa_core::Identity), the
//! `Arc<`[`Principal`](aaa_core::Principal)`>` of an authenticated caller, the
//! [`Evaluation`](aaa_core::Evaluation) and the [`Admitted`](aaa_core::Admitted) request in its
//! extensions) or answers the rejection. After the handler answers it records the request's
//! completion; a request dropped before that is recorded with status 499.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use aaa_core::{Guard, audit::MemorySink};
//! use aaa_tower::{AaaLayer, Authenticated};
//! use axum::{Router, routing::get};
//! # use aaa_core::{Action, Authorizer, Context, Evaluation, Identity, Resource, RouteBinding, http::RequestFacts};
//! # #[derive(Debug)] struct Policy;
//! # impl Authorizer for Policy {
//! #     fn bind_route(&self, f: &RequestFacts) -> RouteBinding {
//! #         if f.matched_route() == Some("/health") { RouteBinding::Public } else { RouteBinding::Unmapped }
//! #     }
//! #     fn authorize(&self, _: &Identity, _: &Action, _: &Resource, _: &Context) -> Evaluation { Evaluation::not_permitted() }
//! # }
//!
//! let guard = Guard::builder().policies(Policy).audit(MemorySink::new()).build().unwrap();
//! let app: Router = Router::new()
//!     .route("/health", get(|| async { "ok" }))
//!     .route("/me", get(|who: Authenticated| async move { who.id.clone() }))
//!     // `layer` (or `route_layer`) on the Router, so the matched route is known to the layer.
//!     .layer(AaaLayer::new(guard));
//! # let _ = app;
//! # }
//! ```
//!
//! # Installing the layer
//!
//! With the `axum` feature the layer reads axum's `MatchedPath` and decoded path parameters, and
//! the peer address from `ConnectInfo<SocketAddr>` (serve with
//! `into_make_service_with_connect_info::<SocketAddr>()`). Install it with `Router::layer` or
//! `Router::route_layer`: outside the router no route is known, and every request is refused
//! with 404 (a warning says so). Without the `axum` feature, put a [`MatchedRoute`] into the
//! request extensions before the layer runs.
//!
//! A request that matches no route is answered 404 by the layer, never passed on unchecked. With
//! `Router::layer` the layer also wraps the router's fallback (one set before the layer), so a
//! fallback of your own is not reached; install with `Router::route_layer` to keep it (it then
//! runs without the layer, so it must serve nothing that needs protecting).
//!
//! As with every axum layer, it wraps only what the router holds when it is added: **a route, a
//! method of an existing path** (`.route("/docs/{id}", delete(..))`), a `merge` or a fallback
//! added after `.layer(AaaLayer::new(..))` runs without it, unchecked and unrecorded, even on a
//! path that looks protected. Add the layer last.
//!
//! The completion record carries the status the handler answered. A layer outside `AaaLayer`
//! that answers by itself (a timeout's 408, a load shedder's 503) drops the request inside, which
//! is then recorded as abandoned (499, as when the client goes away): add such layers before
//! `AaaLayer` (inside it) to have their status recorded.
#![deny(missing_docs)]

mod future;
mod layer;
mod rejection;
mod service;

#[cfg(feature = "axum")]
mod extract;

pub use aaa_core::http::RECEIPT_HEADER;
pub use future::ResponseFuture;
pub use layer::AaaLayer;
pub use rejection::Rejection;
pub use service::{AaaService, MatchedRoute};

#[cfg(feature = "axum")]
pub use extract::{Authenticated, Authorizer};
