//! Events end to end on a real server (SQLite, or PostgreSQL with
//! `PLINTH_TEST_DATABASE_URL`): record writes reach the subscribed `event-probe`
//! guest in commit order; retries with backoff; the dead-letter list with replay and
//! discard; held while disabled and resumed on enable; cause and depth of a plugin's
//! own writes and the depth limit; grants; tenant isolation; the event log endpoint;
//! two hosts on one PostgreSQL.
//!
//! Timing is deterministic: the backoff is shortened to milliseconds and the tests
//! wait for `GET /api/v1/events/subscriptions` to report a plugin caught up (with a
//! timeout) instead of sleeping.

use std::future::Future;
use std::time::{Duration, Instant};

use plinth_core::store::Dialect;
use plinth_host::workers::events::EventsConfig;
use plinth_tests::{TestPublisher, TestServer, TestTenant, guest_files};
use serde_json::{Value, json};

const PROBE: &str = "event-probe";
const WAIT: Duration = Duration::from_secs(60);

/// Shorten the worker's poll and backoff so retries take milliseconds.
fn fast(s: &TestServer, max_attempts: u32) {
    s.server.state.events.set_config(EventsConfig {
        poll_interval: Duration::from_millis(25),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(80),
        max_attempts,
        ..EventsConfig::default()
    });
}

