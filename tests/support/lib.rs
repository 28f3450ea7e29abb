//! What every test shares: a test host (a temporary data directory, the shipped modules plus
//! the test fixtures `test_fixture`, `no_capabilities` and `hostile`, a policy, and an
//! in-memory notification sink), a private RabbitMQ ([`broker`]), KAZOO's message definitions
//! ([`kazoo`]), and small helpers.

pub mod broker;
pub mod fairness;
pub mod kamailio;
pub mod kazoo;
pub mod postgres;
pub mod sipp;
pub mod smtp;

use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use cfhost_core::bindings::Outcome;
use cfhost_core::call::Call;
use cfhost_core::engine::EngineSettings;
use cfhost_core::executor::CallReport;
use cfhost_core::notify::{MemorySink, OutboundNotification, Sink};
use cfhost_core::policy::{ModuleCounters, Policy};
use cfhost_core::registry::{BUILT_MODULES_DIR, ModuleSource};
use cfhost_core::runtime::{CallError, HostOptions, LoadReport, Runtime};
use cfhost_core::scenario::ScenarioCall;
use cfhost_core::switch::{BridgeHook, SimulatedSwitch, SimulatorBehaviour, Switch};
use cfhost_core::trace::TraceEvent;
use cfhost_store::{FilesStore, Store, copy_all};
use serde_json::Value;

/// Instance slots of a test host's pool: enough for any test but the load test (which sets
/// its own), and few enough that the many hosts of one test binary, running at once, stay
/// far below the kernel's limit on a process's memory mappings.
pub const TEST_POOL_INSTANCES: u32 = 512;

/// Writes a data directory, then starts a host on it.
pub struct Builder {
    dir: tempfile::TempDir,
    policy: Policy,
    engine: EngineSettings,
    modules: Vec<ModuleSource>,
    modules_dir: bool,
    store: Option<Arc<dyn Store>>,
    /// Copy the data directory's accounts into `store` before starting.
    import: bool,
}

/// A running test host.
pub struct TestHost {
    dir: tempfile::TempDir,
    runtime: Arc<Runtime>,
    /// The in-memory sink, unless the host was started with another one.
    memory: Option<Arc<MemorySink>>,
    /// What loading reported.
    pub report: LoadReport,
}

impl Builder {
    /// An empty data directory.
    pub fn new() -> Self {
        Builder {
            dir: tempfile::tempdir().expect("temp dir"),
            policy: Policy::default(),
            engine: EngineSettings {
                pool_instances: TEST_POOL_INSTANCES,
                ..EngineSettings::default()
            },
            modules: ["test_fixture", "no_capabilities", "hostile"]
                .into_iter()
                .map(fixture_module)
                .collect(),
            modules_dir: false,
            store: None,
            import: false,
        }
    }

    /// Takes the accounts from `store` instead of the host's data directory.
    pub fn store(mut self, store: Arc<dyn Store>) -> Self {
        self.store = Some(store);
        self
    }

    /// Takes the accounts from `store`, after copying into it what was written into the data
    /// directory (as `cfhost store import` would).
    pub fn imported_into(mut self, store: Arc<dyn Store>) -> Self {
        self.import = true;
        self.store(store)
    }

    /// Changes the host's policy (limits, failure modes, grants).
    pub fn policy(mut self, change: impl FnOnce(&mut Policy)) -> Self {
        change(&mut self.policy);
        self
    }

    /// Changes the engine settings (pool, compiled-component cache).
    pub fn engine(mut self, change: impl FnOnce(&mut EngineSettings)) -> Self {
        change(&mut self.engine);
        self
    }

    /// Leaves out the test fixture `name` (`test_fixture`, `no_capabilities`, `hostile`), so
    /// that an account may have a module of that name.
    pub fn without_fixture(mut self, name: &str) -> Self {
        self.modules.retain(|module| {
            Path::new(&module.origin).file_stem() != Some(std::ffi::OsStr::new(name))
        });
        self
    }

    /// Loads `module` too, after the shipped modules and the fixtures.
    pub fn module(mut self, module: ModuleSource) -> Self {
        self.modules.push(module);
        self
    }

    /// Puts a built module into the operator's module directory ([`TestHost::modules_dir`])
    /// as `file`.
    pub fn system_module_file(mut self, file: &str, built: &str) -> Self {
        self.modules_dir = true;
        let path = format!("{SYSTEM_MODULES}/{file}");
        self.write(&path, built_module(built))
    }

