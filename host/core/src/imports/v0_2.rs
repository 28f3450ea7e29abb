//! The host side of `cfhost:callflow@0.2.x`, for modules built before the call became a
//! resource: each import converts its arguments to the current release's types, calls the
//! current import ([`super`]), and converts back, as wasmtime-wasi serves preview 1 over
//! preview 2. Only the call itself differs in kind: 0.2 modules get it as the `call-info`
//! record ([`call_info`]), lowered into every export call.

use super::InstanceState;
use super::call::lent_call;
use crate::bindings::cfhost::callflow as now;
use crate::bindings::v0_2::cfhost::callflow as old;
use crate::call::Call;

/// The call as a 0.2 module sees it now: what its `handle` and `on-termination` are called
/// with.
pub fn call_info(call: &Call) -> old::types::CallInfo {
    let d = call.details();
    let caller_id = call.caller_id();
    old::types::CallInfo {
        call_id: d.call_id.clone(),
        account_id: d.account_id.clone(),
        request: d.request.clone(),
        caller_id_name: caller_id.name,
        caller_id_number: caller_id.number,
        callee_id_name: d.callee_id_name.clone(),
        callee_id_number: d.callee_id_number.clone(),
        from_user: d.from_user.clone(),
        from_realm: d.from_realm.clone(),
        to_user: d.to_user.clone(),
        to_realm: d.to_realm.clone(),
        authorizing_type: d.authorizing_type.clone(),
        authorizing_id: d.authorizing_id.clone(),
        flags: flags(call.flags().into()),
    }
}

fn flags(flags: now::types::CallFlags) -> old::types::CallFlags {
    old::types::CallFlags {
        bridged: flags.bridged,
        message_left: flags.message_left,
    }
}

/// A hangup as 0.2 has it.
pub fn hangup_info(hangup: now::types::HangupInfo) -> old::types::HangupInfo {
    old::types::HangupInfo {
        disposition: hangup.disposition,
        hangup_cause: hangup.hangup_cause,
        hangup_code: hangup.hangup_code,
    }
}

fn hangup_info_now(hangup: old::types::HangupInfo) -> now::types::HangupInfo {
    now::types::HangupInfo {
        disposition: hangup.disposition,
        hangup_cause: hangup.hangup_cause,
        hangup_code: hangup.hangup_code,
    }
}

/// A 0.2 module's outcome in the current release's type.
pub fn outcome(outcome: old::types::Outcome) -> now::types::Outcome {
    match outcome {
        old::types::Outcome::ContinueTo(keys) => now::types::Outcome::ContinueTo(keys),
        old::types::Outcome::Stop => now::types::Outcome::Stop,
        old::types::Outcome::Branch(id) => now::types::Outcome::Branch(id),
    }
}

/// A 0.2 module's description in the current release's type.
pub fn description(description: old::types::Description) -> now::types::Description {
    now::types::Description {
        name: description.name,
        version: description.version,
        summary: description.summary,
        data_schema: description.data_schema,
        capabilities: description
            .capabilities
            .into_iter()
            .map(|capability| match capability {
                old::types::Capability::CallControl => now::types::Capability::CallControl,
                old::types::Capability::Directory => now::types::Capability::Directory,
                old::types::Capability::Notify => now::types::Capability::Notify,
                old::types::Capability::Callbacks => now::types::Capability::Callbacks,
                old::types::Capability::Log => now::types::Capability::Log,
                old::types::Capability::Clock => now::types::Capability::Clock,
            })
            .collect(),
    }
}

impl old::types::Host for InstanceState {}

impl old::call::Host for InstanceState {
    fn current_flags(&mut self) -> wasmtime::Result<old::types::CallFlags> {
        Ok(flags(now::call::HostCall::current_flags(
            self,
            lent_call(),
        )?))
    }

    fn set_message_left(&mut self) -> wasmtime::Result<()> {
        now::call::HostCall::set_message_left(self, lent_call())
    }
}

impl old::account::Host for InstanceState {
    fn settings(&mut self) -> wasmtime::Result<old::account::AccountSettings> {
        let settings = now::account::Host::settings(self)?;
        Ok(old::account::AccountSettings {
            id: settings.id,
            name: settings.name,
            realm: settings.realm,
            timezone: settings.timezone,
        })
    }
}

impl old::call_control::Host for InstanceState {
    async fn answer(&mut self) -> wasmtime::Result<Result<(), String>> {
        let answered = now::call_control::Host::answer(self).await?;
        Ok(answered.map_err(|error| match error {
            now::call::ControlError::CallerGone => "the caller is gone".to_string(),
            now::call::ControlError::Invalid(why) | now::call::ControlError::Failed(why) => why,
        }))
    }

