//! [`PolicyHandle`]: a policy that can be replaced at run time, atomically.

use std::{fmt, path::Path, sync::Arc};

use arc_swap::ArcSwap;

use super::{PolicyError, PolicySet};
use crate::{
    Action, Authorizer, Context, Evaluation, Identity, Resource, RouteBinding, http::RequestFacts,
};

/// A shared, swappable [`PolicySet`]. Cheap to clone: clones share the policy.
///
/// Every decision reads one policy from start to end, and the [`Guard`](crate::Guard) maps a
/// request's route and makes its route-level decision with the same policy
/// ([`Authorizer::snapshot`]); a reload swaps the whole set atomically (no lock on the request
/// path). A file that fails to load is refused with its errors and the policy in force stays.
///
/// ```
/// use aaa_core::policy::PolicyHandle;
///
/// let handle = PolicyHandle::from_toml("version = \"1\"", "v1.toml")?;
/// assert!(handle.replace_toml("version = \"2\"\n[[rules]]\nid = \"x\"\neffect = \"allow\"\nactions = []", "bad.toml").is_err());
/// assert_eq!(handle.current().version(), "1");
/// handle.replace_toml("version = \"2\"", "v2.toml")?;
/// assert_eq!(handle.current().version(), "2");
/// # Ok::<(), aaa_core::policy::PolicyError>(())
/// ```
#[derive(Clone)]
pub struct PolicyHandle {
    current: Arc<ArcSwap<PolicySet>>,
}

impl PolicyHandle {
    /// A handle holding `policy`.
    pub fn new(policy: PolicySet) -> Self {
        PolicyHandle {
            current: Arc::new(ArcSwap::from_pointee(policy)),
        }
    }

    /// Loads the first policy from a file.
    ///
    /// # Errors
    ///
    /// The file's [`PolicyError`].
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        PolicySet::from_file(path).map(Self::new)
    }

    /// Loads the first policy from TOML text.
    ///
    /// # Errors
    ///
    /// The text's [`PolicyError`].
    pub fn from_toml(text: &str, file: &str) -> Result<Self, PolicyError> {
        PolicySet::from_toml(text, file).map(Self::new)
    }

    /// The policy in force now.
    pub fn current(&self) -> Arc<PolicySet> {
        self.current.load_full()
    }

    /// Puts `policy` in force.
    pub fn replace(&self, policy: PolicySet) {
        self.current.store(Arc::new(policy));
    }

    /// Compiles `text` and, if it is valid, puts it in force.
    ///
    /// # Errors
    ///
    /// The new text's [`PolicyError`]; the old policy stays in force.
    pub fn replace_toml(&self, text: &str, file: &str) -> Result<(), PolicyError> {
        let next = PolicySet::from_toml(text, file)?;
        self.replace(next);
        Ok(())
    }

    /// Reloads the policy from a (changed) file.
    ///
    /// # Errors
    ///
    /// The file's [`PolicyError`]; the old policy stays in force.
    pub fn reload_file(&self, path: impl AsRef<Path>) -> Result<(), PolicyError> {
        let next = PolicySet::from_file(path)?;
        tracing::info!(version = next.version(), "policy reloaded");
        self.replace(next);
        Ok(())
    }
}

impl fmt::Debug for PolicyHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PolicyHandle")
            .field("current", &*self.current.load())
            .finish()
    }
}

impl Authorizer for PolicyHandle {
    fn bind_route(&self, facts: &RequestFacts) -> RouteBinding {
        self.current.load().route(facts)
    }

    fn authorize(
        &self,
        identity: &Identity,
        action: &Action,
        resource: &Resource,
        context: &Context,
    ) -> Evaluation {
        self.current
            .load()
            .authorize(identity, action, resource, context)
    }

    /// The policy in force now.
    fn snapshot(&self) -> Option<Arc<dyn Authorizer>> {
        Some(self.current())
    }
}
