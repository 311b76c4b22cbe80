//! CRM records of the caller's tenant (capability `[capabilities.records.<object>]`).
//!
//! Calls are limited by the manifest (declared objects and fields) and by the caller:
//! a call made for a user sees what that user may see; timers and events see every
//! record of the declared objects.
//!
//! ```no_run
//! use plinth_sdk::records::{self, Find, Op, Aggregate};
//! let open = records::find("opportunity", &Find::new().filter("stage", Op::In, ["proposal", "negotiation"]).sort_desc("amount").limit(20))?;
//! let by_stage = records::aggregate("opportunity", &Aggregate::new().group_by("stage").count().sum("amount"))?;
//! # Ok::<(), plinth_sdk::Error>(())
//! ```

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::__private::wit::plinth::plugin::records as wit;
use crate::Error;

/// A CRM record (with the fields the manifest declares).
///
/// ```
/// let r = plinth_sdk::records::Record {
///     id: "01J".into(), object: "account".into(), owner_id: "u1".into(), version: 1,
///     fields: serde_json::json!({"name": "Acme", "country": "DE"}).as_object().unwrap().clone(),
///     created_at: String::new(), updated_at: String::new(),
/// };
/// assert_eq!(r.field::<String>("country").as_deref(), Some("DE"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// Id.
    pub id: String,
    /// Object name.
    pub object: String,
    /// Owning user.
    pub owner_id: String,
    /// Version (for `update`'s expected version).
    pub version: u64,
    /// Field values.
    pub fields: Map<String, Value>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl Record {
    /// One field decoded into `T`; `None` if absent or of another shape.
    ///
    /// ```
    /// # let r = plinth_sdk::records::Record { id: "x".into(), object: "account".into(), owner_id: "u".into(), version: 1, fields: serde_json::json!({"employees": 12}).as_object().unwrap().clone(), created_at: String::new(), updated_at: String::new() };
    /// assert_eq!(r.field::<u32>("employees"), Some(12));
    /// ```
    pub fn field<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        self.fields
            .get(name)
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// All fields decoded into a struct.
    ///
    /// ```
    /// #[derive(serde::Deserialize)] struct Account { name: String }
    /// # let r = plinth_sdk::records::Record { id: "x".into(), object: "account".into(), owner_id: "u".into(), version: 1, fields: serde_json::json!({"name": "Acme"}).as_object().unwrap().clone(), created_at: String::new(), updated_at: String::new() };
    /// assert_eq!(r.fields_as::<Account>().unwrap().name, "Acme");
    /// ```
    pub fn fields_as<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_value(Value::Object(self.fields.clone())).map_err(|e| {
            Error::internal(format!(
                "{} {} does not have the expected fields: {e}",
                self.object, self.id
            ))
        })
    }
}

