//! Usage analytics over the request log, always for one tenant: request and error
//! counts per version, client or route with p50/p95 latency, and the clients still on
//! deprecated or retired versions.
//!
//! Counts are exact over the window (SQL `GROUP BY`). Percentiles are computed here
//! over the latencies of the window's newest [`LATENCY_SAMPLE_LIMIT`] requests, so
//! memory stays bounded; the report says when the window held more
//! (`latency_sampled: true`).

use std::collections::HashMap;

use serde::Serialize;

use super::lifecycle::{self, Lifecycle};
use super::registry::Registry;
use crate::store::request_log::LogGroup;
use crate::store::{Db, StoreResult};

/// Most latencies read for one report.
pub const LATENCY_SAMPLE_LIMIT: i64 = 100_000;
/// Most groups in one report (largest first).
pub const MAX_GROUPS: i64 = 1_000;
/// Most rows in the deprecated-clients list (most recently seen first).
pub const MAX_CLIENTS: i64 = 1_000;

/// A time window `[from, to)` in storage format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    /// Start (inclusive).
    pub from: String,
    /// End (exclusive).
    pub to: String,
}

/// Usage of one group.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageGroup {
    /// The version, client name (`null`: none sent) or `METHOD route`.
    pub key: Option<String>,
    /// Requests.
    pub requests: i64,
    /// Requests answered with status ≥ 400 (client and server errors).
    pub errors: i64,
    /// `errors / requests`.
    pub error_rate: f64,
    /// Requests answered with status ≥ 500.
    pub server_errors: i64,
    /// `server_errors / requests`.
    pub server_error_rate: f64,
    /// Median latency in microseconds (nearest rank).
    pub p50_us: Option<i64>,
    /// 95th-percentile latency in microseconds (nearest rank).
    pub p95_us: Option<i64>,
}

/// A usage report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    /// Start of the window (inclusive).
    pub from: String,
    /// End of the window (exclusive).
    pub to: String,
    /// `version`, `client` or `route`.
    pub group_by: &'static str,
    /// Groups, most requests first.
    pub groups: Vec<UsageGroup>,
    /// Whether percentiles cover only the newest [`LATENCY_SAMPLE_LIMIT`] requests.
    pub latency_sampled: bool,
}

/// A key and client still using a deprecated or retired version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeprecatedClient {
    /// The API key.
    pub key_id: Option<String>,
    /// The client name.
    pub client: Option<String>,
    /// The version it uses.
    pub api_version: String,
    /// `deprecated` or `retired`.
    pub lifecycle: Lifecycle,
    /// When the version stops being served (`YYYY-MM-DD`).
    pub sunset: Option<String>,
    /// The version to move to.
    pub successor: Option<String>,
    /// Latest request in the window.
    pub last_seen: String,
    /// Requests in the window.
    pub requests: i64,
}

/// The name of a grouping in the API.
pub fn group_name(group: LogGroup) -> &'static str {
    match group {
        LogGroup::Version => "version",
        LogGroup::Client => "client",
        LogGroup::Route => "route",
    }
}

/// Parse a grouping name.
pub fn parse_group(name: &str) -> Option<LogGroup> {
    [LogGroup::Version, LogGroup::Client, LogGroup::Route]
        .into_iter()
        .find(|g| group_name(*g) == name)
}

/// Usage of `tenant` in `window`, grouped by `group`.
pub async fn usage(db: &Db, tenant: &str, window: &Window, group: LogGroup) -> StoreResult<UsageReport> {
    let counts = db
        .request_counts(tenant, &window.from, &window.to, group, MAX_GROUPS)
        .await?;
    let latencies = db
        .request_latencies(tenant, &window.from, &window.to, group, LATENCY_SAMPLE_LIMIT)
        .await?;
    let latency_sampled = latencies.len() as i64 >= LATENCY_SAMPLE_LIMIT;
    let mut by_group: HashMap<Option<String>, Vec<i64>> = HashMap::new();
    for (key, latency) in latencies {
        by_group.entry(key).or_default().push(latency);
    }
    let groups = counts
        .into_iter()
        .map(|c| {
            let mut lat = by_group.remove(&c.key).unwrap_or_default();
            lat.sort_unstable();
            UsageGroup {
                requests: c.requests,
                errors: c.errors,
                error_rate: rate(c.errors, c.requests),
                server_errors: c.server_errors,
                server_error_rate: rate(c.server_errors, c.requests),
                p50_us: percentile(&lat, 50),
                p95_us: percentile(&lat, 95),
                key: c.key,
            }
        })
        .collect();
    Ok(UsageReport {
        from: window.from.clone(),
        to: window.to.clone(),
        group_by: group_name(group),
        groups,
        latency_sampled,
    })
}

/// Keys and clients of `tenant` that used a deprecated or retired version in `window`.
pub async fn deprecated_clients(
    db: &Db,
    registry: &Registry,
    tenant: &str,
    window: &Window,
) -> StoreResult<Vec<DeprecatedClient>> {
    let ending: Vec<_> = registry
        .versions()
        .iter()
        .filter(|v| v.status.lifecycle.is_ending())
        .collect();
    let names: Vec<&str> = ending.iter().map(|v| v.version).collect();
    let rows = db
        .clients_on_versions(tenant, &window.from, &window.to, &names, MAX_CLIENTS)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let info = ending.iter().find(|v| v.version == r.api_version)?;
            Some(DeprecatedClient {
                key_id: r.key_id,
                client: r.client,
                lifecycle: info.status.lifecycle,
                sunset: info.status.sunset.map(lifecycle::format_date),
                successor: info.status.successor.clone(),
                api_version: r.api_version,
                last_seen: r.last_seen,
                requests: r.requests,
            })
        })
        .collect())
}

fn rate(part: i64, whole: i64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 }
}

/// The nearest-rank `p`th percentile of ascending `sorted`.
pub fn percentile(sorted: &[i64], p: usize) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank.min(sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<i64> = (1..=20).collect();
        assert_eq!(percentile(&v, 50), Some(10));
        assert_eq!(percentile(&v, 95), Some(19));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 100], 95), Some(100));
        assert_eq!(percentile(&[1, 2, 3, 100], 50), Some(2));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn group_names_round_trip() {
        for g in [LogGroup::Version, LogGroup::Client, LogGroup::Route] {
            assert_eq!(parse_group(group_name(g)), Some(g));
        }
        assert_eq!(parse_group("tenant"), None);
    }
}
