//! `cfhost:callflow/directory`: users of the call's account, and of no other.

use super::InstanceState;
use crate::bindings::cfhost::callflow::call_control::Endpoint;
use crate::bindings::cfhost::callflow::directory::{Host, User};
use crate::directory;
use crate::policy::Capability;

impl Host for InstanceState {
    async fn lookup_users(&mut self, ids: Vec<String>) -> wasmtime::Result<Vec<Option<User>>> {
        let context = self.granted(Capability::Directory)?;
        let users = context.directory().lookup_users(context.account_id(), &ids);
        Ok(users.into_iter().map(|user| user.map(User::from)).collect())
    }
}

impl From<directory::User> for User {
    fn from(user: directory::User) -> Self {
        User {
            id: user.id,
            email: user.email,
            first_name: user.first_name,
            last_name: user.last_name,
            endpoints: user
                .endpoints
                .into_iter()
                .map(|e| Endpoint {
                    id: e.id,
                    address: e.address,
                })
                .collect(),
        }
    }
}
