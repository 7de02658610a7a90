use std::{fmt, net::SocketAddr};

use http::{HeaderMap, HeaderName, Method, header};

/// Headers that carry credentials. They are marked sensitive (so `http`'s `Debug` hides them),
/// never logged and never written to the audit log.
pub const SENSITIVE_HEADERS: &[HeaderName] = &[
    header::AUTHORIZATION,
    header::PROXY_AUTHORIZATION,
    header::COOKIE,
    header::SET_COOKIE,
];

/// Words that make any other header name look like a credential's (`x-api-key`, the API-key
/// authenticator's default, or a custom one such as `x-service-token`): such headers are marked
/// sensitive too. Hiding a header that holds no secret costs nothing; showing one that does leaks
/// it to every log that prints the headers.
const CREDENTIAL_WORDS: &[&str] = &[
    "key",
    "token",
    "secret",
    "passw",
    "auth",
    "session",
    "cookie",
    "credential",
    "signature",
];

/// Whether [`RequestFacts::with_headers`] marks every header named `name` sensitive by itself:
/// one of [`SENSITIVE_HEADERS`], or a name holding a credential word.
pub(crate) fn marked_sensitive_by_default(name: &HeaderName) -> bool {
    SENSITIVE_HEADERS.contains(name) || looks_like_credential(name)
}

/// Whether `name` (lowercase, as `http` keeps it) looks like a credential header's.
fn looks_like_credential(name: &HeaderName) -> bool {
    let name = name.as_str();
    CREDENTIAL_WORDS.iter().any(|word| name.contains(word))
}

/// Longest request id taken from an `x-request-id` header; longer ones are ignored.
const MAX_REQUEST_ID: usize = 128;

/// Everything `aaa` needs to know about an HTTP request, as the adapter saw it.
///
/// The route template is the one the router actually matched (axum `MatchedPath`, actix
/// `match_pattern`) and the parameters are the router's decoded values: policies are never matched
/// against the raw path, so the policy and the router cannot disagree about which route was hit.
///
/// `Debug` shows header names only, never their values.
#[derive(Clone)]
pub struct RequestFacts {
    method: Method,
    path: String,
    matched_route: Option<String>,
    params: Vec<(String, String)>,
    host: Option<String>,
    headers: HeaderMap,
    peer: Option<SocketAddr>,
    request_id: Option<String>,
    malformed: Option<&'static str>,
}

