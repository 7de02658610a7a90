//! Where signing keys come from: the [`KeySource`] trait and its HTTP implementations, a JWKS URL
//! ([`JwksUrl`]) and OIDC discovery ([`OidcDiscovery`]).

use std::{fmt, time::Duration};

use super::{KeyError, KeySet, KeySourceError};
use crate::BoxFuture;

/// The keys a source returned, and how long it says they may be cached.
#[derive(Debug, Clone)]
pub struct KeyFetch {
    /// The parsed keys. Keys that could not be parsed are listed in [`KeySet::rejected`].
    pub keys: KeySet,
    /// `Cache-Control: max-age`, if the response had one (`no-cache`/`no-store` count as zero).
    /// The cache clamps it to its configured bounds.
    pub max_age: Option<Duration>,
}

/// Fetches an issuer's signing keys.
///
/// The [`KeyStore`](super::KeyStore) calls it, never more than one fetch at a time per store, and
/// never with symmetric keys: remote sources must parse with `allow_symmetric = false`
/// ([`KeySet::from_jwks_json`]).
pub trait KeySource: Send + Sync + fmt::Debug {
    /// Fetches the current key set.
    ///
    /// # Errors
    ///
    /// [`KeySourceError`] on any failure; the cache keeps its current keys.
    fn fetch(&self) -> BoxFuture<'_, Result<KeyFetch, KeySourceError>>;

    /// The issuer whose keys the source finds, when it knows (OIDC discovery does): the JWT
    /// authenticator refuses to pair the source with another issuer's rules. Defaults to
    /// `None`.
    fn issuer(&self) -> Option<&str> {
        None
    }
}

/// Limits for every HTTP fetch of keys or discovery documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Time allowed to open the connection (TCP and TLS). Defaults to 2 s.
    pub connect_timeout: Duration,
    /// Time allowed for the whole request, body included. Defaults to 5 s.
    pub timeout: Duration,
    /// Largest response body read; a larger one is a failure. Defaults to 256 KiB.
    pub max_response_bytes: usize,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            connect_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_response_bytes: 256 * 1024,
        }
    }
}

impl HttpOptions {
    /// Sets both timeouts.
    #[must_use]
    pub fn with_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.connect_timeout = connect;
        self.timeout = total;
        self
    }

    /// Sets the response size cap.
    #[must_use]
    pub fn with_max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }
}

/// A small HTTP GET client with timeouts, no redirects, no proxy, and a size cap.
#[derive(Clone)]
struct Fetcher {
    client: reqwest::Client,
    options: HttpOptions,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// Where `localhost` is: this machine's loopback addresses (port 0: the URL's port is used).
const LOCALHOST: [std::net::SocketAddr; 2] = [
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0),
    std::net::SocketAddr::new(std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), 0),
];

/// The client every fetch uses: timeouts, no redirects, no proxy, and `localhost` pinned to the
/// loopback addresses. Plain `http` is accepted for `localhost` only because it is this
/// machine, so its name is never asked of a resolver (RFC 6761 §6.3), whose answer an attacker
/// on the network could forge to serve keys of their own.
fn client_builder(options: &HttpOptions) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .resolve_to_addrs("localhost", &LOCALHOST)
}

impl Fetcher {
    fn new(options: HttpOptions) -> Result<Self, KeySourceError> {
        Self::with_client(client_builder(&options), options)
    }

    fn with_client(
        builder: reqwest::ClientBuilder,
        options: HttpOptions,
    ) -> Result<Self, KeySourceError> {
        let client = builder
            .build()
            .map_err(|e| KeySourceError::Client(e.to_string()))?;
        Ok(Fetcher { client, options })
    }

