//! The framework-neutral part of the documents demo: its users, its documents, its own small
//! identity provider, and the `Guard` (JWT authentication, the docs-service policy, a signed audit
//! log in a directory). `main.rs` (axum) and `../docs_service_actix/main.rs` (actix-web) put
//! routes around it; the conformance suite in `tests/` starts it on 127.0.0.1:0.
#![allow(
    dead_code,
    reason = "shared by the demo binaries and the tests, which each use a part"
)]

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use aaa::{
    BoxFuture, Clock, Guard, LoadError, PolicyHandle, Resource, ResourceLoader, SystemClock,
    audit::{AuditSink, AuditWriter, AuditWriterConfig, load_or_generate_key},
    authn::{
        Algorithm, ApiKeyAuthenticator, ApiKeyConfig, ApiKeyRecord, CachePolicy, ClaimMapping,
        ForwardedIdentityAuthenticator, ForwardedIdentityConfig, HttpOptions, IssuerConfig,
        JwtAuthenticator, KeySet, KeyStore, OidcDiscovery,
    },
};
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use serde::Serialize;

/// The audience of the demo's tokens.
pub(crate) const AUDIENCE: &str = "docs-service";

/// Settings, from the command line.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// Where to listen. Defaults to 127.0.0.1:8080.
    pub(crate) listen: SocketAddr,
    /// Where the audit log (and its key) live. Defaults to `./audit-data`.
    pub(crate) audit_dir: PathBuf,
    /// The policy file. Defaults to `examples/policies/docs_service.toml`.
    pub(crate) policy: PathBuf,
    /// A real OIDC issuer to trust beside the demo's own (discovery + JWKS).
    pub(crate) issuer: Option<String>,
    /// The audience tokens from `issuer` must carry.
    pub(crate) audience: Option<String>,
    /// Whether the demo's own identity provider is trusted and serves tokens
    /// (`--no-demo-idp` turns it off, leaving `issuer` alone trusted).
    pub(crate) demo_idp: bool,
    /// Whether the demo's identity provider may serve beyond a loopback address
    /// (`--expose-demo-idp`): it mints tokens for anyone who asks, administrators included.
    pub(crate) expose_demo_idp: bool,
    /// How durable each kind of audit event must be before the request goes on. Defaults to the
    /// writer's defaults (authorization decisions wait for `fdatasync`).
    pub(crate) durability: Option<aaa::audit::DurabilityPolicy>,
    /// How many verified tokens to remember, so a repeated token skips the signature check.
    /// Defaults to 10,000; 0 turns the cache off.
    pub(crate) token_cache: usize,
    /// Run the guard without recording anything (for benchmarks that isolate the log's cost).
    pub(crate) unaudited: bool,
    /// The mesh proxy whose forwarded client certificates (`x-forwarded-client-cert`) are
    /// believed. Defaults to 10.255.255.254/32, where none runs here: a forged header is ignored.
    pub(crate) trusted_proxy: String,
}

impl Options {
    /// Defaults, with `audit_dir` for the log.
    pub(crate) fn new(audit_dir: impl Into<PathBuf>) -> Self {
        Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            audit_dir: audit_dir.into(),
            policy: PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/examples/policies/docs_service.toml"
            )),
            issuer: None,
            audience: None,
            demo_idp: true,
            expose_demo_idp: false,
            durability: None,
            token_cache: 10_000,
            unaudited: false,
            trusted_proxy: "10.255.255.254/32".to_owned(),
        }
    }

    /// Parses `--listen ADDR --audit-dir DIR --policy FILE --issuer URL --audience AUD
    /// --no-demo-idp` (the binaries take `--self-test` out first).
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut options = Options::new("audit-data");
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or(format!("{flag} needs a value"));
            match flag.as_str() {
                "--listen" => {
                    options.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?
                }
                "--audit-dir" => options.audit_dir = value()?.into(),
                "--policy" => options.policy = value()?.into(),
                "--issuer" => options.issuer = Some(value()?),
                "--audience" => options.audience = Some(value()?),
                "--no-demo-idp" => options.demo_idp = false,
                "--expose-demo-idp" => options.expose_demo_idp = true,
                "--help" | "-h" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown flag `{other}`\n{USAGE}")),
            }
        }
        if options.issuer.is_some() != options.audience.is_some() {
            return Err("--issuer and --audience go together".to_owned());
        }
        if !options.demo_idp && options.issuer.is_none() {
            return Err("--no-demo-idp needs --issuer: no token would be trusted".to_owned());
        }
        Ok(options)
    }
}