impl RequestFacts {
    /// Facts about a `method` request for `path` (the raw path as received, without the query).
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        RequestFacts {
            method,
            path: path.into(),
            matched_route: None,
            params: Vec::new(),
            host: None,
            headers: HeaderMap::new(),
            peer: None,
            request_id: None,
            malformed: None,
        }
    }

    /// Marks the request malformed in a way only the adapter can see (a path parameter that is
    /// not valid UTF-8 once decoded): the guard refuses it with 400 after authentication, and
    /// records the refusal like any other.
    #[must_use]
    pub fn with_malformed(mut self, description: &'static str) -> Self {
        self.malformed = Some(description);
        self
    }

    /// Why the request is malformed: what the adapter said, or what the facts themselves show
    /// (both are refused with 400 by the guard, and recorded):
    ///
    /// - a `%` in the path that starts no escape (two hex digits follow every `%` in a URI):
    ///   routers read such paths differently (actix-web decodes `%33` of `/docs/d%%331` while
    ///   routing and the `%31` it leaves again for `web::Path`, naming `d1`; axum names `d%31`),
    ///   so the same URL would name another resource behind another adapter or proxy;
    /// - both `Content-Length` and `Transfer-Encoding`: a request framed two ways, which a proxy
    ///   and the server may read differently (request smuggling, RFC 9112 section 6.3);
    ///   actix-web refuses it before any middleware, hyper reads the chunked body.
    pub fn malformed(&self) -> Option<&'static str> {
        self.malformed.or_else(|| {
            if !escapes_are_whole(&self.path) {
                Some("the path has a `%` that starts no escape (two hex digits)")
            } else if self.headers.contains_key(header::CONTENT_LENGTH)
                && self.headers.contains_key(header::TRANSFER_ENCODING)
            {
                Some("the request has both Content-Length and Transfer-Encoding")
            } else {
                None
            }
        })
    }

    /// Sets the route template the router matched, such as `/docs/{id}`.
    #[must_use]
    pub fn with_matched_route(mut self, template: impl Into<String>) -> Self {
        self.matched_route = Some(template.into());
        self
    }

    /// Adds a decoded path parameter of the matched route.
    ///
    /// A name given twice marks the request [malformed](Self::with_malformed): a route such as
    /// `/users/{id}/docs/{id}` (axum accepts it, also when nested routers each use `{id}`) has
    /// two values for one name, and the handler may read one while the policy decides on the
    /// other. The guard refuses such a request with 400, and records the refusal.
    #[must_use]
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        if self.params.iter().any(|(n, _)| *n == name) {
            self.malformed.get_or_insert(
                "a path parameter name repeats in the matched route: which value the handler \
                 reads is not known",
            );
        }
        self.params.push((name, value.into()));
        self
    }

    /// Sets the request headers. Credential headers ([`SENSITIVE_HEADERS`], and any whose name
    /// holds `key`, `token`, `secret`, `passw`, `auth`, `session`, `cookie`, `credential` or
    /// `signature`) are marked sensitive; the `Host` header and a
    /// well-formed `x-request-id` (visible ASCII, at most 128 bytes) are picked up.
    #[must_use]
    pub fn with_headers(mut self, mut headers: HeaderMap) -> Self {
        // One pass over the headers rather than a lookup per name: requests carry few headers.
        let mut request_id = None;
        for (name, value) in &mut headers {
            if marked_sensitive_by_default(name) {
                value.set_sensitive(true);
            } else if request_id.is_none() && name.as_str() == "x-request-id" {
                // The first one, as `HeaderMap::get` would give.
                request_id = Some(value.as_bytes());
            }
        }
        self.request_id = request_id
            .filter(|v| !v.is_empty() && v.len() <= MAX_REQUEST_ID)
            .filter(|v| v.iter().all(|b| b.is_ascii_graphic()))
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::to_owned);
        // `host()` reads the `Host` header when no host is set.
        self.host = None;
        self.headers = headers;
        self
    }

    /// Marks every value of the headers `names` sensitive too: the credential headers of the
    /// guard's authenticators ([`Guard::credential_headers`](crate::Guard::credential_headers)),
    /// such as an API-key header of a name [`with_headers`](Self::with_headers) does not
    /// recognize. Call it after `with_headers`.
    #[must_use]
    pub fn with_sensitive_headers(mut self, names: &[HeaderName]) -> Self {
        if names.is_empty() {
            return self;
        }
        // One pass over the headers (not `entry`, which makes room in a full map even for a
        // name it finds).
        for (name, value) in &mut self.headers {
            if names.contains(name) {
                value.set_sensitive(true);
            }
        }
        self
    }

    /// Sets the peer's socket address. An IPv4 client of a dual-stack listener (`[::]`) arrives
    /// as an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`): it is kept as the IPv4 address it is,
    /// so that policies' IPv4 ranges, trusted proxies and audit records see it as such.
    #[must_use]
    pub fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(SocketAddr::new(peer.ip().to_canonical(), peer.port()));
        self
    }

    /// Sets the host (the authority of an HTTP/2 request, or the `Host` header).
    #[must_use]
    pub fn with_host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The raw path as received, without the query string.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The route template the router matched, if any.
    pub fn matched_route(&self) -> Option<&str> {
        self.matched_route.as_deref()
    }

    /// All decoded path parameters of the matched route, in order.
    pub fn params(&self) -> &[(String, String)] {
        &self.params
    }

    /// The decoded path parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The host the request was addressed to: the one set by [`with_host`](Self::with_host), or
    /// else the `Host` header's.
    pub fn host(&self) -> Option<&str> {
        self.host
            .as_deref()
            .or_else(|| self.headers.get(header::HOST).and_then(|v| v.to_str().ok()))
    }

    /// The request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// Gives the headers back (with sensitive values marked), so that an adapter can hand them
    /// on to the handler without having copied them.
    pub fn into_headers(self) -> HeaderMap {
        self.headers
    }

    /// The peer's socket address, if the adapter knows it.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// The request id from a well-formed `x-request-id` header.
    pub fn request_id(&self) -> Option<&str> {
        self.request_id.as_deref()
    }
}

