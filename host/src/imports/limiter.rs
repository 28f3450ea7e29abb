//! Memory and table caps of one instance, refusing growth with a [`Refusal`] that names the
//! module, so that the failure is classified as a memory failure.

use std::sync::Arc;

use wasmtime::ResourceLimiter;

use crate::policy::Refusal;

/// Core instances, tables and memories one component instance may create. A Rust component
/// built for `wasm32-wasip2` needs four instances, one or two tables and one memory.
const MAX_CORE_INSTANCES: usize = 16;
const MAX_TABLES: usize = 16;
const MAX_MEMORIES: usize = 4;

/// The caps of one instance.
pub struct InstanceLimiter {
    pub module: Arc<str>,
    pub memory_bytes: usize,
    pub table_elements: usize,
}

impl ResourceLimiter for InstanceLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            return Err(wasmtime::Error::new(Refusal::Memory {
                module: self.module.to_string(),
                desired,
                limit: self.memory_bytes,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.table_elements {
            return Err(wasmtime::Error::new(Refusal::Table {
                module: self.module.to_string(),
                desired,
                limit: self.table_elements,
            }));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_CORE_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
