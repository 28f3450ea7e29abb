//! teletype's `notify_update` replies, for a notification that carries `Server-ID` (as KAZOO's
//! publisher sets it, to wait for them): on the `targeted` direct exchange, routed by the
//! `Server-ID`, echoing the `Msg-ID`, with teletype's statuses.

use serde_json::{Value, json};

/// KAZOO's direct exchange for replies.
pub const TARGETED_EXCHANGE: &str = "targeted";

/// teletype's statuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// About to render (missed calls only, as teletype).
    Pending,
    /// Sent, or sent before (a repeat).
    Completed,
    /// The template is disabled.
    Disabled,
    /// Not sent, for good, with teletype's reason.
    Failed(String),
}

/// The reply's body for the notification with `msg_id`, sent by `node`.
pub fn notify_update(status: &Status, msg_id: &str, template_id: &str, node: &str) -> Value {
    let (name, metadata, failure) = match status {
        Status::Pending => ("pending", json!({}), None),
        Status::Completed => ("completed", json!({"completed": [template_id]}), None),
        Status::Disabled => ("disabled", json!({"disabled": [template_id]}), None),
        Status::Failed(reason) => (
            "failed",
            json!({"failed": [{template_id: reason}]}),
            Some(reason),
        ),
    };
    let mut reply = json!({
        "Status": name,
        "Msg-ID": msg_id,
        "Metadata": metadata,
        "App-Name": "teletype",
        "App-Version": "4.0.0",
        "Event-Category": "notification",
        "Event-Name": "notify_update",
        "Node": node,
    });
    if let Some(reason) = failure {
        reply["Failure-Message"] = json!(reason);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_carry_teletypes_fields() {
        let reply = notify_update(
            &Status::Failed("no_to_addresses".into()),
            "m1",
            "missed_call",
            "n@h",
        );
        assert_eq!(reply["Status"], "failed");
        assert_eq!(reply["Failure-Message"], "no_to_addresses");
        assert_eq!(
            reply["Metadata"],
            json!({"failed": [{"missed_call": "no_to_addresses"}]})
        );
        assert_eq!(reply["Msg-ID"], "m1");
        assert_eq!(reply["Event-Name"], "notify_update");
        let done = notify_update(&Status::Completed, "m1", "missed_call", "n@h");
        assert_eq!(done["Metadata"], json!({"completed": ["missed_call"]}));
        assert!(done.get("Failure-Message").is_none());
    }
}
