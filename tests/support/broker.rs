//! A private RabbitMQ for tests: `rabbitmq-server` started on free loopback ports in a temporary
//! directory, which a test can stop and start again (its durable queues survive). A test that
//! needs a broker fails, never passes silently, when `rabbitmq-server` is not installed.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cfhost_core::notify::amqp::declare_exchange;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::Value;

use crate::free_port;

const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const STARTUP: Duration = Duration::from_secs(90);

/// A RabbitMQ node of this test's own.
pub struct Broker {
    dir: tempfile::TempDir,
    port: u16,
    dist_port: u16,
    epmd_port: u16,
    child: Option<Child>,
}

impl Broker {
    /// Starts a new broker and waits until it accepts AMQP connections.
    pub async fn start() -> Broker {
        assert!(
            Path::new(SERVER).exists(),
            "{SERVER} is missing: install the Debian package rabbitmq-server (.ci/run does)"
        );
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        std::fs::write(
            dir.path().join("rabbitmq.conf"),
            format!("listeners.tcp.default = 127.0.0.1:{port}\nloopback_users = none\n"),
        )
        .unwrap();
        std::fs::write(dir.path().join("enabled_plugins"), "[].\n").unwrap();
        let mut broker = Broker {
            dir,
            port,
            dist_port: free_port(),
            epmd_port: free_port(),
            child: None,
        };
        broker.resume().await;
        broker
    }

    /// The AMQP URL of the broker.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts the broker again after [`Broker::stop`], with the same data.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "the broker is running");
        let dir = self.dir.path();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new(SERVER)
            .env("HOME", dir)
            .env(
                "RABBITMQ_NODENAME",
                format!("cfhost-test-{}@localhost", self.port),
            )
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("ERL_EPMD_PORT", self.epmd_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            // Erlang schedulers spin while idle by default; on a small shared machine that
            // steals the CPU the tests and benchmarks measure.
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                "+sbwt none +sbwtdcpu none +sbwtdio none",
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("rabbitmq-server starts");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if Connection::connect(&self.url(), ConnectionProperties::default())
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                started.elapsed() < STARTUP,
                "rabbitmq-server did not accept connections within {STARTUP:?}; see {}",
                dir.join("server.log").display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the broker (SIGTERM to its process group, then waits).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(&child, "TERM");
            let _ = child.wait();
        }
    }
}

fn signal_group(child: &Child, signal: &str) {
    // `--` so that the negative id is read as a process group, not as an option.
    let _ = Command::new("kill")
        .args(["-s", signal, "--", &format!("-{}", child.id())])
        .status();
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal_group(&child, "KILL");
            let _ = child.wait();
        }
        // The node started an epmd of its own on its private port; epmd refuses to stop while
        // the dying node is still registered, so ask again for a while.
        for _ in 0..50 {
            let answer = Command::new("epmd")
                .args(["-port", &self.epmd_port.to_string(), "-kill"])
                .stderr(Stdio::null())
                .output();
            match answer {
                Ok(out) if String::from_utf8_lossy(&out.stdout).contains("Killing not allowed") => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                _ => break,
            }
        }
    }
}

/// A message as a consumer received it.
#[derive(Debug, Clone)]
pub struct Received {
    pub routing_key: String,
    pub content_type: Option<String>,
    pub delivery_mode: Option<u8>,
    pub payload: Value,
}

/// A consumer of a durable queue bound to `notifications.*.*`, reconnecting whenever the
/// broker goes away, acknowledging each message after storing it.
pub struct Consumer {
    received: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Consumer {
    /// Starts consuming; returns once the queue is bound.
    pub async fn start(url: String) -> Consumer {
        let received = Arc::new(Mutex::new(Vec::new()));
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let store = Arc::clone(&received);
        let task = tokio::spawn(async move {
            let mut bound = Some(bound_tx);
            loop {
                if let Err(e) = consume(&url, &store, &mut bound).await {
                    eprintln!("test consumer: {e}; reconnecting");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        bound_rx.await.expect("the consumer binds its queue");
        Consumer { received, task }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `count` messages arrived, or `timeout` passes; returns what arrived.
    pub async fn wait_for(&self, count: usize, timeout: Duration) -> Vec<Received> {
        let started = Instant::now();
        while self.received.lock().unwrap().len() < count && started.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.received()
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn consume(
    url: &str,
    store: &Arc<Mutex<Vec<Received>>>,
    bound: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), lapin::Error> {
    use futures::StreamExt;
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    declare_exchange(&channel).await?;
    channel
        .queue_declare(
            "cfhost-test".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            "cfhost-test".into(),
            "notifications".into(),
            "notifications.*.*".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            "cfhost-test".into(),
            "cfhost-test-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    if let Some(tx) = bound.take() {
        let _ = tx.send(());
    }
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let payload = serde_json::from_slice(&delivery.data).unwrap_or(Value::Null);
        store.lock().unwrap().push(Received {
            routing_key: delivery.routing_key.to_string(),
            content_type: delivery
                .properties
                .content_type()
                .as_ref()
                .map(|c| c.to_string()),
            delivery_mode: *delivery.properties.delivery_mode(),
            payload,
        });
        delivery.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}
