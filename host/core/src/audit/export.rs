//! Streaming export of the ledger as CSV (RFC 4180) or JSON Lines, with the event
//! list's filters. Events are read a page at a time by seq, and each page is encoded
//! and handed to the response before the next is read, so memory stays bounded by
//! one page whatever the export's size. The export is a snapshot: it ends at the
//! highest seq stored when it began, however long the download takes.
//!
//! JSON Lines: one event per line, exactly as `GET /api/v1/audit/events` shows it.
//! CSV: a header row with [`CSV_COLUMNS`], then one row per event; `before`, `after`
//! and `changed_fields` hold the stored JSON text; an empty cell is a null. Cells are
//! quoted when they contain a comma, quote or line break; nothing else is altered
//! (no spreadsheet-formula escaping), so an export parses back to exactly the ledger.

use futures_util::Stream;

use super::params::Params;
use super::query::{EventView, filter_from};
use super::{AuditResult, order_param};
use crate::store::audit::AuditEvent;
use crate::store::audit_query::{self, EventFilter, Order};
use crate::store::{Db, StoreError, StoreResult};

/// Events read per page.
pub const PAGE: i64 = 1_000;

/// Columns of the CSV export, in order.
pub const CSV_COLUMNS: [&str; 17] = [
    "seq",
    "id",
    "occurred_at",
    "actor_user",
    "actor_key",
    "actor_plugin",
    "action",
    "entity_type",
    "entity_id",
    "before",
    "after",
    "changed_fields",
    "request_id",
    "api_version",
    "client",
    "prev_hash",
    "hash",
];

/// Every parameter of the export: the event filters, `order` (default `asc`) and
/// `format` (`csv` or `jsonl`, default `jsonl`).
pub const EXPORT_PARAMS: [&str; 11] = [
    "actor",
    "key",
    "plugin",
    "entity_type",
    "entity_id",
    "action",
    "from",
    "to",
    "changed_field",
    "order",
    "format",
];

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// RFC 4180 CSV with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

impl Format {
    /// The media type of the response.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Jsonl => "application/jsonl",
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    }
}

/// A validated export request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportQuery {
    /// What to export.
    pub filter: EventFilter,
    /// Oldest (default) or newest first.
    pub order: Order,
    /// Output format.
    pub format: Format,
}

impl ExportQuery {
    /// Validate export parameters (see [`EXPORT_PARAMS`]).
    pub fn from_params(p: &Params) -> AuditResult<ExportQuery> {
        let mut c = p.check();
        let filter = filter_from(&mut c);
        let order = order_param(&mut c, Order::Asc);
        let format = match c.choice("format", &["csv", "jsonl"], "jsonl") {
            "csv" => Format::Csv,
            _ => Format::Jsonl,
        };
        c.finish()?;
        Ok(ExportQuery { filter, order, format })
    }
}

enum Next {
    Start,
    After(Option<i64>),
    Done,
}

/// The export of `tenant`'s events matching `q`, as a stream of encoded chunks (one
/// per page). A database failure mid-way ends the stream with the error, so the
/// response is cut off rather than silently short.
pub fn export_stream(db: Db, tenant: String, q: ExportQuery) -> impl Stream<Item = StoreResult<Vec<u8>>> + Send {
    futures_util::stream::unfold((Next::Start, db, tenant, q), |(next, db, tenant, mut q)| async move {
        let after = match next {
            Next::Done => return None,
            Next::After(after) => after,
            Next::Start => match audit_query::max_seq(&db, &tenant).await {
                Ok(max) => {
                    q.filter.max_seq = Some(q.filter.max_seq.map_or(max, |m| m.min(max)));
                    None
                }
                Err(e) => return Some((Err(e), (Next::Done, db, tenant, q))),
            },
        };
        let page = match audit_query::events_page(&db, &tenant, &q.filter, after, q.order, PAGE).await {
            Ok(page) => page,
            Err(e) => return Some((Err(e), (Next::Done, db, tenant, q))),
        };
        let header = after.is_none();
        let following = match page.last() {
            Some(last) if page.len() as i64 == PAGE => Next::After(Some(last.seq)),
            _ => Next::Done,
        };
        if page.is_empty() && !header {
            return None;
        }
        let chunk = match q.format {
            Format::Csv => csv_chunk(&page, header),
            Format::Jsonl => jsonl_chunk(page),
        };
        Some((chunk, (following, db, tenant, q)))
    })
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("")
}

/// CSV rows of `events`, preceded by the header row when `header`.
pub fn csv_chunk(events: &[AuditEvent], header: bool) -> StoreResult<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::with_capacity(events.len() * 512 + 256));
    let failed = |e: csv::Error| StoreError::Corrupt(format!("CSV encoding: {e}"));
    if header {
        w.write_record(CSV_COLUMNS).map_err(failed)?;
    }
    for e in events {
        let seq = e.seq.to_string();
        w.write_record([
            seq.as_str(),
            &e.id,
            &e.occurred_at,
            opt(&e.actor_user),
            opt(&e.actor_key),
            opt(&e.actor_plugin),
            &e.action,
            &e.entity_type,
            opt(&e.entity_id),
            opt(&e.before_state),
            opt(&e.after_state),
            &e.changed_fields,
            opt(&e.request_id),
            opt(&e.api_version),
            opt(&e.client),
            &e.prev_hash,
            &e.hash,
        ])
        .map_err(failed)?;
    }
    w.into_inner()
        .map_err(|e| StoreError::Corrupt(format!("CSV encoding: {e}")))
}

/// JSON Lines of `events`.
pub fn jsonl_chunk(events: Vec<AuditEvent>) -> StoreResult<Vec<u8>> {
    let mut out = Vec::with_capacity(events.len() * 512);
    for e in events {
        serde_json::to_writer(&mut out, &EventView::from(e))
            .map_err(|e| StoreError::Corrupt(format!("JSON encoding: {e}")))?;
        out.push(b'\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting_and_nothing_else() {
        let e = AuditEvent {
            tenant_id: "t".into(),
            seq: 7,
            id: "i".into(),
            occurred_at: "2026-01-01T00:00:00.000Z".into(),
            actor_user: Some("u".into()),
            actor_key: None,
            actor_plugin: None,
            action: "record.update".into(),
            entity_type: "record:account".into(),
            entity_id: Some("r".into()),
            before_state: Some(r#"{"name":"a, \"b\"\nc"}"#.into()),
            after_state: None,
            changed_fields: r#"["name"]"#.into(),
            request_id: None,
            api_version: None,
            client: Some("=cmd".into()),
            prev_hash: "p".into(),
            hash: "h".into(),
        };
        let out = String::from_utf8(csv_chunk(&[e], false).unwrap()).unwrap();
        assert_eq!(
            out,
            "7,i,2026-01-01T00:00:00.000Z,u,,,record.update,record:account,r,\
             \"{\"\"name\"\":\"\"a, \\\"\"b\\\"\"\\nc\"\"}\",,\"[\"\"name\"\"]\",,,=cmd,p,h\r\n"
        );
    }
}
