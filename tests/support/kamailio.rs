//! A private SIP edge for tests: Debian's Kamailio 5.6 running the repository's
//! `deploy/kamailio/kamailio.cfg`, with a local file of the test's own (a loopback address and
//! free port, the test's PostgreSQL, its nodes and carriers), Kamailio's tables (`version`,
//! `location`) created in that database. It runs in the foreground, its log in its directory,
//! and is killed when dropped. A test that needs it fails, never passes silently, when Kamailio
//! is not installed.

use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::postgres::Database;
use crate::repo_root;

const KAMAILIO: &str = "/usr/sbin/kamailio";
/// Kamailio's own table definitions for PostgreSQL, from the Debian package.
const KAMAILIO_SQL: &str = "/usr/share/kamailio/postgres";
const STARTUP: Duration = Duration::from_secs(30);

/// A running edge.
pub struct Edge {
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Where it takes SIP (UDP).
    pub addr: SocketAddr,
}

/// A carrier the edge lets in: its address and its name.
pub struct Carrier<'a> {
    pub ip: &'a str,
    pub name: &'a str,
}

impl Edge {
    /// Starts an edge on `addr` (UDP) in front of `nodes`, letting `carriers` in, keeping
    /// registrations in `database`; returns once it answers OPTIONS.
    pub async fn start(
        database: &Database,
        addr: SocketAddr,
        nodes: &[SocketAddr],
        carriers: &[Carrier<'_>],
    ) -> Edge {
        Edge::start_defining(database, addr, nodes, carriers, &[]).await
    }

    /// [`Edge::start`], with `defines` (`WITHOUT_NODE_RETRY`) set in its configuration.
    pub async fn start_defining(
        database: &Database,
        addr: SocketAddr,
        nodes: &[SocketAddr],
        carriers: &[Carrier<'_>],
        defines: &[&str],
    ) -> Edge {
        assert!(
            Path::new(KAMAILIO).exists(),
            "{KAMAILIO} is missing: install the Debian packages kamailio and \
             kamailio-postgres-modules (tests/run does)"
        );
        create_tables(database).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let (ip, port) = (addr.ip(), addr.port());
        let deploy = repo_root().join("deploy/kamailio/kamailio.cfg");
        std::fs::copy(&deploy, dir.path().join("kamailio.cfg")).unwrap();
        let nodes: String = nodes
            .iter()
            .map(|node| format!("1 sip:{node} 0 0\n"))
            .collect();
        std::fs::write(dir.path().join("nodes.list"), nodes).unwrap();
        let carriers: String = carriers
            .iter()
            .map(|c| format!("1 {} 32 0 {}\n", c.ip, c.name))
            .collect();
        std::fs::write(dir.path().join("carriers.list"), carriers).unwrap();
        std::fs::write(
            dir.path().join("cfhost-edge.local.cfg"),
            format!(
                "#!substdef \"!EDGE_IP!{ip}!g\"\n#!substdef \"!EDGE_PORT!{port}!g\"\n\
                 #!define DBURL \"{}\"\n#!define NODES_LIST \"{}\"\n\
                 #!define CARRIERS_LIST \"{}\"\n#!define NODE_FR_MS 1000\n{}",
                database.url(),
                dir.path().join("nodes.list").display(),
                dir.path().join("carriers.list").display(),
                defines
                    .iter()
                    .map(|define| format!("#!define {define}\n"))
                    .collect::<String>(),
            ),
        )
        .unwrap();
        let mut edge = Edge {
            dir,
            child: None,
            addr,
        };
        edge.launch();
        edge
    }

    fn launch(&mut self) {
        let log = std::fs::File::create(self.log_file()).unwrap();
        let child = Command::new(KAMAILIO)
            .arg("-f")
            .arg(self.dir.path().join("kamailio.cfg"))
            .args(["-DD", "-E", "-m", "64", "-M", "8"])
            .arg("-Y")
            .arg(self.dir.path())
            .arg("-P")
            .arg(self.dir.path().join("kamailio.pid"))
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("kamailio starts");
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers_options() {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().unwrap()) {
                panic!("kamailio exited ({status}):\n{}", self.log());
            }
            assert!(
                started.elapsed() < STARTUP,
                "kamailio did not answer within {STARTUP:?}:\n{}",
                self.log()
            );
        }
    }

    /// Whether it answers an OPTIONS (within 200 ms).
    fn answers_options(&self) -> bool {
        let Ok(socket) = UdpSocket::bind("127.0.0.1:0") else {
            return false;
        };
        let local = socket.local_addr().unwrap();
        let options = format!(
            "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bKprobe{n}\r\n\
             Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=p\r\nTo: <sip:{addr}>\r\n\
             Call-ID: probe-{n}@{local}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            addr = self.addr,
            n = std::process::id(),
        );
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        if socket.send_to(options.as_bytes(), self.addr).is_err() {
            std::thread::sleep(Duration::from_millis(200));
            return false;
        }
        let mut answer = [0u8; 2048];
        matches!(socket.recv(&mut answer), Ok(n) if answer[..n].starts_with(b"SIP/2.0 200"))
    }

    /// The CPU time its processes (its process group) have used so far.
    pub fn cpu_time(&self) -> Duration {
        let Some(group) = self.child.as_ref().map(Child::id) else {
            return Duration::ZERO;
        };
        let ticks: u64 = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| std::fs::read_to_string(entry.path().join("stat")).ok())
            .filter_map(|stat| {
                // After the command's `)`: state, ppid, pgrp, ..., utime (14th), stime (15th).
                let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
                let pgrp: u32 = fields.get(2)?.parse().ok()?;
                let utime: u64 = fields.get(11)?.parse().ok()?;
                let stime: u64 = fields.get(12)?.parse().ok()?;
                (pgrp == group).then_some(utime + stime)
            })
            .sum();
        // Linux counts in USER_HZ, 100 a second.
        Duration::from_millis(ticks * 10)
    }

    fn log_file(&self) -> PathBuf {
        self.dir.path().join("kamailio.log")
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_file()).unwrap_or_default()
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Its children too: they share its process group. `--` first: procps' kill reads
            // `-KILL -1815` as signal KILL to `-1`, every process.
            let group = format!("-{}", child.id());
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &group])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Kamailio's `version` and `location` tables in `database`, once.
async fn create_tables(database: &Database) {
    let client = database.connect().await.expect("the database answers");
    let exists = client
        .query_one("SELECT to_regclass('location') IS NOT NULL", &[])
        .await
        .unwrap()
        .get::<_, bool>(0);
    if exists {
        return;
    }
    for file in ["standard-create.sql", "usrloc-create.sql"] {
        let path = Path::new(KAMAILIO_SQL).join(file);
        let sql = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (install kamailio)", path.display()));
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
