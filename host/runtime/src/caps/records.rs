//! `records`: CRM records for plugins, limited by the manifest (declared objects and
//! fields; writes only with `read-write`) and by the caller's visibility. Calls with
//! no user (timers, events) act for the plugin and see every record of the declared
//! objects — the tenant granted exactly that.

use serde_json::{Map, Value};

use super::{CapCtx, RECORD_META};
use crate::bindings::WitError;
use crate::bindings::plinth::plugin::records::{
    AggregateFn, AggregateQuery, AggregateWhereQuery, CrmRecord, Filter, FindQuery, Host, Measure as WitMeasure, Op,
    Page, RollupQuery,
};
use plinth_core::manifest::{Access, FieldSet, RecordAccess};
use plinth_core::records::query::{self, AggregateRequest, Cursor, Func, ListQuery, Measure};
use plinth_core::records::{self, Change, NewRecord, RecordError};
use plinth_core::store::records::Record;

/// Largest JSON argument accepted (fields, filter values).
const MAX_JSON: usize = 1024 * 1024;

fn to_wit(r: &Record, allowed: &FieldSet) -> CrmRecord {
    let fields: Map<String, Value> = r
        .data
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(k, _)| allowed.allows(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default();
    CrmRecord {
        id: r.id.clone(),
        object: r.object.clone(),
        owner_id: r.owner_id.clone(),
        version: u64::try_from(r.version).unwrap_or_default(),
        fields: Value::Object(fields).to_string(),
        created_at: r.created_at.clone(),
        updated_at: r.updated_at.clone(),
    }
}

fn op(o: Op) -> query::Op {
    match o {
        Op::Eq => query::Op::Eq,
        Op::Ne => query::Op::Ne,
        Op::Lt => query::Op::Lt,
        Op::Lte => query::Op::Lte,
        Op::Gt => query::Op::Gt,
        Op::Gte => query::Op::Gte,
        Op::In => query::Op::In,
        Op::Contains => query::Op::Contains,
        Op::Prefix => query::Op::Prefix,
        Op::IsNull => query::Op::IsNull,
    }
}

pub(super) fn parse_json(what: &str, s: &str) -> Result<Value, WitError> {
    if s.len() > MAX_JSON {
        return Err(WitError::Limit(format!("{what} is larger than {MAX_JSON} bytes")));
    }
    serde_json::from_str(s).map_err(|e| WitError::Invalid(format!("{what} is not JSON: {e}")))
}

/// The base field name of a filter/sort/group path (`amount.currency` → `amount`,
/// `close_date:month` → `close_date`).
fn base(field: &str) -> &str {
    field.split(['.', ':']).next().unwrap_or(field)
}

impl CapCtx {
    /// Check the manifest grants `object` (and write access when asked); returns the
    /// fields the plugin may touch.
    fn record_grant(&mut self, object: &str, write: bool) -> Result<FieldSet, WitError> {
        self.stats.host_calls += 1;
        Ok(self.granted_records(object, write)?.fields.clone())
    }

    /// The grant of `object` (with write access when asked), or `denied` — counted,
    /// but not as a host call: `sharing` checks one per share it is given.
    pub(super) fn granted_records(&mut self, object: &str, write: bool) -> Result<&RecordAccess, WitError> {
        let Some(grant) = self.grants.records.get(object) else {
            self.stats.denied += 1;
            return Err(WitError::Denied(format!(
                "records of `{object}` are not available: the manifest must declare [capabilities.records.{object}] and the tenant must grant it"
            )));
        };
        if write && grant.access != Access::ReadWrite {
            self.stats.denied += 1;
            return Err(WitError::Denied(format!(
                "the plugin may read `{object}` records but not write them"
            )));
        }
        Ok(grant)
    }

    /// The grant of `object` with the lock (`records:<object>:lock`), or `denied`.
    fn lock_grant(&mut self, object: &str) -> Result<(), WitError> {
        self.stats.host_calls += 1;
        if self.granted_records(object, false)?.lock {
            return Ok(());
        }
        self.stats.denied += 1;
        Err(WitError::Denied(format!(
            "the plugin may not lock `{object}` records: the manifest must declare `lock = true` under \
             [capabilities.records.{object}] and the tenant must grant `records:{object}:lock`"
        )))
    }

    pub(super) fn check_fields<'a>(
        &mut self,
        allowed: &FieldSet,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), WitError> {
        for name in names {
            let b = base(name);
            if !RECORD_META.contains(&b) && !allowed.allows(b) {
                self.stats.denied += 1;
                return Err(WitError::Denied(format!("the manifest does not declare field `{b}`")));
            }
        }
        Ok(())
    }

    fn record_error(&self, e: RecordError) -> WitError {
        self.wit_error(e)
    }

    fn filters(&mut self, allowed: &FieldSet, filters: Vec<Filter>) -> Result<Vec<query::Filter>, WitError> {
        // `shared_within` is a relation, not a field: it narrows what the caller sees.
        self.check_fields(
            allowed,
            filters
                .iter()
                .map(|f| f.field.as_str())
                .filter(|f| *f != query::SHARED_WITHIN),
        )?;
        filters
            .into_iter()
            .map(|f| {
                Ok(query::Filter {
                    field: f.field,
                    op: op(f.op),
                    value: parse_json("filter value", &f.value)?,
                })
            })
            .collect()
    }

    /// `aggregate` and `aggregate-where`: every field a group key, measure or filter
    /// (the query's or a measure's own) names must be readable under the grant.
    async fn run_aggregate(
        &mut self,
        object: String,
        group_by: Vec<String>,
        measures: Vec<(WitMeasure, Vec<Filter>)>,
        filters: Vec<Filter>,
    ) -> Result<Vec<String>, WitError> {
        let allowed = self.record_grant(&object, false)?;
        let filters = self.filters(&allowed, filters)?;
        self.check_fields(&allowed, group_by.iter().map(String::as_str))?;
        self.check_fields(&allowed, measures.iter().filter_map(|(m, _)| m.field.as_deref()))?;
        let mut resolved_measures = Vec::with_capacity(measures.len());
        for (m, only) in measures {
            resolved_measures.push(Measure {
                func: match m.function {
                    AggregateFn::Count => Func::Count,
                    AggregateFn::Sum => Func::Sum,
                    AggregateFn::Avg => Func::Avg,
                    AggregateFn::Min => Func::Min,
                    AggregateFn::Max => Func::Max,
                    AggregateFn::CountDistinct => Func::CountDistinct,
                },
                field: m.field,
                alias: m.alias,
                filters: self.filters(&allowed, only)?,
            });
        }
        let req = AggregateRequest {
            group_by,
            measures: resolved_measures,
            filters,
        };
        let db = self.services.db.clone();
        let schema = records::schema(&db, &self.caller.tenant_id, &object)
            .await
            .map_err(|e| self.record_error(e))?;
        let resolved = query::resolve_aggregate(&schema, &req).map_err(problems)?;
        let (rows, truncated) = records::aggregate(&db, &self.reader_of(&object), &object, &resolved)
            .await
            .map_err(|e| self.record_error(e))?;
        if truncated {
            return Err(WitError::Limit(format!(
                "more than {} groups; add filters",
                records::MAX_GROUPS
            )));
        }
        Ok(rows.into_iter().map(|r| Value::Object(r).to_string()).collect())
    }
}

