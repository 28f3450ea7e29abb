//! SIPp (Debian's `sip-tester`) as a test's carrier or device: one process per scenario of
//! `tests/sip/`, on loopback, bounded in time, its exit code and error log checked. A test
//! that needs SIPp fails, never passes silently, when it is not installed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::repo_root;

const SIPP: &str = "/usr/bin/sipp";

/// A UDP port on `ip` that nothing listens on now (even, so SIPp's media port and the one
/// after it are both usable).
pub fn free_udp_port(ip: &str) -> u16 {
    loop {
        let socket = std::net::UdpSocket::bind((ip, 0)).expect("a loopback UDP port");
        let port = socket.local_addr().unwrap().port();
        if port.is_multiple_of(2) && port < 65000 {
            return port;
        }
    }
}

/// Where SIPp media ports are taken from: below the kernel's ephemeral ports (32768 and up),
/// which every other socket of the tests is given, and above cfhost's default RTP range.
const MEDIA_PORTS: std::ops::Range<u16> = 30000..32764;

/// A SIPp media port on `ip`: it and the three above it (RTCP, video RTP and RTCP) are free
/// now. Taken in turn from [`MEDIA_PORTS`], four apart, so that no socket the kernel hands out
/// and no other SIPp of this process lands on the video ports between the check and SIPp's
/// bind (two clean-clone CI runs failed on that with ports from the ephemeral range).
pub fn media_port(ip: &str) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slots = (MEDIA_PORTS.end - MEDIA_PORTS.start) / 4;
    loop {
        let slot = NEXT.fetch_add(1, Ordering::Relaxed) % slots;
        let port = MEDIA_PORTS.start + slot * 4;
        if (0..4).all(|n| std::net::UdpSocket::bind((ip, port + n)).is_ok()) {
            return port;
        }
    }
}

/// The path of scenario `name` (`tests/sip/<name>.xml`), with `replace`ments made when there
/// are any (written to a temporary file kept in `dir`).
pub fn scenario(name: &str, replace: &[(&str, &str)], dir: &std::path::Path) -> PathBuf {
    let path = repo_root().join("tests/sip").join(format!("{name}.xml"));
    if replace.is_empty() {
        return path;
    }
    let mut text = std::fs::read_to_string(&path).unwrap();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    let out = dir.join(format!("{name}-{}.xml", rand_suffix()));
    std::fs::write(&out, text).unwrap();
    out
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// One SIPp run.
pub struct Sipp {
    child: Child,
    name: String,
    dir: tempfile::TempDir,
}

/// What to run SIPp with.
pub struct SippRun<'a> {
    /// The scenario file.
    pub scenario: PathBuf,
    /// Where to send (cfhost's SIP address); `None` for a UAS waiting for calls.
    pub remote: Option<std::net::SocketAddr>,
    /// Local IP and port (and the media port, one of its own).
    pub ip: &'a str,
    pub port: u16,
    /// `-s`: the user part of the request URI (the dialed number, or the SIP user).
    pub service: &'a str,
    /// `-key name value` pairs.
    pub keys: Vec<(&'a str, String)>,
    /// `-au`, `-ap`.
    pub credentials: Option<(&'a str, &'a str)>,
    /// `-auth_uri`: the digest's `uri` without its `sip:`, which must be the Request-URI's
    /// (SIPp's default is the remote address).
    pub auth_uri: Option<String>,
    /// Calls to place or take.
    pub calls: u32,
    /// `-d`: the length of `<pause/>`, in ms.
    pub pause_ms: u64,
    /// Extra arguments (rates, limits).
    pub extra: Vec<String>,
}

impl SippRun<'_> {
    /// A run of `scenario` from `ip:port`, one call.
    pub fn new(scenario: PathBuf, ip: &str, port: u16) -> SippRun<'_> {
        SippRun {
            scenario,
            remote: None,
            ip,
            port,
            service: "cfhost",
            keys: Vec::new(),
            credentials: None,
            auth_uri: None,
            calls: 1,
            pause_ms: 1000,
            extra: Vec::new(),
        }
    }
}

impl Sipp {
    /// Starts SIPp as `run` says.
    pub fn start(run: SippRun<'_>) -> Sipp {
        assert!(
            std::path::Path::new(SIPP).exists(),
            "{SIPP} is missing: install Debian's sip-tester (tests/run does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let name = run
            .scenario
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let mut command = Command::new(SIPP);
        if let Some(remote) = run.remote {
            command.arg(remote.to_string());
        }
        command
            .arg("-sf")
            .arg(&run.scenario)
            .args(["-i", run.ip, "-p", &run.port.to_string()])
            .args(["-mi", run.ip, "-mp", &media_port(run.ip).to_string()])
            .args(["-s", run.service, "-m", &run.calls.to_string()])
            .args(["-d", &run.pause_ms.to_string()])
            .args(["-nostdin", "-timeout", "60s", "-timeout_error"])
            .args(["-trace_err", "-error_file"])
            .arg(dir.path().join("errors.log"))
            .current_dir(dir.path());
        for (key, value) in &run.keys {
            command.args(["-key", key, value]);
        }
        if let Some((user, password)) = run.credentials {
            command.args(["-au", user, "-ap", password]);
        }
        if let Some(uri) = &run.auth_uri {
            command.args(["-auth_uri", uri]);
        }
        command.args(&run.extra);
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sipp starts");
        Sipp { child, name, dir }
    }

    /// Waits (at most `within`) for SIPp to end; its exit code (0: every call went as the
    /// scenario says) and what it logged.
    pub fn wait(mut self, within: Duration) -> (i32, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut log = String::new();
                if let Some(mut stderr) = self.child.stderr.take() {
                    use std::io::Read;
                    let _ = stderr.read_to_string(&mut log);
                }
                if let Ok(errors) = std::fs::read_to_string(self.dir.path().join("errors.log")) {
                    log.push_str(&errors);
                }
                return (status.code().unwrap_or(-1), log);
            }
            if started.elapsed() > within {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("sipp {} did not end within {within:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for SIPp and fails the test unless every call went as the scenario says.
    pub fn expect_success(self, within: Duration) {
        let name = self.name.clone();
        let (code, log) = self.wait(within);
        assert_eq!(code, 0, "sipp {name} failed ({code}):\n{log}");
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
