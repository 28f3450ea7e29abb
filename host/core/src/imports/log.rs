//! `cfhost:callflow/log`: a module's log lines go to the call's trace and to `tracing`, up to
//! the instance's log volume limit; later lines are dropped and counted.
//!
//! Lines are logged under the `tracing` target [`MODULE_LOG_TARGET`], so the host's log filter
//! can pick them out by name.

use super::InstanceState;
use crate::bindings::cfhost::callflow::log::{Host, Level};
use crate::policy::Capability;
use crate::trace;

/// The `tracing` target of modules' log lines.
pub const MODULE_LOG_TARGET: &str = "module_log";

impl Host for InstanceState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let context = self.granted(Capability::Log)?;
        let module = &*self.module_name;
        self.logged_bytes = self.logged_bytes.saturating_add(message.len());
        if self.logged_bytes > self.limits.log_bytes {
            if self.refused.log_lines == 0 {
                let note = format!(
                    "log volume limit ({} bytes) reached; further lines are dropped",
                    self.limits.log_bytes
                );
                tracing::warn!(target: MODULE_LOG_TARGET, module, "{note}");
                context.trace().log(module, trace::Level::Warn, note);
            }
            self.refused.log_lines += 1;
            return Ok(());
        }
        match level {
            Level::Debug => tracing::debug!(target: MODULE_LOG_TARGET, module, "{message}"),
            Level::Info => tracing::info!(target: MODULE_LOG_TARGET, module, "{message}"),
            Level::Warn => tracing::warn!(target: MODULE_LOG_TARGET, module, "{message}"),
            Level::Error => tracing::error!(target: MODULE_LOG_TARGET, module, "{message}"),
        }
        context.trace().log(module, level.into(), message);
        Ok(())
    }
}

impl From<Level> for trace::Level {
    fn from(level: Level) -> Self {
        match level {
            Level::Debug => trace::Level::Debug,
            Level::Info => trace::Level::Info,
            Level::Warn => trace::Level::Warn,
            Level::Error => trace::Level::Error,
        }
    }
}
