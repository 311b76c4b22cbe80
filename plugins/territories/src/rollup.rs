//! Roll-up metrics of a territory's subtree, computed by the host in SQL
//! (`records::aggregate` with the `shared_within` filter: records shared with the
//! territory's group or any group below it), never by pulling rows.

use std::collections::HashMap;

use plinth_sdk::Error;
use plinth_sdk::records::{self, Aggregate, Op, Rollup};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Stages that count as open pipeline.
pub const OPEN_STAGES: [&str; 4] = ["prospecting", "qualification", "proposal", "negotiation"];

/// The period closed-won and win rate cover: `[from, to)` as `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub from: String,
    pub to: String,
}

fn civil(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn valid_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && s.char_indices().all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

impl Period {
    /// The calendar quarter containing today (UTC).
    pub fn this_quarter() -> Period {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let (y, m, _) = civil(secs.div_euclid(86_400));
        let q0 = (m - 1) / 3 * 3 + 1;
        let (ny, nm) = if q0 + 3 > 12 { (y + 1, 1) } else { (y, q0 + 3) };
        Period {
            from: format!("{y:04}-{q0:02}-01"),
            to: format!("{ny:04}-{nm:02}-01"),
        }
    }

    /// From `?from=&to=`, else this quarter.
    pub fn from_query(from: Option<&str>, to: Option<&str>) -> Result<Period, Error> {
        let mut p = Period::this_quarter();
        if let Some(f) = from {
            p.from = f.to_string();
        }
        if let Some(t) = to {
            p.to = t.to_string();
        }
        if !valid_date(&p.from) || !valid_date(&p.to) || p.from >= p.to {
            return Err(
                Error::invalid("period: `from` and `to` are YYYY-MM-DD dates with from < to")
                    .with_field("from", "YYYY-MM-DD before `to`"),
            );
        }
        Ok(p)
    }
}

/// Additive measures (so a preview can add and subtract accounts).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Sums {
    pub accounts: i64,
    pub open_count: i64,
    pub open_amount: f64,
    pub weighted_amount: f64,
    pub won_count: i64,
    pub won_amount: f64,
    pub lost_count: i64,
}

impl Sums {
    pub fn add(&mut self, o: &Sums, sign: f64) {
        let s = sign as i64;
        self.accounts += s * o.accounts;
        self.open_count += s * o.open_count;
        self.open_amount += sign * o.open_amount;
        self.weighted_amount += sign * o.weighted_amount;
        self.won_count += s * o.won_count;
        self.won_amount += sign * o.won_amount;
        self.lost_count += s * o.lost_count;
    }

    pub fn report(&self) -> Value {
        let closed = self.won_count + self.lost_count;
        let round = |x: f64| (x * 100.0).round() / 100.0;
        serde_json::json!({
            "account_count": self.accounts,
            "open_opportunities": self.open_count,
            "open_pipeline": round(self.open_amount),
            "weighted_pipeline": round(self.weighted_amount),
            "closed_won_count": self.won_count,
            "closed_won_amount": round(self.won_amount),
            "closed_lost_count": self.lost_count,
            "win_rate": if closed == 0 { Value::Null } else { serde_json::json!(round(self.won_count as f64 / closed as f64 * 10_000.0) / 10_000.0) },
        })
    }
}

fn f(row: &Map<String, Value>, k: &str) -> f64 {
    row.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

/// Fold rows of [`opportunity_query`] (grouped by probability, perhaps also by
/// account) into `s`.
fn fold<'a>(s: &mut Sums, rows: impl IntoIterator<Item = &'a Map<String, Value>>) {
    for r in rows {
        let open_amount = f(r, "open_amount");
        s.open_count += f(r, "open_count") as i64;
        s.open_amount += open_amount;
        s.weighted_amount += open_amount * f(r, "probability") / 100.0;
        s.won_count += f(r, "won_count") as i64;
        s.won_amount += f(r, "won_amount");
        s.lost_count += f(r, "lost_count") as i64;
    }
}

