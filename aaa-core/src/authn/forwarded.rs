//! Service identities forwarded by a trusted proxy: [`ForwardedIdentityAuthenticator`].

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
};

use http::HeaderName;
use ipnet::IpNet;

use super::AuthnError;
use crate::{
    AuthInfo, AuthMethod, BoxFuture, Clock, CredentialRef, Identity, Principal, PrincipalKind,
    authn::Authenticator, http::RequestFacts,
};

/// Who may forward identities, and which.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ForwardedIdentityConfig {
    /// Peer addresses (ranges) of trusted proxies. Defaults to none: nothing is trusted. An
    /// IPv4-mapped range (`::ffff:10.0.0.0/104`) is its IPv4 range (`10.0.0.0/8`), as a peer is.
    pub trusted_proxies: Vec<IpNet>,
    /// The header. Defaults to `x-forwarded-client-cert`.
    pub header: HeaderName,
    /// Accepted SPIFFE trust domains; empty accepts any domain the proxy forwards (whatever its
    /// certificate authority signs, federated domains included). Defaults to empty: set it to
    /// the mesh's own domain(s) ([`with_trust_domains`](Self::with_trust_domains)).
    pub trust_domains: Vec<String>,
}

impl ForwardedIdentityConfig {
    /// Trusts the proxies in `trusted_proxies`, reading `x-forwarded-client-cert`.
    pub fn new(trusted_proxies: impl IntoIterator<Item = IpNet>) -> Self {
        ForwardedIdentityConfig {
            trusted_proxies: trusted_proxies.into_iter().collect(),
            header: HeaderName::from_static("x-forwarded-client-cert"),
            trust_domains: Vec::new(),
        }
    }

    /// Accepts only these trust domains.
    #[must_use]
    pub fn with_trust_domains<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        domains: I,
    ) -> Self {
        self.trust_domains = domains.into_iter().map(Into::into).collect();
        self
    }
}

/// Authenticates services by the SPIFFE ID a trusted proxy forwards.
///
/// A sidecar or edge proxy (Envoy) terminates mutual TLS and passes the client certificate's
/// SPIFFE ID on in `x-forwarded-client-cert` (XFCC), e.g.
/// `By=spiffe://prod/ns/a/sa/api;Hash=…;URI=spiffe://prod/ns/b/sa/worker`.
///
/// The header is believed **only when the TCP peer is one of the configured trusted proxies**
/// (by IP range). From anyone else it is ignored, since any client can send it: the request goes
/// on without it, every audit record of the request names the attempt
/// (`request.ignored_credential` = `forwarded_identity_from_untrusted_peer`, see
/// [`Authenticator::ignored`]), a `WARN` event is emitted under the target
/// `aaa::authn::forwarded`, and [`ForwardedIdentityAuthenticator::ignored_attempts`] counts it
/// for alerts.
///
/// From a trusted proxy, the header must hold exactly one element (configure Envoy with
/// `forward_client_cert_details: SANITIZE_SET`, so clients cannot add elements) with exactly one
/// `URI` that is a SPIFFE ID (`spiffe://<trust domain>/<path>`); when trust domains are
/// configured, it must be one of them. Otherwise the request is refused (401); two header
/// lines are two credentials, refused as any two credentials are (400).
///
/// Beside another credential (a user's bearer token that a mesh service passes on), the
/// forwarded identity is the hop, not the caller: the guard decides on the other credential's
/// principal, gives policies the service as the context attribute `relayed_by`, and names it in
/// the request's audit records (`request.relayed_by`). In a
/// mesh whose sidecar forwards every caller's certificate, a user's request relayed by a service
/// is thus decided as the user's, and a service's own request as the service's.
///
/// # Deployment caveat
///
/// The peer address must be the proxy's. Behind another hop (a load balancer in front of the
/// sidecar), the peer is that hop, and trusting it trusts whatever it forwards.
pub struct ForwardedIdentityAuthenticator {
    config: ForwardedIdentityConfig,
    clock: std::sync::Arc<dyn Clock>,
    ignored: AtomicU64,
}

impl fmt::Debug for ForwardedIdentityAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ForwardedIdentityAuthenticator")
            .field("config", &self.config)
            .field("ignored_attempts", &self.ignored_attempts())
            .finish_non_exhaustive()
    }
}

