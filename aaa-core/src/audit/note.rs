//! Ed25519 keys, C2SP signed notes and C2SP tlog checkpoints.
//!
//! A checkpoint body is three lines, the log's origin, the tree size in decimal and the base64
//! root hash, then any extension lines (this crate writes the checkpoint record's `time` and
//! `id`). It is signed as a signed note: the body, an empty line, then one line per
//! signature, `— <key name> <base64(key id || signature)>`, where the key id is the first four
//! bytes of SHA-256(key name || 0x0A || 0x01 || public key).

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::merkle::Hash;

/// The Ed25519 signature type byte of C2SP signed-note keys.
const ALG_ED25519: u8 = 0x01;

/// The most signature lines a note may carry. C2SP signed-note: verifiers must accept 16 and
/// should set a limit (Go's `note` package refuses more than 100, as this does); without one a
/// note of millions of lines would hold a verifier.
pub const MAX_NOTE_SIGNATURES: usize = 100;

/// A key could not be parsed or generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not a key in the expected format.
    #[error("malformed key: {0}")]
    Malformed(&'static str),
    /// The key name is empty or contains `+`, spaces or newlines.
    #[error("invalid key name")]
    InvalidName,
    /// The operating system's random number generator failed.
    #[error("no randomness available to generate a key")]
    Randomness,
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '+' || c.is_whitespace() || c.is_control())
}

fn key_id(name: &str, public: &[u8; 32]) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ALG_ED25519]);
    h.update(public);
    let digest = h.finalize();
    let mut id = [0u8; 4];
    id.copy_from_slice(digest.get(..4).unwrap_or(&[0; 4]));
    id
}

