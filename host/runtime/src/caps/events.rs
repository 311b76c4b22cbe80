//! `events`: plugin-emitted events (capability `emit`), namespaced by plugin id and
//! logged in the tenant's event log with this plugin as their cause.

use super::CapCtx;
use crate::bindings::WitError;
use crate::bindings::plinth::plugin::events::Host;
use plinth_core::events::{self, MAX_PAYLOAD, emit};
use plinth_core::manifest::registry;

impl Host for CapCtx {
    async fn emit(&mut self, name: String, payload: String) -> wasmtime::Result<Result<(), WitError>> {
        let run = async {
            self.require(&registry::EMIT)?;
            if emit::RESERVED_NAMESPACES.contains(&self.plugin.id.as_str()) {
                self.stats.denied += 1;
                return Err(WitError::Denied(format!(
                    "`{}` is one of the host's event namespaces; a plugin with this id cannot emit events",
                    self.plugin.id
                )));
            }
            emit::check_plugin_event_name(&name).map_err(WitError::Invalid)?;
            if payload.len() > MAX_PAYLOAD {
                return Err(WitError::Limit(format!(
                    "the payload is {} bytes, more than the limit of {MAX_PAYLOAD}",
                    payload.len()
                )));
            }
            let payload: serde_json::Value = serde_json::from_str(&payload)
                .map_err(|e| WitError::Invalid(format!("the payload is not JSON: {e}")))?;
            let name = format!("{}.{name}", self.plugin.id);
            let db = self.services.db.clone();
            let actor = self.actor();
            let write = async {
                let mut tx = db.writer().begin().await?;
                events::append(&mut tx, &db, &self.caller.tenant_id, &actor, &name, &payload).await?;
                tx.commit().await?;
                Ok::<_, plinth_core::store::StoreError>(())
            };
            write.await.map_err(|e| self.store_error(e))
        };
        Ok(run.await)
    }
}
