//! Credential extraction and the non-JWT authenticators, from a review (2026-12-03): the
//! `Authorization` header, the token cookie, API keys and forwarded SPIFFE identities, and how the
//! `Guard` chooses among them and records the outcome.
//!
//! Each generated test writes the rules down a second time, from the RFCs and from aaa's own
//! documentation (RFC 9110 §11 credentials, RFC 6750 `b64token`, the `<prefix>_<id>_<secret>`
//! API key, Envoy's `x-forwarded-client-cert`), generates thousands of requests with a fixed seed
//! and compares aaa's answer with the model's. Tests that failed on the reviewed code say so.

use std::{net::SocketAddr, sync::Arc};

use aaa::{
    ApiKeyAuthenticator, ApiKeyConfig, ApiKeyRecord, AuthMethod, Authenticator, CredentialRef,
    ForwardedIdentityAuthenticator, ForwardedIdentityConfig, Guard, Identity, KeySet, KeyStore,
    Outcome, PrincipalKind, Timestamp,
    audit::{AuditEvent, AuditSink, EventKind},
    authn::Algorithm,
    http::{RejectionKind, RequestFacts},
};
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::{
    authn::{NOW, claims, clock, issuer, jwk_key, token},
    rng::Rng,
};

// ---------------------------------------------------------------------------------------------
// The guard under test: a JWT authenticator (header and cookie), API keys, forwarded identities
// ---------------------------------------------------------------------------------------------

use crate::authn::others::AnyoneAuthenticated;

/// The secret of the key `aaa_ci_…` (owner `ci-runner`, tenant `acme`, role `deployer`).
const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQ";
/// The secret of another service's key `aaa_billing_…` (tenant `globex`).
const OTHER: &str = "b3RoZXItb3RoZXItb3RoZXItb3RoZXI";
/// The secret of the revoked key `aaa_old_…`.
const REVOKED: &str = "cmV2b2tlZC1yZXZva2VkLXJldm9rZWQ";
/// The secret of the key `aaa_gone_…`, expired at `NOW`.
const EXPIRED: &str = "ZXhwaXJlZC1leHBpcmVkLWV4cGlyZWQ";

/// The API keys the guard knows: (id, secret, owner), and whether the key is usable.
const KEYS: &[(&str, &str, &str, bool)] = &[
    ("ci", SECRET, "ci-runner", true),
    ("billing", OTHER, "billing", true),
    ("old", REVOKED, "old-job", false),
    ("gone", EXPIRED, "gone-job", false),
];

fn key(id: &str, secret: &str) -> String {
    format!("aaa_{id}_{secret}")
}

fn api_keys() -> ApiKeyAuthenticator {
    let mut ci = ApiKeyRecord::new("ci", "ci-runner", SECRET).with_roles(["deployer"]);
    ci.tenant = Some("acme".to_owned());
    let mut billing = ApiKeyRecord::new("billing", "billing", OTHER);
    billing.tenant = Some("globex".to_owned());
    let old = ApiKeyRecord::new("old", "old-job", REVOKED);
    let gone = ApiKeyRecord::new("gone", "gone-job", EXPIRED)
        .with_expiry(Timestamp::from_unix_seconds(NOW));
    let authn = ApiKeyAuthenticator::new(
        ApiKeyConfig::new("aaa", [ci, billing, old, gone]),
        Arc::new(clock()),
    )
    .unwrap();
    assert!(authn.revoke("old"));
    authn
}

/// The mesh proxies: 10.0.0.0/8, forwarding identities of the trust domain `prod`.
fn forwarded() -> ForwardedIdentityAuthenticator {
    ForwardedIdentityAuthenticator::new(
        ForwardedIdentityConfig::new(["10.0.0.0/8".parse().unwrap()]).with_trust_domains(["prod"]),
        Arc::new(clock()),
    )
}

/// Keeps the records of the requests since the last [`Drain::take`].
#[derive(Debug, Default)]
struct Drain(std::sync::Mutex<Vec<AuditEvent>>);

impl Drain {
    fn take(&self) -> Vec<AuditEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl AuditSink for Drain {
    fn record<'a>(
        &'a self,
        event: AuditEvent,
    ) -> aaa::BoxFuture<'a, Result<Option<aaa::audit::AuditReceipt>, aaa::audit::AuditError>> {
        self.0.lock().unwrap().push(event);
        Box::pin(std::future::ready(Ok(None)))
    }
}

/// Alice's issuer (Ed25519), with the token also read from the cookie `access_token`.
fn jwt(c: &aaa::FixedClock) -> aaa::JwtAuthenticator {
    aaa::JwtAuthenticator::builder()
        .issuer(
            issuer(),
            KeyStore::fixed(KeySet::from_keys([jwk_key("ed25519")]), Arc::new(c.clone())),
        )
        .clock(Arc::new(c.clone()))
        .cookie("access_token")
        .build()
        .unwrap()
}

fn guard() -> (Guard, Arc<Drain>) {
    let c = clock();
    let audit = Arc::new(Drain::default());
    let guard = Guard::builder()
        .authenticator(jwt(&c))
        .authenticator(api_keys())
        .authenticator(forwarded())
        .policies(AnyoneAuthenticated)
        .audit_arc(audit.clone())
        .clock(c)
        .build()
        .unwrap();
    (guard, audit)
}

/// Alice's token, signed with Ed25519 (deterministic, so the generated mutants are the same
/// from run to run).
fn alice_token() -> String {
    token("ed25519", "ed-1", Algorithm::EdDSA, &claims())
}

/// A request to the protected route `/things/{id}` with these header lines (raw bytes) from
/// `peer`; `None` when a value could not be sent at all (a control byte).
fn request(headers: &[(&str, Vec<u8>)], peer: SocketAddr) -> Option<RequestFacts> {
    let mut h = HeaderMap::new();
    for (name, value) in headers {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).ok()?,
        );
    }
    Some(
        RequestFacts::new(http::Method::GET, "/things/1")
            .with_matched_route("/things/{id}")
            .with_param("id", "1")
            .with_headers(h)
            .with_peer(peer),
    )
}

fn slices(v: &[Vec<u8>]) -> Vec<&[u8]> {
    v.iter().map(Vec::as_slice).collect()
}

/// What the guard answered, reduced to what the model predicts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Got {
    /// Let through, as this principal.
    Admitted(String),
    /// 401 with the bare challenge: no credential.
    Missing,
    /// 400 `invalid_request`.
    InvalidRequest,
    /// 401 `invalid_token`.
    InvalidToken,
    /// Anything else (a status, a challenge or a problem code that does not fit).
    Odd(String),
}

/// Runs the guard and checks that the challenge, the problem code and the status agree. Returns
/// the answer and the text of the response (empty when admitted).
async fn ask(guard: &Guard, facts: &RequestFacts) -> (Got, String) {
    match guard.check(facts).await {
        Outcome::Proceed(a) => (
            Got::Admitted(
                a.identity
                    .principal()
                    .map_or_else(|| "<anonymous>".to_owned(), |p| p.id.clone()),
            ),
            String::new(),
        ),
        Outcome::Reject(r) => {
            let text = format!("{:?} {}", r.to_response(), r.body_text());
            let challenge = r.www_authenticate().map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = serde_json::from_str(&r.body_text()).unwrap();
            let code = body["code"].as_str().unwrap_or_default().to_owned();
            let status = r.status().as_u16();
            let expect_challenge = |error: &str| {
                challenge.as_deref().is_some_and(|c| {
                    c.starts_with("Bearer realm=\"aaa\", ")
                        && c.contains(&format!("error=\"{error}\""))
                })
            };
            let got = match (r.kind(), status) {
                (RejectionKind::MissingCredentials, 401)
                    if challenge.as_deref() == Some("Bearer realm=\"aaa\"")
                        && code == "missing_credentials" =>
                {
                    Got::Missing
                }
                (RejectionKind::InvalidRequest, 400)
                    if expect_challenge("invalid_request") && code == "invalid_request" =>
                {
                    Got::InvalidRequest
                }
                (RejectionKind::InvalidToken, 401)
                    if expect_challenge("invalid_token") && code == "invalid_token" =>
                {
                    Got::InvalidToken
                }
                (kind, status) => Got::Odd(format!("{kind:?} {status} {challenge:?} {code}")),
            };
            (got, text)
        }
    }
}

/// Windows of 10 bytes of `secret`, starting every 3 bytes: none may be written anywhere, so no
/// 12 bytes of it are.
fn fragments(secret: &str) -> Vec<&str> {
    (0..=secret.len() - 10)
        .step_by(3)
        .map(|i| &secret[i..i + 10])
        .collect()
}

fn leaks<'a>(text: &str, secrets: &[&'a str]) -> Vec<&'a str> {
    secrets
        .iter()
        .flat_map(|s| fragments(s))
        .filter(|f| text.contains(f))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The model: the credential rules written down again, from the RFCs and aaa's documentation
// ---------------------------------------------------------------------------------------------

