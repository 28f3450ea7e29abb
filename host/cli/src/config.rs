//! The configuration file (TOML): the only place that knows the whole file. Each section's
//! type is owned by the part it configures (`cfhost-core`'s engine, notifications and policy;
//! `cfhost-sip`; `cfhost-mail`); this module reads the file, lays the `CFHOST_<SECTION>__<KEY>`
//! environment over it, then the command-line flags ([`Flags`]), in that order of precedence,
//! once. Every key is optional.
//!
//! ```toml
//! [notifications]
//! # "amqp://user:pass@host:port/vhost", a file path for JSON lines, or "-" for stdout
//! target = "amqp://guest:guest@127.0.0.1:5672/%2f"
//! outbox_dir = "/var/lib/cfhost/outbox"   # default: <data dir>/outbox
//! outbox_capacity = 100000                 # undelivered notifications kept at most
//! flush_timeout_secs = 30                  # how long `simulate` waits for confirms at exit
//! mailer_queue = "cfhost.mailer"           # declared for `cfhost mailer`; "" for none
//!
//! [mailer]                                 # `cfhost mailer`; see `cfhost_mail::config`
//! amqp = "amqp://guest:guest@127.0.0.1:5672/%2f"
//! smtp = "smtp://127.0.0.1:25"
//!
//! [store]                                 # see `cfhost_store::config`
//! url = "postgres://cfhost:secret@db.example:5432/cfhost"   # default: the data directory
//!
//! [serve.clients]                          # limits on HTTP clients; see `api::clients`
//! max_connections = 1024
//! [limits]                                 # for every account; see `policy::Limits`
//! handle_deadline_ms = 2000
//! [loading]
//! max_wasm_kib = 32768
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
//! lifecycle = "pooled"                     # the account's own module `hello` (default per-node)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use cfhost_core::engine::EngineSettings;
use cfhost_core::notify::NotificationsConfig;
use cfhost_core::policy::{
    AccountConfig, FailureConfig, LifecycleError, LimitOverrides, LoadingConfig, ModuleConfig,
    Policy, PolicyConfig,
};
use cfhost_mail::MailerConfig;
use cfhost_store::StoreConfig;

use crate::api::ClientLimits;
use cfhost_sip::SipConfig;

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub notifications: NotificationsConfig,
    /// Limits for every account (see `cfhost_core::policy::Limits` for the defaults).
    pub limits: LimitOverrides,
    pub loading: LoadingConfig,
    pub engine: EngineSettings,
    pub serve: ServeConfig,
    pub failure: FailureConfig,
    /// Per module: its grant, failure mode and lifecycle.
    pub modules: BTreeMap<String, ModuleConfig>,
    /// Per account: its limits and grants.
    pub accounts: BTreeMap<String, AccountConfig>,
    pub sip: SipConfig,
    pub mailer: MailerConfig,
    /// Where the accounts' documents and modules live.
    pub store: StoreConfig,
}

/// `[serve]`: the long-running host of `cfhost serve`, and where every command finds its data.
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
    /// `[serve.clients]`: limits on HTTP clients.
    pub clients: ClientLimits,
    /// Whether an account's token may ask a simulated call (`POST .../calls`) to publish its
    /// notifications for real (`"publish": true`); the operator's token always may.
    pub account_calls_may_publish: bool,
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
            clients: ClientLimits::default(),
            account_calls_may_publish: false,
        }
    }
}

impl ServeConfig {
    /// Refuses token settings that cannot be right: an empty token, an account token equal to
    /// the operator's (that account would be operator), one token for two accounts (either
    /// could act as the other). The errors name accounts, never tokens.
    pub fn check_tokens(&self) -> Result<(), TokenError> {
        if self
            .operator_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(TokenError::Empty("the operator".to_string()));
        }
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (account, token) in &self.account_tokens {
            if token.trim().is_empty() {
                return Err(TokenError::Empty(format!("account `{account}`")));
            }
            if self.operator_token.as_deref() == Some(token.as_str()) {
                return Err(TokenError::SameAsOperator(account.clone()));
            }
            if let Some(first) = seen.insert(token, account) {
                return Err(TokenError::Shared {
                    first: first.to_string(),
                    second: account.clone(),
                });
            }
        }
        Ok(())
    }
}

