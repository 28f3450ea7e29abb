//! The workload every measurement shares: the seed accounts of `examples/` (the missed-call
//! flow of `../shared/seeds`), the scenario's first call (nobody answers, the caller hangs up
//! at voicemail, so the termination callback publishes a missed-call alert), and a sink that
//! only counts.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use serde_json::Value;

use cfhost_core::bindings::World;
use cfhost_core::call::{Call, CallDetails};
use cfhost_core::engine::EngineSettings;
use cfhost_core::notify::{OutboundNotification, Sink, SinkError};
use cfhost_core::policy::Lifecycle;
use cfhost_core::registry::{BUILT_MODULES_DIR, ModuleSource, embedded_modules, shipped_names};
use cfhost_core::runtime::{HostOptions, Runtime};
use cfhost_core::scenario::ScenarioCall;
use cfhost_core::switch::SimulatedSwitch;

macro_rules! seed_file {
    ($path:literal) => {
        (
            $path,
            include_str!(concat!("../../../../examples/data/accounts/", $path)),
        )
    };
}

/// The seed data: (path under the data directory, contents).
const SEED_FILES: [(&str, &str); 8] = [
    seed_file!("acme-missed/account.json"),
    seed_file!("acme-missed/callflows/seed_missed_call_alert.json"),
    seed_file!("acme-missed/users/3e3f1217bee3ba0aa7496ca61fb4ae8f.json"),
    seed_file!("acme-missed/users/bdc3a4b7e3a5405a9aa8a0f9c6b76997.json"),
    seed_file!("acme-notify/account.json"),
    seed_file!("acme-notify/callflows/seed_notification.json"),
    seed_file!("acme-notify/users/3e3f1217bee3ba0aa7496ca61fb4ae8f.json"),
    seed_file!("acme-notify/users/bdc3a4b7e3a5405a9aa8a0f9c6b76997.json"),
];

const SCENARIOS: &str = include_str!("../../../../examples/scenarios.json");

/// Where the shipped modules and `minimal` as built for `cfhost:callflow@0.2.1` are kept
/// (`tests/fixtures/wit-0.2.1/`), for the figures of 0.2 modules beside 0.3 ones.
const BUILT_FOR_0_2_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/wit-0.2.1"
);

/// The minimal module built with the SDK (`modules/fixtures/minimal`): read from the build's
/// module directory, so the binary does not carry a test fixture.
pub fn minimal_module() -> anyhow::Result<ModuleSource> {
    module_file(&Path::new(BUILT_MODULES_DIR).join("minimal.wasm"))
}

/// A module file of the tree `cfhost bench` was built in, as a shipped module.
pub fn module_file(path: &Path) -> anyhow::Result<ModuleSource> {
    let bytes = std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "{}: {e}; `cfhost bench` runs from the tree it was built in",
            path.display()
        )
    })?;
    Ok(ModuleSource {
        origin: path.display().to_string(),
        bytes: Arc::from(bytes),
        shipped: true,
    })
}

/// How many instances the seed missed call runs: `missed_call_alert`, `user` and `voicemail`
/// nodes, then the alert's termination callback.
pub const INSTANCES_PER_CALL: u32 = 4;

/// A sink that counts what it is given and keeps nothing.
#[derive(Default)]
pub struct CountingSink {
    published: AtomicU64,
}

impl CountingSink {
    /// Notifications published so far.
    pub fn published(&self) -> u64 {
        self.published.load(Ordering::Relaxed)
    }
}