    async fn get(&self, url: &reqwest::Url) -> Result<(Vec<u8>, Option<Duration>), KeySourceError> {
        let mut response = self
            .client
            .get(url.clone())
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| KeySourceError::Transport(e.without_url().to_string()))?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(KeySourceError::Status(response.status().as_u16()));
        }
        let cap = self.options.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > u64::try_from(cap).unwrap_or(u64::MAX))
        {
            return Err(KeySourceError::TooLarge(cap));
        }
        let max_age =
            cache_control_max_age(response.headers().get_all(http::header::CACHE_CONTROL));
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| KeySourceError::Transport(e.without_url().to_string()))?
        {
            if body.len().saturating_add(chunk.len()) > cap {
                return Err(KeySourceError::TooLarge(cap));
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

/// `max-age` from the `Cache-Control` field lines of a response, read as one list (RFC 9110
/// §5.3); `no-cache` and `no-store` count as zero, and so do several `max-age` directives that
/// disagree (RFC 9111 §4.2.1 allows the response to be taken as stale), or a line that is not
/// text.
pub(crate) fn cache_control_max_age<'a>(
    lines: impl IntoIterator<Item = &'a http::HeaderValue>,
) -> Option<Duration> {
    let mut found: Option<Option<Duration>> = None;
    for line in lines {
        let Ok(value) = line.to_str() else {
            return Some(Duration::ZERO);
        };
        for directive in value.split(',') {
            let lower = directive.trim().to_ascii_lowercase();
            if lower == "no-cache" || lower == "no-store" {
                return Some(Duration::ZERO);
            }
            if let Some(secs) = lower.strip_prefix("max-age=") {
                let age = secs
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs);
                match found {
                    Some(before) if before != age => return Some(Duration::ZERO),
                    _ => found = Some(age),
                }
            }
        }
    }
    found.flatten()
}

/// `max-age` from one `Cache-Control` value (see [`cache_control_max_age`]).
#[cfg(test)]
fn cache_max_age(value: &str) -> Option<Duration> {
    cache_control_max_age(&[http::HeaderValue::from_str(value).ok()?])
}

/// Parses `url`, requiring `https` unless the host is a loopback address (for tests and local
/// development).
fn secure_url(url: &str) -> Result<reqwest::Url, KeySourceError> {
    let parsed =
        reqwest::Url::parse(url).map_err(|_| KeySourceError::InsecureUrl(redacted(url)))?;
    let loopback = parsed.host_str().is_some_and(|host| {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        bare.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    });
    match parsed.scheme() {
        "https" => Ok(parsed),
        "http" if loopback => Ok(parsed),
        _ => Err(KeySourceError::InsecureUrl(redacted(url))),
    }
}

/// `url` fit to show in errors and `Debug`: a user name and password (which the HTTP client
/// would send as Basic credentials) and a query (where some gateways take a key) become `***`;
/// a fragment is dropped.
fn redacted(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let mut out = String::with_capacity(url.len());
    if let Some(scheme) = scheme {
        out.push_str(scheme);
        out.push_str("://");
    }
    match authority.rsplit_once('@') {
        Some((_, host)) => {
            out.push_str("***@");
            out.push_str(host);
        }
        None => out.push_str(authority),
    }
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let (path, after) = tail.split_at(path_end);
    out.push_str(path);
    if after.starts_with('?') {
        out.push_str("?***");
    }
    out
}

fn parse_jwks(body: &[u8]) -> Result<KeySet, KeySourceError> {
    KeySet::from_jwks_json(body, false).map_err(|e: KeyError| KeySourceError::Parse(e.to_string()))
}

/// Keys fetched from a JWKS URL.
#[derive(Clone)]
pub struct JwksUrl {
    url: reqwest::Url,
    fetcher: Fetcher,
}

/// The URL without its credentials (see `redacted`).
impl fmt::Debug for JwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwksUrl")
            .field("url", &redacted(self.url.as_str()))
            .finish_non_exhaustive()
    }
}

impl JwksUrl {
    /// A source reading the JWKS at `url`.
    ///
    /// # Errors
    ///
    /// [`KeySourceError::InsecureUrl`] unless `url` is `https` (or `http` to `localhost` or a
    /// loopback address; `localhost` always means 127.0.0.1 or ::1, it is never resolved);
    /// [`KeySourceError::Client`] if the HTTP client cannot be built.
    pub fn new(url: &str, options: HttpOptions) -> Result<Self, KeySourceError> {
        Ok(JwksUrl {
            url: secure_url(url)?,
            fetcher: Fetcher::new(options)?,
        })
    }
}

