//! Finding a bearer token in a request: the `Authorization` header and, optionally, a cookie.

use http::header;

use super::AuthnError;
use crate::http::RequestFacts;

/// Where a bearer token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenLocation {
    /// `Authorization: Bearer <token>`.
    AuthorizationHeader,
    /// The configured cookie.
    Cookie,
}

/// A bearer token found in a request. Its `Debug` never shows the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BearerToken<'a> {
    token: &'a str,
    location: TokenLocation,
}

impl<'a> BearerToken<'a> {
    /// The token text. Never log it.
    pub fn as_str(&self) -> &'a str {
        self.token
    }

    /// Where the token was found.
    pub fn location(&self) -> TokenLocation {
        self.location
    }
}

impl std::fmt::Debug for BearerToken<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerToken")
            .field("token", &"[redacted]")
            .field("location", &self.location)
            .finish()
    }
}

/// Whether `s` is a non-empty RFC 6750 `b64token` (token68).
pub(crate) fn is_token68(s: &str) -> bool {
    let body = s.trim_end_matches('=');
    !body.is_empty() && all_token68_chars(body.as_bytes())
}

/// Whether every byte is a token68 character other than `=`: a letter, a digit or one of
/// `-._~+/`.
fn all_token68_chars(bytes: &[u8]) -> bool {
    // Branch-free within a chunk, so that the compiler checks many bytes per instruction: bearer
    // tokens are hundreds of bytes long and checked on every request.
    let allowed = |b: u8| {
        let lower = b | 0x20;
        (lower.wrapping_sub(b'a') < 26)
            | (b.wrapping_sub(b'0') < 10)
            | (b == b'-')
            | (b == b'.')
            | (b == b'_')
            | (b == b'~')
            | (b == b'+')
            | (b == b'/')
    };
    bytes
        .chunks(32)
        .all(|chunk| chunk.iter().fold(true, |all, &b| all & allowed(b)))
}

/// The token of an `Authorization` value spelled the common way, `Bearer <token68>` (the scheme
/// in any case), in one pass; `None` for anything else, which [`bearer_token`] then reads the
/// long way.
fn plain_bearer(value: &http::HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    let scheme = bytes.get(..6)?;
    if !scheme.eq_ignore_ascii_case(b"bearer") || bytes.get(6) != Some(&b' ') {
        return None;
    }
    let token = std::str::from_utf8(bytes.get(7..)?).ok()?;
    is_token68(token).then_some(token)
}

/// Splits an `Authorization` value into its scheme and the rest, by the first space.
///
/// Returns `None` when the value is not visible ASCII text or the scheme is not an RFC 9110
/// `token` (so `Bearer<TAB>x` is malformed, not some other scheme).
pub(crate) fn split_scheme(value: &http::HeaderValue) -> Option<(&str, Option<&str>)> {
    let text = value.to_str().ok()?;
    let (scheme, rest) = match text.split_once(' ') {
        Some((scheme, rest)) => (scheme, Some(rest)),
        None => (text, None),
    };
    let tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    (!scheme.is_empty() && scheme.bytes().all(tchar)).then_some((scheme, rest))
}

/// The one `Authorization` header of the request, if there is exactly one.
///
/// # Errors
///
/// [`AuthnError::MultipleCredentials`] when there are two or more.
pub(crate) fn single_authorization(
    facts: &RequestFacts,
) -> Result<Option<&http::HeaderValue>, AuthnError> {
    let mut all = facts.headers().get_all(header::AUTHORIZATION).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(AuthnError::MultipleCredentials);
    }
    Ok(first)
}

