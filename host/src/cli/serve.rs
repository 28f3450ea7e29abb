//! `cfhost serve`: the long-running host with its HTTP API ([`cfhost::api`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use cfhost::api::{ApiState, CaptureSink, Tokens};
use cfhost::config::{Config, NotificationTarget, read_config};
use cfhost::notify::{OpenSink, open_sink};
use cfhost::policy::Policy;
use cfhost::registry::{embedded_modules, modules_in_dir};
use cfhost::runtime::{HostOptions, Runtime};

/// The command's arguments (each also from an environment variable; they override the file).
pub struct Options {
    pub config: Option<PathBuf>,
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    pub modules: Option<PathBuf>,
    pub notifications: Option<String>,
    pub operator_token: Option<String>,
    /// `account=token,account=token`.
    pub account_tokens: Option<String>,
}

pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let config = match &options.config {
        Some(path) => read_config(path)?,
        None => Config::default(),
    };
    let place = || {
        options
            .config
            .as_deref()
            .map_or("configuration".to_string(), |p| p.display().to_string())
    };
    let policy = Policy::from_config(&config).map_err(|e| anyhow::anyhow!("{}: {e}", place()))?;
    let serve = config.serve.clone();
    let listen = options.listen.unwrap_or(serve.listen);
    let data = options.data.unwrap_or(serve.data_dir);
    let modules_dir = options.modules.or(serve.modules_dir);
    let mut account_tokens = serve.account_tokens;
    if let Some(list) = &options.account_tokens {
        account_tokens.extend(parse_account_tokens(list)?);
    }
    let tokens = Tokens::new(
        options.operator_token.or(serve.operator_token),
        account_tokens,
    );

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

    let notifications = config.notifications.clone();
    let target = options
        .notifications
        .or(notifications.target)
        .map_or(NotificationTarget::Stdout, |t| {
            NotificationTarget::parse(&t)
        });
    let outbox_dir = notifications
        .outbox_dir
        .unwrap_or_else(|| data.join("outbox"));
    let OpenSink { sink, amqp } = open_sink(target, &outbox_dir, notifications.outbox_capacity)?;
    let capture = Arc::new(CaptureSink::new(sink));

    let mut host = HostOptions::new(&data, capture.clone());
    host.policy = policy;
    host.engine = config.engine_settings();
    if let Some(dir) = &modules_dir {
        host.modules = embedded_modules();
        host.modules.extend(
            modules_in_dir(dir)
                .with_context(|| format!("cannot read modules from {}", dir.display()))?,
        );
    }
    let (runtime, report) = Runtime::start(host).await?;
    for line in report.module_errors.iter().chain(&report.data.errors) {
        eprintln!("error: {line}");
    }
    for line in &report.data.warnings {
        eprintln!("warning: {line}");
    }
    let state = Arc::new(ApiState::new(runtime, tokens, capture, amqp));
    eprintln!("cfhost serve: listening on http://{address}");
    let drain = Duration::from_secs(serve.shutdown_timeout_secs);
    let flush = Duration::from_secs(notifications.flush_timeout_secs);
    let shutdown = cfhost::api::serve(listener, state, termination_signal(), drain, flush).await?;
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
async fn termination_signal() {
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
