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
    let (old, new) = (t.in_version(OLD), t.in_version(NEW));

    // Created in the old shape…
    let body = json!({ "fields": { "name": "Deal", "stage": "proposal", "close_date": "2027-03-01", "amount": 1250.5, "currency": "eur" } });
    let r = old.post("/api/v1/records/opportunity", body).await.expect(201);
    assert_eq!(r.header("api-version"), Some(OLD));
    let created = r.json();
    assert_eq!(
        (&created["fields"]["amount"], &created["fields"]["currency"]),
        (&json!(1250.5), &json!("EUR"))
    );
    let path = format!("/api/v1/records/opportunity/{}", created["id"].as_str().unwrap());

    // …read in the new shape.
    let r = new.get(&path).await.expect(200);
    assert_eq!(r.header("api-version"), Some(NEW));
    assert_eq!(
        r.body["fields"]["amount"],
        json!({ "value": 1250.5, "currency": "EUR" })
    );
    assert!(r.body["fields"].get("currency").is_none());

    // Each version's request shape is refused by the other with a field problem.
    for (version, body) in [
        (&new, json!({ "fields": { "amount": 99, "currency": "USD" } })),
        (
            &old,
            json!({ "fields": { "amount": { "value": 1, "currency": "USD" } } }),
        ),
    ] {
        let r = version.patch(&path, body).await.expect_problem(422, "validation");
        assert!(r.problem_fields().contains(&"fields.amount".to_string()), "{}", r.text);
    }
    let updated = old
        .patch(&path, json!({ "fields": { "amount": 99, "currency": "USD" } }))
        .await
        .expect(200)
        .json();
    assert_eq!(updated["fields"]["amount"], json!(99));
    let read = new.get(&path).await.expect(200).json();
    assert_eq!(read["fields"]["amount"], json!({ "value": 99, "currency": "USD" }));

    // Filters, sorts and groups by `currency` in the old vocabulary.
    for (query, found) in [("filter[currency]=USD&sort=-amount", 1), ("filter[currency]=EUR", 0)] {
        let r = old
            .get(&format!("/api/v1/records/opportunity?{query}"))
            .await
            .expect(200);
        assert_eq!(r.body["data"].as_array().map(Vec::len), Some(found), "{}", r.text);
    }
    let agg = json!({ "group_by": ["currency"], "measures": [{ "fn": "sum", "field": "amount" }] });
    let r = old.post("/api/v1/records/opportunity/aggregate", agg).await.expect(200);
    let row = &r.body["rows"][0];
    assert_eq!(
        (row["currency"].as_str(), row["sum_amount"].as_f64()),
        (Some("USD"), Some(99.0)),
        "{}",
        r.text
    );

    // Other objects are the same in both versions.
    let account = old
        .post("/api/v1/records/account", json!({ "fields": { "name": "A" } }))
        .await
        .expect(201)
        .json();
    let path = format!("/api/v1/records/account/{}", account["id"].as_str().unwrap());
    let in_old = old.get(&path).await.expect(200).json();
    let in_new = new.get(&path).await.expect(200).json();
    assert_eq!(in_old["fields"], in_new["fields"]);
    s.stop().await;
}
