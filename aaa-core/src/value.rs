//! Typed attribute values shared by principals, resources, request contexts and policies.
//!
//! ```
//! use aaa_core::Value;
//!
//! let v: Value = serde_json::from_str(r#"{"tenant":"acme","ip":{"$ip":"10.1.2.3"},"tags":["a","b"]}"#).unwrap();
//! let Value::Record(fields) = &v else { unreachable!() };
//! assert_eq!(fields["tenant"], Value::from("acme"));
//! assert_eq!(fields["ip"], Value::Ip("10.1.2.3/32".parse().unwrap()));
//! // round trip
//! assert_eq!(serde_json::from_str::<Value>(&serde_json::to_string(&v).unwrap()).unwrap(), v);
//! ```
//!
//! # JSON form
//!
//! Strings, booleans, integers, arrays (sets) and objects (records) use their natural JSON form.
//! Types JSON lacks are written as an object with exactly one `$`-prefixed key:
//! `{"$ip": "10.0.0.0/8"}`, `{"$decimal": "12.5"}`, `{"$timestamp": "2026-11-23T13:33:04Z"}`.
//! JSON numbers with a fraction or an exponent, and integers outside `i64`, are refused: use
//! `$decimal` (no float rounding can ever decide an authorization).

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    str::FromStr,
};

use ipnet::IpNet;
use serde::{
    Deserialize, Deserializer, Serialize, Serializer,
    de::{self, MapAccess, SeqAccess, Visitor},
    ser::SerializeMap,
};

use crate::Timestamp;

/// Named attributes: a record of [`Value`]s, ordered by name.
pub type Attributes = BTreeMap<String, Value>;

/// A typed attribute value.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Value {
    /// A UTF-8 string.
    String(String),
    /// `true` or `false`.
    Bool(bool),
    /// A signed 64-bit integer.
    Long(i64),
    /// An exact decimal number with four fractional digits.
    Decimal(Decimal),
    /// A set of values (no duplicates, ordered).
    Set(BTreeSet<Value>),
    /// A record of named values.
    Record(Attributes),
    /// An IP address (`/32` or `/128`) or a CIDR range.
    Ip(IpNet),
    /// A point in time.
    Timestamp(Timestamp),
}

impl Value {
    /// The name of this value's type, as used in policy type errors: `string`, `bool`, `long`,
    /// `decimal`, `set`, `record`, `ip` or `timestamp`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Bool(_) => "bool",
            Value::Long(_) => "long",
            Value::Decimal(_) => "decimal",
            Value::Set(_) => "set",
            Value::Record(_) => "record",
            Value::Ip(_) => "ip",
            Value::Timestamp(_) => "timestamp",
        }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_long(&self) -> Option<i64> {
        match self {
            Value::Long(n) => Some(*n),
            _ => None,
        }
    }

    /// A set of strings.
    pub fn string_set<I, S>(items: I) -> Value
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Value::Set(items.into_iter().map(|s| Value::String(s.into())).collect())
    }

    /// Parses an IP address or CIDR range strictly: dotted-quad IPv4 without leading zeros, or
    /// IPv6. An IPv4-mapped IPv6 address such as `::ffff:10.1.2.3` stays IPv6.
    ///
    /// # Errors
    ///
    /// [`ValueError`] when `text` is neither an address nor a range.
    pub fn parse_ip(text: &str) -> Result<Value, ValueError> {
        parse_ip(text).map(Value::Ip)
    }
}

