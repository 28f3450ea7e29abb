//! Turns a node's `recipients` list into email addresses, as KAZOO's `missed_call_alert` and
//! `notification` do (kazoo-semantics.md §1.3 and §2.2).
//!
//! Each recipient is an object with a `type` and an `id`:
//! - `"email"`: `id` is one address or a list of them (empty entries of a list are dropped);
//! - `"user"`: `id` is one user id or a list; the users are read in one bulk lookup and each
//!   found user's non-empty `email` is taken; missing users are skipped;
//! - anything else contributes nothing.
//!
//! The two modules differ in two details, captured by [`Rules`].

use schemars::JsonSchema;
use serde_json::Value;

/// The schema of one recipient, as the modules' data schemas declare it. Resolving is more
/// lenient than the schema (KAZOO skips what it cannot use), so the recipients themselves are
/// read as JSON values.
#[derive(JsonSchema)]
#[allow(dead_code, reason = "a schema, never built")]
pub struct Recipient {
    r#type: RecipientType,
    /// An email address or user id, or a list of them, per `type`.
    id: OneOrMany,
}

/// What a recipient's `id` names.
#[derive(JsonSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code, reason = "a schema, never built")]
enum RecipientType {
    User,
    Email,
}

/// One id, or a list of them.
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "a schema, never built")]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// How the two KAZOO modules differ.
#[derive(Debug, Clone, Copy)]
pub struct Rules {
    /// `notification` prepends each recipient's group, so groups come out in reverse order.
    pub reverse_groups: bool,
    /// `missed_call_alert` drops empty strings from the final list; `notification` keeps a
    /// lone empty `email` id.
    pub drop_empty: bool,
}

/// The rules of `missed_call_alert`.
pub const MISSED_CALL_ALERT: Rules = Rules {
    reverse_groups: false,
    drop_empty: true,
};

/// The rules of `notification`.
pub const NOTIFICATION: Rules = Rules {
    reverse_groups: true,
    drop_empty: false,
};

/// Resolves `recipients` to emails. `lookup_emails` reads users by id (one call per `user`
/// recipient) and returns, per id, the user's email if the user exists.
pub fn resolve(
    recipients: &[Value],
    rules: Rules,
    mut lookup_emails: impl FnMut(&[String]) -> Vec<Option<String>>,
) -> Vec<String> {
    let mut groups: Vec<Vec<String>> = recipients
        .iter()
        .map(|recipient| group(recipient, &mut lookup_emails))
        .collect();
    if rules.reverse_groups {
        groups.reverse();
    }
    groups
        .into_iter()
        .flatten()
        .filter(|email| !(rules.drop_empty && email.is_empty()))
        .collect()
}

fn group(
    recipient: &Value,
    lookup_emails: &mut impl FnMut(&[String]) -> Vec<Option<String>>,
) -> Vec<String> {
    let id = recipient.get("id");
    match recipient.get("type").and_then(Value::as_str) {
        Some("email") => match id {
            Some(Value::String(one)) => vec![one.clone()],
            Some(Value::Array(_)) => non_empty_strings(id),
            _ => Vec::new(),
        },
        Some("user") => {
            let ids = match id {
                Some(Value::String(one)) => vec![one.clone()],
                Some(Value::Array(_)) => non_empty_strings(id),
                _ => Vec::new(),
            };
            if ids.is_empty() {
                return Vec::new();
            }
            lookup_emails(&ids)
                .into_iter()
                .flatten()
                .filter(|email| !email.is_empty())
                .collect()
        }
        _ => Vec::new(),
    }
}

fn non_empty_strings(list: Option<&Value>) -> Vec<String> {
    list.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn directory(ids: &[String]) -> Vec<Option<String>> {
        ids.iter()
            .map(|id| match id.as_str() {
                "alice" => Some("alice@example.com".to_string()),
                "no-email" => Some(String::new()),
                _ => None,
            })
            .collect()
    }

    fn resolve_json(recipients: Value, rules: Rules) -> Vec<String> {
        resolve(recipients.as_array().unwrap(), rules, directory)
    }

    #[test]
    fn users_resolve_to_their_email_and_missing_users_are_skipped() {
        let got = resolve_json(
            json!([{"type": "user", "id": ["ghost", "alice", "no-email"]}]),
            MISSED_CALL_ALERT,
        );
        assert_eq!(got, ["alice@example.com"]);
    }

    #[test]
    fn email_ids_may_be_one_string_or_a_list() {
        let got = resolve_json(
            json!([
                {"type": "email", "id": "one@example.com"},
                {"type": "email", "id": ["two@example.com", "", "three@example.com"]},
            ]),
            MISSED_CALL_ALERT,
        );
        assert_eq!(
            got,
            ["one@example.com", "two@example.com", "three@example.com"]
        );
    }

    #[test]
    fn notification_reverses_groups_and_keeps_a_lone_empty_email() {
        let recipients = json!([
            {"type": "user", "id": "alice"},
            {"type": "email", "id": ["a@x", "b@x"]},
            {"type": "email", "id": ""},
        ]);
        assert_eq!(
            resolve_json(recipients.clone(), NOTIFICATION),
            ["", "a@x", "b@x", "alice@example.com"]
        );
        assert_eq!(
            resolve_json(recipients, MISSED_CALL_ALERT),
            ["alice@example.com", "a@x", "b@x"]
        );
    }

    #[test]
    fn unknown_types_and_bad_ids_contribute_nothing() {
        let got = resolve_json(
            json!([{"type": "fax", "id": "x"}, {"type": "email", "id": 7}, {"id": "y"}]),
            MISSED_CALL_ALERT,
        );
        assert!(got.is_empty());
    }

    #[test]
    fn no_duplicates_are_removed() {
        let got = resolve_json(
            json!([{"type": "email", "id": "a@x"}, {"type": "email", "id": "a@x"}]),
            MISSED_CALL_ALERT,
        );
        assert_eq!(got, ["a@x", "a@x"]);
    }
}