/// Publish the probe component as plugin `id` subscribing to `events`.
async fn publish_probe(s: &TestServer, p: &TestPublisher, id: &str, events: &[&str]) {
    let (manifest, component) = guest_files(PROBE);
    let patterns: Vec<String> = events.iter().map(|e| format!("{e:?}")).collect();
    let manifest = manifest
        .replace("id = \"event-probe\"", &format!("id = \"{id}\""))
        .replace(
            "events = [\"record.opportunity.*\", \"event-probe.*\"]",
            &format!("events = [{}]", patterns.join(", ")),
        );
    let r = s.publish(&p.token, p.pack(&manifest, &component)).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn install(s: &TestServer, t: &TestTenant, id: &str, grants: Value) {
    let r = s.install(t, id, grants).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

async fn set_fail_times(s: &TestServer, t: &TestTenant, id: &str, times: i64) {
    let r = s
        .call(
            "PUT",
            &format!("/api/v1/installations/{id}/settings/fail_times"),
            Some(&t.key),
            Some(json!(times)),
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
}

async fn new_opportunity(s: &TestServer, t: &TestTenant, name: &str) -> String {
    let body = json!({ "fields": { "name": name, "stage": "prospecting", "close_date": "2027-06-30" } });
    let r = s
        .call("POST", "/api/v1/records/opportunity", Some(&t.key), Some(body))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().expect("id").to_string()
}

async fn set_amount(s: &TestServer, key: &str, id: &str, amount: i64) {
    let body = json!({ "fields": { "amount": { "value": amount, "currency": "EUR" } } });
    let r = s
        .call(
            "PATCH",
            &format!("/api/v1/records/opportunity/{id}"),
            Some(key),
            Some(body),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Every `on-event` attempt the plugin recorded, in the order it saw them.
async fn received(s: &TestServer, t: &TestTenant, id: &str) -> Vec<Value> {
    let r = s
        .call("GET", &format!("/api/v1/plugins/{id}/received"), Some(&t.key), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body.as_array().cloned().unwrap_or_default()
}

/// The successful deliveries only.
async fn delivered(s: &TestServer, t: &TestTenant, id: &str) -> Vec<Value> {
    received(s, t, id)
        .await
        .into_iter()
        .filter(|e| e["failed"] == false)
        .collect()
}

async fn subscription(s: &TestServer, t: &TestTenant, id: &str) -> Value {
    let r = s.call("GET", "/api/v1/events/subscriptions", Some(&t.key), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["data"]
        .as_array()
        .and_then(|subs| subs.iter().find(|x| x["plugin"] == id).cloned())
        .unwrap_or_else(|| panic!("no subscription for {id}: {}", r.text))
}

/// Wait until `id` has nothing left to deliver (or fail after [`WAIT`]).
async fn drained(s: &TestServer, t: &TestTenant, id: &str) {
    let started = Instant::now();
    loop {
        let sub = subscription(s, t, id).await;
        if sub["caught_up"] == true {
            return;
        }
        assert!(started.elapsed() < WAIT, "{id} did not catch up: {sub}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The tenant's event log, whole.
async fn event_log(s: &TestServer, t: &TestTenant) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let r = s
            .call(
                "GET",
                &format!("/api/v1/events?after={after}&limit=100"),
                Some(&t.key),
                None,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        all.extend(r.body["data"].as_array().cloned().unwrap_or_default());
        match r.body["next_after"].as_i64() {
            Some(next) => after = next,
            None => return all,
        }
    }
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["id"].as_str().unwrap_or("?").to_string())
        .collect()
}

async fn server_with_probe(max_attempts: u32) -> (TestServer, TestTenant, TestPublisher) {
    let s = TestServer::start().await;
    fast(&s, max_attempts);
    let p = s.publisher("plinth-tests").await;
    let t = s.tenant("Acme").await;
    publish_probe(&s, &p, PROBE, &["record.opportunity.*", "event-probe.*"]).await;
    (s, t, p)
}

#[tokio::test]
async fn updates_reach_the_subscriber_exactly_in_commit_order() {
    let (s, t, _) = server_with_probe(5).await;
    // Written before the install: never delivered.
    let before = new_opportunity(&s, &t, "Before install").await;
    install(&s, &t, PROBE, json!("all")).await;
    let id = new_opportunity(&s, &t, "Burst").await;
    for amount in 1..=20 {
        set_amount(&s, &t.key, &id, amount).await;
    }
    // A concurrent burst over several records: whatever order they commit in is the
    // order they must arrive in.
    let others: Vec<String> = join_all(
        (0..4)
            .map(|i| {
                let (s, t) = (&s, &t);
                async move { new_opportunity(s, t, &format!("Parallel {i}")).await }
            })
            .collect(),
    )
    .await;
    // Records in parallel, each record's updates one after the other (concurrent
    // updates of one record without If-Match may conflict, which is not this test's
    // subject).
    join_all(
        others
            .iter()
            .map(|o| {
                let (s, key) = (&s, t.key.as_str());
                async move {
                    for a in 1..=5 {
                        set_amount(s, key, o, a).await;
                    }
                }
            })
            .collect(),
    )
    .await;
    drained(&s, &t, PROBE).await;

    let got = delivered(&s, &t, PROBE).await;
    let log: Vec<Value> = event_log(&s, &t)
        .await
        .into_iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with("record.opportunity.")))
        .filter(|e| e["payload"]["id"] != before.as_str())
        .collect();
    assert_eq!(log.len(), 1 + 20 + 4 + 20, "{log:?}");
    assert_eq!(ids(&got), ids(&log), "delivered in seq order, each once");
    assert!(received(&s, &t, PROBE).await.iter().all(|e| e["attempt"] == 1));
    assert!(got.iter().all(|e| e["payload"]["id"] != before.as_str()));

    // The burst on one record: created, then amounts 1..=20 in order.
    let burst: Vec<&Value> = got.iter().filter(|e| e["payload"]["id"] == id.as_str()).collect();
    assert_eq!(burst[0]["name"], "record.opportunity.created");
    let amounts: Vec<i64> = burst[1..]
        .iter()
        .map(|e| {
            e["payload"]["record"]["fields"]["amount"]["value"]
                .as_i64()
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(amounts, (1..=20).collect::<Vec<_>>());
    let first_update = burst[1];
    assert_eq!(first_update["name"], "record.opportunity.updated");
    assert_eq!(first_update["payload"]["object"], "opportunity");
    assert_eq!(first_update["payload"]["changed"], json!(["amount"]));
    // `previous` holds each changed field as it was: the value the event before showed.
    assert!(burst[0]["payload"].get("previous").is_none(), "{}", burst[0]);
    for pair in burst.windows(2) {
        let was = &pair[0]["payload"]["record"]["fields"]["amount"];
        assert_eq!(pair[1]["payload"]["previous"], json!({ "amount": was }), "{}", pair[1]);
    }
    assert_eq!(first_update["cause"], Value::Null);
    assert_eq!(first_update["depth"], 0);
    assert_eq!(first_update["user_id"], t.owner_id.as_str());
    assert_eq!(first_update["roles"], json!(["owner"]));
    // Each per-record sequence is in order too.
    for o in &others {
        let amounts: Vec<i64> = got
            .iter()
            .filter(|e| e["payload"]["id"] == o.as_str() && e["name"] == "record.opportunity.updated")
            .map(|e| {
                e["payload"]["record"]["fields"]["amount"]["value"]
                    .as_i64()
                    .unwrap_or(-1)
            })
            .collect();
        assert_eq!(amounts, (1..=5).collect::<Vec<_>>());
    }
    s.stop().await;
}

/// Run futures concurrently; their outputs in the order given.
async fn join_all<T, F: Future<Output = T>>(futures: Vec<F>) -> Vec<T> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<T>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

#[tokio::test]
async fn a_plugin_failing_twice_gets_the_event_three_times_and_no_more() {
    let (s, t, _) = server_with_probe(5).await;
    install(&s, &t, PROBE, json!("all")).await;
    set_fail_times(&s, &t, PROBE, 2).await;
    let id = new_opportunity(&s, &t, "Flaky").await;
    drained(&s, &t, PROBE).await;
    // A later event goes through too, after the first one: nothing is retried again.
    set_amount(&s, &t.key, &id, 7).await;
    drained(&s, &t, PROBE).await;

    let all = received(&s, &t, PROBE).await;
    let created: Vec<&Value> = all
        .iter()
        .filter(|e| e["name"] == "record.opportunity.created")
        .collect();
    let attempts: Vec<(i64, bool)> = created
        .iter()
        .map(|e| (e["attempt"].as_i64().unwrap_or(0), e["failed"] == true))
        .collect();
    assert_eq!(attempts, [(1, true), (2, true), (3, false)]);
    assert!(
        created.iter().all(|e| e["id"] == created[0]["id"]),
        "same event id on every attempt"
    );
    // The update was attempted only after the created event succeeded.
    let order: Vec<&str> = all.iter().map(|e| e["name"].as_str().unwrap_or("?")).collect();
    assert_eq!(order[..3], ["record.opportunity.created"; 3]);
    assert_eq!(order[3..], ["record.opportunity.updated"; 3]);
    let sub = subscription(&s, &t, PROBE).await;
    assert_eq!(
        (sub["dead_letters"].as_i64(), sub["attempts"].as_i64()),
        (Some(0), Some(0)),
        "{sub}"
    );
    let r = s.call("GET", "/api/v1/events/dead-letters", Some(&t.key), None).await;
    assert_eq!(r.body["data"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn always_failing_lands_in_dead_letters_and_replay_delivers_it() {
    let (s, t, _) = server_with_probe(3).await;
    install(&s, &t, PROBE, json!("all")).await;
    set_fail_times(&s, &t, PROBE, -1).await;
    let id = new_opportunity(&s, &t, "Doomed").await;
    set_amount(&s, &t.key, &id, 1).await;
    drained(&s, &t, PROBE).await;

    let r = s.call("GET", "/api/v1/events/dead-letters", Some(&t.key), None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let letters = r.body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(letters.len(), 2, "{}", r.text);
    assert_eq!(letters[0]["event_name"], "record.opportunity.created");
    assert_eq!(letters[1]["event_name"], "record.opportunity.updated");
    assert_eq!(letters[0]["plugin"], PROBE);
    assert_eq!(letters[0]["attempts"], 3);
    assert_eq!(letters[0]["state"], "dead");
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("told to fail attempt 3"),
        "{}",
        letters[0]
    );
    // Exactly max_attempts tries each, the second only after the first was parked.
    let names: Vec<String> = received(&s, &t, PROBE)
        .await
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(
        names,
        [
            "record.opportunity.created",
            "record.opportunity.created",
            "record.opportunity.created",
            "record.opportunity.updated",
            "record.opportunity.updated",
            "record.opportunity.updated"
        ]
    );
    // Pagination and the plugin filter.
    let r = s
        .call("GET", "/api/v1/events/dead-letters?limit=1", Some(&t.key), None)
        .await;
    let cursor = r.body["next_cursor"].as_str().expect("a next cursor").to_string();
    let r = s
        .call(
            "GET",
            &format!("/api/v1/events/dead-letters?limit=1&cursor={cursor}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.body["data"][0]["id"], letters[1]["id"], "{}", r.text);
    let r = s
        .call("GET", "/api/v1/events/dead-letters?plugin=other", Some(&t.key), None)
        .await;
    assert_eq!(r.body["data"], json!([]));
    let r = s
        .call(
            "GET",
            "/api/v1/events/dead-letters?cursor=nope&limit=0",
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["errors"].as_array().map(Vec::len), Some(2), "{}", r.text);

    // Another tenant sees none of it.
    let other = s.tenant("Other").await;
    let first = letters[0]["id"].as_str().unwrap_or_default().to_string();
    for (method, path) in [
        ("POST", format!("/api/v1/events/dead-letters/{first}/replay")),
        ("DELETE", format!("/api/v1/events/dead-letters/{first}")),
    ] {
        let r = s.call(method, &path, Some(&other.key), None).await;
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
    }
    let r = s
        .call("GET", "/api/v1/events/dead-letters", Some(&other.key), None)
        .await;
    assert_eq!(r.body["data"], json!([]));
    // Members may not manage them.
    let member = s.user(&t, "Mia Member", "member").await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/events/dead-letters/{first}/replay"),
            Some(&member.key),
            None,
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);

    // Fixed: replay the first; it is delivered, and leaves the list.
    set_fail_times(&s, &t, PROBE, 0).await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/events/dead-letters/{first}/replay"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(
        (r.status, r.body["state"].as_str()),
        (202, Some("replaying")),
        "{}",
        r.text
    );
    drained(&s, &t, PROBE).await;
    let ok = delivered(&s, &t, PROBE).await;
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(ok[0]["id"], letters[0]["event_id"]);
    assert_eq!(ok[0]["attempt"], 4);
    let r = s.call("GET", "/api/v1/events/dead-letters", Some(&t.key), None).await;
    assert_eq!(ids_of(&r.body["data"]), vec![letters[1]["id"].clone()]);

    // Discard the other: gone, and never delivered.
    let second = letters[1]["id"].as_str().unwrap_or_default();
    let r = s
        .call(
            "DELETE",
            &format!("/api/v1/events/dead-letters/{second}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let r = s
        .call(
            "DELETE",
            &format!("/api/v1/events/dead-letters/{second}"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let r = s.call("GET", "/api/v1/events/dead-letters", Some(&t.key), None).await;
    assert_eq!(r.body["data"], json!([]));
    assert_eq!(delivered(&s, &t, PROBE).await.len(), 1);

    // Both were audited.
    for action in ["event.dead_letter.replay", "event.dead_letter.discard"] {
        let r = s
            .call(
                "GET",
                &format!("/api/v1/audit/events?action={action}"),
                Some(&t.key),
                None,
            )
            .await;
        assert_eq!(r.body["data"].as_array().map(Vec::len), Some(1), "{action}: {}", r.text);
    }
    s.stop().await;
}

fn ids_of(list: &Value) -> Vec<Value> {
    list.as_array()
        .map(|l| l.iter().map(|x| x["id"].clone()).collect())
        .unwrap_or_default()
}

/// A replay that keeps failing while the event at the head of the log is itself being
/// retried counts its failures on the dead letter: the head event still gets exactly
/// `max_attempts` tries (it used to get its count reset by the replay, and so up to
/// twice as many), and the replay its own `max_attempts`.
#[tokio::test]
async fn a_failing_replay_leaves_the_head_events_count_alone() {
    let (s, t, _) = server_with_probe(3).await;
    install(&s, &t, PROBE, json!("all")).await;
    set_fail_times(&s, &t, PROBE, -1).await;
    let id = new_opportunity(&s, &t, "Parked").await;
    drained(&s, &t, PROBE).await;
    let r = s.call("GET", "/api/v1/events/dead-letters", Some(&t.key), None).await;
    let letter = r.body["data"][0].clone();
    assert_eq!(
        (letter["event_name"].as_str(), letter["attempts"].as_i64()),
        (Some("record.opportunity.created"), Some(3)),
        "{}",
        r.text
    );

    // Slow retries, so the replay lands between the head event's tries.
    s.server.state.events.set_config(EventsConfig {
        poll_interval: Duration::from_millis(25),
        backoff_base: Duration::from_millis(400),
        backoff_max: Duration::from_millis(400),
        max_attempts: 3,
        ..EventsConfig::default()
    });
    set_amount(&s, &t.key, &id, 5).await;
    let started = Instant::now();
    while subscription(&s, &t, PROBE).await["attempts"] != 1 {
        assert!(started.elapsed() < WAIT, "the update never failed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let path = format!("/api/v1/events/dead-letters/{}/replay", letter["id"].as_str().unwrap());
    let r = s.call("POST", &path, Some(&t.key), None).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let started = Instant::now();
    loop {
        let sub = subscription(&s, &t, PROBE).await;
        if sub["caught_up"] == true && sub["replaying"] == 0 {
            break;
        }
        assert!(started.elapsed() < WAIT, "not settled: {sub}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let tries = |name: &str, all: &[Value]| all.iter().filter(|e| e["name"] == name).count();
    let all = received(&s, &t, PROBE).await;
    assert_eq!(tries("record.opportunity.created", &all), 6, "3 tries, then 3 replayed");
    assert_eq!(tries("record.opportunity.updated", &all), 3, "max_attempts, not more");
    let r = s.call("GET", "/api/v1/events/dead-letters", Some(&t.key), None).await;
    let letters: Vec<(String, i64, String)> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["event_name"].as_str().unwrap().to_string(),
                l["attempts"].as_i64().unwrap(),
                l["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        letters,
        [
            ("record.opportunity.created".to_string(), 6, "dead".to_string()),
            ("record.opportunity.updated".to_string(), 3, "dead".to_string()),
        ],
        "{}",
        r.text
    );
    s.stop().await;
}

/// Make every move of a cursor fail inside the database, as an outage or a broken
/// migration would, until [`heal_cursor_moves`]. The message names the table, which
/// the tenant must not see.
async fn break_cursor_moves(s: &TestServer) {
    let statements: &[&str] = match s.db().dialect() {
        Dialect::Sqlite => &[
            "CREATE TRIGGER induced_failure BEFORE UPDATE OF position ON event_cursors \
             BEGIN SELECT RAISE(ABORT, 'induced failure in event_cursors'); END",
        ],
        Dialect::Postgres => &[
            "CREATE FUNCTION induced_failure() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'induced failure in event_cursors'; END $$",
            "CREATE TRIGGER induced_failure BEFORE UPDATE OF position ON event_cursors \
             FOR EACH ROW EXECUTE FUNCTION induced_failure()",
        ],
    };
    for sql in statements {
        s.sql(sql, &[]).await;
    }
}

async fn heal_cursor_moves(s: &TestServer) {
    let sql = match s.db().dialect() {
        Dialect::Sqlite => "DROP TRIGGER induced_failure",
        Dialect::Postgres => "DROP TRIGGER induced_failure ON event_cursors",
    };
    s.sql(sql, &[]).await;
}

#[tokio::test]
async fn a_host_side_failure_shows_as_a_stall_and_clears_once_delivery_gets_through() {
    let (s, t, _) = server_with_probe(3).await;
    install(&s, &t, PROBE, json!("all")).await;
    drained(&s, &t, PROBE).await;
    let before = subscription(&s, &t, PROBE).await;
    assert_eq!(before["stalled"], Value::Null, "{before}");

    break_cursor_moves(&s).await;
    let id = new_opportunity(&s, &t, "Stuck").await;
    let started = Instant::now();
    let sub = loop {
        let sub = subscription(&s, &t, PROBE).await;
        if !sub["stalled"].is_null() {
            break sub;
        }
        assert!(started.elapsed() < WAIT, "no stall reported: {sub}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let notice = sub["stalled"].as_str().expect("a notice");
    assert!(notice.contains("reference "), "{sub}");
    assert!(
        !notice.contains("event_cursors") && !notice.contains("induced"),
        "leaks internals: {sub}"
    );
    assert_eq!(sub["caught_up"], false, "{sub}");
    assert_eq!(sub["attempts"], 0, "the plugin did not fail: {sub}");
    let since = sub["stalled_since"].as_str().expect("since").to_string();
    assert!(sub["retry_at"].as_str().is_some_and(|r| r >= since.as_str()), "{sub}");

    // Still stalled a few retries later, since the same moment.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sub = subscription(&s, &t, PROBE).await;
    assert_eq!(sub["stalled_since"].as_str(), Some(since.as_str()), "{sub}");
    assert_eq!(sub["delivered_through"], before["delivered_through"], "{sub}");

    heal_cursor_moves(&s).await;
    drained(&s, &t, PROBE).await;
    let sub = subscription(&s, &t, PROBE).await;
    assert_eq!(
        (&sub["stalled"], &sub["stalled_since"]),
        (&Value::Null, &Value::Null),
        "{sub}"
    );
    let got = delivered(&s, &t, PROBE).await;
    assert!(
        got.iter()
            .any(|e| e["name"] == "record.opportunity.created" && e["payload"]["id"] == id.as_str()),
        "{got:?}"
    );
    s.stop().await;
}

#[tokio::test]
async fn disabled_plugins_are_held_and_resume_in_order_on_enable() {
    let (s, t, p) = server_with_probe(5).await;
    publish_probe(&s, &p, "event-probe-b", &["record.opportunity.*"]).await;
    install(&s, &t, PROBE, json!("all")).await;
    install(&s, &t, "event-probe-b", json!("all")).await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/installations/{PROBE}/disable"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let id = new_opportunity(&s, &t, "Held").await;
    for amount in 1..=5 {
        set_amount(&s, &t.key, &id, amount).await;
    }
    // The other subscriber got all six, so the worker has been past them.
    drained(&s, &t, "event-probe-b").await;
    let b = delivered(&s, &t, "event-probe-b").await;
    assert_eq!(b.len(), 6);
    let sub = subscription(&s, &t, PROBE).await;
    assert_eq!(
        (sub["state"].as_str(), sub["caught_up"].as_bool()),
        (Some("disabled"), Some(false)),
        "{sub}"
    );

    let r = s
        .call(
            "POST",
            &format!("/api/v1/installations/{PROBE}/enable"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    drained(&s, &t, PROBE).await;
    let a = delivered(&s, &t, PROBE).await;
    // The held record events arrive in order (and the other plugin's own lifecycle
    // is not among the probe's subscriptions).
    assert_eq!(ids(&a), ids(&b));

    // The lifecycle steps are in the event log.
    let names: Vec<(String, String)> = event_log(&s, &t)
        .await
        .iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with("plugin.")))
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("?").to_string(),
                e["payload"]["plugin"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    let expect = |n: &str, p: &str| (n.to_string(), p.to_string());
    assert_eq!(
        names,
        [
            expect("plugin.installed", PROBE),
            expect("plugin.installed", "event-probe-b"),
            expect("plugin.disabled", PROBE),
            expect("plugin.enabled", PROBE),
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn own_writes_carry_the_cause_and_chains_stop_at_the_depth_limit() {
    let (s, t, _) = server_with_probe(5).await;
    install(&s, &t, PROBE, json!("all")).await;
    let id = new_opportunity(&s, &t, "Caused").await;

    // A write through the plugin's records capability, from its endpoint.
    let r = s
        .call(
            "POST",
            &format!("/api/v1/plugins/{PROBE}/touch/{id}"),
            Some(&t.key),
            Some(json!({ "stage": "proposal" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A write made while handling an event: one hop deeper.
    let r = s
        .call(
            "POST",
            &format!("/api/v1/plugins/{PROBE}/emit/touch"),
            Some(&t.key),
            Some(json!({ "id": id, "stage": "negotiation" })),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    drained(&s, &t, PROBE).await;
    let got = delivered(&s, &t, PROBE).await;
    let summary: Vec<(String, Value, Value)> = got
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap_or("?").to_string(),
                e["cause"].clone(),
                e["depth"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("record.opportunity.created".to_string(), Value::Null, json!(0)),
            ("record.opportunity.updated".to_string(), json!(PROBE), json!(0)),
            ("event-probe.touch".to_string(), json!(PROBE), json!(0)),
            ("record.opportunity.updated".to_string(), json!(PROBE), json!(1)),
        ]
    );
    assert_eq!(got[3]["payload"]["record"]["fields"]["stage"], "negotiation");
    assert_eq!(got[3]["payload"]["changed"], json!(["stage"]));
    assert_eq!(got[3]["payload"]["previous"], json!({ "stage": "proposal" }));
    // The plugin's endpoint call ran for the owner; so do the events it caused.
    assert_eq!(got[1]["user_id"], t.owner_id.as_str());

    // A self-triggering chain: delivered at depths 0..=8, then stopped and audited.
    let r = s
        .call(
            "POST",
            &format!("/api/v1/plugins/{PROBE}/emit/loop"),
            Some(&t.key),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    drained(&s, &t, PROBE).await;
    let depths: Vec<i64> = delivered(&s, &t, PROBE)
        .await
        .iter()
        .filter(|e| e["name"] == "event-probe.loop")
        .map(|e| e["depth"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(depths, (0..=8).collect::<Vec<_>>());
    let r = s
        .call(
            "GET",
            "/api/v1/audit/events?action=event.chain_stopped",
            Some(&t.key),
            None,
        )
        .await;
    let stops = r.body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(stops.len(), 1, "{}", r.text);
    let after = match &stops[0]["after"] {
        Value::String(text) => serde_json::from_str(text).unwrap_or_default(),
        other => other.clone(),
    };
    assert_eq!(
        (after["name"].as_str(), after["cause"].as_str(), after["depth"].as_i64()),
        (Some("event-probe.loop"), Some(PROBE), Some(9)),
        "{}",
        stops[0]
    );
    assert!(
        event_log(&s, &t).await.iter().all(|e| e["depth"].as_i64() <= Some(8)),
        "nothing deeper than the limit is logged"
    );

    // Emits are validated: names, payload size.
    let r = s
        .call(
            "POST",
            &format!("/api/v1/plugins/{PROBE}/emit/Bad%20Name"),
            Some(&t.key),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let big = json!({ "blob": "x".repeat(300 * 1024) });
    let r = s
        .call(
            "POST",
            &format!("/api/v1/plugins/{PROBE}/emit/big"),
            Some(&t.key),
            Some(big),
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.text);
    s.stop().await;
}

#[tokio::test]
async fn patterns_and_records_not_granted_are_not_delivered() {
    let (s, t, p) = server_with_probe(5).await;
    publish_probe(&s, &p, "event-probe-b", &["record.opportunity.*"]).await;
    // The probe without the record subscription: only its own events.
    install(
        &s,
        &t,
        PROBE,
        json!([
            "storage",
            "config",
            "emit",
            "events:event-probe.*",
            "records:opportunity:read"
        ]),
    )
    .await;
    // The other with the subscription but without record access: no `record` shown.
    install(
        &s,
        &t,
        "event-probe-b",
        json!(["storage", "config", "events:record.opportunity.*"]),
    )
    .await;
    let id = new_opportunity(&s, &t, "Private").await;
    set_amount(&s, &t.key, &id, 3).await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/plugins/{PROBE}/emit/ping"),
            Some(&t.key),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    drained(&s, &t, PROBE).await;
    drained(&s, &t, "event-probe-b").await;

    let names: Vec<String> = delivered(&s, &t, PROBE)
        .await
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(names, ["event-probe.ping"]);
    let b = delivered(&s, &t, "event-probe-b").await;
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!(b[1]["payload"]["id"], id.as_str());
    assert_eq!(b[1]["payload"]["changed"], json!(["amount"]));
    assert!(b.iter().all(|e| e["payload"].get("record").is_none()), "{b:?}");
    assert!(b.iter().all(|e| e["payload"].get("previous").is_none()), "{b:?}");

    // Emitting without the `emit` grant is a `denied` error the plugin sees (it
    // answers 403), not a trap; nothing is logged.
    let before = event_log(&s, &t).await.len();
    let r = s
        .call(
            "POST",
            "/api/v1/plugins/event-probe-b/emit/ping",
            Some(&t.key),
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.text.contains("emit"), "{}", r.text);
    assert_eq!(event_log(&s, &t).await.len(), before);
    s.stop().await;
}

#[tokio::test]
async fn uninstall_drops_pending_events_and_a_reinstall_starts_afresh() {
    let (s, t, _) = server_with_probe(5).await;
    install(&s, &t, PROBE, json!("all")).await;
    let r = s
        .call(
            "POST",
            &format!("/api/v1/installations/{PROBE}/disable"),
            Some(&t.key),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let id = new_opportunity(&s, &t, "Pending").await;
    set_amount(&s, &t.key, &id, 1).await;
    assert_eq!(subscription(&s, &t, PROBE).await["caught_up"], false);

    let r = s
        .call("DELETE", &format!("/api/v1/installations/{PROBE}"), Some(&t.key), None)
        .await;
    assert!(r.status == 200 || r.status == 204, "{}", r.text);
    let r = s.call("GET", "/api/v1/events/subscriptions", Some(&t.key), None).await;
    assert_eq!(r.body["data"], json!([]), "the cursor went with the installation");

    // Re-installed (its storage kept): only what happens from now on arrives.
    install(&s, &t, PROBE, json!("all")).await;
    set_amount(&s, &t.key, &id, 2).await;
    drained(&s, &t, PROBE).await;
    let got = delivered(&s, &t, PROBE).await;
    let amounts: Vec<i64> = got
        .iter()
        .map(|e| {
            e["payload"]["record"]["fields"]["amount"]["value"]
                .as_i64()
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(amounts, [2], "{got:?}");
    s.stop().await;
}

#[tokio::test]
async fn tenants_never_see_each_others_events() {
    let (s, a, _) = server_with_probe(5).await;
    let b = s.tenant("Beta").await;
    install(&s, &a, PROBE, json!("all")).await;
    install(&s, &b, PROBE, json!("all")).await;
    let id = new_opportunity(&s, &a, "A's deal").await;
    set_amount(&s, &a.key, &id, 9).await;
    drained(&s, &a, PROBE).await;
    drained(&s, &b, PROBE).await;
    assert_eq!(delivered(&s, &a, PROBE).await.len(), 2);
    assert_eq!(received(&s, &b, PROBE).await, Vec::<Value>::new());
    // B's log holds only its own install.
    let names: Vec<Value> = event_log(&s, &b).await.iter().map(|e| e["name"].clone()).collect();
    assert_eq!(names, [json!("plugin.installed")]);

    // The log endpoint: admins only, parameters checked.
    let member = s.user(&a, "Max Member", "member").await;
    let r = s.call("GET", "/api/v1/events", Some(&member.key), None).await;
    assert_eq!(r.status, 403, "{}", r.text);
    let r = s
        .call("GET", "/api/v1/events?after=-1&limit=9999&x=1", Some(&a.key), None)
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = s.call("GET", "/api/v1/events?limit=1", Some(&a.key), None).await;
    assert_eq!(
        (r.body["data"][0]["seq"].as_i64(), r.body["next_after"].as_i64()),
        (Some(1), Some(1)),
        "{}",
        r.text
    );
    s.stop().await;
}

#[tokio::test]
async fn two_hosts_on_one_postgres_deliver_each_event_once_in_order() {
    let Ok(admin_url) = std::env::var("PLINTH_TEST_DATABASE_URL") else {
        eprintln!("skipped: needs PostgreSQL (PLINTH_TEST_DATABASE_URL)");
        return;
    };
    let (s, t, _) = server_with_probe(5).await;
    // A second host on the same database.
    let name: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(s.db().reader())
        .await
        .expect("database name");
    let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(b, _)| b);
    let db = plinth_core::store::Db::connect(&format!("{base}/{name}"))
        .await
        .expect("second connection");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = plinth_host::server::ServerConfig::new(dir.path().to_path_buf());
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.first_party = false;
    let second = plinth_host::server::start_with_db(config, db)
        .await
        .expect("second host");
    second.state.events.set_config(s.server.state.events.config());

    install(&s, &t, PROBE, json!("all")).await;
    let id = new_opportunity(&s, &t, "Shared").await;
    for amount in 1..=30 {
        set_amount(&s, &t.key, &id, amount).await;
        // Wake the other host too, so both race for every event.
        second.state.events.wake();
    }
    drained(&s, &t, PROBE).await;
    let all = received(&s, &t, PROBE).await;
    assert_eq!(all.len(), 31, "each event delivered once");
    let amounts: Vec<i64> = all[1..]
        .iter()
        .map(|e| {
            e["payload"]["record"]["fields"]["amount"]["value"]
                .as_i64()
                .unwrap_or(-1)
        })
        .collect();
    assert_eq!(amounts, (1..=30).collect::<Vec<_>>());
    second.shutdown().await.expect("second host stops");
    s.stop().await;
}

#[tokio::test]
async fn delivered_events_past_their_retention_are_pruned_and_needed_ones_are_kept() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    for name in ["a", "b", "c", "d"] {
        let r = s
            .call(
                "POST",
                "/api/v1/records/account",
                Some(&t.key),
                Some(json!({ "fields": { "name": name } })),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let seqs = |s: &TestServer, tenant: String| {
        let db = s.db().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT seq FROM events WHERE tenant_id = $1 ORDER BY seq")
                .bind(tenant)
                .fetch_all(db.reader())
                .await
                .unwrap()
        }
    };
    assert_eq!(seqs(&s, t.id.clone()).await, [1, 2, 3, 4]);
    // Events 1-3 are old; a subscriber is only past event 1; a dead letter needs event 3.
    s.sql(
        "UPDATE events SET occurred_at = '2020-01-01T00:00:00.000Z' WHERE tenant_id = $1 AND seq <= 3",
        &[&t.id],
    )
    .await;
    s.sql(
        "INSERT INTO event_cursors (tenant_id, plugin_id, position, attempts, touched_at) \
         VALUES ($1, 'holder', 1, 0, '2020-01-01T00:00:00.000Z')",
        &[&t.id],
    )
    .await;
    s.sql(
        "INSERT INTO event_dead_letters (tenant_id, id, plugin_id, event_seq, event_id, event_name, attempts, \
         error, state, failed_at) VALUES ($1, 'dl1', 'other', 3, 'e3', 'record.account.created', 5, 'x', 'dead', \
         '2020-01-01T00:00:00.000Z')",
        &[&t.id],
    )
    .await;
    let day = Duration::from_secs(24 * 3600);
    let prune = plinth_host::workers::events::worker::prune;
    assert_eq!(prune(s.db(), day).await, 1);
    assert_eq!(seqs(&s, t.id.clone()).await, [2, 3, 4]);
    // The subscriber catches up: event 2 goes; 3 stays for its dead letter, 4 is recent.
    s.sql(
        "UPDATE event_cursors SET position = 4 WHERE tenant_id = $1 AND plugin_id = 'holder'",
        &[&t.id],
    )
    .await;
    assert_eq!(prune(s.db(), day).await, 1);
    assert_eq!(seqs(&s, t.id.clone()).await, [3, 4]);
    s.sql("DELETE FROM event_dead_letters WHERE tenant_id = $1", &[&t.id])
        .await;
    assert_eq!(prune(s.db(), day).await, 1);
    assert_eq!(seqs(&s, t.id.clone()).await, [4]);
    // Zero retention keeps everything.
    assert_eq!(prune(s.db(), Duration::ZERO).await, 0);
    s.stop().await;
}
