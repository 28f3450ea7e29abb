//! Many nodes on one PostgreSQL, as processes: `cfhost store import` and `export`, and two
//! `cfhost serve` nodes sharing one private database ([`Database`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cfhost_tests::postgres::Database;
use cfhost_tests::repo_root;
use md5::Digest;
use serde_json::{Value, json};

use crate::serve::{ACME, OPERATOR, Server, request, start_logging};
use cfhost_tests::copy_dir;

/// A private database, started on a runtime of its own (the process tests are synchronous).
struct Db {
    database: Database,
    runtime: tokio::runtime::Runtime,
}

impl Db {
    fn start() -> Db {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let database = runtime.block_on(Database::start());
        Db { database, runtime }
    }

    fn url(&self) -> String {
        self.database.url()
    }

    fn stop(&mut self) {
        self.database.stop();
    }

    fn resume(&mut self) {
        self.runtime.block_on(self.database.resume());
    }

    /// Runs `sql` as another tool would.
    fn execute(&self, sql: &str) {
        self.runtime.block_on(self.database.execute(sql));
    }
}

/// `cfhost store <args>` against `url`.
pub(crate) fn store_command(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cfhost"))
        .arg("store")
        .args(args)
        .env("CFHOST_STORE__URL", url)
        .output()
        .expect("cfhost store runs")
}

/// The seed accounts, with a module and a device of acme-missed's own, as a data directory.
fn seed_data_dir(root: &Path) -> PathBuf {
    let data = root.join("seed");
    copy_dir(&repo_root().join("examples/data"), &data);
    let acme = data.join("accounts/acme-missed");
    std::fs::create_dir_all(acme.join("modules")).unwrap();
    std::fs::copy(
        Path::new(cfhost_core::registry::BUILT_MODULES_DIR).join("test_fixture.wasm"),
        acme.join("modules/router.wasm"),
    )
    .unwrap();
    let vmbox = acme.join("vmboxes/box1");
    std::fs::create_dir_all(&vmbox).unwrap();
    std::fs::write(
        vmbox.join("1700000000-0badcafe.wav"),
        b"RIFF\x24\0\0\0WAVEfmt ",
    )
    .unwrap();
    std::fs::write(
        vmbox.join("1700000000-0badcafe.json"),
        json!({"message_id": "1700000000-0badcafe", "box_id": "box1", "length_ms": 900,
            "media": "1700000000-0badcafe.wav"})
        .to_string(),
    )
    .unwrap();
    std::fs::create_dir_all(acme.join("devices")).unwrap();
    std::fs::write(
        acme.join("devices/phone1.json"),
        r#"{"sip": {"username": "1001", "password": "s3cret"}}"#,
    )
    .unwrap();
    std::fs::create_dir_all(acme.join("notifications")).unwrap();
    std::fs::write(
        acme.join("notifications/missed_call.json"),
        r#"{"subject": "Missed: {{caller_id.name_number}}", "enabled": true}"#,
    )
    .unwrap();
    std::fs::write(
        acme.join("notifications/missed_call.text"),
        "From {{caller_id.name_number}}\n",
    )
    .unwrap();
    data
}

/// What the store keeps of a data directory, by path: documents, template documents and
/// message metadata as JSON, modules, template bodies and recordings as bytes.
fn stored_tree(data: &Path) -> BTreeMap<String, Value> {
    let mut tree = BTreeMap::new();
    let accounts = data.join("accounts");
    for account in std::fs::read_dir(&accounts).unwrap().flatten() {
        let id = account.file_name().to_string_lossy().into_owned();
        let settings = account.path().join("account.json");
        if settings.exists() {
            let text = std::fs::read_to_string(&settings).unwrap();
            tree.insert(
                format!("{id}/account.json"),
                serde_json::from_str(&text).unwrap(),
            );
        }
        let folders = [
            "callflows",
            "users",
            "devices",
            "modules",
            "notifications",
            "vmboxes/box1",
        ];
        for folder in folders {
            let Ok(entries) = std::fs::read_dir(account.path().join(folder)) else {
                continue;
            };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let bytes = std::fs::read(entry.path()).unwrap();
                let value = if !name.ends_with(".json") {
                    json!(format!(
                        "{} bytes, md5 {:x?}",
                        bytes.len(),
                        md5::Md5::digest(&bytes)
                    ))
                } else {
                    serde_json::from_slice(&bytes).unwrap()
                };
                tree.insert(format!("{id}/{folder}/{name}"), value);
            }
        }
    }
    tree
}

