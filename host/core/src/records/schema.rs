//! Object schemas: the standard CRM objects (described here, in code) and the
//! tenant's custom objects (stored as JSON field lists). A schema says, per field,
//! its type, whether it is required, its enum values and what it references; every
//! write is validated against it and every filter, sort and aggregate names fields
//! from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Longest text field value unless the field says otherwise.
pub const DEFAULT_MAX_TEXT: usize = 1_000;
/// Most fields a custom object may have.
pub const MAX_FIELDS: usize = 200;

/// The type of a field and how its values look in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// A string (trimmed; `max_length` characters).
    Text,
    /// A long string (up to 100,000 characters).
    LongText,
    /// A number (JSON number).
    Number,
    /// A whole number.
    Integer,
    /// A percentage, 0–100.
    Percent,
    /// `true` / `false`.
    Boolean,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// A point in time, RFC 3339 (stored in UTC).
    Datetime,
    /// An email address.
    Email,
    /// An `http(s)://` URL.
    Url,
    /// A phone number (digits, spaces, `+-()./`).
    Phone,
    /// One of `values`.
    Enum,
    /// An ISO 4217 currency code (`EUR`).
    Currency,
    /// An ISO 3166-1 alpha-2 country code (`DE`).
    Country,
    /// An amount with its currency: `{ "value": 1250.5, "currency": "EUR" }`.
    Money,
    /// The id of a record of the object named by `reference`.
    Reference,
    /// The id of a user of the tenant.
    User,
}

impl FieldType {
    /// Whether values compare and aggregate as numbers.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Number | FieldType::Integer | FieldType::Percent | FieldType::Money
        )
    }
}

/// One field of an object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDef {
    /// Field name: `^[a-z][a-z0-9_]{0,62}$`.
    pub name: String,
    /// Human label.
    #[serde(default)]
    pub label: String,
    /// Type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
    /// Must be present on create and may not be cleared.
    #[serde(default)]
    pub required: bool,
    /// Allowed values (enum fields).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
    /// Referenced object (reference fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Longest value (text fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
    /// Smallest value (numeric fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest value (numeric fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// An object's schema.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjectSchema {
    /// Object name (`account`, or a custom object's name).
    pub name: String,
    /// Human label.
    pub label: String,
    /// Whether it is one of the standard objects.
    pub standard: bool,
    /// Fields in declaration order.
    pub fields: Vec<FieldDef>,
}

impl ObjectSchema {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Field names, for "did you mean" hints and error messages.
    pub fn field_names(&self) -> Vec<&str> {
        self.fields.iter().map(|f| f.name.as_str()).collect()
    }
}

fn f(name: &str, label: &str, field_type: FieldType) -> FieldDef {
    FieldDef {
        name: name.into(),
        label: label.into(),
        field_type,
        required: false,
        values: Vec::new(),
        reference: None,
        max_length: None,
        min: None,
        max: None,
    }
}

impl FieldDef {
    fn required(mut self) -> Self {
        self.required = true;
        self
    }
    fn values(mut self, values: &[&str]) -> Self {
        self.values = values.iter().map(|v| (*v).to_string()).collect();
        self
    }
    fn references(mut self, object: &str) -> Self {
        self.reference = Some(object.into());
        self
    }
    fn max_len(mut self, n: usize) -> Self {
        self.max_length = Some(n);
        self
    }
    fn range(mut self, min: f64, max: Option<f64>) -> Self {
        self.min = Some(min);
        self.max = max;
        self
    }
}

/// Opportunity stages, in pipeline order.
pub const OPPORTUNITY_STAGES: &[&str] = &[
    "prospecting",
    "qualification",
    "proposal",
    "negotiation",
    "closed_won",
    "closed_lost",
];

