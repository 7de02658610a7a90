//! The record format: one line of canonical JSON per record.
//!
//! Keys are sorted (by UTF-16 code units, as RFC 8785 asks), there is no insignificant
//! whitespace, strings use the shortest JSON escapes (`\n`, `\r`, `\t`, `\b`, `\f`, `\"`, `\\`,
//! `\u00xx` for other control characters) and integers are plain decimals. The line as stored is
//! exactly the bytes hashed; a verifier never hashes a record it serialized again.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::canonical::{CanonicalError, to_canonical};

use super::AuditEvent;
use crate::Timestamp;

/// The version of the record format written by this crate.
pub const SCHEMA_VERSION: u64 = 1;

/// The hash carried as `prev` by the first record of a log: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Which service instance writes a log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogOrigin {
    /// The instance (host, pod) of the service.
    pub instance: String,
    /// The service name.
    pub service: String,
}

impl LogOrigin {
    /// The checkpoint origin line: `<service>/<instance>`.
    pub fn line(&self) -> String {
        format!("{}/{}", self.service, self.instance)
    }

    /// Whether service and instance are each non-empty, without `/` or control characters, so
    /// that the origin line names one (service, instance) pair: `a/b` + `c` and `a` + `b/c`
    /// would both be `a/b/c`. The writer opens only such origins; the verifier reads only them.
    pub fn is_valid(&self) -> bool {
        let part = |s: &str| !s.is_empty() && !s.chars().any(|c| c.is_control() || c == '/');
        part(&self.service) && part(&self.instance)
    }
}

/// What a record holds, besides its envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecordBody {
    /// An audit event.
    Event(AuditEvent),
    /// A signed checkpoint (the signed note text) of the tree of all records before this one.
    Checkpoint(String),
    /// Events were lost (best-effort drops or failed writes).
    Gap(GapInfo),
    /// The log was recovered after a crash: a torn tail was cut.
    Recovery(RecoveryInfo),
    /// The signing key changed, signed by the old key.
    KeyChange(KeyChangeInfo),
}

impl RecordBody {
    /// The `kind` field of this body.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordBody::Event(_) => "event",
            RecordBody::Checkpoint(_) => "checkpoint",
            RecordBody::Gap(_) => "gap",
            RecordBody::Recovery(_) => "recovery",
            RecordBody::KeyChange(_) => "key_change",
        }
    }
}

/// Body of a gap record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GapInfo {
    /// How many events were lost since the previous gap record.
    pub dropped: u64,
    /// Why: `queue_full`, `write_failed`.
    pub reason: String,
}

/// Body of a recovery record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecoveryInfo {
    /// How many bytes were cut.
    pub cut_bytes: u64,
    /// Lowercase hex SHA-256 of the bytes cut.
    pub cut_sha256: String,
    /// The length the segment was cut to.
    pub offset: u64,
    /// The segment file whose tail was cut.
    pub segment: String,
}

/// Body of a key change record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyChangeInfo {
    /// The verifier key that signs from now on.
    pub new_key: String,
    /// The verifier key that signed until now.
    pub old_key: String,
    /// Base64 Ed25519 signature by the old key over [`key_change_statement`].
    pub signature: String,
}

/// The bytes the old key signs to introduce a new one at `seq` of the log `origin_line`.
pub fn key_change_statement(origin_line: &str, seq: u64, old_key: &str, new_key: &str) -> String {
    format!("aaa audit key change\n{origin_line}\n{seq}\n{old_key}\n{new_key}\n")
}

/// The bytes signed by an event's own signature (`event_sig`): the log, the record's place and
/// the SHA-256 (lowercase hex) of the event's canonical JSON exactly as stored in the line.
pub fn event_statement(origin_line: &str, seq: u64, prev: &str, event_sha256: &str) -> String {
    format!("aaa audit event\n{origin_line}\n{seq}\n{prev}\n{event_sha256}\n")
}

