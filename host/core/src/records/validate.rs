//! Validation and normalisation of record field values against an object schema.
//! Every problem is reported at once, each with its field path; values come out
//! normalised (trimmed text, upper-case codes, UTC times) so stored data is uniform.

use serde_json::{Map, Value};

use super::schema::{DEFAULT_MAX_TEXT, FieldDef, FieldType, ObjectSchema};
use crate::problem::FieldProblem;

/// Whether a write creates a record or patches one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Every required field must be present and non-null.
    Create,
    /// Only the given fields change; `null` clears a field (not a required one).
    Patch,
}

/// Reference values found while validating, to check for existence afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefCheck {
    /// Field path (for the error).
    pub field: String,
    /// Referenced object, or `None` for a user reference.
    pub object: Option<String>,
    /// The id given.
    pub id: String,
}

/// The outcome of validating one `fields` object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validated {
    /// Normalised values; in patch mode `Null` means "clear".
    pub values: Map<String, Value>,
    /// Every problem found.
    pub problems: Vec<FieldProblem>,
    /// References to check exist.
    pub references: Vec<RefCheck>,
}

fn problem(path: &str, message: impl Into<String>) -> FieldProblem {
    FieldProblem {
        field: path.to_string(),
        message: message.into(),
    }
}

/// Validate `input` (the request's `fields` object) against `schema`. `prefix` is
/// prepended to field paths (`fields.` or `records[3].fields.`).
pub fn validate(schema: &ObjectSchema, input: &Value, mode: Mode, prefix: &str) -> Validated {
    let mut out = Validated::default();
    let Some(obj) = input.as_object() else {
        out.problems.push(problem(
            prefix.trim_end_matches('.'),
            "must be a JSON object of field values",
        ));
        return out;
    };
    for (name, value) in obj {
        let path = format!("{prefix}{name}");
        let Some(def) = schema.field(name) else {
            let hint = suggestion(name, &schema.field_names());
            out.problems.push(problem(
                &path,
                format!("`{name}` is not a field of {}{hint}", schema.name),
            ));
            continue;
        };
        if value.is_null() {
            if def.required {
                out.problems.push(problem(&path, "is required and cannot be cleared"));
            } else if mode == Mode::Patch {
                out.values.insert(name.clone(), Value::Null);
            }
            continue;
        }
        match normalise(def, value, &path, &mut out.references) {
            Ok(Some(v)) => {
                out.values.insert(name.clone(), v);
            }
            Ok(None) if def.required => out.problems.push(problem(&path, "is required and cannot be empty")),
            Ok(None) => {
                if mode == Mode::Patch {
                    out.values.insert(name.clone(), Value::Null);
                }
            }
            Err(message) => out.problems.push(problem(&path, message)),
        }
    }
    if mode == Mode::Create {
        for def in schema.fields.iter().filter(|d| d.required) {
            let present = obj.get(&def.name).is_some_and(|v| !v.is_null());
            if !present {
                out.problems
                    .push(problem(&format!("{prefix}{}", def.name), "is required"));
            }
        }
    }
    out
}

fn suggestion(name: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(name, c), c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// Normalise one value; `Ok(None)` means "empty" (an empty string).
fn normalise(def: &FieldDef, value: &Value, path: &str, refs: &mut Vec<RefCheck>) -> Result<Option<Value>, String> {
    use FieldType::*;
    match def.field_type {
        Text | LongText => {
            let max = def.max_length.unwrap_or(if def.field_type == LongText {
                100_000
            } else {
                DEFAULT_MAX_TEXT
            });
            let s = text(value, max)?;
            Ok(s.map(Value::String))
        }
        Number | Integer | Percent => number(def, value).map(Some),
        Boolean => value
            .as_bool()
            .map(|b| Some(Value::Bool(b)))
            .ok_or_else(|| "must be true or false".to_string()),
        Date => {
            let s = string(value)?;
            let format = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(s.trim(), &format).map_err(|_| "must be a date as YYYY-MM-DD".to_string())?;
            Ok(Some(Value::String(s.trim().to_string())))
        }
        Datetime => {
            let s = string(value)?;
            let t = crate::store::time::parse(s.trim()).ok_or("must be an RFC 3339 time, e.g. 2026-11-24T09:30:00Z")?;
            Ok(Some(Value::String(crate::store::time::format(t))))
        }
        Email => {
            let Some(s) = text(value, 254)? else { return Ok(None) };
            let (local, domain) = s.rsplit_once('@').ok_or("must be an email address")?;
            let ok = !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(|c| c.is_whitespace() || c == '<' || c == '>');
            if !ok {
                return Err("must be an email address".into());
            }
            Ok(Some(Value::String(format!("{local}@{}", domain.to_ascii_lowercase()))))
        }
        Url => {
            let Some(s) = text(value, 2_000)? else { return Ok(None) };
            let lower = s.to_ascii_lowercase();
            let rest = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://"));
            if rest.is_none_or(str::is_empty) || s.chars().any(char::is_whitespace) {
                return Err("must be an http:// or https:// URL".into());
            }
            Ok(Some(Value::String(s)))
        }
        Phone => {
            let Some(s) = text(value, 32)? else { return Ok(None) };
            let digits = s.chars().filter(char::is_ascii_digit).count();
            let ok = digits >= 3 && s.chars().all(|c| c.is_ascii_digit() || " +-()./".contains(c));
            if !ok {
                return Err("must be a phone number (digits, spaces and + - ( ) . /)".into());
            }
            Ok(Some(Value::String(s)))
        }
        Enum => {
            let s = string(value)?;
            if def.values.iter().any(|v| v == s) {
                Ok(Some(Value::String(s.to_string())))
            } else {
                Err(format!("must be one of: {}", def.values.join(", ")))
            }
        }
        Currency => currency(value).map(Some),
        Country => {
            let s = string(value)?.trim().to_ascii_uppercase();
            if super::codes::is_country(&s) {
                Ok(Some(Value::String(s)))
            } else {
                Err("must be an ISO 3166-1 alpha-2 country code, e.g. DE".into())
            }
        }
        Money => {
            let obj = value
                .as_object()
                .ok_or(r#"must be an amount like {"value": 1250.5, "currency": "EUR"}"#)?;
            if let Some(extra) = obj.keys().find(|k| *k != "value" && *k != "currency") {
                return Err(format!(
                    "unexpected member `{extra}`: an amount has only value and currency"
                ));
            }
            let v = obj.get("value").ok_or("needs a `value`")?;
            let c = obj.get("currency").ok_or("needs a `currency`")?;
            let v = number(def, v).map_err(|e| format!("value {e}"))?;
            let c = currency(c).map_err(|e| format!("currency {e}"))?;
            Ok(Some(serde_json::json!({ "value": v, "currency": c })))
        }
        Reference | User => {
            let s = string(value)?.trim().to_string();
            if s.len() != 26 || !s.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err("must be a record id".into());
            }
            refs.push(RefCheck {
                field: path.to_string(),
                object: if def.field_type == User {
                    None
                } else {
                    def.reference.clone()
                },
                id: s.clone(),
            });
            Ok(Some(Value::String(s)))
        }
    }
}

fn string(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| "must be a string".to_string())
}

