//! How long a module's instances live.
//!
//! - **per-node** (the default, and the only choice for modules the operator does not trust):
//!   every node and every termination callback runs in a fresh instance that is dropped
//!   afterwards. Nothing a module does in one call can be seen in another.
//! - **pooled**, for modules the operator trusts (a system module's `[modules.<name>]`, or an
//!   account's own module's `[accounts.<id>.modules.<name>]`): a warm instance is reused for
//!   later nodes and callbacks of the *same account* (never across accounts), skipping
//!   instantiation. It
//!   is discarded after any failure (a trap, a refused output, an error it returns) and after
//!   `max_uses` uses. The trade-off: memory the module leaves behind (globals, caches, a
//!   leaked allocation) is seen by the account's next calls, and a module that corrupts its
//!   own state only does so up to `max_uses` times.

use serde::Deserialize;

/// The default number of uses of a pooled instance.
pub const DEFAULT_MAX_USES: u32 = 1000;

/// How a module's instances live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lifecycle {
    /// A fresh instance for every node and callback.
    #[default]
    PerNode,
    /// Warm instances reused within an account, each for at most `max_uses` uses.
    Pooled { max_uses: u32 },
}

/// The `lifecycle` key of `[modules.<name>]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LifecycleName {
    PerNode,
    Pooled,
}

/// A lifecycle setting that cannot be right, naming its key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("{section}.max_uses: must be at least 1")]
    NoUses { section: String },
    #[error("{section}.max_uses: only for lifecycle = \"pooled\"")]
    UsesWithoutPool { section: String },
}

impl Lifecycle {
    /// The lifecycle named by the configuration section `section` (`modules.<name>`, or
    /// `accounts.<id>.modules.<name>`); `max_uses` only goes with `pooled`, and must be at
    /// least 1.
    pub fn from_config(
        section: &str,
        name: Option<LifecycleName>,
        max_uses: Option<u32>,
    ) -> Result<Lifecycle, LifecycleError> {
        let section = section.to_string();
        match (name, max_uses) {
            (Some(LifecycleName::Pooled), Some(0)) => Err(LifecycleError::NoUses { section }),
            (Some(LifecycleName::Pooled), max_uses) => Ok(Lifecycle::Pooled {
                max_uses: max_uses.unwrap_or(DEFAULT_MAX_USES),
            }),
            (_, Some(_)) => Err(LifecycleError::UsesWithoutPool { section }),
            (_, None) => Ok(Lifecycle::PerNode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uses() {
        assert_eq!(
            Lifecycle::from_config("modules.m", None, None),
            Ok(Lifecycle::PerNode)
        );
        assert_eq!(
            Lifecycle::from_config("modules.m", Some(LifecycleName::Pooled), None),
            Ok(Lifecycle::Pooled {
                max_uses: DEFAULT_MAX_USES
            })
        );
        assert_eq!(
            Lifecycle::from_config("modules.m", Some(LifecycleName::Pooled), Some(7)),
            Ok(Lifecycle::Pooled { max_uses: 7 })
        );
        let err =
            Lifecycle::from_config("modules.m", Some(LifecycleName::PerNode), Some(7)).unwrap_err();
        assert!(
            err.to_string().starts_with("modules.m.max_uses: only for"),
            "{err}"
        );
        let err =
            Lifecycle::from_config("modules.m", Some(LifecycleName::Pooled), Some(0)).unwrap_err();
        assert!(err.to_string().contains("at least 1"), "{err}");
    }
}
