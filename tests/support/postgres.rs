//! A private PostgreSQL for tests: Debian's PostgreSQL 15 cluster made with `initdb` in a
//! temporary directory and started on a free loopback port (no Unix socket), which a test can
//! stop and start again with its data. PostgreSQL refuses to run as root: when the tests run
//! as root, the cluster runs as `nobody`. A test that needs a database fails, never passes
//! silently, when PostgreSQL is not installed.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::free_port;

/// Debian's PostgreSQL 15 programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";
const STARTUP: Duration = Duration::from_secs(60);
/// `nobody` on Debian: who runs the cluster when the tests run as root.
const NOBODY: u32 = 65534;

/// A PostgreSQL cluster of this test's own.
pub struct Database {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    /// Whether it offers TLS ([`Database::start_with_tls`]).
    tls: bool,
}

impl Database {
    /// Makes a new cluster and starts it; returns once it accepts connections.
    pub async fn start() -> Database {
        Database::make(false).await
    }

    /// [`Database::start`], offering TLS with a certificate for 127.0.0.1 signed by a CA of
    /// its own, whose certificate (PEM) is at the path returned.
    pub async fn start_with_tls() -> (Database, PathBuf) {
        let database = Database::make(true).await;
        let ca = database.dir.path().join("ca.pem");
        (database, ca)
    }

    async fn make(tls: bool) -> Database {
        let initdb = Path::new(BIN).join("initdb");
        assert!(
            initdb.exists(),
            "{} is missing: install the Debian package postgresql (tests/run does)",
            initdb.display()
        );
        let dir = tempfile::tempdir().expect("temp dir");
        if is_root() {
            std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY))
                .expect("the cluster's directory given to nobody");
        }
        let database = Database {
            port: free_port(),
            dir,
            child: None,
            tls,
        };
        let out = database
            .command(&initdb)
            .args(["--auth=trust", "--username=cfhost", "--encoding=UTF8"])
            .args(["--locale=C", "--no-sync", "-D"])
            .arg(database.data())
            .stdin(Stdio::null())
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if tls {
            database.make_certificates();
        }
        let mut database = database;
        database.resume().await;
        database
    }

    /// A CA (`ca.pem`) and the server's certificate for 127.0.0.1 signed by it (`server.pem`,
    /// `server.key`, readable by the cluster's user only, as PostgreSQL requires).
    fn make_certificates(&self) {
        let dir = self.dir.path();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("openssl runs: install the Debian package openssl (tests/run does)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=cfhost test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        let key = dir.join("server.key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        if is_root() {
            for file in ["server.key", "server.pem"] {
                std::os::unix::fs::chown(dir.join(file), Some(NOBODY), Some(NOBODY)).unwrap();
            }
        }
    }

    /// The URL cfhost connects with.
    pub fn url(&self) -> String {
        format!("postgres://cfhost@127.0.0.1:{}/postgres", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// `program` as the cluster's user.
    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        if is_root() {
            command.uid(NOBODY).gid(NOBODY).env("HOME", self.dir.path());
        }
        command
    }

    /// Starts the cluster again after [`Database::stop`], with the same data.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "the database is running");
        let log = std::fs::File::create(self.log()).unwrap();
        if is_root() {
            std::os::unix::fs::chown(self.log(), Some(NOBODY), Some(NOBODY)).unwrap();
        }
        let child = self
            .command(&Path::new(BIN).join("postgres"))
            .arg("-D")
            .arg(self.data())
            .args(["-p", &self.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "unix_socket_directories="])
            .args(["-c", "fsync=off", "-c", "max_connections=200"])
            .args(self.tls_settings())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("postgres starts");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if self.connect().await.is_ok() {
                return;
            }
            assert!(
                started.elapsed() < STARTUP,
                "postgres did not accept connections within {STARTUP:?}: {}",
                std::fs::read_to_string(self.log()).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `-c` settings that turn TLS on, when the cluster offers it.
    fn tls_settings(&self) -> Vec<String> {
        if !self.tls {
            return Vec::new();
        }
        let file = |name: &str| self.dir.path().join(name).display().to_string();
        vec![
            "-c".into(),
            "ssl=on".into(),
            "-c".into(),
            format!("ssl_cert_file={}", file("server.pem")),
            "-c".into(),
            format!("ssl_key_file={}", file("server.key")),
        ]
    }

    /// A connection of the test's own (its task runs on the current runtime).
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) =
            tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Runs `sql` (statements separated by `;`) as the superuser.
    pub async fn execute(&self, sql: &str) {
        let client = self.connect().await.expect("the database is up");
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Ends every connection an application named `cfhost` has (as an operator's
    /// `pg_terminate_backend` would); returns how many it ended.
    pub async fn terminate_cfhost_connections(&self) -> usize {
        let client = self.connect().await.expect("the database is up");
        let rows = client
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'cfhost'",
                &[],
            )
            .await
            .expect("pg_terminate_backend");
        rows.len()
    }

    /// Stops the cluster (a fast shutdown: connections are ended, the data kept).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT: PostgreSQL's fast shutdown.
            let _ = Command::new("kill")
                .args(["-s", "INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGQUIT: immediate shutdown, the children too.
            let _ = Command::new("kill")
                .args(["-s", "QUIT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// Whether this process runs as root (its `/proc/self` belongs to its effective user).
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