fn problems(fields: Vec<plinth_core::problem::FieldProblem>) -> WitError {
    WitError::Invalid(plinth_core::problem::Problem::invalid("the query is not valid", fields).flattened())
}

impl Host for CapCtx {
    async fn get(&mut self, object: String, id: String) -> wasmtime::Result<Result<CrmRecord, WitError>> {
        let allowed = match self.record_grant(&object, false) {
            Ok(a) => a,
            Err(e) => return Ok(Err(e)),
        };
        let db = self.services.db.clone();
        let result = records::get(&db, &self.reader_of(&object), &object, &id, false).await;
        Ok(result.map(|r| to_wit(&r, &allowed)).map_err(|e| self.record_error(e)))
    }

    async fn find(&mut self, object: String, q: FindQuery) -> wasmtime::Result<Result<Page, WitError>> {
        let run = async {
            let allowed = self.record_grant(&object, false)?;
            let filters = self.filters(&allowed, q.filters)?;
            self.check_fields(&allowed, q.sort.iter().map(|s| s.field.as_str()))?;
            self.check_fields(&allowed, q.fields.iter().map(String::as_str))?;
            let db = self.services.db.clone();
            let schema = records::schema(&db, &self.caller.tenant_id, &object)
                .await
                .map_err(|e| self.record_error(e))?;
            let filters = query::resolve_filters(&schema, &filters, "filters").map_err(problems)?;
            let sort_text: Vec<String> = q
                .sort
                .iter()
                .map(|s| {
                    if s.descending {
                        format!("-{}", s.field)
                    } else {
                        s.field.clone()
                    }
                })
                .collect();
            let sort = query::parse_sort(&schema, &sort_text.join(",")).map_err(|p| WitError::Invalid(p.message))?;
            let limit = match q.limit {
                0 => query::DEFAULT_LIMIT,
                n if n > query::MAX_LIMIT => {
                    return Err(WitError::Invalid(format!("limit must be at most {}", query::MAX_LIMIT)));
                }
                n => n,
            };
            let cursor = match &q.cursor {
                Some(c) => Some(
                    Cursor::decode(c, sort.len())
                        .ok_or_else(|| WitError::Invalid("the cursor is not one this query returned".into()))?,
                ),
                None => None,
            };
            let list = ListQuery {
                filters,
                sort,
                fields: None,
                cursor,
                limit,
                ..ListQuery::default()
            };
            let (page, next) = records::list(&db, &self.reader_of(&object), &object, &list)
                .await
                .map_err(|e| self.record_error(e))?;
            let keep = if q.fields.is_empty() {
                allowed.clone()
            } else {
                FieldSet::Only(q.fields.iter().filter(|f| allowed.allows(f)).cloned().collect())
            };
            Ok(Page {
                records: page.iter().map(|r| to_wit(r, &keep)).collect(),
                next_cursor: next,
            })
        };
        Ok(run.await)
    }