/// Usage of the demo's flags.
pub(crate) const USAGE: &str = "flags: --listen ADDR (127.0.0.1:8080)  --audit-dir DIR (./audit-data)  \
--policy FILE  --issuer URL --audience AUD (trust a real OIDC issuer too)  --no-demo-idp (trust that \
issuer's tokens only: the demo's own identity provider is off; the demo service's API key stays)  --expose-demo-idp (let the demo's identity \
provider, which mints tokens for anyone, serve on a --listen address beyond loopback)  --self-test (a short session against itself, \
then verify the log and exit)";

/// A demo user.
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// Login name and `sub`.
    pub(crate) id: &'static str,
    /// Tenant.
    pub(crate) tenant: &'static str,
    /// Directly assigned roles.
    pub(crate) roles: &'static [&'static str],
    /// Suspended users are denied everything.
    pub(crate) suspended: bool,
}

/// The demo's users.
pub(crate) const USERS: &[User] = &[
    User {
        id: "alice",
        tenant: "acme",
        roles: &["editor"],
        suspended: false,
    },
    User {
        id: "bob",
        tenant: "acme",
        roles: &["viewer"],
        suspended: false,
    },
    User {
        id: "carol",
        tenant: "acme",
        roles: &["admin"],
        suspended: false,
    },
    User {
        id: "erin",
        tenant: "acme",
        roles: &["auditor"],
        suspended: false,
    },
    User {
        id: "mallory",
        tenant: "acme",
        roles: &["editor"],
        suspended: true,
    },
    User {
        id: "dave",
        tenant: "globex",
        roles: &["admin"],
        suspended: false,
    },
];

/// A document.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Doc {
    /// Its id.
    pub(crate) id: String,
    /// Its tenant.
    pub(crate) tenant: String,
    /// Who owns it.
    pub(crate) owner: String,
    /// `public`, `internal` or `secret`.
    pub(crate) classification: String,
    /// Its text.
    pub(crate) text: String,
}

impl Doc {
    /// The document as a resource to create: it has no owner yet, so only the grants for
    /// creating apply (editors, admins), not the owner's.
    pub(crate) fn draft_resource(&self) -> Resource {
        Resource::new("Document")
            .with_id(&self.id)
            .with_attribute("tenant", self.tenant.as_str())
            .with_attribute("classification", self.classification.as_str())
    }

    /// The document as the policy sees it.
    pub(crate) fn resource(&self) -> Resource {
        Resource::new("Document")
            .with_id(&self.id)
            .with_attribute("tenant", self.tenant.as_str())
            .with_attribute("owner", self.owner.as_str())
            .with_attribute("classification", self.classification.as_str())
    }
}

/// The documents, in memory.
#[derive(Debug)]
pub(crate) struct Store {
    docs: RwLock<BTreeMap<String, Doc>>,
}

impl Store {
    /// The demo's four documents, in two tenants.
    pub(crate) fn seeded() -> Self {
        let doc = |id: &str, tenant: &str, owner: &str, classification: &str, text: &str| {
            (
                id.to_owned(),
                Doc {
                    id: id.to_owned(),
                    tenant: tenant.to_owned(),
                    owner: owner.to_owned(),
                    classification: classification.to_owned(),
                    text: text.to_owned(),
                },
            )
        };
        Store {
            docs: RwLock::new(BTreeMap::from([
                doc("d1", "acme", "alice", "internal", "roadmap"),
                doc("d2", "acme", "carol", "secret", "acquisition plan"),
                doc("d3", "acme", "bob", "public", "press release"),
                doc("d4", "globex", "dave", "internal", "globex budget"),
            ])),
        }
    }

