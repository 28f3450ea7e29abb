//! `cfhost:callflow/call`: the call resource. The host lends `handle` and `on-termination` a
//! borrow of it; an instance runs for one call at a time, so every handle a module holds is
//! the instance's call, and the methods read it from the instance's context. Reading is always
//! available; setting the caller id needs `call-control`.

use wasmtime::component::Resource;

use super::InstanceState;
use crate::bindings::CallFlags;
use crate::bindings::cfhost::callflow::call::{AuthorizedBy, Call, ControlError, Host, HostCall};
use crate::call::CallDetails;
use crate::policy::Capability;

/// The longest caller id name or number a module may set, in bytes (SIP display names and
/// user parts past this are refused by most carriers anyway).
pub const MAX_CALLER_ID_BYTES: usize = 128;

/// The borrow of the call that an export call is given. Its representation is never read:
/// the call is the instance's.
pub fn lent_call() -> Resource<Call> {
    Resource::new_borrow(0)
}

impl Host for InstanceState {}

impl InstanceState {
    /// Reads one of the call's fixed facts.
    fn detail<T>(&self, read: impl FnOnce(&CallDetails) -> T) -> wasmtime::Result<T> {
        Ok(read(self.context()?.call().details()))
    }
}

impl HostCall for InstanceState {
    fn id(&mut self, _: Resource<Call>) -> wasmtime::Result<String> {
        self.detail(|d| d.call_id.clone())
    }

    fn account_id(&mut self, _: Resource<Call>) -> wasmtime::Result<String> {
        self.detail(|d| d.account_id.clone())
    }

    fn request(&mut self, _: Resource<Call>) -> wasmtime::Result<String> {
        self.detail(|d| d.request.clone())
    }

    fn caller_id_name(&mut self, _: Resource<Call>) -> wasmtime::Result<Option<String>> {
        Ok(self.context()?.call().caller_id().name)
    }

    fn caller_id_number(&mut self, _: Resource<Call>) -> wasmtime::Result<Option<String>> {
        Ok(self.context()?.call().caller_id().number)
    }

    fn callee_id_name(&mut self, _: Resource<Call>) -> wasmtime::Result<Option<String>> {
        self.detail(|d| d.callee_id_name.clone())
    }

    fn callee_id_number(&mut self, _: Resource<Call>) -> wasmtime::Result<Option<String>> {
        self.detail(|d| d.callee_id_number.clone())
    }

    fn from_user(&mut self, _: Resource<Call>) -> wasmtime::Result<Option<String>> {
        self.detail(|d| d.from_user.clone())
    }

    fn from_realm(&mut self, _: Resource<Call>) -> wasmtime::Result<Option<String>> {
        self.detail(|d| d.from_realm.clone())
    }

    fn to_user(&mut self, _: Resource<Call>) -> wasmtime::Result<Option<String>> {
        self.detail(|d| d.to_user.clone())
    }

    fn to_realm(&mut self, _: Resource<Call>) -> wasmtime::Result<Option<String>> {
        self.detail(|d| d.to_realm.clone())
    }

    fn authorizing_type(&mut self, _: Resource<Call>) -> wasmtime::Result<Option<String>> {
        self.detail(|d| d.authorizing_type.clone())
    }

    fn authorizing_id(&mut self, _: Resource<Call>) -> wasmtime::Result<Option<String>> {
        self.detail(|d| d.authorizing_id.clone())
    }

    fn authorized_by(&mut self, _: Resource<Call>) -> wasmtime::Result<Option<AuthorizedBy>> {
        self.detail(authorized_by)
    }

    fn sip_header(&mut self, _: Resource<Call>, name: String) -> wasmtime::Result<Option<String>> {
        self.detail(|d| {
            d.sip_headers
                .iter()
                .find(|(header, _)| header.eq_ignore_ascii_case(&name))
                .map(|(_, value)| value.clone())
        })
    }

    fn sip_headers(&mut self, _: Resource<Call>) -> wasmtime::Result<Vec<(String, String)>> {
        self.detail(|d| d.sip_headers.clone())
    }

    fn current_flags(&mut self, _: Resource<Call>) -> wasmtime::Result<CallFlags> {
        Ok(self.context()?.call().flags().into())
    }

    fn set_message_left(&mut self, _: Resource<Call>) -> wasmtime::Result<()> {
        let context = self.context()?;
        context.call().set_message_left();
        context.trace().flag_set(&self.module_name, "message_left");
        Ok(())
    }

    fn set_caller_id(
        &mut self,
        _: Resource<Call>,
        name: Option<String>,
        number: Option<String>,
    ) -> wasmtime::Result<Result<(), ControlError>> {
        let context = self.granted(Capability::CallControl)?;
        for (part, value) in [("name", &name), ("number", &number)] {
            let len = value.as_ref().map_or(0, String::len);
            if len > MAX_CALLER_ID_BYTES {
                self.refused.outputs += 1;
                return Ok(Err(ControlError::Invalid(format!(
                    "a caller id {part} of {len} bytes exceeds the limit of \
                     {MAX_CALLER_ID_BYTES} bytes"
                ))));
            }
            if value
                .as_deref()
                .is_some_and(|v| v.chars().any(char::is_control))
            {
                return Ok(Err(ControlError::Invalid(format!(
                    "a caller id {part} may not hold control characters"
                ))));
            }
        }
        context.call().set_caller_id(name, number);
        context.trace().flag_set(&self.module_name, "caller_id");
        Ok(Ok(()))
    }

    fn drop(&mut self, _: Resource<Call>) -> wasmtime::Result<()> {
        // Only borrows are ever lent, and the host keeps nothing per handle.
        Ok(())
    }
}

/// Who authorised the call, from KAZOO's authorizing type and id.
fn authorized_by(details: &CallDetails) -> Option<AuthorizedBy> {
    let kind = details.authorizing_type.as_deref()?;
    let id = details.authorizing_id.clone();
    Some(match (kind, id) {
        ("resource", Some(id)) => AuthorizedBy::Trunk(id),
        ("device", Some(id)) => AuthorizedBy::Device(id),
        (kind, id) => AuthorizedBy::Other((kind.to_string(), id)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorizer_is_typed_from_kazoos_type_and_id() {
        let of = |kind: Option<&str>, id: Option<&str>| {
            authorized_by(&CallDetails {
                authorizing_type: kind.map(str::to_string),
                authorizing_id: id.map(str::to_string),
                ..CallDetails::default()
            })
        };
        assert_eq!(
            of(Some("resource"), Some("carrier")),
            Some(AuthorizedBy::Trunk("carrier".into()))
        );
        assert_eq!(
            of(Some("device"), Some("d1")),
            Some(AuthorizedBy::Device("d1".into()))
        );
        assert_eq!(
            of(Some("device"), None),
            Some(AuthorizedBy::Other(("device".into(), None)))
        );
        assert_eq!(
            of(Some("sys_info"), Some("pbx")),
            Some(AuthorizedBy::Other(("sys_info".into(), Some("pbx".into()))))
        );
        assert_eq!(of(None, Some("x")), None);
    }
}
