//! A tiny SQL builder for queries whose shape depends on the request (filters,
//! sorts, aggregates): fixed SQL fragments plus numbered parameters. Every value a
//! caller supplies goes in as a bound parameter; only fragments written in this
//! crate are ever concatenated.

use sqlx::any::AnyArguments;
use sqlx::query::Query;

/// A bound parameter value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    Float(f64),
}

/// SQL text plus its parameters, in order.
#[derive(Debug, Default)]
pub(crate) struct Builder {
    pub(crate) sql: String,
    args: Vec<Arg>,
}

impl Builder {
    pub(crate) fn new(sql: &str) -> Self {
        Builder {
            sql: sql.to_string(),
            args: Vec::new(),
        }
    }

    /// Add a parameter and return its placeholder (`$n`).
    pub(crate) fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub(crate) fn text(&mut self, s: impl Into<String>) -> String {
        self.arg(Arg::Text(s.into()))
    }

    pub(crate) fn push(&mut self, fragment: &str) -> &mut Self {
        self.sql.push_str(fragment);
        self
    }

    pub(crate) fn query(&self) -> Query<'_, sqlx::Any, AnyArguments<'_>> {
        let mut q = sqlx::query(&self.sql);
        for a in &self.args {
            q = match a {
                Arg::Text(s) => q.bind(s.as_str()),
                Arg::Int(i) => q.bind(*i),
                Arg::Float(f) => q.bind(*f),
            };
        }
        q
    }
}

/// Read column `i` of a row as JSON, whatever its SQL type (aggregates and JSON
/// extraction return integers, reals or text depending on the data and database).
pub(crate) fn any_json(row: &sqlx::any::AnyRow, i: usize) -> serde_json::Value {
    use sqlx::Row;
    if let Ok(v) = row.try_get::<Option<i64>, _>(i) {
        return v.map_or(serde_json::Value::Null, serde_json::Value::from);
    }
    if let Ok(v) = row.try_get::<Option<f64>, _>(i) {
        return v
            .and_then(serde_json::Number::from_f64)
            .map_or(serde_json::Value::Null, serde_json::Value::Number);
    }
    if let Ok(v) = row.try_get::<Option<String>, _>(i) {
        return v.map_or(serde_json::Value::Null, serde_json::Value::String);
    }
    if let Ok(v) = row.try_get::<Option<bool>, _>(i) {
        return v.map_or(serde_json::Value::Null, serde_json::Value::Bool);
    }
    serde_json::Value::Null
}