    /// One document.
    pub(crate) fn get(&self, id: &str) -> Option<Doc> {
        self.docs.read().ok()?.get(id).cloned()
    }

    /// The document `id` as the policy sees it, without copying the document.
    pub(crate) fn resource(&self, id: &str) -> Option<Resource> {
        self.docs.read().ok()?.get(id).map(Doc::resource)
    }

    /// Every document, in id order.
    pub(crate) fn all(&self) -> Vec<Doc> {
        self.docs
            .read()
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Inserts a new document; `false` if its id is taken (by a concurrent create, say: the
    /// check that the id is unused and the insertion are one step, so that nobody's document is
    /// replaced by another's).
    pub(crate) fn insert_new(&self, doc: Doc) -> bool {
        let Ok(mut docs) = self.docs.write() else {
            return false;
        };
        match docs.entry(doc.id.clone()) {
            std::collections::btree_map::Entry::Vacant(slot) => {
                slot.insert(doc);
                true
            }
            std::collections::btree_map::Entry::Occupied(_) => false,
        }
    }

    /// Replaces the text of the document `id`, if it still exists (never recreates one deleted
    /// meanwhile); the document as updated.
    pub(crate) fn update_text(&self, id: &str, text: String) -> Option<Doc> {
        let mut docs = self.docs.write().ok()?;
        let doc = docs.get_mut(id)?;
        doc.text = text;
        Some(doc.clone())
    }

    /// Removes a document.
    pub(crate) fn remove(&self, id: &str) -> Option<Doc> {
        self.docs.write().ok()?.remove(id)
    }
}

/// Fills in the attributes of documents and audit logs before route-level decisions.
#[derive(Debug)]
struct Loader(Arc<Store>);

impl ResourceLoader for Loader {
    fn load<'a>(
        &'a self,
        resource: &'a Resource,
    ) -> BoxFuture<'a, Result<Option<Resource>, LoadError>> {
        let id = resource.id.as_deref().unwrap_or_default();
        let found = match resource.resource_type.as_str() {
            "Document" => self.0.resource(id),
            // Audit logs are named after their tenant: `/audit-logs/acme`.
            "AuditLog" => USERS
                .iter()
                .any(|u| u.tenant == id)
                .then(|| resource.clone().with_attribute("tenant", id)),
            _ => None,
        };
        Box::pin(std::future::ready(Ok(found)))
    }
}

/// The demo's own identity provider: an Ed25519 key made at start-up, a JWKS, and tokens.
#[derive(Debug)]
pub(crate) struct Idp {
    /// The issuer URL (`http://<listen address>`).
    pub(crate) issuer: String,
    kid: String,
    encoding: EncodingKey,
    /// The public key set, as served at `/.well-known/jwks.json`.
    pub(crate) jwks: serde_json::Value,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    tenant: &'a str,
    roles: &'a [&'a str],
    suspended: bool,
    amr: Vec<&'a str>,
}

impl Idp {
    fn new(issuer: String) -> Result<Self, String> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| format!("no randomness: {e}"))?;
        let public = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        // PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410).
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let kid = format!("demo-{}", &b64.encode(public)[..8]);
        let jwks = serde_json::json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
            "kid": kid, "x": b64.encode(public),
        }]});
        Ok(Idp {
            issuer,
            kid,
            encoding: EncodingKey::from_ed_der(&der),
            jwks,
        })
    }

    /// A 15-minute access token for demo user `user`, with `otp` in `amr` when `mfa`.
    pub(crate) fn token(&self, user: &str, mfa: bool, now: i64) -> Option<String> {
        let u = USERS.iter().find(|u| u.id == user)?;
        let claims = Claims {
            iss: &self.issuer,
            sub: u.id,
            aud: AUDIENCE,
            iat: now,
            nbf: now,
            exp: now + 900,
            tenant: u.tenant,
            roles: u.roles,
            suspended: u.suspended,
            amr: if mfa { vec!["pwd", "otp"] } else { vec!["pwd"] },
        };
        let mut header = Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, &claims, &self.encoding).ok()
    }

    /// The OIDC discovery document.
    pub(crate) fn discovery(&self) -> serde_json::Value {
        serde_json::json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/.well-known/jwks.json", self.issuer),
            "id_token_signing_alg_values_supported": ["EdDSA"],
        })
    }
}

