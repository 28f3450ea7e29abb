//! The configuration file (TOML). Every key is optional; command-line flags override it.
//!
//! ```toml
//! [notifications]
//! # "amqp://user:pass@host:port/vhost", a file path for JSON lines, or "-" for stdout
//! target = "amqp://guest:guest@127.0.0.1:5672/%2f"
//! outbox_dir = "/var/lib/cfhost/outbox"   # default: <data dir>/outbox
//! outbox_capacity = 100000                 # undelivered notifications kept at most
//! flush_timeout_secs = 30                  # how long `simulate` waits for confirms at exit
//!
//! [limits]                                 # for every account; see `policy::Limits`
//! handle_deadline_ms = 2000
//! [loading]
//! max_wasm_kib = 2048
//! [failure]
//! mode = "fail-open"                       # or "fail-closed"
//! hangup_cause = "NORMAL_TEMPORARY_FAILURE"
//! quarantine = { after_failures = 5, window_secs = 60, for_secs = 300 }
//! [engine]
//! pool_instances = 16384                   # instances alive at once; 0 allocates on demand
//! keep_resident_kib = 1024                 # memory kept resident per free slot
//! cache_dir = "/var/cache/cfhost"          # compiled components; default ~/.cache/cfhost/components
//! [modules.hello]
//! capabilities = ["log", "notify"]         # what a dropped-in module is granted
//! failure = "fail-closed"
//! lifecycle = "pooled"                     # or "per-node" (default); see `policy::lifecycle`
//! max_uses = 1000
//! [accounts.acme.limits]
//! memory_mib = 4
//! [accounts.acme.modules.hello]
//! capabilities = ["log"]                   # replaces the module's grant for this account
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::engine::EngineSettings;
use crate::engine::settings::{DEFAULT_KEEP_RESIDENT_BYTES, DEFAULT_POOL_INSTANCES};
use crate::policy::{
    DEFAULT_HANGUP_CAUSE, DEFAULT_MAX_WASM_BYTES, FailureMode, LifecycleName, LimitOverrides,
    QuarantineRule,
};

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub notifications: NotificationsConfig,
    /// Limits for every account (see [`Limits`](crate::policy::Limits) for the defaults).
    pub limits: LimitOverrides,
    pub loading: LoadingConfig,
    pub engine: EngineConfig,
    pub serve: ServeConfig,
    pub failure: FailureConfig,
    /// Per module: its grant and failure mode.
    pub modules: BTreeMap<String, ModuleConfig>,
    /// Per account: its limits and grants.
    pub accounts: BTreeMap<String, AccountConfig>,
}

/// Where notifications go and how undelivered ones are kept.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    pub target: Option<String>,
    pub outbox_dir: Option<PathBuf>,
    pub outbox_capacity: usize,
    pub flush_timeout_secs: u64,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            target: None,
            outbox_dir: None,
            outbox_capacity: 100_000,
            flush_timeout_secs: 30,
        }
    }
}

/// `[loading]`: limits on the modules themselves.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadingConfig {
    pub max_wasm_kib: usize,
}

impl Default for LoadingConfig {
    fn default() -> Self {
        LoadingConfig {
            max_wasm_kib: DEFAULT_MAX_WASM_BYTES >> 10,
        }
    }
}

/// `[serve]`: the long-running host of `cfhost serve`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: String,
    /// The data directory: `accounts/<account_id>/{callflows,users}/*.json`.
    pub data_dir: PathBuf,
    /// A directory of module components (`*.wasm`) loaded after the shipped ones.
    pub modules_dir: Option<PathBuf>,
    /// The token for everything. Without it (and without account tokens) the API is open,
    /// which `cfhost serve` only allows on a loopback address.
    pub operator_token: Option<String>,
    /// Per account: a token that can touch only that account.
    pub account_tokens: BTreeMap<String, String>,
    /// How long calls in flight may take to finish after SIGTERM.
    pub shutdown_timeout_secs: u64,
    /// Reload modules and documents when their files change (see [`crate::watch`]).
    pub watch: bool,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            listen: "127.0.0.1:8080".to_string(),
            data_dir: PathBuf::from("data"),
            modules_dir: None,
            operator_token: None,
            account_tokens: BTreeMap::new(),
            shutdown_timeout_secs: 30,
            watch: true,
        }
    }
}

