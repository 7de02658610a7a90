//! An optional cache of verified tokens, so a client repeating its token skips the signature
//! check.
//!
//! - Keyed by the SHA-256 of the whole token (so no two tokens share an entry) and bounded: when
//!   full, expired entries are purged, then an arbitrary entry is evicted. A purge walks every
//!   entry under the lock, so it runs at most once per eighth of the capacity inserted: a cache
//!   kept full of live tokens (by a client holding many) costs each insert O(1), not a walk.
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
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    map: HashMap<[u8; 32], Entry>,
    /// Inserts since expired entries were last purged.
    since_purge: usize,
    /// Purges so far.
    #[cfg(test)]
    purges: u64,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> Self {
        TokenCache {
            capacity,
            entries: Mutex::new(Entries::default()),
        }
    }

    pub(crate) fn get(&self, hash: &[u8; 32], now: Timestamp) -> Option<Entry> {
        let mut entries = self.entries.lock().ok()?;
        let entry = entries.map.get(hash)?;
        if now >= entry.valid_until {
            entries.map.remove(hash);
            return None;
        }
        Some(entry.clone())
    }

    pub(crate) fn remove(&self, hash: &[u8; 32]) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.map.remove(hash);
        }
    }

    pub(crate) fn insert(&self, hash: [u8; 32], entry: Entry, now: Timestamp) {
        if self.capacity == 0 {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        let entries = &mut *entries;
        entries.since_purge = entries.since_purge.saturating_add(1);
        if entries.map.len() >= self.capacity && entries.since_purge >= (self.capacity / 8).max(1) {
            entries.map.retain(|_, e| now < e.valid_until);
            entries.since_purge = 0;
            #[cfg(test)]
            {
                entries.purges += 1;
            }
        }
        if entries.map.len() >= self.capacity
            && !entries.map.contains_key(&hash)
            && let Some(victim) = entries.map.keys().next().copied()
        {
            entries.map.remove(&victim);
        }
        entries.map.insert(hash, entry);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map(|e| e.map.len()).unwrap_or(0)
    }

    #[cfg(test)]
    fn purges(&self) -> u64 {
        self.entries.lock().map(|e| e.purges).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrincipalKind;

    fn entry(valid_until: i64) -> Entry {
        Entry {
            principal: Arc::new(Principal::new("ann", PrincipalKind::User, "idp")),
            issuer: Arc::from("idp"),
            kid: None,
            alg: Algorithm::HS256,
            key: Arc::new(
                VerificationKey::hmac(None, Algorithm::HS256, &[7; 32]).expect("a valid key"),
            ),
            valid_until: Timestamp::from_unix_seconds(valid_until),
        }
    }

    fn hash(i: usize) -> [u8; 32] {
        let mut h = [0; 32];
        h[..8].copy_from_slice(&(i as u64).to_le_bytes());
        h
    }

    /// A cache kept full of live tokens walks its entries once per eighth of its capacity
    /// inserted, not on every insert; it stays bounded and holds what was just inserted.
    #[test]
    fn a_cache_full_of_live_tokens_does_not_walk_them_on_every_insert() {
        let cache = TokenCache::new(64);
        let now = Timestamp::from_unix_seconds(1_000);
        for i in 0..64 {
            cache.insert(hash(i), entry(2_000), now);
        }
        assert_eq!(cache.purges(), 0);
        for i in 64..64 + 800 {
            cache.insert(hash(i), entry(2_000), now);
            assert!(cache.len() <= 64);
            assert!(cache.get(&hash(i), now).is_some());
        }
        // 800 inserts into a full cache, a purge at most every 8.
        assert!(cache.purges() <= 100, "{} purges", cache.purges());
    }

    /// Expired entries are purged before a live one is evicted, once a purge is due; an entry is
    /// never served past its end, purged or not.
    #[test]
    fn expired_entries_go_first_and_are_never_served() {
        let cache = TokenCache::new(16);
        let now = Timestamp::from_unix_seconds(1_000);
        for i in 0..8 {
            cache.insert(hash(i), entry(1_500), now);
        }
        for i in 8..16 {
            cache.insert(hash(i), entry(5_000), now);
        }
        let later = Timestamp::from_unix_seconds(2_000);
        assert!(cache.get(&hash(0), later).is_none());
        assert!(cache.get(&hash(1), later).is_none());
        // Two expired entries went when asked for; the cache fills up again, and the insert
        // that finds it full purges the six other expired ones rather than evict a live one.
        for i in 100..103 {
            cache.insert(hash(i), entry(5_000), later);
        }
        assert_eq!(cache.len(), 11);
        for i in (8..16).chain(100..103) {
            assert!(cache.get(&hash(i), later).is_some());
        }
        // Re-inserting a cached token evicts nothing.
        let full = TokenCache::new(2);
        full.insert(hash(1), entry(5_000), now);
        full.insert(hash(2), entry(5_000), now);
        full.insert(hash(2), entry(5_000), now);
        assert!(full.get(&hash(1), now).is_some());
    }
}
