//! An optional cache of verified tokens, so a client repeating its token skips the signature
//! check.
//!
//! - Keyed by the SHA-256 of the whole token (so no two tokens share an entry) and bounded: when
//!   full, expired entries are purged, then an arbitrary entry is evicted.
//! - An entry is used only while the token is valid by the clock (`exp` plus leeway) and while the
//!   very key that verified it is still in the issuer's current key set: a refresh that removes
//!   or replaces the key (or any refresh at all, since a refresh builds new key objects) drops the
//!   cached verdicts. The key store's staleness rule (503 past the maximum staleness) still
//!   applies on every hit.
//! - Only successful verifications are cached.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use jsonwebtoken::Algorithm;

use crate::{Principal, Timestamp, authn::VerificationKey};

#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) principal: Arc<Principal>,
    /// Shared, so that a hit copies no string.
    pub(crate) issuer: Arc<str>,
    pub(crate) kid: Option<Arc<str>>,
    pub(crate) alg: Algorithm,
    pub(crate) key: Arc<VerificationKey>,
    /// `exp` plus leeway: the entry is dead from then on.
    pub(crate) valid_until: Timestamp,
}

#[derive(Debug)]
pub(crate) struct TokenCache {
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn get(&self, hash: &[u8; 32], now: Timestamp) -> Option<Entry> {
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.get(hash)?;
        if now >= entry.valid_until {
            entries.remove(hash);
            return None;
        }
        Some(entry.clone())
    }

    pub(crate) fn remove(&self, hash: &[u8; 32]) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(hash);
        }
    }

    pub(crate) fn insert(&self, hash: [u8; 32], entry: Entry, now: Timestamp) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, e| now < e.valid_until);
        }
        if entries.len() >= self.capacity
            && let Some(victim) = entries.keys().next().copied()
        {
            entries.remove(&victim);
        }
        entries.insert(hash, entry);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map(|e| e.len()).unwrap_or(0)
    }
}