/// Parses an IP address (as a host range) or a CIDR range, strictly: the address part goes
/// through the standard library's parser (no leading zeros, no octal, no shorthand) and the prefix
/// must be plain decimal digits within range.
pub(crate) fn parse_ip(text: &str) -> Result<IpNet, ValueError> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: std::net::IpAddr = addr.parse().map_err(|_| ValueError::InvalidIp)?;
    let Some(prefix) = prefix else {
        return Ok(IpNet::from(addr));
    };
    let plain = !prefix.is_empty()
        && prefix.len() <= 3
        && prefix.bytes().all(|b| b.is_ascii_digit())
        && !(prefix.len() > 1 && prefix.starts_with('0'));
    if !plain {
        return Err(ValueError::InvalidIp);
    }
    let len: u8 = prefix.parse().map_err(|_| ValueError::InvalidIp)?;
    // Host bits may be set (10.1.2.3/8); containment checks use the network.
    IpNet::new(addr, len).map_err(|_| ValueError::InvalidIp)
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Long(n)
    }
}
impl From<std::net::IpAddr> for Value {
    fn from(ip: std::net::IpAddr) -> Self {
        Value::Ip(IpNet::from(ip))
    }
}
impl From<Timestamp> for Value {
    fn from(t: Timestamp) -> Self {
        Value::Timestamp(t)
    }
}
impl From<Decimal> for Value {
    fn from(d: Decimal) -> Self {
        Value::Decimal(d)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => fmt::Debug::fmt(s, f),
            Value::Bool(b) => fmt::Debug::fmt(b, f),
            Value::Long(n) => fmt::Debug::fmt(n, f),
            Value::Decimal(d) => write!(f, "decimal({d})"),
            Value::Set(s) => f.debug_set().entries(s).finish(),
            Value::Record(r) => f.debug_map().entries(r).finish(),
            Value::Ip(ip) => write!(f, "ip({ip})"),
            Value::Timestamp(t) => write!(f, "timestamp({t})"),
        }
    }
}

/// An exact decimal number with four fractional digits, between about ±922 trillion.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Decimal(i64);

impl Decimal {
    const SCALE: i64 = 10_000;

    /// The decimal whose value is `raw / 10_000`.
    pub const fn from_raw(raw: i64) -> Self {
        Decimal(raw)
    }

    /// The value times 10,000.
    pub const fn raw(self) -> i64 {
        self.0
    }
}

impl FromStr for Decimal {
    type Err = ValueError;

    /// Parses `-?digits(.digits{1,4})?`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || (body.contains('.') && !digits(frac)) || frac.len() > 4 {
            return Err(ValueError::InvalidDecimal);
        }
        let int: i64 = int.parse().map_err(|_| ValueError::InvalidDecimal)?;
        let mut frac_val: i64 = if frac.is_empty() {
            0
        } else {
            frac.parse().map_err(|_| ValueError::InvalidDecimal)?
        };
        for _ in frac.len()..4 {
            frac_val *= 10;
        }
        let magnitude = int
            .checked_mul(Self::SCALE)
            .and_then(|v| v.checked_add(frac_val))
            .ok_or(ValueError::InvalidDecimal)?;
        Ok(Decimal(if negative { -magnitude } else { magnitude }))
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        let scale = Self::SCALE.unsigned_abs();
        write!(f, "{sign}{}.{:04}", abs / scale, abs % scale)
    }
}

/// A value could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    /// Not an IP address or CIDR range.
    #[error("not an IP address or CIDR range")]
    InvalidIp,
    /// Not a decimal with at most four fractional digits.
    #[error("not a decimal number with at most four fractional digits")]
    InvalidDecimal,
}

const IP_KEY: &str = "$ip";
const DECIMAL_KEY: &str = "$decimal";
const TIMESTAMP_KEY: &str = "$timestamp";

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::String(s) => serializer.serialize_str(s),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Long(n) => serializer.serialize_i64(*n),
            Value::Set(items) => serializer.collect_seq(items),
            Value::Record(fields) => serializer.collect_map(fields),
            Value::Decimal(d) => single(serializer, DECIMAL_KEY, d),
            Value::Ip(ip) => {
                // A host address is written without its prefix.
                if ip.prefix_len() == ip.max_prefix_len() {
                    single(serializer, IP_KEY, &ip.addr())
                } else {
                    single(serializer, IP_KEY, ip)
                }
            }
            Value::Timestamp(t) => single(serializer, TIMESTAMP_KEY, t),
        }
    }
}