fn from_wit(r: wit::CrmRecord) -> Result<Record, Error> {
    let fields = match serde_json::from_str(&r.fields) {
        Ok(Value::Object(m)) => m,
        _ => {
            return Err(Error::internal(
                "the host returned record fields that are not a JSON object",
            ));
        }
    };
    Ok(Record {
        id: r.id,
        object: r.object,
        owner_id: r.owner_id,
        version: r.version,
        fields,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// Comparison of a filter.
///
/// ```
/// let f = plinth_sdk::records::Find::new().filter("annual_revenue", plinth_sdk::records::Op::Gte, 10_000_000);
/// # let _ = f;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// less than
    Lt,
    /// at most
    Lte,
    /// greater than
    Gt,
    /// at least
    Gte,
    /// one of (pass an array)
    In,
    /// text contains (case-insensitive)
    Contains,
    /// text starts with
    Prefix,
    /// `true`: field missing; `false`: present
    IsNull,
}

fn wit_op(op: Op) -> wit::Op {
    match op {
        Op::Eq => wit::Op::Eq,
        Op::Ne => wit::Op::Ne,
        Op::Lt => wit::Op::Lt,
        Op::Lte => wit::Op::Lte,
        Op::Gt => wit::Op::Gt,
        Op::Gte => wit::Op::Gte,
        Op::In => wit::Op::In,
        Op::Contains => wit::Op::Contains,
        Op::Prefix => wit::Op::Prefix,
        Op::IsNull => wit::Op::IsNull,
    }
}

fn filter(field: &str, op: Op, value: impl Serialize) -> wit::Filter {
    let value = serde_json::to_string(&value).unwrap_or_else(|_| "null".into());
    wit::Filter {
        field: field.to_string(),
        op: wit_op(op),
        value,
    }
}

/// What to find: filters, sort, fields, page.
///
/// ```
/// use plinth_sdk::records::{Find, Op};
/// let q = Find::new().filter("country", Op::In, ["DE", "AT", "CH"]).sort_asc("name").fields(&["name", "country"]).limit(100);
/// # let _ = q;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Find {
    query: Option<wit::FindQuery>,
}

impl Find {
    /// Everything, first page of 50.
    ///
    /// ```
    /// let _ = plinth_sdk::records::Find::new();
    /// ```
    pub fn new() -> Self {
        Find::default()
    }

    fn q(&mut self) -> &mut wit::FindQuery {
        self.query.get_or_insert_with(|| wit::FindQuery {
            filters: vec![],
            sort: vec![],
            fields: vec![],
            cursor: None,
            limit: 0,
        })
    }

    /// Add a filter (all must hold).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Find::new().filter("stage", plinth_sdk::records::Op::Eq, "proposal");
    /// ```
    pub fn filter(mut self, field: &str, op: Op, value: impl Serialize) -> Self {
        self.q().filters.push(filter(field, op, value));
        self
    }

    /// Sort ascending by `field` (missing values first).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Find::new().sort_asc("name");
    /// ```
    pub fn sort_asc(mut self, field: &str) -> Self {
        self.q().sort.push(wit::Sort {
            field: field.into(),
            descending: false,
        });
        self
    }

    /// Sort descending by `field` (missing values last).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Find::new().sort_desc("amount");
    /// ```
    pub fn sort_desc(mut self, field: &str) -> Self {
        self.q().sort.push(wit::Sort {
            field: field.into(),
            descending: true,
        });
        self
    }

    /// Return only these fields.
    ///
    /// ```
    /// let _ = plinth_sdk::records::Find::new().fields(&["name"]);
    /// ```
    pub fn fields(mut self, names: &[&str]) -> Self {
        self.q().fields = names.iter().map(|s| (*s).to_string()).collect();
        self
    }

    /// Page size, 1–500.
    ///
    /// ```
    /// let _ = plinth_sdk::records::Find::new().limit(500);
    /// ```
    pub fn limit(mut self, limit: u32) -> Self {
        self.q().limit = limit;
        self
    }

    /// Continue after a previous page.
    ///
    /// ```
    /// let _ = plinth_sdk::records::Find::new().cursor(Some("abc".into()));
    /// ```
    pub fn cursor(mut self, cursor: Option<String>) -> Self {
        self.q().cursor = cursor;
        self
    }
}

/// A page of records.
///
/// ```
/// let p = plinth_sdk::records::Page { records: vec![], next_cursor: None };
/// assert!(p.records.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The records.
    pub records: Vec<Record>,
    /// Cursor of the next page, if any.
    pub next_cursor: Option<String>,
}

/// One record.
///
/// ```no_run
/// let account = plinth_sdk::records::get("account", "01JD…")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn get(object: &str, id: &str) -> Result<Record, Error> {
    from_wit(wit::get(object, id)?)
}

/// A page of records.
///
/// ```no_run
/// use plinth_sdk::records::{self, Find, Op};
/// let page = records::find("account", &Find::new().filter("country", Op::Eq, "DE"))?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn find(object: &str, query: &Find) -> Result<Page, Error> {
    let q = query.query.clone().unwrap_or(wit::FindQuery {
        filters: vec![],
        sort: vec![],
        fields: vec![],
        cursor: None,
        limit: 0,
    });
    let page = wit::find(object, &q)?;
    Ok(Page {
        records: page.records.into_iter().map(from_wit).collect::<Result<_, _>>()?,
        next_cursor: page.next_cursor,
    })
}