/// Why the model refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 400 `invalid_request`: malformed, or two credentials.
    Request,
    /// 401 `invalid_token`: well-formed, but not valid.
    Token,
    /// A bearer token that the JWT rules refuse: 400 or 401 by the JWT authenticator's own
    /// reading (reviewed elsewhere).
    Either,
}

/// What one authenticator's credential says: none, a principal, or a refusal.
type Found = Result<Option<String>, Refusal>;

/// What the model expects of the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    Admitted(String),
    Missing,
    Refused(Refusal),
}

impl Expect {
    fn matches(&self, got: &Got) -> bool {
        match (self, got) {
            (Expect::Admitted(a), Got::Admitted(b)) => a == b,
            (Expect::Missing, Got::Missing)
            | (Expect::Refused(Refusal::Request), Got::InvalidRequest)
            | (Expect::Refused(Refusal::Token), Got::InvalidToken) => true,
            (Expect::Refused(Refusal::Either), g) => {
                matches!(g, Got::InvalidRequest | Got::InvalidToken)
            }
            _ => false,
        }
    }
}

/// The guard runs every authenticator in order; the first refusal is the answer, and two
/// principals are two credentials (400). A forwarded service identity (`forwarded`, asked last)
/// beside one other principal is the hop that relayed that principal's request: the other is
/// admitted.
fn combine(found: &[Found], forwarded: Found) -> Expect {
    let mut who = Vec::new();
    for f in found {
        match f {
            Err(r) => return Expect::Refused(*r),
            Ok(Some(p)) => who.push(p.clone()),
            Ok(None) => {}
        }
    }
    let relay = match forwarded {
        Err(r) => return Expect::Refused(r),
        Ok(relay) => relay,
    };
    match (who.as_slice(), relay) {
        ([], None) => Expect::Missing,
        ([], Some(service)) => Expect::Admitted(service),
        ([one], _) => Expect::Admitted(one.clone()),
        _ => Expect::Refused(Refusal::Request),
    }
}

/// RFC 9110 field-content as aaa reads it: visible ASCII, SP and HTAB.
fn visible(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// RFC 9110 §5.6.2 `tchar`.
fn tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// RFC 6750 §2.1 `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn b64token(s: &[u8]) -> bool {
    let n = s
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(b))
        .count();
    n > 0 && s[n..].iter().all(|&b| b == b'=')
}

/// `credentials = auth-scheme [ 1*SP ( token68 / #auth-param ) ]` (RFC 9110 §11.4), with aaa's
/// documented narrowing for `Bearer`: exactly one SP, then a `b64token`. Other schemes are not
/// bearer credentials.
fn model_bearer_header(values: &[&[u8]]) -> Result<Option<Vec<u8>>, Refusal> {
    let value = match values {
        [] => return Ok(None),
        [one] => *one,
        _ => return Err(Refusal::Request),
    };
    if !visible(value) {
        return Err(Refusal::Request);
    }
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(at) => (&value[..at], Some(&value[at + 1..])),
        None => (value, None),
    };
    if scheme.is_empty() || !scheme.iter().all(|&b| tchar(b)) {
        return Err(Refusal::Request);
    }
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return Ok(None);
    }
    match rest {
        Some(token) if b64token(token) => Ok(Some(token.to_vec())),
        _ => Err(Refusal::Request),
    }
}

/// The token cookie `access_token` (RFC 6265 §5.2 reading: pairs split by `;`, the name and
/// value at the first `=`, the name without the whitespace around it and percent-decoded as
/// actix-web decodes it; a quoted value unquoted). Twice is two credentials; blank is none.
fn model_cookie(values: &[&[u8]]) -> Result<Option<Vec<u8>>, Refusal> {
    let mut seen = false;
    let mut found = None;
    for value in values {
        for pair in value.split(|&b| b == b';') {
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (name, v) = (&pair[..eq], &pair[eq + 1..]);
            let Ok(name) = std::str::from_utf8(name) else {
                continue;
            };
            let name = name.trim();
            if name != "access_token" && percent_decoded(name).as_deref() != Some("access_token") {
                continue;
            }
            if seen {
                return Err(Refusal::Request);
            }
            seen = true;
            if std::str::from_utf8(v).is_err() {
                return Err(Refusal::Request);
            }
            let v = v
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(v);
            if v.is_empty() {
                continue;
            }
            if !b64token(v) {
                return Err(Refusal::Request);
            }
            found = Some(v.to_vec());
        }
    }
    Ok(found)
}

/// `%XX` escapes decoded (RFC 3986 §2.1); `None` when the result is not UTF-8.
fn percent_decoded(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .filter(|h| h.bytes().all(|c| c.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The JWT authenticator's credential: the header's or the cookie's token, never both; only
/// alice's valid token is valid.
fn model_jwt(auth: &[&[u8]], cookies: &[&[u8]], valid: &str) -> Found {
    let header = model_bearer_header(auth)?;
    let cookie = model_cookie(cookies)?;
    let token = match (header, cookie) {
        (Some(_), Some(_)) => return Err(Refusal::Request),
        (Some(t), None) | (None, Some(t)) => t,
        (None, None) => return Ok(None),
    };
    if token == valid.as_bytes() {
        Ok(Some("alice".to_owned()))
    } else {
        Err(Refusal::Either)
    }
}

/// `x-api-key: <prefix>_<id>_<secret>`: the prefix `aaa`, an id of 1 to 64 letters, digits and
/// `-`, a secret of 16 to 256 letters, digits, `-` and `_`. Malformed is 400; a well-formed key
/// that is unknown, wrong, revoked or expired is 401.
fn model_api_key(values: &[&[u8]]) -> Found {
    let value = match values {
        [] => return Ok(None),
        [one] => *one,
        _ => return Err(Refusal::Request),
    };
    if !visible(value) {
        return Err(Refusal::Request);
    }
    let text = std::str::from_utf8(value).unwrap();
    let mut parts = text.splitn(3, '_');
    let (Some(prefix), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(Refusal::Request);
    };
    let id_ok =
        (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let secret_ok = (16..=256).contains(&secret.len())
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !id_ok || !secret_ok {
        return Err(Refusal::Request);
    }
    if prefix != "aaa" {
        // A prefix that is not letters and digits is malformed by the documentation; aaa calls
        // it unknown. Either refusal will do.
        return Err(if prefix.bytes().all(|b| b.is_ascii_alphanumeric()) {
            Refusal::Token
        } else {
            Refusal::Either
        });
    }
    match KEYS.iter().find(|(i, s, _, _)| *i == id && *s == secret) {
        Some((_, _, owner, true)) => Ok(Some((*owner).to_owned())),
        _ => Err(Refusal::Token),
    }
}

/// One `x-forwarded-client-cert` pair as the model reads it.
#[derive(Debug)]
struct XfccPair {
    key: String,
    value: String,
    quoted: bool,
}

/// Envoy's `x-forwarded-client-cert` grammar, from its documentation: elements separated by `,`,
/// `key=value` pairs by `;`; a value holding `,`, `;`, `=` or `"` is double-quoted, with `"`
/// written `\"` (and, in an RFC 2253 subject, `\` written `\\`). Keys are the proxy's words
/// (read without the whitespace around them, case-insensitively); values are the certificate's
/// text, taken byte for byte: Envoy writes no whitespace of its own around them.
fn model_xfcc_elements(text: &str, trim_values: bool) -> Option<Vec<Vec<XfccPair>>> {
    let b = text.as_bytes();
    let n = b.len();
    let mut elements = Vec::new();
    let mut pairs = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        while i < n && !matches!(b[i], b'=' | b';' | b',' | b'"') {
            i += 1;
        }
        if i == n || b[i] != b'=' {
            return None;
        }
        let key = text[start..i].trim_matches([' ', '\t']);
        if key.is_empty() {
            return None;
        }
        i += 1;
        let (value, quoted) = if i < n && b[i] == b'"' {
            i += 1;
            let mut v = Vec::new();
            loop {
                match b.get(i) {
                    None => return None,
                    Some(b'\\') => {
                        v.push(*b.get(i + 1)?);
                        i += 2;
                    }
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(&c) => {
                        v.push(c);
                        i += 1;
                    }
                }
            }
            (String::from_utf8(v).ok()?, true)
        } else {
            let start = i;
            while i < n && !matches!(b[i], b';' | b',') {
                if matches!(b[i], b'"' | b'=') {
                    return None;
                }
                i += 1;
            }
            let v = &text[start..i];
            let v = if trim_values {
                v.trim_matches([' ', '\t'])
            } else {
                v
            };
            (v.to_owned(), false)
        };
        pairs.push(XfccPair {
            key: key.to_ascii_lowercase(),
            value,
            quoted,
        });
        match b.get(i) {
            None => {
                elements.push(pairs);
                return Some(elements);
            }
            Some(b';') => {}
            Some(b',') => elements.push(std::mem::take(&mut pairs)),
            Some(_) => return None,
        }
        i += 1;
    }
}

/// A SPIFFE ID naming a workload (SPIFFE-ID.md §2): `spiffe://`, a trust domain of lowercase
/// letters, digits, `.`, `-` and `_`, and a path of one or more `/segment`s of letters, digits,
/// `.`, `-` and `_`, none `.` or `..`; no port, user info, query or fragment. Returns the trust
/// domain.
fn model_spiffe(id: &str) -> Option<&str> {
    let rest = id.strip_prefix("spiffe://")?;
    let slash = rest.find('/')?;
    let (domain, path) = (&rest[..slash], &rest[slash..]);
    let domain_ok = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b".-_".contains(&b));
    let path_ok = path[1..].split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_".contains(&b))
    });
    (domain_ok && path_ok).then_some(domain)
}