fn hex4(id: [u8; 4]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// An Ed25519 private key with a name, used to sign checkpoints and key changes.
///
/// The secret never appears in `Debug` and is zeroed when dropped.
///
/// ```
/// use aaa_core::audit::SigningKey;
///
/// let key = SigningKey::generate("audit.example/svc")?;
/// let text = key.to_private_text();
/// assert!(text.starts_with("PRIVATE+KEY+audit.example/svc+"));
/// let again = SigningKey::from_private_text(&text)?;
/// assert_eq!(again.verifier_key(), key.verifier_key());
/// assert!(!format!("{key:?}").contains(text.as_str()));
/// # Ok::<(), aaa_core::audit::KeyError>(())
/// ```
pub struct SigningKey {
    name: String,
    key: ed25519_dalek::SigningKey,
    id: [u8; 4],
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("name", &self.name)
            .field("id", &hex4(self.id))
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl SigningKey {
    /// A fresh key from the operating system's random number generator.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidName`] for an empty name or one with `+` or whitespace;
    /// [`KeyError::Randomness`] when no randomness is available.
    pub fn generate(name: &str) -> Result<Self, KeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut_slice()).map_err(|_| KeyError::Randomness)?;
        SigningKey::from_seed(name, &seed)
    }

    /// A key from its 32-byte seed (deterministic; for tests and imports).
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidName`] for an empty name or one with `+` or whitespace.
    pub fn from_seed(name: &str, seed: &[u8; 32]) -> Result<Self, KeyError> {
        if !valid_name(name) {
            return Err(KeyError::InvalidName);
        }
        let key = ed25519_dalek::SigningKey::from_bytes(seed);
        let id = key_id(name, key.verifying_key().as_bytes());
        Ok(SigningKey {
            name: name.to_owned(),
            key,
            id,
        })
    }

    /// Parses `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>` (the Go `note` format).
    ///
    /// # Errors
    ///
    /// [`KeyError::Malformed`] when the text is not such a key or its id does not match.
    pub fn from_private_text(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let rest = text
            .strip_prefix("PRIVATE+KEY+")
            .ok_or(KeyError::Malformed("expected `PRIVATE+KEY+`"))?;
        let (name, id, data) = split_key(rest)?;
        let data = Zeroizing::new(
            B64.decode(data)
                .map_err(|_| KeyError::Malformed("bad base64"))?,
        );
        let (alg, seed) = data.split_first().ok_or(KeyError::Malformed("empty key"))?;
        if *alg != ALG_ED25519 {
            return Err(KeyError::Malformed("not an Ed25519 key"));
        }
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            seed.try_into()
                .map_err(|_| KeyError::Malformed("wrong key length"))?,
        );
        let key = SigningKey::from_seed(name, &seed)?;
        if key.id != id {
            return Err(KeyError::Malformed("key id does not match the key"));
        }
        Ok(key)
    }

    /// The private key text, `PRIVATE+KEY+<name>+<hex id>+<base64>`. Keep it secret.
    pub fn to_private_text(&self) -> Zeroizing<String> {
        let mut data = Zeroizing::new(Vec::with_capacity(33));
        data.push(ALG_ED25519);
        data.extend_from_slice(self.key.as_bytes());
        Zeroizing::new(format!(
            "PRIVATE+KEY+{}+{}+{}",
            self.name,
            hex4(self.id),
            B64.encode(&*data)
        ))
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn id(&self) -> [u8; 4] {
        self.id
    }

    /// The public half, as a verifier key.
    pub fn verifier_key(&self) -> VerifierKey {
        VerifierKey {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// Signs `message`, returning the raw 64-byte Ed25519 signature.
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }

    /// Signs a note body (which must end with a newline), returning its signature line
    /// `— name base64(id || signature)` with its final newline.
    pub fn sign_note_line(&self, body: &str) -> String {
        let sig = self.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(&sig);
        format!("\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

fn split_key(rest: &str) -> Result<(&str, [u8; 4], &str), KeyError> {
    let mut parts = rest.splitn(3, '+');
    let (Some(name), Some(id), Some(data)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(KeyError::Malformed("expected `name+id+key`"));
    };
    if !valid_name(name) {
        return Err(KeyError::InvalidName);
    }
    if id.len() != 8 {
        return Err(KeyError::Malformed("key id must be 8 hex digits"));
    }
    let id = u32::from_str_radix(id, 16)
        .map_err(|_| KeyError::Malformed("key id must be 8 hex digits"))?
        .to_be_bytes();
    Ok((name, id, data))
}

/// An Ed25519 public key with its name and key id: what a verifier trusts.
///
/// Its text form is the C2SP verifier key `<name>+<hex key id>+<base64(0x01 || public key)>`.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifierKey {
    name: String,
    id: [u8; 4],
    key: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl fmt::Display for VerifierKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut data = Vec::with_capacity(33);
        data.push(ALG_ED25519);
        data.extend_from_slice(self.key.as_bytes());
        write!(f, "{}+{}+{}", self.name, hex4(self.id), B64.encode(data))
    }
}

impl std::str::FromStr for VerifierKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VerifierKey::parse(s)
    }
}

impl VerifierKey {
    /// Parses `<name>+<hex key id>+<base64(0x01 || public key)>`.
    ///
    /// # Errors
    ///
    /// [`KeyError`] when the text is not such a key or the id does not match.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let (name, id, data) = split_key(text.trim())?;
        let data = B64
            .decode(data)
            .map_err(|_| KeyError::Malformed("bad base64"))?;
        let (alg, public) = data.split_first().ok_or(KeyError::Malformed("empty key"))?;
        if *alg != ALG_ED25519 {
            return Err(KeyError::Malformed("not an Ed25519 key"));
        }
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| KeyError::Malformed("wrong key length"))?;
        if key_id(name, &public) != id {
            return Err(KeyError::Malformed("key id does not match the key"));
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public)
            .map_err(|_| KeyError::Malformed("not a valid Ed25519 point"))?;
        Ok(VerifierKey {
            name: name.to_owned(),
            id,
            key,
        })
    }

    /// The key's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The 4-byte key id.
    pub fn id(&self) -> [u8; 4] {
        self.id
    }

    /// Checks one signature (strict Ed25519 verification, and `S` below the group order checked
    /// by aaa itself: see `crate::ed25519`).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        crate::ed25519::signature_s_below_order(signature)
            && self.key.verify_strict(message, &sig).is_ok()
            && self.key.verify(message, &sig).is_ok()
    }

    pub(crate) fn dalek(&self) -> &ed25519_dalek::VerifyingKey {
        &self.key
    }
}

/// One signature line of a signed note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteSignature {
    /// The key name.
    pub name: String,
    /// The key id.
    pub id: [u8; 4],
    /// The signature bytes (64 for Ed25519).
    pub signature: Vec<u8>,
}

/// A parsed signed note: its body and signatures. Nothing is verified by parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNote {
    /// The signed text, ending with a newline.
    pub body: String,
    /// Its signature lines.
    pub signatures: Vec<NoteSignature>,
}

/// A note or checkpoint could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed note: {0}")]
pub struct NoteError(pub &'static str);

impl SignedNote {
    /// Parses a signed note.
    ///
    /// # Errors
    ///
    /// [`NoteError`] when the text is not a signed note.
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        // C2SP signed notes: UTF-8 without control characters but the newline (a `\r` before a
        // newline would be another text of the same note).
        if text.chars().any(|c| c.is_ascii_control() && c != '\n') {
            return Err(NoteError("control character in the note"));
        }
        let split = text
            .rfind("\n\n")
            .ok_or(NoteError("no blank line before signatures"))?;
        let (body, sigs) = text.split_at(split + 1);
        let sigs = sigs
            .strip_prefix('\n')
            .ok_or(NoteError("no blank line before signatures"))?;
        if !sigs.ends_with('\n') {
            return Err(NoteError("signatures must end with a newline"));
        }
        let mut signatures = Vec::new();
        for line in sigs.lines() {
            if signatures.len() == MAX_NOTE_SIGNATURES {
                return Err(NoteError("more signature lines than a note may carry"));
            }
            let line = line
                .strip_prefix("\u{2014} ")
                .ok_or(NoteError("signature line must start with an em dash"))?;
            let (name, blob) = line
                .split_once(' ')
                .ok_or(NoteError("signature line needs a name and a signature"))?;
            if !valid_name(name) {
                return Err(NoteError(
                    "a signature line's key name is empty or holds `+` or a space",
                ));
            }
            let blob = B64
                .decode(blob)
                .map_err(|_| NoteError("signature is not base64"))?;
            if blob.len() < 5 {
                return Err(NoteError("signature too short"));
            }
            let (id, signature) = blob.split_at(4);
            let mut key_id = [0u8; 4];
            key_id.copy_from_slice(id);
            if signatures
                .iter()
                .any(|s: &NoteSignature| s.name == name && s.id == key_id)
            {
                return Err(NoteError("two signature lines by the same key"));
            }
            signatures.push(NoteSignature {
                name: name.to_owned(),
                id: key_id,
                signature: signature.to_vec(),
            });
        }
        if signatures.is_empty() {
            return Err(NoteError("no signatures"));
        }
        Ok(SignedNote {
            body: body.to_owned(),
            signatures,
        })
    }

    /// Whether the note has a signature line by `key` (its name and key id), well-formed or not.
    pub(crate) fn has_line_by(&self, key: &VerifierKey) -> bool {
        self.signatures
            .iter()
            .any(|s| s.name == key.name && s.id == key.id)
    }

    /// The 64-byte Ed25519 signature by `key`, if the note carries one (not yet verified).
    pub fn signature_by(&self, key: &VerifierKey) -> Option<[u8; 64]> {
        self.signatures
            .iter()
            .find(|s| s.name == key.name && s.id == key.id)
            .and_then(|s| <[u8; 64]>::try_from(s.signature.as_slice()).ok())
    }
}

/// A C2SP tlog checkpoint body: origin, tree size and root hash, and extension lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's origin line.
    pub origin: String,
    /// The number of leaves.
    pub size: u64,
    /// The root hash.
    pub root: Hash,
    /// Extension lines after the root (this crate writes `time <time>` and `id <id>` of the
    /// checkpoint record itself, so that its own envelope is signed too).
    pub extensions: Vec<String>,
}

impl Checkpoint {
    /// The note body: `origin\nsize\nbase64(root)\n`, then one line per extension.
    pub fn body(&self) -> String {
        let mut body = format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        );
        for line in &self.extensions {
            body.push_str(line);
            body.push('\n');
        }
        body
    }

    /// Signs the body with every key in `keys`, giving the signed note text.
    pub fn sign(&self, keys: &[&SigningKey]) -> String {
        let body = self.body();
        let mut text = body.clone();
        text.push('\n');
        for key in keys {
            text.push_str(&key.sign_note_line(&body));
        }
        text
    }

    /// Parses a checkpoint body (extension lines after the root are kept in
    /// [`extensions`](Self::extensions)).
    ///
    /// # Errors
    ///
    /// [`NoteError`] when the body is not a checkpoint.
    pub fn parse_body(body: &str) -> Result<Self, NoteError> {
        // Every line ends with a newline, and none is empty (C2SP tlog-checkpoint): an empty
        // line would end the checkpoint early and turn what follows into nothing.
        let body = body
            .strip_suffix('\n')
            .ok_or(NoteError("a checkpoint body ends with a newline"))?;
        if body.split('\n').any(str::is_empty) {
            return Err(NoteError("a checkpoint has no empty line"));
        }
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|o| !o.is_empty());
        let size = lines.next();
        let root = lines.next();
        let (Some(origin), Some(size), Some(root)) = (origin, size, root) else {
            return Err(NoteError("a checkpoint has origin, size and root lines"));
        };
        if size.is_empty()
            || !size.bytes().all(|b| b.is_ascii_digit())
            || size.starts_with("0") && size.len() > 1
        {
            return Err(NoteError("bad tree size"));
        }
        let size = size.parse().map_err(|_| NoteError("bad tree size"))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or(NoteError("bad root hash"))?;
        let extensions = lines.map(str::to_owned).collect();
        Ok(Checkpoint {
            origin: origin.to_owned(),
            size,
            root,
            extensions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn note_sign_parse_verify_round_trip() {
        let key = SigningKey::from_seed("example.com/log", &[7; 32]).unwrap();
        let vk = key.verifier_key();
        let cp = Checkpoint {
            origin: "example.com/log".into(),
            size: 42,
            root: [3; 32],
            extensions: vec!["time x".into()],
        };
        let text = cp.sign(&[&key]);
        let note = SignedNote::parse(&text).unwrap();
        assert_eq!(Checkpoint::parse_body(&note.body).unwrap(), cp);
        let sig = note.signature_by(&vk).unwrap();
        assert!(vk.verify(note.body.as_bytes(), &sig));
        assert!(!vk.verify(b"other", &sig));
        let parsed: VerifierKey = vk.to_string().parse().unwrap();
        assert_eq!(parsed, vk);
        // The same signature with S + L: another encoding of the same scalar, refused.
        let mut s_plus_l = sig;
        crate::ed25519::add_order(&mut s_plus_l[32..]);
        assert_ne!(s_plus_l, sig);
        assert!(!vk.verify(note.body.as_bytes(), &s_plus_l));
    }

    #[test]
    fn key_id_follows_c2sp() {
        // The key id is SHA-256(name || "\n" || 0x01 || pubkey)[:4].
        let key = SigningKey::from_seed("n", &[1; 32]).unwrap();
        let pk = key.verifier_key();
        let mut h = Sha256::new();
        h.update(b"n\n\x01");
        h.update(pk.dalek().as_bytes());
        assert_eq!(&h.finalize()[..4], &pk.id());
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert!(VerifierKey::parse("name+00000000+AQ==").is_err());
        assert!(VerifierKey::parse("nope").is_err());
        let key = SigningKey::from_seed("k", &[2; 32]).unwrap();
        let text = key.verifier_key().to_string();
        let wrong_id = text.replacen('+', "+0", 1).replacen("+0", "+", 0);
        let mut tampered = text.clone();
        tampered.replace_range(2..3, if &text[2..3] == "0" { "1" } else { "0" });
        assert!(VerifierKey::parse(&tampered).is_err(), "{wrong_id}");
        assert!(SigningKey::generate("bad name").is_err());
    }
}
