//! The key cache: [`KeyStore`] holds one issuer's current [`KeySet`] and keeps it fresh.

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::Duration,
};

use arc_swap::ArcSwapOption;
use jsonwebtoken::Algorithm;

use super::{
    AuthnError, HttpOptions, JwksUrl, KeySet, KeySource, KeySourceError, OidcDiscovery,
    VerificationKey,
};
use crate::{Clock, Timestamp};

/// How a [`KeyStore`] caches and refreshes keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CachePolicy {
    /// Freshness when the response has no `Cache-Control: max-age`. Defaults to 5 minutes.
    pub default_ttl: Duration,
    /// Lower bound on a response's `max-age`. Defaults to 1 minute.
    pub min_ttl: Duration,
    /// Upper bound on a response's `max-age`. Defaults to 24 hours.
    pub max_ttl: Duration,
    /// Least time between two fetches not asked for explicitly (unknown `kid`, expiry, initial
    /// load after a failure). Defaults to 30 seconds.
    pub refresh_cooldown: Duration,
    /// How long a key id that a fetch confirmed absent is answered "unknown" without asking the
    /// issuer again. A key rotated in during that window waits for it (or for any other
    /// successful refresh, which clears these entries). Defaults to 30 seconds, the cooldown.
    pub negative_ttl: Duration,
    /// Most key ids remembered as unknown; beyond it, new misses are not remembered (the cooldown
    /// still bounds fetches). Defaults to 4096.
    pub max_negative_entries: usize,
    /// How long after the last successful fetch the cached keys keep verifying while the source
    /// fails; after it, tokens are answered 503. Defaults to 24 hours.
    pub max_staleness: Duration,
    /// Start a background refresh when a request finds the set expired. Defaults to `true`.
    pub refresh_on_expiry: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            default_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(60),
            max_ttl: Duration::from_secs(24 * 3600),
            refresh_cooldown: Duration::from_secs(30),
            negative_ttl: Duration::from_secs(30),
            max_negative_entries: 4096,
            max_staleness: Duration::from_secs(24 * 3600),
            refresh_on_expiry: true,
        }
    }
}

impl CachePolicy {
    /// Sets the cooldown between fetches.
    #[must_use]
    pub fn with_refresh_cooldown(mut self, cooldown: Duration) -> Self {
        self.refresh_cooldown = cooldown;
        self
    }

    /// Sets the maximum staleness.
    #[must_use]
    pub fn with_max_staleness(mut self, staleness: Duration) -> Self {
        self.max_staleness = staleness;
        self
    }

    /// Sets the TTL bounds and the default TTL.
    #[must_use]
    pub fn with_ttl(mut self, default: Duration, min: Duration, max: Duration) -> Self {
        self.default_ttl = default;
        self.min_ttl = min;
        self.max_ttl = max;
        self
    }

    /// Sets whether an expired set starts a background refresh.
    #[must_use]
    pub fn with_refresh_on_expiry(mut self, enabled: bool) -> Self {
        self.refresh_on_expiry = enabled;
        self
    }
}

/// The state of a [`KeyStore`], for health checks and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyStoreHealth {
    /// When a key set with a usable key was last fetched (or installed, for fixed keys). A key
    /// set without one is installed (the issuer withdrew its keys) but counts as a failure.
    pub last_success: Option<Timestamp>,
    /// When the last fetch started.
    pub last_attempt: Option<Timestamp>,
    /// Until when the current set is fresh.
    pub fresh_until: Option<Timestamp>,
    /// Whether the keys are older than the maximum staleness (tokens get 503).
    pub stale: bool,
    /// The ids of the current keys, sorted.
    pub key_ids: Vec<String>,
    /// Fetches started.
    pub fetches: u64,
    /// Fetches that failed, including those answering a key set without a usable key.
    pub failures: u64,
    /// Failures since the last success.
    pub consecutive_failures: u64,
    /// The last failure, if the last fetch failed (or answered no usable key).
    pub last_error: Option<String>,
}

#[derive(Debug)]
struct Snapshot {
    keys: Arc<KeySet>,
    fetched_at: Timestamp,
    fresh_until: Timestamp,
    generation: u64,
}

