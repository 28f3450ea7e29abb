//! PostgreSQL as the store (issue 27), in one run against a private PostgreSQL 15:
//! - 10,000 accounts (each an `account.json`, 2 users, 1 device and 3 callflows) loaded by a
//!   full reload from a data directory and from the database, alternately, round by round: the
//!   store's read alone and the whole reload (read, validation, indexes), with their ratio;
//! - propagation: 1,000 callflow writes, one after another, each into one of the 10,000
//!   accounts through another connection, timed from the write's return until a node
//!   following the database routes the new number.
//!
//! `cargo bench -p cfhost-tests --bench store` prints each round and the medians; the target is
//! a reload from the database within 2× the reload from files.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cfhost_core::follow::follow;
use cfhost_store::{DocumentKind, FilesStore, PgSettings, PgStore, Store, copy_all};
use cfhost_tests::postgres::Database;
use cfhost_tests::{Builder, TestHost};
use serde_json::json;

const ACCOUNTS: usize = 10_000;
const ROUNDS: usize = 5;
const WRITES: usize = 1_000;

/// Writes the accounts into the data directory `root`.
fn write_accounts(root: &Path) {
    for n in 0..ACCOUNTS {
        let dir = root.join("accounts").join(format!("account-{n:05}"));
        for folder in ["users", "devices", "callflows"] {
            std::fs::create_dir_all(dir.join(folder)).unwrap();
        }
        let write = |file: &str, value: serde_json::Value| {
            std::fs::write(dir.join(file), value.to_string()).unwrap();
        };
        write(
            "account.json",
            json!({"name": format!("Account {n}"), "realm": format!("a{n}.sip.example.com"),
                   "timezone": "Europe/Paris"}),
        );
        for user in ["u1", "u2"] {
            write(
                &format!("users/{user}.json"),
                json!({"email": format!("{user}@a{n}.example.com"), "first_name": "Pat",
                       "priv_level": if user == "u1" { "admin" } else { "user" }}),
            );
        }
        write(
            "devices/d1.json",
            json!({"name": "desk", "owner_id": "u1",
                   "sip": {"username": format!("10{n:05}"), "password": "secret"}}),
        );
        for (id, number) in [("main", 1), ("sales", 2), ("support", 3)] {
            write(
                &format!("callflows/{id}.json"),
                json!({"numbers": [format!("+1555{number}{n:06}"), format!("{number}00")],
                       "flow": {"module": "user", "data": {"id": "u1", "timeout": 20},
                                "children": {"_": {"module": "voicemail",
                                                   "data": {"id": "box1"}}}}}),
            );
        }
    }
}

/// A full reload of `host`, and its store's read alone.
async fn reload(host: &TestHost) -> (Duration, Duration) {
    let started = Instant::now();
    let read = host.runtime().store().read_all().await.unwrap();
    let read_took = started.elapsed();
    assert_eq!(read.len(), ACCOUNTS);
    drop(read);
    let started = Instant::now();
    let report = host.runtime().reload_system_modules().await.unwrap();
    let took = started.elapsed();
    assert!(report.data.errors.is_empty(), "{:?}", report.data.errors);
    (read_took, took)
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[at]
}

#[tokio::main]
async fn main() {
    let database = Database::start().await;
    let data = tempfile::tempdir().unwrap();
    let started = Instant::now();
    write_accounts(data.path());
    println!(
        "{ACCOUNTS} accounts written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let files: Arc<dyn Store> = Arc::new(FilesStore::new(data.path()));
    let settings = PgSettings::new(&database.url());
    let pg = Arc::new(PgStore::connect(&settings).await.unwrap());
    let started = Instant::now();
    let summary = copy_all(&*files, &*pg).await.unwrap();
    println!(
        "cfhost store import: {summary} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let changes = pg.listen().await.unwrap();
    let from_files = Builder::new().store(Arc::clone(&files)).start().await;
    let from_pg = Builder::new().store(pg.clone()).start().await;

    println!("round | files: read, reload (ms) | PostgreSQL: read, reload (ms) | reload ratio");
    let (mut ratios, mut file_reloads, mut pg_reloads) = (Vec::new(), Vec::new(), Vec::new());
    let (mut file_reads, mut pg_reads) = (Vec::new(), Vec::new());
    // Round 0 warms both (the page cache, the database's buffers) and is not counted.
    for round in 0..=ROUNDS {
        let (file_read, file_reload) = reload(&from_files).await;
        let (pg_read, pg_reload) = reload(&from_pg).await;
        let ratio = pg_reload.as_secs_f64() / file_reload.as_secs_f64();
        println!(
            "{round} | {:.0}, {:.0} | {:.0}, {:.0} | {ratio:.2}{}",
            millis(file_read),
            millis(file_reload),
            millis(pg_read),
            millis(pg_reload),
            if round == 0 { " (warm-up)" } else { "" }
        );
        if round > 0 {
            ratios.push(ratio);
            file_reloads.push(millis(file_reload));
            pg_reloads.push(millis(pg_reload));
            file_reads.push(millis(file_read));
            pg_reads.push(millis(pg_read));
        }
    }
    println!(
        "medians: files read {:.0} ms, reload {:.0} ms; PostgreSQL read {:.0} ms, reload {:.0} ms; \
         reload ratio {:.2}",
        median(&mut file_reads),
        median(&mut file_reloads),
        median(&mut pg_reads),
        median(&mut pg_reloads),
        median(&mut ratios)
    );
    drop(from_files);

    // Propagation: a node following the database, written to through another connection.
    let _following = follow(from_pg.shared_runtime(), changes);
    let writer = PgStore::connect(&settings).await.unwrap();
    let mut latencies = Vec::with_capacity(WRITES);
    for n in 0..WRITES {
        let account = format!("account-{:05}", n * 7 % ACCOUNTS);
        let number = format!("+1999{n:07}");
        let callflow = json!({"numbers": [number], "flow": {}}).to_string();
        writer
            .put_document(&account, DocumentKind::Callflow, "written", &callflow)
            .await
            .unwrap();
        let written = Instant::now();
        loop {
            let routed = from_pg
                .runtime()
                .accounts()
                .get(&account)
                .is_some_and(|a| a.callflows.find(&number).is_some());
            if routed {
                break;
            }
            assert!(
                written.elapsed() < Duration::from_secs(10),
                "write {n} never reached the node"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        latencies.push(millis(written.elapsed()));
    }
    latencies.sort_by(f64::total_cmp);
    println!(
        "propagation over {WRITES} writes: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        latencies[WRITES - 1]
    );
}
