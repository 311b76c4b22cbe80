//! `notify`: notifications in users' inboxes (capability `notify`). The host fills the
//! tenant and the sending plugin; the plugin names the user, the key and the content.

use crate::bindings::WitError;
use crate::bindings::plinth::plugin::notify::{Host, Notification};
use plinth_core::manifest::registry;
use plinth_core::notify::{self, Send};

use super::CapCtx;

impl Host for CapCtx {
    async fn send(&mut self, n: Notification) -> wasmtime::Result<Result<bool, WitError>> {
        if let Err(e) = self.require(&registry::NOTIFY) {
            return Ok(Err(e));
        }
        let request = Send {
            user_id: n.user_id,
            key: n.key,
            category: n.category,
            title: n.title,
            body: n.body,
            link: n.link,
        };
        let db = self.services.db.clone();
        let sent = notify::send(&db, &self.caller.tenant_id, &self.plugin.id, &self.actor(), &request).await;
        Ok(sent.map(|(_, created)| created).map_err(|p| self.wit_error(p)))
    }
}
