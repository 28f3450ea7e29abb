//! The engine's configuration: instance allocation (the pooling allocator with copy-on-write
//! memory images, or on demand), interruption, fuel, and the compiled-component cache.
//!
//! The pool reserves, up front, one slot per concurrently live instance: a linear memory of
//! the largest size any account may use, tables, and a fiber stack. Reservation is virtual
//! address space; only pages an instance touches become resident. A fresh instance in a warm
//! slot starts from the module's copy-on-write memory image, and when it is dropped the pages
//! it dirtied are reset with `memset` (up to [`EngineSettings::keep_resident_kib`], found with Linux's
//! `PAGEMAP_SCAN`) instead of being unmapped, so the next instance takes no page faults.

use std::path::PathBuf;

use serde::Deserialize;
use wasmtime::{Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::policy::Policy;

/// The default linear-memory KiB kept resident in a free slot and reset in place.
pub const DEFAULT_KEEP_RESIDENT_KIB: usize = 1 << 10;
/// Table bytes kept resident in a free slot.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;
/// Core instances, memories and tables reserved per component instance: a Rust guest built
/// for `wasm32-wasip2` has its module and a few adapter shims, one memory and a table each.
const CORE_INSTANCES_PER_COMPONENT: u32 = 4;
const TABLES_PER_COMPONENT: u32 = 4;
const MEMORIES_PER_COMPONENT: u32 = 1;
/// Free slots that stay affine to the module that used them last.
const WARM_SLOTS: u32 = 1024;
/// The default number of instance slots in the pool, when the kernel allows as many
/// ([`fit_to_map_count`]).
pub const DEFAULT_POOL_INSTANCES: u32 = 16_384;
/// Memory mappings (VMAs) one slot costs: a fiber stack and its guard page from the start, and
/// while an instance lives in it, its linear memory split into the shadow stack, the
/// copy-on-write data image, the heap and the reserved rest.
pub const MAPPINGS_PER_SLOT: u64 = 6;
/// Mappings left for everything else in the process (code, heap, threads, compiled modules).
const MAPPINGS_FOR_THE_REST: u64 = 4096;

/// The operator's engine settings: the `[engine]` section of the configuration. What limits
/// imply (fuel, the size of a slot) comes from the [`Policy`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// Slots of the pooling allocator: the most instances alive at once. `0` allocates every
    /// instance on demand (slower; no up-front reservation).
    pub pool_instances: u32,
    /// The low KiB of a slot's linear memory kept resident when its instance is dropped,
    /// and reset in place; pages above are returned to the kernel. Cover what a typical
    /// instance touches: more costs a longer scan, less costs page faults.
    pub keep_resident_kib: usize,
    /// Where compiled components are cached (default: `$CFHOST_CACHE_DIR`, else
    /// `~/.cache/cfhost/components`).
    pub cache_dir: Option<PathBuf>,
    /// `false` compiles every module at every start.
    pub cache: bool,
    /// Most compiled components kept in the cache; past it, the least recently used go.
    pub cache_max_files: usize,
}

/// The default of [`EngineSettings::cache_max_files`].
pub const DEFAULT_CACHE_MAX_FILES: usize = 512;

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            pool_instances: DEFAULT_POOL_INSTANCES,
            keep_resident_kib: DEFAULT_KEEP_RESIDENT_KIB,
            cache_dir: None,
            cache: true,
            cache_max_files: DEFAULT_CACHE_MAX_FILES,
        }
    }
}

impl EngineSettings {
    /// The root of the compiled-component cache; `None` when caching is off.
    pub fn cache_root(&self) -> Option<PathBuf> {
        if !self.cache {
            return None;
        }
        self.cache_dir
            .clone()
            .or_else(super::cache::default_cache_root)
    }

    /// The wasmtime configuration for `policy`, with a pool of `slots` or allocating on demand.
    /// The engine counts fuel only when some limit sets an instruction budget (it costs a
    /// little on every call).
    pub(super) fn wasmtime_config(&self, policy: &Policy, slots: Option<u32>) -> Config {
        let mut config = Config::new();
        config.wasm_component_model(true);
        // Component-model async is not used; without it every call is cheaper.
        config.concurrency_support(false);
        config.epoch_interruption(true);
        config.consume_fuel(policy.uses_fuel());
        config.memory_init_cow(true);
        if let Some(slots) = slots {
            let (memory_bytes, table_elements) = policy.largest_instance();
            // Memories never move or grow past the largest limit: reserve exactly that, with
            // explicit bounds checks instead of gigabytes of guard pages per slot.
            let memory = round_up_to_page(memory_bytes.max(1 << 16));
            config.memory_reservation(memory as u64);
            config.memory_guard_size(0);
            config.memory_reservation_for_growth(0);
            let mut pool = pool(slots, memory, table_elements);
            pool.linear_memory_keep_resident(self.keep_resident_kib << 10);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        config
    }

    /// The pool's slots: as configured, or fewer when the kernel would not allow that many
    /// mappings (logged, with the setting to raise).
    pub fn pool_slots(&self) -> u32 {
        let Some(map_count) = max_map_count() else {
            return self.pool_instances;
        };
        let fit = fit_to_map_count(self.pool_instances, map_count);
        if fit < self.pool_instances {
            tracing::warn!(
                "vm.max_map_count is {map_count}: the pool gets {fit} instance slots instead of {} \
                 (each takes up to {MAPPINGS_PER_SLOT} mappings); raise it with `sysctl -w \
                 vm.max_map_count={}` for more calls at once",
                self.pool_instances,
                u64::from(self.pool_instances) * MAPPINGS_PER_SLOT + MAPPINGS_FOR_THE_REST
            );
        }
        fit
    }
}

/// The pool: `instances` slots of every kind, memories of `memory_bytes`.
fn pool(instances: u32, memory_bytes: usize, table_elements: usize) -> PoolingAllocationConfig {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(CORE_INSTANCES_PER_COMPONENT))
        .total_memories(instances.saturating_mul(MEMORIES_PER_COMPONENT))
        .total_tables(instances.saturating_mul(TABLES_PER_COMPONENT))
        .total_stacks(instances)
        .max_memory_size(memory_bytes)
        .table_elements(table_elements)
        .max_unused_warm_slots(WARM_SLOTS.min(instances))
        .table_keep_resident(TABLE_KEEP_RESIDENT)
        .pagemap_scan(Enabled::Auto);
    pool
}

/// The most slots a pool can have under the kernel's `vm.max_map_count` (`map_count`): past
/// it, creating mappings fails and so does `malloc`, which aborts the process.
pub fn fit_to_map_count(slots: u32, map_count: u64) -> u32 {
    let fit = map_count.saturating_sub(MAPPINGS_FOR_THE_REST) / MAPPINGS_PER_SLOT;
    slots.min(u32::try_from(fit).unwrap_or(u32::MAX))
}

/// The kernel's `vm.max_map_count`, if it can be read.
pub fn max_map_count() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn round_up_to_page(bytes: usize) -> usize {
    bytes.div_ceil(1 << 16) * (1 << 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pool_fits_the_kernels_mapping_limit() {
        assert_eq!(fit_to_map_count(16_384, 65_530), 10_239);
        assert_eq!(fit_to_map_count(16_384, 262_144), 16_384);
        assert_eq!(fit_to_map_count(16_384, 100), 0);
    }
}