/// `[engine]`: instance allocation and the compiled-component cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    pub pool_instances: u32,
    pub keep_resident_kib: usize,
    /// Where compiled components are cached (default: `$CFHOST_CACHE_DIR`, else
    /// `~/.cache/cfhost/components`).
    pub cache_dir: Option<PathBuf>,
    /// `false` compiles every module at every start.
    pub cache: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            pool_instances: DEFAULT_POOL_INSTANCES,
            keep_resident_kib: DEFAULT_KEEP_RESIDENT_BYTES >> 10,
            cache_dir: None,
            cache: true,
        }
    }
}

/// `[failure]`: the default failure mode, the fail-closed hangup cause, quarantine.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailureConfig {
    pub mode: FailureMode,
    pub hangup_cause: String,
    pub quarantine: QuarantineRule,
}

impl Default for FailureConfig {
    fn default() -> Self {
        FailureConfig {
            mode: FailureMode::FailOpen,
            hangup_cause: DEFAULT_HANGUP_CAUSE.to_string(),
            quarantine: QuarantineRule::default(),
        }
    }
}

/// `[modules.<name>]`: a module's grant, failure mode and lifecycle.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleConfig {
    pub capabilities: Option<Vec<String>>,
    pub failure: Option<FailureMode>,
    pub lifecycle: Option<LifecycleName>,
    pub max_uses: Option<u32>,
}

/// `[accounts.<id>]`: an account's limits and its own grants.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountConfig {
    pub limits: LimitOverrides,
    pub modules: BTreeMap<String, AccountModuleConfig>,
}

/// `[accounts.<id>.modules.<name>]`: what the module is granted for this account.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountModuleConfig {
    pub capabilities: Vec<String>,
}

impl Config {
    /// The engine settings of `[engine]`.
    pub fn engine_settings(&self) -> EngineSettings {
        let cache_dir = if self.engine.cache {
            self.engine
                .cache_dir
                .clone()
                .or_else(crate::engine::cache::default_cache_root)
        } else {
            None
        };
        EngineSettings {
            pool_instances: self.engine.pool_instances,
            keep_resident_bytes: self.engine.keep_resident_kib << 10,
            cache_dir,
        }
    }
}

/// Where notifications go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotificationTarget {
    Stdout,
    File(PathBuf),
    /// An `amqp://` or `amqps://` URL.
    Amqp(String),
}

impl NotificationTarget {
    /// Reads a target: an AMQP URL, `-` for stdout, or a file path.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("amqp://") || text.starts_with("amqps://") {
            NotificationTarget::Amqp(text.to_string())
        } else if text == "-" {
            NotificationTarget::Stdout
        } else {
            NotificationTarget::File(PathBuf::from(text))
        }
    }
}

/// A configuration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
}

/// The prefix of environment variables that set configuration keys.
pub const ENV_PREFIX: &str = "CFHOST_";

/// Reads the configuration file at `path` (the defaults when `None`), then sets the keys that
/// `vars` name, so that every setting can also come from the environment: a variable
/// `CFHOST_<SECTION>__<KEY>` (levels separated by two underscores, any case) sets `key` of
/// `[section]`, e.g. `CFHOST_ENGINE__POOL_INSTANCES=64` or
/// `CFHOST_MODULES__ROUTER__CAPABILITIES='["clock"]'`. The value is read as a TOML value,
/// else taken as a string. Variables with one level (`CFHOST_LISTEN`, ...) are the
/// subcommands' own flags and are left alone.
pub fn read_config_with_env(
    path: Option<&Path>,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let place = path.map_or_else(|| PathBuf::from("configuration"), Path::to_path_buf);
    let mut table = match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
                file: path.to_path_buf(),
                source,
            })?;
            toml::from_str::<toml::Table>(&text).map_err(|e| ConfigError::Invalid {
                file: place.clone(),
                message: e.to_string(),
            })?
        }
        None => toml::Table::new(),
    };
    for (name, raw) in vars {
        let Some(keys) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        let keys: Vec<String> = keys.split("__").map(str::to_lowercase).collect();
        if keys.len() < 2 || keys.iter().any(String::is_empty) {
            continue;
        }
        set_key(&mut table, &keys, env_value(&raw)).map_err(|message| ConfigError::Invalid {
            file: place.clone(),
            message: format!("environment variable {name}: {message}"),
        })?;
    }
    Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Invalid {
        file: place,
        message: e.to_string(),
    })
}

