//! Property-based fuzzing of callflow documents and of the executor walking arbitrary trees:
//! no input makes the host panic or hang. Bounded (a fixed number of cases per property, a
//! fixed seed per run is not needed: every case must pass), so CI runs it on every change.
//!
//! - arbitrary text and mutated documents go through the parser: errors only, never a panic;
//! - generated callflows (random modules, scripted outcomes, branches, children, skips, junk
//!   data and junk nodes) are parsed and validated, and those accepted are run on simulated
//!   calls: every call ends, within a bounded number of nodes;
//! - scenario calls with arbitrary values in every field (times past any clock among them) are
//!   refused when read or run to their end.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cfhost_core::callflow::{AccountCallflows, parse_callflow, validate_callflow};
use cfhost_core::scenario::ScenarioCall;
use cfhost_core::switch::SimulatedSwitch;
use cfhost_tests::{Builder, TestHost, fuzz_runner, seed_missed_call_alert, with_seed_users};
use proptest::prelude::*;
use serde_json::{Value, json};

const CHILD_KEYS: [&str; 5] = ["_", "a", "b", "NO_ANSWER", "sip:486"];

fn child_key() -> impl Strategy<Value = String> {
    prop::sample::select(CHILD_KEYS.to_vec()).prop_map(str::to_string)
}

/// `data` for a module: scripts for `test_fixture`, plausible data for the shipped modules,
/// and junk that breaks schemas.
fn data() -> impl Strategy<Value = Value> {
    let script = (
        prop::sample::select(vec!["continue", "stop", "branch", "error", "trap"]),
        prop::collection::vec(child_key(), 0..3),
        prop::sample::select(vec!["main", "other", "nowhere"]),
        any::<bool>(),
    )
        .prop_map(|(outcome, keys, branch, register)| {
            let register = if register {
                json!([{"template_id": "fuzz"}])
            } else {
                json!([])
            };
            json!({"outcome": outcome, "keys": keys, "branch": branch, "register": register})
        });
    prop_oneof![
        24 => script,
        2 => Just(json!({"id": "u1"})),
        2 => Just(json!({"recipients": [{"type": "user", "id": "u1"}]})),
        2 => Just(json!({"skip_module": "true"})),
        1 => any::<i64>().prop_map(Value::from),
        1 => "[a-z]{0,8}".prop_map(Value::from),
    ]
}

fn module() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "test_fixture",
        "test_fixture",
        "test_fixture",
        "user",
        "voicemail",
        "missed_call_alert",
        "no_such_module",
    ])
    .prop_map(str::to_string)
}

/// A node, `{}`, or (rarely) junk where a node should be.
fn node() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        30 => Just(json!({})),
        1 => any::<u32>().prop_map(Value::from),
        1 => Just(json!([])),
    ];
    leaf.prop_recursive(8, 48, 4, |inner| {
        (
            module(),
            data(),
            prop::collection::btree_map(child_key(), inner, 0..4),
        )
            .prop_map(|(module, data, children)| {
                json!({"module": module, "data": data, "children": children})
            })
    })
}

/// A chain of `depth` nodes, around the nesting limit.
fn chain() -> impl Strategy<Value = Value> {
    (40usize..60).prop_map(|depth| {
        let mut flow = json!({"module": "test_fixture", "data": {}});
        for _ in 0..depth {
            flow = json!({"module": "test_fixture", "data": {}, "children": {"_": flow}});
        }
        flow
    })
}