/// Call `each` for every matching record, page by page (bounded memory).
///
/// ```no_run
/// use plinth_sdk::records::{self, Find};
/// let mut n = 0;
/// records::for_each("account", Find::new().limit(500), |_account| { n += 1; Ok(()) })?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn for_each(object: &str, query: Find, mut each: impl FnMut(Record) -> Result<(), Error>) -> Result<(), Error> {
    let mut query = query;
    loop {
        let page = find(object, &query)?;
        for r in page.records {
            each(r)?;
        }
        match page.next_cursor {
            Some(c) => query = query.cursor(Some(c)),
            None => return Ok(()),
        }
    }
}

/// An aggregate computed by the host in SQL.
///
/// ```
/// use plinth_sdk::records::{Aggregate, Op};
/// let a = Aggregate::new().group_by("stage").group_by("close_date:month").count().sum("amount").filter("stage", Op::Ne, "closed_lost");
/// # let _ = a;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Aggregate {
    group_by: Vec<String>,
    /// Each measure with its own filters (`when`).
    measures: Vec<(wit::Measure, Vec<wit::Filter>)>,
    filters: Vec<wit::Filter>,
}

impl Aggregate {
    /// No groups, no measures (= count).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Aggregate::new();
    /// ```
    pub fn new() -> Self {
        Aggregate::default()
    }

    /// Group by a field (`close_date:month` buckets dates by day, month, quarter, year).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Aggregate::new().group_by("owner_id");
    /// ```
    pub fn group_by(mut self, key: &str) -> Self {
        self.group_by.push(key.into());
        self
    }

    fn measure(mut self, function: wit::AggregateFn, field: Option<&str>) -> Self {
        self.measures.push((
            wit::Measure {
                function,
                field: field.map(str::to_string),
                alias: None,
            },
            Vec::new(),
        ));
        self
    }

    /// Name the last measure in the result rows (instead of `fn` or `fn_field`);
    /// needed when two measures share a function and field.
    ///
    /// ```
    /// let _ = plinth_sdk::records::Aggregate::new().sum("amount").named("pipeline");
    /// ```
    pub fn named(mut self, alias: &str) -> Self {
        if let Some((m, _)) = self.measures.last_mut() {
            m.alias = Some(alias.into());
        }
        self
    }

    /// Restrict the last measure to the records that also pass this filter (SQL
    /// `FILTER (WHERE …)`); call it again to add more, all must hold. The query's
    /// own filters still apply. This lets one pass over the records put, say, the
    /// open pipeline next to the amount won:
    ///
    /// ```
    /// use plinth_sdk::records::{Aggregate, Op};
    /// let _ = Aggregate::new()
    ///     .sum("amount").named("open").when("stage", Op::In, ["proposal", "negotiation"])
    ///     .sum("amount").named("won").when("stage", Op::Eq, "closed_won");
    /// ```
    ///
    /// Needs a host with `plinth:plugin@1.3.0` (declare `api = "^1.3"`).
    pub fn when(mut self, field: &str, op: Op, value: impl Serialize) -> Self {
        if let Some((_, only)) = self.measures.last_mut() {
            only.push(filter(field, op, value));
        }
        self
    }

    /// Count records (`count`).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Aggregate::new().count();
    /// ```
    pub fn count(self) -> Self {
        self.measure(wit::AggregateFn::Count, None)
    }

    /// Sum a numeric field (`sum_<field>`).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Aggregate::new().sum("amount");
    /// ```
    pub fn sum(self, field: &str) -> Self {
        self.measure(wit::AggregateFn::Sum, Some(field))
    }

    /// Average of a numeric field (`avg_<field>`).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Aggregate::new().avg("probability");
    /// ```
    pub fn avg(self, field: &str) -> Self {
        self.measure(wit::AggregateFn::Avg, Some(field))
    }

    /// Smallest value (`min_<field>`).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Aggregate::new().min("close_date");
    /// ```
    pub fn min(self, field: &str) -> Self {
        self.measure(wit::AggregateFn::Min, Some(field))
    }

    /// Largest value (`max_<field>`).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Aggregate::new().max("amount");
    /// ```
    pub fn max(self, field: &str) -> Self {
        self.measure(wit::AggregateFn::Max, Some(field))
    }

    /// Number of distinct values (`count_distinct_<field>`).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Aggregate::new().count_distinct("account_id");
    /// ```
    pub fn count_distinct(self, field: &str) -> Self {
        self.measure(wit::AggregateFn::CountDistinct, Some(field))
    }

