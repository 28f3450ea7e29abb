//! `cfhost store import DIR` and `cfhost store export DIR`: a data directory into the
//! configured database ([store] url) and back ([`cfhost_store::copy_all`]), so that an
//! operator moves a node's data into the cluster, or takes it out.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use cfhost_store::{FilesStore, PgStore, Store, copy_all};

use crate::config::{Config, Flags};

/// The command's arguments.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// Configuration file (TOML); its [store] section (or CFHOST_STORE__URL).
    #[arg(long, env = "CFHOST_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: StoreCommand,
}

/// Which way to copy.
#[derive(Debug, clap::Subcommand)]
pub enum StoreCommand {
    /// Copy every account of a data directory (documents and modules) into the database,
    /// over what it has of the same ids. Run again, it ends the same.
    Import {
        /// The data directory (the one holding `accounts/`).
        dir: PathBuf,
    },
    /// Copy every account of the database into a data directory (created if missing), over
    /// the files of the same names.
    Export {
        /// The data directory to write.
        dir: PathBuf,
    },
}

pub async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let config = Config::load(options.config.as_deref(), Flags::default())?;
    let settings = config.store.postgres().context(
        "no database is configured: set [store] url (or CFHOST_STORE__URL) to a PostgreSQL URL",
    )?;
    let database = PgStore::connect(&settings)
        .await
        .context("cannot open the store ([store] url)")?;
    let files;
    let (from, to): (&dyn Store, &dyn Store) = match &options.command {
        StoreCommand::Import { dir } => {
            anyhow::ensure!(
                dir.join("accounts").is_dir(),
                "{} has no accounts/ folder: it is no data directory",
                dir.display()
            );
            files = FilesStore::new(dir);
            (&files, &database)
        }
        StoreCommand::Export { dir } => {
            std::fs::create_dir_all(dir.join("accounts"))
                .with_context(|| format!("cannot create {}", dir.display()))?;
            files = FilesStore::new(dir);
            (&database, &files)
        }
    };
    let summary = copy_all(from, to)
        .await
        .with_context(|| format!("copying from {} to {}", from.describe(), to.describe()))?;
    for skipped in &summary.skipped {
        eprintln!("skipped {skipped}");
    }
    println!("{summary} ({} -> {})", from.describe(), to.describe());
    Ok(if summary.skipped.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