/// The running demo's parts.
#[derive(Debug)]
pub(crate) struct Demo {
    /// Authenticates, authorizes and audits.
    pub(crate) guard: Guard,
    /// The documents.
    pub(crate) store: Arc<Store>,
    /// The demo's identity provider.
    pub(crate) idp: Idp,
    /// Whether `idp` is trusted and serves tokens (off with `--no-demo-idp`).
    pub(crate) own_idp: bool,
    /// The audit log.
    pub(crate) audit: Arc<AuditWriter>,
    /// The API key of the demo's `indexer` service (a viewer of tenant acme), made at start-up.
    pub(crate) indexer_key: String,
    /// The verifier key of the audit log, for `aaa audit verify`.
    pub(crate) verifier_key: String,
    /// The clock.
    pub(crate) clock: Arc<dyn Clock>,
}

impl Demo {
    /// Builds the demo for a server bound at `addr`. `extra_sink` receives every event too (the
    /// conformance suite counts them).
    pub(crate) fn new(
        options: &Options,
        addr: SocketAddr,
        extra_sink: Option<Arc<dyn AuditSink>>,
    ) -> Result<Demo, String> {
        if options.demo_idp && !addr.ip().is_loopback() && !options.expose_demo_idp {
            return Err(format!(
                "the demo's identity provider mints tokens for anyone who asks (administrators and \
                 MFA included), so it serves on a loopback address only, not on {addr}. Trust a \
                 real issuer instead (--issuer URL --audience AUD --no-demo-idp), or add \
                 --expose-demo-idp if everyone who can reach {addr} may be anyone"
            ));
        }
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let idp = Idp::new(format!("http://{addr}"))?;
        let store = Arc::new(Store::seeded());

        // Tokens of the demo's own issuer: EdDSA only, `at+jwt` only, roles/tenant from claims.
        let own_keys = KeySet::from_jwks_json(idp.jwks.to_string().as_bytes(), false)
            .map_err(|e| e.to_string())?;
        let mut issuer = IssuerConfig::new(&idp.issuer, [AUDIENCE])
            .with_algorithms([Algorithm::EdDSA])
            .with_claims(
                ClaimMapping::default()
                    .with_roles(["roles"])
                    .with_tenant("tenant"),
            );
        issuer.require_access_token_type = true;
        let mut jwt = JwtAuthenticator::builder()
            .clock(clock.clone())
            .verified_token_cache(options.token_cache);
        if options.demo_idp {
            jwt = jwt.issuer(issuer, KeyStore::fixed(own_keys, clock.clone()));
        }
        if let (Some(url), Some(audience)) = (&options.issuer, &options.audience) {
            let source =
                OidcDiscovery::new(url, HttpOptions::default()).map_err(|e| e.to_string())?;
            let config = IssuerConfig::new(url, [audience.as_str()]).with_claims(
                ClaimMapping::default()
                    .with_roles(["roles", "realm_access.roles"])
                    .with_tenant("tenant"),
            );
            jwt = jwt.issuer(
                config,
                KeyStore::new(source, CachePolicy::default(), clock.clone()),
            );
        }
        let jwt = jwt.build().map_err(|e| e.to_string())?;

        // Services call with an API key: `x-api-key: aaa_indexer_<secret>`.
        let mut secret = [0u8; 24];
        getrandom::fill(&mut secret).map_err(|e| format!("no randomness: {e}"))?;
        let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        let mut indexer = ApiKeyRecord::new("indexer", "indexer", &secret).with_roles(["viewer"]);
        indexer.tenant = Some("acme".to_owned());
        let api_keys = ApiKeyAuthenticator::new(ApiKeyConfig::new("aaa", [indexer]), clock.clone())
            .map_err(|e| e.to_string())?;
        let indexer_key = format!("aaa_indexer_{secret}");
        // Service identities forwarded by a mesh proxy are trusted only from the proxy's address
        // (by default none runs here: a forged `x-forwarded-client-cert` is ignored, and named in
        // the request's audit records), and only of the mesh's trust domain.
        let proxy = options
            .trusted_proxy
            .parse()
            .map_err(|e| format!("the trusted proxy: {e}"))?;
        let forwarded = ForwardedIdentityAuthenticator::new(
            ForwardedIdentityConfig::new([proxy]).with_trust_domains(["acme"]),
            clock.clone(),
        );

        let policy = PolicyHandle::from_file(&options.policy).map_err(|e| e.render())?;

        std::fs::create_dir_all(&options.audit_dir)
            .map_err(|e| format!("{}: {e}", options.audit_dir.display()))?;
        let key_file = options.audit_dir.join("audit.key");
        let public = options.audit_dir.join("audit.pub");
        let log_dir = options.audit_dir.join("log");
        let has_log = std::fs::read_dir(&log_dir).is_ok_and(|mut d| d.next().is_some());
        if !key_file.exists() && (public.exists() || has_log) {
            // A new key could not sign on to the log: refused before one is made, so the
            // directory stays as it was for the key to be restored.
            return Err(format!(
                "{} is missing, but {} holds a log signed with it: restore the key, or start \
                 with a new --audit-dir",
                key_file.display(),
                options.audit_dir.display()
            ));
        }
        let key = load_or_generate_key(&key_file, "docs-service").map_err(|e| e.to_string())?;
        let verifier_key = key.verifier_key().to_string();
        match std::fs::read_to_string(&public) {
            Ok(text) if text.trim() == verifier_key => {}
            Ok(_) => {
                return Err(format!(
                    "{} does not hold the public key of {}",
                    public.display(),
                    key_file.display()
                ));
            }
            Err(_) => {
                std::fs::write(&public, format!("{verifier_key}\n")).map_err(|e| e.to_string())?
            }
        }
        let mut config = AuditWriterConfig::new(log_dir, "docs-service", "local");
        if let Some(durability) = options.durability {
            config.durability = durability;
        }
        let audit = Arc::new(AuditWriter::open(config, key).map_err(|e| e.to_string())?);

        let sink: Arc<dyn AuditSink> = match extra_sink {
            Some(extra) => Arc::new(Tee(audit.clone(), extra)),
            None => audit.clone(),
        };
        let builder = Guard::builder()
            .authenticator(jwt)
            .authenticator(api_keys)
            .authenticator(forwarded)
            .policies(policy)
            .resources(Loader(store.clone()))
            .realm("docs");
        // Benchmarks measure the guard without its log too; the demo always records.
        let builder = if options.unaudited {
            builder.audit_disabled()
        } else {
            builder.audit_arc(sink)
        };
        let guard = builder.build().map_err(|e| e.to_string())?;
        Ok(Demo {
            guard,
            store,
            idp,
            own_idp: options.demo_idp,
            audit,
            indexer_key,
            verifier_key,
            clock,
        })
    }