/// Token settings that cannot be right.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("[serve] the token of {0} is empty")]
    Empty(String),
    #[error(
        "[serve] the token of account `{0}` is the operator's: it would make that account operator"
    )]
    SameAsOperator(String),
    #[error(
        "[serve] accounts `{first}` and `{second}` have the same token: each could act as the other"
    )]
    Shared { first: String, second: String },
}

/// What a command's flags (or their one-level environment variables, `CFHOST_LISTEN`, ...)
/// set; each replaces the file's value when given.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub data_dir: Option<PathBuf>,
    pub modules_dir: Option<PathBuf>,
    pub notifications: Option<String>,
    pub outbox_dir: Option<PathBuf>,
    pub listen: Option<String>,
    pub operator_token: Option<String>,
    /// Added to (and replacing) the file's account tokens.
    pub account_tokens: BTreeMap<String, String>,
}

impl Config {
    /// The configuration a command runs with: the file at `path` (the defaults without one),
    /// the environment's `CFHOST_<SECTION>__<KEY>` variables over it, then `flags`.
    pub fn load(path: Option<&Path>, flags: Flags) -> Result<Config, ConfigError> {
        let mut config = read_config_with_env(path, std::env::vars())?;
        config.apply(flags);
        config.serve.check_tokens()?;
        Ok(config)
    }

    /// Sets what `flags` give.
    fn apply(&mut self, flags: Flags) {
        let serve = &mut self.serve;
        serve.data_dir = flags
            .data_dir
            .unwrap_or(std::mem::take(&mut serve.data_dir));
        serve.modules_dir = flags.modules_dir.or(serve.modules_dir.take());
        serve.listen = flags.listen.unwrap_or(std::mem::take(&mut serve.listen));
        serve.operator_token = flags.operator_token.or(serve.operator_token.take());
        serve.account_tokens.extend(flags.account_tokens);
        let notifications = &mut self.notifications;
        notifications.target = flags.notifications.or(notifications.target.take());
        notifications.outbox_dir = flags.outbox_dir.or(notifications.outbox_dir.take());
    }