/// Finds the request's bearer token, following the rules of this module.
///
/// Returns `Ok(None)` when the request carries no bearer token.
///
/// # Errors
///
/// [`AuthnError::MultipleCredentials`] for two `Authorization` headers, two cookies of the name,
/// or a header and a cookie; [`AuthnError::Malformed`] for a bearer header or cookie that breaks
/// the syntax.
///
/// # Rules
///
/// - `Authorization` is read only when the request has exactly one such header; two or more are
///   refused with [`AuthnError::MultipleCredentials`] (400 `invalid_request`), whatever their
///   schemes.
/// - The scheme is compared case-insensitively (`Bearer`, `bearer`, `BEARER`). It is followed by
///   **exactly one space** (SP, 0x20) and the token. RFC 6750 allows `1*SP`; no client in practice
///   sends more than one, and accepting one spelling only keeps the parser simple, so several
///   spaces, a tab, or leading or trailing whitespace are refused as malformed (400).
/// - The token has the `b64token` syntax of RFC 6750 §2.1 (`token68`): one or more of
///   `A-Z a-z 0-9 - . _ ~ + /`, then any number of `=`. Anything else is malformed (400).
/// - `Bearer` alone (no token) is malformed (400). A different scheme (`Basic`, `ApiKey`) is not a
///   bearer credential: it is left to other authenticators and the result is "no bearer token".
/// - With a cookie name configured, a cookie of that name carries the token too (same syntax).
///   A request that carries both a bearer header and the cookie, or the cookie twice, is refused
///   with [`AuthnError::MultipleCredentials`]. An empty cookie (`at=` or `at=""`, as a logout
///   that blanks it leaves) carries no token; it still counts towards "twice".
pub fn bearer_token<'a>(
    facts: &'a RequestFacts,
    cookie_name: Option<&str>,
) -> Result<Option<BearerToken<'a>>, AuthnError> {
    let from_header = match single_authorization(facts)? {
        None => None,
        Some(value) => match plain_bearer(value) {
            Some(token) => Some(token),
            None => bearer_long_way(value)?,
        },
    }
    .map(|token| BearerToken {
        token,
        location: TokenLocation::AuthorizationHeader,
    });
    let from_cookie = match cookie_name {
        None => None,
        Some(name) => cookie(facts, name)?,
    };
    match (from_header, from_cookie) {
        (Some(_), Some(_)) => Err(AuthnError::MultipleCredentials),
        (Some(t), None) => Ok(Some(t)),
        (None, Some(token)) => Ok(Some(BearerToken {
            token,
            location: TokenLocation::Cookie,
        })),
        (None, None) => Ok(None),
    }
}

