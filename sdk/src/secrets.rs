//! This plugin's secrets in the caller's tenant (capability `secrets`, WIT 1.2):
//! API keys, OAuth client secrets, refresh tokens. The tenant admin sets them with
//! `PUT /api/v1/installations/{plugin}/secrets/{name}`; the host keeps them
//! encrypted and never returns them over REST. Only this plugin can read them.

use crate::__private::wit::plinth::plugin::secrets as wit;
use crate::Error;

/// The secret's value, `None` when not set.
///
/// ```no_run
/// let token = plinth_sdk::secrets::get("api_token")?.ok_or_else(|| plinth_sdk::Error::invalid("set api_token first"))?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn get(name: &str) -> Result<Option<String>, Error> {
    Ok(wit::get(name)?)
}

/// Set or replace a secret (e.g. a rotated refresh token); at most 64 KiB.
///
/// ```no_run
/// plinth_sdk::secrets::set("refresh_token", "r-2")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn set(name: &str, value: &str) -> Result<(), Error> {
    Ok(wit::set(name, value)?)
}

/// Remove a secret; removing one that is not set is not an error.
///
/// ```no_run
/// plinth_sdk::secrets::delete("refresh_token")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn delete(name: &str) -> Result<(), Error> {
    Ok(wit::delete(name)?)
}
