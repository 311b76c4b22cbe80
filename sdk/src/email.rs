//! Outgoing email through the host's outbox (capability `email`, WIT 1.2).
//!
//! [`send`] only queues: the host delivers in the background (SMTP, or `.eml` files
//! when the operator configured none), retries with backoff, and shows every message
//! with its status to the tenant admin at `GET /api/v1/outbox`. The sender address is
//! the operator's.

use crate::__private::wit::plinth::plugin::email as wit;
use crate::Error;

/// A file attached to a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name shown to the recipient.
    pub filename: String,
    /// MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// The bytes. All attachments of a message total at most 10 MiB.
    pub content: Vec<u8>,
}

/// A message to queue. Build it with [`Message::new`] and the chained setters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// Recipients.
    pub to: Vec<String>,
    /// Carbon-copy recipients.
    pub cc: Vec<String>,
    /// Reply-to address.
    pub reply_to: Option<String>,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: Option<String>,
    /// HTML body.
    pub html: Option<String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
}

impl Message {
    /// A message to `to` with `subject`; add a body with [`Message::text`] or
    /// [`Message::html`].
    ///
    /// ```no_run
    /// use plinth_sdk::email::{self, Message};
    /// let id = email::send(&Message::new("ada@example.com", "Quarterly report").text("Attached.")
    ///     .attach("q3.csv", "text/csv", b"region,amount\nEMEA,10\n".to_vec()))?;
    /// # Ok::<(), plinth_sdk::Error>(())
    /// ```
    pub fn new(to: impl Into<String>, subject: impl Into<String>) -> Message {
        Message {
            to: vec![to.into()],
            subject: subject.into(),
            ..Message::default()
        }
    }

    /// Add a recipient.
    pub fn to(mut self, address: impl Into<String>) -> Message {
        self.to.push(address.into());
        self
    }

    /// Add a carbon-copy recipient.
    pub fn cc(mut self, address: impl Into<String>) -> Message {
        self.cc.push(address.into());
        self
    }

    /// Set the plain-text body.
    pub fn text(mut self, text: impl Into<String>) -> Message {
        self.text = Some(text.into());
        self
    }

    /// Set the HTML body.
    pub fn html(mut self, html: impl Into<String>) -> Message {
        self.html = Some(html.into());
        self
    }

    /// Attach a file.
    pub fn attach(mut self, filename: impl Into<String>, content_type: impl Into<String>, content: Vec<u8>) -> Message {
        self.attachments.push(Attachment {
            filename: filename.into(),
            content_type: content_type.into(),
            content,
        });
        self
    }
}

/// Queue `message`; returns its outbox id. Fails with `invalid` (the message names
/// the field), `limit` past the size or recipient caps, `denied` without the grant.
///
/// ```no_run
/// plinth_sdk::email::send(&plinth_sdk::email::Message::new("ops@example.com", "Done").text("Import finished."))?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn send(message: &Message) -> Result<String, Error> {
    let m = wit::Message {
        to: message.to.clone(),
        cc: message.cc.clone(),
        reply_to: message.reply_to.clone(),
        subject: message.subject.clone(),
        text: message.text.clone(),
        html: message.html.clone(),
        attachments: message
            .attachments
            .iter()
            .map(|a| wit::Attachment {
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                content: a.content.clone(),
            })
            .collect(),
    };
    Ok(wit::send(&m)?)
}