struct Inner {
    source: Option<Arc<dyn KeySource>>,
    policy: CachePolicy,
    clock: Arc<dyn Clock>,
    current: ArcSwapOption<Snapshot>,
    fetch_lock: tokio::sync::Mutex<()>,
    last_attempt: AtomicI64,
    last_success: AtomicI64,
    negative: Mutex<HashMap<String, Timestamp>>,
    fetches: AtomicU64,
    failures: AtomicU64,
    consecutive_failures: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// One issuer's signing keys, cached and refreshed.
///
/// Cheap to clone: clones share the cache.
///
/// - **Reads never lock.** The current set is an immutable [`KeySet`] behind an atomic pointer
///   ([`arc_swap`]); a refresh builds a new set and swaps it in.
/// - **A bad answer never replaces a good set.** A failed fetch or an unparsable document keeps
///   the cached set; one bad key in a JWKS is skipped. A well-formed key set is the issuer's
///   word: a key it no longer lists (revoked after a compromise) stops verifying at once, even
///   when none of its keys is usable here (then no token verifies, and the refresh reports
///   [`KeySourceError::Empty`]).
/// - **Freshness.** A set is fresh for the response's `Cache-Control: max-age`, clamped to
///   [`min_ttl`, `max_ttl`] (default TTL when absent). When a request finds the set expired, a
///   refresh is started in the background (on the current tokio runtime) and the request goes on
///   with the cached keys; [`KeyStore::run_refresh`] can also be spawned to refresh ahead of expiry.
/// - **Unknown `kid`.** A token naming a key id the set lacks triggers a refresh, but: concurrent
///   misses share one fetch (single flight); at most one fetch starts per `refresh_cooldown`
///   (by the injected [`Clock`]); and an id a fetch confirmed absent is remembered for
///   `negative_ttl`, so a flood of random ids costs the issuer at most one fetch per cooldown. Tokens with known ids never wait
///   for any of this.
/// - **Outage.** While fetches fail, the cached set keeps verifying until `max_staleness` after the
///   last successful fetch; after that every token gets [`AuthnError::Unavailable`] (503), never a
///   401 that would log users out, and never a 500.
/// - **Figures.** [`KeyStore::health`] reports the last success, the key ids and the failures;
///   every fetch emits a `tracing` event under the target `aaa::authn::jwks`.
#[derive(Clone)]
pub struct KeyStore {
    inner: Arc<Inner>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("source", &self.inner.source)
            .field("policy", &self.inner.policy)
            .field("key_ids", &self.current_keys().map(|k| k.key_ids()))
            .finish()
    }
}

const NEVER: i64 = i64::MIN;

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

impl KeyStore {
    /// The issuer whose keys the store's source finds, when the source knows (see
    /// [`KeySource::issuer`]).
    pub fn source_issuer(&self) -> Option<&str> {
        self.inner.source.as_deref()?.issuer()
    }
}

impl KeyStore {
    /// A store over a fixed key set (static PEM or JWK keys from configuration): never fetched,
    /// never stale.
    pub fn fixed(keys: KeySet, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now();
        let store = Self::build(None, CachePolicy::default(), clock);
        if !keys.is_empty() {
            store
                .inner
                .last_success
                .store(now.unix_micros(), Ordering::SeqCst);
        }
        store.inner.current.store(Some(Arc::new(Snapshot {
            keys: Arc::new(keys),
            fetched_at: now,
            fresh_until: Timestamp::from_unix_micros(i64::MAX),
            generation: 1,
        })));
        store
    }

    /// A store fetching from `source`. Nothing is fetched until the first token arrives or
    /// [`refresh`](Self::refresh) is called (call it at start-up to fail fast).
    pub fn new(
        source: impl KeySource + 'static,
        policy: CachePolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self::build(Some(Arc::new(source)), policy, clock)
    }

    /// A store fetching the JWKS at `url` with the default [`HttpOptions`] and [`CachePolicy`].
    ///
    /// # Errors
    ///
    /// As [`JwksUrl::new`].
    pub fn from_jwks_url(url: &str, clock: Arc<dyn Clock>) -> Result<Self, KeySourceError> {
        Ok(Self::new(
            JwksUrl::new(url, HttpOptions::default())?,
            CachePolicy::default(),
            clock,
        ))
    }