impl fmt::Debug for RequestFacts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestFacts")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("matched_route", &self.matched_route)
            .field("params", &self.params)
            .field("host", &self.host)
            .field("header_names", &self.headers.keys().collect::<Vec<_>>())
            .field("peer", &self.peer)
            .field("request_id", &self.request_id)
            .finish()
    }
}

/// Whether every `%` of `path` starts an escape: two hex digits follow it.
fn escapes_are_whole(path: &str) -> bool {
    let bytes = path.as_bytes();
    memchr::memchr_iter(b'%', bytes).all(|i| {
        bytes
            .get(i + 1..i + 3)
            .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_mapped_peer_is_its_ipv4_address() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:4000".parse().unwrap();
        let facts = RequestFacts::new(Method::GET, "/").with_peer(mapped);
        assert_eq!(facts.peer(), Some("127.0.0.1:4000".parse().unwrap()));
        let v6: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        assert_eq!(
            RequestFacts::new(Method::GET, "/").with_peer(v6).peer(),
            Some(v6)
        );
    }

    #[test]
    fn a_broken_escape_or_a_doubly_framed_request_is_malformed() {
        for path in [
            "/docs/d%%331",
            "/docs/%%66f",
            "/d%0%611",
            "/a%",
            "/a%4",
            "/a%g0",
            "/%2%65%2e",
        ] {
            let facts = RequestFacts::new(Method::GET, path);
            assert!(facts.malformed().is_some_and(|m| m.contains('%')), "{path}");
        }
        for path in [
            "/docs/d1",
            "/docs/100%25",
            "/a%2Fb",
            "/%61dmin",
            "/%e2%82%ac",
            "",
        ] {
            assert_eq!(
                RequestFacts::new(Method::GET, path).malformed(),
                None,
                "{path}"
            );
        }
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, http::HeaderValue::from_static("5"));
        let one = RequestFacts::new(Method::PUT, "/d").with_headers(headers.clone());
        assert_eq!(one.malformed(), None);
        headers.insert(
            header::TRANSFER_ENCODING,
            http::HeaderValue::from_static("chunked"),
        );
        let both = RequestFacts::new(Method::PUT, "/d").with_headers(headers);
        assert!(
            both.malformed()
                .is_some_and(|m| m.contains("Transfer-Encoding"))
        );
        // What the adapter said comes first.
        let said = RequestFacts::new(Method::GET, "/a%").with_malformed("adapter");
        assert_eq!(said.malformed(), Some("adapter"));
    }

    #[test]
    fn a_repeated_parameter_name_makes_the_request_malformed() {
        let facts = RequestFacts::new(Method::GET, "/users/1/docs/2")
            .with_matched_route("/users/{id}/docs/{id}")
            .with_param("id", "1");
        assert_eq!(facts.malformed(), None);
        let facts = facts.with_param("id", "2");
        assert!(facts.malformed().is_some_and(|m| m.contains("repeats")));
        // Distinct names are fine, and an earlier reason is kept.
        let other = RequestFacts::new(Method::GET, "/u/1/d/2")
            .with_param("user", "1")
            .with_param("doc", "2");
        assert_eq!(other.malformed(), None);
        let earlier = RequestFacts::new(Method::GET, "/")
            .with_malformed("first")
            .with_param("id", "1")
            .with_param("id", "2");
        assert_eq!(earlier.malformed(), Some("first"));
    }

    #[test]
    fn debug_never_shows_header_values() {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            "Bearer s3cr3t-token".parse().unwrap(),
        );
        h.insert(header::COOKIE, "session=s3cr3t-cookie".parse().unwrap());
        h.insert("x-api-key", "aaa_k1_s3cr3t".parse().unwrap());
        let facts = RequestFacts::new(Method::GET, "/").with_headers(h);
        let shown = format!("{facts:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("authorization"));
        assert!(facts.headers()[header::AUTHORIZATION].is_sensitive());
        assert!(facts.headers()[header::COOKIE].is_sensitive());
    }

    #[test]
    fn host_is_the_one_set_or_the_header() {
        let mut h = HeaderMap::new();
        h.append(header::HOST, "first.example".parse().unwrap());
        h.append(header::HOST, "second.example".parse().unwrap());
        let facts = RequestFacts::new(Method::GET, "/").with_headers(h.clone());
        assert_eq!(facts.host(), Some("first.example"));
        let facts = facts.with_host("authority.example");
        assert_eq!(facts.host(), Some("authority.example"));
        // New headers replace what was known of the old ones, the host included.
        let facts = facts.with_headers(h);
        assert_eq!(facts.host(), Some("first.example"));
        assert_eq!(RequestFacts::new(Method::GET, "/").host(), None);
    }

    #[test]
    fn every_credential_value_is_sensitive_and_the_first_request_id_counts() {
        let mut h = HeaderMap::new();
        for name in SENSITIVE_HEADERS {
            h.append(name, "a".parse().unwrap());
            h.append(name, "b".parse().unwrap());
        }
        h.append("x-request-id", "first".parse().unwrap());
        h.append("x-request-id", "second".parse().unwrap());
        let facts = RequestFacts::new(Method::GET, "/").with_headers(h);
        for name in SENSITIVE_HEADERS {
            assert!(
                facts
                    .headers()
                    .get_all(name)
                    .iter()
                    .all(|v| v.is_sensitive()),
                "{name}"
            );
        }
        assert_eq!(facts.request_id(), Some("first"));
        assert!(!facts.headers()["x-request-id"].is_sensitive());
    }

    #[test]
    fn custom_credential_headers_are_sensitive_and_others_are_not() {
        let mut h = HeaderMap::new();
        for name in [
            "x-api-key",
            "x-service-token",
            "x-client-secret",
            "x-auth",
            "x-amz-signature",
            "x-session-id",
        ] {
            h.insert(HeaderName::from_static(name), "s3cr3t".parse().unwrap());
        }
        for name in ["accept", "user-agent", "x-request-id", "content-type"] {
            h.insert(HeaderName::from_static(name), "plain".parse().unwrap());
        }
        let facts = RequestFacts::new(Method::GET, "/").with_headers(h);
        for (name, value) in facts.headers() {
            assert_eq!(
                value.is_sensitive(),
                value.as_bytes() == b"s3cr3t",
                "{name}"
            );
        }
        assert!(!format!("{:?}", facts.headers()).contains("s3cr3t"));
    }

    #[test]
    fn headers_named_by_the_authenticators_are_marked_too() {
        let mut h = HeaderMap::new();
        h.append("x-client", "one".parse().unwrap());
        h.append("x-client", "two".parse().unwrap());
        h.insert("x-note", "plain".parse().unwrap());
        let facts = RequestFacts::new(Method::GET, "/").with_headers(h);
        assert!(!facts.headers()["x-client"].is_sensitive());
        let facts = facts.with_sensitive_headers(&[
            HeaderName::from_static("x-client"),
            HeaderName::from_static("x-absent"),
        ]);
        assert!(
            facts
                .headers()
                .get_all("x-client")
                .iter()
                .all(|v| v.is_sensitive())
        );
        assert!(!facts.headers()["x-note"].is_sensitive());
        assert!(!facts.headers().contains_key("x-absent"));
    }

    #[test]
    fn request_id_is_taken_only_when_well_formed() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-request-id", v.parse().unwrap());
            RequestFacts::new(Method::GET, "/").with_headers(h)
        };
        assert_eq!(with("abc-123").request_id(), Some("abc-123"));
        assert_eq!(with("has space").request_id(), None);
        assert_eq!(with(&"x".repeat(129)).request_id(), None);
    }

    #[test]
    fn params_and_route() {
        let f = RequestFacts::new(Method::DELETE, "/docs/a%2Fb")
            .with_matched_route("/docs/{id}")
            .with_param("id", "a/b");
        assert_eq!(f.matched_route(), Some("/docs/{id}"));
        assert_eq!(f.param("id"), Some("a/b"));
        assert_eq!(f.param("other"), None);
        assert_eq!(f.path(), "/docs/a%2Fb");
    }
}
