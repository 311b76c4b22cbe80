//! The version-change modules, one file per breaking change, named after the version
//! that introduced it. Adding a version with a breaking change means adding a file
//! here, listing it in [`ALL`] and adding the version to the registry — never an
//! `if version` in a handler.

use super::change::VersionChange;

mod v2027_01_15;

pub use v2027_01_15::MoneyAmount;

/// Every change, oldest first.
pub(super) static ALL: &[&dyn VersionChange] = &[&MoneyAmount];
