//! `cfhost simulate` as a newcomer runs it: the README's first command on the examples.

use std::path::Path;
use std::process::{Command, Output};

use cfhost_tests::repo_root;
use serde_json::Value;

fn simulate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cfhost"))
        .arg("simulate")
        .args(args)
        .current_dir(repo_root())
        .output()
        .expect("cfhost runs")
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

#[test]
fn examples_send_one_missed_call_alert_and_one_custom_notification() {
    let out = simulate(&[
        "--data",
        "examples/data",
        "--scenario",
        "examples/scenarios.json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    let summary: Vec<(String, String, String)> = lines
        .iter()
        .map(|line| {
            (
                line["exchange"].as_str().unwrap().to_string(),
                line["routing_key"].as_str().unwrap().to_string(),
                line["payload"]["Call-ID"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "notifications".to_string(),
                "notifications.sip.missed_call".to_string(),
                "call-1".to_string()
            ),
            (
                "notifications".to_string(),
                "notifications.account.cf_notification".to_string(),
                "call-5".to_string()
            ),
        ]
    );
    // The trace on stderr shows each call, its nodes and its callbacks.
    assert!(
        stderr.contains("== call-2 \"inbound call, answered: no alert\""),
        "{stderr}"
    );
    assert!(
        stderr.contains("node voicemail at flow.children._.children._"),
        "{stderr}"
    );
    assert!(
        stderr.contains("termination callback of missed_call_alert"),
        "{stderr}"
    );
    assert!(stderr.contains("5 calls simulated, 2 notifications published, 0 problems"));
}

#[test]
fn notifications_can_go_to_a_file_and_unmatched_calls_are_per_call_errors() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.json");
    std::fs::write(
        &scenario,
        r#"[{"account_id": "acme-missed", "to": "*99"},
            {"account_id": "acme-missed", "to": "+15554441111"}]"#,
    )
    .unwrap();
    let notifications = dir.path().join("out.jsonl");
    let out = simulate(&[
        "--data",
        "examples/data",
        "--scenario",
        scenario.to_str().unwrap(),
        "--notifications",
        notifications.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("account `acme-missed` has no callflow for `*99`"),
        "{stderr}"
    );
    // The second call still ran: no authorizing type means inbound, so it alerts.
    let lines = json_lines(&std::fs::read_to_string(notifications).unwrap());
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["payload"]["Call-ID"], "call-2");
}

#[test]
fn a_bad_scenario_names_the_file_and_the_place() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.json");
    std::fs::write(
        &scenario,
        r#"[{"account_id": "a", "to": "1", "behavior": {}}]"#,
    )
    .unwrap();
    let out = simulate(&[
        "--data",
        "examples/data",
        "--scenario",
        scenario.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("scenario.json:1:"), "{stderr}");
    assert!(stderr.contains("unknown field `behavior`"), "{stderr}");
}

#[test]
fn a_start_time_past_any_clock_is_refused_with_its_place_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("scenario.json");
    std::fs::write(
        &scenario,
        r#"[{"account_id": "acme-missed", "to": "+15554441111"},
           {"account_id": "acme-missed", "to": "+15554441111", "start_time": 9223372036854775807}]"#,
    )
    .unwrap();
    let out = simulate(&[
        "--data",
        "examples/data",
        "--scenario",
        scenario.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("scenario.json:2:"), "{stderr}");
    assert!(
        stderr.contains("start_time 9223372036854775807 is after 9999-12-31T23:59:59Z"),
        "{stderr}"
    );
}

