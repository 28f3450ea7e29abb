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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_go_on_while_the_database_is_stopped_for_30_s_and_every_message_left_is_stored() {
    const CALLS: u64 = 12;
    let mut database = Database::start().await;
    let store = connect(&database).await;
    let changes = store.listen().await.unwrap();
    let node: Arc<dyn Store> = store;
    let (host, sip) = start_with(|builder| builder.imported_into(node)).await;
    // As `cfhost serve` runs with PostgreSQL: following its changes, draining the spool.
    let _following = cfhost_core::follow::follow(host.shared_runtime(), changes);
    let _draining = Arc::clone(host.runtime().voicemail()).keep_draining(Duration::from_secs(1));

    // A call every 3 s for 36 s, each leaving 7 s of audio after 3 s of ringing: a few at once.
    let dir = tempfile::tempdir().unwrap();
    let mut run = cfhost_tests::sipp::SippRun::new(
        cfhost_tests::sipp::scenario("carrier_message", &[], dir.path()),
        super::TRUNK_IP,
        cfhost_tests::sipp::free_udp_port(super::TRUNK_IP),
    );
    run.remote = Some(sip.local_addr());
    run.service = super::DIALED;
    run.keys = vec![("caller", CALLER.to_string())];
    run.calls = CALLS as u32;
    run.extra = ["-r", "1", "-rp", "3000", "-l", "10"]
        .map(String::from)
        .to_vec();
    let calls = cfhost_tests::sipp::Sipp::start(run);
    tokio::time::sleep(Duration::from_secs(2)).await;
    database.stop();
    let stopped = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let spooled_during_outage = sip.metrics().calls("message_left");
    database.resume().await;
    eprintln!(
        "the database was away {:?}; {spooled_during_outage} messages left meanwhile",
        stopped.elapsed()
    );
    succeeds(calls).await;
    calls_done(&sip, CALLS).await;
    assert_eq!(sip.metrics().calls("message_left"), CALLS, "no call failed");
    assert!(
        spooled_during_outage >= 5,
        "calls went on while it was away: {spooled_during_outage}"
    );

    // Every message reaches the database once it is back: none lost, none twice.
    let reader = connect(&database).await;
    let started = std::time::Instant::now();
    let messages = loop {
        let messages = reader.list_messages("acme", "box1").await.unwrap();
        if messages.len() as u64 >= CALLS || started.elapsed() > Duration::from_secs(10) {
            break messages;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(messages.len() as u64, CALLS);
    for message in &messages {
        let id = message["message_id"].as_str().unwrap();
        let audio = reader
            .message_audio("acme", "box1", id)
            .await
            .unwrap()
            .unwrap();
        let wav = hound::WavReader::new(std::io::Cursor::new(audio)).unwrap();
        let secs = f64::from(wav.len()) / 8000.0;
        assert!((6.5..=7.2).contains(&secs), "{id}: {secs} s recorded");
    }
    let spool = host.data_dir().join(cfhost_core::runtime::VOICEMAIL_SPOOL);
    let left: usize = walk(&spool);
    assert_eq!(left, 0, "the spool is empty");
}

/// The files under `dir`, at any depth.
fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|entry| {
                if entry.path().is_dir() {
                    walk(&entry.path())
                } else {
                    1
                }
            })
            .sum()
    })
}