    /// A store finding `issuer`'s keys by OIDC discovery, with the default [`HttpOptions`] and
    /// [`CachePolicy`].
    ///
    /// # Errors
    ///
    /// As [`OidcDiscovery::new`].
    pub fn discover(issuer: &str, clock: Arc<dyn Clock>) -> Result<Self, KeySourceError> {
        Ok(Self::new(
            OidcDiscovery::new(issuer, HttpOptions::default())?,
            CachePolicy::default(),
            clock,
        ))
    }

    fn build(
        source: Option<Arc<dyn KeySource>>,
        policy: CachePolicy,
        clock: Arc<dyn Clock>,
    ) -> Self {
        KeyStore {
            inner: Arc::new(Inner {
                source,
                policy,
                clock,
                current: ArcSwapOption::empty(),
                fetch_lock: tokio::sync::Mutex::new(()),
                last_attempt: AtomicI64::new(NEVER),
                last_success: AtomicI64::new(NEVER),
                negative: Mutex::new(HashMap::new()),
                fetches: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                consecutive_failures: AtomicU64::new(0),
                last_error: Mutex::new(None),
            }),
        }
    }

    /// The current key set, if one was ever loaded.
    pub fn current_keys(&self) -> Option<Arc<KeySet>> {
        self.inner.current.load().as_ref().map(|s| s.keys.clone())
    }

    /// Fetches now, whatever the cooldown (waiting for a fetch already running, then fetching
    /// again). Fixed stores do nothing.
    ///
    /// # Errors
    ///
    /// The fetch's [`KeySourceError`]; the cached keys are kept. [`KeySourceError::Empty`] when
    /// the issuer answered a well-formed key set without a usable key: that set replaces the
    /// cached one (no token verifies until the issuer lists a usable key again), and the fetch
    /// counts as a failure in [`health`](Self::health).
    pub async fn refresh(&self) -> Result<(), KeySourceError> {
        let _guard = self.inner.fetch_lock.lock().await;
        self.fetch_locked().await
    }

    /// Refreshes ahead of expiry forever: sleeps (real time) until shortly before the set expires,
    /// then refreshes; after a failure, retries after the cooldown. Spawn it on the service's
    /// runtime: `tokio::spawn(store.clone().run_refresh())`.
    pub async fn run_refresh(self) {
        loop {
            let now = self.inner.clock.now();
            let wait = match self.inner.current.load().as_ref() {
                Some(s) if s.fresh_until.unix_micros() == i64::MAX => return,
                Some(s) => {
                    let left = s
                        .fresh_until
                        .unix_micros()
                        .saturating_sub(now.unix_micros());
                    // Refresh when 80 % of the freshness has passed.
                    let span = s
                        .fresh_until
                        .unix_micros()
                        .saturating_sub(s.fetched_at.unix_micros());
                    let early = left.saturating_sub(span / 5);
                    Duration::from_micros(u64::try_from(early).unwrap_or(0))
                }
                None => Duration::ZERO,
            };
            tokio::time::sleep(wait.max(Duration::from_millis(100))).await;
            if self.refresh().await.is_err() {
                tokio::time::sleep(self.inner.policy.refresh_cooldown).await;
            }
        }
    }

    /// The store's state.
    pub fn health(&self) -> KeyStoreHealth {
        let snap = self.inner.current.load_full();
        let now = self.inner.clock.now();
        let last_attempt = self.inner.last_attempt.load(Ordering::SeqCst);
        let last_success = self.inner.last_success.load(Ordering::SeqCst);
        KeyStoreHealth {
            last_success: (last_success != NEVER)
                .then(|| Timestamp::from_unix_micros(last_success)),
            last_attempt: (last_attempt != NEVER)
                .then(|| Timestamp::from_unix_micros(last_attempt)),
            fresh_until: snap.as_ref().map(|s| s.fresh_until),
            stale: snap.as_ref().is_none_or(|s| self.is_stale(s, now)),
            key_ids: snap.as_ref().map(|s| s.keys.key_ids()).unwrap_or_default(),
            fetches: self.inner.fetches.load(Ordering::SeqCst),
            failures: self.inner.failures.load(Ordering::SeqCst),
            consecutive_failures: self.inner.consecutive_failures.load(Ordering::SeqCst),
            last_error: self
                .inner
                .last_error
                .lock()
                .map(|e| e.clone())
                .unwrap_or(None),
        }
    }