/// The envelope fields every record carries.
#[derive(Debug, Clone)]
pub(crate) struct Envelope<'a> {
    pub(crate) origin: &'a LogOrigin,
    pub(crate) seq: u64,
    pub(crate) id: &'a str,
    pub(crate) time: Timestamp,
    pub(crate) prev: &'a str,
}

/// What [`encode_record`] writes as a record's body.
#[derive(Clone, Copy)]
pub(crate) enum Body<'a> {
    /// A record body, encoded here.
    Record(&'a RecordBody),
    /// An event already encoded with [`encode_event`](super::encode_event) (the writer encodes
    /// events on the caller's thread, off its own).
    EncodedEvent(&'a [u8]),
}

impl Body<'_> {
    /// The `kind` field of this body.
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Body::Record(body) => body.kind(),
            Body::EncodedEvent(_) => "event",
        }
    }
}

/// Serializes one record as a canonical JSON line, without the final newline, appended to `out`.
///
/// The envelope's keys are written in sorted order around the body's (`checkpoint`, `event`,
/// `event_sig`, `gap`, `id`, `key_change`, `kind`, `origin`, `prev`, `recovery`, `seq`, `time`,
/// `v`), straight into `out`. An event is signed by `signer` when one is given.
pub(crate) fn encode_record(
    envelope: &Envelope<'_>,
    body: Body<'_>,
    signer: Option<&super::SigningKey>,
    out: &mut Vec<u8>,
) -> Result<(), CanonicalError> {
    out.push(b'{');
    match body {
        Body::Record(RecordBody::Checkpoint(note)) => {
            out.extend_from_slice(b"\"checkpoint\":");
            write_json_string(note, out);
            out.push(b',');
        }
        Body::Record(RecordBody::Event(_)) | Body::EncodedEvent(_) => {
            out.extend_from_slice(b"\"event\":");
            let start = out.len();
            if let Body::Record(RecordBody::Event(e)) = body {
                super::encode_event(e, out)?;
            } else if let Body::EncodedEvent(json) = body {
                out.extend_from_slice(json);
            }
            sign_event(envelope, signer, start, out);
            out.push(b',');
        }
        Body::Record(RecordBody::Gap(g)) => {
            out.extend_from_slice(b"\"gap\":");
            to_canonical(g, out)?;
            out.push(b',');
        }
        Body::Record(RecordBody::Recovery(_) | RecordBody::KeyChange(_)) => {}
    }
    out.extend_from_slice(b"\"id\":");
    write_json_string(envelope.id, out);
    if let Body::Record(RecordBody::KeyChange(k)) = body {
        out.extend_from_slice(b",\"key_change\":");
        to_canonical(k, out)?;
    }
    out.extend_from_slice(b",\"kind\":");
    write_json_string(body.kind(), out);
    out.extend_from_slice(b",\"origin\":{\"instance\":");
    write_json_string(&envelope.origin.instance, out);
    out.extend_from_slice(b",\"service\":");
    write_json_string(&envelope.origin.service, out);
    out.extend_from_slice(b"},\"prev\":");
    write_json_string(envelope.prev, out);
    if let Body::Record(RecordBody::Recovery(r)) = body {
        out.extend_from_slice(b",\"recovery\":");
        to_canonical(r, out)?;
    }
    out.extend_from_slice(b",\"seq\":");
    super::encode::write_u64(envelope.seq, out);
    out.extend_from_slice(b",\"time\":");
    super::encode::write_timestamp(envelope.time, out);
    out.extend_from_slice(b",\"v\":");
    super::encode::write_u64(SCHEMA_VERSION, out);
    out.push(b'}');
    Ok(())
}