    async fn bridge(
        &mut self,
        request: old::call_control::BridgeRequest,
    ) -> wasmtime::Result<old::call_control::BridgeResult> {
        use now::call_control as n;
        use old::call_control as o;
        let request = n::BridgeRequest {
            endpoints: request
                .endpoints
                .into_iter()
                .map(|o::Endpoint { id, address }| n::Endpoint { id, address })
                .collect(),
            timeout_secs: request.timeout_secs,
            delay_secs: request.delay_secs,
            strategy: match request.strategy {
                o::RingStrategy::Simultaneous => n::RingStrategy::Simultaneous,
                o::RingStrategy::Single => n::RingStrategy::Single,
            },
        };
        Ok(match n::Host::bridge(self, request).await? {
            n::BridgeResult::Answered => o::BridgeResult::Answered,
            n::BridgeResult::Failed(hangup) => o::BridgeResult::Failed(hangup_info(hangup)),
            n::BridgeResult::CallerHungUp => o::BridgeResult::CallerHungUp,
        })
    }

    async fn record_voicemail(
        &mut self,
        box_id: String,
        max_secs: u32,
    ) -> wasmtime::Result<old::call_control::RecordResult> {
        use now::call_control::RecordResult as N;
        use old::call_control::RecordResult as O;
        let recorded = now::call_control::Host::record_voicemail(self, box_id, max_secs).await?;
        Ok(match recorded {
            N::Recorded(secs) => O::Recorded(secs),
            N::CallerHungUp => O::CallerHungUp,
            N::Failed(why) => O::Failed(why),
        })
    }

    async fn hangup(&mut self, cause: Option<String>) -> wasmtime::Result<()> {
        now::call_control::Host::hangup(self, cause).await
    }
}

impl old::directory::Host for InstanceState {
    async fn lookup_users(
        &mut self,
        ids: Vec<String>,
    ) -> wasmtime::Result<Vec<Option<old::directory::User>>> {
        let users = now::directory::Host::lookup_users(self, ids).await?;
        Ok(users
            .into_iter()
            .map(|user| {
                user.map(|user| old::directory::User {
                    id: user.id,
                    email: user.email,
                    first_name: user.first_name,
                    last_name: user.last_name,
                    endpoints: user
                        .endpoints
                        .into_iter()
                        .map(|e| old::call_control::Endpoint {
                            id: e.id,
                            address: e.address,
                        })
                        .collect(),
                })
            })
            .collect())
    }
}

impl old::notify::Host for InstanceState {
    async fn publish(
        &mut self,
        notification: old::notify::Notification,
    ) -> wasmtime::Result<Result<(), String>> {
        use now::notify as n;
        use old::notify as o;
        let notify = |field: o::NotifyField| match field {
            o::NotifyField::Omitted => n::NotifyField::Omitted,
            o::NotifyField::Empty => n::NotifyField::Empty,
            o::NotifyField::Hangup(hangup) => n::NotifyField::Hangup(hangup_info_now(hangup)),
        };
        let notification = match notification {
            o::Notification::MissedCall(m) => n::Notification::MissedCall(n::MissedCall {
                to: m.to,
                notify: notify(m.notify),
            }),
            o::Notification::CfNotification(c) => {
                n::Notification::CfNotification(n::CfNotification {
                    template_id: c.template_id,
                    to: c.to,
                    notify: notify(c.notify),
                    comments: c.comments,
                    notification_media: c.notification_media,
                })
            }
        };
        let published = n::Host::publish(self, notification).await?;
        Ok(published.map_err(|error| match error {
            n::PublishError::TooLarge(limit) => {
                format!("the notification exceeds the limit of {limit} bytes")
            }
            n::PublishError::Unavailable(why) => why,
        }))
    }
}

impl old::callbacks::Host for InstanceState {
    fn register_termination(&mut self, state: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        use now::callbacks::RegisterError;
        let registered = now::callbacks::Host::register_termination(self, state)?;
        Ok(registered.map_err(|error| match error {
            RegisterError::TooLarge(limit) => {
                format!("the callback state exceeds the limit of {limit} bytes")
            }
            RegisterError::TooMany(max) => format!(
                "module `{}` already has {max} termination callbacks in this call, the most it \
                 may have",
                self.module_name
            ),
        }))
    }
}

impl old::log::Host for InstanceState {
    fn log(&mut self, level: old::log::Level, message: String) -> wasmtime::Result<()> {
        use now::log::Level as N;
        use old::log::Level as O;
        let level = match level {
            O::Debug => N::Debug,
            O::Info => N::Info,
            O::Warn => N::Warn,
            O::Error => N::Error,
        };
        now::log::Host::log(self, level, message)
    }
}
