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

    /// The ids of the broker's processes (its process group: the start script, the Erlang
    /// VM, epmd), while it runs.
    pub fn processes(&self) -> Vec<u32> {
        let Some(child) = &self.child else {
            return Vec::new();
        };
        let out = Command::new("pgrep")
            .args(["-g", &child.id().to_string()])
            .output()
            .expect("pgrep runs");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|pid| pid.trim().parse().ok())
            .collect()
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

/// Where a [`Consumer`]'s queue is bound.
#[derive(Debug, Clone)]
pub struct Binding {
    /// A direct exchange declared (not durable) if missing; `None` is `notifications`.
    pub direct_exchange: Option<String>,
    pub queue: String,
    pub key: String,
}

impl Binding {
    /// The test queue on `notifications`, bound to `notifications.*.*`.
    pub fn notifications() -> Self {
        Binding {
            direct_exchange: None,
            queue: "cfhost-test".to_string(),
            key: "notifications.*.*".to_string(),
        }
    }

    /// A queue on KAZOO's `targeted` direct exchange, bound to `server_id` (where a KAZOO
    /// publisher waits for replies).
    pub fn targeted(server_id: &str) -> Self {
        Binding {
            direct_exchange: Some("targeted".to_string()),
            queue: format!("replies-{server_id}"),
            key: server_id.to_string(),
        }
    }
}

impl Consumer {
    /// Starts consuming the test queue on `notifications`; returns once it is bound.
    pub async fn start(url: String) -> Consumer {
        Consumer::start_bound(url, Binding::notifications()).await
    }

    /// Starts consuming a queue bound as `binding` says; returns once it is bound.
    pub async fn start_bound(url: String, binding: Binding) -> Consumer {
        let received = Arc::new(Mutex::new(Vec::new()));
        let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
        let store = Arc::clone(&received);
        let task = tokio::spawn(async move {
            let mut bound = Some(bound_tx);
            loop {
                if let Err(e) = consume(&url, &binding, &store, &mut bound).await {
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
    binding: &Binding,
    store: &Arc<Mutex<Vec<Received>>>,
    bound: &mut Option<tokio::sync::oneshot::Sender<()>>,
) -> Result<(), lapin::Error> {
    use futures::StreamExt;
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let exchange = match &binding.direct_exchange {
        None => {
            declare_exchange(&channel).await?;
            "notifications".to_string()
        }
        Some(name) => {
            channel
                .exchange_declare(
                    name.as_str().into(),
                    lapin::ExchangeKind::Direct,
                    lapin::options::ExchangeDeclareOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            name.clone()
        }
    };
    channel
        .queue_declare(
            binding.queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            binding.queue.as_str().into(),
            exchange.as_str().into(),
            binding.key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = channel
        .basic_consume(
            binding.queue.as_str().into(),
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

/// A connection publishing to `notifications` as the host's AMQP sink does (persistent,
/// confirmed), with the exchange and the mailers' durable queue declared.
pub struct Publisher {
    connection: Connection,
    channel: lapin::Channel,
}

impl Publisher {
    /// Connects and declares.
    pub async fn connect(url: &str) -> Result<Publisher, lapin::Error> {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        declare_exchange(&channel).await?;
        cfhost_core::notify::amqp::declare_mailer_queue(
            &channel,
            cfhost_core::notify::MAILER_QUEUE,
        )
        .await?;
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await?;
        Ok(Publisher {
            connection,
            channel,
        })
    }

    /// Publishes each `(routing key, payload)`, then waits for every confirm.
    pub async fn publish(&self, messages: &[(&str, Value)]) -> Result<(), lapin::Error> {
        let mut confirms = Vec::with_capacity(messages.len());
        for (key, payload) in messages {
            let properties = lapin::BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(2);
            let body = payload.to_string();
            confirms.push(
                self.channel
                    .basic_publish(
                        "notifications".into(),
                        (*key).into(),
                        lapin::options::BasicPublishOptions::default(),
                        body.as_bytes(),
                        properties,
                    )
                    .await?,
            );
        }
        for confirm in confirms {
            assert!(confirm.await?.is_ack(), "the broker refused a publish");
        }
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(self) -> Result<(), lapin::Error> {
        self.connection.close(200, "published".into()).await
    }
}

/// Publishes each `(routing key, payload)` over a connection of its own ([`Publisher`]).
pub async fn publish(url: &str, messages: &[(&str, Value)]) -> Result<(), lapin::Error> {
    let publisher = Publisher::connect(url).await?;
    publisher.publish(messages).await?;
    publisher.close().await
}
