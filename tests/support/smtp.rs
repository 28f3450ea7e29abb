//! A real SMTP server for tests: Debian's aiosmtpd, run by `/usr/bin/python3` on a free
//! loopback port with the handler `tests/smtp/capture.py`, which keeps each message's exact
//! bytes and answers 451 or 550 when told; optionally with STARTTLS or SMTPS (a self-signed
//! certificate from `openssl`) or requiring AUTH (`tests/smtp/auth.py`). It can be stopped and
//! started again on the same port (the mail it kept stays). A test that needs it fails, never passes silently, when
//! `python3-aiosmtpd` is not installed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::{free_port, repo_root};

const PYTHON: &str = "/usr/bin/python3";

/// One message the server accepted.
#[derive(Debug, Clone)]
pub struct Mail {
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// The subject, decoded by Python's MIME parser.
    pub subject: String,
    /// Each leaf part's type and decoded content, as Python's MIME parser reads them.
    pub parts: Vec<Part>,
    /// The message as it came, CRLF line ends and all.
    pub raw: String,
}

/// A part of a message.
#[derive(Debug, Clone, Deserialize)]
pub struct Part {
    #[serde(rename = "type")]
    pub content_type: String,
    pub content: String,
}

impl Mail {
    /// The decoded content of the first part of `content_type` (`text/plain`, `text/html`).
    pub fn part(&self, content_type: &str) -> Option<&str> {
        self.parts
            .iter()
            .find(|p| p.content_type == content_type)
            .map(|p| p.content.as_str())
    }

    /// The value of the header `name` (the first one, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.raw.split("\r\n\r\n").next()?;
        let mut lines = head.split("\r\n").peekable();
        while let Some(line) = lines.next() {
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            if key.eq_ignore_ascii_case(name) {
                let mut value = value.trim().to_string();
                while let Some(next) = lines.peek().filter(|l| l.starts_with([' ', '\t'])) {
                    value.push(' ');
                    value.push_str(next.trim());
                    lines.next();
                }
                return Some(value);
            }
        }
        None
    }
}

#[derive(Deserialize)]
struct Envelope {
    mail_from: String,
    rcpt_tos: Vec<String>,
    subject: String,
    parts: Vec<Part>,
}

/// How a server secures its connections, with a self-signed certificate for 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerTls {
    /// Plain SMTP.
    None,
    /// STARTTLS, required before MAIL (aiosmtpd's `--tlscert`).
    StartTls,
    /// TLS from the first byte, SMTPS (aiosmtpd's `--smtpscert`).
    Implicit,
}

/// How a server is run.
enum Launch {
    /// aiosmtpd's command line with a handler class of `capture.py`, secured as `tls` says.
    Cli {
        handler: &'static str,
        tls: ServerTls,
    },
    /// `tests/smtp/auth.py`: AUTH required, with this login and password.
    Auth { login: String, password: String },
}

/// An aiosmtpd of this test's own.
pub struct SmtpServer {
    dir: tempfile::TempDir,
    port: u16,
    launch: Launch,
    child: Option<Child>,
}

impl SmtpServer {
    /// Starts a server that keeps every message, and waits until it answers.
    pub fn start() -> SmtpServer {
        SmtpServer::start_with(Launch::Cli {
            handler: "capture.Capture",
            tls: ServerTls::None,
        })
    }

    /// Starts a server that keeps every message and requires AUTH (PLAIN or LOGIN, over
    /// plain text) with `login` and `password`.
    pub fn start_auth(login: &str, password: &str) -> SmtpServer {
        SmtpServer::start_with(Launch::Auth {
            login: login.to_string(),
            password: password.to_string(),
        })
    }

    /// Starts a server that keeps every message and secures connections as `tls` says, with
    /// a self-signed certificate made by `openssl` (clients must accept invalid ones).
    pub fn start_tls(tls: ServerTls) -> SmtpServer {
        SmtpServer::start_with(Launch::Cli {
            handler: "capture.Capture",
            tls,
        })
    }

    /// Starts a server that keeps only when each message came ([`arrivals`](Self::arrivals)),
    /// for benchmarks.
    pub fn start_timing() -> SmtpServer {
        SmtpServer::start_with(Launch::Cli {
            handler: "capture.Timing",
            tls: ServerTls::None,
        })
    }

    fn start_with(launch: Launch) -> SmtpServer {
        assert!(
            Command::new(PYTHON)
                .args(["-c", "import aiosmtpd"])
                .status()
                .is_ok_and(|s| s.success()),
            "{PYTHON} cannot import aiosmtpd: install the Debian package python3-aiosmtpd \
             (tests/run does)"
        );
        let mut server = SmtpServer {
            dir: tempfile::tempdir().expect("temp dir"),
            port: free_port(),
            launch,
            child: None,
        };
        if server.tls() != ServerTls::None {
            server.make_certificate();
        }
        server.resume();
        server
    }

