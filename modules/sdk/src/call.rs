//! The call a module runs for. The host lends it to `handle` and `on_termination` for the
//! length of that call into the module; each method asks the host for one fact when the module
//! needs it, so a module pays only for what it reads. Under `cargo test` the methods read the
//! [`ScriptedCall`](crate::testing::ScriptedCall) running the module.

use crate::{AuthorizedBy, CallFlags, ControlError};

/// The call, lent by the host for the length of one call into the module.
#[derive(Clone, Copy)]
pub struct Call<'a> {
    #[cfg(target_arch = "wasm32")]
    lent: &'a crate::bindings::cfhost::callflow::call::Call,
    #[cfg(not(target_arch = "wasm32"))]
    lent: std::marker::PhantomData<&'a ()>,
}

/// The import's method on the lent call in a component, the scripted call's state in a test.
macro_rules! read {
    ($self:ident . $method:ident ( $($arg:expr),* ), |$state:ident| $scripted:expr) => {{
        #[cfg(target_arch = "wasm32")]
        {
            $self.lent.$method($($arg),*)
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = $self;
            crate::testing::with_current(|$state| $scripted)
        }
    }};
}

impl<'a> Call<'a> {
    /// The call the host lent to this export call ([`export_module!`](crate::export_module)
    /// makes it). Natively, where no host lends one, the scripted call running the module.
    #[doc(hidden)]
    pub fn lent(lent: &'a crate::bindings::cfhost::callflow::call::Call) -> Self {
        #[cfg(target_arch = "wasm32")]
        {
            Call { lent }
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            let _ = lent;
            Self::scripted()
        }
    }

    /// The scripted call running the module.
    #[cfg(not(target_arch = "wasm32"))]
    pub(crate) fn scripted() -> Self {
        Call {
            lent: std::marker::PhantomData,
        }
    }

    /// The call's unique id (KAZOO `Call-ID`).
    pub fn id(self) -> String {
        read!(self.id(), |s| s.info.call_id.clone())
    }

    /// The account the call belongs to.
    pub fn account_id(self) -> String {
        read!(self.account_id(), |s| s.info.account_id.clone())
    }

    /// The number that was dialed, as matched against the callflow's numbers.
    pub fn request(self) -> String {
        read!(self.request(), |s| s.info.request.clone())
    }

    /// The caller id name as it is now (a module may have set it).
    pub fn caller_id_name(self) -> Option<String> {
        read!(self.caller_id_name(), |s| s.info.caller_id_name.clone())
    }

    /// The caller id number as it is now (a module may have set it).
    pub fn caller_id_number(self) -> Option<String> {
        read!(self.caller_id_number(), |s| s.info.caller_id_number.clone())
    }

    /// The callee id name.
    pub fn callee_id_name(self) -> Option<String> {
        read!(self.callee_id_name(), |s| s.info.callee_id_name.clone())
    }

    /// The callee id number.
    pub fn callee_id_number(self) -> Option<String> {
        read!(self.callee_id_number(), |s| s.info.callee_id_number.clone())
    }

    /// The user part of the From.
    pub fn from_user(self) -> Option<String> {
        read!(self.from_user(), |s| s.info.from_user.clone())
    }

    /// The realm of the From.
    pub fn from_realm(self) -> Option<String> {
        read!(self.from_realm(), |s| s.info.from_realm.clone())
    }

    /// The user part of the To.
    pub fn to_user(self) -> Option<String> {
        read!(self.to_user(), |s| s.info.to_user.clone())
    }

    /// The realm of the To.
    pub fn to_realm(self) -> Option<String> {
        read!(self.to_realm(), |s| s.info.to_realm.clone())
    }

    /// KAZOO's authorizing type (`resource`, `device`, ...); absent for an inter-account call.
    pub fn authorizing_type(self) -> Option<String> {
        read!(self.authorizing_type(), |s| s.info.authorizing_type.clone())
    }

    /// KAZOO's authorizing id.
    pub fn authorizing_id(self) -> Option<String> {
        read!(self.authorizing_id(), |s| s.info.authorizing_id.clone())
    }

    /// Who authorised the call, typed: a trunk, a device, or another kind.
    pub fn authorized_by(self) -> Option<AuthorizedBy> {
        read!(self.authorized_by(), |s| s.info.authorized_by())
    }

    /// A header of the INVITE, by name (any case), if the operator lets modules see it.
    pub fn sip_header(self, name: &str) -> Option<String> {
        read!(self.sip_header(name), |s| s
            .info
            .sip_headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone()))
    }

    /// Every header of the INVITE modules may see, as (name, value).
    pub fn sip_headers(self) -> Vec<(String, String)> {
        read!(self.sip_headers(), |s| s.info.sip_headers.clone())
    }

    /// The flags as they are now (a bridge inside this node may have changed them).
    pub fn flags(self) -> CallFlags {
        read!(self.current_flags(), |s| s.flags)
    }

    /// Marks that a voicemail message was left. As in KAZOO, it is never cleared.
    pub fn set_message_left(self) {
        read!(self.set_message_left(), |s| s.flags.message_left = true)
    }

    /// Sets the caller id for what follows in the call (the legs rung after it, later modules,
    /// notifications); `None` leaves that part as it is. Requires the `call-control`
    /// capability; each part is at most 128 bytes.
    pub fn set_caller_id(
        self,
        name: Option<&str>,
        number: Option<&str>,
    ) -> Result<(), ControlError> {
        read!(self.set_caller_id(name, number), |s| s
            .set_caller_id(name, number))
    }
}
