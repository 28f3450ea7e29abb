//! Host-side bindings of the `callflow-module` world (`wit/callflow.wit`).
//!
//! Imports that may wait on the outside world (call control, directory, notifications) are
//! async; every import may trap, which is how an ungranted capability is refused.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "callflow-module",
    imports: {
        "cfhost:callflow/call-control": async | trappable,
        "cfhost:callflow/directory": async | trappable,
        "cfhost:callflow/notify": async | trappable,
        default: trappable,
    },
    exports: { default: async },
    additional_derives: [PartialEq, Eq],
});

pub use self::cfhost::callflow::types::{CallFlags, Capability};
