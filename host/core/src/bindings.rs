//! Host-side bindings of the `callflow-module` world (`wit/callflow.wit`).
//!
//! Imports that may wait on the outside world (call control, directory, notifications) are
//! async; every import may trap, which is how an ungranted capability is refused.

wasmtime::component::bindgen!({
    path: "../../wit",
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

pub use self::cfhost::callflow::types::CallFlags;

/// The WIT package this host implements.
pub const WIT_PACKAGE: &str = "cfhost:callflow";
/// Its version (the `package` line of `wit/callflow.wit`).
pub const WIT_VERSION: &str = "0.2.1";

#[cfg(test)]
mod tests {
    #[test]
    fn the_version_is_the_wit_files() {
        let wit = include_str!("../../../wit/callflow.wit");
        let package = format!("package {}@{};", super::WIT_PACKAGE, super::WIT_VERSION);
        assert!(
            wit.contains(&package),
            "wit/callflow.wit has no `{package}`"
        );
    }
}
