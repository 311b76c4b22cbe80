//! `audit`: plugin-level events in the tenant's ledger (capability `audit`), namespaced
//! by plugin id and attributed to this plugin, its version and the calling user.

use super::CapCtx;
use crate::bindings::WitError;
use crate::bindings::plinth::plugin::audit::Host;
use plinth_core::manifest::registry;
use plinth_core::store::audit::{self, NewEvent};

/// Largest before/after state accepted.
const MAX_STATE: usize = 256 * 1024;

fn name_ok(s: &str) -> bool {
    (1..=100).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn state(what: &str, s: Option<String>) -> Result<Option<serde_json::Value>, WitError> {
    let Some(s) = s else { return Ok(None) };
    if s.len() > MAX_STATE {
        return Err(WitError::Limit(format!("{what} is larger than {MAX_STATE} bytes")));
    }
    let v: serde_json::Value =
        serde_json::from_str(&s).map_err(|e| WitError::Invalid(format!("{what} is not JSON: {e}")))?;
    if !v.is_object() {
        return Err(WitError::Invalid(format!("{what} must be a JSON object")));
    }
    Ok(Some(v))
}

impl Host for CapCtx {
    async fn append(
        &mut self,
        action: String,
        entity_type: String,
        entity_id: Option<String>,
        before: Option<String>,
        after: Option<String>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let run = async {
            self.require(&registry::AUDIT)?;
            if !name_ok(&action) || !name_ok(&entity_type) {
                return Err(WitError::Invalid(
                    "action and entity-type are 1–100 characters of a-z 0-9 . _ -".into(),
                ));
            }
            if entity_id.as_ref().is_some_and(|id| id.is_empty() || id.len() > 200) {
                return Err(WitError::Invalid("entity-id is 1–200 characters".into()));
            }
            let (before, after) = (state("before", before)?, state("after", after)?);
            let plugin = &self.plugin.id;
            let action = format!("plugin.{plugin}.{action}");
            let entity_type = format!("plugin.{plugin}.{entity_type}");
            let db = self.services.db.clone();
            let actor = self.actor();
            let write = async {
                let mut tx = db.writer().begin().await?;
                let event = NewEvent {
                    action: &action,
                    entity_type: &entity_type,
                    entity_id: entity_id.as_deref(),
                    before: before.as_ref(),
                    after: after.as_ref(),
                };
                audit::append(&mut tx, db.dialect(), &self.caller.tenant_id, &actor, event).await?;
                tx.commit().await?;
                Ok::<_, plinth_core::store::StoreError>(())
            };
            write.await.map_err(|e| self.store_error(e))
        };
        Ok(run.await)
    }
}
