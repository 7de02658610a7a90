//! A fast path for reading a record line, for the shape the writer produces.
//!
//! [`parse`] accepts only a strict subset of what `serde_json` accepts for a [`StoredRecord`]: no
//! whitespace, no escapes (no `\` at all) and no control characters in the line, integers of at
//! most 15 digits as the only numbers, the keys of every object in canonical order (ASCII keys
//! inside the event), the fields of event records only (`v`, `origin`, `seq`, `id`, `time`,
//! `prev`, `kind`, `event`, `event_sig`). Such a line is in canonical form (RFC 8785), so the
//! slow path's canonical check is not needed for it; a line in another form (keys reordered,
//! `204e0`, a duplicate key) is declined and refused there, at its own line. On anything else it answers `None` and the
//! caller parses the line with `serde_json`, which then decides (and reports the error). When it
//! answers, the record is the one `serde_json` gives for that line: the tests below check that
//! on many altered lines.
//!
//! The event value is checked against the JSON grammar as `serde_json` checks a `RawValue`
//! (objects, arrays, strings, numbers as RFC 8259 spells them, the literals), and the whole line
//! must be UTF-8. Strings are found 64 bytes at a time: a mask of the quotes of each block.

use std::{borrow::Cow, ops::Not};

use crate::audit::record::{OriginRef, StoredRecord};

/// Containers nested deeper than this are left to `serde_json` (the depth is a stack of bits).
const MAX_DEPTH: u32 = 64;
/// Integers longer than this are left to the slow path: from 16 digits a JSON number's
/// canonical spelling may differ from the digits written.
const MAX_DIGITS: usize = 15;

/// Parses `line` if it has the plain shape; `None` means "ask `serde_json`".
pub(super) fn parse(line: &[u8]) -> Option<StoredRecord<'_>> {
    if !no_escapes(line) {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    let mut c = Cursor {
        text,
        bytes: text.as_bytes(),
        i: 0,
        block: usize::MAX,
        quotes: 0,
    };
    c.eat(b'{')?;
    let mut v = None;
    let mut origin = None;
    let mut seq = None;
    let mut id = None;
    let mut time = None;
    let mut prev = None;
    let mut kind = None;
    let mut event = None;
    let mut event_sig = None;
    // Keys in canonical order (which also makes each one appear once): any other order is left
    // to the canonical check of the slow path, which refuses it.
    let mut last_key = "";
    loop {
        let key = c.plain_str()?;
        if key <= last_key {
            return None;
        }
        last_key = key;
        c.eat(b':')?;
        match key {
            "v" => set(&mut v, c.integer()?)?,
            "seq" => set(&mut seq, c.integer()?)?,
            "id" => set(&mut id, c.plain_str()?)?,
            "time" => set(&mut time, c.plain_str()?)?,
            "prev" => set(&mut prev, c.plain_str()?)?,
            "kind" => set(&mut kind, c.plain_str()?)?,
            "event_sig" => set(&mut event_sig, c.plain_str()?)?,
            "origin" => set(&mut origin, c.origin()?)?,
            "event" => {
                let start = c.i;
                // `null` is `None` for serde; leave it to serde.
                if c.peek()? == b'n' {
                    return None;
                }
                c.value()?;
                set(&mut event, text.get(start..c.i)?)?;
            }
            _ => return None,
        }
        match c.next()? {
            b',' => {}
            b'}' => break,
            _ => return None,
        }
    }
    if c.i != c.bytes.len() {
        return None;
    }
    Some(StoredRecord {
        v: v?,
        origin: origin?,
        seq: seq?,
        id: Cow::Borrowed(id?),
        time: Cow::Borrowed(time?),
        prev: Cow::Borrowed(prev?),
        kind: Cow::Borrowed(kind?),
        event,
        event_sig: event_sig.map(Cow::Borrowed),
        checkpoint: None,
        gap: None,
        recovery: None,
        key_change: None,
    })
}

/// Sets a field once: a second occurrence is left to serde (which rejects it).
fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(value);
    Some(())
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    i: usize,
    /// The 64-byte block whose quotes are in `quotes`.
    block: usize,
    /// Bit `j` set: byte `64 * block + j` is a `"`.
    quotes: u64,
}

