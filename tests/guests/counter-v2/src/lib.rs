//! The `counter` test plugin at version 2.0.0 (shared source in ../counter-common.rs).

const VERSION: &str = "2.0.0";

include!("../../counter-common.rs");