/// Whether `id` is a SPIFFE ID: `spiffe://` + a trust domain of `[a-z0-9._-]` + a non-empty path
/// of segments of `[A-Za-z0-9._-]`, none `.` or `..`. Returns the trust domain.
fn spiffe_trust_domain(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("spiffe://")?;
    let (domain, path) = rest.split_once('/')?;
    let domain_ok = !domain.is_empty()
        && domain.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        });
    let path_ok = path.split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    });
    (domain_ok && path_ok).then_some(domain)
}

/// One XFCC pair: key, value (unquoted and unescaped), and whether it was quoted.
struct XfccPair {
    key: String,
    value: String,
    quoted: bool,
}

/// One XFCC element: its `key=value` pairs, in order.
type XfccElement = Vec<XfccPair>;

/// The elements of an `x-forwarded-client-cert` value, as Envoy writes it: elements separated
/// by `,`, `key=value` pairs by `;`, and a value holding `,`, `;`, `=` or `"` double-quoted
/// (with `\"` and `\\` escaped). Separators inside quotes belong to the value: a subject or DNS
/// name can hold any text the certificate's issuer put there. Anything else is malformed.
fn xfcc_elements(text: &str) -> Result<Vec<XfccElement>, AuthnError> {
    let malformed = || AuthnError::Invalid("the forwarded certificate header is malformed");
    let mut elements = Vec::new();
    let mut element = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut key = String::new();
        loop {
            match chars.next() {
                Some('=') => break,
                Some('"' | ';' | ',') | None => return Err(malformed()),
                Some(c) => key.push(c),
            }
        }
        let key = key.trim();
        if key.is_empty() {
            return Err(malformed());
        }
        let mut value = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().ok_or_else(malformed)?),
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(malformed()),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    ';' | ',' => break,
                    '"' | '=' => return Err(malformed()),
                    _ => value.push(c),
                }
                chars.next();
            }
            // Kept as written, not trimmed: Envoy writes a value as the certificate has it, and
            // ` spiffe://…` is no SPIFFE ID (the SPIFFE check refuses it).
        }
        element.push(XfccPair {
            key: key.to_owned(),
            value,
            quoted,
        });
        match chars.next() {
            Some(';') => {}
            Some(',') => elements.push(std::mem::take(&mut element)),
            None => {
                elements.push(element);
                return Ok(elements);
            }
            // Text after a closing quote.
            Some(_) => return Err(malformed()),
        }
    }
}

/// Whether the trusted range `net` holds `ip`, IPv4-mapped forms (`::ffff:10.0.0.5`, on either
/// side) taken as their IPv4 address: the peer of a dual-stack listener is its IPv4 address, so a
/// proxy configured as `::ffff:10.0.0.5/128` (or `::ffff:10.0.0.0/104`) is `10.0.0.5` (`10/8`).
fn proxy_range_contains(net: &IpNet, ip: std::net::IpAddr) -> bool {
    let ip = ip.to_canonical();
    if let IpNet::V6(v6) = net
        && let Some(v4) = v6.network().to_ipv4_mapped()
        && v6.prefix_len() >= 96
        && let Ok(v4net) = ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
    {
        return IpNet::V4(v4net).contains(&ip);
    }
    net.contains(&ip)
}

impl ForwardedIdentityAuthenticator {
    /// An authenticator with this configuration and clock.
    pub fn new(config: ForwardedIdentityConfig, clock: std::sync::Arc<dyn Clock>) -> Self {
        ForwardedIdentityAuthenticator {
            config,
            clock,
            ignored: AtomicU64::new(0),
        }
    }

    /// How many requests carried the header from a peer that is not a trusted proxy (ignored).
    pub fn ignored_attempts(&self) -> u64 {
        self.ignored.load(Ordering::Relaxed)
    }

    /// Whether the request's TCP peer is one of the trusted proxies.
    fn peer_is_trusted_proxy(&self, facts: &RequestFacts) -> bool {
        facts.peer().is_some_and(|peer| {
            self.config
                .trusted_proxies
                .iter()
                .any(|n| proxy_range_contains(n, peer.ip()))
        })
    }