    fn is_stale(&self, snap: &Snapshot, now: Timestamp) -> bool {
        self.inner.source.is_some()
            && now.unix_micros()
                > snap
                    .fetched_at
                    .unix_micros()
                    .saturating_add(micros(self.inner.policy.max_staleness))
    }

    /// The key to verify a token naming `kid` (or none) and `alg`, fetching as the rules allow.
    pub(crate) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerificationKey>, AuthnError> {
        let now = self.inner.clock.now();
        let mut snap = self.inner.current.load_full();
        let needs_fetch = match &snap {
            None => true,
            Some(s) => self.is_stale(s, now),
        };
        if needs_fetch {
            let seen = snap.as_ref().map_or(0, |s| s.generation);
            let _ = self.fetch_coalesced(seen).await;
            snap = self.inner.current.load_full();
        }
        let Some(current) = snap else {
            return Err(AuthnError::Unavailable("signing keys are unavailable"));
        };
        if self.is_stale(&current, now) {
            return Err(AuthnError::Unavailable("signing keys are too stale"));
        }
        // Expired, or fetched "in the future": the clock (wall time) was stepped back since, and
        // the set's times no longer tell its age; refresh it to re-anchor them.
        if now >= current.fresh_until || now < current.fetched_at {
            self.refresh_in_background();
        }
        if let Some(key) = current.keys.select(kid, alg) {
            return Ok(key.clone());
        }
        // A miss. Tokens without a kid do not trigger fetches: they only match a lone key.
        let Some(kid) = kid else {
            return Err(AuthnError::Invalid("no key matches the token"));
        };
        if self.is_negative(kid, now) {
            return Err(AuthnError::Invalid("unknown signing key"));
        }
        let checked = self.fetch_coalesced(current.generation).await;
        let after = self.inner.current.load_full();
        if let Some(key) = after.as_ref().and_then(|s| s.keys.select(Some(kid), alg)) {
            return Ok(key.clone());
        }
        // Remember the miss only when the issuer actually answered: a miss refused because of the
        // cooldown, or because the issuer failed, must not outlive the cooldown, or a rotated-in
        // key would wait longer.
        if checked {
            self.remember_miss(kid, now);
        }
        tracing::debug!(target: "aaa::authn::jwks", "token names an unknown key id");
        Err(AuthnError::Invalid("unknown signing key"))
    }

    fn is_negative(&self, kid: &str, now: Timestamp) -> bool {
        self.inner
            .negative
            .lock()
            .map(|m| m.get(kid).is_some_and(|until| now < *until))
            .unwrap_or(false)
    }

    fn remember_miss(&self, kid: &str, now: Timestamp) {
        let until = now.add_micros(micros(self.inner.policy.negative_ttl));
        if let Ok(mut m) = self.inner.negative.lock() {
            if m.len() >= self.inner.policy.max_negative_entries {
                m.retain(|_, t| now < *t);
            }
            if m.len() < self.inner.policy.max_negative_entries {
                m.insert(kid.to_owned(), until);
            }
        }
    }

    fn refresh_in_background(&self) {
        if !self.inner.policy.refresh_on_expiry || self.inner.source.is_none() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.fetch_lock.try_lock().is_err() || self.in_cooldown(self.inner.clock.now()) {
            return;
        }
        let store = self.clone();
        handle.spawn(async move {
            let seen = store
                .inner
                .current
                .load()
                .as_ref()
                .map_or(0, |s| s.generation);
            let _ = store.fetch_coalesced(seen).await;
        });
    }

