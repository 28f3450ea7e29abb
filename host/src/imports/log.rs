//! `cfhost:callflow/log`: a module's log lines go to the call's trace and to `tracing`.

use super::InstanceState;
use crate::bindings::cfhost::callflow::log::{Host, Level};

impl Host for InstanceState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let module = &*self.module_name;
        match level {
            Level::Debug => tracing::debug!(module, "{message}"),
            Level::Info => tracing::info!(module, "{message}"),
            Level::Warn => tracing::warn!(module, "{message}"),
            Level::Error => tracing::error!(module, "{message}"),
        }
        if let Some(env) = &self.env {
            env.trace.module_log(module, level, message);
        }
        Ok(())
    }
}
