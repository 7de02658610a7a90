//! Differential testing of the JWT validator against `jsonwebtoken::decode`, with generated
//! tokens.
//!
//! A fixed-seed generator starts from valid tokens (EdDSA, ES256, RS256, each signed with a key of
//! the issuer's JWKS) and mutates the header, the payload, the encoding and the signature,
//! re-signing mutated headers and payloads where that makes sense so that only the mutation
//! matters. Each mutant goes to two aaa authenticators (a JWKS served by the test on 127.0.0.1
//! with the default `IssuerConfig`, and the same keys fixed with `require_access_token_type`) and
//! to `jsonwebtoken::decode` with a `Validation` as strict as aaa's configuration: the algorithm
//! of the key named by `kid` (every key of the set, in turn, when there is no `kid`), the
//! audience, the issuer, `exp`, `iss` and `aud` required, `nbf` checked, 60 s of leeway.
//!
//! The property: **aaa accepts ⇒ jsonwebtoken accepts**, and nothing panics. Tokens only
//! jsonwebtoken accepts are expected; they are counted by aaa's reason (run with `--nocapture`
//! to see the table). Where jsonwebtoken refuses for reasons of its own typing that aaa
//! deliberately does not share, the divergence is named in [`Divergence`] and allowed; any other
//! divergence fails the test.
//!
//! Times: tokens are made around the system time at the start of the test; jsonwebtoken reads
//! the system clock, and aaa's injected clock is set to the system time right after
//! jsonwebtoken's check of each token, so aaa's "now" is never earlier than jsonwebtoken's
//! however slowly a loaded machine runs the test (an `exp` 30 s inside the leeway expires for
//! both alike; before, it expired for jsonwebtoken alone once the run passed 30 s). Boundaries
//! are tested on aaa alone, in `time_boundaries_on_aaa_alone`.

use std::{
    collections::BTreeMap,
    panic::{AssertUnwindSafe, catch_unwind},
    str::FromStr,
    sync::Arc,
    time::Instant,
};

use aaa::{
    AuthnError, FixedClock, JwksUrl, JwtAuthenticator, KeySet, KeyStore, Timestamp,
    authn::{Algorithm, CachePolicy},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use jsonwebtoken::{DecodingKey, EncodingKey, Validation, jwk::JwkSet};
use serde_json::Value;

use crate::rng::Rng;

use super::{AUDIENCE, Answer, ISSUER, Idp, b64, fast_http, fixture, issuer, jwks_of};

/// How many mutants to generate.
const MUTANTS: usize = 2500;
/// The seed of the generator.
const SEED: u64 = 0x00AA_A01D_1FF2_026A;

/// The issuer's keys, as its JWKS lists them.
const JWKS_KEYS: [&str; 4] = ["rsa2048", "p256", "ed25519", "rsa2048-b"];

/// A JSON object as ordered `(name, raw JSON value)` pairs, so duplicates and odd spellings
/// survive.
#[derive(Debug, Clone)]
struct Obj(Vec<(String, String)>);

impl Obj {
    fn set(&mut self, name: &str, raw: impl Into<String>) {
        let raw = raw.into();
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(pair) => pair.1 = raw,
            None => self.0.push((name.to_owned(), raw)),
        }
    }
    fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| n != name);
    }
    fn push(&mut self, name: &str, raw: impl Into<String>) {
        self.0.push((name.to_owned(), raw.into()));
    }
    fn text(&self) -> String {
        let members: Vec<String> = self
            .0
            .iter()
            .map(|(n, v)| format!("{}:{v}", Value::from(n.as_str())))
            .collect();
        format!("{{{}}}", members.join(","))
    }
    /// With whitespace around every token.
    fn spaced(&self) -> String {
        let members: Vec<String> = self
            .0
            .iter()
            .map(|(n, v)| format!("\n\t{} : {v} ", Value::from(n.as_str())))
            .collect();
        format!(" {{ {}\r\n}} ", members.join(" ,"))
    }
}

fn s(text: &str) -> String {
    Value::from(text).to_string()
}

/// A key the tests sign with.
#[derive(Clone)]
struct Signer {
    alg: Algorithm,
    key: Arc<EncodingKey>,
}

/// A valid token's ingredients.
#[derive(Clone)]
struct Base {
    name: &'static str,
    kid: &'static str,
    alg: Algorithm,
    signer: Signer,
}

struct Keys {
    bases: Vec<Base>,
    rsa_b: Signer,
    p384: Signer,
    attacker: Signer,
    rsa_pss: Signer,
}

fn signer(name: &str, alg: Algorithm) -> Signer {
    Signer {
        alg,
        key: Arc::new(super::signing_key(name, alg)),
    }
}

impl Keys {
    fn load() -> Keys {
        let base = |name, kid, alg| Base {
            name,
            kid,
            alg,
            signer: signer(name, alg),
        };
        Keys {
            bases: vec![
                base("ed25519", "ed-1", Algorithm::EdDSA),
                base("p256", "ec-256", Algorithm::ES256),
                base("rsa2048", "rsa-1", Algorithm::RS256),
            ],
            rsa_b: signer("rsa2048-b", Algorithm::RS256),
            p384: signer("p384", Algorithm::ES384),
            attacker: signer("p256-attacker", Algorithm::ES256),
            rsa_pss: signer("rsa2048", Algorithm::PS256),
        }
    }
}