/// Appends `,"event_sig":...` when there is a signer: its signature over the record's origin,
/// `seq`, `prev` and the SHA-256 of the event JSON, which starts at `start` in `out`.
fn sign_event(
    envelope: &Envelope<'_>,
    signer: Option<&super::SigningKey>,
    start: usize,
    out: &mut Vec<u8>,
) {
    let Some(key) = signer else {
        return;
    };
    use base64::Engine;
    use sha2::Digest;
    let digest = hex(&sha2::Sha256::digest(out.get(start..).unwrap_or_default()));
    let statement = event_statement(
        &envelope.origin.line(),
        envelope.seq,
        envelope.prev,
        &digest,
    );
    let mut blob = key.id().to_vec();
    blob.extend_from_slice(&key.sign(statement.as_bytes()));
    let sig = format!(
        "{} {}",
        key.name(),
        base64::engine::general_purpose::STANDARD.encode(blob)
    );
    out.extend_from_slice(b",\"event_sig\":");
    write_json_string(&sig, out);
}

/// Writes `value` as canonical JSON (sorted keys, no whitespace).
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_json_string(s, out),
        Value::Array(items) => write_array(items, out, write_canonical),
        Value::Object(map) => {
            let utf16 = |a: &str, b: &str| a.encode_utf16().cmp(b.encode_utf16());
            let sorted = map
                .keys()
                .zip(map.keys().skip(1))
                .all(|(a, b)| utf16(a, b).is_lt());
            let mut entries: Vec<(&String, &Value)> = Vec::new();
            if !sorted {
                entries = map.iter().collect();
                entries.sort_by(|a, b| utf16(a.0, b.0));
            }
            let iter: Box<dyn Iterator<Item = (&String, &Value)>> = if sorted {
                Box::new(map.iter())
            } else {
                Box::new(entries.into_iter())
            };
            out.push(b'{');
            for (i, (k, v)) in iter.enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_string(k, out);
                out.push(b':');
                write_canonical(v, out);
            }
            out.push(b'}');
        }
    }
}

/// Writes `items` as a JSON array, each with `write_item`.
pub(crate) fn write_array<T>(items: &[T], out: &mut Vec<u8>, write_item: fn(&T, &mut Vec<u8>)) {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_item(item, out);
    }
    out.push(b']');
}

/// Writes `s` as a JSON string with the shortest escapes.
pub(crate) fn write_json_string(s: &str, out: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if needs_no_escape(bytes) {
        // Nearly every string of a record: one copy.
        out.extend_from_slice(bytes);
    } else {
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            if needs_escape(b) {
                out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
                write_escape(b, out);
                start = i + 1;
            }
        }
        out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    }
    out.push(b'"');
}

/// Whether no byte of `bytes` needs escaping, eight bytes at a time, then the last few one by
/// one.
fn needs_no_escape(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        if may_need_escape(u64::from_le_bytes(word)) {
            return false;
        }
    }
    !chunks.remainder().iter().any(|&b| needs_escape(b))
}

/// Control characters, `"` and `\` are escaped in JSON strings; everything else is copied.
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Whether any of the eight bytes of `w` may need escaping (never a false "no").
fn may_need_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let below_space = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
    let quote = w ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote & HIGH;
    let backslash = w ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash & HIGH;
    below_space | quote | backslash != 0
}

fn write_escape(b: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX.get(usize::from(b >> 4)).copied().unwrap_or(b'0'),
            HEX.get(usize::from(b & 0xf)).copied().unwrap_or(b'0'),
        ]),
    }
}

/// The envelope of a stored record as the verifier reads it: borrowed, no event decoding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredRecord<'a> {
    pub(crate) v: u64,
    #[serde(borrow)]
    pub(crate) origin: OriginRef<'a>,
    pub(crate) seq: u64,
    #[serde(borrow)]
    pub(crate) id: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) time: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) prev: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) kind: Cow<'a, str>,
    /// The event's JSON text exactly as stored (validated as JSON, not decoded).
    #[serde(default, borrow, deserialize_with = "raw_json")]
    pub(crate) event: Option<&'a str>,
    #[serde(default, borrow)]
    pub(crate) event_sig: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub(crate) checkpoint: Option<Cow<'a, str>>,
    #[serde(default)]
    pub(crate) gap: Option<Box<GapInfo>>,
    #[serde(default)]
    pub(crate) recovery: Option<Box<RecoveryInfo>>,
    #[serde(default)]
    pub(crate) key_change: Option<Box<KeyChangeInfo>>,
}

