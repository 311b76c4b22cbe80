//! `config`: the tenant's settings for this plugin, read-only (capability `config`).

use crate::bindings::WitError;
use crate::bindings::plinth::plugin::config::Host;
use plinth_core::manifest::registry;

use super::CapCtx;

impl Host for CapCtx {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, WitError>> {
        if let Err(e) = self.require(&registry::CONFIG) {
            return Ok(Err(e));
        }
        let db = self.services.db.clone();
        let result = db.settings(&self.caller.tenant_id, &self.plugin.id).get(&key).await;
        Ok(result.map_err(|e| self.store_error(e)))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, WitError>> {
        if let Err(e) = self.require(&registry::CONFIG) {
            return Ok(Err(e));
        }
        let db = self.services.db.clone();
        let result = db.settings(&self.caller.tenant_id, &self.plugin.id).all().await;
        Ok(result.map_err(|e| self.store_error(e)))
    }
}
