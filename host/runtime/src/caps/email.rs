//! `email`: queue a message in the outbox (capability `email`). Delivery, retries and
//! the sender address belong to the outbox worker; this only validates and stores.

use crate::bindings::WitError;
use crate::bindings::plinth::plugin::email::{Host, Message};
use plinth_core::manifest::registry;
use plinth_core::outbox::email::{self, Draft, EmailError};
use plinth_core::store::outbox::Attachment;

use super::CapCtx;

impl Host for CapCtx {
    async fn send(&mut self, message: Message) -> wasmtime::Result<Result<String, WitError>> {
        if let Err(e) = self.require(&registry::EMAIL) {
            return Ok(Err(e));
        }
        let draft = Draft {
            to: message.to,
            cc: message.cc,
            reply_to: message.reply_to,
            subject: message.subject,
            text: message.text,
            html: message.html,
            attachments: message
                .attachments
                .into_iter()
                .map(|a| Attachment {
                    filename: a.filename,
                    content_type: a.content_type,
                    content: a.content,
                })
                .collect(),
        };
        let db = self.services.db.clone();
        let result = email::enqueue(&db, &self.caller.tenant_id, Some(&self.plugin.id), &draft).await;
        Ok(match result {
            Ok(id) => {
                tracing::info!(
                    tenant = %self.caller.tenant_id,
                    plugin = %self.plugin.id,
                    request_id = %self.caller.request_id,
                    outbox_id = %id,
                    "plugin queued an email"
                );
                Ok(id)
            }
            Err(EmailError::Invalid { field, message }) => Err(WitError::Invalid(format!("{field}: {message}"))),
            Err(EmailError::Limit(m)) => Err(WitError::Limit(m)),
            Err(EmailError::Store(e)) => Err(self.store_error(e)),
        })
    }
}