fn single<S: Serializer, T: fmt::Display>(
    serializer: S,
    key: &str,
    value: &T,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(1))?;
    map.serialize_entry(key, &value.to_string())?;
    map.end()
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, bool, integer, array, object, or {\"$ip\"|\"$decimal\"|\"$timestamp\": string}")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Long(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        i64::try_from(v)
            .map(Value::Long)
            .map_err(|_| E::custom("integer out of range for a 64-bit signed long"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Err(E::custom(
            "fractional numbers are not accepted: use {\"$decimal\": \"1.5\"}",
        ))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut set = BTreeSet::new();
        while let Some(item) = seq.next_element::<Value>()? {
            set.insert(item);
        }
        Ok(Value::Set(set))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut fields = Attributes::new();
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            if fields.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicate key in record"));
            }
        }
        if fields.len() == 1
            && let Some((key, Value::String(text))) = fields.iter().next()
        {
            let typed = match key.as_str() {
                IP_KEY => Some(parse_ip(text).map(Value::Ip).map_err(de::Error::custom)),
                DECIMAL_KEY => Some(
                    text.parse::<Decimal>()
                        .map(Value::Decimal)
                        .map_err(de::Error::custom),
                ),
                TIMESTAMP_KEY => Some(
                    Timestamp::parse_rfc3339(text)
                        .map(Value::Timestamp)
                        .map_err(de::Error::custom),
                ),
                _ => None,
            };
            if let Some(typed) = typed {
                return typed;
            }
        }
        if fields.keys().any(|k| k.starts_with('$')) {
            return Err(de::Error::custom(
                "record keys starting with `$` are reserved for typed values",
            ));
        }
        Ok(Value::Record(fields))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(v: &Value) -> Value {
        serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
    }

    #[test]
    fn every_variant_round_trips() {
        let mut rec = Attributes::new();
        rec.insert("s".into(), "x".into());
        rec.insert("b".into(), true.into());
        rec.insert("n".into(), Value::Long(-7));
        rec.insert("d".into(), Value::Decimal("-12.05".parse().unwrap()));
        rec.insert("set".into(), Value::string_set(["b", "a"]));
        rec.insert("ip".into(), Value::parse_ip("10.0.0.0/8").unwrap());
        rec.insert("host".into(), Value::parse_ip("::1").unwrap());
        rec.insert(
            "t".into(),
            Value::Timestamp(Timestamp::from_unix_seconds(1_700_000_000)),
        );
        let v = Value::Record(rec);
        assert_eq!(round_trip(&v), v);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["ip"]["$ip"], "10.0.0.0/8");
        assert_eq!(json["host"]["$ip"], "::1");
        assert_eq!(json["d"]["$decimal"], "-12.0500");
    }

    #[test]
    fn floats_and_huge_integers_are_refused() {
        assert!(serde_json::from_str::<Value>("1.5").is_err());
        assert!(serde_json::from_str::<Value>("18446744073709551615").is_err());
        assert!(serde_json::from_str::<Value>(r#"{"$ip":"300.1.1.1"}"#).is_err());
        assert!(serde_json::from_str::<Value>(r#"{"$other":"x"}"#).is_err());
        assert!(serde_json::from_str::<Value>(r#"{"a":1,"a":2}"#).is_err());
    }

    #[test]
    fn ip_parsing_is_strict() {
        assert!(Value::parse_ip("010.1.2.3").is_err(), "octal-looking quad");
        assert!(Value::parse_ip("10.1.2").is_err());
        assert!(Value::parse_ip("").is_err());
        let mapped = Value::parse_ip("::ffff:10.20.30.40").unwrap();
        let Value::Ip(net) = mapped else { panic!() };
        let ten: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(
            !ten.contains(&net),
            "an IPv4-mapped IPv6 address stays IPv6"
        );
    }

    #[test]
    fn decimal_parse_and_display() {
        assert_eq!("1.5".parse::<Decimal>().unwrap().raw(), 15_000);
        assert_eq!("-0.0001".parse::<Decimal>().unwrap().to_string(), "-0.0001");
        assert_eq!("42".parse::<Decimal>().unwrap().to_string(), "42.0000");
        for bad in [
            "",
            "-",
            "1.",
            ".5",
            "1.23456",
            "1e3",
            "+1",
            "99999999999999999",
        ] {
            assert!(bad.parse::<Decimal>().is_err(), "{bad}");
        }
    }

    #[test]
    fn sets_are_deduplicated() {
        let v: Value = serde_json::from_str(r#"["a","a","b"]"#).unwrap();
        assert_eq!(v, Value::string_set(["a", "b"]));
    }
}