#[test]
fn import_then_export_gives_back_the_same_tree_and_an_import_run_twice_ends_the_same() {
    let db = Db::start();
    let root = tempfile::tempdir().unwrap();
    let seed = seed_data_dir(root.path());
    let first = store_command(&db.url(), &["import", seed.to_str().unwrap()]);
    let summary = String::from_utf8_lossy(&first.stdout).into_owned();
    assert!(
        first.status.success(),
        "{summary}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        summary.starts_with(
            "2 accounts, 7 documents, 1 modules, 1 messages, 2 templates copied; 0 skipped"
        ),
        "{summary}"
    );
    let again = store_command(&db.url(), &["import", seed.to_str().unwrap()]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), summary);

    let exported = root.path().join("exported");
    let out = store_command(&db.url(), &["export", exported.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let original = stored_tree(&seed);
    assert_eq!(original.len(), 17, "{original:#?}");
    assert_eq!(stored_tree(&exported), original);

    // A document that is not JSON is skipped by name, the rest copied, and the exit says so.
    std::fs::write(
        seed.join("accounts/acme-notify/users/broken.json"),
        "{not json",
    )
    .unwrap();
    let out = store_command(&db.url(), &["import", seed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("accounts/acme-notify/users/broken.json: key must be a string"),
        "{stderr}"
    );
    // Without a database there is nothing to copy into: said, not guessed.
    let out = Command::new(env!("CARGO_BIN_EXE_cfhost"))
        .args(["store", "import", seed.to_str().unwrap()])
        .env_remove("CFHOST_STORE__URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("set [store] url"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `cfhost serve` node on the database at `url`.
fn node(url: &str) -> Server {
    start_logging("", |_| {}, None, &[("CFHOST_STORE__URL", url)])
}

/// A database holding the seed data directory, and two nodes on it.
fn two_nodes() -> (Db, Server, Server) {
    let db = Db::start();
    let root = tempfile::tempdir().unwrap();
    let seed = seed_data_dir(root.path());
    let import = store_command(&db.url(), &["import", seed.to_str().unwrap()]);
    assert!(import.status.success(), "{import:?}");
    let (node1, node2) = (node(&db.url()), node(&db.url()));
    (db, node1, node2)
}

/// Whether `server` routes `number` of acme-missed now (a call through its API).
fn routes(server: &Server, number: &str) -> bool {
    let calls = "/v1/accounts/acme-missed/calls";
    let (status, body) = request(
        server,
        "POST",
        calls,
        Some(OPERATOR),
        Some(&json!({"to": number})),
    );
    assert!(status == 200 || status == 404, "{status} {body}");
    status == 200
}

#[test]
fn a_callflow_put_on_one_node_is_used_by_the_next_call_on_another_within_a_second() {
    let (mut db, node1, node2) = two_nodes();
    assert!(!routes(&node2, "777"));

    let document = json!({"numbers": ["777"], "flow": {}});
    let path = "/v1/accounts/acme-missed/callflows/shared";
    let (status, body) = request(&node1, "PUT", path, Some(OPERATOR), Some(&document));
    assert_eq!(status, 200, "{body}");
    let written = Instant::now();
    while !routes(&node2, "777") {
        assert!(
            written.elapsed() < Duration::from_secs(1),
            "node 2 did not take the callflow within 1 s; its log:\n{}",
            node2.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // What node 1 wrote is what node 2 serves back.
    let (status, body) = request(&node2, "GET", path, Some(OPERATOR), None);
    assert_eq!((status, &body["numbers"]), (200, &json!(["777"])));
    // Nothing of it went to either node's data directory: the database holds it.
    assert!(
        !node1
            .data()
            .join("accounts/acme-missed/callflows/shared.json")
            .exists()
    );

    // The database away: writes answer 503 naming it and nothing is half-written; calls go
    // on from what each node loaded.
    db.stop();
    let (status, body) = request(
        &node1,
        "PUT",
        path,
        Some(OPERATOR),
        Some(&json!({"numbers": ["778"], "flow": {}})),
    );
    assert_eq!(status, 503, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("PostgreSQL 127.0.0.1:"), "{error}");
    assert!(routes(&node2, "777"));
    assert!(routes(&node1, "777"));
    db.resume();
    // Once it is back, both nodes catch up: a write goes through and reaches the other.
    let document = json!({"numbers": ["779"], "flow": {}});
    let again = Instant::now();
    loop {
        let (status, body) = request(&node1, "PUT", path, Some(OPERATOR), Some(&document));
        if status == 200 {
            break;
        }
        assert!(again.elapsed() < Duration::from_secs(10), "{status} {body}");
        std::thread::sleep(Duration::from_millis(100));
    }
    node2.wait_until(
        "node 2 takes the write made after the database returned",
        || routes(&node2, "779"),
    );
    assert!(!routes(&node2, "778"), "the refused write was not kept");
}

#[test]
fn a_message_in_the_database_is_listed_fetched_and_deleted_through_any_node_of_its_account_only() {
    let (_db, node1, node2) = two_nodes();
    let messages = "/v1/accounts/acme-missed/vmboxes/box1/messages";
    let message = format!("{messages}/1700000000-0badcafe");
    // The account's own token reads its box through either node.
    let (status, body) = request(&node2, "GET", messages, Some(ACME), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["messages"][0]["message_id"], "1700000000-0badcafe");
    assert_eq!(body["messages"][0]["length_ms"], 900);
    let (status, body) = request(&node1, "GET", &format!("{message}/raw"), Some(ACME), None);
    assert_eq!(status, 200);
    assert_eq!(body, json!("RIFF\u{24}\0\0\0WAVEfmt "));
    // Not another account's token, and no id that is not a plain name.
    let other_box = "/v1/accounts/acme-notify/vmboxes/box1/messages";
    assert_eq!(request(&node1, "GET", other_box, Some(ACME), None).0, 403);
    for hostile in ["..%2F..%2Fetc", "a%00b", &"x".repeat(200)] {
        let path = format!("/v1/accounts/acme-missed/vmboxes/{hostile}/messages");
        let (status, body) = request(&node1, "GET", &path, Some(ACME), None);
        assert_eq!(status, 400, "{hostile}: {body}");
        let path = format!("{messages}/{hostile}/raw");
        assert_eq!(
            request(&node1, "GET", &path, Some(ACME), None).0,
            400,
            "{hostile}"
        );
    }
    let (status, body) = request(
        &node1,
        "GET",
        &format!("{messages}/1-2/raw"),
        Some(ACME),
        None,
    );
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"], "box `box1` has no message `1-2`");
    // Deleted through node 1: gone through node 2.
    assert_eq!(request(&node1, "DELETE", &message, Some(ACME), None).0, 204);
    let (_, body) = request(&node2, "GET", messages, Some(ACME), None);
    assert_eq!(body["messages"], json!([]));
    assert_eq!(request(&node2, "DELETE", &message, Some(ACME), None).0, 404);
}

#[test]
fn templates_and_rejected_documents_are_shared_by_every_node_and_scoped_to_their_account() {
    let (db, node1, node2) = two_nodes();
    let template = "/v1/accounts/acme-missed/notifications/missed_call";
    let document = json!({"subject": "Missed: {{caller_id.name_number}}", "text": "From {{caller_id.name_number}}\n"});
    let (status, body) = request(&node1, "PUT", template, Some(ACME), Some(&document));
    assert_eq!(status, 200, "{body}");
    let (status, body) = request(&node2, "GET", template, Some(ACME), None);
    assert_eq!((status, &body["subject"]), (200, &document["subject"]));
    // What the database cannot keep is the client's fault, and the stored template stays.
    let hostile = json!({"subject": "x", "text": "a\u{0}b"});
    let (status, body) = request(&node1, "PUT", template, Some(ACME), Some(&hostile));
    assert_eq!(status, 400, "{body}");
    let (_, body) = request(&node2, "GET", template, Some(ACME), None);
    assert_eq!(body["subject"], document["subject"]);
    assert_eq!(
        request(
            &node2,
            "GET",
            "/v1/accounts/acme-notify/notifications/x",
            Some(ACME),
            None
        )
        .0,
        403
    );
    assert_eq!(request(&node2, "DELETE", template, Some(ACME), None).0, 204);
    let (_, body) = request(&node1, "GET", template, Some(ACME), None);
    assert_eq!(body["default"], true, "back to teletype's: {body}");

    // A callflow another tool breaks: listed by every node, its last good version serving.
    db.execute(
        "INSERT INTO cfhost_documents (account_id, kind, id, document) VALUES \
         ('acme-missed', 'callflows', 'tool', '{\"numbers\": [\"880\"], \"flow\": {}}')",
    );
    node2.wait_until("node 2 routes the tool's callflow", || {
        routes(&node2, "880")
    });
    db.execute("UPDATE cfhost_documents SET document = '{\"numbers\": 880}' WHERE id = 'tool'");
    let listed =
        |node: &Server, path: &str, token: &str| request(node, "GET", path, Some(token), None);
    for node in [&node1, &node2] {
        node.wait_until("the broken callflow is listed", || {
            listed(node, "/v1/documents/rejected", OPERATOR).1 != json!([])
        });
        let (status, body) = listed(node, "/v1/documents/rejected", OPERATOR);
        assert_eq!(status, 200);
        assert_eq!(body.as_array().unwrap().len(), 1, "{body}");
        assert_eq!(body[0]["account"], "acme-missed");
        assert_eq!(body[0]["file"], "accounts/acme-missed/callflows/tool.json");
        assert_eq!(body[0]["kept_previous"], true);
        assert!(
            body[0]["error"].as_str().unwrap().contains("numbers"),
            "{body}"
        );
        assert!(routes(node, "880"), "the last good version keeps serving");
    }
    let own = "/v1/accounts/acme-missed/documents/rejected";
    assert_eq!(listed(&node1, own, ACME).1.as_array().unwrap().len(), 1);
    assert_eq!(listed(&node1, "/v1/documents/rejected", ACME).0, 403);
    assert_eq!(
        listed(&node1, "/v1/accounts/acme-notify/documents/rejected", ACME).0,
        403
    );
    assert_eq!(
        listed(
            &node1,
            "/v1/accounts/acme-notify/documents/rejected",
            OPERATOR
        )
        .1,
        json!([])
    );
}