/// The standard objects every tenant has.
pub fn standard_objects() -> Vec<ObjectSchema> {
    use FieldType::*;
    let object = |name: &str, label: &str, fields: Vec<FieldDef>| ObjectSchema {
        name: name.into(),
        label: label.into(),
        standard: true,
        fields,
    };
    vec![
        object(
            "account",
            "Account",
            vec![
                f("name", "Name", Text).required().max_len(200),
                f("type", "Type", Enum).values(&["prospect", "customer", "partner", "competitor", "other"]),
                f("industry", "Industry", Enum).values(&[
                    "technology",
                    "manufacturing",
                    "finance",
                    "healthcare",
                    "retail",
                    "energy",
                    "public_sector",
                    "education",
                    "other",
                ]),
                f("annual_revenue", "Annual revenue", Number).range(0.0, None),
                f("employees", "Employees", Integer).range(0.0, None),
                f("country", "Country", Country),
                f("city", "City", Text).max_len(100),
                f("website", "Website", Url),
                f("phone", "Phone", Phone),
            ],
        ),
        object(
            "contact",
            "Contact",
            vec![
                f("first_name", "First name", Text).max_len(100),
                f("last_name", "Last name", Text).required().max_len(100),
                f("email", "Email", Email),
                f("phone", "Phone", Phone),
                f("title", "Title", Text).max_len(100),
                f("account_id", "Account", Reference).references("account"),
            ],
        ),
        object(
            "lead",
            "Lead",
            vec![
                f("first_name", "First name", Text).max_len(100),
                f("last_name", "Last name", Text).required().max_len(100),
                f("company", "Company", Text).max_len(200),
                f("email", "Email", Email),
                f("phone", "Phone", Phone),
                f("status", "Status", Enum).values(&["new", "working", "qualified", "disqualified"]),
                f("source", "Source", Enum).values(&["web", "referral", "event", "partner", "outbound", "other"]),
                f("country", "Country", Country),
            ],
        ),
        object(
            "opportunity",
            "Opportunity",
            vec![
                f("name", "Name", Text).required().max_len(200),
                f("account_id", "Account", Reference).references("account"),
                f("stage", "Stage", Enum).required().values(OPPORTUNITY_STAGES),
                f("amount", "Amount", Money).range(0.0, None),
                f("close_date", "Close date", Date).required(),
                f("probability", "Probability", Percent).range(0.0, Some(100.0)),
                f("forecast_category", "Forecast category", Enum).values(&[
                    "pipeline",
                    "best_case",
                    "commit",
                    "closed",
                    "omitted",
                ]),
                f("type", "Type", Enum).values(&["new_business", "expansion", "renewal"]),
                f("discount", "Discount", Percent).range(0.0, Some(100.0)),
                // Kept by an approvals plugin: where the opportunity's approval stands.
                f("approval_status", "Approval status", Enum).values(&["pending", "approved", "rejected", "recalled"]),
            ],
        ),
        object(
            "activity",
            "Activity",
            vec![
                f("subject", "Subject", Text).required().max_len(200),
                f("type", "Type", Enum)
                    .required()
                    .values(&["call", "email", "meeting", "task"]),
                f("status", "Status", Enum).values(&["open", "done"]),
                f("due_date", "Due date", Date),
                f("notes", "Notes", LongText),
                f("account_id", "Account", Reference).references("account"),
                f("contact_id", "Contact", Reference).references("contact"),
                f("opportunity_id", "Opportunity", Reference).references("opportunity"),
            ],
        ),
    ]
}

/// Whether `name` is a valid object or field name.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Names a custom field may not take: they are record metadata.
pub const RESERVED_FIELDS: &[&str] = &[
    "id",
    "object",
    "owner_id",
    "version",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "deleted_at",
];