/// How the mutant's signature is made.
#[derive(Clone)]
enum Sign {
    /// With this key and algorithm (whatever the header says).
    With(Signer),
    /// An HMAC with this secret.
    Hmac(Vec<u8>, Algorithm),
    /// These bytes.
    Bytes(Vec<u8>),
    /// The signature of the unmutated token.
    Original,
}

/// A generated token and what was done to it.
struct Mutant {
    what: Vec<String>,
    token: String,
    /// How it was signed, to re-sign a repaired copy (see [`explain`]).
    sign: Sign,
}

fn alg_name(alg: Algorithm) -> String {
    format!("{alg:?}")
}

fn base_header(b: &Base) -> Obj {
    Obj(vec![
        ("alg".into(), s(&alg_name(b.alg))),
        ("kid".into(), s(b.kid)),
        ("typ".into(), s("at+jwt")),
    ])
}

fn base_payload(t: i64) -> Obj {
    Obj(vec![
        ("iss".into(), s(ISSUER)),
        ("aud".into(), s(AUDIENCE)),
        ("sub".into(), s("alice")),
        ("iat".into(), (t - 3600).to_string()),
        ("nbf".into(), (t - 3600).to_string()),
        ("exp".into(), (t + 3 * 365 * 86_400).to_string()),
        ("jti".into(), s("id-1")),
        ("scope".into(), s("orders:read")),
    ])
}

fn sign_bytes(header: &[u8], payload: &[u8], sign: &Sign, original: &str) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let sig = match sign {
        Sign::With(k) => jsonwebtoken::crypto::sign(input.as_bytes(), &k.key, k.alg).unwrap(),
        Sign::Hmac(secret, alg) => {
            jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret), *alg)
                .unwrap()
        }
        Sign::Bytes(bytes) => b64(bytes),
        Sign::Original => original.to_owned(),
    };
    format!("{input}.{sig}")
}

