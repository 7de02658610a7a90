use std::fmt;

use http::{Response, StatusCode};

/// A refusal, as a response: wraps the core [`Rejection`](aaa_core::http::Rejection) so it can be
/// returned from axum handlers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection(pub aaa_core::http::Rejection);

impl Rejection {
    /// The status code.
    pub fn status(&self) -> StatusCode {
        self.0.status()
    }

    /// The RFC 9457 problem body.
    pub fn body_text(&self) -> String {
        self.0.body_text()
    }

    /// The response, with the typed rejection in its extensions.
    pub fn into_response<B: From<String>>(self) -> Response<B> {
        tracing::trace!(target: "aaa::rejection", status = self.status().as_u16(), kind = self.0.kind().code(), "rejected");
        self.0.to_response().map(B::from)
    }
}

impl From<aaa_core::http::Rejection> for Rejection {
    fn from(r: aaa_core::http::Rejection) -> Self {
        Rejection(r)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::error::Error for Rejection {}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for Rejection {
    fn into_response(self) -> axum::response::Response {
        Rejection::into_response(self)
    }
}
