//! Notifications: a plugin tells a user something in their inbox (title, body, a link
//! to a REST resource or console page, a category), at most once per plugin key — a
//! handler retried after a failure cannot notify twice. A user who chose email for the
//! category also gets a copy through the outbox, in the same transaction. Users read
//! and mark their own inbox (`/api/v1/me/notifications`); see docs/notifications.md.

use crate::outbox::email::{self, Draft};
use crate::problem::{FieldProblem, Problem, ProblemKind};
use crate::store::audit::{self, Actor, NewEvent};
use crate::store::notifications::{self as store, NewNotification, Notification};
use crate::store::{Db, StoreError};

/// Longest title, in characters.
pub const MAX_TITLE: usize = 200;
/// Longest body, in characters.
pub const MAX_BODY: usize = 4_000;

/// A notification as a plugin asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    /// The user to notify (of the caller's tenant).
    pub user_id: String,
    /// Idempotency key, unique per plugin (an event id, `approval:7:step:2`, …).
    pub key: String,
    /// Category (`^[a-z][a-z0-9_.-]{0,63}$`), for the user's email choice.
    pub category: String,
    /// Title (1–200 characters).
    pub title: String,
    /// Plain-text body (at most 4,000 characters).
    pub body: String,
    /// A path on this server (`/api/v1/…` or a console page, starting with `/`).
    pub link: Option<String>,
}

/// Whether `category` is a category name: `^[a-z][a-z0-9_.-]{0,63}$`.
pub fn category_ok(category: &str) -> bool {
    category.len() <= 64
        && category.starts_with(|c: char| c.is_ascii_lowercase())
        && category
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

fn check(n: &Send) -> Vec<FieldProblem> {
    let mut problems = Vec::new();
    let len = |s: &str| s.chars().count();
    if !(1..=200).contains(&len(&n.key)) {
        problems.push(FieldProblem::new("key", "must be 1–200 characters"));
    }
    if !category_ok(&n.category) {
        problems.push(FieldProblem::new("category", "must match ^[a-z][a-z0-9_.-]{0,63}$"));
    }
    if !(1..=MAX_TITLE).contains(&len(n.title.trim())) || n.title.chars().any(char::is_control) {
        problems.push(FieldProblem::new("title", "must be 1–200 characters, one line"));
    }
    if len(&n.body) > MAX_BODY {
        problems.push(FieldProblem::new("body", "must be at most 4,000 characters"));
    }
    if let Some(link) = &n.link {
        // A path on this server: never a link elsewhere a notification could phish with.
        let ok = link.starts_with('/')
            && !link.starts_with("//")
            && link.len() <= 2_000
            && !link.contains(char::is_whitespace);
        if !ok {
            problems.push(FieldProblem::new(
                "link",
                "must be a path on this server, like /api/v1/records/opportunity/01J…",
            ));
        }
    }
    problems
}

/// Notify `n.user_id` as `plugin`; the notification, and whether this call created it
/// (`false`: the plugin already sent one with this key, returned unchanged). Audited
/// as `notification.create`.
pub async fn send(
    db: &Db,
    tenant: &str,
    plugin: &str,
    actor: &Actor,
    n: &Send,
) -> Result<(Notification, bool), Problem> {
    let problems = check(n);
    if !problems.is_empty() {
        return Err(Problem::invalid("the notification is not valid", problems));
    }
    let user = db
        .user(tenant, &n.user_id)
        .await?
        .ok_or_else(|| Problem::new(ProblemKind::NotFound, format!("no user {}", n.user_id)))?;
    let mut tx = db.writer().begin().await.map_err(StoreError::from)?;
    let new = NewNotification {
        user_id: &user.id,
        plugin,
        key: &n.key,
        category: &n.category,
        title: n.title.trim(),
        body: &n.body,
        link: n.link.as_deref(),
    };
    let (stored, created) = store::insert(&mut tx, tenant, &new).await?;
    if created {
        if user.status == "active" && store::wants_email(&mut tx, tenant, &user.id, &n.category).await? {
            let mut text = stored.body.clone();
            if let Some(link) = &stored.link {
                text.push_str(&format!("\n\n{link}"));
            }
            let draft = Draft {
                to: vec![user.email.clone()],
                cc: Vec::new(),
                reply_to: None,
                subject: stored.title.clone(),
                text: Some(text),
                html: None,
                attachments: Vec::new(),
            };
            email::enqueue_in(&mut tx, tenant, Some(plugin), &draft, &crate::store::time::now())
                .await
                .map_err(|e| Problem::new(ProblemKind::Internal, format!("notification email: {e}")))?;
        }
        let after = serde_json::to_value(&stored).unwrap_or_default();
        let event = NewEvent {
            action: "notification.create",
            entity_type: "notification",
            entity_id: Some(&stored.id),
            before: None,
            after: Some(&after),
        };
        audit::append(&mut tx, db.dialect(), tenant, actor, event).await?;
    }
    tx.commit().await.map_err(StoreError::from)?;
    Ok((stored, created))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Send {
        Send {
            user_id: "u1".into(),
            key: "evt-1".into(),
            category: "approvals.request".into(),
            title: "Approve a 25% discount".into(),
            body: "Globex asks for 25% off.".into(),
            link: Some("/api/v1/records/opportunity/01J".into()),
        }
    }

    #[test]
    fn every_problem_is_named_and_links_stay_on_this_server() {
        assert!(check(&valid()).is_empty());
        let bad = Send {
            key: String::new(),
            category: "Approvals".into(),
            title: "two\nlines".into(),
            body: "x".repeat(MAX_BODY + 1),
            link: Some("https://evil.example/login".into()),
            ..valid()
        };
        let fields: Vec<String> = check(&bad).into_iter().map(|p| p.field).collect();
        assert_eq!(fields, ["key", "category", "title", "body", "link"]);
        for link in ["//evil.example/x", "/a b"] {
            let n = Send {
                link: Some(link.into()),
                ..valid()
            };
            assert_eq!(check(&n).len(), 1, "{link}");
        }
    }
}