/// Validate a custom object definition; returns every problem as (path, message).
pub fn check_custom_object(
    name: &str,
    fields: &[FieldDef],
    known_objects: &BTreeMap<String, ()>,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if !is_identifier(name) {
        problems.push(("name".into(), "must match ^[a-z][a-z0-9_]{0,62}$".into()));
    }
    if standard_objects().iter().any(|o| o.name == name) {
        problems.push(("name".into(), format!("`{name}` is a standard object")));
    }
    if fields.is_empty() {
        problems.push(("fields".into(), "a custom object needs at least one field".into()));
    }
    if fields.len() > MAX_FIELDS {
        problems.push(("fields".into(), format!("at most {MAX_FIELDS} fields")));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, field) in fields.iter().enumerate() {
        let at = |k: &str| format!("fields[{i}].{k}");
        if !is_identifier(&field.name) {
            problems.push((at("name"), "must match ^[a-z][a-z0-9_]{0,62}$".into()));
        } else if RESERVED_FIELDS.contains(&field.name.as_str()) {
            problems.push((at("name"), format!("`{}` is reserved for record metadata", field.name)));
        } else if !seen.insert(field.name.as_str()) {
            problems.push((at("name"), format!("`{}` is declared twice", field.name)));
        }
        if field.label.chars().count() > 200 {
            problems.push((at("label"), "at most 200 characters".into()));
        }
        match field.field_type {
            FieldType::Enum => {
                if field.values.is_empty() || field.values.len() > 500 {
                    problems.push((at("values"), "an enum needs 1–500 values".into()));
                }
                let mut vs = std::collections::BTreeSet::new();
                for v in &field.values {
                    if v.is_empty() || v.chars().count() > 100 || !vs.insert(v) {
                        problems.push((at("values"), format!("{v:?} is empty, too long or repeated")));
                    } else if v.chars().any(char::is_control) {
                        // Record values are checked against these, and text fields
                        // refuse control characters too (PostgreSQL's jsonb cannot hold
                        // U+0000 at all).
                        problems.push((at("values"), format!("{v:?} contains a control character")));
                    }
                }
            }
            _ if !field.values.is_empty() => problems.push((at("values"), "only enum fields have values".into())),
            _ => {}
        }
        match (&field.field_type, &field.reference) {
            (FieldType::Reference, None) => problems.push((at("reference"), "a reference names its object".into())),
            (FieldType::Reference, Some(target)) => {
                let known = standard_objects().iter().any(|o| &o.name == target)
                    || known_objects.contains_key(target)
                    || target == name;
                if !known {
                    problems.push((at("reference"), format!("no object named `{target}`")));
                }
            }
            (_, Some(_)) => problems.push((at("reference"), "only reference fields reference objects".into())),
            _ => {}
        }
        if field.max_length.is_some_and(|n| n == 0 || n > 100_000) {
            problems.push((at("max_length"), "must be between 1 and 100000".into()));
        }
        if let (Some(min), Some(max)) = (field.min, field.max)
            && min > max
        {
            problems.push((at("min"), "must not exceed max".into()));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_objects_are_well_formed() {
        let known = BTreeMap::new();
        for o in standard_objects() {
            // Checked with the custom-object rules, minus the "standard name" rule.
            let problems: Vec<_> = check_custom_object(&o.name, &o.fields, &known)
                .into_iter()
                .filter(|(p, _)| p != "name")
                .collect();
            assert!(problems.is_empty(), "{}: {problems:?}", o.name);
        }
    }

    #[test]
    fn custom_object_problems_are_all_reported() {
        let bad = vec![
            FieldDef {
                name: "Bad".into(),
                ..f("x", "", FieldType::Text)
            },
            f("id", "", FieldType::Text),
            FieldDef {
                values: vec![],
                ..f("e", "", FieldType::Enum)
            },
            f("r", "", FieldType::Reference),
            FieldDef {
                reference: Some("nowhere".into()),
                ..f("r2", "", FieldType::Reference)
            },
            f("dup", "", FieldType::Text),
            f("dup", "", FieldType::Number),
            FieldDef {
                values: vec!["ok".into(), "nul\u{0}".into()],
                ..f("e2", "", FieldType::Enum)
            },
        ];
        let problems = check_custom_object("account", &bad, &BTreeMap::new());
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        for expected in [
            "name",
            "fields[0].name",
            "fields[1].name",
            "fields[2].values",
            "fields[3].reference",
            "fields[4].reference",
            "fields[6].name",
            "fields[7].values",
        ] {
            assert!(paths.contains(&expected), "{expected} missing from {problems:?}");
        }
    }
}