    fn identify(&self, facts: &RequestFacts) -> Result<Identity, AuthnError> {
        let mut values = facts.headers().get_all(&self.config.header).iter();
        let Some(value) = values.next() else {
            return Ok(Identity::Anonymous);
        };
        if !self.peer_is_trusted_proxy(facts) {
            self.ignored.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                target: "aaa::authn::forwarded",
                peer = ?facts.peer(),
                request_id = facts.request_id(),
                "forwarded client identity from an untrusted peer ignored"
            );
            return Ok(Identity::Anonymous);
        }
        if values.next().is_some() {
            return Err(AuthnError::MultipleCredentials);
        }
        let text = value
            .to_str()
            .map_err(|_| AuthnError::Invalid("the forwarded certificate header is not text"))?;
        let elements = xfcc_elements(text)?;
        let [element] = elements.as_slice() else {
            return Err(AuthnError::Invalid(
                "the forwarded certificate header has more than one element",
            ));
        };
        let mut uris = element
            .iter()
            .filter(|pair| pair.key.eq_ignore_ascii_case("uri"));
        let (Some(uri), None) = (uris.next(), uris.next()) else {
            return Err(AuthnError::Invalid(
                "the forwarded certificate must carry exactly one uri",
            ));
        };
        // Envoy writes a URI SAN raw: a quoted one is a SAN that itself starts with `"`, whose
        // escapes are the certificate's text, not the proxy's.
        if uri.quoted {
            return Err(AuthnError::Invalid("the forwarded uri is quoted"));
        }
        let uri = uri.value.as_str();
        let Some(domain) = spiffe_trust_domain(uri) else {
            return Err(AuthnError::Invalid("the forwarded uri is not a spiffe id"));
        };
        if !self.config.trust_domains.is_empty()
            && !self.config.trust_domains.iter().any(|d| d == domain)
        {
            return Err(AuthnError::Invalid(
                "the spiffe trust domain is not accepted",
            ));
        }
        let now = self.clock.now();
        let principal = Principal::new(uri, PrincipalKind::Service, format!("spiffe://{domain}"))
            .with_auth(AuthInfo::new(
                AuthMethod::ForwardedMtls,
                now,
                CredentialRef::KeyId(uri.to_owned()),
            ));
        Ok(principal.into())
    }
}