/// A variable's text as a TOML value (`64`, `true`, `["clock"]`), else as a string.
fn env_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("value = {raw}"))
        .ok()
        .and_then(|mut table| table.remove("value"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_key(table: &mut toml::Table, keys: &[String], value: toml::Value) -> Result<(), String> {
    let (last, sections) = keys.split_last().expect("at least two keys");
    let mut table = table;
    for key in sections {
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{key}` is not a section"))?;
    }
    table.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_can_come_from_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cfhost.toml");
        std::fs::write(&file, "[engine]\npool_instances = 10\n[limits]\nfuel = 5").unwrap();
        let vars = [
            ("CFHOST_ENGINE__POOL_INSTANCES", "64"),
            ("CFHOST_SERVE__LISTEN", "0.0.0.0:9000"),
            ("CFHOST_SERVE__WATCH", "false"),
            ("cfhost_loading__max_wasm_kib", "7"),
            (
                "CFHOST_MODULES__ROUTER__CAPABILITIES",
                r#"["clock", "log"]"#,
            ),
            ("CFHOST_LISTEN", "flag of its own"),
            ("HOME", "/root"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = read_config_with_env(Some(&file), vars).unwrap();
        assert_eq!(config.engine.pool_instances, 64, "the environment wins");
        assert_eq!(config.limits.fuel, Some(5), "the file still counts");
        assert_eq!(config.serve.listen, "0.0.0.0:9000");
        assert!(!config.serve.watch);
        assert_eq!(
            config.loading.max_wasm_kib,
            2 << 10,
            "the prefix is upper case"
        );
        assert_eq!(
            config.modules["router"].capabilities,
            Some(vec!["clock".to_string(), "log".to_string()])
        );

        let bad = [("CFHOST_ENGINE__POOL_INSTANCE".to_string(), "3".to_string())];
        let error = read_config_with_env(None, bad).unwrap_err().to_string();
        assert!(error.contains("unknown field `pool_instance`"), "{error}");
        let bad = [("CFHOST_SERVE__LISTEN__PORT".to_string(), "3".to_string())];
        let error = read_config_with_env(Some(&file), bad)
            .unwrap_err()
            .to_string();
        assert!(error.contains("in `serve.listen`"), "{error}");
        std::fs::write(&file, "[serve]\nlisten = \"127.0.0.1:1\"").unwrap();
        let bad = [("CFHOST_SERVE__LISTEN__PORT".to_string(), "3".to_string())];
        let error = read_config_with_env(Some(&file), bad)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "environment variable CFHOST_SERVE__LISTEN__PORT: `listen` is not a section"
            ),
            "{error}"
        );
    }

    #[test]
    fn targets_and_defaults() {
        assert_eq!(
            NotificationTarget::parse("amqp://g:g@localhost:5672/%2f"),
            NotificationTarget::Amqp("amqp://g:g@localhost:5672/%2f".into())
        );
        assert_eq!(NotificationTarget::parse("-"), NotificationTarget::Stdout);
        assert_eq!(
            NotificationTarget::parse("out.jsonl"),
            NotificationTarget::File("out.jsonl".into())
        );
        let config: Config = toml::from_str("[notifications]\ntarget = \"-\"").unwrap();
        assert_eq!(config.notifications.outbox_capacity, 100_000);
        let err = toml::from_str::<Config>("[notifications]\ntarget_url = \"x\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `target_url`"),
            "{err}"
        );
    }

    #[test]
    fn the_readme_examples_are_valid_configurations() {
        let readme = include_str!("../../README.md");
        let examples: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .map(|block| block.split("```").next().unwrap())
            .collect();
        assert!(examples.len() >= 2, "the README shows its configuration");
        for example in examples {
            let config: Config = toml::from_str(example).unwrap_or_else(|e| panic!("{e}"));
            crate::policy::Policy::from_config(&config).unwrap();
        }
    }
}