    /// The document `POST /docs?id=ID&classification=C` with body `text` would create for `who`,
    /// or the status and reason to refuse it with (before any policy decision).
    pub(crate) fn draft(
        &self,
        who: &aaa::Principal,
        query: &std::collections::HashMap<String, String>,
        text: String,
    ) -> Result<Doc, (u16, &'static str)> {
        if who.kind != aaa::PrincipalKind::User {
            return Err((400, "only people create documents"));
        }
        let Some(id) = query
            .get("id")
            .filter(|id| !id.is_empty() && self.store.get(id).is_none())
        else {
            return Err((409, "give a new ?id="));
        };
        Ok(Doc {
            id: id.clone(),
            tenant: who.tenant.clone().unwrap_or_default(),
            owner: who.id.clone(),
            classification: query
                .get("classification")
                .cloned()
                .unwrap_or_else(|| "internal".to_owned()),
            text,
        })
    }

    /// The current time in Unix seconds.
    pub(crate) fn now(&self) -> i64 {
        self.clock.now().unix_seconds()
    }

    /// What to print at start-up.
    pub(crate) fn banner(&self, addr: SocketAddr, audit_dir: &Path) -> String {
        let base = format!("http://{addr}");
        let warning = if self.own_idp && !addr.ip().is_loopback() {
            format!(
                "WARNING: the demo's identity provider serves on {addr} (--expose-demo-idp): \
                 anyone who can reach it gets a token for any demo user, administrators and MFA \
                 included.\n\n"
            )
        } else {
            String::new()
        };
        // What alice's token gets, when the demo's identity provider gives it.
        let (get_token, d1, d2, d4) = if self.own_idp {
            (
                format!(
                    "Get a token for a demo user (alice, bob, carol, erin, mallory, dave; add &mfa=true for MFA):\n  \
                     TOKEN=$(curl -s -X POST '{base}/idp/token?user=alice')"
                ),
                "     # 200: alice owns d1",
                "     # 403: secret, not hers",
                "     # 403: another tenant",
            )
        } else {
            (
                "The demo's own identity provider is off (--no-demo-idp): get TOKEN from your issuer."
                    .to_owned(),
                "",
                "",
                "",
            )
        };
        let log = shell_quote(&audit_dir.join("log").display().to_string());
        let public = shell_quote(&audit_dir.join("audit.pub").display().to_string());
        format!(
            "{warning}docs-service listening on {base}\n\n\
             {get_token}\n\n\
             Then try:\n  \
             curl -i {base}/health\n  \
             curl -i {base}/docs/d1                                       # 401: no token\n  \
             curl -i -H \"Authorization: Bearer $TOKEN\" {base}/docs/d1{d1}\n  \
             curl -i -H \"Authorization: Bearer $TOKEN\" {base}/docs/d2{d2}\n  \
             curl -i -H \"Authorization: Bearer $TOKEN\" {base}/docs/d4{d4}\n  \
             curl -i -H \"Authorization: Bearer $TOKEN\" {base}/docs\n  \
             curl -i -X POST -H \"Authorization: Bearer $TOKEN\" {base}/docs/d1/share  # 403: not from 10/8\n\n\
             A service (indexer, a viewer of acme) calls with its API key:\n  \
             curl -i -H 'x-api-key: {key}' {base}/docs/d3\n\n\
             The signed audit log is in {log}; verify it (also while the demo runs) with:\n  \
             cargo run -p aaa-cli -- audit verify {log} --key {public}\n\n\
             Each answer names its record (header aaa-audit-receipt: ...; seq=N; leaf=...); once a\n\
             checkpoint covers it (within a second), prove it is in the log with:\n  \
             cargo run -p aaa-cli -- audit prove {log} --seq N --key {public}\n",
            key = self.indexer_key,
        )
    }
}

