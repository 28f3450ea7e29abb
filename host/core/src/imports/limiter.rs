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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::FailureKind;

    #[test]
    fn growth_past_the_caps_is_refused_as_a_memory_failure() {
        let mut limiter = InstanceLimiter {
            module: Arc::from("m"),
            memory_bytes: 1 << 20,
            table_elements: 100,
        };
        assert!(limiter.memory_growing(0, 1 << 20, None).unwrap());
        assert!(limiter.table_growing(0, 100, None).unwrap());
        let memory = limiter.memory_growing(0, (1 << 20) + 1, None).unwrap_err();
        let table = limiter.table_growing(0, 101, None).unwrap_err();
        assert_eq!(FailureKind::of(&memory), FailureKind::Memory);
        assert_eq!(FailureKind::of(&table), FailureKind::Memory);
        assert_eq!(
            table.to_string(),
            "module `m` tried to grow a table to 101 elements; the limit is 100"
        );
    }
}
