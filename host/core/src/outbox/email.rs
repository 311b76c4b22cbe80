//! Email messages: what a plugin (or the host) may queue, its validation, the outbox
//! payload it becomes, and the MIME message built from that payload at delivery.
//!
//! The payload is JSON: `{type, to, cc, reply_to, subject, text, html, attachments:
//! [{filename, content_type, size}]}`; attachment bytes live in
//! `outbox_attachments`. Audit-alert emails (queued by the policy evaluator) use the
//! same fields, so one delivery path sends both.

use std::str::FromStr;

use lettre::message::header::ContentType;
use lettre::message::{Attachment as MimeAttachment, Mailbox, MultiPart, SinglePart};
use serde::{Deserialize, Serialize};

use crate::store::outbox::{self, Attachment, NewOutbox};
use crate::store::{Db, StoreError, Tx};

/// Most recipients (`to` and `cc` together) of one message.
pub const MAX_RECIPIENTS: usize = 50;
/// Most attachments of one message.
pub const MAX_ATTACHMENTS: usize = 20;
/// Most attachment bytes of one message, all files together.
pub const MAX_ATTACHMENT_BYTES: usize = 10 * 1024 * 1024;
/// Largest text or HTML body.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Longest subject, in characters (RFC 5322's line limit).
pub const MAX_SUBJECT: usize = 998;

/// A message to queue.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Draft {
    /// Recipients.
    pub to: Vec<String>,
    /// Carbon-copy recipients.
    pub cc: Vec<String>,
    /// Reply-to address.
    pub reply_to: Option<String>,
    /// Subject.
    pub subject: String,
    /// Plain-text body.
    pub text: Option<String>,
    /// HTML body.
    pub html: Option<String>,
    /// Files.
    pub attachments: Vec<Attachment>,
}

/// Why a message was refused.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// A field is malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// Field path, e.g. `to[2]`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A count or size cap.
    #[error("{0}")]
    Limit(String),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> EmailError {
    EmailError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// A mailbox (`ada@example.com` or `Ada <ada@example.com>`), refusing anything that
/// could smuggle a header.
pub fn parse_mailbox(field: &str, text: &str) -> Result<Mailbox, EmailError> {
    if text.len() > 320 || text.chars().any(char::is_control) {
        return Err(invalid(field, "not a valid email address"));
    }
    Mailbox::from_str(text.trim()).map_err(|_| invalid(field, format!("`{text}` is not a valid email address")))
}

fn check_text(field: &str, text: &Option<String>) -> Result<(), EmailError> {
    match text {
        Some(t) if t.len() > MAX_BODY_BYTES => Err(EmailError::Limit(format!("{field} is larger than 1 MiB"))),
        _ => Ok(()),
    }
}

/// Check every rule; the first problem is reported.
pub fn validate(d: &Draft) -> Result<(), EmailError> {
    if d.to.is_empty() {
        return Err(invalid("to", "at least one recipient is required"));
    }
    if d.to.len() + d.cc.len() > MAX_RECIPIENTS {
        return Err(EmailError::Limit(format!(
            "at most {MAX_RECIPIENTS} recipients (to and cc together)"
        )));
    }
    for (list, name) in [(&d.to, "to"), (&d.cc, "cc")] {
        for (i, a) in list.iter().enumerate() {
            parse_mailbox(&format!("{name}[{i}]"), a)?;
        }
    }
    if let Some(r) = &d.reply_to {
        parse_mailbox("reply_to", r)?;
    }
    let subject_len = d.subject.chars().count();
    if subject_len == 0 || subject_len > MAX_SUBJECT {
        return Err(invalid("subject", format!("must be 1–{MAX_SUBJECT} characters")));
    }
    if d.subject.chars().any(char::is_control) {
        return Err(invalid("subject", "must not contain line breaks or control characters"));
    }
    if d.text.is_none() && d.html.is_none() {
        return Err(invalid("text", "give a text or an html body (or both)"));
    }
    check_text("text", &d.text)?;
    check_text("html", &d.html)?;
    if d.attachments.len() > MAX_ATTACHMENTS {
        return Err(EmailError::Limit(format!("at most {MAX_ATTACHMENTS} attachments")));
    }
    let total: usize = d.attachments.iter().map(|a| a.content.len()).sum();
    if total > MAX_ATTACHMENT_BYTES {
        return Err(EmailError::Limit(format!(
            "attachments total {total} bytes; at most {MAX_ATTACHMENT_BYTES} (10 MiB)"
        )));
    }
    for (i, a) in d.attachments.iter().enumerate() {
        let name_ok = (1..=255).contains(&a.filename.chars().count())
            && !a.filename.chars().any(|c| c.is_control() || c == '/' || c == '\\');
        if !name_ok {
            return Err(invalid(
                format!("attachments[{i}].filename"),
                "must be 1–255 characters without `/`, `\\` or control characters",
            ));
        }
        if a.content_type.len() > 200 || ContentType::parse(&a.content_type).is_err() {
            return Err(invalid(
                format!("attachments[{i}].content_type"),
                format!("`{}` is not a MIME type", a.content_type),
            ));
        }
    }
    Ok(())
}

/// Attachment metadata kept in the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachmentInfo {
    /// File name.
    pub filename: String,
    /// MIME type.
    pub content_type: String,
    /// Bytes.
    pub size: usize,
}

