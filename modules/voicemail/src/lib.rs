//! `voicemail` with `action: compose`: answers, records a message and, once a recording
//! completes, marks the call `message_left` (so no missed-call alert goes out) and continues.
//! When the caller hangs up before recording, the flow stops (KAZOO's `cf_voicemail`).

use cfhost_sdk::call_control::{self, RecordResult};
use cfhost_sdk::{Call, CallflowModule, Capability, Description, Outcome, log};
use schemars::JsonSchema;
use serde::Deserialize;

struct Voicemail;

/// Leave a message in a voicemail box.
#[derive(Deserialize, JsonSchema)]
#[schemars(title = "voicemail")]
struct Data {
    /// The voicemail box.
    id: Option<String>,
    /// `compose` (the default) records a message; any other action continues.
    #[serde(default = "default_action")]
    action: String,
    /// The longest message, in seconds.
    #[serde(default = "default_max_length")]
    #[schemars(range(min = 1))]
    max_message_length: u32,
    // KAZOO's other keys of `voicemail`: accepted and checked for their type, not acted on.
    #[allow(dead_code, reason = "read only so that its type is checked")]
    callerid_match_login: Option<bool>,
    #[allow(dead_code, reason = "read only so that its type is checked")]
    interdigit_timeout: Option<u32>,
    #[allow(dead_code, reason = "read only so that its type is checked")]
    single_mailbox_login: Option<bool>,
}

fn default_action() -> String {
    "compose".to_string()
}

fn default_max_length() -> u32 {
    500
}

impl CallflowModule for Voicemail {
    fn describe() -> Description {
        cfhost_sdk::description(
            "voicemail",
            env!("CARGO_PKG_VERSION"),
            "Records a voicemail message",
            include_str!("schema.json"),
            vec![Capability::CallControl, Capability::Log],
        )
    }

    fn handle(call: Call, data: &str) -> Result<Outcome, String> {
        let data: Data = cfhost_sdk::parse_data(data)?;
        let action = data.action.as_str();
        if action != "compose" {
            log::info(&format!(
                "voicemail action {action:?} is not handled: continuing"
            ));
            return Ok(cfhost_sdk::next());
        }
        let Some(box_id) = data.id else {
            log::warn("no voicemail box id: continuing");
            return Ok(cfhost_sdk::next());
        };
        call_control::answer()?;
        Ok(
            match call_control::record_voicemail(&box_id, data.max_message_length) {
                RecordResult::Recorded(seconds) => {
                    call.set_message_left();
                    log::info(&format!("{seconds}s message left in box {box_id}"));
                    cfhost_sdk::next()
                }
                RecordResult::CallerHungUp => Outcome::Stop,
                RecordResult::Failed(reason) => {
                    log::error(&format!("recording into box {box_id} failed: {reason}"));
                    cfhost_sdk::next()
                }
            },
        )
    }
}

cfhost_sdk::export_module!(Voicemail);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_file_is_the_data_types_schema() {
        cfhost_sdk::testing::check_schema_file::<Data>(
            env!("CARGO_MANIFEST_DIR"),
            "src/schema.json",
        );
    }
}
