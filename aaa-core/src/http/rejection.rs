use std::fmt;

use crate::audit::AuditReceipt;
use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

/// The media type of problem bodies (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// What kind of refusal a [`Rejection`] is. Each kind has a fixed status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectionKind {
    /// No credentials were presented to a route that needs them: 401 with a bare `Bearer`
    /// challenge (RFC 6750 §3.1: no error code when the request had no authentication).
    MissingCredentials,
    /// The request is malformed (two credentials, a bad `Authorization` header): 400,
    /// `error="invalid_request"`.
    InvalidRequest,
    /// The credentials are expired, revoked, malformed or not trusted: 401,
    /// `error="invalid_token"`.
    InvalidToken,
    /// The token lacks a scope the route requires: 403, `error="insufficient_scope"`.
    InsufficientScope,
    /// The policy denied the request: 403.
    Forbidden,
    /// The request itself is malformed outside its credentials (a path parameter that is not
    /// UTF-8 once decoded, ...): 400 without a challenge.
    BadRequest,
    /// The request matched no route: 404.
    NotFound,
    /// A dependency needed to decide safely (JWKS, the audit log in strict mode) is unavailable:
    /// 503. Failing closed.
    Unavailable,
    /// `aaa` was asked for a principal where its layer or middleware is not installed: 500.
    NotInstalled,
}

impl RejectionKind {
    /// The HTTP status code of this kind.
    pub fn status(self) -> StatusCode {
        match self {
            RejectionKind::MissingCredentials | RejectionKind::InvalidToken => {
                StatusCode::UNAUTHORIZED
            }
            RejectionKind::InvalidRequest | RejectionKind::BadRequest => StatusCode::BAD_REQUEST,
            RejectionKind::InsufficientScope | RejectionKind::Forbidden => StatusCode::FORBIDDEN,
            RejectionKind::NotFound => StatusCode::NOT_FOUND,
            RejectionKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            RejectionKind::NotInstalled => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The RFC 6750 error code, for the kinds that have one.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            RejectionKind::InvalidRequest => Some("invalid_request"),
            RejectionKind::InvalidToken => Some("invalid_token"),
            RejectionKind::InsufficientScope => Some("insufficient_scope"),
            _ => None,
        }
    }

    /// A stable lowercase code naming the kind, used in problem bodies and audit records.
    pub fn code(self) -> &'static str {
        match self {
            RejectionKind::MissingCredentials => "missing_credentials",
            RejectionKind::InvalidRequest => "invalid_request",
            RejectionKind::InvalidToken => "invalid_token",
            RejectionKind::InsufficientScope => "insufficient_scope",
            RejectionKind::Forbidden => "forbidden",
            RejectionKind::BadRequest => "bad_request",
            RejectionKind::NotFound => "not_found",
            RejectionKind::Unavailable => "unavailable",
            RejectionKind::NotInstalled => "not_installed",
        }
    }
}

/// A refusal to serve a request, ready to become an HTTP response.
///
/// Opaque, so detail can be added later: read it with [`kind`](Self::kind),
/// [`status`](Self::status), [`www_authenticate`](Self::www_authenticate) and
/// [`body_text`](Self::body_text), or turn it into a response with
/// [`to_response`](Self::to_response).
///
/// Descriptions are `&'static str` chosen by `aaa`, never text from the request, so a rejection can
/// never echo a credential or reflect attacker input. Bodies are RFC 9457 problem documents.
#[derive(Clone, PartialEq, Eq)]
pub struct Rejection {
    kind: RejectionKind,
    description: &'static str,
    realm: Option<String>,
    scheme: Option<String>,
    scope: Option<String>,
    receipt: Option<Box<AuditReceipt>>,
}

impl Rejection {
    fn new(kind: RejectionKind, description: &'static str) -> Self {
        Rejection {
            kind,
            description,
            realm: None,
            scheme: None,
            scope: None,
            receipt: None,
        }
    }

    /// 401: the route needs credentials and none were presented.
    pub fn missing_credentials() -> Self {
        Self::new(
            RejectionKind::MissingCredentials,
            "authentication is required",
        )
    }

    /// 400 `invalid_request`, described by `description`.
    pub fn invalid_request(description: &'static str) -> Self {
        Self::new(RejectionKind::InvalidRequest, description)
    }

    /// 401 `invalid_token`, described by `description`.
    pub fn invalid_token(description: &'static str) -> Self {
        Self::new(RejectionKind::InvalidToken, description)
    }

