//! The index of the globally routable numbers (those E.164 after KAZOO's normalisation,
//! [`crate::callflow::e164`]) over all accounts, which a carrier's call is routed by.
//! Extensions (`100`, `*97`) are not global: they are matched only within the calling account.

use std::collections::HashMap;

use crate::callflow::e164::{is_global, normalize_e164};

/// Which account claims each global number.
#[derive(Debug, Clone, Default)]
pub struct NumberIndex {
    owners: HashMap<String, String>,
}

impl NumberIndex {
    /// The account whose callflows claim `dialed` (normalised first), if one does.
    pub fn owner(&self, dialed: &str) -> Option<&str> {
        self.owners.get(&normalize_e164(dialed)).map(String::as_str)
    }

    /// Claims `number` (normalised) for `account`; returns the account that already has it
    /// when that is another one.
    pub fn claim(&mut self, number: &str, account: &str) -> Result<(), String> {
        let normalized = normalize_e164(number);
        if !is_global(&normalized) {
            return Ok(());
        }
        match self.owners.get(&normalized) {
            Some(owner) if owner != account => Err(owner.clone()),
            Some(_) => Ok(()),
            None => {
                self.owners.insert(normalized, account.to_string());
                Ok(())
            }
        }
    }

    /// This index without `account`'s claims.
    pub fn without(&self, account: &str) -> NumberIndex {
        let mut owners = self.owners.clone();
        owners.retain(|_, owner| owner != account);
        NumberIndex { owners }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_global_number_has_one_owner_and_extensions_have_none() {
        let mut index = NumberIndex::default();
        assert_eq!(index.claim("+14158867900", "a"), Ok(()));
        assert_eq!(
            index.claim("4158867900", "a"),
            Ok(()),
            "the same number, again"
        );
        assert_eq!(index.claim("14158867900", "b"), Err("a".to_string()));
        assert_eq!(index.claim("100", "b"), Ok(()));
        assert_eq!(index.owner("4158867900"), Some("a"));
        assert_eq!(index.owner("100"), None);
        assert_eq!(index.without("a").owner("+14158867900"), None);
    }
}