#[test]
fn dropped_in_modules_need_grants_and_a_corrupt_one_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let modules = dir.path().join("modules");
    std::fs::create_dir(&modules).unwrap();
    std::fs::copy(
        Path::new(cfhost_core::registry::BUILT_MODULES_DIR).join("test_fixture.wasm"),
        modules.join("test_fixture.wasm"),
    )
    .unwrap();
    std::fs::write(modules.join("corrupt.wasm"), b"\0asm not really").unwrap();
    let data = dir.path().join("data/accounts/acct/callflows");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::write(
        data.join("cf.json"),
        r#"{"numbers": ["1"], "flow": {"module": "test_fixture",
            "data": {"register": [{"template_id": "from-dropped-module"}]}}}"#,
    )
    .unwrap();
    let scenario = dir.path().join("scenario.json");
    std::fs::write(&scenario, r#"[{"account_id": "acct", "to": "1"}]"#).unwrap();
    let config = dir.path().join("cfhost.toml");
    let run = |grant: &str| {
        std::fs::write(
            &config,
            format!("[modules.test_fixture]\ncapabilities = [{grant}]\n"),
        )
        .unwrap();
        simulate(&[
            "--data",
            dir.path().join("data").to_str().unwrap(),
            "--scenario",
            scenario.to_str().unwrap(),
            "--modules",
            modules.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ])
    };

    // Deny by default: without `callbacks` granted, the module does not load.
    let out = run(r#""notify", "log", "call-control", "directory", "clock""#);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "test_fixture.wasm: module `test_fixture` asks for capability `callbacks`, which is \
             not granted to it"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("unknown module `test_fixture`"), "{stderr}");
    assert!(json_lines(&String::from_utf8_lossy(&out.stdout)).is_empty());

    let out = run(r#""notify", "log", "call-control", "directory", "callbacks", "clock""#);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("corrupt.wasm: not a WebAssembly component"),
        "{stderr}"
    );
    let lines = json_lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines.len(), 1, "{stderr}");
    assert_eq!(lines[0]["payload"]["Template-ID"], "from-dropped-module");
}

/// The fields `cfhost bench --json` promises (issue 5), each a number.
const BENCH_FIELDS: [&str; 13] = [
    "floor_wat_us",
    "floor_us",
    "call_us",
    "call_pooled_us",
    "calls_per_sec_1core",
    "calls_per_sec",
    "calls_per_sec_pooled",
    "p99_call_us_at_half_load",
    "rss_10k_mb",
    "cold_start_cached_ms",
    "cold_start_uncached_ms",
    "floor_ratio",
    "instances_per_call",
];

#[test]
fn a_quick_bench_reports_every_figure_as_json() {
    let cache = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_cfhost"))
        .args(["bench", "--quick", "--json"])
        .env("CFHOST_CACHE_DIR", cache.path())
        .output()
        .expect("cfhost runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    for field in BENCH_FIELDS {
        let value = report[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field}: {report}"));
        assert!(value > 0.0, "{field} = {value}");
    }
    let nodes = report["node_us"].as_object().unwrap();
    let modules: Vec<&str> = nodes.keys().map(String::as_str).collect();
    assert_eq!(
        modules,
        ["missed_call_alert", "notification", "user", "voicemail"]
    );
    assert!(nodes.values().all(|us| us.as_f64().unwrap() > 0.0));
    // The same modules as built for 0.2.1, side by side.
    let old = &report["wit_0_2"];
    for field in [
        "floor_us",
        "call_us",
        "call_pooled_us",
        "calls_per_sec_pooled",
    ] {
        let value = old[field]
            .as_f64()
            .unwrap_or_else(|| panic!("{field}: {old}"));
        assert!(value > 0.0, "wit_0_2.{field} = {value}");
    }
    let old_nodes: Vec<&str> = old["node_us"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(old_nodes, modules);
    let targets = report["targets"].as_array().unwrap();
    assert_eq!(targets.len(), modules.len() + 5, "{targets:?}");
}

fn module_check(file: &Path, json: bool) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cfhost"));
    command.args(["module", "check"]).arg(file);
    if json {
        command.arg("--json");
    }
    command.output().expect("cfhost runs")
}

