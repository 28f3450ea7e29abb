//! `cfhost:callflow/log`: a module's log lines go to the call's trace and to `tracing`, up to
//! the instance's log volume limit; later lines are dropped and counted.

use super::InstanceState;
use crate::bindings::Capability;
use crate::bindings::cfhost::callflow::log::{Host, Level};

impl Host for InstanceState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let env = self.granted(Capability::Log)?;
        let module = &*self.module_name;
        self.logged_bytes = self.logged_bytes.saturating_add(message.len());
        if self.logged_bytes > self.limits.log_bytes {
            if self.refused.log_lines == 0 {
                let note = format!(
                    "log volume limit ({} bytes) reached; further lines are dropped",
                    self.limits.log_bytes
                );
                tracing::warn!(module, "{note}");
                env.trace.module_log(module, Level::Warn, note);
            }
            self.refused.log_lines += 1;
            return Ok(());
        }
        match level {
            Level::Debug => tracing::debug!(module, "{message}"),
            Level::Info => tracing::info!(module, "{message}"),
            Level::Warn => tracing::warn!(module, "{message}"),
            Level::Error => tracing::error!(module, "{message}"),
        }
        env.trace.module_log(module, level, message);
        Ok(())
    }
}