impl KeySource for JwksUrl {
    fn fetch(&self) -> BoxFuture<'_, Result<KeyFetch, KeySourceError>> {
        Box::pin(async move {
            let (body, max_age) = self.fetcher.get(&self.url).await?;
            Ok(KeyFetch {
                keys: parse_jwks(&body)?,
                max_age,
            })
        })
    }
}

/// Keys found through OIDC discovery: `{issuer}/.well-known/openid-configuration` names the
/// `jwks_uri`.
///
/// The discovery document's `issuer` must equal the configured issuer exactly (OpenID Connect
/// Discovery §4.3), or the fetch fails with [`KeySourceError::IssuerMismatch`]. The `jwks_uri`
/// must be `https` (or loopback `http`). Discovery runs on every fetch, so a moved `jwks_uri` is
/// followed.
#[derive(Clone)]
pub struct OidcDiscovery {
    issuer: String,
    discovery: reqwest::Url,
    fetcher: Fetcher,
}

/// The URLs without their credentials (see `redacted`).
impl fmt::Debug for OidcDiscovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcDiscovery")
            .field("issuer", &redacted(&self.issuer))
            .field("discovery", &redacted(self.discovery.as_str()))
            .finish_non_exhaustive()
    }
}

impl OidcDiscovery {
    /// A source discovering the keys of `issuer`.
    ///
    /// # Errors
    ///
    /// As [`JwksUrl::new`].
    pub fn new(issuer: &str, options: HttpOptions) -> Result<Self, KeySourceError> {
        let base = issuer.trim_end_matches('/');
        Ok(OidcDiscovery {
            issuer: issuer.to_owned(),
            discovery: secure_url(&format!("{base}/.well-known/openid-configuration"))?,
            fetcher: Fetcher::new(options)?,
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }
}

impl KeySource for OidcDiscovery {
    fn issuer(&self) -> Option<&str> {
        Some(&self.issuer)
    }

    fn fetch(&self) -> BoxFuture<'_, Result<KeyFetch, KeySourceError>> {
        Box::pin(async move {
            #[derive(serde::Deserialize)]
            struct Metadata {
                issuer: String,
                jwks_uri: String,
            }
            let (body, _) = self.fetcher.get(&self.discovery).await?;
            let meta: Metadata = serde_json::from_slice(&body).map_err(|_| {
                KeySourceError::Parse("the discovery document lacks issuer or jwks_uri".to_owned())
            })?;
            if meta.issuer != self.issuer {
                return Err(KeySourceError::IssuerMismatch {
                    expected: self.issuer.clone(),
                    found: crate::audit::printable(&meta.issuer).into_owned(),
                });
            }
            let jwks = secure_url(&meta.jwks_uri)?;
            let (body, max_age) = self.fetcher.get(&jwks).await?;
            Ok(KeyFetch {
                keys: parse_jwks(&body)?,
                max_age,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Credentials in a key source's URL (user name and password, a key in the query) reach
    /// neither `Debug` (a `KeyStore` prints its source) nor errors (found by a review).
    #[test]
    fn url_credentials_reach_neither_debug_nor_errors() {
        let secret_url = "https://svc:hunter2@idp.example/jwks?api_key=qu3ry-s3cret#frag";
        let source = JwksUrl::new(secret_url, HttpOptions::default()).unwrap();
        let clock = std::sync::Arc::new(crate::FixedClock::new(
            crate::Timestamp::from_unix_seconds(0),
        ));
        let store = crate::authn::KeyStore::new(
            source.clone(),
            crate::authn::CachePolicy::default(),
            clock,
        );
        for shown in [format!("{source:?}"), format!("{store:?}")] {
            assert!(
                !shown.contains("hunter2") && !shown.contains("qu3ry"),
                "{shown}"
            );
            assert!(
                shown.contains("https://***@idp.example/jwks?***"),
                "{shown}"
            );
        }
        let discovery = OidcDiscovery::new(
            "https://svc:hunter2@idp.example/realm",
            HttpOptions::default(),
        )
        .unwrap();
        let shown = format!("{discovery:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        for insecure in [
            "http://svc:hunter2@idp.example/jwks?api_key=qu3ry-s3cret",
            "ftp://svc:hunter2@idp.example/jwks",
            "not a url hunter2@x?qu3ry",
        ] {
            let error = JwksUrl::new(insecure, HttpOptions::default())
                .unwrap_err()
                .to_string();
            assert!(
                !error.contains("hunter2") && !error.contains("qu3ry"),
                "{error}"
            );
        }
        assert_eq!(
            redacted("https://idp.example:8443/a/b?x=1#f"),
            "https://idp.example:8443/a/b?***"
        );
        assert_eq!(
            redacted("https://idp.example/jwks"),
            "https://idp.example/jwks"
        );
        assert_eq!(redacted("https://u@idp.example"), "https://***@idp.example");
    }

    #[test]
    fn cache_control() {
        assert_eq!(
            cache_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(cache_max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(cache_max_age("public"), None);
        assert_eq!(cache_max_age("max-age=abc"), None);
    }

    /// Answers every connection on `listener` with `body`.
    async fn serve(listener: tokio::net::TcpListener, body: &'static str) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    }

    /// A resolver that answers every name with one address: what an attacker who controls the
    /// network's DNS would answer.
    struct Forged(std::net::SocketAddr);

    impl reqwest::dns::Resolve for Forged {
        fn resolve(&self, _: reqwest::dns::Name) -> reqwest::dns::Resolving {
            let addrs: reqwest::dns::Addrs = Box::new(std::iter::once(self.0));
            Box::pin(std::future::ready(Ok(addrs)))
        }
    }

    #[tokio::test]
    async fn localhost_is_this_machine_whatever_the_resolver_answers() {
        let genuine = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = genuine.local_addr().unwrap().port();
        // Another loopback address stands for the attacker's host, on the same port.
        let forged_addr = std::net::SocketAddr::from(([127, 0, 0, 2], port));
        let forger = tokio::net::TcpListener::bind(forged_addr).await.unwrap();
        tokio::spawn(serve(genuine, "genuine"));
        tokio::spawn(serve(forger, "forged"));
        let options = HttpOptions::default();
        let builder = client_builder(&options).dns_resolver(Forged(forged_addr));
        let fetcher = Fetcher::with_client(builder, options).unwrap();

        let url = secure_url(&format!("http://localhost:{port}/jwks")).unwrap();
        let (body, _) = fetcher.get(&url).await.unwrap();
        assert_eq!(body, b"genuine");
        // The same for the name in capitals: URLs lowercase it.
        let url = secure_url(&format!("http://LocalHost:{port}/jwks")).unwrap();
        let (body, _) = fetcher.get(&url).await.unwrap();
        assert_eq!(body, b"genuine");
        // Other names are resolved (and must be https in real use): the forged resolver is
        // really in place, so the test would see a resolver's answer for localhost.
        let url = reqwest::Url::parse(&format!("http://idp.test:{port}/jwks")).unwrap();
        let (body, _) = fetcher.get(&url).await.unwrap();
        assert_eq!(body, b"forged");
    }

    #[test]
    fn urls_must_be_https_except_loopback() {
        assert!(secure_url("https://idp.example/jwks").is_ok());
        assert!(secure_url("http://127.0.0.1:8080/jwks").is_ok());
        assert!(secure_url("http://[::1]:8080/jwks").is_ok());
        assert!(secure_url("http://localhost/jwks").is_ok());
        assert!(secure_url("http://idp.example/jwks").is_err());
        assert!(secure_url("file:///etc/passwd").is_err());
        assert!(secure_url("not a url").is_err());
    }
}
