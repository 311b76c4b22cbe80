//! The `counter` test plugin at version 1.0.0 (shared source in ../counter-common.rs).

const VERSION: &str = "1.0.0";

include!("../../counter-common.rs");