    /// 403 `insufficient_scope`; `scope` names the scope the route requires, if it should be
    /// advertised.
    pub fn insufficient_scope(scope: Option<&str>) -> Self {
        let mut r = Self::new(
            RejectionKind::InsufficientScope,
            "the access token does not carry the required scope",
        );
        // Only scope tokens as RFC 6749 defines them can be quoted safely.
        r.scope = scope
            .filter(|s| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b == b' ' || (b.is_ascii_graphic() && b != b'"' && b != b'\\'))
            })
            .map(str::to_owned);
        r
    }

    /// 403: the policy denied the request.
    pub fn forbidden() -> Self {
        Self::new(
            RejectionKind::Forbidden,
            "the policy does not allow this request",
        )
    }

    /// 400 without a challenge: the request is malformed outside its credentials.
    pub fn bad_request(description: &'static str) -> Self {
        Self::new(RejectionKind::BadRequest, description)
    }

    /// 404: no route matched.
    pub fn not_found() -> Self {
        Self::new(RejectionKind::NotFound, "no route matches this request")
    }

    /// 503: a dependency is unavailable; described by `description`.
    pub fn unavailable(description: &'static str) -> Self {
        Self::new(RejectionKind::Unavailable, description)
    }

    /// 500: the `aaa` layer is not installed where a principal was asked for.
    pub fn not_installed() -> Self {
        Self::new(
            RejectionKind::NotInstalled,
            "the aaa layer is not installed on this route",
        )
    }

    /// 500: the router dispatched the request to another route than the one the guard decided
    /// on (a router that picks routes by guards the adapter cannot see). Installed that way, the
    /// adapter cannot know the route before the router runs; see the adapter's documentation.
    pub fn misrouted() -> Self {
        Self::new(
            RejectionKind::NotInstalled,
            "the router dispatched to another route than the one aaa decided on",
        )
    }

    /// Sets the realm named in the `WWW-Authenticate` challenge. Defaults to `aaa`.
    #[must_use]
    pub fn with_realm(mut self, realm: &str) -> Self {
        self.realm = Some(realm.to_owned());
        self
    }

    /// Sets the authentication scheme the challenge names (`Bearer` unless set): the guard sets
    /// the scheme its authenticators read from `Authorization`
    /// ([`Authenticator::challenge_scheme`](crate::authn::Authenticator::challenge_scheme)), so
    /// that a service taking only `Authorization: ApiKey` keys does not ask for a bearer token.
    #[must_use]
    pub fn with_scheme(mut self, scheme: &str) -> Self {
        self.scheme = Some(scheme.to_owned());
        self
    }

    /// Sets where the refusal was recorded (the guard does, when its sink gives receipts).
    #[must_use]
    pub fn with_receipt(mut self, receipt: AuditReceipt) -> Self {
        self.receipt = Some(Box::new(receipt));
        self
    }

    /// Where the refusal was recorded, if the guard recorded it and its sink gives receipts.
    /// Adapters asked to send receipts put it in the [`RECEIPT_HEADER`](super::RECEIPT_HEADER)
    /// of the answer; [`to_response`](Self::to_response) does not.
    pub fn receipt(&self) -> Option<&AuditReceipt> {
        self.receipt.as_deref()
    }

    /// The kind of rejection.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// The HTTP status code.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// The fixed, lowercase description.
    pub fn description(&self) -> &'static str {
        self.description
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3; for another [scheme](Self::with_scheme),
    /// the same parameters), for 400/401/403 answers about credentials; `None` for the other
    /// kinds.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        let realm = quote(self.realm.as_deref().unwrap_or("aaa"));
        let scheme = self.scheme.as_deref().unwrap_or("Bearer");
        let mut value = format!("{scheme} realm={realm}");
        match self.kind {
            RejectionKind::MissingCredentials => {}
            RejectionKind::InvalidRequest
            | RejectionKind::InvalidToken
            | RejectionKind::InsufficientScope => {
                let code = self.kind.error_code().unwrap_or("invalid_request");
                value.push_str(&format!(
                    ", error=\"{code}\", error_description={}",
                    quote(self.description)
                ));
                if let Some(scope) = &self.scope {
                    value.push_str(&format!(", scope={}", quote(scope)));
                }
            }
            _ => return None,
        }
        HeaderValue::from_str(&value).ok()
    }

    /// The RFC 9457 problem document, as JSON text.
    pub fn body_text(&self) -> String {
        let status = self.status();
        let mut body = serde_json::json!({
            "type": "about:blank",
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.description,
            "code": self.kind.code(),
        });
        if let (Some(scope), Some(obj)) = (&self.scope, body.as_object_mut()) {
            obj.insert("scope".into(), serde_json::Value::String(scope.clone()));
        }
        body.to_string()
    }

    /// The response headers: `content-type`, `cache-control: no-store`, and `www-authenticate`
    /// where the kind has a challenge.
    pub fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let Some(challenge) = self.www_authenticate() {
            headers.insert(header::WWW_AUTHENTICATE, challenge);
        }
        headers
    }

    /// The whole response. The rejection itself is put into the response extensions so that
    /// outer layers can see the typed reason.
    pub fn to_response(&self) -> Response<String> {
        let mut response = Response::new(self.body_text());
        *response.status_mut() = self.status();
        *response.headers_mut() = self.headers();
        response.extensions_mut().insert(self.clone());
        response
    }
}

