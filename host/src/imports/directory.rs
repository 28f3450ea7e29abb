//! `cfhost:callflow/directory`: users of the call's account, and of no other.

use super::InstanceState;
use crate::bindings::Capability;
use crate::bindings::cfhost::callflow::directory::{Host, User};

impl Host for InstanceState {
    async fn lookup_users(&mut self, ids: Vec<String>) -> wasmtime::Result<Vec<Option<User>>> {
        let env = self.granted(Capability::Directory)?;
        Ok(env
            .directory
            .lookup_users(&env.call.details().account_id, &ids))
    }
}
