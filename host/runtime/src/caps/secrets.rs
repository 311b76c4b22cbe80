//! `secrets`: this plugin's secrets in the caller's tenant (capability `secrets`).
//! Values are decrypted only here, for the plugin that owns them; changes are
//! audited as the plugin's, without the value.

use crate::bindings::WitError;
use crate::bindings::plinth::plugin::secrets::Host;
use plinth_core::manifest::registry;
use plinth_core::secrets::plugin::{self, SecretError};

use super::CapCtx;

impl CapCtx {
    fn secret_error(&self, e: SecretError) -> WitError {
        match e {
            SecretError::InvalidName => WitError::Invalid(e.to_string()),
            SecretError::Limit(m) => WitError::Limit(m),
            SecretError::Store(s) => self.store_error(s),
            SecretError::Vault(v) => {
                tracing::error!(
                    error = %v,
                    tenant = %self.caller.tenant_id,
                    plugin = %self.plugin.id,
                    request_id = %self.caller.request_id,
                    "secret operation failed"
                );
                WitError::Internal(format!(
                    "the host could not read the secret (request {})",
                    self.caller.request_id
                ))
            }
        }
    }
}

impl Host for CapCtx {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Option<String>, WitError>> {
        if let Err(e) = self.require(&registry::SECRETS) {
            return Ok(Err(e));
        }
        let s = &self.services;
        let result = plugin::get(&s.db, &s.vault, &self.caller.tenant_id, &self.plugin.id, &name).await;
        Ok(result.map_err(|e| self.secret_error(e)))
    }

    async fn set(&mut self, name: String, value: String) -> wasmtime::Result<Result<(), WitError>> {
        if let Err(e) = self.require(&registry::SECRETS) {
            return Ok(Err(e));
        }
        let s = &self.services;
        let actor = self.actor();
        let result = plugin::set(
            &s.db,
            &s.vault,
            &self.caller.tenant_id,
            &self.plugin.id,
            &name,
            &value,
            &actor,
        )
        .await;
        Ok(result.map_err(|e| self.secret_error(e)))
    }

    async fn delete(&mut self, name: String) -> wasmtime::Result<Result<(), WitError>> {
        if let Err(e) = self.require(&registry::SECRETS) {
            return Ok(Err(e));
        }
        let actor = self.actor();
        let result = plugin::delete(
            &self.services.db,
            &self.caller.tenant_id,
            &self.plugin.id,
            &name,
            &actor,
        )
        .await;
        Ok(result.map(|_| ()).map_err(|e| self.secret_error(e)))
    }
}