/// An RFC 7230 quoted-string of `text`.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c == '\t' || (' '..='~').contains(&c) => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

impl fmt::Debug for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rejection")
            .field("kind", &self.kind)
            .field("status", &self.status().as_u16())
            .field("description", &self.description)
            .finish()
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description, self.status().as_u16())
    }
}

impl std::error::Error for Rejection {}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(r: &Rejection) -> String {
        r.www_authenticate().unwrap().to_str().unwrap().to_owned()
    }

    #[test]
    fn a_receipt_is_carried_but_not_sent_by_to_response() {
        let r = Rejection::forbidden();
        assert_eq!(r.receipt(), None);
        let receipt = AuditReceipt {
            log: "svc/1".into(),
            seq: 7,
            leaf_hash: "ab".into(),
        };
        let r = r.with_receipt(receipt.clone());
        assert_eq!(r.receipt(), Some(&receipt));
        // Adapters send it when asked to; the plain response does not.
        let response = r.to_response();
        assert!(
            response
                .headers()
                .get(crate::http::RECEIPT_HEADER)
                .is_none()
        );
        assert_eq!(response.extensions().get::<Rejection>(), Some(&r));
    }

    fn problem(r: &Rejection) -> serde_json::Value {
        serde_json::from_str(&r.body_text()).unwrap()
    }

    #[test]
    fn rfc6750_invalid_request_is_400() {
        let r = Rejection::invalid_request("more than one credential was presented");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            challenge(&r),
            "Bearer realm=\"aaa\", error=\"invalid_request\", error_description=\"more than one credential was presented\""
        );
        assert_eq!(problem(&r)["code"], "invalid_request");
        assert_eq!(problem(&r)["status"], 400);
    }

    #[test]
    fn rfc6750_invalid_token_is_401() {
        let r = Rejection::invalid_token("the access token expired").with_realm("docs");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            challenge(&r),
            "Bearer realm=\"docs\", error=\"invalid_token\", error_description=\"the access token expired\""
        );
        assert_eq!(problem(&r)["title"], "Unauthorized");
    }

    #[test]
    fn rfc6750_insufficient_scope_is_403_with_scope() {
        let r = Rejection::insufficient_scope(Some("docs:write"));
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert_eq!(
            challenge(&r),
            "Bearer realm=\"aaa\", error=\"insufficient_scope\", error_description=\"the access token does not carry the required scope\", scope=\"docs:write\""
        );
        assert_eq!(problem(&r)["scope"], "docs:write");
        // A scope that cannot be quoted safely is not advertised.
        let r = Rejection::insufficient_scope(Some("a\"b\r\nx: y"));
        assert!(!challenge(&r).contains("scope=\""));
    }

    #[test]
    fn missing_credentials_has_a_bare_challenge() {
        let r = Rejection::missing_credentials();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(challenge(&r), "Bearer realm=\"aaa\"");
    }

    #[test]
    fn other_kinds_have_no_challenge() {
        for (r, status) in [
            (Rejection::forbidden(), 403),
            (Rejection::not_found(), 404),
            (
                Rejection::bad_request("a path parameter is not valid UTF-8"),
                400,
            ),
            (Rejection::unavailable("the audit log is unavailable"), 503),
            (Rejection::not_installed(), 500),
        ] {
            assert_eq!(r.status().as_u16(), status);
            assert!(r.www_authenticate().is_none());
            assert_eq!(problem(&r)["status"], status);
        }
    }

    #[test]
    fn response_carries_problem_json_and_the_typed_rejection() {
        let r = Rejection::invalid_token("the access token is not valid");
        let resp = r.to_response();
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(resp.headers()[header::CACHE_CONTROL], "no-store");
        assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
        assert_eq!(resp.extensions().get::<Rejection>(), Some(&r));
        let body: serde_json::Value = serde_json::from_str(resp.body()).unwrap();
        assert_eq!(body["type"], "about:blank");
        assert_eq!(body["detail"], "the access token is not valid");
    }

    #[test]
    fn realm_is_quoted_safely() {
        let r = Rejection::missing_credentials().with_realm("a\"b\\c\nd");
        assert_eq!(challenge(&r), "Bearer realm=\"a\\\"b\\\\c?d\"");
    }
}