fn text(value: &Value, max: usize) -> Result<Option<String>, String> {
    let s = string(value)?.trim();
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r') {
        return Err("must not contain control characters".into());
    }
    Ok((!s.is_empty()).then(|| s.to_string()))
}

fn number(def: &FieldDef, value: &Value) -> Result<Value, String> {
    let n = value.as_f64().filter(|n| n.is_finite()).ok_or("must be a number")?;
    let (min, max) = match def.field_type {
        FieldType::Percent => (Some(def.min.unwrap_or(0.0)), Some(def.max.unwrap_or(100.0))),
        _ => (def.min, def.max),
    };
    if let Some(min) = min
        && n < min
    {
        return Err(format!("must be at least {min}"));
    }
    if let Some(max) = max
        && n > max
    {
        return Err(format!("must be at most {max}"));
    }
    if def.field_type == FieldType::Integer {
        if n.fract() != 0.0 || n.abs() > 9_007_199_254_740_991.0 {
            return Err("must be a whole number".into());
        }
        return Ok(Value::from(n as i64));
    }
    Ok(value.clone())
}

fn currency(value: &Value) -> Result<Value, String> {
    let s = string(value)?.trim().to_ascii_uppercase();
    if super::codes::is_currency(&s) {
        Ok(Value::String(s))
    } else {
        Err("must be an ISO 4217 currency code, e.g. EUR".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::schema::standard_objects;
    use serde_json::json;

    fn opportunity() -> ObjectSchema {
        standard_objects()
            .into_iter()
            .find(|o| o.name == "opportunity")
            .unwrap()
    }

    #[test]
    fn valid_create_is_normalised() {
        let v = validate(
            &opportunity(),
            &json!({"name": "  Big deal ", "stage": "proposal", "close_date": "2027-03-31",
                    "amount": {"value": 125000.5, "currency": "eur"}, "probability": 40}),
            Mode::Create,
            "fields.",
        );
        assert!(v.problems.is_empty(), "{:?}", v.problems);
        assert_eq!(v.values["name"], "Big deal");
        assert_eq!(v.values["amount"], json!({"value": 125000.5, "currency": "EUR"}));
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let v = validate(
            &opportunity(),
            &json!({"stage": "won", "close_date": "31/03/2027", "amount": {"value": -1, "currency": "EURO"},
                    "probability": 140, "stgae": "x", "account_id": "nope"}),
            Mode::Create,
            "fields.",
        );
        let fields: Vec<&str> = v.problems.iter().map(|p| p.field.as_str()).collect();
        for expected in [
            "fields.stage",
            "fields.close_date",
            "fields.amount",
            "fields.probability",
            "fields.stgae",
            "fields.account_id",
            "fields.name",
        ] {
            assert!(fields.contains(&expected), "{expected} missing: {:?}", v.problems);
        }
        let typo = v.problems.iter().find(|p| p.field == "fields.stgae").unwrap();
        assert!(typo.message.contains("did you mean `stage`"), "{}", typo.message);
    }

    #[test]
    fn patch_clears_optional_fields_but_not_required_ones() {
        let v = validate(
            &opportunity(),
            &json!({"probability": null, "name": null}),
            Mode::Patch,
            "fields.",
        );
        assert_eq!(v.values.get("probability"), Some(&Value::Null));
        assert_eq!(v.problems.len(), 1);
        assert_eq!(v.problems[0].field, "fields.name");
    }

    #[test]
    fn references_are_collected_for_an_existence_check() {
        let v = validate(
            &opportunity(),
            &json!({"account_id": "01ARZ3NDEKTSV4RRFFQ69G5FAV"}),
            Mode::Patch,
            "",
        );
        assert_eq!(v.references[0].object.as_deref(), Some("account"));
    }
}