/// What the forwarded-identity authenticator should make of these header lines from a peer:
/// nothing from an untrusted peer; from a trusted one, two lines are two credentials, and one
/// line must be exactly one element with exactly one unquoted `URI` that is a SPIFFE ID of the
/// trust domain `prod`.
fn model_forwarded(values: &[&[u8]], trusted: bool, trim_values: bool) -> Found {
    let value = match values {
        [] => return Ok(None),
        _ if !trusted => return Ok(None),
        [one] => *one,
        _ => return Err(Refusal::Request),
    };
    let refused = Err(Refusal::Token);
    if !visible(value) {
        return refused;
    }
    let Some(elements) = model_xfcc_elements(std::str::from_utf8(value).unwrap(), trim_values)
    else {
        return refused;
    };
    let [element] = elements.as_slice() else {
        return refused;
    };
    let uris: Vec<&XfccPair> = element.iter().filter(|p| p.key == "uri").collect();
    let [uri] = uris.as_slice() else {
        return refused;
    };
    match model_spiffe(&uri.value) {
        Some("prod") if !uri.quoted => Ok(Some(uri.value.clone())),
        _ => refused,
    }
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/// A token-ish credential, often almost alice's token.
fn gen_token(rng: &mut Rng, jwt: &str) -> Vec<u8> {
    let mut t = jwt.as_bytes().to_vec();
    match rng.below(24) {
        0..=7 => {}
        8 => {
            let at = rng.below(t.len());
            t[at] = rng.pick(b"A.-_~+/=%, \"\\");
        }
        9 => t.extend_from_slice(b"=="),
        10 => {
            t.insert(0, b'"');
            t.push(b'"');
        }
        11 => t = jwt.replace('.', "%2E").into_bytes(),
        12 => {
            use base64::Engine as _;
            t = base64::engine::general_purpose::STANDARD
                .encode(jwt)
                .into_bytes();
        }
        13 => t = key("ci", SECRET).into_bytes(),
        14 => {
            t = rng
                .pick(&[&b""[..], b"abc", b"a=b", b"===", b"abc==", b"=abc"])
                .to_vec()
        }
        15 => t = vec![b'a'; 20_000],
        16 => t = "\u{e9}".as_bytes().to_vec(),
        17 => t.truncate(rng.below(t.len())),
        18 => t.push(b'.'),
        19 => t.insert(
            rng.below(t.len()),
            rng.pick(&[0x01, 0x7f, 0x80, 0xff, b'\t']),
        ),
        20 => t = jwt.to_ascii_uppercase().into_bytes(),
        21 => t.splice(0..0, b"Bearer ".iter().copied()).for_each(drop),
        _ => t = format!("{jwt}, Bearer {jwt}").into_bytes(),
    }
    t
}

fn gen_authorization(rng: &mut Rng, jwt: &str) -> Vec<u8> {
    let scheme: &[u8] = rng.pick(&[
        &b"Bearer"[..],
        b"Bearer",
        b"Bearer",
        b"bearer",
        b"BEARER",
        b"bEaReR",
        b"Bearer:",
        b"Bearerx",
        b"Beare",
        b"Basic",
        b"ApiKey",
        b"Token",
        b"",
        b"B\xc3\xa9arer",
        b"Bear er",
        b"\tBearer",
        b" Bearer",
        b"Bearer,",
    ]);
    let sep: &[u8] = rng.pick(&[
        &b" "[..],
        b" ",
        b" ",
        b" ",
        b" ",
        b"  ",
        b"\t",
        b"",
        b" \t",
        b",",
        b"=",
        b", ",
    ]);
    let tail: &[u8] = rng.pick(&[
        &b""[..],
        b"",
        b"",
        b"",
        b"",
        b"",
        b" ",
        b"\t",
        b", Basic eA==",
        b",",
        b" realm=\"x\"",
    ]);
    [scheme, sep, &gen_token(rng, jwt), tail].concat()
}

/// One Unicode look-alike of a character of a key, or the character itself.
fn look_alike(c: char) -> &'static str {
    match c {
        'a' => "\u{430}",
        'c' => "\u{441}",
        'e' => "\u{435}",
        'i' => "\u{456}",
        'o' => "\u{43e}",
        '_' => "\u{ff3f}",
        '-' => "\u{2010}",
        '0' => "\u{41e}",
        _ => "\u{ff41}",
    }
}

/// A near miss of a valid key: each is a different key, or no key at all.
fn near_miss(rng: &mut Rng, valid: &str) -> Vec<u8> {
    let mut k = valid.as_bytes().to_vec();
    match rng.below(16) {
        0 => {
            let at = rng.below(k.len());
            k[at] ^= 1 << rng.below(7);
        }
        1 => {
            let at = rng.below(k.len());
            k[at] = if k[at].is_ascii_uppercase() {
                k[at].to_ascii_lowercase()
            } else {
                k[at].to_ascii_uppercase()
            };
        }
        2 => k.truncate(rng.below(k.len())),
        3 => k.push(rng.pick(b"A0-_=. \t")),
        4 => {
            let at = rng.below(k.len());
            k.remove(at);
        }
        5 => k.insert(rng.below(k.len()), rng.pick(b"A0-_")),
        6 => k.push(rng.pick(&[b'\n', 0, b'\r', 0x7f, 0x80])),
        7 => {
            let chars: Vec<char> = valid.chars().collect();
            let at = rng.below(chars.len());
            let mut s = String::new();
            for (i, c) in chars.iter().enumerate() {
                if i == at {
                    s.push_str(look_alike(*c));
                } else {
                    s.push(*c);
                }
            }
            k = s.into_bytes();
        }
        8 => k = valid.replace('-', "+").replace('_', "/").into_bytes(),
        9 => k.extend_from_slice(b"=="),
        10 => k = valid.replacen("aaa_", "AAA_", 1).into_bytes(),
        11 => k = format!("ApiKey {valid}").into_bytes(),
        12 => k = format!("{valid},{valid}").into_bytes(),
        13 => {
            // Another key's id with this secret, or this id with another's secret.
            let (id, secret, _, _) = rng.pick(KEYS);
            let mut parts = valid.splitn(3, '_');
            let (_, vid, vsecret) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
            k = if rng.chance(50) {
                key(id, vsecret)
            } else {
                key(vid, secret)
            }
            .into_bytes();
        }
        14 => {
            // A percent-encoded byte of the key.
            let at = valid.rfind('_').unwrap() + 1 + rng.below(8);
            k = format!("{}%{:02X}{}", &valid[..at], k[at], &valid[at + 1..]).into_bytes();
        }
        _ => k = format!("aaa_ci_{}", "A".repeat(257)).into_bytes(),
    }
    k
}

fn gen_api_key(rng: &mut Rng, jwt: &str) -> Vec<u8> {
    let (id, secret, _, _) = rng.pick(KEYS);
    let valid = key(id, secret);
    match rng.below(6) {
        0 | 1 => valid.into_bytes(),
        2 | 3 => near_miss(rng, &valid),
        4 => jwt.as_bytes().to_vec(),
        _ => rng
            .pick(&[&b""[..], b"aaa_ci", b"aaa__x", b" ", b"aaa_ci_short"])
            .to_vec(),
    }
}

fn gen_cookie(rng: &mut Rng, jwt: &str) -> Vec<u8> {
    let t = gen_token(rng, jwt);
    let t = String::from_utf8_lossy(&t).into_owned();
    let template = rng.pick(&[
        "access_token={t}",
        "access_token={t}",
        "theme=dark; access_token={t}",
        "access_token=\"{t}\"",
        "access_token=",
        "access_token=\"\"",
        "access_token =x{t}",
        " access_token={t}",
        "%61ccess_token={t}",
        "access_token={t}; access_token={t}",
        "access_token=; access_token={t}",
        "access_tokens={t}",
        "Access_token={t}",
        "access_token=a b",
        "x=\u{e9}; access_token={t}",
        "access_token",
        "access_token={t}; theme=\u{e9}",
    ]);
    template.replace("{t}", &t).into_bytes()
}

/// Serializes one XFCC value the way it is quoted or not.
fn xfcc_value(rng: &mut Rng, value: &str, quote: bool) -> String {
    if !quote {
        return value.to_owned();
    }
    if rng.chance(85) {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        format!("\"{value}\"")
    }
}