    /// Whether the last fetch was less than a cooldown ago. A last attempt after `now` means the
    /// clock was stepped back: the cooldown is over (else it would last as long as the step and
    /// keep a rotated-in key out), and the next fetch re-anchors it.
    fn in_cooldown(&self, now: Timestamp) -> bool {
        let last = self.inner.last_attempt.load(Ordering::SeqCst);
        last != NEVER
            && now.unix_micros() >= last
            && now.unix_micros() < last.saturating_add(micros(self.inner.policy.refresh_cooldown))
    }

    /// Fetches unless another fetch installed a newer set than `seen` while we waited, or the
    /// cooldown forbids it. Concurrent callers queue on the lock and then find the new set.
    /// Returns whether the issuer answered with a key set since `seen` (to this call or to the
    /// one waited for): only an answer confirms a kid absent, not a failed fetch.
    async fn fetch_coalesced(&self, seen: u64) -> bool {
        if self.inner.source.is_none() {
            return false;
        }
        let _guard = self.inner.fetch_lock.lock().await;
        let generation = self
            .inner
            .current
            .load()
            .as_ref()
            .map_or(0, |s| s.generation);
        if generation != seen {
            return true;
        }
        if self.in_cooldown(self.inner.clock.now()) {
            return false;
        }
        self.fetch_locked().await.is_ok()
    }

    /// Fetches and installs; the caller holds the fetch lock.
    async fn fetch_locked(&self) -> Result<(), KeySourceError> {
        let Some(source) = &self.inner.source else {
            return Ok(());
        };
        let started = self.inner.clock.now();
        self.inner
            .last_attempt
            .store(started.unix_micros(), Ordering::SeqCst);
        self.inner.fetches.fetch_add(1, Ordering::SeqCst);
        match source.fetch().await {
            Ok(fetched) => {
                let empty = fetched.keys.is_empty();
                let p = &self.inner.policy;
                let ttl = fetched
                    .max_age
                    .unwrap_or(p.default_ttl)
                    .clamp(p.min_ttl, p.max_ttl.max(p.min_ttl));
                let generation = self
                    .inner
                    .current
                    .load()
                    .as_ref()
                    .map_or(0, |s| s.generation)
                    .wrapping_add(1);
                let ids = fetched.keys.key_ids();
                for why in fetched.keys.rejected() {
                    tracing::warn!(target: "aaa::authn::jwks", reason = %why, "skipped a key");
                }
                self.inner.current.store(Some(Arc::new(Snapshot {
                    keys: Arc::new(fetched.keys),
                    fetched_at: started,
                    fresh_until: started.add_micros(micros(ttl)),
                    generation,
                })));
                if let Ok(mut m) = self.inner.negative.lock() {
                    m.clear();
                }
                if empty {
                    self.inner.failures.fetch_add(1, Ordering::SeqCst);
                    self.inner
                        .consecutive_failures
                        .fetch_add(1, Ordering::SeqCst);
                    if let Ok(mut e) = self.inner.last_error.lock() {
                        *e = Some(KeySourceError::Empty.to_string());
                    }
                    tracing::warn!(
                        target: "aaa::authn::jwks",
                        "the issuer's key set holds no usable key: no token verifies until it does"
                    );
                    return Err(KeySourceError::Empty);
                }
                self.inner
                    .last_success
                    .store(started.unix_micros(), Ordering::SeqCst);
                self.inner.consecutive_failures.store(0, Ordering::SeqCst);
                if let Ok(mut e) = self.inner.last_error.lock() {
                    *e = None;
                }
                tracing::info!(
                    target: "aaa::authn::jwks",
                    key_ids = ?ids,
                    ttl_seconds = ttl.as_secs(),
                    "signing keys refreshed"
                );
                Ok(())
            }
            Err(e) => {
                self.inner.failures.fetch_add(1, Ordering::SeqCst);
                let consecutive = self
                    .inner
                    .consecutive_failures
                    .fetch_add(1, Ordering::SeqCst)
                    + 1;
                if let Ok(mut last) = self.inner.last_error.lock() {
                    *last = Some(e.to_string());
                }
                tracing::warn!(
                    target: "aaa::authn::jwks",
                    error = %e,
                    consecutive_failures = consecutive,
                    "signing key fetch failed; keeping the cached keys"
                );
                Err(e)
            }
        }
    }
}