impl Authenticator for ForwardedIdentityAuthenticator {
    fn authenticate<'a>(
        &'a self,
        facts: &'a RequestFacts,
    ) -> BoxFuture<'a, Result<Identity, AuthnError>> {
        match self.identify(facts) {
            Ok(Identity::Anonymous) => Box::pin(crate::ReadyWith(|| Ok(Identity::Anonymous))),
            identified => Box::pin(std::future::ready(identified)),
        }
    }

    /// `forwarded_identity_from_untrusted_peer` when the header comes from a peer that is not a
    /// trusted proxy.
    fn ignored(&self, facts: &RequestFacts) -> Option<&'static str> {
        (facts.headers().contains_key(&self.config.header) && !self.peer_is_trusted_proxy(facts))
            .then_some("forwarded_identity_from_untrusted_peer")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{FixedClock, Timestamp};
    use http::{HeaderMap, HeaderValue, Method};
    use std::sync::Arc;

    fn authn() -> ForwardedIdentityAuthenticator {
        ForwardedIdentityAuthenticator::new(
            ForwardedIdentityConfig::new(["10.0.0.0/8".parse().unwrap()])
                .with_trust_domains(["prod"]),
            Arc::new(FixedClock::new(Timestamp::UNIX_EPOCH)),
        )
    }

    fn facts(peer: &str, xfcc: &str) -> RequestFacts {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-client-cert",
            HeaderValue::from_str(xfcc).unwrap(),
        );
        RequestFacts::new(Method::GET, "/")
            .with_headers(h)
            .with_peer(peer.parse().unwrap())
    }

    const GOOD: &str = "By=spiffe://prod/ns/a/sa/api;Hash=abc;URI=spiffe://prod/ns/b/sa/worker";

    #[test]
    fn trusted_proxy_forwards_a_spiffe_id() {
        let a = authn();
        let id = a.identify(&facts("10.1.2.3:4444", GOOD)).unwrap();
        let p = id.principal().unwrap();
        assert_eq!(p.id, "spiffe://prod/ns/b/sa/worker");
        assert_eq!(p.kind, PrincipalKind::Service);
        assert_eq!(p.issuer, "spiffe://prod");
        assert_eq!(p.auth.method, AuthMethod::ForwardedMtls);
    }

    #[test]
    fn untrusted_peer_is_ignored_and_counted() {
        let a = authn();
        assert_eq!(
            a.identify(&facts("192.0.2.1:4444", GOOD)).unwrap(),
            Identity::Anonymous
        );
        assert_eq!(a.ignored_attempts(), 1);
        let no_peer = {
            let mut h = HeaderMap::new();
            h.insert("x-forwarded-client-cert", HeaderValue::from_static(GOOD));
            RequestFacts::new(Method::GET, "/").with_headers(h)
        };
        assert_eq!(a.identify(&no_peer).unwrap(), Identity::Anonymous);
        assert_eq!(a.ignored_attempts(), 2);
    }

    /// The guard names an ignored header in the request's records: from an untrusted peer (or
    /// none), never from a trusted proxy, nor without the header.
    #[test]
    fn an_ignored_header_is_reported_to_the_guard() {
        let a = authn();
        let ignored = Some("forwarded_identity_from_untrusted_peer");
        assert_eq!(a.ignored(&facts("192.0.2.1:4444", GOOD)), ignored);
        let mut no_peer = HeaderMap::new();
        no_peer.insert("x-forwarded-client-cert", HeaderValue::from_static(GOOD));
        let no_peer = RequestFacts::new(Method::GET, "/").with_headers(no_peer);
        assert_eq!(a.ignored(&no_peer), ignored);
        assert_eq!(a.ignored(&facts("10.1.2.3:4444", GOOD)), None);
        let without =
            RequestFacts::new(Method::GET, "/").with_peer("192.0.2.1:4444".parse().unwrap());
        assert_eq!(a.ignored(&without), None);
    }

    #[test]
    fn bad_headers_from_a_trusted_proxy_are_refused() {
        let a = authn();
        for bad in [
            "URI=spiffe://prod/a,URI=spiffe://prod/b",
            "URI=spiffe://prod/a;URI=spiffe://prod/b",
            "Hash=abc",
            "URI=https://prod/a",
            "URI=spiffe://other/a",
            "URI=spiffe://prod/../a",
            "URI=spiffe://prod/",
            "garbage",
        ] {
            assert!(a.identify(&facts("10.0.0.1:1", bad)).is_err(), "{bad}");
        }
        // Envoy never quotes a URI SAN: a quoted one is refused, escapes or not.
        for quoted in [r#"URI="spiffe://prod/x""#, r#"URI="spiffe://prod/a\dmin""#] {
            assert!(
                a.identify(&facts("10.0.0.1:1", quoted)).is_err(),
                "{quoted}"
            );
        }
    }

    #[test]
    fn xfcc_separators_inside_quotes_belong_to_the_value() {
        let pairs = |text| {
            xfcc_elements(text).map(|elements| {
                elements
                    .into_iter()
                    .map(|e| {
                        e.into_iter()
                            .map(|p| format!("{}={}", p.key, p.value))
                            .collect::<Vec<_>>()
                            .join("|")
                    })
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(
            pairs(r#"Hash=ab;Subject="CN=w,OU=j;x";URI=spiffe://prod/w"#).unwrap(),
            ["Hash=ab|Subject=CN=w,OU=j;x|URI=spiffe://prod/w"]
        );
        assert_eq!(
            pairs(r#"DNS="a\"b\\c";URI=u,URI=v"#).unwrap(),
            ["DNS=a\"b\\c|URI=u", "URI=v"]
        );
        for malformed in [
            r#"URI="spiffe://prod/x"#,
            r#"URI="a"b"#,
            r#"URI=a"b"#,
            "URI=a=b",
            "=a",
            "URI",
            "URI=a;",
            "URI=a,",
            "",
        ] {
            assert!(pairs(malformed).is_err(), "{malformed}");
        }
        // A quoted DNS name holding `;URI=` is no URI, and a quoted subject's commas no element.
        let a = authn();
        assert!(
            a.identify(&facts(
                "10.0.0.1:1",
                r#"Hash=ab;DNS="a;URI=spiffe://prod/admin;b=c""#
            ))
            .is_err()
        );
        assert!(
            a.identify(&facts(
                "10.0.0.1:1",
                r#"Subject="CN=w,O=p";URI=spiffe://prod/w"#
            ))
            .is_ok()
        );
    }
}
