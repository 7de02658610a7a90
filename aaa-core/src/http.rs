//! The framework-neutral HTTP boundary: [`RequestFacts`] in, [`Rejection`] out.
//!
//! Adapters translate their framework's request into [`RequestFacts`] (including the route
//! template the router actually matched) and turn a [`Rejection`] into their framework's response.
//! Nothing here depends on a web framework, only on the `http` crate.
//!
//! ```
//! use aaa_core::http::{Rejection, RequestFacts};
//! use http::{HeaderMap, Method, StatusCode};
//!
//! let mut headers = HeaderMap::new();
//! headers.insert("authorization", "Bearer abc.def.ghi".parse().unwrap());
//! let facts = RequestFacts::new(Method::GET, "/docs/42")
//!     .with_matched_route("/docs/{id}")
//!     .with_param("id", "42")
//!     .with_headers(headers);
//! assert_eq!(facts.param("id"), Some("42"));
//! assert!(!format!("{facts:?}").contains("abc.def.ghi"));
//!
//! let rejection = Rejection::invalid_token("the access token expired");
//! assert_eq!(rejection.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(
//!     rejection.www_authenticate().unwrap(),
//!     r#"Bearer realm="aaa", error="invalid_token", error_description="the access token expired""#
//! );
//! ```

mod facts;
mod rejection;

pub(crate) use facts::marked_sensitive_by_default;
pub use facts::{RequestFacts, SENSITIVE_HEADERS};

/// The response header that carries an audit receipt, when an adapter is asked to add it:
/// `log="<origin>"; seq=<n>; leaf=<hex>` (see [`AuditReceipt`](crate::audit::AuditReceipt)), so a
/// client can later ask for an inclusion proof of its request's record.
pub const RECEIPT_HEADER: &str = "aaa-audit-receipt";
pub use rejection::{PROBLEM_JSON, Rejection, RejectionKind};