/// `text` as one word of a POSIX shell: as it is when it needs no quoting, else in single quotes.
fn shell_quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=".contains(c))
    {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Sends every event to two sinks; the first one's receipt and errors count.
#[derive(Debug)]
struct Tee(Arc<AuditWriter>, Arc<dyn AuditSink>);

impl AuditSink for Tee {
    fn record<'a>(
        &'a self,
        event: aaa::AuditEvent,
    ) -> BoxFuture<'a, Result<Option<aaa::audit::AuditReceipt>, aaa::audit::AuditError>> {
        Box::pin(async move {
            let copy = event.clone();
            let receipt = self.0.record(event).await?;
            self.1.record(copy).await?;
            Ok(receipt)
        })
    }
}

impl Demo {
    /// Covers everything written with a checkpoint and verifies the log in `audit_dir` offline.
    pub(crate) async fn verify_log(
        &self,
        audit_dir: &Path,
    ) -> Result<aaa::audit::VerifyReport, String> {
        self.audit
            .checkpoint_now()
            .await
            .map_err(|e| e.to_string())?;
        let key = aaa::audit::VerifierKey::parse(&self.verifier_key).map_err(|e| e.to_string())?;
        aaa::audit::Verifier::new([key])
            .verify_dir(&audit_dir.join("log"))
            .map_err(|e| e.to_string())
    }
}