/// Whether the line holds no backslash and no control character: then every string in it ends at
/// the next `"`. A loop without early exit, which the compiler vectorizes.
fn no_escapes(line: &[u8]) -> bool {
    line.iter()
        .fold(false, |bad, &b| bad | (b < 0x20) | (b == b'\\'))
        .not()
}

/// The quotes of the 64-byte block `block` of `bytes` as a bit mask (bit `j`: byte `64 * block
/// + j`), eight bytes at a time without a branch per byte.
#[inline(never)]
fn block_quotes(bytes: &[u8], block: usize) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let start = block.checked_mul(64)?;
    let part = bytes.get(start..)?;
    let mut padded = [b' '; 64];
    let full = match part.get(..64) {
        Some(full) => full,
        None => {
            padded.get_mut(..part.len())?.copy_from_slice(part);
            &padded
        }
    };
    let mut quotes = 0u64;
    for (k, word) in full.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(<[u8; 8]>::try_from(word).ok()?);
        // Exactly the bytes equal to `"`, as their high bits, then gathered into 8 bits.
        let q = w ^ (ONES * u64::from(b'"'));
        let zero = !(((q & LOW7) + LOW7) | q | LOW7);
        let gathered = ((zero >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
        quotes |= gathered << (8 * k);
    }
    Some(quotes)
}

