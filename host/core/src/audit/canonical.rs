//! The canonical form of audit events, written without allocation, for code that
//! hashes many events (verification). It must produce exactly the bytes of
//! `AuditEvent::canonical` in `store::audit` — the definition the chain is built on —
//! and a test pins the two together.

use std::borrow::Cow;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::store::audit::AuditEvent;

/// An event's columns as the canonical form lists them.
pub(crate) struct Fields<'a> {
    pub(crate) tenant_id: &'a str,
    pub(crate) seq: i64,
    pub(crate) id: &'a str,
    pub(crate) occurred_at: &'a str,
    pub(crate) actor_user: Option<&'a str>,
    pub(crate) actor_key: Option<&'a str>,
    pub(crate) actor_plugin: Option<&'a str>,
    pub(crate) action: &'a str,
    pub(crate) entity_type: &'a str,
    pub(crate) entity_id: Option<&'a str>,
    pub(crate) before_state: Option<&'a str>,
    pub(crate) after_state: Option<&'a str>,
    pub(crate) changed_fields: &'a str,
    pub(crate) request_id: Option<&'a str>,
    pub(crate) api_version: Option<&'a str>,
    pub(crate) client: Option<&'a str>,
    pub(crate) prev_hash: &'a str,
    pub(crate) hash: &'a str,
}