fn document(id: &str, flow: Value) -> String {
    json!({"id": id, "numbers": ["100"], "flow": flow}).to_string()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn arbitrary_text_never_panics_the_parser() {
    let file = Path::new("fuzz.json");
    fuzz_runner(2_000)
        .run(&any::<Vec<u8>>(), |bytes| {
            let _ = parse_callflow(file, "fuzz", &String::from_utf8_lossy(&bytes));
            Ok(())
        })
        .unwrap();
    // Valid documents cut or corrupted at a random place.
    fuzz_runner(1_000)
        .run(
            &(node(), any::<prop::sample::Index>(), any::<u8>()),
            |(flow, at, byte)| {
                let mut text = document("main", flow).into_bytes();
                let at = at.index(text.len());
                if byte % 2 == 0 {
                    text.truncate(at);
                } else {
                    text[at] = byte;
                }
                let _ = parse_callflow(file, "fuzz", &String::from_utf8_lossy(&text));
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn the_executor_ends_every_call_through_arbitrary_trees() {
    let rt = runtime();
    let host: TestHost = rt.block_on(with_seed_users(Builder::new(), "acme").start());
    let modules = host.runtime().modules();
    let (accepted, rejected, nodes) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let flows = prop_oneof![8 => node(), 1 => chain()];
    let behaviours = prop::sample::select(vec![
        json!({"bridge": "answer"}),
        json!({"bridge": "no_answer", "voicemail": "leave_message"}),
        json!({"bridge": "busy", "voicemail": "hangup"}),
    ]);
    fuzz_runner(3_000)
        .run(&(flows, node(), behaviours), |(main, other, behaviour)| {
            let parsed = [("main", main), ("other", other)].map(|(id, flow)| {
                parse_callflow(Path::new("fuzz.json"), id, &document(id, flow))
                    .and_then(|cf| validate_callflow(&cf, modules.view("acme")).map(|_| cf))
            });
            let [Ok(main), Ok(other)] = parsed else {
                rejected.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            };
            accepted.fetch_add(1, Ordering::Relaxed);
            let callflows = AccountCallflows::new(vec![main, other]);
            let call: ScenarioCall = serde_json::from_value(json!({
                "account_id": "acme", "to": "100", "caller_id_number": "5",
                "behaviour": behaviour}))
            .unwrap();
            let details = host.new_call(&call, 0);
            let switch = Arc::new(SimulatedSwitch::new(
                call.behaviour,
                std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            ));
            let main = callflows.by_id("main").unwrap();
            let report = rt
                .block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(60),
                        host.runtime()
                            .run_callflow(details, switch, &callflows, main),
                    )
                    .await
                })
                .expect("every call ends");
            // At most 51 flows (the first and 50 branches) of at most 48 nodes each.
            let run = report.nodes_run().len();
            prop_assert!(run <= 51 * 48);
            nodes.fetch_add(run, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    let (accepted, rejected, nodes) = (
        accepted.into_inner(),
        rejected.into_inner(),
        nodes.into_inner(),
    );
    eprintln!("{accepted} generated callflows ran {nodes} nodes; {rejected} were rejected at load");
    assert!(
        accepted >= 1_000,
        "the generator must produce runnable callflows"
    );
    assert!(rejected >= 100, "and callflows that must be rejected");
    assert!(nodes >= 2 * accepted, "the calls ran their nodes");
}

/// The fields of a scenario call, and one that is not.
const SCENARIO_FIELDS: [&str; 17] = [
    "name",
    "account_id",
    "to",
    "caller_id_name",
    "caller_id_number",
    "callee_id_name",
    "callee_id_number",
    "authorizing_type",
    "authorizing_id",
    "call_id",
    "from_user",
    "from_realm",
    "to_user",
    "to_realm",
    "start_time",
    "behaviour",
    "junk",
];

fn scenario_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        Just(json!(u64::MAX)),
        Just(json!(cfhost_core::scenario::LATEST_START_TIME)),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        Just(json!("+15554441111")),
        Just(json!({"bridge": "busy", "voicemail": "leave_message"})),
        Just(json!({"bridge": "sideways"})),
        Just(json!([])),
    ]
}

#[test]
fn arbitrary_scenario_calls_are_refused_or_run_to_their_end() {
    let rt = runtime();
    let host: TestHost = rt.block_on(
        with_seed_users(Builder::new(), "acme")
            .callflow("acme", "seed", seed_missed_call_alert())
            .start(),
    );
    let fields = prop::collection::vec(
        (
            prop::sample::select(SCENARIO_FIELDS.to_vec()),
            scenario_value(),
        ),
        0..6,
    );
    let (accepted, refused) = (AtomicUsize::new(0), AtomicUsize::new(0));
    fuzz_runner(1_500)
        .run(&fields, |fields| {
            let mut call = json!({"account_id": "acme", "to": "+15554441111"});
            for (field, value) in fields {
                call[field] = value;
            }
            let Ok(call) = serde_json::from_value::<ScenarioCall>(call) else {
                refused.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            };
            accepted.fetch_add(1, Ordering::Relaxed);
            let switch = Arc::new(SimulatedSwitch::new(
                call.behaviour,
                call.starts_at(std::time::SystemTime::now()),
            ));
            let run = host.runtime().run_call(host.new_call(&call, 0), switch);
            let ended =
                rt.block_on(async { tokio::time::timeout(Duration::from_secs(60), run).await });
            prop_assert!(ended.is_ok(), "the call ends");
            Ok(())
        })
        .unwrap();
    let (accepted, refused) = (accepted.into_inner(), refused.into_inner());
    eprintln!("{accepted} scenario calls ran; {refused} were refused");
    assert!(
        accepted >= 200 && refused >= 200,
        "{accepted} ran, {refused} refused"
    );
}