/// An optional JSON value kept as its exact text (checked to be JSON, not decoded).
fn raw_json<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de str>, D::Error> {
    Option::<&'de serde_json::value::RawValue>::deserialize(d).map(|v| v.map(|v| v.get()))
}

/// A borrowed [`LogOrigin`], as the verifier reads it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OriginRef<'a> {
    #[serde(borrow)]
    pub(crate) instance: Cow<'a, str>,
    #[serde(borrow)]
    pub(crate) service: Cow<'a, str>,
}

impl OriginRef<'_> {
    pub(crate) fn is(&self, origin: &LogOrigin) -> bool {
        self.instance == origin.instance.as_str() && self.service == origin.service.as_str()
    }

    pub(crate) fn to_owned(&self) -> LogOrigin {
        LogOrigin {
            instance: self.instance.clone().into_owned(),
            service: self.service.clone().into_owned(),
        }
    }
}

impl StoredRecord<'_> {
    /// Whether the body present matches `kind`, and only that body is present.
    pub(crate) fn body_matches_kind(&self) -> bool {
        let present = [
            ("event", self.event.is_some()),
            ("checkpoint", self.checkpoint.is_some()),
            ("gap", self.gap.is_some()),
            ("recovery", self.recovery.is_some()),
            ("key_change", self.key_change.is_some()),
        ];
        present
            .iter()
            .all(|(name, is)| *is == (*name == self.kind.as_ref()))
            && (self.event_sig.is_none() || self.event.is_some())
    }
}

/// A stored record with its event decoded, for reading (summaries, tools).
#[derive(Debug, Clone, Deserialize)]
pub struct ReadRecord {
    /// The sequence number.
    pub seq: u64,
    /// The record kind: `event`, `checkpoint`, `gap`, `recovery` or `key_change`.
    pub kind: String,
    /// When it was written.
    pub time: Timestamp,
    /// The event, for `event` records.
    #[serde(default)]
    pub event: Option<AuditEvent>,
    /// The gap, for `gap` records.
    #[serde(default)]
    pub gap: Option<GapInfo>,
}

pub(crate) use crate::identity::hex;

#[cfg(test)]
mod string_tests {
    use super::write_json_string;

