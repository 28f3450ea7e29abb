//! Bindings of `cfhost:callflow@0.2.x` (`wit/0.2/callflow.wit`): the release before the call
//! became a resource. The host serves these imports by converting to the current release's
//! ([`crate::imports::v0_2`]), as wasmtime-wasi serves preview 1 over preview 2.

wasmtime::component::bindgen!({
    path: "../../wit/0.2",
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

/// The newest 0.2 version (the `package` line of `wit/0.2/callflow.wit`).
pub const WIT_VERSION: &str = "0.2.1";