/// Sends `method path` to `addr` with one extra header line (or none), over a fresh connection,
/// and returns the response status: the examples' tiny HTTP client.
pub(crate) async fn status_of(
    addr: SocketAddr,
    method: &str,
    path: &str,
    header: &str,
) -> Result<u16, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let extra = if header.is_empty() {
        String::new()
    } else {
        format!("{header}\r\n")
    };
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: demo\r\nConnection: close\r\nContent-Length: 0\r\n{extra}\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&reply)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| "no status line".to_owned())
}

/// Every (method, route) both apps (axum and actix-web) serve; at start-up the demo warns about any the policy does
/// not map (requests to those are denied).
#[allow(
    dead_code,
    reason = "used by the demo binary and the tests, not by every example"
)]
pub(crate) const ROUTES: &[(&str, &str)] = &[
    ("GET", "/health"),
    ("POST", "/idp/token"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/docs"),
    ("POST", "/docs"),
    ("GET", "/docs/{id}"),
    ("PUT", "/docs/{id}"),
    ("DELETE", "/docs/{id}"),
    ("POST", "/docs/{id}/share"),
    ("GET", "/audit-logs/{tenant}"),
    ("GET", "/admin/policy"),
];

/// The routes of [`ROUTES`] the policy does not map.
#[allow(
    dead_code,
    reason = "used by the demo binary and the tests, not by every example"
)]
pub(crate) fn unmapped(demo: &Demo) -> Vec<String> {
    let routes = ROUTES
        .iter()
        .filter_map(|(m, r)| Some((m.parse().ok()?, *r)));
    demo.guard
        .unmapped_routes(routes)
        .into_iter()
        .map(|(m, r)| format!("{m} {r}"))
        .collect()
}

/// Prints a line on stdout. A closed stdout (`docs_service | head -3`) is no reason to stop
/// serving: `println!` would panic there.
#[allow(dead_code, reason = "used by the demo binaries, not by the tests")]
pub(crate) fn say(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

#[allow(dead_code, reason = "used by the demo binaries, not by the tests")]
/// A short scripted session: what a person would try first.
pub(crate) async fn exercise(addr: SocketAddr, demo: &Demo) -> Result<(), String> {
    let token = demo
        .idp
        .token("alice", false, demo.now())
        .ok_or("no token")?;
    let auth = format!("Authorization: Bearer {token}");
    for (method, path, header, want) in [
        ("GET", "/health", "", 200),
        ("GET", "/docs/d1", "", 401),
        ("GET", "/docs/d1", auth.as_str(), 200),
        ("GET", "/docs/d2", auth.as_str(), 403),
        ("GET", "/docs/d4", auth.as_str(), 403),
        ("POST", "/docs/d1/share", auth.as_str(), 403),
        ("GET", "/docs/d1", "Authorization: Bearer not.a.token", 401),
    ] {
        let status = status_of(addr, method, path, header).await?;
        say(format_args!("{method} {path} -> {status}"));
        if status != want {
            return Err(format!("{method} {path}: expected {want}, got {status}"));
        }
    }
    Ok(())
}
