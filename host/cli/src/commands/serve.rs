//! `cfhost serve`: the long-running host with its HTTP API ([`crate::api`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::api::{ApiState, CaptureSink, Tokens};
use cfhost_core::files::remove_leftover_temporaries;
use cfhost_core::follow::follow;
use cfhost_core::notify::OpenSink;
use cfhost_core::runtime::{HostOptions, Runtime};
use cfhost_store::{PgStore, Store};

use crate::config::Flags;

/// The command's arguments.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Configuration file (TOML).
    #[arg(long, env = "CFHOST_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, env = "CFHOST_LISTEN")]
    pub listen: Option<String>,
    /// Data directory (default ./data, created if missing).
    #[arg(long, env = "CFHOST_DATA_DIR")]
    pub data: Option<PathBuf>,
    /// A directory of extra module components (*.wasm).
    #[arg(long, env = "CFHOST_MODULES_DIR")]
    pub modules: Option<PathBuf>,
    /// Where notifications go: an amqp:// URL, a file for JSON lines, or - for stdout.
    #[arg(long, env = "CFHOST_NOTIFICATIONS")]
    pub notifications: Option<String>,
    /// The operator's token (every account, metrics).
    #[arg(long, env = "CFHOST_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,
    /// Per-account tokens: account=token,account=token.
    #[arg(long, env = "CFHOST_ACCOUNT_TOKENS", hide_env_values = true)]
    pub account_tokens: Option<String>,
    /// Where to take SIP, UDP and TCP (default [sip] listen, 127.0.0.1:5060); `off` takes none.
    #[arg(long, env = "CFHOST_SIP_LISTEN")]
    pub sip_listen: Option<String>,
}

pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let flags = Flags {
        data_dir: options.data,
        modules_dir: options.modules,
        notifications: options.notifications,
        listen: options.listen,
        operator_token: options.operator_token,
        account_tokens: match &options.account_tokens {
            Some(list) => parse_account_tokens(list)?,
            None => BTreeMap::new(),
        },
        ..Flags::default()
    };
    let (mut config, policy) = super::load_config(options.config.as_deref(), flags)?;
    match options.sip_listen.as_deref() {
        Some("off") => config.sip.enabled = false,
        Some(listen) => config.sip.listen = listen.to_string(),
        None => {}
    }
    let serve = config.serve.clone();
    let listen = serve.listen;
    let data = serve.data_dir;
    let modules_dir = serve.modules_dir;
    let tokens = Tokens::new(serve.operator_token, serve.account_tokens);

    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    if !tokens.required() && !address.ip().is_loopback() {
        anyhow::bail!(
            "no operator or account token is configured: refusing to serve an open API on \
             {address}; set [serve] operator_token (or CFHOST_OPERATOR_TOKEN), or listen on a \
             loopback address"
        );
    }
    std::fs::create_dir_all(data.join("accounts"))
        .with_context(|| format!("cannot create the data directory {}", data.display()))?;
    // accounts/<id>/{callflows,modules,users}/, and the module directory.
    let leftovers = std::iter::once((data.join("accounts"), 2))
        .chain(modules_dir.clone().map(|dir| (dir, 0)))
        .flat_map(|(dir, depth)| remove_leftover_temporaries(&dir, depth));
    for leftover in leftovers {
        eprintln!(
            "warning: removed {}, left by a write that was cut short",
            leftover.display()
        );
    }

    let notifications = config.notifications.clone();
    let outbox_dir = notifications.outbox_dir(&data);
    let OpenSink { sink, amqp } = notifications.open(&data)?;
    let capture = Arc::new(CaptureSink::new(sink));

    let mut host = HostOptions::new(&data, capture.clone());
    let changes = match config.store.postgres() {
        Some(settings) => {
            let store = PgStore::connect(&settings)
                .await
                .context("cannot open the store ([store] url)")?;
            // Listening starts before the first load, so that no change is missed between.
            let changes = store
                .listen()
                .await
                .context("cannot listen for the store's changes")?;
            eprintln!("cfhost serve: store {}", store.describe());
            host.store = Arc::new(store);
            Some(changes)
        }
        None => None,
    };
    host.policy = policy;
    host.engine = config.engine;
    if let Some(dir) = &modules_dir {
        // Created, so that modules can be dropped in once it runs.
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the module directory {}", dir.display()))?;
    }
    host.modules_dir = modules_dir;
    let (runtime, report) = Runtime::start(host).await?;
    let runtime = Arc::new(runtime);
    for rejection in &report.module_errors {
        eprintln!("error: {rejection}");
    }
    for error in &report.data.errors {
        eprintln!("error: {error}");
    }
    for line in &report.data.warnings {
        eprintln!("warning: {line}");
    }
    let _follow = changes.map(|changes| follow(Arc::clone(&runtime), changes));
    // Messages recorded while the store was away wait on this node's disk; moved in when it
    // returns (and at start, for those of an earlier run).
    let _spool = Arc::clone(runtime.voicemail()).keep_draining(Duration::from_secs(1));
    let _watch = if serve.watch {
        Some(crate::watch::watch(Arc::clone(&runtime))?)
    } else {
        None
    };
    let sip = if config.sip.enabled {
        let sip = cfhost_sip::SipService::start(Arc::clone(&runtime), &config.sip)
            .await
            .context("cannot start SIP")?;
        eprintln!("cfhost serve: SIP on {} (UDP and TCP)", sip.local_addr());
        Some(Arc::new(sip))
    } else {
        None
    };
    let state = Arc::new(
        ApiState::new(runtime, tokens, capture, amqp)
            .with_sip(sip)
            .with_mailer(&config.mailer)
            .with_account_calls_publishing(serve.account_calls_may_publish),
    );
    eprintln!("cfhost serve: listening on http://{address}");
    let drain = Duration::from_secs(serve.shutdown_timeout_secs);
    let flush = Duration::from_secs(notifications.flush_timeout_secs);
    let shutdown = crate::api::serve(
        listener,
        state,
        serve.clients,
        termination_signal(),
        drain,
        flush,
    )
    .await;
    if shutdown.calls_cut_off > 0 {
        eprintln!(
            "{} calls were still running after {}s and were cut off",
            shutdown.calls_cut_off,
            drain.as_secs()
        );
    }
    if shutdown.unconfirmed > 0 {
        eprintln!(
            "{} notifications are not confirmed yet; they stay in the outbox at {} and are \
             delivered on the next start",
            shutdown.unconfirmed,
            outbox_dir.display()
        );
    }
    eprintln!("cfhost serve: stopped");
    Ok(if shutdown.calls_cut_off == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `acme=token1,other=token2` into a map.
fn parse_account_tokens(list: &str) -> anyhow::Result<BTreeMap<String, String>> {
    list.split(',')
        .filter(|entry| !entry.trim().is_empty())
        .map(|entry| {
            let (account, token) = entry.split_once('=').ok_or_else(|| {
                anyhow::anyhow!("account tokens: `{}` is not account=token", entry.trim())
            })?;
            Ok((account.trim().to_string(), token.trim().to_string()))
        })
        .collect()
}

/// Completes on SIGTERM or Ctrl-C.
pub(super) async fn termination_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