#[test]
fn module_check_prints_a_good_modules_description() {
    let file = Path::new(cfhost_core::registry::BUILT_MODULES_DIR).join("time_of_day.wasm");
    let out = module_check(&file, true);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["name"], "time_of_day");
    assert_eq!(report["version"], "0.1.0");
    assert_eq!(report["wit_version"], cfhost_core::bindings::WIT_VERSION);
    assert_eq!(report["world"], "cfhost:callflow/callflow-module@0.3.1");
    assert_eq!(report["capabilities"], serde_json::json!(["clock", "log"]));
    assert_eq!(
        report["data_schema"]["required"],
        serde_json::json!(["hours"])
    );

    let out = module_check(&file, false);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("  name          time_of_day"), "{table}");
    let built_against = format!(
        "built against cfhost:callflow@{}",
        cfhost_core::bindings::WIT_VERSION
    );
    assert!(table.contains(&built_against), "{table}");
    assert!(
        table.contains("  world         cfhost:callflow/callflow-module@0.3.1"),
        "{table}"
    );
    assert!(
        table.contains(r#"[modules.time_of_day] capabilities = ["clock", "log"]"#),
        "{table}"
    );
}

#[test]
fn module_check_passes_the_python_and_javascript_modules() {
    for (name, capabilities, schema_id) in [
        ("blocklist", ["call-control", "log"], None),
        (
            "check_cid",
            ["call-control", "log"],
            Some("callflows.check_cid"),
        ),
    ] {
        let file = repo_root().join(format!("target/polyglot/{name}.wasm"));
        assert!(
            file.exists(),
            "{}: run modules/build-polyglot",
            file.display()
        );
        let out = module_check(&file, true);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["name"], name);
        assert_eq!(report["world"], "cfhost:callflow/callflow-module@0.3.1");
        assert_eq!(report["capabilities"], serde_json::json!(capabilities));
        if let Some(id) = schema_id {
            assert_eq!(report["data_schema"]["_id"], id, "KAZOO's schema, as it is");
        }
    }
}

#[test]
fn module_check_says_which_world_a_module_built_for_0_2_implements() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/wit-0.2.1/missed_call_alert.wasm");
    let out = module_check(&file, false);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        table.contains("  world         cfhost:callflow/callflow-module@0.2.1"),
        "{table}"
    );
    assert!(
        table.contains("built against cfhost:callflow@0.2.1"),
        "{table}"
    );
    let out = module_check(&file, true);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["world"], "cfhost:callflow/callflow-module@0.2.1");
}

#[test]
fn module_check_says_precisely_what_is_wrong() {
    let built = Path::new(cfhost_core::registry::BUILT_MODULES_DIR);
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm\x0d\0\x01\0garbage").unwrap();
    let cases = [
        (built.join("wrong_world.wasm"), "exports the wrong world"),
        (
            built.join("future_major.wasm"),
            "built against cfhost:callflow@1.0.0, which this host (speaking @0.3.1, and @0.2.1 \
             for older modules) cannot run",
        ),
        (garbage.clone(), "not a WebAssembly component"),
        (
            built.join("bad_name.wasm"),
            "the module describes itself as `../escape`: a module name is made of letters",
        ),
        (dir.path().join("missing.wasm"), "cannot read"),
    ];
    for (file, expected) in cases {
        let out = module_check(&file, false);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", file.display());
        assert!(stderr.contains(expected), "{}: {stderr}", file.display());
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_module_directory_that_is_not_there_is_an_error() {
    let out = simulate(&[
        "--data",
        "examples/data",
        "--scenario",
        "examples/scenarios.json",
        "--modules",
        "no/such/dir",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--modules no/such/dir: not a directory"),
        "{stderr}"
    );
}

#[test]
fn a_data_directory_entry_that_cannot_be_read_is_a_problem_naming_its_path() {
    // Root reads any file, so "cannot be read" is made with a file where a directory goes.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let account = data.join("accounts/acme-missed");
    std::fs::create_dir_all(account.join("callflows")).unwrap();
    std::fs::copy(
        repo_root()
            .join("examples/data/accounts/acme-missed/callflows/seed_missed_call_alert.json"),
        account.join("callflows/seed_missed_call_alert.json"),
    )
    .unwrap();
    std::fs::write(account.join("users"), "not a directory").unwrap();
    let out = simulate(&[
        "--data",
        data.to_str().unwrap(),
        "--scenario",
        "examples/scenarios.json",
        "--notifications",
        dir.path().join("out.jsonl").to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    let users = account.join("users");
    assert!(
        stderr.contains(&format!("{}", users.display())),
        "the error names {}: {stderr}",
        users.display()
    );
}