const P256_N: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];
/// The Ed25519 group order, little-endian.
const ED25519_L: [u8; 32] = [
    0xED, 0xD3, 0xF5, 0x5C, 0x1A, 0x63, 0x12, 0x58, 0xD6, 0x9C, 0xF7, 0xA2, 0xDE, 0xF9, 0xDE, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// `a - b`, big-endian, 32 bytes (a >= b).
fn sub_be(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(a[i]) - i16::from(b[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = u8::try_from(d).unwrap();
    }
    out
}

/// `a + b`, little-endian, 32 bytes (no overflow for S + L).
fn add_le(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 32];
    let mut carry = 0u16;
    for i in 0..32 {
        let v = u16::from(a[i]) + u16::from(b[i]) + carry;
        out[i] = (v & 0xFF) as u8;
        carry = v >> 8;
    }
    out
}

fn der_int(bytes: &[u8]) -> Vec<u8> {
    let mut v: Vec<u8> = bytes.iter().copied().skip_while(|b| *b == 0).collect();
    if v.is_empty() || v[0] & 0x80 != 0 {
        v.insert(0, 0);
    }
    let mut out = vec![0x02, u8::try_from(v.len()).unwrap()];
    out.extend(v);
    out
}

fn mutate_header(rng: &mut Rng, k: &Keys, b: &Base, h: &mut Obj, sign: &mut Sign) -> String {
    let alg = alg_name(b.alg);
    match rng.below(13) {
        0 => {
            let v = rng.pick(&[
                s(&alg.to_lowercase()),
                s(&alg.to_uppercase()),
                s(&format!("{alg} ")),
                s(&format!(" {alg}")),
                s(&format!("{alg}\u{0}")),
                s("ES512"),
                s("RS256"),
                s("PS256"),
                s("ES384"),
                s("EdDSA"),
                s("Ed25519"),
                s("ED25519"),
                s("HS256"),
                s(""),
                "1".into(),
                "null".into(),
                format!("[{}]", s(&alg)),
                format!("{{\"alg\":{}}}", s(&alg)),
            ]);
            h.set("alg", v.clone());
            format!("alg={v}")
        }
        1 => {
            let hs = rng.pick(&[Algorithm::HS256, Algorithm::HS384, Algorithm::HS512]);
            let secret = match rng.below(3) {
                0 => fixture(&format!("{}.pub.pem", b.name)),
                1 => fixture(&format!("{}.pub.jwk.json", b.name)),
                _ => b.kid.as_bytes().to_vec(),
            };
            h.set("alg", s(&alg_name(hs)));
            *sign = Sign::Hmac(secret, hs);
            format!("alg confusion {hs:?} with public material")
        }
        2 => {
            let v = rng.pick(&["none", "None", "NONE", "nOnE"]);
            h.set("alg", s(v));
            *sign = rng.pick(&[
                Sign::Bytes(Vec::new()),
                Sign::Original,
                Sign::Bytes(vec![0]),
            ]);
            format!("alg={v} unsigned")
        }
        3 => match rng.below(6) {
            0 => {
                h.set("alg", s("PS256"));
                *sign = Sign::With(k.rsa_pss.clone());
                "PS256 signed by the RS256-only RSA key".into()
            }
            1 => {
                h.set("alg", s("ES384"));
                *sign = Sign::With(k.p384.clone());
                "ES384 signed by a key outside the set".into()
            }
            2 => {
                h.set("alg", s("RS256"));
                h.set("kid", s("rsa-1"));
                *sign = Sign::With(k.rsa_b.clone());
                "kid rsa-1, signed by rsa-b".into()
            }
            3 => {
                h.set("alg", s("ES256"));
                h.set("kid", s("ec-256"));
                *sign = Sign::With(k.attacker.clone());
                "kid ec-256, signed by the attacker's key".into()
            }
            4 => {
                let other = rng.pick(&["ed-1", "ec-256", "rsa-1", "rsa-b"]);
                h.set("kid", s(other));
                format!("kid={other} (signed by {})", b.kid)
            }
            _ => {
                h.set("alg", s("ES256"));
                h.remove("kid");
                *sign = Sign::With(k.attacker.clone());
                "no kid, signed by the attacker's key".into()
            }
        },
        4 => {
            let v = rng.pick(&[
                None,
                Some(s("other")),
                Some(s("")),
                Some("5".into()),
                Some("null".into()),
                Some(format!("[{}]", s(b.kid))),
                Some("{}".into()),
                Some(s(&format!("{} ", b.kid))),
                Some(s(&b.kid.to_uppercase())),
                Some(s(&"k".repeat(300))),
                Some(s("../../etc/passwd")),
            ]);
            match &v {
                None => h.remove("kid"),
                Some(v) => h.set("kid", v.clone()),
            }
            format!("kid={v:?}")
        }
        5 => {
            let v = rng.pick(&[
                None,
                Some(s("JWT")),
                Some(s("jwt")),
                Some(s("at+jwt")),
                Some(s("AT+JWT")),
                Some(s("application/at+jwt")),
                Some(s("application/jwt")),
                Some(s("at+jwt ")),
                Some(s("id+jwt")),
                Some("5".into()),
                Some("null".into()),
                Some("[]".into()),
            ]);
            match &v {
                None => h.remove("typ"),
                Some(v) => h.set("typ", v.clone()),
            }
            format!("typ={v:?}")
        }
        6 => {
            let (crit, extra) = rng.pick(&[
                ("[\"exp\"]", None),
                ("[]", None),
                ("\"exp\"", None),
                ("[\"kid\"]", None),
                ("[\"alg\"]", None),
                ("[\"b64\"]", Some(("b64", "false"))),
                ("[\"b64\"]", Some(("b64", "true"))),
                ("[\"x\"]", Some(("x", "1"))),
                ("[5]", None),
                ("null", None),
            ]);
            h.set("crit", crit);
            if let Some((n, v)) = extra {
                h.set(n, v);
            }
            format!("crit={crit} {extra:?}")
        }
        7 => {
            let attacker_jwk = String::from_utf8(fixture("p256-attacker.pub.jwk.json")).unwrap();
            let own_jwk = String::from_utf8(fixture(&format!("{}.pub.jwk.json", b.name))).unwrap();
            let (n, v) = rng.pick(&[
                ("jku", s("https://evil.test/jwks")),
                ("x5u", s("https://evil.test/cert")),
                ("jwk", attacker_jwk.clone()),
                ("jwk", own_jwk),
                ("jwk", s("x")),
                ("jwk", "{}".into()),
                ("x5c", "[\"AAAA\"]".into()),
                ("x5c", s("AAAA")),
                ("x5t", "5".into()),
                ("x5t#S256", "[1]".into()),
                ("cty", s("JWT")),
                ("cty", "5".into()),
                ("jku", "5".into()),
                ("url", "5".into()),
                ("nonce", "{}".into()),
            ]);
            h.set(n, v.clone());
            if n == "jwk" && v == attacker_jwk {
                h.set("alg", s("ES256"));
                h.remove("kid");
                *sign = Sign::With(k.attacker.clone());
                return "embedded attacker jwk, signed by it".into();
            }
            format!("{n}={}", v.chars().take(40).collect::<String>())
        }
        8 => {
            let v = rng.pick(&["false", "true", "\"false\"", "0", "null"]);
            h.set("b64", v);
            format!("b64={v}")
        }
        9 => {
            let (n, v) = rng.pick(&[("enc", "\"A256GCM\""), ("zip", "\"DEF\""), ("enc", "5")]);
            h.set(n, v);
            format!("{n}={v}")
        }
        10 => {
            let (n, first, second) = rng.pick(&[
                ("alg", s(&alg), s("none")),
                ("alg", s("none"), s(&alg)),
                ("alg", s("HS256"), s(&alg)),
                ("kid", s("other"), s(b.kid)),
                ("kid", s(b.kid), s("other")),
                ("typ", s("JWT"), s("at+jwt")),
                ("x", "1".into(), "2".into()),
            ]);
            h.remove(n);
            h.push(n, first.clone());
            h.push(n, second.clone());
            format!("duplicate {n}: {first} then {second}")
        }
        11 => {
            let (n, v) = rng.pick(&[
                ("foo", "1".to_owned()),
                ("foo", "{\"a\":[1,{}]}".to_owned()),
                ("deep", format!("{}1{}", "[".repeat(100), "]".repeat(100))),
                ("deep", format!("{}1{}", "[".repeat(200), "]".repeat(200))),
                ("", "\"\"".to_owned()),
                ("\u{0}", "0".to_owned()),
            ]);
            h.set(n, v.clone());
            format!(
                "extra member {n:?}={}",
                v.chars().take(20).collect::<String>()
            )
        }
        _ => "header text".into(), // whole-text mutations: see `mutate_text`
    }
}

fn mutate_payload(rng: &mut Rng, t: i64, p: &mut Obj) -> String {
    let exp = t + 3 * 365 * 86_400;
    let opt = |v: &str| Some(v.to_owned());
    match rng.below(10) {
        0 => {
            let v = rng.pick(&[
                Some(s(&exp.to_string())),
                Some(format!("{exp}.5")),
                Some(format!("{}e9", exp as f64 / 1e9)),
                opt("-1"),
                opt("0"),
                opt("1e20"),
                opt("18446744073709551615"),
                opt("9223372036854775807"),
                opt("9e12"),
                opt("8.9e12"),
                opt("9300000000000"),
                None,
                opt("null"),
                opt("true"),
                Some(format!("[{exp}]")),
                Some((t - 1000).to_string()),
                Some((t - 30).to_string()),
                Some(format!("{}.9", t - 121)),
                opt("-0.0"),
                opt("NaN"),
            ]);
            set_or_remove(p, "exp", v.as_deref())
        }
        1 => {
            let v = rng.pick(&[
                Some(s(&(t - 3600).to_string())),
                Some(format!("{}.5", t - 3600)),
                opt("-1"),
                opt("-0.5"),
                opt("-1000000000"),
                opt("-0.0"),
                opt("0"),
                Some((t + 3600).to_string()),
                Some((t + 30).to_string()),
                Some(format!("{}.5", t + 3600)),
                opt("1e20"),
                opt("18446744073709551615"),
                opt("null"),
                None,
                opt("true"),
            ]);
            set_or_remove(p, "nbf", v.as_deref())
        }
        2 => {
            let v = rng.pick(&[
                Some(s(&(t - 3600).to_string())),
                Some((t + 3600).to_string()),
                Some((t + 30).to_string()),
                opt("-1"),
                opt("null"),
                None,
                Some(format!("{}.25", t - 3600)),
                opt("1e20"),
            ]);
            set_or_remove(p, "iat", v.as_deref())
        }
        3 => {
            let v = rng.pick(&[
                Some(format!("[{}]", s(AUDIENCE))),
                Some(format!("[\"x\",{}]", s(AUDIENCE))),
                Some(format!("[{0},{0}]", s(AUDIENCE))),
                opt("[]"),
                opt("[\"x\"]"),
                Some(format!("[{},5]", s(AUDIENCE))),
                Some(format!("[{},null]", s(AUDIENCE))),
                opt("5"),
                opt("null"),
                Some(format!("{{{}:true}}", s(AUDIENCE))),
                Some(s(&format!("{AUDIENCE} "))),
                Some(s(&AUDIENCE.to_uppercase())),
                None,
                Some(format!("[[{}]]", s(AUDIENCE))),
                Some(s("")),
                Some("\"orders\\u002dapi\"".into()),
            ]);
            set_or_remove(p, "aud", v.as_deref())
        }
        4 => {
            let v = rng.pick(&[
                Some(s(&format!("{ISSUER}/"))),
                Some(s(&ISSUER.to_uppercase())),
                Some(format!("[{}]", s(ISSUER))),
                Some(format!("[{},\"x\"]", s(ISSUER))),
                opt("null"),
                opt("5"),
                None,
                Some(s(&format!("{ISSUER} "))),
                Some(s("")),
                Some(s("http://idp.test")),
                Some(s(&format!("{ISSUER}\u{0}"))),
                Some("\"https:\\/\\/idp.test\"".into()),
                Some(s("https://IDP.test")),
            ]);
            set_or_remove(p, "iss", v.as_deref())
        }
        5 => {
            let v = rng.pick(&[opt("5"), opt("null"), Some(s("")), None, opt("[\"alice\"]")]);
            set_or_remove(p, "sub", v.as_deref())
        }
        6 => {
            let (n, first, second) = rng.pick(&[
                ("exp", (t - 1000).to_string(), exp.to_string()),
                ("exp", exp.to_string(), (t - 1000).to_string()),
                ("aud", s("x"), s(AUDIENCE)),
                ("aud", s(AUDIENCE), s("x")),
                ("iss", s("https://evil.test"), s(ISSUER)),
                ("iss", s(ISSUER), s("https://evil.test")),
                ("nbf", (t + 3600).to_string(), (t - 3600).to_string()),
                ("sub", s("admin"), s("alice")),
            ]);
            p.remove(n);
            p.push(n, first.clone());
            p.push(n, second.clone());
            format!("duplicate {n}: {first} then {second}")
        }
        7 => {
            let (n, v) = rng.pick(&[
                ("jti", "5"),
                ("auth_time", "\"x\""),
                ("auth_time", "99999999999"),
                ("scope", "5"),
                ("roles", "\"x\""),
                ("claims", "{\"iss\":\"x\"}"),
                ("big", "BIG"),
            ]);
            if v == "BIG" {
                p.set(n, s(&"b".repeat(rng.pick(&[12_000, 20_000]))));
                return "a claim of 12 or 20 KB".into();
            }
            p.set(n, v);
            format!("{n}={v}")
        }
        _ => "payload text".into(),
    }
}

fn set_or_remove(o: &mut Obj, name: &str, v: Option<&str>) -> String {
    match v {
        Some(v) => o.set(name, v),
        None => o.remove(name),
    }
    format!("{name}={v:?}")
}

/// Whole-text mutations of a header or payload.
fn mutate_text(rng: &mut Rng, o: &Obj) -> (Vec<u8>, String) {
    let text = o.text();
    let (bytes, what): (Vec<u8>, &str) = match rng.below(14) {
        0 => (o.spaced().into_bytes(), "whitespace"),
        1 => {
            let mut b = vec![0xEF, 0xBB, 0xBF];
            b.extend(text.as_bytes());
            (b, "BOM")
        }
        2 => (format!("{text}x").into_bytes(), "trailing garbage"),
        3 => (format!("{text}{text}").into_bytes(), "two objects"),
        4 => (b"[]".to_vec(), "array"),
        5 => (b"\"x\"".to_vec(), "string"),
        6 => (b"null".to_vec(), "null"),
        7 => (b"{}".to_vec(), "empty object"),
        8 => (Vec::new(), "empty"),
        9 => {
            let mut b = text.clone().into_bytes();
            b.insert(b.len() - 1, 0xFF);
            (b, "invalid UTF-8")
        }
        10 => {
            // The first member's name with its first letter as a \u escape.
            let escaped = match o.0.first() {
                Some((n, _)) if !n.is_empty() => {
                    let first = n.chars().next().unwrap();
                    text.replacen(
                        &format!("\"{n}\""),
                        &format!("\"\\u{:04x}{}\"", first as u32, &n[first.len_utf8()..]),
                        1,
                    )
                }
                _ => text.clone(),
            };
            (escaped.into_bytes(), "unicode-escaped name")
        }
        11 => (format!("{{\"claims\":{text}}}").into_bytes(), "nested"),
        12 => (format!("{text}\n").into_bytes(), "trailing newline"),
        _ => (format!("[{text}]").into_bytes(), "object in an array"),
    };
    (bytes, what.to_owned())
}

fn mutate_signature(rng: &mut Rng, b: &Base, sig: &[u8], original: &[u8]) -> (Vec<u8>, String) {
    let mut out = sig.to_vec();
    let what: String = match rng.below(10) {
        0 if !out.is_empty() => {
            out.pop();
            "truncated by one byte".into()
        }
        1 => {
            out.truncate(out.len() / 2);
            "truncated to half".into()
        }
        2 => {
            out.push(0);
            "one zero byte appended".into()
        }
        3 => {
            out.insert(0, 0);
            "one zero byte prepended".into()
        }
        4 if !out.is_empty() => {
            let i = rng.below(out.len());
            let bit = rng.below(8);
            out[i] ^= 1 << bit;
            format!("bit {bit} of byte {i} flipped")
        }
        5 => {
            out = vec![0; out.len()];
            "all zeros".into()
        }
        6 => {
            out = original.to_vec();
            "the unmutated token's signature".into()
        }
        _ if out.len() == 64 && b.alg == Algorithm::ES256 => match rng.below(4) {
            0 => {
                let high = sub_be(&P256_N, &out[32..]);
                out.truncate(32);
                out.extend(high);
                "high-S (n - s)".into()
            }
            1 => {
                let mut seq = der_int(&out[..32]);
                seq.extend(der_int(&out[32..]));
                let mut der = vec![0x30, u8::try_from(seq.len()).unwrap()];
                der.extend(seq);
                out = der;
                "DER-encoded".into()
            }
            2 => {
                let (r, s2) = out.split_at(32);
                out = [s2, r].concat();
                "r and s swapped".into()
            }
            _ => {
                let zero = vec![0u8; 32];
                if rng.chance(50) {
                    out[..32].copy_from_slice(&zero);
                    "r = 0".into()
                } else {
                    out[32..].copy_from_slice(&zero);
                    "s = 0".into()
                }
            }
        },
        _ if out.len() == 64 && b.alg == Algorithm::EdDSA => match rng.below(3) {
            0 => {
                let s_plus_l = add_le(&out[32..], &ED25519_L);
                out.truncate(32);
                out.extend(s_plus_l);
                "S + L".into()
            }
            1 => {
                out[63] |= 0x80;
                "high bit of S set".into()
            }
            _ => {
                out[..32].copy_from_slice(&[0u8; 32]);
                "R = 0".into()
            }
        },
        _ => {
            out.clear();
            "zero-length".into()
        }
    };
    (out, format!("signature {what}"))
}

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn mutate_encoding(rng: &mut Rng, token: &str) -> (String, String) {
    let parts: Vec<&str> = token.split('.').collect();
    let seg = rng.below(3);
    let names = ["header", "payload", "signature"];
    // Applies `f` to the first segment (from `seg` on, cyclically) it changes; the token and the
    // segment's name, "(no-op)" when it changes none.
    let with_segment = |f: &dyn Fn(&str) -> String| {
        for k in 0..3 {
            let i = (seg + k) % 3;
            let changed = f(parts[i]);
            if changed != parts[i] {
                let mut p: Vec<String> = parts.iter().map(|s| (*s).to_owned()).collect();
                p[i] = changed;
                return (p.join("."), names[i].to_owned());
            }
        }
        (token.to_owned(), "(no-op)".to_owned())
    };
    match rng.below(15) {
        0 => {
            let pad = rng.pick(&["=", "==", "==="]);
            let (t, n) = with_segment(&|s| format!("{s}{pad}"));
            (t, format!("{n} padded {pad}"))
        }
        1 => {
            let (t, n) = with_segment(&|s| s.replace('-', "+").replace('_', "/"));
            (t, format!("{n} in the standard alphabet"))
        }
        2 => {
            let (t, n) = with_segment(&|s| {
                if s.len() % 4 < 2 {
                    return format!("{s}A"); // an impossible length instead
                }
                let mut b = s.as_bytes().to_vec();
                let last = b.len() - 1;
                let idx = ALPHABET.iter().position(|c| *c == b[last]).unwrap();
                b[last] = ALPHABET[idx | 1];
                String::from_utf8(b).unwrap()
            });
            (t, format!("{n} with non-zero trailing bits"))
        }
        3 => {
            let ws = rng.pick(&[" ", "\n", "\t", "\r\n", "\u{a0}"]);
            let at = rng.below(token.len() + 1);
            let mut t = token.to_owned();
            t.insert_str(at, ws);
            (t, format!("{ws:?} inserted at {at}"))
        }
        4 => (format!("{token}."), "trailing dot".into()),
        5 => (format!(".{token}"), "leading dot".into()),
        6 => (
            format!("{}..{}.{}", parts[0], parts[1], parts[2]),
            "doubled dot".into(),
        ),
        7 => (format!("{token}.e30.e30"), "five parts".into()),
        8 => (format!("{token}.e30"), "four parts".into()),
        9 => (format!("{}.{}", parts[0], parts[1]), "two parts".into()),
        10 => {
            let (t, n) = with_segment(&|_| String::new());
            (t, format!("{n} empty"))
        }
        11 => (format!("Bearer {token}"), "with a scheme".into()),
        12 => (
            format!("{}.{}.{}", parts[1], parts[0], parts[2]),
            "header and payload swapped".into(),
        ),
        13 => {
            let (t, n) = with_segment(&|s| s.replace(['A', 'g'], "%41"));
            (t, format!("{n} percent-encoded"))
        }
        _ => (
            format!("{token}\u{e9}"),
            "non-ASCII character appended".into(),
        ),
    }
}

fn generate(rng: &mut Rng, k: &Keys, t: i64) -> Mutant {
    let b = rng.pick(&k.bases);
    let mut h = base_header(&b);
    let mut p = base_payload(t);
    let mut sign = Sign::With(b.signer.clone());
    let original = sign_bytes(h.text().as_bytes(), p.text().as_bytes(), &sign, "");
    let original_sig = original.rsplit('.').next().unwrap().to_owned();
    let mut what = vec![format!("{:?} {}", b.alg, b.kid)];
    // One mutation, sometimes two (of different layers), sometimes three.
    let mut layers = vec![rng.below(4)];
    for _ in 0..2 {
        if rng.chance(30) {
            let l = rng.below(4);
            if !layers.contains(&l) {
                layers.push(l);
            }
        }
    }
    layers.sort_unstable();
    let mut header_bytes = None;
    let mut payload_bytes = None;
    for layer in &layers {
        match layer {
            0 => {
                let w = mutate_header(rng, k, &b, &mut h, &mut sign);
                if w == "header text" {
                    let (bytes, w) = mutate_text(rng, &h);
                    header_bytes = Some(bytes);
                    what.push(format!("header {w}"));
                } else {
                    what.push(w);
                }
            }
            1 => {
                let w = mutate_payload(rng, t, &mut p);
                if w == "payload text" {
                    let (bytes, w) = mutate_text(rng, &p);
                    payload_bytes = Some(bytes);
                    what.push(format!("payload {w}"));
                } else {
                    what.push(w);
                }
            }
            _ => {}
        }
    }
    // A mutated header or payload is re-signed, except sometimes, to check the signature is.
    if (layers.contains(&0) || layers.contains(&1))
        && matches!(sign, Sign::With(_))
        && rng.chance(8)
    {
        sign = Sign::Original;
        what.push("not re-signed".into());
    }
    let header_bytes = header_bytes.unwrap_or_else(|| h.text().into_bytes());
    let payload_bytes = payload_bytes.unwrap_or_else(|| p.text().into_bytes());
    let mut token = sign_bytes(&header_bytes, &payload_bytes, &sign, &original_sig);
    if layers.contains(&3) {
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig_bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
        let original_bytes = URL_SAFE_NO_PAD.decode(&original_sig).unwrap();
        let (mutated, w) = mutate_signature(rng, &b, &sig_bytes, &original_bytes);
        token = format!("{input}.{}", b64(&mutated));
        what.push(w);
    }
    if layers.contains(&2) {
        let (t2, w) = mutate_encoding(rng, &token);
        token = t2;
        what.push(w);
    }
    Mutant { what, token, sign }
}

/// `jsonwebtoken`'s verdict, as a careful service would use it: the header decoded by
/// `decode_header`, the key named by `kid` in the issuer's JWKS (every key in turn when there is
/// no `kid`), and `decode` with a `Validation` as strict as aaa's configuration.
fn jsonwebtoken_verdict(token: &str, jwks: &JwkSet) -> Result<(), String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    let candidates: Vec<_> = match &header.kid {
        Some(kid) => jwks.find(kid).into_iter().collect(),
        None => jwks.keys.iter().collect(),
    };
    let mut last = String::from("no key with this kid");
    for jwk in candidates {
        let alg = jwk
            .common
            .key_algorithm
            .map(|a| Algorithm::from_str(&a.to_string()).unwrap())
            .unwrap();
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = Validation::new(alg);
        validation.leeway = 60;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        match jsonwebtoken::decode::<Value>(token, &key, &validation) {
            Ok(_) => return Ok(()),
            Err(e) => last = format!("{:?}", e.kind()),
        }
    }
    Err(last)
}

