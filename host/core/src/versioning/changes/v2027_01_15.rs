//! 2027-01-15: an opportunity's `amount` becomes a money object.
//!
//! | version | `fields` of an opportunity |
//! |---|---|
//! | 2027-01-15 (newest) | `"amount": {"value": 125000.0, "currency": "EUR"}` — no `currency` field |
//! | 2026-11-01 | `"amount": 125000.0, "currency": "EUR"` |
//!
//! Input rules for 2026-11-01 clients (create and update alike):
//! - `amount` (a number) must come with `currency` (a three-letter code); together they
//!   become `amount: {value, currency}`.
//! - `amount: null` clears the amount (`currency` may then be absent or null).
//! - `currency` without `amount` is refused (422 on `currency`). Upgrading it to a
//!   partial `amount: {currency}` would make an update replace the stored money object
//!   and silently drop its value, so the client is asked to send both.
//!
//! Other objects — including custom objects with fields named `amount` or `currency` —
//! pass through untouched.

use serde_json::{Map, Value};

use crate::versioning::change::{InputError, VersionChange};

/// The object this change applies to.
const OBJECT: &str = "opportunity";

/// Opportunity `amount` + `currency` → `amount: {value, currency}`.
#[derive(Debug, Clone, Copy)]
pub struct MoneyAmount;

impl VersionChange for MoneyAmount {
    fn introduced(&self) -> &'static str {
        "2027-01-15"
    }

    fn description(&self) -> &'static str {
        "Opportunity `amount` is a money object `{\"value\": 125000.0, \"currency\": \"EUR\"}`; \
         the separate `currency` field is gone. Filter and sort on `amount.value` and \
         `amount.currency` (2026-11-01 clients keep using `amount` and `currency`)."
    }

    fn record_out(&self, record: &mut Value) {
        if record.get("object").and_then(Value::as_str) != Some(OBJECT) {
            return;
        }
        let Some(fields) = record.get_mut("fields").and_then(Value::as_object_mut) else {
            return;
        };
        match fields.get("amount") {
            Some(Value::Object(money)) => {
                let value = money.get("value").cloned();
                let currency = money.get("currency").cloned();
                // A field selection may hold only part of the money object: show
                // exactly the old fields that were selected.
                match value {
                    Some(v) => {
                        fields.insert("amount".into(), v);
                    }
                    None => {
                        fields.remove("amount");
                    }
                }
                if let Some(c) = currency {
                    fields.insert("currency".into(), c);
                }
            }
            Some(Value::Null) => {
                fields.insert("currency".into(), Value::Null);
            }
            // Absent (not selected) or already flat: nothing to do.
            _ => {}
        }
    }

    fn fields_schema_out(&self, object: &str, properties: &mut Map<String, Value>) {
        if object != OBJECT {
            return;
        }
        if let Some(Value::Object(money)) = properties.get("amount").cloned() {
            let value = money
                .get("properties")
                .and_then(|p| p.get("value"))
                .cloned()
                .unwrap_or_else(|| serde_json::json!({ "type": "number" }));
            properties.insert("amount".into(), value);
            properties.insert(
                "currency".into(),
                serde_json::json!({ "type": "string", "pattern": "^[A-Za-z]{3}$", "description": "ISO 4217 code of `amount` (required with it)" }),
            );
        }
    }

    fn fields_in(&self, object: &str, fields: &mut Value) -> Result<(), InputError> {
        if object != OBJECT {
            return Ok(());
        }
        // Not an object: the records validation reports that in its own words.
        let Some(fields) = fields.as_object_mut() else {
            return Ok(());
        };
        upgrade(fields)
    }

    fn field_name_in(&self, object: &str, field: &str) -> Option<String> {
        if object != OBJECT {
            return None;
        }
        match field {
            "amount" => Some("amount.value".into()),
            "currency" => Some("amount.currency".into()),
            _ => None,
        }
    }
}

fn upgrade(fields: &mut Map<String, Value>) -> Result<(), InputError> {
    let amount = fields.remove("amount");
    let currency = fields.remove("currency");
    match (amount, currency) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(InputError::field(
            "currency",
            "with API version 2026-11-01, send `currency` together with `amount`",
        )),
        (Some(Value::Null), None | Some(Value::Null)) => {
            fields.insert("amount".into(), Value::Null);
            Ok(())
        }
        (Some(Value::Null), Some(_)) => Err(InputError::field(
            "currency",
            "a currency needs an amount; send `currency: null` (or omit it) to clear the amount",
        )),
        (Some(Value::Number(value)), currency) => {
            let currency = match currency {
                // Case is normalised (and the code checked against ISO 4217) by
                // record validation, as for every currency field.
                Some(Value::String(code)) if is_currency_code(code.trim()) => code.trim().to_ascii_uppercase(),
                Some(Value::String(_)) => {
                    return Err(InputError::field(
                        "currency",
                        "must be a three-letter ISO 4217 code such as `EUR`",
                    ));
                }
                None | Some(Value::Null) => {
                    return Err(InputError::field(
                        "currency",
                        "required with `amount` (with API version 2026-11-01)",
                    ));
                }
                Some(_) => return Err(InputError::field("currency", "must be a string such as `EUR`")),
            };
            let mut money = Map::new();
            money.insert("value".into(), Value::Number(value));
            money.insert("currency".into(), Value::String(currency));
            fields.insert("amount".into(), Value::Object(money));
            Ok(())
        }
        (Some(Value::Object(_)), _) => Err(InputError::field(
            "amount",
            "with API version 2026-11-01, `amount` is a number and `currency` a separate field; \
             the money object needs API version 2027-01-15",
        )),
        (Some(_), _) => Err(InputError::field("amount", "must be a number")),
    }
}

fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn opportunity(fields: Value) -> Value {
        json!({"id": "01J", "object": "opportunity", "owner_id": "u1", "version": 3, "fields": fields})
    }

    #[test]
    fn money_object_is_flattened_for_older_clients() {
        let mut r = opportunity(json!({"name": "Big deal", "amount": {"value": 125000.0, "currency": "EUR"}}));
        MoneyAmount.record_out(&mut r);
        assert_eq!(
            r["fields"],
            json!({"name": "Big deal", "amount": 125000.0, "currency": "EUR"})
        );
        assert_eq!(r["id"], "01J");
        assert_eq!(r["version"], 3);
    }

    #[test]
    fn null_and_missing_amounts_downgrade_sensibly() {
        let mut r = opportunity(json!({"amount": null}));
        MoneyAmount.record_out(&mut r);
        assert_eq!(r["fields"], json!({"amount": null, "currency": null}));

        let mut r = opportunity(json!({"name": "no amount selected"}));
        MoneyAmount.record_out(&mut r);
        assert_eq!(r["fields"], json!({"name": "no amount selected"}));

        // A selection of only the currency part shows only `currency`.
        let mut r = opportunity(json!({"amount": {"currency": "USD"}}));
        MoneyAmount.record_out(&mut r);
        assert_eq!(r["fields"], json!({"currency": "USD"}));
    }

    #[test]
    fn other_objects_and_odd_records_pass_through_untouched() {
        let original = json!({"object": "deal_custom", "fields": {"amount": {"value": 1, "currency": "EUR"}}});
        let mut r = original.clone();
        MoneyAmount.record_out(&mut r);
        assert_eq!(r, original);

        for original in [
            json!({"object": "opportunity"}),
            json!({"object": "opportunity", "fields": 7}),
            json!(null),
        ] {
            let mut r = original.clone();
            MoneyAmount.record_out(&mut r);
            assert_eq!(r, original);
        }

        let mut fields = json!({"amount": 5, "currency": "eur"});
        MoneyAmount.fields_in("account", &mut fields).unwrap();
        assert_eq!(fields, json!({"amount": 5, "currency": "eur"}));
    }

    #[test]
    fn flat_input_becomes_a_money_object() {
        let mut fields = json!({"name": "Big deal", "amount": 125000, "currency": "EUR"});
        MoneyAmount.fields_in("opportunity", &mut fields).unwrap();
        assert_eq!(
            fields,
            json!({"name": "Big deal", "amount": {"value": 125000, "currency": "EUR"}})
        );

        let mut fields = json!({"amount": null});
        MoneyAmount.fields_in("opportunity", &mut fields).unwrap();
        assert_eq!(fields, json!({"amount": null}));

        let mut fields = json!({"amount": null, "currency": null});
        MoneyAmount.fields_in("opportunity", &mut fields).unwrap();
        assert_eq!(fields, json!({"amount": null}));

        let mut fields = json!({"stage": "won"});
        MoneyAmount.fields_in("opportunity", &mut fields).unwrap();
        assert_eq!(fields, json!({"stage": "won"}));
    }

    #[test]
    fn malformed_old_input_names_the_field() {
        let cases = [
            (json!({"amount": 10}), "currency"),
            (json!({"amount": 10, "currency": null}), "currency"),
            (json!({"amount": 10, "currency": "euro"}), "currency"),
            (json!({"amount": 10, "currency": 978}), "currency"),
            (json!({"currency": "EUR"}), "currency"),
            (json!({"amount": null, "currency": "EUR"}), "currency"),
            (json!({"amount": "10", "currency": "EUR"}), "amount"),
            (json!({"amount": {"value": 10, "currency": "EUR"}}), "amount"),
        ];
        for (input, field) in cases {
            let mut fields = input.clone();
            let err = MoneyAmount.fields_in("opportunity", &mut fields).unwrap_err();
            assert_eq!(err.fields.len(), 1, "{input}");
            assert_eq!(err.fields[0].0, field, "{input}: {err:?}");
        }
    }

    #[test]
    fn round_trip_old_shape_through_newest() {
        let old = json!({"amount": 99.5, "currency": "GBP", "stage": "open"});
        let mut fields = old.clone();
        MoneyAmount.fields_in("opportunity", &mut fields).unwrap();
        let mut record = opportunity(fields);
        MoneyAmount.record_out(&mut record);
        assert_eq!(record["fields"]["amount"], old["amount"]);
        assert_eq!(record["fields"]["currency"], old["currency"]);
        assert_eq!(record["fields"]["stage"], old["stage"]);
    }

    #[test]
    fn old_field_names_map_into_the_money_object() {
        assert_eq!(
            MoneyAmount.field_name_in("opportunity", "amount").as_deref(),
            Some("amount.value")
        );
        assert_eq!(
            MoneyAmount.field_name_in("opportunity", "currency").as_deref(),
            Some("amount.currency")
        );
        assert_eq!(MoneyAmount.field_name_in("opportunity", "stage"), None);
        assert_eq!(MoneyAmount.field_name_in("account", "amount"), None);
    }
}
