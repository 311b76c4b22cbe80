//! The REST filter syntax of record listings: `filter[field]=v` (equality) and
//! `filter[field][op]=v`, with `op` one of eq, ne, lt, lte, gt, gte, in, contains,
//! prefix, is_null. Parsed here, at the edge, into the records service's [`Filter`]s;
//! the service resolves them against the object's schema (`records::query`).

use serde_json::Value;

use plinth_core::problem::FieldProblem;
use plinth_core::records::query::{Filter, Op};

/// Parse `filter[field]=v`, `filter[field][op]=v` pairs from a query string.
pub fn filters_from_query(pairs: &[(String, String)]) -> Result<Vec<Filter>, Vec<FieldProblem>> {
    let mut filters = Vec::new();
    let mut problems = Vec::new();
    for (key, value) in pairs {
        let Some(rest) = key.strip_prefix("filter[") else {
            continue;
        };
        let mut parts = rest.split("][");
        let field = parts.next().unwrap_or("").trim_end_matches(']');
        let op = parts.next().map(|o| o.trim_end_matches(']'));
        let op = match op {
            None => Op::Eq,
            Some(o) => match Op::parse(o) {
                Some(op) => op,
                None => {
                    problems.push(FieldProblem::new(
                        key.clone(),
                        format!("unknown operator `{o}` (eq, ne, lt, lte, gt, gte, in, contains, prefix, is_null)"),
                    ));
                    continue;
                }
            },
        };
        if field.is_empty() || parts.next().is_some() {
            problems.push(FieldProblem {
                field: key.clone(),
                message: "write filter[field] or filter[field][op]".into(),
            });
            continue;
        }
        // `in` takes a comma list or a JSON array; something that starts like an
        // array but is not one is refused rather than read as a comma list.
        let value = if op == Op::In && value.starts_with('[') {
            match serde_json::from_str::<Value>(value) {
                Ok(list @ Value::Array(_)) => list,
                _ => {
                    problems.push(FieldProblem {
                        field: key.clone(),
                        message: "is not a JSON array (write [\"a\",\"b\"] or a,b)".into(),
                    });
                    continue;
                }
            }
        } else {
            Value::String(value.clone())
        };
        filters.push(Filter {
            field: field.to_string(),
            op,
            value,
        });
    }
    if problems.is_empty() {
        Ok(filters)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use plinth_core::records::query::resolve_filters;
    use plinth_core::records::schema::standard_objects;

    #[test]
    fn filters_parse_with_and_without_operators() {
        let pairs: Vec<(String, String)> = vec![
            ("filter[stage][in]".into(), "proposal,negotiation".into()),
            ("filter[amount][gte]".into(), "1000".into()),
            ("filter[amount.currency]".into(), "EUR".into()),
            ("filter[probability][is_null]".into(), "false".into()),
            ("filter[stage][in]".into(), r#"["closed_won","closed_lost"]"#.into()),
            ("limit".into(), "5".into()),
        ];
        let filters = filters_from_query(&pairs).unwrap();
        let ops: Vec<(&str, Op)> = filters.iter().map(|f| (f.field.as_str(), f.op)).collect();
        assert_eq!(
            ops,
            [
                ("stage", Op::In),
                ("amount", Op::Gte),
                ("amount.currency", Op::Eq),
                ("probability", Op::IsNull),
                ("stage", Op::In),
            ]
        );
        assert_eq!(
            filters[4].value,
            json!(["closed_won", "closed_lost"]),
            "a JSON list for `in`"
        );
        let opportunity = standard_objects()
            .into_iter()
            .find(|o| o.name == "opportunity")
            .unwrap();
        assert_eq!(resolve_filters(&opportunity, &filters, "filter").unwrap().len(), 5);
    }

    #[test]
    fn every_malformed_key_is_reported() {
        let pairs: Vec<(String, String)> = vec![
            ("filter[amount][about]".into(), "1".into()),
            ("filter[]".into(), "x".into()),
            ("filter[a][eq][b]".into(), "x".into()),
            ("filter[name][in]".into(), "[1,".into()),
            ("filter[name][in]".into(), r#"["a"]x"#.into()),
        ];
        let problems = filters_from_query(&pairs).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "filter[amount][about]",
                "filter[]",
                "filter[a][eq][b]",
                "filter[name][in]",
                "filter[name][in]"
            ]
        );
        assert!(
            problems[0].message.starts_with("unknown operator `about`"),
            "{problems:?}"
        );
    }
}