    async fn aggregate(
        &mut self,
        object: String,
        q: AggregateQuery,
    ) -> wasmtime::Result<Result<Vec<String>, WitError>> {
        let measures = q.measures.into_iter().map(|m| (m, Vec::new())).collect();
        Ok(self.run_aggregate(object, q.group_by, measures, q.filters).await)
    }

    async fn rollup(
        &mut self,
        name: String,
        group: String,
        q: RollupQuery,
    ) -> wasmtime::Result<Result<Vec<String>, WitError>> {
        let run = async {
            let db = self.services.db.clone();
            let not_found = || {
                WitError::NotFound(format!(
                    "no roll-up `{name}`: declare it in the manifest's [[rollups]]; the tenant must grant the records it reads"
                ))
            };
            let mut conn = db
                .reader()
                .acquire()
                .await
                .map_err(|e| self.store_error(plinth_core::store::StoreError::from(e)))?;
            let declared =
                plinth_core::store::rollups::rollup(&mut conn, &self.caller.tenant_id, &self.plugin.id, &name).await;
            drop(conn);
            let rollup = declared.map_err(|e| self.store_error(e))?.ok_or_else(not_found)?;
            // The grant is checked on every call: it may have narrowed since the build.
            self.record_grant(&rollup.object, false)?;
            if q.filters.len() > records::rollup::MAX_FILTERS {
                return Err(WitError::Invalid(format!(
                    "at most {} filters",
                    records::rollup::MAX_FILTERS
                )));
            }
            let filters = q
                .filters
                .into_iter()
                .map(|f| {
                    Ok(query::Filter {
                        field: f.field,
                        op: op(f.op),
                        value: parse_json("filter value", &f.value)?,
                    })
                })
                .collect::<Result<Vec<_>, WitError>>()?;
            let rq = records::rollup::RollupQuery {
                group_by: q.group_by,
                filters,
            };
            let result = records::rollup::query(&db, &self.who(), &self.plugin.id, &name, &group, &rq)
                .await
                .map_err(|e| self.record_error(e))?;
            Ok(result.rows.into_iter().map(|r| Value::Object(r).to_string()).collect())
        };
        Ok(run.await)
    }

    async fn aggregate_where(
        &mut self,
        object: String,
        q: AggregateWhereQuery,
    ) -> wasmtime::Result<Result<Vec<String>, WitError>> {
        let measures = q.measures.into_iter().map(|m| (m.measure, m.filters)).collect();
        Ok(self.run_aggregate(object, q.group_by, measures, q.filters).await)
    }

    async fn create(
        &mut self,
        object: String,
        fields: String,
        owner_id: Option<String>,
    ) -> wasmtime::Result<Result<CrmRecord, WitError>> {
        let run = async {
            let allowed = self.record_grant(&object, true)?;
            let fields = parse_json("fields", &fields)?;
            let names: Vec<String> = fields
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            self.check_fields(&allowed, names.iter().map(String::as_str))?;
            if self.caller.user_id.is_none() && owner_id.is_none() {
                return Err(WitError::Invalid("a call with no user must name the owner-id".into()));
            }
            let db = self.services.db.clone();
            let created = records::create(
                &db,
                &self.writer_of(&object),
                &object,
                vec![NewRecord { fields, owner_id }],
                false,
            )
            .await
            .map_err(|e| self.record_error(e))?;
            created
                .first()
                .map(|r| to_wit(r, &allowed))
                .ok_or_else(|| WitError::Internal("create returned nothing".into()))
        };
        Ok(run.await)
    }