/// The email payload of an outbox row (also what audit alerts enqueue).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload {
    /// `plugin.email`, `audit.alert`…
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Recipients.
    #[serde(default)]
    pub to: Vec<String>,
    /// Carbon-copy recipients.
    #[serde(default)]
    pub cc: Vec<String>,
    /// Reply-to address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// Subject.
    #[serde(default)]
    pub subject: String,
    /// Text body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// HTML body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html: Option<String>,
    /// Attachments (bytes stored separately).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentInfo>,
}

/// Validate `draft` and queue it for `tenant` inside `tx` (so it is sent only if
/// `tx` commits); `plugin` is the queuing plugin. Returns the outbox id.
pub async fn enqueue_in(
    tx: &mut Tx<'_>,
    tenant: &str,
    plugin: Option<&str>,
    draft: &Draft,
    now: &str,
) -> Result<String, EmailError> {
    validate(draft)?;
    let payload = Payload {
        kind: if plugin.is_some() { "plugin.email" } else { "host.email" }.to_string(),
        to: draft.to.iter().map(|a| a.trim().to_string()).collect(),
        cc: draft.cc.iter().map(|a| a.trim().to_string()).collect(),
        reply_to: draft.reply_to.clone(),
        subject: draft.subject.clone(),
        text: draft.text.clone(),
        html: draft.html.clone(),
        attachments: draft
            .attachments
            .iter()
            .map(|a| AttachmentInfo {
                filename: a.filename.clone(),
                content_type: a.content_type.clone(),
                size: a.content.len(),
            })
            .collect(),
    };
    let json = serde_json::to_string(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let id = outbox::insert(
        tx,
        NewOutbox {
            tenant,
            kind: outbox::kind::EMAIL,
            payload: &json,
            plugin,
            webhook: None,
            now,
        },
    )
    .await?;
    outbox::insert_attachments(tx, tenant, &id, &draft.attachments).await?;
    Ok(id)
}

/// [`enqueue_in`] in a transaction of its own.
pub async fn enqueue(db: &Db, tenant: &str, plugin: Option<&str>, draft: &Draft) -> Result<String, EmailError> {
    validate(draft)?;
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let id = enqueue_in(&mut tx, tenant, plugin, draft, &crate::store::time::now()).await?;
    tx.commit().await.map_err(StoreError::from)?;
    Ok(id)
}

/// Build the MIME message of a payload. `Err` means it can never be sent (a stored
/// address no longer parses): the row fails without retries.
pub fn build(from: &Mailbox, outbox_id: &str, p: &Payload, files: Vec<Attachment>) -> Result<lettre::Message, String> {
    let mut b = lettre::Message::builder()
        .from(from.clone())
        .subject(p.subject.clone())
        .message_id(Some(format!("<{outbox_id}@plinth.outbox>")));
    for (i, a) in p.to.iter().enumerate() {
        b = b.to(parse_mailbox(&format!("to[{i}]"), a).map_err(|e| e.to_string())?);
    }
    for (i, a) in p.cc.iter().enumerate() {
        b = b.cc(parse_mailbox(&format!("cc[{i}]"), a).map_err(|e| e.to_string())?);
    }
    if let Some(r) = &p.reply_to {
        b = b.reply_to(parse_mailbox("reply_to", r).map_err(|e| e.to_string())?);
    }
    if p.to.is_empty() {
        return Err("the message has no recipients".into());
    }
    let body = match (&p.text, &p.html) {
        (Some(t), Some(h)) => MultiPart::alternative_plain_html(t.clone(), h.clone()),
        (None, Some(h)) => MultiPart::mixed().singlepart(SinglePart::html(h.clone())),
        (Some(t), None) => MultiPart::mixed().singlepart(SinglePart::plain(t.clone())),
        (None, None) => MultiPart::mixed().singlepart(SinglePart::plain(String::new())),
    };
    let message = if files.is_empty() {
        b.multipart(body)
    } else {
        let mut mixed = MultiPart::mixed().multipart(body);
        for f in files {
            let content_type =
                ContentType::parse(&f.content_type).map_err(|_| format!("bad content type `{}`", f.content_type))?;
            mixed = mixed.singlepart(MimeAttachment::new(f.filename).body(f.content, content_type));
        }
        b.multipart(mixed)
    };
    message.map_err(|e| format!("could not build the message: {e}"))
}

/// Recipients and subject of an email payload, for the outbox listing.
pub fn summary(payload: &str) -> Option<Payload> {
    serde_json::from_str(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Draft {
        Draft {
            to: vec!["ada@example.com".into(), "Grace Hopper <grace@example.org>".into()],
            subject: "Hello".into(),
            text: Some("Hi".into()),
            ..Draft::default()
        }
    }

    #[test]
    fn valid_message_passes() {
        validate(&draft()).unwrap();
    }

    #[test]
    fn rules() {
        let bad = |f: fn(&mut Draft)| {
            let mut d = draft();
            f(&mut d);
            validate(&d).unwrap_err()
        };
        assert!(matches!(bad(|d| d.to.clear()), EmailError::Invalid { .. }));
        assert!(
            matches!(bad(|d| d.to[0] = "not an address".into()), EmailError::Invalid { field, .. } if field == "to[0]")
        );
        assert!(matches!(
            bad(|d| d.to[0] = "a@b.c\r\nBcc: x@y.z".into()),
            EmailError::Invalid { .. }
        ));
        assert!(matches!(
            bad(|d| d.subject = "a\r\nBcc: x@y.z".into()),
            EmailError::Invalid { .. }
        ));
        assert!(matches!(bad(|d| d.subject.clear()), EmailError::Invalid { .. }));
        assert!(matches!(bad(|d| d.text = None), EmailError::Invalid { .. }));
        assert!(matches!(
            bad(|d| d.cc = (0..49).map(|i| format!("u{i}@example.com")).collect()),
            EmailError::Limit(_)
        ));
        let file = |size: usize, name: &str, ct: &str| Attachment {
            filename: name.into(),
            content_type: ct.into(),
            content: vec![0; size],
        };
        let mut d = draft();
        d.attachments = vec![file(6 << 20, "a.bin", "application/octet-stream"); 2];
        assert!(matches!(validate(&d), Err(EmailError::Limit(_))));
        d.attachments = vec![file(5 << 20, "a.bin", "application/octet-stream"); 2];
        validate(&d).unwrap();
        d.attachments = vec![file(1, "../etc/passwd", "text/plain")];
        assert!(validate(&d).is_err());
        d.attachments = vec![file(1, "a.txt", "not a type")];
        assert!(validate(&d).is_err());
    }

    #[test]
    fn builds_multipart_with_attachments() {
        let from: Mailbox = "Plinth <plinth@example.com>".parse().unwrap();
        let p = Payload {
            to: vec!["ada@example.com".into()],
            subject: "Report".into(),
            text: Some("see attached".into()),
            html: Some("<p>see attached</p>".into()),
            ..Payload::default()
        };
        let files = vec![Attachment {
            filename: "r.csv".into(),
            content_type: "text/csv".into(),
            content: b"a,b\n1,2\n".to_vec(),
        }];
        let m = build(&from, "01ID", &p, files).unwrap();
        let text = String::from_utf8(m.formatted()).unwrap();
        assert!(text.contains("multipart/mixed"));
        assert!(text.contains("multipart/alternative"));
        assert!(text.contains("filename=\"r.csv\""));
        assert!(text.contains("Message-ID: <01ID@plinth.outbox>"));
    }
}