#[async_trait::async_trait]
impl Sink for CountingSink {
    async fn publish(&self, _: &OutboundNotification) -> Result<(), SinkError> {
        self.published.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Writes the seed accounts under `dir`.
pub fn write_seed_data(dir: &Path) -> std::io::Result<()> {
    for (path, contents) in SEED_FILES {
        let path = dir.join("accounts").join(path);
        std::fs::create_dir_all(path.parent().expect("seed files are in directories"))?;
        std::fs::write(path, contents)?;
    }
    Ok(())
}

/// A host on the seed data, with the shipped modules and `minimal`.
pub struct SeedHost {
    pub runtime: Runtime,
    pub sink: Arc<CountingSink>,
    call: ScenarioCall,
    _data: tempfile::TempDir,
}

impl SeedHost {
    /// Starts a host; `pooled` gives the shipped modules the pooled lifecycle.
    pub async fn start(engine: EngineSettings, pooled: bool) -> anyhow::Result<SeedHost> {
        Self::start_for(engine, pooled, World::V0_3).await
    }

    /// Starts a host whose shipped modules and `minimal` are built for `world`: this build's
    /// (0.3), or the 0.2.1 builds kept in the tree.
    pub async fn start_for(
        engine: EngineSettings,
        pooled: bool,
        world: World,
    ) -> anyhow::Result<SeedHost> {
        // The shipped modules' instances are pooled in the pooled measurements.
        let pooled: Vec<&str> = if pooled {
            shipped_names().collect()
        } else {
            Vec::new()
        };
        Self::start_full(engine, &pooled, world, Vec::new(), &[]).await
    }

    /// Starts a host with `extra` modules loaded after the others (pooled when `pooled`), and
    /// `files` (a path under the data directory, its contents) written beside the seed data.
    pub async fn start_with(
        engine: EngineSettings,
        extra: Vec<ModuleSource>,
        pooled: &[&str],
        files: &[(String, String)],
    ) -> anyhow::Result<SeedHost> {
        Self::start_full(engine, pooled, World::V0_3, extra, files).await
    }

    /// Starts a host whose modules named in `pooled` have the pooled lifecycle.
    async fn start_full(
        engine: EngineSettings,
        pooled: &[&str],
        world: World,
        extra: Vec<ModuleSource>,
        files: &[(String, String)],
    ) -> anyhow::Result<SeedHost> {
        let data = tempfile::tempdir()?;
        write_seed_data(data.path())?;
        for (path, contents) in files {
            let path = data.path().join(path);
            std::fs::create_dir_all(path.parent().expect("a file under the data directory"))?;
            std::fs::write(path, contents)?;
        }
        let sink = Arc::new(CountingSink::default());
        let mut options = HostOptions::new(data.path(), sink.clone());
        options.engine = engine;
        options.modules = modules()?;
        options.modules.extend(extra);
        if world == World::V0_2 {
            // Loaded after this build's, so they replace them by name.
            for name in shipped_names().chain(["minimal"]) {
                let path = Path::new(BUILT_FOR_0_2_DIR).join(format!("{name}.wasm"));
                options.modules.push(module_file(&path)?);
            }
        }
        for module in pooled {
            options
                .policy
                .set_module_lifecycle(module, Lifecycle::Pooled { max_uses: 1000 });
        }
        let (runtime, report) = Runtime::start(options).await?;
        let other_world = runtime
            .modules()
            .system()
            .modules()
            .find(|module| module.world() != world)
            .map(|module| module.name().to_string());
        if let Some(name) = other_world {
            anyhow::bail!("the seed host for {world} runs `{name}` built for another world");
        }
        if !report.module_errors.is_empty() || !report.data.errors.is_empty() {
            anyhow::bail!(
                "the seed host did not load cleanly: {:?} {:?}",
                report.module_errors,
                report.data.errors
            );
        }
        let scenarios: Vec<ScenarioCall> = serde_json::from_str(SCENARIOS)?;
        let call = scenarios
            .into_iter()
            .next()
            .expect("the scenario has calls");
        Ok(SeedHost {
            runtime,
            sink,
            call,
            _data: data,
        })
    }

    /// The details of the `n`th seed missed call.
    pub fn details(&self, n: u64) -> CallDetails {
        let mut details = self.call.details(0);
        details.call_id = format!("bench-{n}");
        self.runtime.complete_details(details)
    }

    /// The details of the `n`th seed call, dialed to `request` instead.
    pub fn details_to(&self, n: u64, request: &str) -> CallDetails {
        let mut details = self.call.details(0);
        details.call_id = format!("bench-{n}");
        details.request = request.to_string();
        self.runtime.complete_details(details)
    }

    /// A simulated switch for one seed call.
    pub fn switch(&self) -> SimulatedSwitch {
        SimulatedSwitch::new(self.call.behaviour, simulated_start())
    }

    /// Runs the `n`th seed missed call to its end; an error if it did not publish its alert.
    pub async fn run_call(&self, n: u64) -> anyhow::Result<()> {
        let before = self.sink.published();
        self.runtime
            .run_call(
                Arc::new(Call::new(self.details(n))),
                Arc::new(self.switch()),
            )
            .await?;
        anyhow::ensure!(
            self.sink.published() > before,
            "seed call {n} published no missed-call alert"
        );
        Ok(())
    }
}

/// The embedded modules and `minimal`.
pub fn modules() -> anyhow::Result<Vec<ModuleSource>> {
    let mut modules = embedded_modules();
    modules.push(minimal_module()?);
    Ok(modules)
}

/// The data of each shipped module's node in the seed callflows, by module.
pub fn node_data() -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, contents) in SEED_FILES {
        if path.contains("/callflows/") {
            let flow: Value = serde_json::from_str(contents).expect("seed callflows are JSON");
            collect_nodes(&flow["flow"], &mut found);
        }
    }
    let mut data: Vec<(String, String)> = Vec::new();
    for (module, node_data) in found {
        if !data.iter().any(|(known, _)| *known == module) {
            data.push((module, node_data));
        }
    }
    data
}

fn collect_nodes(node: &Value, found: &mut Vec<(String, String)>) {
    if let Some(module) = node["module"].as_str() {
        found.push((module.to_string(), node["data"].to_string()));
    }
    if let Some(children) = node["children"].as_object() {
        for child in children.values() {
            collect_nodes(child, found);
        }
    }
}

/// When simulated calls start.
pub fn simulated_start() -> SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}