    async fn update(
        &mut self,
        object: String,
        id: String,
        fields: String,
        expected_version: Option<u64>,
    ) -> wasmtime::Result<Result<CrmRecord, WitError>> {
        let run = async {
            let allowed = self.record_grant(&object, true)?;
            let fields = parse_json("fields", &fields)?;
            let names: Vec<String> = fields
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            self.check_fields(&allowed, names.iter().map(String::as_str))?;
            let expected_version = expected_version.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
            let change = Change {
                id,
                fields,
                owner_id: None,
                expected_version,
            };
            let db = self.services.db.clone();
            let updated = records::update(&db, &self.writer_of(&object), &object, vec![change], false)
                .await
                .map_err(|e| self.record_error(e))?;
            updated
                .first()
                .map(|r| to_wit(r, &allowed))
                .ok_or_else(|| WitError::Internal("update returned nothing".into()))
        };
        Ok(run.await)
    }

    async fn delete(
        &mut self,
        object: String,
        id: String,
        expected_version: Option<u64>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let run = async {
            self.record_grant(&object, true)?;
            let expected = expected_version.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
            let db = self.services.db.clone();
            records::set_deleted(&db, &self.writer_of(&object), &object, &id, true, expected)
                .await
                .map(|_| ())
                .map_err(|e| self.record_error(e))
        };
        Ok(run.await)
    }

    async fn lock(&mut self, object: String, id: String, reason: String) -> wasmtime::Result<Result<(), WitError>> {
        let run = async {
            self.lock_grant(&object)?;
            let db = self.services.db.clone();
            records::lock(&db, &self.who(), &object, &id, &reason)
                .await
                .map(|_| ())
                .map_err(|e| self.record_error(e))
        };
        Ok(run.await)
    }

    async fn read_as(&mut self, user_id: Option<String>) -> wasmtime::Result<Result<(), WitError>> {
        self.stats.host_calls += 1;
        if !self.grants.records.values().any(|g| g.read_as) {
            self.stats.denied += 1;
            return Ok(Err(WitError::Denied(
                "reading as another user needs `read_as = true` under [capabilities.records.<object>] and the \
                 tenant's grant of `records:<object>:read-as`"
                    .into(),
            )));
        }
        let Some(user_id) = user_id else {
            self.read_as = None;
            return Ok(Ok(()));
        };
        let db = self.services.db.clone();
        let user = match db.user(&self.caller.tenant_id, &user_id).await {
            Ok(Some(u)) if u.status == "active" => u,
            Ok(_) => return Ok(Err(WitError::NotFound(format!("no active user {user_id}")))),
            Err(e) => return Ok(Err(self.store_error(e))),
        };
        let Ok(role) = user.role.parse::<plinth_core::manifest::Role>() else {
            return Ok(Err(WitError::Internal(format!("user {user_id} has no known role"))));
        };
        // Audited per use: who read as whom, and for which objects.
        let objects: Vec<&String> = self
            .grants
            .records
            .iter()
            .filter(|(_, g)| g.read_as)
            .map(|(o, _)| o)
            .collect();
        let after = serde_json::json!({ "user_id": user.id, "objects": objects });
        let event = plinth_core::store::audit::NewEvent {
            action: "record.read_as",
            entity_type: "user",
            entity_id: Some(&user.id),
            before: None,
            after: Some(&after),
        };
        let (tenant, actor) = (self.caller.tenant_id.clone(), self.actor());
        let recorded = async {
            let mut tx = db.writer().begin().await?;
            plinth_core::store::audit::append(&mut tx, db.dialect(), &tenant, &actor, event).await?;
            tx.commit().await?;
            Ok::<(), plinth_core::store::StoreError>(())
        };
        if let Err(e) = recorded.await {
            return Ok(Err(self.store_error(e)));
        }
        self.read_as = Some((user.id, role));
        Ok(Ok(()))
    }

    async fn unlock(&mut self, object: String, id: String) -> wasmtime::Result<Result<bool, WitError>> {
        let run = async {
            self.lock_grant(&object)?;
            let db = self.services.db.clone();
            records::unlock(&db, &self.who(), &object, &id)
                .await
                .map_err(|e| self.record_error(e))
        };
        Ok(run.await)
    }
}
