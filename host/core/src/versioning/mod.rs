//! API versions: the dated versions the REST API speaks, which one a request uses,
//! their lifecycle, the version-change modules that translate between them, and the
//! request log (client tracking, usage analytics) that shows who still uses which.
//!
//! - [`registry`]: the versions (built-in defaults + operator overrides) and the
//!   process-wide [`Versions`] handle;
//! - [`lifecycle`]: preview → current → deprecated → retired, the rules for changing
//!   it, and the `Deprecation`/`Sunset` date formats;
//! - [`selection`]: `Accept-Version` > key pin > tenant default > fallback;
//! - [`change`] and `changes/`: one module per breaking change;
//! - [`tracking`]: the batched request-log writer; [`usage`]: analytics over it.
//!
//! # Speaking older versions
//!
//! Handlers read and write only the **newest** shape. A handler that serves records
//! calls three functions with the request's version (`Ctx::api_version`):
//!
//! ```
//! use plinth_core::versioning::{fields_in, field_name_in, record_out};
//! use serde_json::json;
//!
//! // Request: a 2026-11-01 client creates an opportunity with a flat amount.
//! let mut fields = json!({"name": "Big deal", "amount": 125000.0, "currency": "EUR"});
//! fields_in("2026-11-01", "opportunity", &mut fields).unwrap();
//! assert_eq!(fields, json!({"name": "Big deal", "amount": {"value": 125000.0, "currency": "EUR"}}));
//!
//! // List filters and sorts: the old names map to the newest paths.
//! assert_eq!(field_name_in("2026-11-01", "opportunity", "currency"), "amount.currency");
//!
//! // Response: the stored (newest) record is shown in the caller's version.
//! let mut record = json!({"id": "01J", "object": "opportunity", "fields": fields});
//! record_out("2026-11-01", &mut record);
//! assert_eq!(record["fields"], json!({"name": "Big deal", "amount": 125000.0, "currency": "EUR"}));
//! ```

pub mod change;
mod changes;
pub mod lifecycle;
pub mod registry;
pub mod selection;
pub mod tracking;
pub mod usage;

pub use change::{InputError, VersionChange};
pub use lifecycle::{Lifecycle, LifecycleChange, LifecycleError, Status};
pub use registry::{Registry, VersionInfo, Versions};
pub use selection::{SelectError, Source, select};
pub use tracking::{RequestLog, RequestLogConfig};

/// The version new tenants default to, and the fallback of requests that name none.
pub const DEFAULT_VERSION: &str = "2026-11-01";

/// The API version selected for a request (a request extension).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiVersion(pub String);

/// Show one record (`{"id", "object", …, "fields": {…}}`, newest shape) as API
/// `version` shapes it. Records of objects no change concerns are left untouched; so
/// is everything when `version` is the newest. Call it on every record a response
/// carries (single, list `data`, bulk results).
///
/// ```
/// # use serde_json::json;
/// let mut r = json!({"object": "opportunity", "fields": {"amount": {"value": 5.0, "currency": "USD"}}});
/// plinth_core::versioning::record_out("2026-11-01", &mut r);
/// assert_eq!(r["fields"], json!({"amount": 5.0, "currency": "USD"}));
/// ```
pub fn record_out(version: &str, record: &mut serde_json::Value) {
    change::record_out(version, record);
}

/// Bring the `fields` object of a create or update body of `object`, written for API
/// `version`, to the newest shape — before validating it. Malformed old-shape input is
/// an [`InputError`] naming the fields (it converts into a 422 `ApiError` with `?`;
/// use [`InputError::prefixed`] for bulk bodies, e.g. `records[3].fields`).
///
/// ```
/// # use serde_json::json;
/// let mut fields = json!({"amount": 10});
/// let err = plinth_core::versioning::fields_in("2026-11-01", "opportunity", &mut fields).unwrap_err();
/// assert_eq!(err.fields[0].0, "currency");
/// ```
pub fn fields_in(version: &str, object: &str, fields: &mut serde_json::Value) -> Result<(), InputError> {
    change::fields_in(version, object, fields)
}

/// Map a field name of `object` used in a list filter, sort or field selection from
/// API `version`'s vocabulary to the newest (dotted) path; unchanged names come back
/// as they are.
///
/// ```
/// assert_eq!(plinth_core::versioning::field_name_in("2026-11-01", "opportunity", "amount"), "amount.value");
/// assert_eq!(plinth_core::versioning::field_name_in("2027-01-15", "opportunity", "amount"), "amount");
/// ```
pub fn field_name_in(version: &str, object: &str, field: &str) -> String {
    change::field_name_in(version, object, field)
}
