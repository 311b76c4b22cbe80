//! API versions: the dated versions the REST API speaks, which one a request uses,
//! and the version-change modules that translate between them.
//!
//! (Skeleton: the registry, selection middleware, lifecycle and transforms are built
//! on top of these names.)

/// The version new tenants default to.
pub const DEFAULT_VERSION: &str = "2026-11-01";

/// The API version selected for a request (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersion(pub String);