    /// `smtp://127.0.0.1:<port>` (`smtps://` for [`ServerTls::Implicit`]).
    pub fn url(&self) -> String {
        let scheme = if self.tls() == ServerTls::Implicit {
            "smtps"
        } else {
            "smtp"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    fn tls(&self) -> ServerTls {
        match self.launch {
            Launch::Cli { tls, .. } => tls,
            Launch::Auth { .. } => ServerTls::None,
        }
    }

    /// A self-signed certificate for 127.0.0.1: `cert.pem` and `key.pem` in its directory.
    fn make_certificate(&self) {
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(self.dir.path().join("key.pem"))
            .arg("-out")
            .arg(self.dir.path().join("cert.pem"))
            .output()
            .expect("openssl runs: install the Debian package openssl (tests/run does)");
        assert!(
            out.status.success(),
            "openssl made no certificate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts it again after [`stop`](Self::stop), on the same port.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let mut command = Command::new(PYTHON);
        command.env("PYTHONPATH", repo_root().join("tests/smtp"));
        match &self.launch {
            Launch::Cli { handler, tls } => {
                command
                    .args(["-m", "aiosmtpd", "-n", "-l"])
                    .arg(format!("127.0.0.1:{}", self.port));
                let flags = match tls {
                    ServerTls::None => None,
                    ServerTls::StartTls => Some(("--tlscert", "--tlskey")),
                    ServerTls::Implicit => Some(("--smtpscert", "--smtpskey")),
                };
                if let Some((cert, key)) = flags {
                    command
                        .arg(cert)
                        .arg(self.dir.path().join("cert.pem"))
                        .arg(key)
                        .arg(self.dir.path().join("key.pem"));
                }
                command.args(["-c", handler]).arg(self.dir.path());
            }
            Launch::Auth { login, password } => {
                command
                    .arg(repo_root().join("tests/smtp/auth.py"))
                    .arg(self.port.to_string())
                    .arg(self.dir.path())
                    .args([login, password]);
            }
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("aiosmtpd starts");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "aiosmtpd never listened on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops it (connections are refused until [`resume`](Self::resume)).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The next messages get these replies, one each, in order (`""` accepts one).
    pub fn reply_next(&self, replies: &[&str]) {
        let text: String = replies.iter().map(|r| format!("{r}\n")).collect();
        std::fs::write(self.dir.path().join("replies"), text).unwrap();
    }

    fn mail_dir(&self) -> PathBuf {
        self.dir.path().join("mail")
    }

    /// Every message accepted so far, in order.
    pub fn received(&self) -> Vec<Mail> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.mail_dir())
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|e| e == "json"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names.iter().map(|meta| read_mail(meta)).collect()
    }

    /// Waits until `count` messages came (up to `timeout`), and returns them all.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Mail> {
        let started = Instant::now();
        loop {
            let received = self.received();
            if received.len() >= count || started.elapsed() > timeout {
                return received;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl SmtpServer {
    /// For a [`start_timing`](Self::start_timing) server: a reader of when each message came.
    pub fn arrivals(&self) -> Arrivals {
        Arrivals {
            file: self.dir.path().join("arrivals"),
            offset: 0,
        }
    }
}

/// Reads a timing server's arrivals as they are appended, each line once.
pub struct Arrivals {
    file: PathBuf,
    offset: u64,
}

impl Arrivals {
    /// The arrivals since the last call: when each message came (Unix seconds) and its
    /// `X-Call-ID`, in order.
    pub fn read_new(&mut self) -> Vec<(f64, String)> {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut file) = std::fs::File::open(&self.file) else {
            return Vec::new();
        };
        let mut text = String::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err()
            || file.read_to_string(&mut text).is_err()
        {
            return Vec::new();
        }
        // Only whole lines: the server may be in the middle of one.
        let whole = text.rfind('\n').map_or(0, |at| at + 1);
        self.offset += whole as u64;
        text[..whole]
            .lines()
            .filter_map(|line| {
                let (at, call) = line.split_once(' ')?;
                Some((at.parse().ok()?, call.to_string()))
            })
            .collect()
    }
}

fn read_mail(meta: &Path) -> Mail {
    let envelope: Envelope =
        serde_json::from_slice(&std::fs::read(meta).unwrap()).expect("the handler's JSON");
    let raw = std::fs::read(meta.with_extension("eml")).unwrap();
    Mail {
        mail_from: envelope.mail_from,
        rcpt_tos: envelope.rcpt_tos,
        subject: envelope.subject,
        parts: envelope.parts,
        raw: String::from_utf8_lossy(&raw).into_owned(),
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
