//! `cfhost:callflow/account`: the call's account's settings. Always available.

use super::InstanceState;
use crate::bindings::cfhost::callflow::account::{AccountSettings, Host};

impl Host for InstanceState {
    fn settings(&mut self) -> wasmtime::Result<AccountSettings> {
        let context = self.context()?;
        let settings = context.directory().account_settings(context.account_id());
        Ok(AccountSettings {
            id: settings.id,
            name: settings.name,
            realm: settings.realm,
            timezone: settings.timezone,
        })
    }
}
