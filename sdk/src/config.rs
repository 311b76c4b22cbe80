//! The tenant's settings for this plugin (capability `config`), read-only.

use serde::de::DeserializeOwned;

use crate::__private::wit::plinth::plugin::config as wit;
use crate::Error;

/// One setting decoded into `T`; `Ok(None)` when not set.
///
/// ```no_run
/// let fiscal_start: u32 = plinth_sdk::config::get("fiscal_year_start_month")?.unwrap_or(1);
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, Error> {
    match wit::get(key)? {
        None => Ok(None),
        Some(json) => serde_json::from_str(&json)
            .map(Some)
            .map_err(|e| Error::invalid(format!("setting `{key}` has an unexpected shape: {e}"))),
    }
}

/// Every setting as raw `(key, json)` pairs, sorted by key.
///
/// ```no_run
/// for (key, json) in plinth_sdk::config::all()? { plinth_sdk::info!("{key} = {json}"); }
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn all() -> Result<Vec<(String, String)>, Error> {
    Ok(wit::get_all()?)
}