    /// Drops `module` into the operator's module directory, under its file name, as an
    /// operator would: granted only what the policy grants.
    pub fn dropped_in(mut self, module: ModuleSource) -> Self {
        self.modules_dir = true;
        let file = Path::new(&module.origin)
            .file_name()
            .expect("a module file")
            .to_string_lossy()
            .into_owned();
        self.write(&format!("{SYSTEM_MODULES}/{file}"), &module.bytes[..])
    }

    /// Puts a built module into `account`'s own module directory as `file`.
    pub fn account_module_file(self, account: &str, file: &str, built: &str) -> Self {
        self.write(
            &format!("accounts/{account}/modules/{file}"),
            built_module(built),
        )
    }

    /// Adds callflow `id` (written as `<id>.json`) to `account`.
    pub fn callflow(self, account: &str, id: &str, document: Value) -> Self {
        self.raw_callflow(account, &format!("{id}.json"), &document.to_string())
    }

    /// Adds a callflow file with exactly this text.
    pub fn raw_callflow(self, account: &str, file: &str, text: &str) -> Self {
        self.write(&format!("accounts/{account}/callflows/{file}"), text)
    }

    /// Writes `file` (e.g. `account.json`) into `account`'s directory.
    pub fn account_document(self, account: &str, file: &str, document: Value) -> Self {
        self.write(&format!("accounts/{account}/{file}"), document.to_string())
    }

    /// Adds user `id` to `account`.
    pub fn user(self, account: &str, id: &str, document: Value) -> Self {
        self.write(
            &format!("accounts/{account}/users/{id}.json"),
            document.to_string(),
        )
    }

    /// Writes `document` as the file `relative` to the data directory (e.g.
    /// `accounts/acme/devices/d1.json`).
    pub fn write_json(self, relative: &str, document: Value) -> Self {
        self.write(relative, document.to_string())
    }

