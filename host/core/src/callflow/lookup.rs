//! Finds an account's callflow for a dialed number as KAZOO's `cf_flow` does: an exact
//! number first, then the pattern with the longest match, then the `no_match` callflow for
//! numbers made only of digits (with an optional leading `+`).

use std::collections::HashMap;
use std::sync::Arc;

use super::Callflow;
use super::e164::{is_global, normalize_e164};

/// The number that marks the catch-all callflow.
pub const NO_MATCH: &str = "no_match";

/// An account's callflows, in a stable order (by source file).
#[derive(Debug, Default)]
pub struct AccountCallflows {
    ordered: Vec<Arc<Callflow>>,
    by_id: HashMap<String, Arc<Callflow>>,
}

impl AccountCallflows {
    /// Holds `callflows`, which must already be in the order lookups should prefer.
    pub fn new(callflows: Vec<Callflow>) -> Self {
        AccountCallflows::from_shared(callflows.into_iter().map(Arc::new).collect())
    }

    /// [`AccountCallflows::new`] of callflows shared with another set.
    pub fn from_shared(ordered: Vec<Arc<Callflow>>) -> Self {
        let by_id = ordered
            .iter()
            .map(|cf| (cf.id.clone(), Arc::clone(cf)))
            .collect();
        AccountCallflows { ordered, by_id }
    }

    /// The callflow with this id (for branches).
    pub fn by_id(&self, id: &str) -> Option<&Callflow> {
        self.by_id.get(id).map(|cf| &**cf)
    }

    /// The callflow read from `source`, shared.
    pub fn from_source(&self, source: &std::path::Path) -> Option<Arc<Callflow>> {
        self.ordered.iter().find(|cf| cf.source == source).cloned()
    }

    /// Every callflow.
    pub fn iter(&self) -> impl Iterator<Item = &Callflow> {
        self.ordered.iter().map(|cf| &**cf)
    }

    /// The callflow for `number`.
    pub fn find(&self, number: &str) -> Option<&Callflow> {
        self.by_number(number)
            .or_else(|| self.by_pattern(number))
            .or_else(|| {
                let digits = number.strip_prefix('+').unwrap_or(number);
                let dialable = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
                dialable.then(|| self.by_number(NO_MATCH)).flatten()
            })
    }

    /// The callflow listing `number`, else the one listing a number that is the same global
    /// number once both are normalised to E.164 (`4158867900` and `+14158867900`).
    fn by_number(&self, number: &str) -> Option<&Callflow> {
        self.iter()
            .find(|cf| cf.numbers.iter().any(|n| n == number))
            .or_else(|| {
                let global = normalize_e164(number);
                is_global(&global).then(|| {
                    self.iter()
                        .find(|cf| cf.numbers.iter().any(|n| normalize_e164(n) == global))
                })?
            })
    }

    /// The callflow other than `except_id` that lists `number`, exactly or as the same global
    /// number once both are normalised: who a new claim of `number` would collide with.
    pub fn claimant(&self, number: &str, except_id: &str) -> Option<&Callflow> {
        let global = normalize_e164(number);
        let global = is_global(&global).then_some(global);
        self.iter().filter(|cf| cf.id != except_id).find(|cf| {
            cf.numbers
                .iter()
                .any(|n| n == number || global.as_deref().is_some_and(|g| normalize_e164(n) == g))
        })
    }

    /// The pattern whose match is longest; with capture groups, the longest captured group
    /// is what counts. The first pattern wins a tie.
    fn by_pattern(&self, number: &str) -> Option<&Callflow> {
        let mut best: Option<(usize, &Callflow)> = None;
        for callflow in self.iter() {
            for pattern in &callflow.patterns {
                let Some(captures) = pattern.captures(number) else {
                    continue;
                };
                let length = if captures.len() > 1 {
                    captures
                        .iter()
                        .skip(1)
                        .flatten()
                        .map(|m| m.len())
                        .max()
                        .unwrap_or(0)
                } else {
                    captures.get(0).map_or(0, |m| m.len())
                };
                if best.is_none_or(|(longest, _)| length > longest) {
                    best = Some((length, callflow));
                }
            }
        }
        best.map(|(_, callflow)| callflow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::callflow::parse_callflow;
    use std::path::Path;

    fn callflows(docs: &[(&str, &str)]) -> AccountCallflows {
        AccountCallflows::new(
            docs.iter()
                .map(|(id, doc)| parse_callflow(Path::new("x.json"), id, doc).unwrap())
                .collect(),
        )
    }

    #[test]
    fn numbers_then_longest_pattern_then_no_match() {
        let flows = callflows(&[
            ("exact", r#"{"numbers": ["+15554441111"], "flow": {}}"#),
            ("short", r#"{"patterns": ["^\\+1(555)"], "flow": {}}"#),
            ("long", r#"{"patterns": ["^\\+(1555\\d+)$"], "flow": {}}"#),
            ("catch-all", r#"{"numbers": ["no_match"], "flow": {}}"#),
        ]);
        assert_eq!(flows.find("+15554441111").unwrap().id, "exact");
        assert_eq!(
            flows.find("5554441111").unwrap().id,
            "exact",
            "the same E.164 number"
        );
        assert_eq!(flows.find("15554441111").unwrap().id, "exact");
        assert_eq!(flows.find("+15559990000").unwrap().id, "long");
        assert_eq!(flows.find("+4420").unwrap().id, "catch-all");
        assert_eq!(flows.find("4420").unwrap().id, "catch-all");
        assert!(flows.find("*97").is_none());
        assert!(flows.find("").is_none());
        assert_eq!(flows.by_id("short").unwrap().patterns.len(), 1);
    }
}