/// A token aaa accepts and jsonwebtoken refuses, for a reason argued acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Divergence {
    /// `nbf` is a negative NumericDate (before 1970): jsonwebtoken parses NumericDates as `u64`
    /// and refuses the claim as malformed; aaa reads it as a time long past.
    NegativeNbf,
}

fn decoded_segment(token: &str, i: usize) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(token.split('.').nth(i)?).ok()
}

/// Why aaa may accept what jsonwebtoken refuses, when the reason is one argued acceptable: the
/// divergence, and the header and payload with its cause removed, for the caller to re-sign and
/// check that jsonwebtoken then accepts (so the allowed cause hides no other).
fn explain(token: &str) -> Option<(Divergence, Vec<u8>, Vec<u8>)> {
    let header: serde_json::Map<String, Value> =
        serde_json::from_slice(&decoded_segment(token, 0)?).ok()?;
    let mut payload: serde_json::Map<String, Value> =
        serde_json::from_slice(&decoded_segment(token, 1)?).ok()?;
    let parses = |h: &serde_json::Map<String, Value>| {
        serde_json::from_value::<jsonwebtoken::Header>(Value::Object(h.clone())).is_ok()
    };
    // A registered header parameter of the wrong type (`"jku": 5`), which aaa ignored until
    // this test found it, is refused by aaa now: no divergence is allowed there.
    if !parses(&header) {
        return None;
    }
    let stripped = header;
    let mut divergence = None;
    if payload
        .get("nbf")
        .and_then(Value::as_f64)
        .is_some_and(|n| n < 0.0)
    {
        payload.remove("nbf");
        divergence = divergence.or(Some(Divergence::NegativeNbf));
    }
    let bytes = |m: serde_json::Map<String, Value>| Value::Object(m).to_string().into_bytes();
    divergence.map(|d| (d, bytes(stripped), bytes(payload)))
}