    fn write(self, relative: &str, text: impl AsRef<[u8]>) -> Self {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    /// Starts the host with the shipped modules and the test fixtures, publishing into memory.
    pub async fn start(self) -> TestHost {
        let memory = Arc::new(MemorySink::default());
        let mut host = self.start_with_sink(memory.clone()).await;
        host.memory = Some(memory);
        host
    }

    /// Starts the host publishing to `sink`.
    pub async fn start_with_sink(self, sink: Arc<dyn Sink>) -> TestHost {
        let mut options = HostOptions::new(self.dir.path(), sink);
        options.node = "cfhost@test".to_string();
        options.modules.extend(self.modules);
        options.policy = self.policy;
        options.engine = self.engine;
        if let Some(store) = self.store {
            if self.import {
                let files = FilesStore::new(self.dir.path());
                copy_all(&files, &*store)
                    .await
                    .expect("the accounts are imported");
            }
            options.store = store;
        }
        if self.modules_dir {
            options.modules_dir = Some(self.dir.path().join(SYSTEM_MODULES));
        }
        let (runtime, report) = Runtime::start(options).await.expect("host starts");
        TestHost {
            dir: self.dir,
            runtime: Arc::new(runtime),
            memory: None,
            report,
        }
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

/// Where [`Builder::system_module_file`] puts modules, under the host's temporary directory.
const SYSTEM_MODULES: &str = "system-modules";

/// The bytes of a module built from `modules/` (`versioned_v1`, `test_fixture`, ...).
pub fn built_module(name: &str) -> Vec<u8> {
    let path = Path::new(BUILT_MODULES_DIR).join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A module built from `modules/fixtures`, treated as shipped: granted what it declares.
pub fn fixture_module(name: &str) -> ModuleSource {
    ModuleSource {
        shipped: true,
        ..dropped_in_module(name)
    }
}

/// A module built from `modules/fixtures`, as if an operator dropped it in: granted only what
/// the policy grants.
pub fn dropped_in_module(name: &str) -> ModuleSource {
    let path = Path::new(BUILT_MODULES_DIR).join(format!("{name}.wasm"));
    ModuleSource {
        origin: path.display().to_string(),
        bytes: Arc::from(built_module(name)),
        shipped: false,
    }
}

impl TestHost {
    /// The host under test.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The host under test, shared: what a backend such as SIP takes calls into.
    pub fn shared_runtime(&self) -> Arc<Runtime> {
        Arc::clone(&self.runtime)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The operator's module directory (used when a module was put there).
    pub fn modules_dir(&self) -> std::path::PathBuf {
        self.dir.path().join(SYSTEM_MODULES)
    }

    /// Runs one call given as a scenario entry.
    pub async fn call(&self, call: Value) -> Result<CallReport, CallError> {
        let call: ScenarioCall = serde_json::from_value(call).expect("a valid scenario call");
        let switch = Arc::new(SimulatedSwitch::new(call.behaviour, simulated_start()));
        self.runtime.run_call(self.new_call(&call, 0), switch).await
    }

    /// Runs one call given as a scenario entry on `switch`.
    pub async fn run_on(&self, call: Value, switch: Arc<dyn Switch>) -> CallReport {
        let call: ScenarioCall = serde_json::from_value(call).expect("a valid scenario call");
        self.runtime
            .run_call(self.new_call(&call, 0), switch)
            .await
            .expect("the call runs")
    }

    /// The call of scenario entry `call` (the `index`th of its scenario), as a backend that
    /// took it would hold it, with the details a switch fills in.
    pub fn new_call(&self, call: &ScenarioCall, index: usize) -> Arc<Call> {
        Arc::new(Call::new(
            self.runtime.complete_details(call.details(index)),
        ))
    }

    /// Runs one node of `module` with `data` for a call of `account`, outside of any flow.
    pub async fn run_node(
        &self,
        account: &str,
        module: &str,
        data: Value,
    ) -> Result<Outcome, CallError> {
        let call = serde_json::json!({"account_id": account, "to": "node"});
        let call: ScenarioCall = serde_json::from_value(call).expect("a valid scenario call");
        let details = self.runtime.complete_details(call.details(0));
        let switch = Arc::new(SimulatedSwitch::new(call.behaviour, simulated_start()));
        self.runtime
            .run_node(details, switch, module, &data.to_string())
            .await
    }

    /// Runs a call that must find its callflow.
    pub async fn run(&self, call: Value) -> CallReport {
        self.call(call).await.expect("the call runs")
    }

    /// Everything published so far.
    pub fn notifications(&self) -> Vec<OutboundNotification> {
        self.memory
            .as_ref()
            .expect("this host publishes to another sink")
            .published()
    }

    /// The published notifications' routing keys.
    pub fn routing_keys(&self) -> Vec<String> {
        self.notifications()
            .into_iter()
            .map(|n| n.routing_key)
            .collect()
    }

    /// The `Template-ID` of every published `cf_notification`, in order.
    pub fn template_ids(&self) -> Vec<String> {
        self.notifications()
            .iter()
            .filter_map(|n| n.payload.get("Template-ID")?.as_str().map(str::to_string))
            .collect()
    }
}

/// The seed `missed_call_alert` example's flow (`../shared/seeds/missed_call_alert.txt`).
pub fn seed_missed_call_alert() -> Value {
    serde_json::from_str(include_str!(
        "../../examples/data/accounts/acme-missed/callflows/seed_missed_call_alert.json"
    ))
    .unwrap()
}

/// The seed `notification` example's flow (`../shared/seeds/notification.txt`).
pub fn seed_notification() -> Value {
    serde_json::from_str(include_str!(
        "../../examples/data/accounts/acme-notify/callflows/seed_notification.json"
    ))
    .unwrap()
}

/// The users the seed examples refer to: a recipient and the user that is rung.
pub fn with_seed_users(builder: Builder, account: &str) -> Builder {
    builder
        .user(
            account,
            "bdc3a4b7e3a5405a9aa8a0f9c6b76997",
            serde_json::json!({"email": "office.manager@example.com"}),
        )
        .user(
            account,
            "3e3f1217bee3ba0aa7496ca61fb4ae8f",
            serde_json::json!({"email": "front.desk@example.com"}),
        )
}

/// What each node of `report` came to (`continue`, `stop`, `FAILED: ...`), in order.
pub fn node_results(report: &CallReport) -> Vec<String> {
    report
        .trace
        .iter()
        .filter_map(|e| match e {
            TraceEvent::NodeResult { result, .. } => Some(result.to_string()),
            _ => None,
        })
        .collect()
}

/// The host's counters of `module` (all zero when it never ran).
pub fn module_counters(host: &TestHost, module: &str) -> ModuleCounters {
    host.runtime()
        .health()
        .counters()
        .get(module)
        .cloned()
        .unwrap_or_default()
}

/// The repository root.
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// Copies the directory `from` into `to` (made if missing), recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Each of `items` as the line it prints: how tests read typed reports.
pub fn lines<T: std::fmt::Display>(items: &[T]) -> Vec<String> {
    items.iter().map(ToString::to_string).collect()
}

/// A proptest runner of `cases` cases that keeps no failure file (the fuzz tests' inputs are
/// printed when they fail).
pub fn fuzz_runner(cases: u32) -> proptest::test_runner::TestRunner {
    proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    })
}

/// A TCP port on loopback that nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a loopback port")
        .local_addr()
        .expect("its address")
        .port()
}

/// Asserts the body of the alert the seed `missed_call_alert` callflow sends for an unanswered
/// inbound call that hung up at voicemail.
pub fn assert_seed_missed_call(payload: &Value, account_id: &str, call_id: &str) {
    assert_eq!(payload["Event-Name"], "missed_call");
    assert_eq!(payload["App-Name"], "callflow");
    assert_eq!(payload["Account-ID"], account_id);
    assert_eq!(payload["Call-ID"], call_id);
    assert_eq!(payload["Call-Bridged"], false);
    assert_eq!(payload["Message-Left"], false);
    // The user recipient resolves through the directory, then the email list, in order.
    assert_eq!(
        payload["To"],
        serde_json::json!([
            "office.manager@example.com",
            "support@test.com",
            "john@doe.com"
        ])
    );
    assert_eq!(
        payload["Notify"],
        serde_json::json!({"Hangup-Cause": "NORMAL_CLEARING", "Hangup-Code": "sip:200"})
    );
}

/// A simulated call with `behaviour` whose bridges await `before_bridge` first.
pub fn hooked_switch(behaviour: SimulatorBehaviour, before_bridge: BridgeHook) -> SimulatedSwitch {
    SimulatedSwitch::new(behaviour, simulated_start()).before_bridge(before_bridge)
}

/// When simulated calls start.
fn simulated_start() -> SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)
}

