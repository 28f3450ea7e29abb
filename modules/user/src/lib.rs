//! `user`: rings a user's endpoints. Answered: the flow stops. Not answered: the flow goes to
//! the child keyed by the hangup cause, else by the hangup code, else `_` (KAZOO's `cf_user`
//! with `cf_util:handle_bridge_failure`). Unless `can_call_self`, a user's own device calling
//! the user rings none of the user's endpoints (KAZOO's `cf_endpoint` refuses the endpoint
//! that called, `endpoint_called_self`, and every endpoint of its owner, `owner_called_self`):
//! with nothing to ring, the flow continues.

use cfhost_sdk::call_control::{self, BridgeRequest, BridgeResult, RingStrategy};
use cfhost_sdk::{AuthorizedBy, Call, CallflowModule, Capability, Description, Outcome, log};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

struct User;

/// Ring a user's endpoints.
#[derive(Deserialize, JsonSchema)]
#[schemars(title = "user")]
struct Data {
    /// The user to ring.
    id: Option<String>,
    /// Seconds to ring.
    #[serde(default = "default_timeout")]
    timeout: u32,
    /// Seconds to wait before ringing.
    #[serde(default)]
    delay: u32,
    #[serde(default)]
    strategy: Strategy,
    /// Whether the user's own devices may ring the user (default false).
    #[serde(default)]
    can_call_self: bool,
    // KAZOO's other keys of `user`: accepted and checked for their type, not acted on.
    #[allow(dead_code, reason = "read only so that its type is checked")]
    can_text_self: Option<bool>,
    #[allow(dead_code, reason = "read only so that its type is checked")]
    fail_on_single_reject: Option<bool>,
    #[allow(dead_code, reason = "read only so that its type is checked")]
    suppress_clid: Option<bool>,
    #[allow(dead_code, reason = "read only so that its type is checked")]
    static_invite: Option<String>,
    #[allow(dead_code, reason = "read only so that its type is checked")]
    custom_sip_headers: Option<serde_json::Map<String, serde_json::Value>>,
}

/// How the endpoints are rung: all at once, or one after another.
#[derive(Deserialize, Serialize, JsonSchema, Default)]
#[serde(rename_all = "snake_case")]
enum Strategy {
    #[default]
    Simultaneous,
    Single,
}

fn default_timeout() -> u32 {
    20
}

impl CallflowModule for User {
    fn describe() -> Description {
        cfhost_sdk::description(
            "user",
            env!("CARGO_PKG_VERSION"),
            "Rings a user's endpoints",
            include_str!("schema.json"),
            vec![
                Capability::CallControl,
                Capability::Directory,
                Capability::Log,
            ],
        )
    }

    fn handle(call: Call, data: &str) -> Result<Outcome, String> {
        let data: Data = cfhost_sdk::parse_data(data)?;
        let Some(user_id) = data.id else {
            log::warn("no user id: continuing");
            return Ok(cfhost_sdk::next());
        };
        let user = cfhost_sdk::directory::lookup_users(std::slice::from_ref(&user_id))
            .pop()
            .flatten();
        let Some(user) = user.filter(|u| !u.endpoints.is_empty()) else {
            log::info(&format!("user {user_id} has no endpoints: continuing"));
            return Ok(cfhost_sdk::next());
        };
        if !data.can_call_self && called_self(call, &user.endpoints) {
            log::info(&format!(
                "user {user_id} is called by a device of its own (can_call_self is false): \
                 nothing to ring, continuing"
            ));
            return Ok(cfhost_sdk::next());
        }
        let request = BridgeRequest {
            endpoints: user.endpoints,
            timeout_secs: data.timeout,
            delay_secs: data.delay,
            strategy: match data.strategy {
                Strategy::Simultaneous => RingStrategy::Simultaneous,
                Strategy::Single => RingStrategy::Single,
            },
        };
        Ok(match call_control::bridge(&request) {
            BridgeResult::Answered => Outcome::Stop,
            BridgeResult::CallerHungUp => Outcome::Stop,
            BridgeResult::Failed(info) => {
                log::info(&format!(
                    "bridge to user {user_id} failed: {} ({})",
                    info.hangup_cause, info.hangup_code
                ));
                cfhost_sdk::continue_to([info.hangup_cause, info.hangup_code])
            }
        })
    }
}

/// Whether the call comes from one of `endpoints` (a device of the user being called): every
/// device endpoint of a user is one it owns, so its owner is calling itself.
fn called_self(call: Call, endpoints: &[cfhost_sdk::call_control::Endpoint]) -> bool {
    match call.authorized_by() {
        Some(AuthorizedBy::Device(device)) => endpoints.iter().any(|e| e.id == device),
        _ => false,
    }
}

cfhost_sdk::export_module!(User);

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
