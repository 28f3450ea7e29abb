//! Voicemail on a node whose store is PostgreSQL: a message left through one node (SIPp with
//! real RTP) is read through another node's connection, and one recorded while the database is
//! stopped waits on the node's disk and is stored when it returns.

use std::sync::Arc;
use std::time::Duration;

use cfhost_store::{PgSettings, PgStore, Store};
use cfhost_tests::postgres::Database;

use super::{CALLER, calls_done, carrier, start_with, succeeds};

async fn connect(database: &Database) -> Arc<PgStore> {
    Arc::new(
        PgStore::connect(&PgSettings::new(&database.url()))
            .await
            .expect("the store connects"),
    )
}

/// The one message of acme's box1 as another node reads it through its own connection: its
/// metadata, and the length of its recording in seconds.
async fn read_by_another_node(database: &Database) -> (serde_json::Value, f64) {
    let node2 = connect(database).await;
    let mut messages = node2.list_messages("acme", "box1").await.unwrap();
    assert_eq!(messages.len(), 1, "{messages:?}");
    let message = messages.remove(0);
    let id = message["message_id"].as_str().unwrap();
    let audio = node2.message_audio("acme", "box1", id).await.unwrap();
    let reader = hound::WavReader::new(std::io::Cursor::new(audio.unwrap())).unwrap();
    assert_eq!(reader.spec().sample_rate, 8000);
    let secs = f64::from(reader.len()) / 8000.0;
    (message, secs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_left_through_one_node_is_fetched_through_another() {
    let database = Database::start().await;
    let node1: Arc<dyn Store> = connect(&database).await;
    let (host, sip) = start_with(|builder| builder.imported_into(node1)).await;
    let dir = tempfile::tempdir().unwrap();
    succeeds(carrier(&sip, "carrier_message", &[], dir.path())).await;
    calls_done(&sip, 1).await;
    assert_eq!(sip.metrics().calls("message_left"), 1);

    let (message, secs) = read_by_another_node(&database).await;
    assert_eq!(message["caller_id_number"], CALLER);
    // Debian's g711a.pcap is 236 packets of 30 ms: 7.08 s.
    assert!((6.5..=7.2).contains(&secs), "{secs} s recorded");
    assert!(
        !host.data_dir().join("accounts/acme/vmboxes").exists(),
        "nothing on node 1's disk"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_recorded_while_the_database_is_stopped_waits_on_the_node_and_is_stored_when_it_returns()
 {
    let mut database = Database::start().await;
    let node1: Arc<dyn Store> = connect(&database).await;
    let (host, sip) = start_with(|builder| builder.imported_into(node1)).await;
    database.stop();
    let dir = tempfile::tempdir().unwrap();
    succeeds(carrier(&sip, "carrier_message", &[], dir.path())).await;
    calls_done(&sip, 1).await;
    assert_eq!(
        sip.metrics().calls("message_left"),
        1,
        "the caller left a message all the same"
    );
    let spooled = host
        .data_dir()
        .join(cfhost_core::runtime::VOICEMAIL_SPOOL)
        .join("accounts/acme/vmboxes/box1");
    let files = std::fs::read_dir(&spooled).unwrap().count();
    assert_eq!(files, 2, "the recording and its metadata wait on the node");
    assert_eq!(host.runtime().voicemail().drain().await, 0, "still away");

    database.resume().await;
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let moved = host.runtime().voicemail().drain().await;
            if moved > 0 {
                return moved;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the spool drains once the database is back");
    assert_eq!(drained, 1);
    assert_eq!(std::fs::read_dir(&spooled).unwrap().count(), 0);
    let (_, secs) = read_by_another_node(&database).await;
    assert!((6.5..=7.2).contains(&secs), "{secs} s recorded");
}