    /// Add a filter.
    ///
    /// ```
    /// let _ = plinth_sdk::records::Aggregate::new().filter("stage", plinth_sdk::records::Op::Eq, "closed_won");
    /// ```
    pub fn filter(mut self, field: &str, op: Op, value: impl Serialize) -> Self {
        self.filters.push(filter(field, op, value));
        self
    }
}

/// Run an aggregate; one JSON object per group (`{"stage": "proposal", "count": 3}`).
///
/// ```no_run
/// use plinth_sdk::records::{self, Aggregate};
/// for row in records::aggregate("opportunity", &Aggregate::new().group_by("stage").sum("amount"))? {
///     plinth_sdk::info!("{} {}", row["stage"], row["sum_amount"]);
/// }
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn aggregate(object: &str, query: &Aggregate) -> Result<Vec<Map<String, Value>>, Error> {
    // Plain measures go through `aggregate` (any 1.1+ host); per-measure filters
    // need `aggregate-where` (1.3+).
    let rows = if query.measures.iter().all(|(_, only)| only.is_empty()) {
        wit::aggregate(
            object,
            &wit::AggregateQuery {
                group_by: query.group_by.clone(),
                measures: query.measures.iter().map(|(m, _)| m.clone()).collect(),
                filters: query.filters.clone(),
            },
        )?
    } else {
        wit::aggregate_where(
            object,
            &wit::AggregateWhereQuery {
                group_by: query.group_by.clone(),
                measures: query
                    .measures
                    .iter()
                    .map(|(m, only)| wit::MeasureWhere {
                        measure: m.clone(),
                        filters: only.clone(),
                    })
                    .collect(),
                filters: query.filters.clone(),
            },
        )?
    };
    json_rows(rows, "an aggregate")
}

fn json_rows(rows: Vec<String>, what: &str) -> Result<Vec<Map<String, Value>>, Error> {
    rows.into_iter()
        .map(|row| match serde_json::from_str(&row) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(Error::internal(format!(
                "the host returned {what} row that is not a JSON object"
            ))),
        })
        .collect()
}

/// A query of a roll-up declared in the manifest (`[[rollups]]`): which of its
/// dimensions to group by, and conditions on them.
///
/// ```
/// use plinth_sdk::records::{Op, Rollup};
/// let q = Rollup::new()
///     .group_by("stage")
///     .filter("close_date:month", Op::Gte, "2026-10")
///     .filter("close_date:month", Op::Lt, "2027-01");
/// # let _ = q;
/// ```
#[derive(Debug, Clone, Default)]
pub struct Rollup {
    group_by: Vec<String>,
    filters: Vec<wit::Filter>,
}

impl Rollup {
    /// One grand total of the whole subtree.
    ///
    /// ```
    /// let _ = plinth_sdk::records::Rollup::new();
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Group by a dimension, by its declared name (`stage`, `close_date:month`).
    ///
    /// ```
    /// let _ = plinth_sdk::records::Rollup::new().group_by("stage").group_by("close_date:month");
    /// ```
    pub fn group_by(mut self, dimension: &str) -> Self {
        self.group_by.push(dimension.into());
        self
    }

    /// Keep only totals whose dimension passes this condition (a bucketed dimension
    /// compares its bucket text: `"2026-10"` for a month).
    ///
    /// ```
    /// use plinth_sdk::records::{Op, Rollup};
    /// let _ = Rollup::new().filter("stage", Op::In, ["proposal", "negotiation"]);
    /// ```
    pub fn filter(mut self, dimension: &str, op: Op, value: impl Serialize) -> Self {
        self.filters.push(filter(dimension, op, value));
        self
    }
}

