//! Host-side bindings of the `callflow-module` world, one set per WIT release the host runs:
//! the current one (`wit/callflow.wit`, 0.3) here, and 0.2 (`wit/0.2/callflow.wit`) in
//! [`v0_2`], which the host keeps running unchanged beside it.
//!
//! Imports that may wait on the outside world (call control, directory, notifications) are
//! async; every import may trap, which is how an ungranted capability is refused.

pub mod v0_2;

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
/// Its current version (the `package` line of `wit/callflow.wit`).
pub const WIT_VERSION: &str = "0.3.1";

/// A release of the contract the host runs modules of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum World {
    /// `cfhost:callflow@0.2.x`: the call is a record lowered into every export call.
    V0_2,
    /// `cfhost:callflow@0.3.x`: the call is a resource read on demand.
    V0_3,
}

impl World {
    /// Every release the host runs, oldest first.
    pub const ALL: [World; 2] = [World::V0_2, World::V0_3];

    /// The release a module built against `version` of the package speaks, if the host runs
    /// it (semver: for 0.x, the same minor version).
    pub fn of_version(version: &str) -> Option<World> {
        let mut parts = version.split('.');
        let major: u64 = parts.next()?.parse().ok()?;
        let minor: u64 = parts.next()?.parse().ok()?;
        match (major, minor) {
            (0, 2) => Some(World::V0_2),
            (0, 3) => Some(World::V0_3),
            _ => None,
        }
    }

    /// The newest version of this release the host speaks.
    pub fn version(self) -> &'static str {
        match self {
            World::V0_2 => v0_2::WIT_VERSION,
            World::V0_3 => WIT_VERSION,
        }
    }

    /// The world's name as `cfhost module check` prints it: `cfhost:callflow/callflow-module@0.3.1`.
    pub fn qualified_name(self) -> String {
        format!("{WIT_PACKAGE}/callflow-module@{}", self.version())
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.qualified_name())
    }
}

#[cfg(test)]
mod tests {
    use super::World;

    #[test]
    fn each_version_is_its_wit_files() {
        let current = include_str!("../../../../wit/callflow.wit");
        let old = include_str!("../../../../wit/0.2/callflow.wit");
        for (wit, version) in [
            (current, super::WIT_VERSION),
            (old, super::v0_2::WIT_VERSION),
        ] {
            let package = format!("package {}@{version};", super::WIT_PACKAGE);
            assert!(wit.contains(&package), "no `{package}` in its WIT file");
        }
    }

    #[test]
    fn versions_map_to_the_worlds_the_host_runs() {
        assert_eq!(World::of_version("0.2.0"), Some(World::V0_2));
        assert_eq!(World::of_version("0.2.9"), Some(World::V0_2));
        assert_eq!(World::of_version("0.3.0"), Some(World::V0_3));
        assert_eq!(World::of_version("0.3.7"), Some(World::V0_3));
        for other in ["0.1.0", "0.4.0", "1.0.0", "", "x.y", "0"] {
            assert_eq!(World::of_version(other), None, "{other}");
        }
        assert_eq!(
            World::V0_3.to_string(),
            "cfhost:callflow/callflow-module@0.3.1"
        );
    }
}