impl<'a> Cursor<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    #[inline]
    fn eat(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    /// The position of the first `"` at or after `from`.
    #[inline(always)]
    fn next_quote(&mut self, from: usize) -> Option<usize> {
        let mut block = from / 64;
        let mut skip = from % 64;
        loop {
            if block != self.block {
                self.quotes = block_quotes(self.bytes, block)?;
                self.block = block;
            }
            let ahead = self.quotes >> skip << skip;
            if ahead != 0 {
                return Some(block * 64 + ahead.trailing_zeros() as usize);
            }
            if (block + 1) * 64 >= self.bytes.len() {
                return None;
            }
            block += 1;
            skip = 0;
        }
    }

    /// A string (no escapes, no control characters), borrowed.
    fn plain_str(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = self.next_quote(start)?;
        self.i = end + 1;
        self.text.get(start..end)
    }

    /// An object key inside the event: a string of ASCII only (whose byte order is the UTF-16
    /// order RFC 8785 sorts by), as the span of its text.
    fn key(&mut self) -> Option<(usize, usize)> {
        self.eat(b'"')?;
        let start = self.i;
        let end = self.next_quote(start)?;
        self.i = end + 1;
        self.bytes
            .get(start..end)?
            .is_ascii()
            .then_some((start, end))
    }

    /// An unsigned integer of at most 15 digits (exactly a JSON number's canonical spelling),
    /// without leading zeros.
    fn integer(&mut self) -> Option<u64> {
        let start = self.i;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
        let digits = self.bytes.get(start..self.i)?;
        if digits.is_empty()
            || digits.len() > MAX_DIGITS
            || (digits.len() > 1 && digits.first() == Some(&b'0'))
        {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
        )
    }

    /// The `origin` object: `instance` and `service`, plain strings, each once.
    fn origin(&mut self) -> Option<OriginRef<'a>> {
        self.eat(b'{')?;
        let mut instance = None;
        let mut service = None;
        let mut last_key = "";
        loop {
            let key = self.plain_str()?;
            if key <= last_key {
                return None;
            }
            last_key = key;
            self.eat(b':')?;
            match key {
                "instance" => set(&mut instance, self.plain_str()?)?,
                "service" => set(&mut service, self.plain_str()?)?,
                _ => return None,
            }
            match self.next()? {
                b',' => {}
                b'}' => break,
                _ => return None,
            }
        }
        Some(OriginRef {
            instance: Cow::Borrowed(instance?),
            service: Cow::Borrowed(service?),
        })
    }

    /// A number in its canonical spelling, as far as the fast path reads one: an integer of at
    /// most 15 digits (so exactly what RFC 8785 writes for it), without a sign on zero. Anything
    /// else (`204e0`, `1.50`, `-0`, a longer integer) is left to the slow path's canonical check.
    fn number(&mut self) -> Option<()> {
        let negative = self.peek()? == b'-';
        if negative {
            self.i += 1;
        }
        let start = self.i;
        match self.next()? {
            b'0' if !negative => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.i - start > MAX_DIGITS
            || matches!(self.peek(), Some(b'.' | b'e' | b'E' | b'0'..=b'9'))
        {
            return None;
        }
        Some(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.bytes.get(self.i..end)? == word).then_some(())?;
        self.i = end;
        Some(())
    }

    /// Any JSON value, without whitespace. A loop, with the open containers as a stack of
    /// bits (1: object, 0: array).
    fn value(&mut self) -> Option<()> {
        let mut stack = 0u64;
        let mut depth = 0u32;
        // The last key of each open object, to hold keys to canonical order.
        let mut last: [(usize, usize); MAX_DEPTH as usize] = [(0, 0); MAX_DEPTH as usize];
        loop {
            match self.next()? {
                b'"' => self.i = self.next_quote(self.i)? + 1,
                open @ (b'{' | b'[') => {
                    let close = if open == b'{' { b'}' } else { b']' };
                    if self.peek()? == close {
                        self.i += 1;
                    } else {
                        if depth >= MAX_DEPTH {
                            return None;
                        }
                        depth += 1;
                        stack = (stack << 1) | u64::from(open == b'{');
                        if open == b'{' {
                            *last.get_mut(depth as usize - 1)? = self.key()?;
                            self.eat(b':')?;
                        }
                        continue;
                    }
                }
                b't' => self.literal(b"rue")?,
                b'f' => self.literal(b"alse")?,
                b'n' => self.literal(b"ull")?,
                b'-' | b'0'..=b'9' => {
                    self.i -= 1;
                    self.number()?;
                }
                _ => return None,
            }
            // A value is complete: close the containers it completes, or go on after a comma.
            loop {
                if depth == 0 {
                    return Some(());
                }
                let in_object = stack & 1 == 1;
                match self.next()? {
                    b',' => {
                        if in_object {
                            let previous = last.get_mut(depth as usize - 1)?;
                            let key = self.key()?;
                            if self.bytes.get(key.0..key.1)?
                                <= self.bytes.get(previous.0..previous.1)?
                            {
                                return None;
                            }
                            *previous = key;
                            self.eat(b':')?;
                        }
                        break;
                    }
                    b'}' if in_object => {}
                    b']' if !in_object => {}
                    _ => return None,
                }
                stack >>= 1;
                depth -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde(line: &[u8]) -> Option<String> {
        serde_json::from_slice::<StoredRecord<'_>>(line)
            .ok()
            .map(|r| format!("{r:?}"))
    }

    /// Where the fast path answers, it answers as `serde_json` does.
    fn same(line: &[u8]) -> bool {
        match parse(line) {
            None => false,
            Some(fast) => {
                assert_eq!(
                    Some(format!("{fast:?}")),
                    serde(line),
                    "{}",
                    String::from_utf8_lossy(line)
                );
                true
            }
        }
    }

    const EVENT: &str = r#"{"event":{"actor":{"id":"user-1","mfa":false,"n":null,"t":true},"decision":"allow","list":[],"nums":[0,-1,250,7000000000,999999999999999],"obj":{},"rules":["a/b c","é€😀"],"time":"2023-11-14T22:13:20.000000Z"},"event_sig":"k AAAA","id":"e3104f972a75bb1f0000000000000001","kind":"event","origin":{"instance":"i1","service":"bench"},"prev":"2fecf91208cffee5b9beacfa0af84d2af8e83c10835bda2968c02ad819d32889","seq":1,"time":"2023-11-14T22:13:20.000000Z","v":1}"#;

    #[test]
    fn the_writers_shape_takes_the_fast_path() {
        assert!(same(EVENT.as_bytes()));
        let nested = r#"{"event":[[[]],{"a":[1,{"b":"c"}]}],"id":"x","kind":"event","origin":{"instance":"i","service":"s"},"prev":"p","seq":0,"time":"t","v":1}"#;
        assert!(same(nested.as_bytes()));
    }

    /// What is not canonical is declined, for the slow path's canonical check to refuse at its
    /// own line: keys out of order or repeated (in the envelope, the origin, the event at any
    /// depth), numbers in another spelling, integers whose canonical spelling may differ.
    #[test]
    fn what_is_not_canonical_is_declined() {
        let reordered = r#"{"v":1,"seq":0,"time":"t","prev":"p","origin":{"service":"s","instance":"i"},"kind":"event","id":"x","event":{}}"#;
        assert!(parse(reordered.as_bytes()).is_none());
        for (from, to) in [
            (
                r#""id":"user-1","mfa":false"#,
                r#""mfa":false,"id":"user-1""#,
            ),
            (
                r#""decision":"allow","list":[]"#,
                r#""decision":"allow","decision":"deny","list":[]"#,
            ),
            (r#""obj":{}"#, r#""obj":{"b":1,"a":2}"#),
            (r#""obj":{}"#, r#""obj":{"a":1,"a":1}"#),
            (r#""obj":{}"#, r#""obj":{"é":1}"#),
            (r#"[0,-1,"#, r#"[0e0,-1,"#),
            (r#"[0,-1,"#, r#"[-0,-1,"#),
            (r#"[0,-1,"#, r#"[0.5,-1,"#),
            (r#"[0,-1,"#, r#"[1E3,-1,"#),
            (r#"[0,-1,"#, r#"[1234567890123456,-1,"#),
            (
                r#""instance":"i1","service":"bench""#,
                r#""service":"bench","instance":"i1""#,
            ),
            (r#""seq":1,"#, r#""seq":1000000000000000,"#),
        ] {
            assert!(EVENT.contains(from), "{from}");
            let line = EVENT.replacen(from, to, 1);
            assert!(parse(line.as_bytes()).is_none(), "{to}");
        }
    }

    #[test]
    fn other_shapes_are_left_to_serde() {
        for line in [
            r#"{"checkpoint":"x","id":"x","kind":"checkpoint","origin":{"instance":"i","service":"s"},"prev":"p","seq":1,"time":"t","v":1}"#,
            r#"{"event":null,"id":"x","kind":"event","origin":{"instance":"i","service":"s"},"prev":"p","seq":1,"time":"t","v":1}"#,
            r#"{"event":{},"id":"x\n","kind":"event","origin":{"instance":"i","service":"s"},"prev":"p","seq":1,"time":"t","v":1}"#,
            r#"{"event":{}, "id":"x","kind":"event","origin":{"instance":"i","service":"s"},"prev":"p","seq":1,"time":"t","v":1}"#,
            r#"{"event":{},"id":"x","kind":"event","origin":{"instance":"i","service":"s"},"prev":"p","seq":18446744073709551615,"time":"t","v":1}"#,
            r#"{"event":{},"id":"x","kind":"event","origin":{"instance":"i","service":"s"},"prev":"p","seq":1,"time":"t","v":1} "#,
        ] {
            assert!(parse(line.as_bytes()).is_none(), "{line}");
        }
        let escaped = EVENT.replacen("a/b c", r#"a\"b\\c\/d\b\f\n\r\tx\u00e9\uD83D"#, 1);
        assert!(parse(escaped.as_bytes()).is_none());
        assert!(serde(escaped.as_bytes()).is_some());
        let deep = format!("{}{}", "[".repeat(70), "]".repeat(70));
        let line = EVENT.replacen(r#""list":[]"#, &format!(r#""list":{deep}"#), 1);
        assert!(parse(line.as_bytes()).is_none());
        assert!(serde(line.as_bytes()).is_some(), "serde takes any depth");
    }

    /// Every single-byte change, deletion and insertion of a record line: wherever the fast path
    /// answers, `serde_json` accepts the line and reads the same record.
    #[test]
    fn altered_lines_read_as_serde_reads_them() {
        let line = EVENT.as_bytes();
        let replacements = [
            b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'0', b'1', b'9', b'a', b'e',
            b'E', b'u', b'n', b'-', b'+', b'.', b'/', 0x00, 0x1f, 0x7f, 0x80, 0xc3, 0xff,
        ];
        let mut fast = 0;
        for pos in 0..line.len() {
            for &b in &replacements {
                let mut l = line.to_vec();
                l[pos] = b;
                fast += usize::from(same(&l));
                l.insert(pos, b);
                fast += usize::from(same(&l));
            }
            let mut l = line.to_vec();
            l.remove(pos);
            fast += usize::from(same(&l));
        }
        assert!(fast > 1000, "the fast path answered {fast} times");
    }
}
