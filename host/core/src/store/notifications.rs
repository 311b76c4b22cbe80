//! Users' notification inboxes and their email preferences.

use serde::Serialize;
use sqlx::Row;

use super::{Db, StoreResult, Tx, time};

/// One notification in a user's inbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Notification {
    /// Id (ULID: newer ids sort later).
    pub id: String,
    /// The user it is for.
    pub user_id: String,
    /// The plugin that sent it.
    pub plugin: String,
    /// The plugin's category (`approvals.request`, …), for email preferences.
    pub category: String,
    /// Title.
    pub title: String,
    /// Plain-text body.
    pub body: String,
    /// A path in this server the notification is about (a REST resource or a console
    /// page), if any.
    pub link: Option<String>,
    /// When it was sent.
    pub created_at: String,
    /// When the user read it; `None` while unread.
    pub read_at: Option<String>,
}

const COLUMNS: &str = "id, user_id, plugin_id, category, title, body, link, created_at, read_at";

fn from_row(r: &sqlx::any::AnyRow) -> StoreResult<Notification> {
    Ok(Notification {
        id: r.try_get("id")?,
        user_id: r.try_get("user_id")?,
        plugin: r.try_get("plugin_id")?,
        category: r.try_get("category")?,
        title: r.try_get("title")?,
        body: r.try_get("body")?,
        link: r.try_get("link")?,
        created_at: r.try_get("created_at")?,
        read_at: r.try_get("read_at")?,
    })
}

/// A notification to store.
#[derive(Debug, Clone)]
pub struct NewNotification<'a> {
    /// The user it is for.
    pub user_id: &'a str,
    /// The sending plugin.
    pub plugin: &'a str,
    /// The plugin's idempotency key.
    pub key: &'a str,
    /// Category.
    pub category: &'a str,
    /// Title.
    pub title: &'a str,
    /// Body.
    pub body: &'a str,
    /// Link.
    pub link: Option<&'a str>,
}

/// Store a notification unless the plugin already sent one with this key; the stored
/// one and whether this call created it.
pub async fn insert(tx: &mut Tx<'_>, tenant: &str, n: &NewNotification<'_>) -> StoreResult<(Notification, bool)> {
    let id = ulid::Ulid::new().to_string();
    let done = sqlx::query(
        "INSERT INTO notifications \
         (tenant_id, id, user_id, plugin_id, dedupe_key, category, title, body, link, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (tenant_id, plugin_id, dedupe_key) DO NOTHING",
    )
    .bind(tenant)
    .bind(&id)
    .bind(n.user_id)
    .bind(n.plugin)
    .bind(n.key)
    .bind(n.category)
    .bind(n.title)
    .bind(n.body)
    .bind(n.link)
    .bind(time::now())
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications WHERE tenant_id = $1 AND plugin_id = $2 AND dedupe_key = $3"
    ))
    .bind(tenant)
    .bind(n.plugin)
    .bind(n.key)
    .fetch_one(&mut **tx)
    .await?;
    Ok((from_row(&row)?, done.rows_affected() == 1))
}

/// Whether `user` wants email copies of `category`.
pub async fn wants_email(tx: &mut Tx<'_>, tenant: &str, user: &str, category: &str) -> StoreResult<bool> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT category FROM notification_email WHERE tenant_id = $1 AND user_id = $2 AND category = $3",
    )
    .bind(tenant)
    .bind(user)
    .bind(category)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

/// Where a page of an inbox continues: in the unread part or the read part, after an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InboxCursor {
    /// Unread notifications older than this id, then every read one.
    Unread(String),
    /// Read notifications older than this id.
    Read(String),
}