    /// The policy the `[limits]`, `[loading]`, `[failure]`, `[modules]` and `[accounts]`
    /// sections make.
    pub fn policy(&self) -> Result<Policy, LifecycleError> {
        Policy::from_config(&PolicyConfig {
            limits: self.limits.clone(),
            loading: self.loading.clone(),
            failure: self.failure.clone(),
            modules: self.modules.clone(),
            accounts: self.accounts.clone(),
        })
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
    #[error(transparent)]
    Tokens(#[from] TokenError),
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
fn read_config_with_env(
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
        set_key(&mut table, &keys, env_value(&raw)).map_err(|e| ConfigError::Invalid {
            file: place.clone(),
            message: format!("environment variable {name}: {e}"),
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

/// A variable naming a key below one that is not a section.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a section")]
struct NotASection(String);

fn set_key(
    table: &mut toml::Table,
    keys: &[String],
    value: toml::Value,
) -> Result<(), NotASection> {
    let (last, sections) = keys.split_last().expect("at least two keys");
    let mut table = table;
    for key in sections {
        let entry = table
            .entry(key.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        table = entry
            .as_table_mut()
            .ok_or_else(|| NotASection(key.clone()))?;
    }
    table.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use cfhost_core::policy::Capability;

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
            ("CFHOST_MAILER__SMTP", "smtps://mx.example.com:465"),
            ("CFHOST_MAILER__STARTTLS", "required"),
            ("CFHOST_MAILER__MAX_ATTEMPTS", "3"),
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
            config.mailer.smtp.as_deref(),
            Some("smtps://mx.example.com:465")
        );
        assert_eq!(
            config.mailer.starttls,
            cfhost_mail::config::StartTls::Required
        );
        assert_eq!(config.mailer.max_attempts, 3);
        assert_eq!(
            config.loading.max_wasm_kib,
            cfhost_core::policy::DEFAULT_MAX_WASM_BYTES >> 10,
            "the prefix is upper case"
        );
        assert_eq!(
            config.modules["router"].capabilities,
            Some(vec![Capability::Clock, Capability::Log])
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
    fn each_section_is_read_by_the_type_of_its_owner() {
        let config: Config = toml::from_str("[notifications]\ntarget = \"-\"").unwrap();
        assert_eq!(config.notifications.outbox_capacity, 100_000);
        let err = toml::from_str::<Config>("[notifications]\ntarget_url = \"x\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `target_url`"),
            "{err}"
        );
        let err = toml::from_str::<Config>("[modules.hello]\ncapabilities = [\"files\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown variant `files`"), "{err}");
    }

    #[test]
    fn flags_win_over_the_file_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cfhost.toml");
        std::fs::write(
            &file,
            "[serve]\nlisten = \"127.0.0.1:1\"\ndata_dir = \"/file\"\n\
             account_tokens = { acme = \"a\", other = \"o\" }\n\
             [notifications]\ntarget = \"file.jsonl\"",
        )
        .unwrap();
        let mut config = read_config_with_env(Some(&file), []).unwrap();
        config.apply(Flags {
            data_dir: Some("/flag".into()),
            notifications: Some("-".into()),
            account_tokens: BTreeMap::from([("acme".to_string(), "b".to_string())]),
            ..Flags::default()
        });
        assert_eq!(config.serve.data_dir, PathBuf::from("/flag"));
        assert_eq!(
            config.serve.listen, "127.0.0.1:1",
            "kept where no flag is given"
        );
        assert_eq!(config.notifications.target.as_deref(), Some("-"));
        assert_eq!(config.serve.account_tokens["acme"], "b");
        assert_eq!(config.serve.account_tokens["other"], "o");
    }

    #[test]
    fn token_settings_that_cannot_be_right_are_refused_at_start() {
        let serve = |operator: Option<&str>, accounts: &[(&str, &str)]| ServeConfig {
            operator_token: operator.map(str::to_string),
            account_tokens: accounts
                .iter()
                .map(|(a, t)| (a.to_string(), t.to_string()))
                .collect(),
            ..ServeConfig::default()
        };
        let ok = serve(Some("op-secret"), &[("acme", "a1"), ("other", "o1")]);
        assert_eq!(ok.check_tokens(), Ok(()));
        assert_eq!(serve(None, &[]).check_tokens(), Ok(()));
        assert_eq!(
            serve(Some(" "), &[]).check_tokens(),
            Err(TokenError::Empty("the operator".into()))
        );
        assert_eq!(
            serve(None, &[("acme", "")]).check_tokens(),
            Err(TokenError::Empty("account `acme`".into()))
        );
        let same = serve(Some("op-secret"), &[("acme", "op-secret")]).check_tokens();
        assert_eq!(same, Err(TokenError::SameAsOperator("acme".into())));
        let shared = serve(None, &[("acme", "t"), ("other", "t")]).check_tokens();
        assert_eq!(
            shared,
            Err(TokenError::Shared {
                first: "acme".into(),
                second: "other".into()
            })
        );
        let message = shared.unwrap_err().to_string();
        assert!(
            !message.contains("\"t\""),
            "no token in the message: {message}"
        );
        // Config::load checks them too, with the flags applied.
        let err = Config::load(
            None,
            Flags {
                operator_token: Some("x".into()),
                account_tokens: BTreeMap::from([("acme".to_string(), "x".to_string())]),
                ..Flags::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(err, ConfigError::Tokens(TokenError::SameAsOperator(_))),
            "{err}"
        );
    }

    #[test]
    fn the_readme_examples_are_valid_configurations() {
        let readme = include_str!("../../../README.md");
        let examples: Vec<&str> = readme
            .split("```toml\n")
            .skip(1)
            .map(|block| block.split("```").next().unwrap())
            .collect();
        assert!(examples.len() >= 2, "the README shows its configuration");
        for example in examples {
            let config: Config = toml::from_str(example).unwrap_or_else(|e| panic!("{e}"));
            config.policy().unwrap();
        }
    }
}