    /// The same bytes as `serde_json` for every ASCII byte at every position of strings of
    /// lengths around the eight-byte stride, and for multi-byte characters.
    #[test]
    fn json_strings_match_serde_json() {
        let mut cases = Vec::new();
        for len in 0..20 {
            for pos in 0..len {
                for b in 0u8..0x80 {
                    let mut s = "abcdefghijklmnopqrstuvwxyz".as_bytes()[..len].to_vec();
                    s[pos] = b;
                    cases.push(String::from_utf8(s).unwrap());
                }
            }
        }
        cases.push("é€😀\u{1}\"".repeat(5));
        cases.push("ÿ\u{80}\u{7f}a\u{2028}".repeat(3));
        for case in cases {
            let mut out = Vec::new();
            write_json_string(&case, &mut out);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&case).unwrap(),
                "{case:?}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::EventKind;

    #[test]
    fn canonical_json_sorts_keys_and_escapes_line_breaks() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":"x\r\ny\u0001\"\\é","y":[true,null]}}"#)
                .unwrap();
        let mut out = Vec::new();
        write_canonical(&v, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":{"y":[true,null],"z":"x\r\ny\u0001\"\\é"},"b":1}"#
        );
    }

    #[test]
    fn a_record_is_one_line_even_with_hostile_strings() {
        let origin = LogOrigin {
            service: "svc".into(),
            instance: "i\n1".into(),
        };
        let mut event = AuditEvent::new(
            Timestamp::UNIX_EPOCH,
            EventKind::RequestCompleted {
                status: 200,
                latency_us: 1,
            },
        );
        event.request = Some(std::sync::Arc::new(crate::audit::RequestInfo {
            user_agent: Some("evil\r\n{\"seq\":9}\n".into()),
            ..Default::default()
        }));
        let env = Envelope {
            origin: &origin,
            seq: 0,
            id: "x",
            time: Timestamp::UNIX_EPOCH,
            prev: GENESIS_PREV,
        };
        let mut out = Vec::new();
        encode_record(
            &env,
            Body::Record(&RecordBody::Event(event)),
            None,
            &mut out,
        )
        .unwrap();
        assert!(!out.contains(&b'\n') && !out.contains(&b'\r'));
        let parsed = parse_canonical(&out);
        assert_eq!(parsed.seq, 0);
        assert!(parsed.body_matches_kind());
    }

    /// Parses a line, checking that it is canonical: parsing and re-encoding it gives the same
    /// bytes.
    fn parse_canonical(out: &[u8]) -> StoredRecord<'_> {
        let mut again = Vec::new();
        write_canonical(&serde_json::from_slice(out).unwrap(), &mut again);
        assert_eq!(
            String::from_utf8(again).unwrap(),
            String::from_utf8(out.to_vec()).unwrap()
        );
        serde_json::from_slice(out).unwrap()
    }

    /// Every kind of record, signed or not, is canonical: its keys sorted, nothing to re-encode.
    #[test]
    fn every_kind_of_record_is_canonical() {
        let origin = LogOrigin {
            service: "svc\"".into(),
            instance: "é1".into(),
        };
        let key = crate::audit::SigningKey::from_seed("k", &[7; 32]).unwrap();
        let event = AuditEvent::new(
            Timestamp::from_unix_micros(5),
            EventKind::RequestCompleted {
                status: 200,
                latency_us: 1,
            },
        );
        let bodies = [
            RecordBody::Event(event),
            RecordBody::Checkpoint("o\n1\nroot\n\n— k sig\n".into()),
            RecordBody::Gap(GapInfo {
                dropped: 3,
                reason: "queue_full".into(),
            }),
            RecordBody::Recovery(RecoveryInfo {
                cut_bytes: 1,
                cut_sha256: "ab".into(),
                offset: 2,
                segment: "s".into(),
            }),
            RecordBody::KeyChange(KeyChangeInfo {
                new_key: "n".into(),
                old_key: "o".into(),
                signature: "s".into(),
            }),
        ];
        for body in &bodies {
            for signer in [None, Some(&key)] {
                let env = Envelope {
                    origin: &origin,
                    seq: 12,
                    id: "00ff",
                    time: Timestamp::from_unix_micros(1_700_000_000_000_001),
                    prev: GENESIS_PREV,
                };
                let mut out = Vec::new();
                encode_record(&env, Body::Record(body), signer, &mut out).unwrap();
                let parsed = parse_canonical(&out);
                assert!(parsed.body_matches_kind(), "{}", body.kind());
                assert_eq!(
                    parsed.event_sig.is_some(),
                    signer.is_some() && body.kind() == "event"
                );
                // An event the writer's caller encoded makes the very same record, signature
                // included.
                if let RecordBody::Event(event) = body {
                    let mut json = Vec::new();
                    crate::audit::encode_event(event, &mut json).unwrap();
                    let mut again = Vec::new();
                    encode_record(&env, Body::EncodedEvent(&json), signer, &mut again).unwrap();
                    assert_eq!(String::from_utf8(again), String::from_utf8(out.clone()));
                }
            }
        }
    }
}