/// The shipped modules as built for `cfhost:callflow@0.2.1` before the contract moved to 0.3
/// (`tests/fixtures/wit-0.2.1/`), as shipped modules: granted what they declare.
pub fn wit_0_2_1_module(name: &str) -> ModuleSource {
    committed_module(&format!("tests/fixtures/wit-0.2.1/{name}.wasm"))
}

/// The shipped modules as built for `cfhost:callflow@0.3.0`, before 0.3.1 added the `node`
/// interface (`tests/fixtures/wit-0.3.0/`), as shipped modules.
pub fn wit_0_3_0_module(name: &str) -> ModuleSource {
    committed_module(&format!("tests/fixtures/wit-0.3.0/{name}.wasm"))
}

/// A module written in Python or JavaScript (`blocklist`, `check_cid`, `py_hostile`,
/// `js_hostile`), as `modules/build-polyglot` built it into `target/polyglot/` (`tests/run`
/// runs it first), treated as shipped: granted what it declares.
pub fn polyglot_module(name: &str) -> ModuleSource {
    let path = repo_root().join(format!("target/polyglot/{name}.wasm"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}: build the Python and JavaScript modules with modules/build-polyglot \
             (tests/run does)",
            path.display()
        )
    });
    ModuleSource {
        origin: path.display().to_string(),
        bytes: Arc::from(bytes),
        shipped: true,
    }
}

/// Where `test_fixture` as built for `cfhost:callflow@0.2.0` is committed.
pub const WIT_0_2_0_FIXTURE: &str = "tests/fixtures/wit-0.2.0/test_fixture.wasm";

/// `test_fixture` as built for `cfhost:callflow@0.2.0` ([`WIT_0_2_0_FIXTURE`]), as a shipped
/// module.
pub fn wit_0_2_0_fixture() -> ModuleSource {
    committed_module(WIT_0_2_0_FIXTURE)
}

/// A module binary committed under the repository root at `path`, as a shipped module.
fn committed_module(path: &str) -> ModuleSource {
    let path = repo_root().join(path);
    ModuleSource {
        origin: path.display().to_string(),
        bytes: Arc::from(
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        ),
        shipped: true,
    }
}

/// The shipped modules built for 0.2.1 (and for 0.3.0), in the order a host loads them.
pub const SHIPPED_AT_0_2_1: [&str; 4] = ["missed_call_alert", "notification", "user", "voicemail"];