/// Read roll-up `name` for the subtree of `group`: the records shared with the group
/// or any group below it that the caller may see, counted (`count`) and summed
/// (`sum_<field>`) per group-by values. Declare the roll-up in `plugin.toml`:
///
/// ```toml
/// [[rollups]]
/// name = "pipeline"
/// object = "opportunity"
/// dimensions = ["stage", "close_date:month"]
/// sums = ["amount"]
/// ```
///
/// The host keeps its totals current on every record, share and group change, so
/// for a caller who sees the whole subtree (admins, calls with no user, members of
/// the group or an ancestor) this costs the same for ten thousand groups as for one.
///
/// ```no_run
/// use plinth_sdk::records::{self, Rollup};
/// for row in records::rollup("pipeline", "01JGROUP…", &Rollup::new().group_by("stage"))? {
///     plinth_sdk::info!("{} {} {}", row["stage"], row["count"], row["sum_amount"]);
/// }
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
///
/// Needs a host with `plinth:plugin@1.4.0` (declare `api = "^1.4"`).
pub fn rollup(name: &str, group: &str, query: &Rollup) -> Result<Vec<Map<String, Value>>, Error> {
    let rows = wit::rollup(
        name,
        group,
        &wit::RollupQuery {
            group_by: query.group_by.clone(),
            filters: query.filters.clone(),
        },
    )?;
    json_rows(rows, "a roll-up")
}

/// Create a record. `owner_id` defaults to the calling user (timers and events must give one).
///
/// ```no_run
/// let r = plinth_sdk::records::create("account", &serde_json::json!({"name": "Acme", "country": "DE"}), None)?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn create(object: &str, fields: &impl Serialize, owner_id: Option<&str>) -> Result<Record, Error> {
    let fields = serde_json::to_string(fields)?;
    from_wit(wit::create(object, &fields, owner_id)?)
}

/// Change fields (`null` clears one); with `expected_version`, 409 conflict if it moved on.
///
/// ```no_run
/// let r = plinth_sdk::records::update("account", "01JD…", &serde_json::json!({"city": "Berlin"}), Some(3))?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn update(object: &str, id: &str, fields: &impl Serialize, expected_version: Option<u64>) -> Result<Record, Error> {
    let fields = serde_json::to_string(fields)?;
    from_wit(wit::update(object, id, &fields, expected_version)?)
}

/// Soft-delete a record.
///
/// ```no_run
/// plinth_sdk::records::delete("account", "01JD…", None)?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn delete(object: &str, id: &str, expected_version: Option<u64>) -> Result<(), Error> {
    Ok(wit::delete(object, id, expected_version)?)
}

/// Lock a record the caller may write: until [`unlock`], every write to it but this
/// plugin's is refused (REST answers `423 Locked` naming the plugin and `reason`; an
/// admin may override on purpose). Needs `lock = true` under
/// `[capabilities.records.<object>]` and the tenant's grant; a record another plugin
/// locked is a conflict. Locks go when the plugin is uninstalled. Needs a host with
/// `plinth:plugin@1.5.0` (`api = "^1.5"`).
///
/// ```no_run
/// plinth_sdk::records::lock("opportunity", "01JD…", "awaiting approval of a 25% discount")?;
/// // … approved: apply it, then let others write again.
/// plinth_sdk::records::unlock("opportunity", "01JD…")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn lock(object: &str, id: &str, reason: &str) -> Result<(), Error> {
    Ok(wit::lock(object, id, reason)?)
}

/// Narrow this call's reads (`get`, `find`, `aggregate`) of the objects granted
/// `records:<object>:read-as` to what the active user `user_id` may see — one report
/// per recipient, each showing only what that recipient may see; `None` ends the
/// narrowing. Writes are unaffected. Needs `read_as = true` under
/// `[capabilities.records.<object>]` and the tenant's grant; audited per use. Needs
/// `plinth:plugin@1.5.0`.
///
/// ```no_run
/// use plinth_sdk::records::{self, Find};
/// for recipient in ["user-1", "user-2"] {
///     records::read_as(Some(recipient))?;
///     let visible = records::find("opportunity", &Find::new())?;
///     // … render this recipient's report from `visible` …
/// }
/// records::read_as(None)?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn read_as(user_id: Option<&str>) -> Result<(), Error> {
    Ok(wit::read_as(user_id)?)
}

/// Release this plugin's lock on a record; `false` when it held none.
///
/// ```no_run
/// let released = plinth_sdk::records::unlock("opportunity", "01JD…")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn unlock(object: &str, id: &str) -> Result<bool, Error> {
    Ok(wit::unlock(object, id)?)
}