/// What a certificate can put in a URI SAN.
const URI_SANS: &[&str] = &[
    "spiffe://prod/ns/b/sa/worker",
    "spiffe://prod/ns/b/sa/worker",
    "spiffe://prod/ns/b/sa/worker",
    "spiffe://prod/ns/admin/sa/root",
    "spiffe://prod/a.b-c_d/e",
    "spiffe://other/ns/b/sa/worker",
    "spiffe://prod",
    "spiffe://prod/",
    "spiffe://PROD/a",
    "spiffe://prod/a/../b",
    "spiffe://prod/./a",
    "spiffe://prod//a",
    "spiffe://prod/a/",
    "spiffe://prod/a?x",
    "spiffe://prod/a#x",
    "spiffe://prod:8443/a",
    "spiffe://u@prod/a",
    "spiffe://prod/a%2Fb",
    "spiffe://prod/caf\u{e9}",
    "SPIFFE://prod/a",
    "https://prod/a",
    "spiffe:/prod/a",
    "",
    " spiffe://prod/ns/admin/sa/root",
    "spiffe://prod/ns/admin/sa/root ",
    "\tspiffe://prod/ns/admin/sa/root",
    "spiffe://prod/a b",
    "spiffe://prod/a;URI=spiffe://prod/ns/admin/sa/root",
    "spiffe://prod/a,URI=spiffe://prod/ns/admin/sa/root",
    "spiffe://prod/a\"",
    "\"spiffe://prod/a\"",
    "spiffe://prod/a=b",
    "spiffe://prod/a\\b",
];

/// What a certificate or the proxy can put in the other fields.
const OTHER_VALUES: &[&str] = &[
    "worker.prod.svc",
    "*.prod.svc",
    "CN=worker,OU=jobs,O=prod",
    "CN=w\\, inc.,O=\\\"q\\\"",
    "468ed33be74eee6556d90c0149c1309e9ba61d6425303443c0748a02dd8de688",
    "a;URI=spiffe://prod/ns/admin/sa/root",
    "x,URI=spiffe://prod/ns/admin/sa/root",
    "-----BEGIN%20CERTIFICATE-----%0AMIIB%0A-----END%20CERTIFICATE-----%0A",
    "spiffe://prod/ns/a/sa/api",
    "",
    "a\"b",
];

const XFCC_KEYS: &[&str] = &[
    "By", "Hash", "Cert", "Chain", "Subject", "URI", "DNS", "uri", "Uri", " URI", "URI\t", "URI2",
    "XURI", "U RI", "DNS",
];

/// One XFCC element: as Envoy writes it (its fields in its order, the subject and certificate
/// quoted, URI and DNS raw), or pairs in any order and spelling.
fn gen_xfcc_element(rng: &mut Rng) -> String {
    let mut pairs: Vec<String> = Vec::new();
    if rng.chance(50) {
        if rng.chance(60) {
            pairs.push("By=spiffe://prod/ns/a/sa/api".to_owned());
        }
        pairs.push(format!("Hash={}", OTHER_VALUES[4]));
        if rng.chance(30) {
            pairs.push(format!("Cert=\"{}\"", OTHER_VALUES[7]));
        }
        if rng.chance(40) {
            let subject = rng.pick(&[OTHER_VALUES[2], OTHER_VALUES[3], "CN=a\"b"]);
            let v = xfcc_value(rng, subject, true);
            pairs.push(format!("Subject={v}"));
        }
        let uris = match rng.below(10) {
            0 => 0,
            1 => 2,
            _ => 1,
        };
        for _ in 0..uris {
            let san = rng.pick(URI_SANS);
            let quote = rng.chance(10);
            let v = xfcc_value(rng, san, quote);
            pairs.push(format!("URI={v}"));
        }
        if uris == 0 && rng.chance(50) {
            pairs.push("URI=".to_owned());
        }
        for _ in 0..rng.below(3) {
            let dns = rng.pick(&[
                "worker.prod.svc",
                "*.prod.svc",
                OTHER_VALUES[5],
                OTHER_VALUES[6],
            ]);
            pairs.push(format!("DNS={dns}"));
        }
    } else {
        for _ in 0..1 + rng.below(4) {
            let k = rng.pick(XFCC_KEYS);
            let raw = if k.trim().eq_ignore_ascii_case("uri") || rng.chance(30) {
                rng.pick(URI_SANS)
            } else {
                rng.pick(OTHER_VALUES)
            };
            let quote = rng.chance(25);
            let v = xfcc_value(rng, raw, quote);
            pairs.push(format!("{k}={v}"));
        }
    }
    pairs.join(";")
}

fn gen_xfcc(rng: &mut Rng) -> Vec<u8> {
    let elements = if rng.chance(88) { 1 } else { 2 };
    let mut text: Vec<u8> = (0..elements)
        .map(|_| gen_xfcc_element(rng))
        .collect::<Vec<_>>()
        .join(",")
        .into_bytes();
    if rng.chance(20) {
        for _ in 0..1 + rng.below(2) {
            match rng.below(3) {
                0 if !text.is_empty() => {
                    let at = rng.below(text.len());
                    text.remove(at);
                }
                _ => {
                    let at = rng.below(text.len() + 1);
                    text.insert(at, rng.pick(b",;=\"\\ \taU/"));
                }
            }
        }
    }
    text
}

// ---------------------------------------------------------------------------------------------
// The guard against the model
// ---------------------------------------------------------------------------------------------

/// The records one request left: one, saying what the answer says (who was let through, the
/// denial of an anonymous caller, or the authentication failure and its reason).
fn records_say(new: &[AuditEvent], got: &Got) -> Result<(), String> {
    use aaa::{Decision, audit::AuthnOutcome};
    let [event] = new else {
        return Err(format!("{} records", new.len()));
    };
    let actor = event.actor.as_ref().map(|a| a.id.as_str());
    let ok = match (&event.kind, got) {
        (
            EventKind::Authorization {
                decision: Decision::Allow,
                ..
            },
            Got::Admitted(id),
        ) => actor == Some(id.as_str()),
        (
            EventKind::Authorization {
                decision: Decision::Deny,
                ..
            },
            Got::Missing,
        ) => actor.is_none(),
        (
            EventKind::Authentication {
                outcome: AuthnOutcome::Failure,
                reason: Some(reason),
            },
            Got::InvalidRequest,
        ) => actor.is_none() && (reason == "malformed" || reason == "multiple_credentials"),
        (
            EventKind::Authentication {
                outcome: AuthnOutcome::Failure,
                reason: Some(reason),
            },
            Got::InvalidToken,
        ) => actor.is_none() && reason == "invalid",
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("recorded {:?} with actor {actor:?}", event.kind))
    }
}

/// XFCC values for the guard test, with the model's reading (the XFCC grammar itself is
/// generated in `xfcc_mutants_…`).
const GUARD_XFCC: &[&str] = &[
    "URI=spiffe://prod/ns/b/sa/worker",
    "By=spiffe://prod/ns/a/sa/api;Hash=ab;Subject=\"CN=w,O=p\";URI=spiffe://prod/ns/admin/sa/root",
    "URI=spiffe://other/ns/b/sa/worker",
    "URI=spiffe://prod/a,URI=spiffe://prod/b",
    "Hash=ab;DNS=\"a;URI=spiffe://prod/x\"",
    "",
];

