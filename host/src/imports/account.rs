//! `cfhost:callflow/account`: the call's account's settings. Always available.

use super::InstanceState;
use crate::bindings::cfhost::callflow::account::{AccountSettings, Host};

impl Host for InstanceState {
    fn settings(&mut self) -> wasmtime::Result<AccountSettings> {
        let env = self.env()?;
        Ok(env
            .directory
            .account_settings(&env.call.details().account_id))
    }
}
