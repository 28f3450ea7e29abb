//! PostgreSQL as the store of many nodes, against a private PostgreSQL 15
//! ([`cfhost_tests::postgres::Database`]): what it keeps, what it refuses, the changes it
//! announces (whoever writes) and how nodes follow them.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cfhost_core::follow::follow;
use cfhost_store::{
    Change, Claim, Claims, DocumentKind, PgSettings, PgStore, Store, StoreError, TemplateParts,
};
use cfhost_tests::Builder;
use cfhost_tests::postgres::Database;
use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

async fn store_of(database: &Database) -> PgStore {
    PgStore::connect(&PgSettings::new(&database.url()))
        .await
        .expect("the store connects")
}

/// The next change announced within `within`.
async fn next_change(changes: &mut UnboundedReceiver<Change>, within: Duration) -> Change {
    tokio::time::timeout(within, changes.recv())
        .await
        .unwrap_or_else(|_| panic!("no change announced within {within:?}"))
        .expect("the listener runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn documents_and_modules_are_kept_and_every_change_is_announced_whoever_makes_it() {
    let database = Database::start().await;
    let store = store_of(&database).await;
    let mut changes = store.listen().await.unwrap();
    store
        .put_account("acme", Some(r#"{"realm": "acme.example"}"#))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut changes, Duration::from_secs(1)).await,
        Change::Account("acme".into())
    );
    let callflow = r#"{"numbers": ["100"], "flow": {"module": "user", "data": {"id": "u1"}}}"#;
    store
        .put_document("acme", DocumentKind::Callflow, "main", callflow)
        .await
        .unwrap();
    store
        .put_module("acme", "router", Arc::from(&b"\0asm\x0d\0\x01\0"[..]))
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut changes, Duration::from_secs(1)).await,
        Change::Account("acme".into())
    );
    let acme = store.read_account("acme").await.unwrap().unwrap();
    assert_eq!(
        acme.settings.as_ref().unwrap().text,
        r#"{"realm": "acme.example"}"#
    );
    assert_eq!(acme.callflows.len(), 1);
    let read: serde_json::Value = serde_json::from_str(&acme.callflows[0].text).unwrap();
    assert_eq!(
        read,
        serde_json::from_str::<serde_json::Value>(callflow).unwrap()
    );
    assert_eq!(
        acme.callflows[0].place.display().to_string(),
        "accounts/acme/callflows/main.json"
    );
    assert_eq!(&*acme.modules[0].bytes, b"\0asm\x0d\0\x01\0");
    assert_eq!(acme.modules[0].origin, "accounts/acme/modules/router.wasm");
    // Voicemail boxes are documents of their own kind.
    store
        .put_document(
            "acme",
            DocumentKind::VmBox,
            "sales",
            r#"{"name": "Sales", "mailbox": "3001"}"#,
        )
        .await
        .unwrap();
    let listed = store
        .list_documents("acme", DocumentKind::VmBox)
        .await
        .unwrap();
    let ids: Vec<&str> = listed.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["sales"]);
    assert!(listed[0].text.contains("3001"));
    let acme = store.read_account("acme").await.unwrap().unwrap();
    assert_eq!(acme.vmboxes.len(), 1);
    assert_eq!(
        acme.vmboxes[0].place.display().to_string(),
        "accounts/acme/vmboxes/sales.json"
    );
    assert!(
        store
            .delete_document("acme", DocumentKind::VmBox, "sales")
            .await
            .unwrap()
    );

    // An operator's own tooling writes straight into the database: announced all the same.
    while tokio::time::timeout(Duration::from_millis(100), changes.recv())
        .await
        .is_ok()
    {}
    database
        .execute(
            "INSERT INTO cfhost_documents (account_id, kind, id, document) \
             VALUES ('acme', 'users', 'u1', '{\"email\": \"u1@acme.example\"}')",
        )
        .await;
    assert_eq!(
        next_change(&mut changes, Duration::from_secs(1)).await,
        Change::Account("acme".into())
    );
    assert!(
        store
            .get_document("acme", DocumentKind::User, "u1")
            .await
            .unwrap()
            .unwrap()
            .contains("u1@acme.example")
    );
    database.execute("TRUNCATE cfhost_modules").await;
    assert_eq!(
        next_change(&mut changes, Duration::from_secs(1)).await,
        Change::Everything
    );
    assert!(
        store
            .delete_document("acme", DocumentKind::Callflow, "main")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_document("acme", DocumentKind::Callflow, "main")
            .await
            .unwrap()
    );
    assert_eq!(store.read_all().await.unwrap().len(), 1);
    assert!(store.read_account("other").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn what_the_database_cannot_keep_is_refused_and_rows_that_break_the_layout_are_reported() {
    let database = Database::start().await;
    let store = store_of(&database).await;
    store.put_account("acme", None).await.unwrap();
    let refused = store
        .put_document("nobody", DocumentKind::Callflow, "main", "{}")
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::NoAccount(account) if account == "nobody"),
        "{refused}"
    );
    let refused = store
        .put_module("nobody", "router", Arc::from(&b"\0asm"[..]))
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::NoAccount(_)), "{refused}");
    // JSONB cannot keep a NUL character: the client's fault, named, nothing written.
    let refused = store
        .put_document(
            "acme",
            DocumentKind::Callflow,
            "main",
            r#"{"name": "a\u0000b"}"#,
        )
        .await
        .unwrap_err();
    assert!(matches!(refused, StoreError::Refused(_)), "{refused}");
    assert!(
        store
            .get_document("acme", DocumentKind::Callflow, "main")
            .await
            .unwrap()
            .is_none()
    );
    // Rows another tool wrote that break the layout: reported by place, the rest read.
    database
        .execute(
            "INSERT INTO cfhost_accounts (id) VALUES ('../../etc'); \
             INSERT INTO cfhost_documents (account_id, kind, id, document) VALUES \
               ('acme', 'voicemails', 'v1', '{}'), \
               ('acme', 'callflows', '../escape', '{}'), \
               ('acme', 'users', 'u1', '{}'); \
             INSERT INTO cfhost_modules (account_id, name, wasm) VALUES ('acme', 'a b', '\\x00')",
        )
        .await;
    let all = store.read_all().await.unwrap();
    assert_eq!(
        all.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["acme"]
    );
    let acme = &all[0];
    assert_eq!(acme.users.len(), 1);
    assert!(acme.callflows.is_empty());
    let problems: Vec<String> = acme
        .problems
        .iter()
        .map(|p| p.place.display().to_string())
        .collect();
    assert_eq!(
        problems,
        [
            "accounts/acme/callflows/../escape",
            "accounts/acme/voicemails/v1"
        ]
    );
    assert_eq!(acme.module_problems.len(), 1);
    assert!(acme.modules.is_empty());
    // The listing the API serves leaves the row that would leave its folder out.
    let callflows = store
        .list_documents("acme", DocumentKind::Callflow)
        .await
        .unwrap();
    assert!(callflows.is_empty(), "{callflows:?}");
    // A message whose ids would leave a folder is not handed out (an export would write it).
    database
        .execute(
            "INSERT INTO cfhost_voicemail (account_id, box_id, message_id, metadata, audio) \
             VALUES ('acme', '../../../tmp', 'm1', '{}', '\\x00'), \
                    ('acme', 'box1', 'm2', '{}', '\\x00')",
        )
        .await;
    let messages = store.account_messages("acme").await.unwrap();
    assert_eq!(
        messages
            .iter()
            .map(|m| m.box_id.as_str())
            .collect::<Vec<_>>(),
        ["box1"]
    );
    let exported = tempfile::tempdir().unwrap();
    let files = cfhost_store::FilesStore::new(exported.path());
    let mut hostile = messages[0].clone();
    hostile.box_id = "../../../tmp".into();
    assert!(matches!(
        files.put_message(&hostile).await,
        Err(StoreError::Refused(_))
    ));

    // The URL's password is never in what the store says of itself.
    let with_password = PgSettings::new(&format!(
        "postgres://cfhost:s3cret-pw@127.0.0.1:{}/postgres",
        database.port()
    ));
    let store = PgStore::connect(&with_password).await.unwrap();
    assert!(
        !store.describe().contains("s3cret-pw"),
        "{}",
        store.describe()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_and_profiles_are_kept_for_the_mailer_and_a_claim_is_held_by_one_owner() {
    let database = Database::start().await;
    let store = store_of(&database).await;
    store
        .put_account("acme", Some(r#"{"name": "Acme"}"#))
        .await
        .unwrap();
    store
        .put_document(
            "acme",
            DocumentKind::User,
            "boss",
            r#"{"priv_level": "admin"}"#,
        )
        .await
        .unwrap();
    let profile = store.account_profile("acme").await.unwrap().unwrap();
    assert_eq!(profile.settings.unwrap().text, r#"{"name": "Acme"}"#);
    assert_eq!(profile.users.len(), 1);
    assert!(store.account_profile("nobody").await.unwrap().is_none());

    let parts = TemplateParts {
        document: Some(r#"{"subject": "Hi"}"#.to_string()),
        text: Some("Hello\n".to_string()),
        html: None,
    };
    assert!(
        store
            .get_template("acme", "welcome")
            .await
            .unwrap()
            .is_empty()
    );
    store.put_template("acme", "welcome", &parts).await.unwrap();
    assert_eq!(store.get_template("acme", "welcome").await.unwrap(), parts);
    let refused = store
        .put_template("nobody", "welcome", &parts)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, StoreError::NoAccount(a) if a == "nobody"),
        "{refused}"
    );
    // A NUL in a body or in the document: refused, and what was stored stays.
    for hostile in [
        TemplateParts {
            text: Some("a\0b".to_string()),
            ..parts.clone()
        },
        TemplateParts {
            document: Some(r#"{"subject": "a\u0000b"}"#.to_string()),
            ..parts.clone()
        },
    ] {
        let refused = store
            .put_template("acme", "welcome", &hostile)
            .await
            .unwrap_err();
        assert!(matches!(refused, StoreError::Refused(_)), "{refused}");
    }
    assert_eq!(store.get_template("acme", "welcome").await.unwrap(), parts);
    // A row whose id would leave a folder is not handed out (an export would write it).
    database
        .execute(
            "INSERT INTO cfhost_templates (account_id, id, text_body) \
             VALUES ('acme', '../../escape', 'x')",
        )
        .await;
    let listed = store.account_templates("acme").await.unwrap();
    assert_eq!(listed, [("welcome".to_string(), parts.clone())]);
    assert!(store.delete_template("acme", "welcome").await.unwrap());
    assert!(!store.delete_template("acme", "welcome").await.unwrap());

    // Claims: one owner at a time; released, the next claims it; sent, every copy is a
    // duplicate; an owner silent past the lease is taken over.
    let lease = Duration::from_secs(600);
    assert_eq!(store.claim("n1", "a/1", lease).await.unwrap(), Claim::Ours);
    assert_eq!(
        store.claim("n1", "b/1", lease).await.unwrap(),
        Claim::HeldElsewhere {
            owner: "a/1".to_string()
        }
    );
    store.settle("n1", "b/1", true).await.unwrap();
    assert!(
        matches!(
            store.claim("n1", "b/2", lease).await.unwrap(),
            Claim::HeldElsewhere { .. }
        ),
        "only the owner settles"
    );
    store.settle("n1", "a/1", false).await.unwrap();
    assert_eq!(store.claim("n1", "b/3", lease).await.unwrap(), Claim::Ours);
    store.settle("n1", "b/3", true).await.unwrap();
    assert_eq!(
        store.claim("n1", "c/1", Duration::ZERO).await.unwrap(),
        Claim::AlreadySent,
        "a sent notification is never taken over"
    );
    assert_eq!(store.claim("n2", "a/2", lease).await.unwrap(), Claim::Ours);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        store
            .claim("n2", "b/4", Duration::from_millis(10))
            .await
            .unwrap(),
        Claim::Ours,
        "taken over once the lease ran out"
    );
    store.settle("n2", "a/2", true).await.unwrap();
    assert!(
        matches!(
            store.claim("n2", "c/2", lease).await.unwrap(),
            Claim::HeldElsewhere { .. }
        ),
        "the owner that lost it settles nothing"
    );
    assert_eq!(store.forget_older_than(lease).await.unwrap(), 0);
    assert_eq!(store.forget_older_than(Duration::ZERO).await.unwrap(), 1);
    assert_eq!(store.claim("n1", "d/1", lease).await.unwrap(), Claim::Ours);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_cannot_be_reached_answers_unavailable_within_its_timeout() {
    let mut database = Database::start().await;
    let mut settings = PgSettings::new(&database.url());
    settings.timeout = Duration::from_secs(2);
    let store = PgStore::connect(&settings).await.unwrap();
    store.put_account("acme", None).await.unwrap();
    database.stop();
    let started = Instant::now();
    let error = store
        .put_document("acme", DocumentKind::Callflow, "main", "{}")
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    match &error {
        StoreError::Unavailable { store, .. } => {
            assert!(
                store.contains(&format!("127.0.0.1:{}", database.port())),
                "{store}"
            )
        }
        other => panic!("{other}"),
    }
    database.resume().await;
    store
        .put_document("acme", DocumentKind::Callflow, "main", "{}")
        .await
        .expect("the pool connects again");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_listener_whose_connection_is_ended_reconnects_and_asks_for_everything() {
    let database = Database::start().await;
    let store = store_of(&database).await;
    store.put_account("acme", None).await.unwrap();
    let mut changes = store.listen().await.unwrap();
    assert!(database.terminate_cfhost_connections().await >= 1);
    assert_eq!(
        next_change(&mut changes, Duration::from_secs(5)).await,
        Change::Everything
    );
    store
        .put_document("acme", DocumentKind::User, "u1", "{}")
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut changes, Duration::from_secs(1)).await,
        Change::Account("acme".into())
    );
}

/// Whether `node` has a callflow for `number` of acme now.
fn routes(node: &cfhost_tests::TestHost, number: &str) -> bool {
    node.runtime()
        .accounts()
        .get("acme")
        .is_some_and(|acme| acme.callflows.find(number).is_some())
}

/// How long until `node` routes `number` (at most `within`).
async fn time_until_routed(
    node: &cfhost_tests::TestHost,
    number: &str,
    within: Duration,
) -> Duration {
    let started = Instant::now();
    while !routes(node, number) {
        assert!(
            started.elapsed() < within,
            "the node did not route {number} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_callflow_written_through_one_node_is_used_by_the_next_call_of_another_within_a_second() {
    let database = Database::start().await;
    let first = store_of(&database).await;
    first.put_account("acme", None).await.unwrap();
    let node1 = Builder::new().store(Arc::new(first.clone())).start().await;
    let second = store_of(&database).await;
    let changes = second.listen().await.unwrap();
    let node2 = Builder::new().store(Arc::new(second)).start().await;
    let _following = follow(node2.shared_runtime(), changes);
    assert!(
        node2
            .call(json!({"account_id": "acme", "to": "100"}))
            .await
            .is_err()
    );

    let callflow = json!({"numbers": ["100"], "flow": {}}).to_string();
    first
        .put_document("acme", DocumentKind::Callflow, "main", &callflow)
        .await
        .unwrap();
    node1.runtime().reload_account("acme").await.unwrap();
    let took = time_until_routed(&node2, "100", Duration::from_secs(1)).await;
    node2
        .call(json!({"account_id": "acme", "to": "100"}))
        .await
        .expect("node 2's next call uses the new callflow");
    eprintln!("propagated in {took:?}");

    // Its connections ended (an operator's pg_terminate_backend): node 2 reconnects, reads
    // everything again, and what was written meanwhile reaches it.
    database.terminate_cfhost_connections().await;
    database
        .execute(
            "INSERT INTO cfhost_documents (account_id, kind, id, document) \
             VALUES ('acme', 'callflows', 'second', '{\"numbers\": [\"200\"], \"flow\": {}}')",
        )
        .await;
    time_until_routed(&node2, "200", Duration::from_secs(5)).await;
    first
        .put_document(
            "acme",
            DocumentKind::Callflow,
            "third",
            &json!({"numbers": ["300"], "flow": {}}).to_string(),
        )
        .await
        .expect("node 1's pool connects again");
    time_until_routed(&node2, "300", Duration::from_secs(1)).await;
}

/// The documents `node` lists as rejected once it lists `count` (within 2 s): each `(file,
/// kept_previous)`.
async fn rejected_once(node: &cfhost_tests::TestHost, count: usize) -> Vec<(String, bool)> {
    let started = Instant::now();
    loop {
        let rejected: Vec<(String, bool)> = node
            .runtime()
            .accounts()
            .rejected()
            .map(|r| {
                (
                    r.details["file"].as_str().unwrap().to_string(),
                    r.kept_previous,
                )
            })
            .collect();
        if rejected.len() == count || started.elapsed() > Duration::from_secs(2) {
            return rejected;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_document_another_tool_breaks_is_listed_and_its_last_good_version_keeps_serving() {
    let database = Database::start().await;
    let store = store_of(&database).await;
    store.put_account("acme", None).await.unwrap();
    let changes = store.listen().await.unwrap();
    let node = Builder::new().store(Arc::new(store)).start().await;
    let _following = follow(node.shared_runtime(), changes);
    database
        .execute(
            "INSERT INTO cfhost_documents (account_id, kind, id, document) VALUES \
             ('acme', 'callflows', 'main', '{\"numbers\": [\"100\"], \"flow\": {}}'), \
             ('acme', 'users', 'boss', '{\"email\": \"boss@acme.example\"}')",
        )
        .await;
    time_until_routed(&node, "100", Duration::from_secs(1)).await;
    assert!(rejected_once(&node, 0).await.is_empty());

    // Another tool writes versions that do not validate, and a new callflow that never did.
    database
        .execute(
            "UPDATE cfhost_documents SET document = '{\"numbers\": \"100\"}' WHERE id = 'main'; \
             UPDATE cfhost_documents SET document = '{\"email\": 5}' WHERE id = 'boss'; \
             INSERT INTO cfhost_documents (account_id, kind, id, document) VALUES \
             ('acme', 'callflows', 'broken', '{\"numbers\": [\"200\"], \"flow\": []}')",
        )
        .await;
    let mut rejected = rejected_once(&node, 3).await;
    rejected.sort();
    assert_eq!(
        rejected,
        [
            ("accounts/acme/callflows/broken.json".to_string(), false),
            ("accounts/acme/callflows/main.json".to_string(), true),
            ("accounts/acme/users/boss.json".to_string(), true),
        ]
    );
    assert!(routes(&node, "100"), "the last good version keeps serving");
    assert!(
        !routes(&node, "200"),
        "a callflow that never validated is left out"
    );
    let users = node.runtime().accounts();
    let directory: &dyn cfhost_core::directory::Directory = &*users;
    assert!(
        directory.lookup_users("acme", &["boss".to_string()])[0].is_some(),
        "the user too"
    );

    // Fixed: listed no more, and the new version serves.
    database
        .execute(
            "UPDATE cfhost_documents SET document = '{\"numbers\": [\"101\"], \"flow\": {}}' \
             WHERE id = 'main'; \
             DELETE FROM cfhost_documents WHERE id IN ('broken', 'boss')",
        )
        .await;
    time_until_routed(&node, "101", Duration::from_secs(1)).await;
    assert!(rejected_once(&node, 0).await.is_empty());
    assert!(!routes(&node, "100"));
}

/// How many of cfhost's connections to `database` are TLS, and how many in all.
async fn cfhost_connections(database: &Database) -> (i64, i64) {
    let client = database.connect().await.unwrap();
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a \
             JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'cfhost'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_are_tls_with_the_servers_certificate_checked_when_asked() {
    let (database, ca_file) = Database::start_with_tls().await;
    // A plain URL stays plain, though the server offers TLS.
    let plain = store_of(&database).await;
    plain.put_account("acme", None).await.unwrap();
    assert_eq!(cfhost_connections(&database).await, (0, 1));
    drop(plain);

    let settings = PgSettings {
        ca_file: Some(ca_file.clone()),
        ..PgSettings::new(&database.url())
    };
    let store = PgStore::connect(&settings).await.expect("TLS with the CA");
    let mut changes = store.listen().await.unwrap();
    store
        .put_document("acme", DocumentKind::Callflow, "main", "{}")
        .await
        .unwrap();
    assert_eq!(
        next_change(&mut changes, Duration::from_secs(1)).await,
        Change::Account("acme".into())
    );
    let (tls, all) = cfhost_connections(&database).await;
    assert_eq!(
        (tls, all),
        (all, 2),
        "the pool's and the listener's, both TLS"
    );

    // `sslmode=require` checks the certificate: one signed by an unknown CA is refused.
    let unknown = PgSettings::new(&format!("{}?sslmode=require", database.url()));
    let error = PgStore::connect(&unknown).await.err().expect("refused");
    assert!(
        matches!(&error, StoreError::Unavailable { reason, .. } if reason.contains("certificate")),
        "{error}"
    );
    // As is one issued for another name (the server's is for 127.0.0.1 only).
    let other_name = PgSettings {
        ca_file: Some(ca_file.clone()),
        ..PgSettings::new(&database.url().replace("127.0.0.1", "localhost"))
    };
    assert!(PgStore::connect(&other_name).await.is_err());
    // A CA file that holds no certificate is said, not ignored.
    let bogus = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(bogus.path(), "not a certificate").unwrap();
    let settings = PgSettings {
        ca_file: Some(bogus.path().to_path_buf()),
        ..PgSettings::new(&database.url())
    };
    let error = PgStore::connect(&settings).await.err().expect("refused");
    assert!(
        matches!(&error, StoreError::Refused(why) if why.contains("[store] ca_file")),
        "{error}"
    );
}