/// Thousands of generated requests (several `Authorization` headers or none, scheme spellings,
/// spacing, commas, quotes, padding, percent- and base64-confusion, control and non-ASCII
/// bytes, 20 kB tokens; API keys and their near misses; token cookies; forwarded identities from
/// trusted and untrusted peers) get exactly the model's answer: admitted as the model's
/// principal, or the model's typed refusal with its RFC 6750 challenge, recorded once, with no
/// secret in the answer or the records.
#[tokio::test]
async fn generated_credentials_get_the_model_s_answer() {
    const REQUESTS: usize = 3000;
    let (g, audit) = guard();
    let jwt = alice_token();
    let signature = jwt.rsplit('.').next().unwrap().to_owned();
    let secrets = [SECRET, OTHER, REVOKED, EXPIRED, signature.as_str()];
    let mut rng = Rng(0xC4ED_0001_2026_1203);
    let mut failures = Vec::new();
    let mut tally: std::collections::BTreeMap<String, usize> = Default::default();
    let mut skipped = 0;
    for n in 0..REQUESTS {
        let count = |rng: &mut Rng, weights: [u64; 2]| {
            let r = rng.next() % 100;
            usize::from(r >= weights[0]) + usize::from(r >= weights[1])
        };
        let auth: Vec<Vec<u8>> = (0..count(&mut rng, [30, 92]))
            .map(|_| gen_authorization(&mut rng, &jwt))
            .collect();
        let keys: Vec<Vec<u8>> = (0..count(&mut rng, [60, 95]))
            .map(|_| gen_api_key(&mut rng, &jwt))
            .collect();
        let cookies: Vec<Vec<u8>> = (0..count(&mut rng, [70, 95]))
            .map(|_| gen_cookie(&mut rng, &jwt))
            .collect();
        let xfcc: Vec<Vec<u8>> = (0..count(&mut rng, [80, 98]))
            .map(|_| rng.pick(GUARD_XFCC).as_bytes().to_vec())
            .collect();
        let trusted = rng.chance(70);
        let peer: SocketAddr = if trusted {
            "10.1.2.3:4444".parse().unwrap()
        } else {
            "192.0.2.1:4444".parse().unwrap()
        };
        let mut lines: Vec<(&str, Vec<u8>)> = Vec::new();
        lines.extend(auth.iter().map(|v| ("authorization", v.clone())));
        lines.extend(keys.iter().map(|v| ("x-api-key", v.clone())));
        lines.extend(cookies.iter().map(|v| ("cookie", v.clone())));
        lines.extend(xfcc.iter().map(|v| ("x-forwarded-client-cert", v.clone())));
        let Some(facts) = request(&lines, peer) else {
            // A control byte: no HTTP server passes such a header on.
            skipped += 1;
            continue;
        };
        let expect = combine(
            &[
                model_jwt(&slices(&auth), &slices(&cookies), &jwt),
                model_api_key(&slices(&keys)),
            ],
            model_forwarded(&slices(&xfcc), trusted, false),
        );
        let (got, text) = ask(&g, &facts).await;
        let records = audit.take();
        *tally.entry(format!("{got:?}")).or_default() += 1;
        let show = || {
            lines
                .iter()
                .map(|(n, v)| {
                    let v = String::from_utf8_lossy(v);
                    let v: String = v.chars().take(160).collect();
                    format!("{n}: {v:?}")
                })
                .collect::<Vec<_>>()
                .join(" | ")
        };
        if !expect.matches(&got) {
            failures.push(format!(
                "#{n} expected {expect:?}, got {got:?}\n  {}",
                show()
            ));
        }
        if let Err(e) = records_say(&records, &got) {
            failures.push(format!("#{n} {got:?} but {e}\n  {}", show()));
        }
        let records = serde_json::to_string(&records).unwrap();
        let leaked = leaks(&format!("{text}{records}"), &secrets);
        if !leaked.is_empty() {
            failures.push(format!("#{n} the answer or its record holds {leaked:?}"));
        }
    }
    eprintln!("{REQUESTS} requests ({skipped} not sendable): {tally:?}");
    assert!(
        tally.len() >= 5,
        "the generator reaches every kind of answer: {tally:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {REQUESTS} requests differ from the model:\n{}",
        failures.len(),
        failures[..failures.len().min(25)].join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Forwarded identities against the model of Envoy's header
// ---------------------------------------------------------------------------------------------

/// A request carrying these `x-forwarded-client-cert` lines from `peer`.
fn xfcc_request(values: &[Vec<u8>], peer: Option<&str>) -> Option<RequestFacts> {
    let mut h = HeaderMap::new();
    for v in values {
        h.append("x-forwarded-client-cert", HeaderValue::from_bytes(v).ok()?);
    }
    let facts = RequestFacts::new(http::Method::GET, "/").with_headers(h);
    Some(match peer {
        Some(p) => facts.with_peer(p.parse().unwrap()),
        None => facts,
    })
}

/// What the authenticator made of a request, as the model says it.
async fn forwarded_found(a: &ForwardedIdentityAuthenticator, facts: &RequestFacts) -> Found {
    match a.authenticate(facts).await {
        Ok(Identity::Anonymous) => Ok(None),
        Ok(Identity::Authenticated(p)) => {
            assert_eq!(p.kind, PrincipalKind::Service, "{p:?}");
            assert_eq!(p.issuer, "spiffe://prod", "{p:?}");
            assert_eq!(p.auth.method, AuthMethod::ForwardedMtls, "{p:?}");
            assert_eq!(
                p.auth.credential,
                CredentialRef::KeyId(p.id.clone()),
                "{p:?}"
            );
            Ok(Some(p.id.clone()))
        }
        Err(aaa::AuthnError::MultipleCredentials) => Err(Refusal::Request),
        Err(aaa::AuthnError::Invalid(_)) => Err(Refusal::Token),
        Err(e) => panic!("an unexpected refusal: {e:?}"),
    }
}

/// Generated `x-forwarded-client-cert` headers (as Envoy writes them, and mutants: several
/// elements, quoting with and without escapes, `,` `;` `=` `"` inside values, duplicate and
/// re-cased keys, empty values, stray bytes, two header lines) from trusted and untrusted peers
/// (IPv4, IPv4-mapped IPv6, IPv6). From an untrusted peer nothing is believed (and each attempt
/// counted); from a trusted one, aaa yields exactly the SPIFFE ID the model of Envoy's format
/// yields, or refuses it, and never an identity the model does not see.
///
/// The one way aaa reads more than the model (a URI SAN with whitespace around it) is counted
/// here and asserted by `xfcc_uri_san_with_whitespace_around_it_is_not_that_spiffe_id`.
#[tokio::test]
async fn xfcc_mutants_get_the_envoy_model_s_identity_or_a_refusal() {
    const REQUESTS: usize = 6000;
    let a = forwarded();
    let mut rng = Rng(0xC4ED_0002_2026_1203);
    let mut failures = Vec::new();
    let mut tally: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut untrusted_with_header = 0;
    let mut trimmed = Vec::new();
    for n in 0..REQUESTS {
        let values: Vec<Vec<u8>> = (0..if rng.chance(93) { 1 } else { 2 })
            .map(|_| gen_xfcc(&mut rng))
            .collect();
        let (peer, trusted) = rng.pick(&[
            (Some("10.1.2.3:4444"), true),
            (Some("10.1.2.3:4444"), true),
            (Some("10.1.2.3:4444"), true),
            (Some("10.1.2.3:4444"), true),
            (Some("10.1.2.3:4444"), true),
            (Some("10.1.2.3:4444"), true),
            (Some("10.1.2.3:4444"), true),
            (Some("10.1.2.3:4444"), true),
            (Some("10.1.2.3:4444"), true),
            (Some("10.1.2.3:4444"), true),
            (Some("10.255.0.1:1"), true),
            (Some("[::ffff:10.9.9.9]:1"), true),
            (Some("192.0.2.1:4444"), false),
            (Some("[::ffff:192.0.2.1]:1"), false),
            (Some("[2001:db8::1]:443"), false),
            (Some("[::10.1.2.3]:443"), false),
            (None, false),
        ]);
        let Some(facts) = xfcc_request(&values, peer) else {
            continue;
        };
        untrusted_with_header += usize::from(!trusted);
        let expect = model_forwarded(&slices(&values), trusted, false);
        let got = forwarded_found(&a, &facts).await;
        *tally
            .entry(match &got {
                Ok(None) => "anonymous",
                Ok(Some(_)) => "identity",
                Err(Refusal::Request) => "two lines",
                Err(_) => "refused",
            })
            .or_default() += 1;
        let ok = match (&expect, &got) {
            (Ok(e), Ok(g)) if e == g => true,
            // Refusing what the model would accept is safe (and never happened here).
            (Ok(Some(_)), Err(_)) => false,
            (Err(e), Err(g)) => e == g,
            (Err(_), Ok(Some(id))) => {
                // Read with the values trimmed, the model finds the same identity: the
                // whitespace finding.
                let lenient = model_forwarded(&slices(&values), trusted, true);
                if lenient == Ok(Some(id.clone())) {
                    trimmed.push(String::from_utf8_lossy(&values[0]).into_owned());
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "#{n} from {peer:?}: the model says {expect:?}, aaa {got:?}\n  {:?}",
                values
                    .iter()
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .collect::<Vec<_>>()
            ));
        }
    }
    eprintln!(
        "{REQUESTS} headers: {tally:?}; identities only a trimming reading finds: {}",
        trimmed.len()
    );
    assert_eq!(a.ignored_attempts(), untrusted_with_header as u64);
    // Whitespace around a value is refused since the fix: no identity is found only by trimming.
    assert!(trimmed.is_empty(), "{trimmed:#?}");
    assert!(
        tally.get("identity").copied().unwrap_or(0) > 150,
        "{tally:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {REQUESTS} differ from the model:\n{}",
        failures.len(),
        failures[..failures.len().min(25)].join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// API keys: near misses, both transports
// ---------------------------------------------------------------------------------------------

/// `Authorization: ApiKey <key>` (the scheme in any case, one space, a key without spaces), as
/// aaa documents it for `ApiKeyConfig::header = "authorization"`; another scheme is no key.
fn model_api_key_authorization(values: &[&[u8]]) -> Found {
    let value = match values {
        [] => return Ok(None),
        [one] => *one,
        _ => return Err(Refusal::Request),
    };
    if !visible(value) {
        return Err(Refusal::Request);
    }
    let (scheme, rest) = match value.iter().position(|&b| b == b' ') {
        Some(at) => (&value[..at], Some(&value[at + 1..])),
        None => (value, None),
    };
    if scheme.is_empty() || !scheme.iter().all(|&b| tchar(b)) {
        return Err(Refusal::Request);
    }
    if !scheme.eq_ignore_ascii_case(b"apikey") {
        return Ok(None);
    }
    match rest {
        Some(key) if !key.is_empty() && !key.contains(&b' ') => model_api_key(&[key]),
        _ => Err(Refusal::Request),
    }
}

/// Near misses of every configured key (a bit flipped, a letter re-cased, cut short, a byte
/// added or removed, trailing whitespace, newline, NUL or DEL, a Unicode look-alike, base64 or
/// percent confusion, another key's id or secret, the revoked and the expired key) never
/// authenticate, through the guard (`x-api-key`) and through `Authorization: ApiKey`; each exact
/// usable key authenticates its own owner, with its tenant, roles and key id, and nothing else.
#[tokio::test]
async fn api_key_near_misses_never_authenticate() {
    const PER_KEY: usize = 400;
    let (g, audit) = guard();
    let mut by_scheme = ApiKeyConfig::new("aaa", []);
    by_scheme.header = "authorization".to_owned();
    let scheme_authn = ApiKeyAuthenticator::new(by_scheme, Arc::new(clock())).unwrap();
    scheme_authn
        .replace_keys(vec![ApiKeyRecord::new("ci", "ci-runner", SECRET)])
        .unwrap();
    let mut rng = Rng(0xC4ED_0003_2026_1203);
    let mut failures = Vec::new();
    let mut admitted = 0;
    let peer: SocketAddr = "192.0.2.1:1".parse().unwrap();
    for &(id, secret, owner, usable) in KEYS {
        let valid = key(id, secret);
        for i in 0..PER_KEY {
            let presented = if i == 0 {
                valid.as_bytes().to_vec()
            } else {
                near_miss(&mut rng, &valid)
            };
            // A re-cased digit, or another key's id and secret picked together, is no miss.
            if i > 0 && KEYS.iter().any(|k| key(k.0, k.1).as_bytes() == presented) {
                continue;
            }
            let Some(facts) = request(&[("x-api-key", presented.clone())], peer) else {
                continue;
            };
            let expect = combine(&[model_api_key(&[&presented])], Ok(None));
            let outcome = g.check(&facts).await;
            let records = serde_json::to_string(&audit.take()).unwrap();
            let show = String::from_utf8_lossy(&presented).into_owned();
            match outcome {
                Outcome::Proceed(a) => {
                    admitted += 1;
                    let p = a.identity.principal().unwrap();
                    let right = presented == valid.as_bytes()
                        && usable
                        && p.id == owner
                        && p.kind == PrincipalKind::Service
                        && p.issuer == aaa::authn::API_KEY_ISSUER
                        && p.auth.method == AuthMethod::ApiKey
                        && p.auth.credential == CredentialRef::KeyId(id.to_owned())
                        && (id != "ci"
                            || (p.tenant.as_deref() == Some("acme")
                                && p.roles.iter().eq(["deployer"])))
                        && (id != "billing" || p.tenant.as_deref() == Some("globex"));
                    if !right {
                        failures.push(format!("{show:?} authenticated as {p:?}"));
                    }
                }
                Outcome::Reject(r) => {
                    let text = format!("{:?} {}", r.to_response(), r.body_text());
                    let got = match r.kind() {
                        RejectionKind::InvalidRequest => Got::InvalidRequest,
                        RejectionKind::InvalidToken => Got::InvalidToken,
                        RejectionKind::MissingCredentials => Got::Missing,
                        k => Got::Odd(format!("{k:?}")),
                    };
                    if !expect.matches(&got) {
                        failures.push(format!("{show:?}: expected {expect:?}, got {got:?}"));
                    }
                    let leaked = leaks(&format!("{text}{records}"), &[secret]);
                    if !leaked.is_empty() {
                        failures.push(format!("{show:?}: the answer or record holds {leaked:?}"));
                    }
                }
            }
            if id != "ci" {
                continue;
            }
            // The same key through `Authorization: ApiKey`, the scheme and spacing varied.
            let scheme: &[u8] = rng.pick(&[
                &b"ApiKey"[..],
                b"ApiKey",
                b"apikey",
                b"APIKEY",
                b"Api-Key",
                b"Bearer",
            ]);
            let sep: &[u8] = rng.pick(&[&b" "[..], b" ", b" ", b"  ", b"\t", b""]);
            let line = [scheme, sep, &presented].concat();
            let Some(facts) = request(&[("authorization", line.clone())], peer) else {
                continue;
            };
            let expect = model_api_key_authorization(&[&line]);
            let got = match scheme_authn.authenticate(&facts).await {
                Ok(Identity::Anonymous) => Ok(None),
                Ok(Identity::Authenticated(p)) => Ok(Some(p.id.clone())),
                Err(aaa::AuthnError::Invalid(_)) => Err(Refusal::Token),
                Err(_) => Err(Refusal::Request),
            };
            let agrees = match (&expect, &got) {
                (Err(Refusal::Either), Err(_)) => true,
                (e, g) => e == g,
            };
            if !agrees {
                failures.push(format!(
                    "{:?}: expected {expect:?}, got {got:?}",
                    String::from_utf8_lossy(&line)
                ));
            }
        }
    }
    assert_eq!(admitted, 2, "only the two usable keys, each once");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures[..failures.len().min(25)].join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Trusted proxies: address forms and ports
// ---------------------------------------------------------------------------------------------

async fn identity_from(config: ForwardedIdentityConfig, peer: Option<&str>) -> Found {
    let a = ForwardedIdentityAuthenticator::new(config, Arc::new(clock()));
    let facts = xfcc_request(&[b"URI=spiffe://prod/ns/b/sa/worker".to_vec()], peer).unwrap();
    forwarded_found(&a, &facts).await
}

/// The proxy list is matched on the peer's IP address, whatever its port; an IPv4 peer arriving
/// on a dual-stack listener (`::ffff:a.b.c.d`) is that IPv4 address, and no other IPv6 form of an
/// IPv4 address (IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`) is; a missing peer is not
/// trusted.
#[tokio::test]
async fn trusted_proxies_are_matched_by_address_whatever_the_port() {
    let worker = Ok(Some("spiffe://prod/ns/b/sa/worker".to_owned()));
    let v4 = || ForwardedIdentityConfig::new(["10.0.0.0/8".parse().unwrap()]);
    for (peer, expect) in [
        ("10.1.2.3:1", &worker),
        ("10.1.2.3:65535", &worker),
        ("10.255.255.255:443", &worker),
        ("[::ffff:10.1.2.3]:8080", &worker),
        ("[::ffff:a01:203]:8080", &worker),
        ("11.0.0.1:1", &Ok(None)),
        ("9.255.255.255:1", &Ok(None)),
        ("[::ffff:192.0.2.1]:1", &Ok(None)),
        ("[::10.1.2.3]:1", &Ok(None)),
        ("[64:ff9b::a01:203]:1", &Ok(None)),
        ("[2001:db8::a01:203]:1", &Ok(None)),
    ] {
        assert_eq!(&identity_from(v4(), Some(peer)).await, expect, "{peer}");
    }
    assert_eq!(identity_from(v4(), None).await, Ok(None));
    let v6 = || ForwardedIdentityConfig::new(["2001:db8::/64".parse().unwrap()]);
    assert_eq!(identity_from(v6(), Some("[2001:db8::7]:1")).await, worker);
    assert_eq!(
        identity_from(v6(), Some("[2001:db8:0:1::7]:1")).await,
        Ok(None)
    );
    // Nothing configured: nothing trusted, not even loopback.
    let none = || ForwardedIdentityConfig::new([]);
    assert_eq!(identity_from(none(), Some("127.0.0.1:1")).await, Ok(None));
    assert_eq!(identity_from(none(), Some("[::1]:1")).await, Ok(None));
}

// ---------------------------------------------------------------------------------------------
// Over HTTP: the demo on both adapters, and its real audit files
// ---------------------------------------------------------------------------------------------

/// Through the docs demo on axum and on actix-web: the demo's API key authenticates the
/// indexer; generated near misses of it are refused with a typed 400/401 and its challenge (or
/// refused by the HTTP server before aaa, unrecorded); a key or token in the query, a token
/// cookie the demo does not read, or the key under another scheme authenticate nobody; and no
/// 12 bytes of the secret appear in any answer or in the signed audit log's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_keys_over_http_never_leak_and_near_misses_never_authenticate() {
    const MISSES: usize = 60;
    for running in [
        crate::docs_demo::axum().await,
        crate::docs_demo::actix().await,
    ] {
        let name = running.name;
        let valid = running.demo.indexer_key.clone();
        let secret = valid.rsplit('_').next().unwrap().to_owned();
        let alice = running
            .demo
            .idp
            .token("alice", false, running.demo.now())
            .unwrap();
        let mut rng = Rng(0xC4ED_0004_2026_1203);
        let mut answers = String::new();
        let mut failures = Vec::new();
        let mut ask = async |target: &str, line: Vec<u8>| {
            let mut raw = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n")
                .into_bytes();
            raw.extend_from_slice(&line);
            raw.extend_from_slice(b"\r\n\r\n");
            let before = running.events.events().len();
            let reply = crate::adapters::exchange(None, running.addr, &raw).await;
            let mut actors: Vec<String> = running.events.events()[before..]
                .iter()
                .filter_map(|e| e.actor.as_ref().map(|a| a.id.clone()))
                .collect();
            actors.dedup();
            answers.push_str(&reply.head);
            answers.push_str(&reply.body);
            (reply, actors)
        };
        let (reply, actors) = ask("/docs/d3", format!("x-api-key: {valid}").into_bytes()).await;
        assert_eq!(
            (reply.status, actors.as_slice()),
            (200, &["indexer".to_owned()][..])
        );
        let (reply, actors) = ask("/docs/d3", format!("X-API-KEY: {valid}").into_bytes()).await;
        assert_eq!(
            (reply.status, actors.len()),
            (200, 1),
            "[{name}] a header name's case"
        );
        let mut sent = 0;
        while sent < MISSES {
            let miss = near_miss(&mut rng, &valid);
            // A CR or LF ends the header line (HTTP framing, not the key), and a re-cased digit
            // is the key itself.
            if miss.contains(&b'\r') || miss.contains(&b'\n') || miss == valid.as_bytes() {
                continue;
            }
            sent += 1;
            let (reply, actors) = ask("/docs/d3", [&b"x-api-key: "[..], &miss].concat()).await;
            let challenge = reply
                .header("www-authenticate")
                .unwrap_or_default()
                .to_owned();
            let typed = match reply.status {
                400 => challenge.contains("error=\"invalid_request\""),
                401 => challenge.contains("error=\"invalid_token\""),
                _ => false,
            } && challenge.starts_with("Bearer realm=\"docs\"");
            // The HTTP server's own 400 for a byte it does not pass on: nothing was recorded.
            let before_aaa = reply.status == 400 && challenge.is_empty();
            if !actors.is_empty() || !(typed || before_aaa) {
                failures.push(format!(
                    "[{name}] {:?} -> {} {challenge:?} as {actors:?}",
                    String::from_utf8_lossy(&miss),
                    reply.status
                ));
            }
        }
        let elsewhere = [
            format!("/docs/d3?access_token={alice}"),
            format!("/docs/d3?api_key={valid}"),
            format!("/docs/d3?x-api-key={valid}"),
        ];
        for target in &elsewhere {
            let (reply, actors) = ask(target, b"x-note: 1".to_vec()).await;
            if (reply.status, reply.header("www-authenticate"), actors.len())
                != (401, Some("Bearer realm=\"docs\""), 0)
            {
                failures.push(format!("[{name}] {target} -> {} {actors:?}", reply.status));
            }
        }
        for line in [
            format!("Cookie: access_token={alice}"),
            format!("Authorization: ApiKey {valid}"),
            format!("Proxy-Authorization: Bearer {alice}"),
            format!("x-api-key-2: {valid}"),
        ] {
            let (reply, actors) = ask("/docs/d3", line.clone().into_bytes()).await;
            if (reply.status, actors.len()) != (401, 0) {
                failures.push(format!("[{name}] {line} -> {} {actors:?}", reply.status));
            }
        }
        running.verify_log().await;
        let log = running.log_text();
        assert!(
            log.contains("\"indexer\""),
            "[{name}] the log records the indexer"
        );
        let leaked = leaks(&format!("{answers}{log}"), &[&secret]);
        assert!(
            leaked.is_empty(),
            "[{name}] the secret's bytes {leaked:?} were written"
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }
}
// ---------------------------------------------------------------------------------------------
// Findings
// ---------------------------------------------------------------------------------------------

/// Failed on the reviewed code. Envoy writes a URI SAN raw (`URI=<the SAN's text>`), so the text
/// between `URI=` and the next `;` is the certificate's, byte for byte. A certificate whose URI
/// SAN is ` spiffe://prod/ns/admin/sa/root` (leading space), or the same with a trailing space or
/// tab, is not a SPIFFE ID; aaa trims an unquoted value before reading it and authenticates the
/// caller as `spiffe://prod/ns/admin/sa/root`, an identity the certificate does not carry. This
/// is the class of the quoted-URI finding (`xfcc_escaped_quoted_uri_is_not_another_spiffe_id`):
/// the identity must be the SAN's own text. Seen over HTTP too, through the demo's trusted mesh
/// proxy on both adapters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xfcc_uri_san_with_whitespace_around_it_is_not_that_spiffe_id() {
    let a = forwarded();
    let mut accepted = Vec::new();
    for header in [
        "Hash=ab;URI= spiffe://prod/ns/admin/sa/root",
        "Hash=ab;URI=spiffe://prod/ns/admin/sa/root ;DNS=root.prod.svc",
        "Hash=ab;URI=\tspiffe://prod/ns/admin/sa/root;DNS=root.prod.svc",
        "By=spiffe://prod/ns/a/sa/api;URI=  spiffe://prod/ns/admin/sa/root\t;DNS=x",
    ] {
        let facts = xfcc_request(&[header.as_bytes().to_vec()], Some("10.1.2.3:1")).unwrap();
        if let Ok(Some(id)) = forwarded_found(&a, &facts).await {
            accepted.push(format!("{header:?} -> {id}"));
        }
    }
    // Over HTTP: the demo trusts its mesh proxy at 127.0.0.2. The space inside the header value
    // reaches the application (only whitespace at the ends of a field value is not part of it).
    let line = "x-forwarded-client-cert: Hash=ab;URI= spiffe://acme/ns/prod/sa/admin;DNS=a.acme";
    for running in [
        crate::docs_demo::axum().await,
        crate::docs_demo::actix().await,
    ] {
        let before = running.events.events().len();
        let reply = crate::adapters::send_from(
            Some([127, 0, 0, 2].into()),
            running.addr,
            "GET",
            "/docs/d1",
            &[line],
        )
        .await;
        let actors: Vec<String> = running.events.events()[before..]
            .iter()
            .filter_map(|e| e.actor.as_ref().map(|a| a.id.clone()))
            .collect();
        if !actors.is_empty() || reply.status != 401 {
            accepted.push(format!(
                "[{}] {line:?} -> {} as {actors:?}",
                running.name, reply.status
            ));
        }
    }
    assert!(
        accepted.is_empty(),
        "URI SANs with whitespace around them authenticated as the SPIFFE ID without it:\n{}",
        accepted.join("\n")
    );
}

/// Failed on the reviewed code. A service that accepts only API keys in `Authorization: ApiKey
/// <key>` answers a request without credentials with `401` and `WWW-Authenticate: Bearer
/// realm="aaa"`, and a wrong key with a `Bearer … error="invalid_token"` challenge: it
/// advertises a scheme it does not accept and never the one it does. RFC 9110 §11.6.1: a 401
/// "MUST send a WWW-Authenticate header field containing at least one challenge applicable to
/// the target resource"; a client following the challenge sends a bearer token, which this
/// service ignores. The fix would let each authenticator name its challenge scheme, and the
/// guard challenge with the schemes it has.
#[tokio::test]
async fn an_api_key_only_service_challenges_with_its_own_scheme() {
    let mut config = ApiKeyConfig::new("aaa", [ApiKeyRecord::new("ci", "ci-runner", SECRET)]);
    config.header = "authorization".to_owned();
    let g = Guard::builder()
        .authenticator(ApiKeyAuthenticator::new(config, Arc::new(clock())).unwrap())
        .policies(AnyoneAuthenticated)
        .audit_disabled()
        .clock(clock())
        .build()
        .unwrap();
    let peer: SocketAddr = "192.0.2.1:1".parse().unwrap();
    let ok = format!("ApiKey {}", key("ci", SECRET)).into_bytes();
    let facts = request(&[("authorization", ok)], peer).unwrap();
    assert!(matches!(g.check(&facts).await, Outcome::Proceed(_)));
    let mut wrong = Vec::new();
    for line in [None, Some(format!("ApiKey {}", key("ci", OTHER)))] {
        let headers: Vec<(&str, Vec<u8>)> = line
            .iter()
            .map(|l| ("authorization", l.clone().into_bytes()))
            .collect();
        let Outcome::Reject(r) = g.check(&request(&headers, peer).unwrap()).await else {
            panic!("{line:?} was let through");
        };
        assert_eq!(r.status(), 401, "{line:?}");
        let challenge = r.www_authenticate().map(|v| v.to_str().unwrap().to_owned());
        let scheme = challenge
            .as_deref()
            .and_then(|c| c.split(' ').next())
            .unwrap_or_default()
            .to_owned();
        if !scheme.eq_ignore_ascii_case("apikey") {
            wrong.push(format!("{line:?} -> 401 with {challenge:?}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "401s of an ApiKey-only service challenge for another scheme:\n{}",
        wrong.join("\n")
    );
}

/// Failed on the reviewed code. A dual-stack listener sees an IPv4 proxy as `::ffff:10.0.0.5`,
/// and that is how `ss` and the listener's own `SocketAddr` show it; aaa reads that peer as
/// `10.0.0.5` (`RequestFacts::with_peer` canonicalizes it) but compares it with the configured
/// ranges as written, so a trusted proxy configured as `::ffff:10.0.0.5/128` (or the range
/// `::ffff:10.0.0.0/104`) is never trusted: every service identity it forwards is silently
/// dropped (the requests go on anonymous and are logged as forgeries from an untrusted peer).
/// Fails closed; the fix is to canonicalize the configured ranges too (or refuse them).
#[tokio::test]
async fn a_trusted_proxy_written_as_an_ipv4_mapped_address_is_trusted() {
    let worker = Ok(Some("spiffe://prod/ns/b/sa/worker".to_owned()));
    let mut dropped = Vec::new();
    for range in ["::ffff:10.0.0.5/128", "::ffff:10.0.0.0/104"] {
        for peer in ["10.0.0.5:4444", "[::ffff:10.0.0.5]:4444"] {
            let config = ForwardedIdentityConfig::new([range.parse().unwrap()]);
            let got = identity_from(config, Some(peer)).await;
            if got != worker {
                dropped.push(format!("trusted {range}, peer {peer}: {got:?}"));
            }
        }
    }
    assert!(
        dropped.is_empty(),
        "a configured IPv4-mapped proxy address trusts nobody:\n{}",
        dropped.join("\n")
    );
}

/// Generated credential headers (the mutants of `generated_credentials_…`, with the demo's
/// token and key) sent over HTTP to the demo on axum and on actix-web get the answer the
/// demo's own `Guard` gives the same headers, as RFC 9110 §5.5 delivers them (without the
/// whitespace at either end of a field value): same status, same challenge. The adapters pass
/// every credential header on, repeated ones included, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_mutants_over_http_get_the_guard_s_own_answer() {
    const REQUESTS: usize = 150;
    let trim = |v: &[u8]| {
        let start = v
            .iter()
            .position(|b| !b" \t".contains(b))
            .unwrap_or(v.len());
        let end = v
            .iter()
            .rposition(|b| !b" \t".contains(b))
            .map_or(start, |e| e + 1);
        v[start..end].to_vec()
    };
    for running in [
        crate::docs_demo::axum().await,
        crate::docs_demo::actix().await,
    ] {
        let name = running.name;
        let jwt = running
            .demo
            .idp
            .token("alice", false, running.demo.now())
            .unwrap();
        let valid = running.demo.indexer_key.clone();
        let mut rng = Rng(0xC4ED_0005_2026_1203);
        let mut failures = Vec::new();
        let mut statuses: std::collections::BTreeMap<u16, usize> = Default::default();
        for n in 0..REQUESTS {
            let mut lines: Vec<(&str, Vec<u8>)> = Vec::new();
            for _ in 0..rng.below(3) {
                lines.push(("Authorization", gen_authorization(&mut rng, &jwt)));
            }
            if rng.chance(35) {
                let k = if rng.chance(40) {
                    valid.clone().into_bytes()
                } else {
                    near_miss(&mut rng, &valid)
                };
                lines.push(("x-api-key", k));
            }
            if rng.chance(15) {
                lines.push(("Cookie", gen_cookie(&mut rng, &jwt)));
            }
            if rng.chance(15) {
                let x = rng.pick(&[
                    "URI=spiffe://acme/ns/prod/sa/indexer",
                    "By=spiffe://acme/docs;URI=spiffe://acme/ns/prod/sa/admin",
                    "URI=spiffe://acme/a,URI=spiffe://acme/b",
                ]);
                lines.push(("x-forwarded-client-cert", x.as_bytes().to_vec()));
            }
            // No CR or LF (framing) and no byte an HTTP server refuses before aaa.
            if lines
                .iter()
                .any(|(_, v)| HeaderValue::from_bytes(v).is_err() || v.len() > 8000)
            {
                continue;
            }
            let from_proxy = rng.chance(40);
            let ip: std::net::IpAddr = if from_proxy {
                [127, 0, 0, 2].into()
            } else {
                [127, 0, 0, 1].into()
            };
            let mut h = HeaderMap::new();
            for (line_name, v) in &lines {
                h.append(
                    HeaderName::from_bytes(line_name.as_bytes()).unwrap(),
                    HeaderValue::from_bytes(&trim(v)).unwrap(),
                );
            }
            let facts = RequestFacts::new(http::Method::GET, "/docs/d3")
                .with_matched_route("/docs/{id}")
                .with_param("id", "d3")
                .with_headers(h)
                .with_peer(SocketAddr::new(ip, 40000));
            let direct = match running.demo.guard.check(&facts).await {
                Outcome::Proceed(_) => (200, None),
                Outcome::Reject(r) => (
                    r.status().as_u16(),
                    r.www_authenticate().map(|v| v.to_str().unwrap().to_owned()),
                ),
            };
            let mut raw = b"GET /docs/d3 HTTP/1.1\r\nHost: test\r\nConnection: close\r\n".to_vec();
            for (line_name, v) in &lines {
                raw.extend_from_slice(format!("{line_name}: ").as_bytes());
                raw.extend_from_slice(v);
                raw.extend_from_slice(b"\r\n");
            }
            raw.extend_from_slice(b"\r\n");
            let reply = crate::adapters::exchange(Some(ip), running.addr, &raw).await;
            let over_http = (
                reply.status,
                reply.header("www-authenticate").map(str::to_owned),
            );
            *statuses.entry(reply.status).or_default() += 1;
            if over_http != direct {
                failures.push(format!(
                    "[{name}] #{n} from {ip}: guard {direct:?}, over HTTP {over_http:?}\n  {:?}",
                    lines
                        .iter()
                        .map(|(k, v)| format!("{k}: {}", String::from_utf8_lossy(v)))
                        .collect::<Vec<_>>()
                ));
            }
        }
        eprintln!("[{name}] statuses {statuses:?}");
        assert!(statuses.len() >= 3, "[{name}] {statuses:?}");
        assert!(
            failures.is_empty(),
            "{} differ:\n{}",
            failures.len(),
            failures[..failures.len().min(15)].join("\n")
        );
    }
}

/// A user's request relayed by a mesh service: decided as the user's, and a policy that
/// declares the context attribute `relayed_by` sees the relaying service (here: only the
/// front-end may relay reads; a user's own request, unrelayed, is read too).
#[tokio::test]
async fn a_policy_sees_which_service_relayed_a_user_s_request() {
    let policy = aaa::PolicySet::from_toml(
        r#"
[schema.context]
relayed_by = "string"

[[rules]]
id = "read"
effect = "allow"
actions = ["things:read"]

[[rules]]
id = "front-end-relays-only"
effect = "deny"
actions = ["things:read"]
when = 'context has relayed_by && context.relayed_by != "spiffe://prod/ns/web/sa/front"'

[[routes]]
method = "GET"
route = "/things/{id}"
action = "things:read"
resource = "Thing"
id = "id"
"#,
        "relay.toml",
    )
    .unwrap();
    let c = clock();
    let audit = Arc::new(Drain::default());
    let guard = Guard::builder()
        .authenticator(jwt(&c))
        .authenticator(forwarded())
        .policies(policy)
        .audit_arc(audit.clone())
        .clock(c)
        .build()
        .unwrap();
    let bearer = format!("Bearer {}", alice_token()).into_bytes();
    let proxy: SocketAddr = "10.1.2.3:4444".parse().unwrap();
    let via = |service: &str| {
        request(
            &[
                ("authorization", bearer.clone()),
                (
                    "x-forwarded-client-cert",
                    format!("URI=spiffe://prod/ns/{service}").into_bytes(),
                ),
            ],
            proxy,
        )
        .unwrap()
    };
    let relayed = |records: &[AuditEvent]| -> Vec<Option<String>> {
        records
            .iter()
            .map(|e| e.request.as_ref().and_then(|r| r.relayed_by.clone()))
            .collect()
    };

    let (got, _) = ask(&guard, &via("web/sa/front")).await;
    assert_eq!(got, Got::Admitted("alice".to_owned()));
    assert_eq!(
        relayed(&audit.take()),
        [Some("spiffe://prod/ns/web/sa/front".to_owned())]
    );
    let refused = guard.check(&via("batch/sa/worker")).await;
    assert!(
        matches!(&refused, Outcome::Reject(r) if r.status() == 403),
        "{refused:?}"
    );
    let records = audit.take();
    assert_eq!(
        relayed(&records),
        [Some("spiffe://prod/ns/batch/sa/worker".to_owned())]
    );
    assert!(
        matches!(&records[0].kind, EventKind::Authorization { rules, .. } if rules.iter().any(|r| &**r == "front-end-relays-only")),
        "{records:?}"
    );
    let own = request(&[("authorization", bearer.clone())], proxy).unwrap();
    let (got, _) = ask(&guard, &own).await;
    assert_eq!(got, Got::Admitted("alice".to_owned()));
    assert_eq!(relayed(&audit.take()), [None]);
}
