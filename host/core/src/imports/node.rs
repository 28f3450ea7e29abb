//! `cfhost:callflow/node`: the node being run (since 0.3.1). Always available.

use super::InstanceState;
use crate::bindings::cfhost::callflow::node::Host;

impl Host for InstanceState {
    fn child_keys(&mut self) -> wasmtime::Result<Vec<String>> {
        Ok(self.context()?.node_children())
    }
}