impl Db {
    /// One page of `user`'s inbox: unread first, then read, newest first within each;
    /// at most `limit` and whether more follow.
    pub async fn inbox(
        &self,
        tenant: &str,
        user: &str,
        after: Option<&InboxCursor>,
        limit: i64,
        unread_only: bool,
    ) -> StoreResult<(Vec<Notification>, bool)> {
        let mut out = Vec::new();
        // `~` sorts after every ULID character: "before the newest" on a first page.
        let (mut unread_after, read_after) = match after {
            None => (Some("~".to_string()), "~".to_string()),
            Some(InboxCursor::Unread(id)) => (Some(id.clone()), "~".to_string()),
            Some(InboxCursor::Read(id)) => (None, id.clone()),
        };
        if let Some(before) = unread_after.take() {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM notifications WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL \
                 AND id < $3 ORDER BY id DESC LIMIT $4"
            ))
            .bind(tenant)
            .bind(user)
            .bind(&before)
            .bind(limit + 1)
            .fetch_all(self.reader())
            .await?;
            for r in &rows {
                out.push(from_row(r)?);
            }
        }
        if !unread_only && (out.len() as i64) <= limit {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM notifications WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NOT NULL \
                 AND id < $3 ORDER BY id DESC LIMIT $4"
            ))
            .bind(tenant)
            .bind(user)
            .bind(&read_after)
            .bind(limit + 1 - out.len() as i64)
            .fetch_all(self.reader())
            .await?;
            for r in &rows {
                out.push(from_row(r)?);
            }
        }
        let more = out.len() as i64 > limit;
        out.truncate(usize::try_from(limit).unwrap_or(0));
        Ok((out, more))
    }

    /// How many unread notifications `user` has.
    pub async fn unread_count(&self, tenant: &str, user: &str) -> StoreResult<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM notifications WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL",
        )
        .bind(tenant)
        .bind(user)
        .fetch_one(self.reader())
        .await?)
    }

    /// Mark one of `user`'s notifications read (kept as it was when already read);
    /// `None` when the user has no such notification.
    pub async fn mark_read(&self, tenant: &str, user: &str, id: &str) -> StoreResult<Option<Notification>> {
        sqlx::query(
            "UPDATE notifications SET read_at = $4 WHERE tenant_id = $1 AND user_id = $2 AND id = $3 \
             AND read_at IS NULL",
        )
        .bind(tenant)
        .bind(user)
        .bind(id)
        .bind(time::now())
        .execute(self.writer())
        .await?;
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM notifications WHERE tenant_id = $1 AND user_id = $2 AND id = $3"
        ))
        .bind(tenant)
        .bind(user)
        .bind(id)
        .fetch_optional(self.reader())
        .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Mark every unread notification of `user` read; how many.
    pub async fn mark_all_read(&self, tenant: &str, user: &str) -> StoreResult<u64> {
        Ok(sqlx::query(
            "UPDATE notifications SET read_at = $3 WHERE tenant_id = $1 AND user_id = $2 AND read_at IS NULL",
        )
        .bind(tenant)
        .bind(user)
        .bind(time::now())
        .execute(self.writer())
        .await?
        .rows_affected())
    }

    /// The categories `user` gets email copies of, sorted.
    pub async fn email_categories(&self, tenant: &str, user: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT category FROM notification_email WHERE tenant_id = $1 AND user_id = $2 ORDER BY category",
        )
        .bind(tenant)
        .bind(user)
        .fetch_all(self.reader())
        .await?)
    }

    /// Turn email copies of `category` on or off for `user`.
    pub async fn set_email_category(&self, tenant: &str, user: &str, category: &str, email: bool) -> StoreResult<()> {
        let statement = if email {
            "INSERT INTO notification_email (tenant_id, user_id, category) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant_id, user_id, category) DO NOTHING"
        } else {
            "DELETE FROM notification_email WHERE tenant_id = $1 AND user_id = $2 AND category = $3"
        };
        sqlx::query(statement)
            .bind(tenant)
            .bind(user)
            .bind(category)
            .execute(self.writer())
            .await?;
        Ok(())
    }
}
