//! The same record in both API versions: 2026-11-01 shows an opportunity's amount as
//! a number plus a `currency` field, 2027-01-15 as `{ "value", "currency" }`; each
//! version's requests (bodies, filters, sorts, groups) are understood in its own shape.

use plinth_tests::TestServer;
use serde_json::json;

const OLD: &str = "2026-11-01";
const NEW: &str = "2027-01-15";

#[tokio::test]
async fn both_versions_give_their_own_shapes_for_the_same_record() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    // Created in the old shape…
    let body = json!({ "fields": { "name": "Deal", "stage": "proposal", "close_date": "2027-03-01", "amount": 1250.5, "currency": "eur" } });
    let r = s
        .call_in(OLD, "POST", "/api/v1/records/opportunity", Some(&t.key), Some(body))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("api-version"), Some(OLD));
    assert_eq!(
        (r.body["fields"]["amount"].clone(), r.body["fields"]["currency"].clone()),
        (json!(1250.5), json!("EUR"))
    );
    let id = r.body["id"].as_str().unwrap().to_string();
    let path = format!("/api/v1/records/opportunity/{id}");

    // …read in the new shape.
    let r = s.call_in(NEW, "GET", &path, Some(&t.key), None).await;
    assert_eq!(r.header("api-version"), Some(NEW));
    assert_eq!(
        r.body["fields"]["amount"],
        json!({ "value": 1250.5, "currency": "EUR" })
    );
    assert!(r.body["fields"].get("currency").is_none());

    // Each version's request shape is refused by the other with a field problem.
    let r = s
        .call_in(
            NEW,
            "PATCH",
            &path,
            Some(&t.key),
            Some(json!({ "fields": { "amount": 99, "currency": "USD" } })),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = s
        .call_in(
            OLD,
            "PATCH",
            &path,
            Some(&t.key),
            Some(json!({ "fields": { "amount": { "value": 1, "currency": "USD" } } })),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = s
        .call_in(
            OLD,
            "PATCH",
            &path,
            Some(&t.key),
            Some(json!({ "fields": { "amount": 99, "currency": "USD" } })),
        )
        .await;
    assert_eq!(
        (r.status, r.body["fields"]["amount"].clone()),
        (200, json!(99)),
        "{}",
        r.text
    );
    let r = s.call_in(NEW, "GET", &path, Some(&t.key), None).await;
    assert_eq!(r.body["fields"]["amount"], json!({ "value": 99, "currency": "USD" }));

    // Filters, sorts and groups by `currency` in the old vocabulary.
    let r = s
        .call_in(
            OLD,
            "GET",
            "/api/v1/records/opportunity?filter[currency]=USD&sort=-amount",
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(1), "{}", r.text);
    let r = s
        .call_in(
            OLD,
            "GET",
            "/api/v1/records/opportunity?filter[currency]=EUR",
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.body["data"].as_array().map(Vec::len), Some(0), "{}", r.text);
    let agg = json!({ "group_by": ["currency"], "measures": [{ "fn": "sum", "field": "amount" }] });
    let r = s
        .call_in(
            OLD,
            "POST",
            "/api/v1/records/opportunity/aggregate",
            Some(&t.key),
            Some(agg),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let row = &r.body["rows"][0];
    assert_eq!(
        (row["currency"].as_str(), row["sum_amount"].as_f64()),
        (Some("USD"), Some(99.0)),
        "{}",
        r.text
    );

    // Other objects are the same in both versions.
    let r = s
        .call_in(
            OLD,
            "POST",
            "/api/v1/records/account",
            Some(&t.key),
            Some(json!({ "fields": { "name": "A" } })),
        )
        .await;
    let account = r.body["id"].as_str().unwrap().to_string();
    let old = s
        .call_in(
            OLD,
            "GET",
            &format!("/api/v1/records/account/{account}"),
            Some(&t.key),
            None,
        )
        .await;
    let new = s
        .call_in(
            NEW,
            "GET",
            &format!("/api/v1/records/account/{account}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(old.body["fields"], new.body["fields"]);
    s.stop().await;
}