impl<'a> Fields<'a> {
    /// The fields of a decoded event.
    pub(crate) fn of_event(e: &'a AuditEvent) -> Fields<'a> {
        Fields {
            tenant_id: &e.tenant_id,
            seq: e.seq,
            id: &e.id,
            occurred_at: &e.occurred_at,
            actor_user: e.actor_user.as_deref(),
            actor_key: e.actor_key.as_deref(),
            actor_plugin: e.actor_plugin.as_deref(),
            action: &e.action,
            entity_type: &e.entity_type,
            entity_id: e.entity_id.as_deref(),
            before_state: e.before_state.as_deref(),
            after_state: e.after_state.as_deref(),
            changed_fields: &e.changed_fields,
            request_id: e.request_id.as_deref(),
            api_version: e.api_version.as_deref(),
            client: e.client.as_deref(),
            prev_hash: &e.prev_hash,
            hash: &e.hash,
        }
    }

    /// The fields of a packed row of `tenant_id`.
    pub(crate) fn of_packed(tenant_id: &'a str, p: &'a Packed<'a>) -> Fields<'a> {
        Fields {
            tenant_id,
            seq: p.0,
            id: &p.1,
            occurred_at: &p.2,
            actor_user: p.3.as_deref(),
            actor_key: p.4.as_deref(),
            actor_plugin: p.5.as_deref(),
            action: &p.6,
            entity_type: &p.7,
            entity_id: p.8.as_deref(),
            before_state: p.9.as_deref(),
            after_state: p.10.as_deref(),
            changed_fields: &p.11,
            request_id: p.12.as_deref(),
            api_version: p.13.as_deref(),
            client: p.14.as_deref(),
            prev_hash: &p.15,
            hash: &p.16,
        }
    }
}

/// One event as `audit_query::chain_page_packed` returns it (all columns but the
/// tenant, in order); strings borrow from the text unless they hold escapes.
#[derive(Deserialize)]
pub(crate) struct Packed<'a>(
    i64,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Option<Cow<'a, str>>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
);

/// The seq at the start of a packed row (`[12,…` or `[12, …`).
pub(crate) fn leading_seq(packed: &str) -> Option<i64> {
    let rest = packed.strip_prefix('[')?;
    let end = rest.find(|c: char| !c.is_ascii_digit() && c != '-')?;
    rest[..end].parse().ok()
}

/// Whether `f.hash` is the hash of the other fields. Equivalent to
/// `AuditEvent::compute_hash() == hash`, but writes the canonical form (the same
/// bytes as [`AuditEvent::canonical`], which a test pins) into a reused buffer
/// instead of building a JSON tree per event.
pub(crate) fn hash_matches(f: &Fields<'_>, buf: &mut Vec<u8>) -> bool {
    buf.clear();
    if canonical_into(f, buf).is_err() {
        return false;
    }
    let digest = Sha256::digest(buf.as_slice());
    let mut hex_digest = [0u8; 64];
    hex::encode_to_slice(digest, &mut hex_digest).is_ok() && hex_digest.as_slice() == f.hash.as_bytes()
}

/// Append the canonical form of `f` to `buf`: the prefix, then a compact JSON array
/// of every column in `AuditEvent::canonical`'s order, strings escaped by serde_json
/// exactly as there.
pub(crate) fn canonical_into(f: &Fields<'_>, buf: &mut Vec<u8>) -> serde_json::Result<()> {
    fn text(buf: &mut Vec<u8>, s: &str) -> serde_json::Result<()> {
        serde_json::to_writer(&mut *buf, s)?;
        buf.push(b',');
        Ok(())
    }
    fn opt(buf: &mut Vec<u8>, s: Option<&str>) -> serde_json::Result<()> {
        match s {
            Some(s) => text(buf, s),
            None => {
                buf.extend_from_slice(b"null,");
                Ok(())
            }
        }
    }
    buf.extend_from_slice(b"plinth-audit-v1\n[");
    text(buf, f.tenant_id)?;
    serde_json::to_writer(&mut *buf, &f.seq)?;
    buf.push(b',');
    text(buf, f.id)?;
    text(buf, f.occurred_at)?;
    opt(buf, f.actor_user)?;
    opt(buf, f.actor_key)?;
    opt(buf, f.actor_plugin)?;
    text(buf, f.action)?;
    text(buf, f.entity_type)?;
    opt(buf, f.entity_id)?;
    opt(buf, f.before_state)?;
    opt(buf, f.after_state)?;
    text(buf, f.changed_fields)?;
    opt(buf, f.request_id)?;
    opt(buf, f.api_version)?;
    opt(buf, f.client)?;
    serde_json::to_writer(&mut *buf, f.prev_hash)?;
    buf.push(b']');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::audit::GENESIS_HASH;

    fn event() -> AuditEvent {
        let mut e = AuditEvent {
            tenant_id: "t".into(),
            seq: 1,
            id: "e1".into(),
            occurred_at: "2026-01-01T00:00:00.000Z".into(),
            actor_user: Some("u".into()),
            actor_key: None,
            actor_plugin: None,
            action: "record.create".into(),
            entity_type: "record:account".into(),
            entity_id: Some("r1".into()),
            before_state: None,
            after_state: Some("{}".into()),
            changed_fields: "[]".into(),
            request_id: None,
            api_version: None,
            client: None,
            prev_hash: GENESIS_HASH.into(),
            hash: String::new(),
        };
        e.hash = e.compute_hash();
        e
    }

    #[test]
    fn the_fast_canonical_form_is_the_canonical_form() {
        let mut e = event();
        let awkward = [
            "plain",
            "quote \" backslash \\ slash /",
            "controls \u{0} \u{1f} \n \r \t \u{7f}",
            "unicode é ✓ 𝄞 \u{2028} \u{2029}",
            "",
        ];
        let mut buf = Vec::new();
        for (i, s) in awkward.iter().enumerate() {
            e.action = (*s).to_string();
            e.before_state = (i % 2 == 0).then(|| format!("{{\"v\":{s:?}}}"));
            e.actor_plugin = (i % 2 == 1).then(|| (*s).to_string());
            e.client = None;
            e.seq = [1, -5, i64::MAX, 0, 42][i];
            buf.clear();
            canonical_into(&Fields::of_event(&e), &mut buf).unwrap();
            assert_eq!(buf, e.canonical(), "{s:?}");
            e.hash = e.compute_hash();
            assert!(hash_matches(&Fields::of_event(&e), &mut buf));
            e.hash
                .replace_range(0..1, if e.hash.starts_with('0') { "1" } else { "0" });
            assert!(!hash_matches(&Fields::of_event(&e), &mut buf));
        }
    }

    #[test]
    fn the_seq_leads_a_packed_row() {
        assert_eq!(leading_seq("[12,\"x\"]"), Some(12));
        assert_eq!(leading_seq("[12, \"x\"]"), Some(12));
        assert_eq!(leading_seq("12"), None);
    }
}
