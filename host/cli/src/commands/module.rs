//! `cfhost module check FILE.wasm`: whether a component would load as a callflow module, and
//! what it says about itself.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};

use cfhost_core::bindings::WIT_PACKAGE;
use cfhost_core::engine::{EngineSettings, Sandbox};
use cfhost_core::policy::Policy;
use cfhost_core::registry::{LoadedModule, ModuleSource, Registry, Scope};

/// What to do with a module.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check that a component loads as a callflow module: it is a component, built against a
    /// version of the WIT this host runs (0.3, or 0.2 for older modules), exports the
    /// `callflow-module` world, describes itself, and its data schema compiles. Prints its
    /// description and the world it implements; exits 1 with the reason if not.
    Check(CheckOptions),
}

/// `module check`'s arguments.
#[derive(Debug, clap::Args)]
pub struct CheckOptions {
    /// The component (`.wasm`).
    pub file: PathBuf,
    /// Print the description as one JSON object.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(command: Command) -> anyhow::Result<ExitCode> {
    let Command::Check(options) = command;
    let bytes = std::fs::read(&options.file)
        .with_context(|| format!("cannot read {}", options.file.display()))?;
    let policy = Policy::default();
    // A few slots are plenty for one `describe`; compiling it is cached like the host does.
    let engine = EngineSettings {
        pool_instances: 4,
        ..EngineSettings::default()
    };
    let sandbox = Sandbox::new(&engine, &policy).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    let source = ModuleSource {
        origin: options.file.display().to_string(),
        bytes: Arc::from(bytes),
        // Checked for what it is, not for what an operator granted it: the capabilities it
        // asks for are printed.
        shipped: true,
    };
    match Registry::check_one(&sandbox, &policy, Scope::System, source).await {
        Ok(module) => {
            let report = report(&module);
            if options.json {
                println!("{report}");
            } else {
                print_table(&report);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error: {error}");
            Ok(ExitCode::FAILURE)
        }
    }
}

fn report(module: &LoadedModule) -> Value {
    let mut report = module.to_json();
    report["file"] = json!(module.origin());
    report
}

fn print_table(report: &Value) {
    let text = |key: &str| report[key].as_str().unwrap_or("-").to_string();
    println!("ok: {}", text("file"));
    println!("  name          {}", text("name"));
    println!("  version       {}", text("version"));
    println!("  summary       {}", text("summary"));
    println!("  world         {}", text("world"));
    println!(
        "  built against {}",
        report["wit_version"].as_str().map_or_else(
            || "(imports nothing of cfhost:callflow)".to_string(),
            |version| format!("{WIT_PACKAGE}@{version}")
        )
    );
    let capabilities: Vec<&str> = report["capabilities"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if capabilities.is_empty() {
        println!("  capabilities  (none)");
    } else {
        println!("  capabilities  {}", capabilities.join(", "));
        println!(
            "                (an operator grants them with [modules.{}] capabilities = [{}])",
            text("name"),
            capabilities
                .iter()
                .map(|c| format!("\"{c}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("  sha256        {}", text("sha256"));
    let schema = serde_json::to_string_pretty(&report["data_schema"]).unwrap_or_default();
    println!("  data schema");
    for line in schema.lines() {
        println!("    {line}");
    }
}