/// The bearer token of an `Authorization` value, by the rules of [`bearer_token`]; `None` for
/// another scheme.
fn bearer_long_way(value: &http::HeaderValue) -> Result<Option<&str>, AuthnError> {
    let Some((scheme, rest)) = split_scheme(value) else {
        return Err(AuthnError::Malformed(
            "the authorization header is malformed",
        ));
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    match rest {
        Some(token) if is_token68(token) => Ok(Some(token)),
        Some(_) => Err(AuthnError::Malformed(
            "the bearer token has invalid syntax (one space, then a token68)",
        )),
        None => Err(AuthnError::Malformed("the bearer scheme has no token")),
    }
}

/// Whether the name part `n` of a cookie pair names the cookie `name`, read as the `cookie`
/// crate reads it for actix-web's `HttpRequest::cookie` (`Cookie::parse_encoded`): without the
/// whitespace around it, and percent-decoded (`at%5Fx` is the cookie `at_x` to the application,
/// so it is here too).
fn is_cookie_name(n: &[u8], name: &str) -> bool {
    let Ok(n) = std::str::from_utf8(n).map(str::trim) else {
        return false;
    };
    if n == name {
        return true;
    }
    n.contains('%')
        && percent_encoding::percent_decode_str(n)
            .decode_utf8()
            .is_ok_and(|decoded| decoded == name)
}

/// The value of the cookie `name`, refusing two of them.
///
/// `Cookie` headers are read as bytes: one holding a byte outside visible ASCII (browsers send
/// other cookies' UTF-8 values as they are) is searched all the same, so that it can hide neither
/// the token nor a second one. A name is compared without the whitespace around it, as RFC 6265
/// §5.2 and the `cookie` crate (actix-web, axum-extra; it trims Unicode whitespace) read it, so
/// that `at =x` is the cookie `at` here too; a percent-encoded name is decoded, as actix-web
/// decodes it.
fn cookie<'a>(facts: &'a RequestFacts, name: &str) -> Result<Option<&'a str>, AuthnError> {
    const MALFORMED: AuthnError = AuthnError::Malformed("the token cookie has invalid syntax");
    let mut found = None;
    let mut seen = false;
    for value in facts.headers().get_all(header::COOKIE) {
        for pair in value.as_bytes().split(|&b| b == b';') {
            let mut halves = pair.splitn(2, |&b| b == b'=');
            let (Some(n), Some(v)) = (halves.next(), halves.next()) else {
                continue;
            };
            if !is_cookie_name(n, name) {
                continue;
            }
            if seen {
                return Err(AuthnError::MultipleCredentials);
            }
            seen = true;
            let v = std::str::from_utf8(v).map_err(|_| MALFORMED)?;
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if v.is_empty() {
                // Blanked (`at=`, as a logout may leave it): no token, and no reason to refuse
                // every request of the browser, public routes included, until it is cleared.
                continue;
            }
            if !is_token68(v) {
                return Err(MALFORMED);
            }
            found = Some(v);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue, Method};

    /// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`,
    /// byte by byte.
    #[test]
    fn token68_accepts_exactly_its_alphabet() {
        for b in 0..=255u8 {
            let allowed = b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
            let s = String::from_utf8_lossy(&[b'a', b, b'z']).into_owned();
            assert_eq!(is_token68(&s), allowed, "{b:#x}");
        }
        assert!(is_token68("abc=="));
        assert!(!is_token68("=="));
        assert!(!is_token68("a=b"));
        assert!(!is_token68(""));
        // One bad byte anywhere in a long token, across the 32-byte chunks.
        for at in 0..100 {
            for bad in [b' ', b'=', b'\t', b'%', b'@', b'[', b'`', b'{', 0x7f] {
                let mut s = vec![b'A'; 100];
                s[at] = bad;
                let s = String::from_utf8(s).unwrap();
                let trailing_pad = bad == b'=' && at == 99;
                assert_eq!(is_token68(&s), trailing_pad, "{at} {bad:#x}");
            }
        }
    }

    /// The one-pass reading of `Bearer <token>` finds only what the long way finds.
    #[test]
    fn the_short_way_agrees_with_the_long_way() {
        let long = "aZ09-._~+/".repeat(40);
        let mut bad_in_long = long.clone();
        bad_in_long.replace_range(200..201, "%");
        let tokens = [
            "abc",
            "abc==",
            "==",
            "a=b",
            "=a",
            "a b",
            "a\tb",
            "ab~+/._-",
            "é",
            " abc",
            "abc ",
            &long,
            &bad_in_long,
        ];
        let schemes = [
            "Bearer ", "bearer ", "BEARER ", "bEaReR ", "Bearer  ", "Bearer\t", "Bearerx ",
            "Beare ", "Basic ", "ApiKey ", "", " Bearer ", "Bearer",
        ];
        for scheme in schemes {
            for token in tokens {
                let Ok(value) = HeaderValue::from_bytes(format!("{scheme}{token}").as_bytes())
                else {
                    continue;
                };
                let long_way = bearer_long_way(&value);
                if let Some(short) = plain_bearer(&value) {
                    assert_eq!(long_way, Ok(Some(short)), "{value:?}");
                }
            }
        }
        let valid = HeaderValue::from_str(&format!("Bearer {long}==")).unwrap();
        assert!(plain_bearer(&valid).is_some());
    }

    fn facts(auth: &[&str], cookies: &[&str]) -> RequestFacts {
        let mut h = HeaderMap::new();
        for a in auth {
            h.append(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        for c in cookies {
            h.append(header::COOKIE, HeaderValue::from_str(c).unwrap());
        }
        RequestFacts::new(Method::GET, "/").with_headers(h)
    }

    fn token(auth: &[&str], cookies: &[&str]) -> Result<Option<String>, AuthnError> {
        let f = facts(auth, cookies);
        bearer_token(&f, Some("at")).map(|t| t.map(|t| t.as_str().to_owned()))
    }

    #[test]
    fn scheme_is_case_insensitive() {
        for s in [
            "Bearer abc.def",
            "bearer abc.def",
            "BEARER abc.def",
            "bEaReR abc.def",
        ] {
            assert_eq!(token(&[s], &[]).unwrap().as_deref(), Some("abc.def"), "{s}");
        }
    }

    #[test]
    fn whitespace_rules_are_strict() {
        for s in [
            "Bearer  abc",
            "Bearer abc ",
            "Bearer\tabc",
            "Bearer a b",
            "Bearer a,b",
        ] {
            assert!(
                matches!(token(&[s], &[]), Err(AuthnError::Malformed(_))),
                "{s:?}"
            );
        }
        assert!(matches!(
            token(&["Bearer"], &[]),
            Err(AuthnError::Malformed(_))
        ));
        assert_eq!(
            token(&["Bearer abc=="], &[]).unwrap().as_deref(),
            Some("abc==")
        );
    }

    #[test]
    fn other_schemes_are_not_bearer_tokens() {
        assert_eq!(token(&["Basic dXNlcjpwdw=="], &[]).unwrap(), None);
        assert_eq!(token(&["ApiKey aaa_k1_secret"], &[]).unwrap(), None);
        assert_eq!(token(&[], &[]).unwrap(), None);
    }

    #[test]
    fn two_credentials_are_refused() {
        assert_eq!(
            token(&["Bearer a", "Bearer b"], &[]),
            Err(AuthnError::MultipleCredentials)
        );
        assert_eq!(
            token(&["Bearer a", "Basic b"], &[]),
            Err(AuthnError::MultipleCredentials)
        );
        assert_eq!(
            token(&["Bearer a"], &["at=b"]),
            Err(AuthnError::MultipleCredentials)
        );
        assert_eq!(
            token(&[], &["at=a; at=b"]),
            Err(AuthnError::MultipleCredentials)
        );
        assert_eq!(
            token(&[], &["at=a", "at=b"]),
            Err(AuthnError::MultipleCredentials)
        );
    }

    /// A `Cookie` header that is not visible ASCII (a browser sends another cookie's UTF-8 as is)
    /// must not hide the token cookie in it: neither a second credential beside the header's
    /// token, nor the only one.
    #[test]
    fn a_cookie_header_with_non_ascii_bytes_hides_no_token() {
        let with = |auth: &[&str], cookie: &[u8]| {
            let mut f = facts(auth, &[]);
            let mut h = f.headers().clone();
            h.append(header::COOKIE, HeaderValue::from_bytes(cookie).unwrap());
            f = f.with_headers(h);
            bearer_token(&f, Some("at")).map(|t| t.map(|t| t.as_str().to_owned()))
        };
        assert_eq!(
            with(&["Bearer a"], "at=b; theme=d\u{e9}j\u{e0}".as_bytes()),
            Err(AuthnError::MultipleCredentials)
        );
        assert_eq!(
            with(&[], "theme=\u{e9}t\u{e9}; at=b".as_bytes())
                .unwrap()
                .as_deref(),
            Some("b")
        );
        assert_eq!(
            with(&[], b"at=a; x=\xff; at=b"),
            Err(AuthnError::MultipleCredentials)
        );
        assert!(matches!(
            with(&[], "at=\u{e9}".as_bytes()),
            Err(AuthnError::Malformed(_))
        ));
        assert_eq!(with(&[], "theme=\u{e9}".as_bytes()), Ok(None));
    }

    /// The name of a cookie is read without the whitespace around it, as RFC 6265 §5.2 and the
    /// `cookie` crate (actix-web, axum-extra) read it: `at =b` is a second `at` cookie.
    #[test]
    fn a_cookie_name_with_whitespace_around_it_is_that_cookie() {
        assert_eq!(
            token(&["Bearer a"], &["at =b"]),
            Err(AuthnError::MultipleCredentials)
        );
        assert_eq!(
            token(&[], &["at=a;\tat=b"]),
            Err(AuthnError::MultipleCredentials)
        );
        assert_eq!(token(&[], &["x=1;  at=b"]).unwrap().as_deref(), Some("b"));
        // The `cookie` crate trims Unicode whitespace (here a no-break space, sent as UTF-8).
        let mut f = facts(&["Bearer a"], &[]);
        let mut h = f.headers().clone();
        h.append(
            header::COOKIE,
            HeaderValue::from_bytes("at\u{a0}=b".as_bytes()).unwrap(),
        );
        f = f.with_headers(h);
        assert_eq!(
            bearer_token(&f, Some("at")).map(|t| t.is_some()),
            Err(AuthnError::MultipleCredentials)
        );
    }

    /// A percent-encoded cookie name is the name actix-web's `HttpRequest::cookie` decodes it to:
    /// `at%5Fx=b` beside a bearer header is a second token, not an unrelated cookie.
    #[test]
    fn a_percent_encoded_cookie_name_is_that_cookie() {
        let with = |auth: &[&str], cookie: &str, name: &str| {
            let f = facts(auth, &[cookie]);
            bearer_token(&f, Some(name)).map(|t| t.map(|t| t.as_str().to_owned()))
        };
        assert_eq!(
            with(&["Bearer a"], "at%5Fx=b", "at_x"),
            Err(AuthnError::MultipleCredentials)
        );
        assert_eq!(with(&[], "%61t=b", "at").unwrap().as_deref(), Some("b"));
        // Not that name once decoded, or not UTF-8 once decoded: another cookie.
        assert_eq!(
            with(&["Bearer a"], "at%5Fy=b", "at_x"),
            Ok(Some("a".to_owned()))
        );
        assert_eq!(
            with(&["Bearer a"], "at%FF=b", "at"),
            Ok(Some("a".to_owned()))
        );
        assert_eq!(
            with(&["Bearer a"], "a%=b", "a%"),
            Err(AuthnError::MultipleCredentials)
        );
    }

    /// A blanked token cookie (a logout that set it empty) is no token, not a malformed one: the
    /// browser is not refused everywhere until it drops the cookie. It still counts as a cookie
    /// of that name, so a second one is refused; a value that is not UTF-8 stays malformed.
    #[test]
    fn an_empty_token_cookie_is_no_token() {
        assert_eq!(token(&[], &["at="]), Ok(None));
        assert_eq!(token(&[], &["x=1; at=\"\""]), Ok(None));
        assert_eq!(
            token(&["Bearer a"], &["at="]).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(
            token(&[], &["at=; at=b"]),
            Err(AuthnError::MultipleCredentials)
        );
        assert_eq!(
            token(&[], &["at=b", "at="]),
            Err(AuthnError::MultipleCredentials)
        );
        assert!(matches!(
            token(&[], &["at= "]),
            Err(AuthnError::Malformed(_))
        ));
        let mut f = facts(&[], &[]);
        let mut h = f.headers().clone();
        h.append(header::COOKIE, HeaderValue::from_bytes(b"at=\xff").unwrap());
        f = f.with_headers(h);
        assert!(matches!(
            bearer_token(&f, Some("at")),
            Err(AuthnError::Malformed(_))
        ));
    }

    #[test]
    fn cookie_carries_a_token() {
        assert_eq!(
            token(&[], &["theme=dark; at=x.y.z"]).unwrap().as_deref(),
            Some("x.y.z")
        );
        assert!(matches!(
            token(&[], &["at=x y"]),
            Err(AuthnError::Malformed(_))
        ));
        // Without a configured cookie name, cookies are ignored.
        let f = facts(&[], &["at=x.y.z"]);
        assert_eq!(bearer_token(&f, None).unwrap(), None);
    }

    #[test]
    fn debug_hides_the_token() {
        let f = facts(&["Bearer s3cr3t"], &[]);
        let t = bearer_token(&f, None).unwrap().unwrap();
        assert!(!format!("{t:?}").contains("s3cr3t"));
    }
}