fn reason(e: &AuthnError) -> String {
    match e {
        AuthnError::Invalid(r) => (*r).to_owned(),
        AuthnError::Malformed(r) => format!("malformed: {r}"),
        AuthnError::Unavailable(r) => format!("unavailable: {r}"),
        other => other.to_string(),
    }
}

fn system_now() -> i64 {
    i64::try_from(jsonwebtoken::get_current_timestamp()).unwrap()
}

#[tokio::test]
async fn aaa_accepts_only_what_jsonwebtoken_accepts() {
    let started = Instant::now();
    let t = system_now();
    let clock = FixedClock::new(Timestamp::from_unix_seconds(t));
    let jwks_json = jwks_of(&JWKS_KEYS);
    let idp = Idp::start(Answer::Jwks(jwks_json.clone(), None)).await;
    let source = JwksUrl::new(&format!("{}/jwks", idp.base), fast_http()).unwrap();
    let served = JwtAuthenticator::builder()
        .issuer(
            issuer(),
            KeyStore::new(source, CachePolicy::default(), Arc::new(clock.clone())),
        )
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let mut typed = issuer();
    typed.require_access_token_type = true;
    let fixed = JwtAuthenticator::builder()
        .issuer(
            typed,
            KeyStore::fixed(
                KeySet::from_jwks_json(jwks_json.as_bytes(), false).unwrap(),
                Arc::new(clock.clone()),
            ),
        )
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let authenticators = [("jwks", Arc::new(served)), ("fixed+typ", Arc::new(fixed))];
    let jwks: JwkSet = serde_json::from_str(&jwks_json).unwrap();
    let keys = Keys::load();

    // The unmutated tokens pass everywhere.
    for b in &keys.bases {
        let token = sign_bytes(
            base_header(b).text().as_bytes(),
            base_payload(t).text().as_bytes(),
            &Sign::With(b.signer.clone()),
            "",
        );
        for (name, a) in &authenticators {
            a.verify(&token)
                .await
                .unwrap_or_else(|e| panic!("{name} refused the base {:?}: {e}", b.alg));
        }
        jsonwebtoken_verdict(&token, &jwks).unwrap();
    }

    let seed = std::env::var("DIFF_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(SEED);
    let count = std::env::var("DIFF_MUTANTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(MUTANTS);
    let mut rng = Rng(seed);
    let mut failures: Vec<String> = Vec::new();
    let mut allowed: BTreeMap<(Divergence, &str), (usize, String)> = BTreeMap::new();
    let mut stricter: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut both_accept = 0usize;
    let mut both_refuse = 0usize;
    for i in 0..count {
        let m = generate(&mut rng, &keys, t);
        let jwt = catch_unwind(AssertUnwindSafe(|| jsonwebtoken_verdict(&m.token, &jwks)));
        let Ok(jwt) = jwt else {
            failures.push(format!(
                "#{i} jsonwebtoken panicked on {:?}: {}",
                m.what, m.token
            ));
            continue;
        };
        // Not earlier than the time jsonwebtoken judged by (see the module's doc).
        clock.set(Timestamp::from_unix_seconds(system_now()));
        for (name, a) in &authenticators {
            let (a, token) = (a.clone(), m.token.clone());
            let verdict = tokio::spawn(async move { a.verify(&token).await.map(|_| ()) }).await;
            let verdict = match verdict {
                Ok(v) => v,
                Err(e) => {
                    failures.push(format!(
                        "#{i} {name} panicked ({e}) on {:?}: {}",
                        m.what, m.token
                    ));
                    continue;
                }
            };
            match (&verdict, &jwt) {
                (Ok(()), Ok(())) => both_accept += 1,
                (Err(_), Err(_)) => both_refuse += 1,
                (Err(e), Ok(())) => {
                    stricter
                        .entry(reason(e))
                        .or_insert_with(|| (0, format!("{:?}", m.what)))
                        .0 += 1;
                }
                (Ok(()), Err(jwt_error)) => {
                    let original_sig = m.token.rsplit('.').next().unwrap_or("");
                    let repaired = explain(&m.token).filter(|(_, h, p)| {
                        jsonwebtoken_verdict(&sign_bytes(h, p, &m.sign, original_sig), &jwks)
                            .is_ok()
                    });
                    match repaired {
                        Some((d, _, _)) => {
                            allowed
                                .entry((d, name))
                                .or_insert_with(|| (0, format!("{:?} -> {jwt_error}", m.what)))
                                .0 += 1;
                        }
                        None => failures.push(format!(
                            "#{i} {name} accepted, jsonwebtoken refused ({jwt_error}): {:?}\n    {}",
                            m.what, m.token
                        )),
                    }
                }
            }
        }
    }
    eprintln!(
        "differential: {count} mutants x {} authenticators in {:?}: {both_accept} accepted by \
         both, {both_refuse} refused by both",
        authenticators.len(),
        started.elapsed()
    );
    eprintln!("aaa stricter (aaa refuses, jsonwebtoken accepts), by aaa's reason:");
    for (r, (n, example)) in &stricter {
        eprintln!("  {n:5}  {r} (e.g. {example})");
    }
    eprintln!("aaa accepts, jsonwebtoken refuses, allowed divergences:");
    for ((d, name), (n, example)) in &allowed {
        eprintln!("  {n:5}  {d:?} [{name}] e.g. {example}");
    }
    assert!(
        failures.is_empty(),
        "{} tokens aaa accepted and jsonwebtoken refused, or panics:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Time boundaries, on aaa alone (its clock is injected; jsonwebtoken's is the system's): with
/// 60 s of leeway, `exp` is refused from `exp + leeway` on, `nbf` and `iat` after
/// `now + leeway`, fractions of a second counted.
#[tokio::test]
async fn time_boundaries_on_aaa_alone() {
    let t = 1_900_000_000;
    let clock = FixedClock::new(Timestamp::from_unix_seconds(t));
    let jwks_json = jwks_of(&JWKS_KEYS);
    let a = JwtAuthenticator::builder()
        .issuer(
            issuer(),
            KeyStore::fixed(
                KeySet::from_jwks_json(jwks_json.as_bytes(), false).unwrap(),
                Arc::new(clock.clone()),
            ),
        )
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    let keys = Keys::load();
    let b = &keys.bases[1];
    let cases: &[(&str, String, bool)] = &[
        ("exp", format!("{}", t - 61), false),
        ("exp", format!("{}", t - 60), false),
        ("exp", format!("{}.000001", t - 60), true),
        ("exp", format!("{}", t - 59), true),
        ("nbf", format!("{}", t + 60), true),
        ("nbf", format!("{}.000001", t + 60), false),
        ("nbf", format!("{}", t + 61), false),
        ("iat", format!("{}", t + 60), true),
        ("iat", format!("{}.5", t + 60), false),
        ("iat", format!("{}", t + 61), false),
    ];
    for (claim, value, ok) in cases {
        let mut p = base_payload(t);
        p.set(claim, value.clone());
        let token = sign_bytes(
            base_header(b).text().as_bytes(),
            p.text().as_bytes(),
            &Sign::With(b.signer.clone()),
            "",
        );
        let verdict = a.verify(&token).await;
        assert_eq!(verdict.is_ok(), *ok, "{claim}={value}: {verdict:?}");
    }
}