/// Every opportunity measure of a roll-up in one aggregate, so the host passes over
/// the opportunities once: open ones (any close date) by count and amount, and those
/// closed won or lost in the period. Grouped by probability for the weighted pipeline.
fn opportunity_query(p: &Period) -> Aggregate {
    let closed_in = |a: Aggregate, stage: &str| {
        a.when("stage", Op::Eq, stage)
            .when("close_date", Op::Gte, &p.from)
            .when("close_date", Op::Lt, &p.to)
    };
    let a = Aggregate::new()
        .group_by("probability")
        .count()
        .named("open_count")
        .when("stage", Op::In, OPEN_STAGES)
        .sum("amount")
        .named("open_amount")
        .when("stage", Op::In, OPEN_STAGES);
    let a = closed_in(a.count().named("won_count"), "closed_won");
    let a = closed_in(a.sum("amount").named("won_amount"), "closed_won");
    closed_in(a.count().named("lost_count"), "closed_lost")
}

impl Period {
    /// `(from, to)` as months (`2026-10`) when both bounds are the first of a month,
    /// so the period is whole `close_date:month` buckets of the `pipeline` roll-up.
    fn months(&self) -> Option<(&str, &str)> {
        (self.from.ends_with("-01") && self.to.ends_with("-01")).then(|| (&self.from[..7], &self.to[..7]))
    }
}

/// The roll-up of the subtree of `territory` (as the caller sees it). For whole
/// months (the default quarter, for one) it reads the host's kept totals (the
/// manifest's `[[rollups]]`), whose cost does not grow with the subtree; for other
/// periods it computes two aggregates, one over accounts and one over opportunities.
pub fn subtree(territory: &str, p: &Period) -> Result<Sums, Error> {
    match p.months() {
        Some((from, to)) => kept(territory, from, to),
        None => live(territory, p),
    }
}

fn kept(territory: &str, from: &str, to: &str) -> Result<Sums, Error> {
    let mut s = Sums::default();
    let accounts = records::rollup("accounts", territory, &Rollup::new())?;
    s.accounts = accounts.first().map_or(0.0, |r| f(r, "count")) as i64;
    let open = Rollup::new()
        .group_by("probability")
        .filter("stage", Op::In, OPEN_STAGES);
    for r in records::rollup("pipeline", territory, &open)? {
        let amount = f(&r, "sum_amount");
        s.open_count += f(&r, "count") as i64;
        s.open_amount += amount;
        s.weighted_amount += amount * f(&r, "probability") / 100.0;
    }
    let closed = Rollup::new()
        .group_by("stage")
        .filter("stage", Op::In, ["closed_won", "closed_lost"])
        .filter("close_date:month", Op::Gte, from)
        .filter("close_date:month", Op::Lt, to);
    for r in records::rollup("pipeline", territory, &closed)? {
        match r.get("stage").and_then(Value::as_str) {
            Some("closed_won") => {
                s.won_count += f(&r, "count") as i64;
                s.won_amount += f(&r, "sum_amount");
            }
            _ => s.lost_count += f(&r, "count") as i64,
        }
    }
    Ok(s)
}

fn live(territory: &str, p: &Period) -> Result<Sums, Error> {
    let within = |a: Aggregate| a.filter("shared_within", Op::Eq, territory);
    let mut s = Sums::default();
    let accounts = records::aggregate("account", &within(Aggregate::new().count()))?;
    s.accounts = accounts.first().map_or(0.0, |r| f(r, "count")) as i64;
    let opportunities = records::aggregate("opportunity", &within(opportunity_query(p)))?;
    fold(&mut s, &opportunities);
    Ok(s)
}

/// The measures each account contributes (itself plus its opportunities), by account,
/// in aggregates of up to 200 accounts at a time.
pub fn per_account(accounts: &[String], p: &Period) -> Result<HashMap<String, Sums>, Error> {
    let mut out: HashMap<String, Sums> = accounts
        .iter()
        .map(|a| {
            (
                a.clone(),
                Sums {
                    accounts: 1,
                    ..Sums::default()
                },
            )
        })
        .collect();
    for chunk in accounts.chunks(200) {
        let rows = records::aggregate(
            "opportunity",
            &opportunity_query(p)
                .group_by("account_id")
                .filter("account_id", Op::In, chunk),
        )?;
        for r in &rows {
            let account = r.get("account_id").and_then(Value::as_str);
            if let Some(s) = account.and_then(|a| out.get_mut(a)) {
                fold(s, [r]);
            }
        }
    }
    Ok(out)
}
