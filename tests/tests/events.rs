//! Events end to end on a real server (SQLite, or PostgreSQL with
//! `PLINTH_TEST_DATABASE_URL`): record writes reach the subscribed `event-probe`
//! guest in commit order; retries with backoff; the dead-letter list with replay and
//! discard; held while disabled and resumed on enable; cause and depth of a plugin's
//! own writes and the depth limit; grants; tenant isolation; the event log endpoint;
//! two hosts on one PostgreSQL; pruning of delivered events.
//!
//! Timing is deterministic: the backoff is shortened to milliseconds and the tests
//! wait for `GET /api/v1/events/subscriptions` to report a plugin caught up (with a
//! timeout) instead of sleeping.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use plinth_core::store::Dialect;
use plinth_host::workers::events::EventsConfig;
use plinth_tests::{Client, Guest, TestPublisher, TestServer, TestTenant, database_kind};
use serde_json::{Value, json};

const PROBE: &str = "event-probe";
const WAIT: Duration = Duration::from_secs(60);
const DEAD_LETTERS: &str = "/api/v1/events/dead-letters";

/// Poll every 25 ms; retry after `backoff_base` doubling up to `backoff_max`, at most
/// `max_attempts` tries.
fn retries(s: &TestServer, backoff_base: u64, backoff_max: u64, max_attempts: u32) {
    s.server.state.events.set_config(EventsConfig {
        poll_interval: Duration::from_millis(25),
        backoff_base: Duration::from_millis(backoff_base),
        backoff_max: Duration::from_millis(backoff_max),
        max_attempts,
        ..EventsConfig::default()
    });
}

/// A server with fast retries (milliseconds), the probe published as written, and a
/// tenant to install it in.
async fn server_with_probe(max_attempts: u32) -> (TestServer, TestTenant, TestPublisher) {
    let s = TestServer::start().await;
    retries(&s, 10, 80, max_attempts);
    let p = s.publisher("plinth-tests").await;
    let t = s.tenant("Acme").await;
    p.publish(&s, &Guest::named(PROBE)).await.expect(201);
    (s, t, p)
}

/// [`server_with_probe`], with the probe installed (all grants) in the tenant.
async fn installed_probe(max_attempts: u32) -> (TestServer, TestTenant) {
    let (s, t, _) = server_with_probe(max_attempts).await;
    s.install(&t, PROBE, json!("all")).await.expect(201);
    (s, t)
}

/// The probe component as plugin `id` subscribing to `events`.
fn probe_as(id: &str, events: &[&str]) -> Guest {
    Guest::named(PROBE)
        .set("plugin.id", id)
        .set("capabilities.events", json!(events))
}

/// Make the probe fail its next `times` deliveries (`-1`: all of them).
async fn set_fail_times(c: &Client, id: &str, times: i64) {
    c.put(&format!("/api/v1/installations/{id}/settings/fail_times"), json!(times))
        .await
        .expect(204);
}

/// `POST /api/v1/installations/{id}/{action}` (`disable`, `enable`).
async fn installation(c: &Client, id: &str, action: &str) {
    c.request("POST", &format!("/api/v1/installations/{id}/{action}"))
        .await
        .expect(200);
}

async fn new_opportunity(c: &Client, name: &str) -> String {
    let body = json!({ "fields": { "name": name, "stage": "prospecting", "close_date": "2027-06-30" } });
    let created = c.post("/api/v1/records/opportunity", body).await.expect(201).json();
    created["id"].as_str().expect("id").to_string()
}

async fn set_amount(c: &Client, id: &str, amount: i64) {
    let body = json!({ "fields": { "amount": { "value": amount, "currency": "EUR" } } });
    c.patch(&format!("/api/v1/records/opportunity/{id}"), body)
        .await
        .expect(200);
}

/// Every `on-event` attempt the plugin recorded, in the order it saw them.
async fn received(c: &Client, id: &str) -> Vec<Value> {
    let r = c.get(&format!("/api/v1/plugins/{id}/received")).await.expect(200);
    r.body.as_array().cloned().unwrap_or_default()
}

/// The successful deliveries only.
async fn delivered(c: &Client, id: &str) -> Vec<Value> {
    received(c, id)
        .await
        .into_iter()
        .filter(|e| e["failed"] == false)
        .collect()
}

async fn subscription(c: &Client, id: &str) -> Value {
    let r = c.get("/api/v1/events/subscriptions").await.expect(200);
    r.body["data"]
        .as_array()
        .and_then(|subs| subs.iter().find(|x| x["plugin"] == id).cloned())
        .unwrap_or_else(|| panic!("no subscription for {id}: {}", r.text))
}

/// Poll `id`'s subscription until `ready` holds; fail after [`WAIT`] saying `what`
/// did not happen.
async fn subscription_when(c: &Client, id: &str, what: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let started = Instant::now();
    loop {
        let sub = subscription(c, id).await;
        if ready(&sub) {
            return sub;
        }
        assert!(started.elapsed() < WAIT, "{id}: {what}: {sub}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until `id` has nothing left to deliver (or fail after [`WAIT`]).
async fn drained(c: &Client, id: &str) {
    subscription_when(c, id, "did not catch up", |sub| sub["caught_up"] == true).await;
}

/// The tenant's dead letters (first page).
async fn dead_letters(c: &Client) -> Vec<Value> {
    let page = c.get(DEAD_LETTERS).await.expect(200).json();
    page["data"].as_array().cloned().unwrap_or_default()
}

/// The tenant's event log, whole.
async fn event_log(c: &Client) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = c
            .get(&format!("/api/v1/events?after={after}&limit=100"))
            .await
            .expect(200)
            .json();
        all.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_after"].as_i64() {
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

fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["name"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// The opportunity amount a record event shows (`-1` if none).
fn amount(event: &Value) -> i64 {
    event["payload"]["record"]["fields"]["amount"]["value"]
        .as_i64()
        .unwrap_or(-1)
}

#[tokio::test]
async fn updates_reach_the_subscriber_exactly_in_commit_order() {
    let (s, t, _) = server_with_probe(5).await;
    // Written before the install: never delivered.
    let before = new_opportunity(&t, "Before install").await;
    s.install(&t, PROBE, json!("all")).await.expect(201);
    let id = new_opportunity(&t, "Burst").await;
    for amount in 1..=20 {
        set_amount(&t, &id, amount).await;
    }
    // A concurrent burst over several records: whatever order they commit in is the
    // order they must arrive in.
    let others: Vec<String> = join_all((0..4).map(|i| {
        let t = &t;
        async move { new_opportunity(t, &format!("Parallel {i}")).await }
    }))
    .await;
    // Records in parallel, each record's updates one after the other (concurrent
    // updates of one record without If-Match may conflict, which is not this test's
    // subject).
    join_all(others.iter().map(|o| {
        let t = &t;
        async move {
            for a in 1..=5 {
                set_amount(t, o, a).await;
            }
        }
    }))
    .await;
    drained(&t, PROBE).await;

    let got = delivered(&t, PROBE).await;
    let log: Vec<Value> = event_log(&t)
        .await
        .into_iter()
        .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with("record.opportunity.")))
        .filter(|e| e["payload"]["id"] != before.as_str())
        .collect();
    assert_eq!(log.len(), 1 + 20 + 4 + 20, "{log:?}");
    assert_eq!(ids(&got), ids(&log), "delivered in seq order, each once");
    assert!(received(&t, PROBE).await.iter().all(|e| e["attempt"] == 1));
    assert!(got.iter().all(|e| e["payload"]["id"] != before.as_str()));

    // The burst on one record: created, then amounts 1..=20 in order.
    let burst: Vec<&Value> = got.iter().filter(|e| e["payload"]["id"] == id.as_str()).collect();
    assert_eq!(burst[0]["name"], "record.opportunity.created");
    let amounts: Vec<i64> = burst[1..].iter().map(|e| amount(e)).collect();
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
            .map(amount)
            .collect();
        assert_eq!(amounts, (1..=5).collect::<Vec<_>>());
    }
    s.stop().await;
}

#[tokio::test]
async fn a_plugin_failing_twice_gets_the_event_three_times_and_no_more() {
    let (s, t) = installed_probe(5).await;
    set_fail_times(&t, PROBE, 2).await;
    let id = new_opportunity(&t, "Flaky").await;
    drained(&t, PROBE).await;
    // A later event goes through too, after the first one: nothing is retried again.
    set_amount(&t, &id, 7).await;
    drained(&t, PROBE).await;

    let all = received(&t, PROBE).await;
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
    let order = names(&all);
    assert_eq!(order[..3], ["record.opportunity.created"; 3]);
    assert_eq!(order[3..], ["record.opportunity.updated"; 3]);
    let sub = subscription(&t, PROBE).await;
    assert_eq!(
        (sub["dead_letters"].as_i64(), sub["attempts"].as_i64()),
        (Some(0), Some(0)),
        "{sub}"
    );
    assert_eq!(dead_letters(&t).await, Vec::<Value>::new());
    s.stop().await;
}

#[tokio::test]
async fn always_failing_lands_in_dead_letters_and_replay_delivers_it() {
    let (s, t) = installed_probe(3).await;
    set_fail_times(&t, PROBE, -1).await;
    let id = new_opportunity(&t, "Doomed").await;
    set_amount(&t, &id, 1).await;
    drained(&t, PROBE).await;

    let letters = dead_letters(&t).await;
    assert_eq!(letters.len(), 2, "{letters:?}");
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
    assert_eq!(
        names(&received(&t, PROBE).await),
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
    let page = t.get(&format!("{DEAD_LETTERS}?limit=1")).await.expect(200).json();
    let cursor = page["next_cursor"].as_str().expect("a next cursor");
    let page = t
        .get(&format!("{DEAD_LETTERS}?limit=1&cursor={cursor}"))
        .await
        .expect(200)
        .json();
    assert_eq!(page["data"][0]["id"], letters[1]["id"], "{page}");
    let page = t.get(&format!("{DEAD_LETTERS}?plugin=other")).await.expect(200).json();
    assert_eq!(page["data"], json!([]));
    let r = t
        .get(&format!("{DEAD_LETTERS}?cursor=nope&limit=0"))
        .await
        .expect_problem(400, "bad-request");
    assert_eq!(r.problem_fields().len(), 2, "{}", r.text);

    // Another tenant sees none of it.
    let other = s.tenant("Other").await;
    let first = letters[0]["id"].as_str().unwrap_or_default().to_string();
    let replay = format!("{DEAD_LETTERS}/{first}/replay");
    other.request("POST", &replay).await.expect(404);
    other.delete(&format!("{DEAD_LETTERS}/{first}")).await.expect(404);
    assert_eq!(dead_letters(&other).await, Vec::<Value>::new());
    // Members may not manage them.
    let member = s.user(&t, "Mia Member", "member").await;
    member.request("POST", &replay).await.expect(403);

    // Fixed: replay the first; it is delivered, and leaves the list.
    set_fail_times(&t, PROBE, 0).await;
    let r = t.request("POST", &replay).await.expect(202);
    assert_eq!(r.body["state"], "replaying", "{}", r.text);
    drained(&t, PROBE).await;
    let ok = delivered(&t, PROBE).await;
    assert_eq!(ok.len(), 1, "{ok:?}");
    assert_eq!(ok[0]["id"], letters[0]["event_id"]);
    assert_eq!(ok[0]["attempt"], 4);
    assert_eq!(ids(&dead_letters(&t).await), ids(&letters[1..]));

    // Discard the other: gone, and never delivered.
    let second = format!("{DEAD_LETTERS}/{}", letters[1]["id"].as_str().unwrap_or_default());
    t.delete(&second).await.expect(204);
    t.delete(&second).await.expect(404);
    assert_eq!(dead_letters(&t).await, Vec::<Value>::new());
    assert_eq!(delivered(&t, PROBE).await.len(), 1);

    // Both were audited.
    for action in ["event.dead_letter.replay", "event.dead_letter.discard"] {
        let events = t.audit_events(&[("action", action)]).await;
        assert_eq!(events.len(), 1, "{action}: {events:?}");
    }
    s.stop().await;
}

/// A replay that keeps failing while the event at the head of the log is itself being
/// retried counts its failures on the dead letter: the head event still gets exactly
/// `max_attempts` tries (it used to get its count reset by the replay, and so up to
/// twice as many), and the replay its own `max_attempts`.
#[tokio::test]
async fn a_failing_replay_leaves_the_head_events_count_alone() {
    let (s, t) = installed_probe(3).await;
    set_fail_times(&t, PROBE, -1).await;
    let id = new_opportunity(&t, "Parked").await;
    drained(&t, PROBE).await;
    let letters = dead_letters(&t).await;
    let letter = &letters[0];
    assert_eq!(
        (letter["event_name"].as_str(), letter["attempts"].as_i64()),
        (Some("record.opportunity.created"), Some(3)),
        "{letters:?}"
    );

    // Slow retries, so the replay lands between the head event's tries.
    retries(&s, 400, 400, 3);
    set_amount(&t, &id, 5).await;
    subscription_when(&t, PROBE, "the update never failed", |sub| sub["attempts"] == 1).await;
    let replay = format!("{DEAD_LETTERS}/{}/replay", letter["id"].as_str().unwrap());
    t.request("POST", &replay).await.expect(202);
    subscription_when(&t, PROBE, "not settled", |sub| {
        sub["caught_up"] == true && sub["replaying"] == 0
    })
    .await;

    let tries = |name: &str, all: &[Value]| all.iter().filter(|e| e["name"] == name).count();
    let all = received(&t, PROBE).await;
    assert_eq!(tries("record.opportunity.created", &all), 6, "3 tries, then 3 replayed");
    assert_eq!(tries("record.opportunity.updated", &all), 3, "max_attempts, not more");
    let letters = dead_letters(&t).await;
    let summary: Vec<(String, i64, String)> = letters
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
        summary,
        [
            ("record.opportunity.created".to_string(), 6, "dead".to_string()),
            ("record.opportunity.updated".to_string(), 3, "dead".to_string()),
        ],
        "{letters:?}"
    );
    s.stop().await;
}

/// Make every move of a cursor fail inside the database, as an outage or a broken
/// migration would, until [`heal_cursor_moves`]. The message names the table, which
/// the tenant must not see. (Raw SQL: the fault is in storage, which no API reaches.)
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
    let (s, t) = installed_probe(3).await;
    drained(&t, PROBE).await;
    let before = subscription(&t, PROBE).await;
    assert_eq!(before["stalled"], Value::Null, "{before}");

    break_cursor_moves(&s).await;
    let id = new_opportunity(&t, "Stuck").await;
    let sub = subscription_when(&t, PROBE, "no stall reported", |sub| !sub["stalled"].is_null()).await;
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
    let sub = subscription(&t, PROBE).await;
    assert_eq!(sub["stalled_since"].as_str(), Some(since.as_str()), "{sub}");
    assert_eq!(sub["delivered_through"], before["delivered_through"], "{sub}");

    heal_cursor_moves(&s).await;
    drained(&t, PROBE).await;
    let sub = subscription(&t, PROBE).await;
    assert_eq!(
        (&sub["stalled"], &sub["stalled_since"]),
        (&Value::Null, &Value::Null),
        "{sub}"
    );
    let got = delivered(&t, PROBE).await;
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
    p.publish(&s, &probe_as("event-probe-b", &["record.opportunity.*"]))
        .await
        .expect(201);
    s.install(&t, PROBE, json!("all")).await.expect(201);
    s.install(&t, "event-probe-b", json!("all")).await.expect(201);
    installation(&t, PROBE, "disable").await;

    let id = new_opportunity(&t, "Held").await;
    for amount in 1..=5 {
        set_amount(&t, &id, amount).await;
    }
    // The other subscriber got all six, so the worker has been past them.
    drained(&t, "event-probe-b").await;
    let b = delivered(&t, "event-probe-b").await;
    assert_eq!(b.len(), 6);
    let sub = subscription(&t, PROBE).await;
    assert_eq!(
        (sub["state"].as_str(), sub["caught_up"].as_bool()),
        (Some("disabled"), Some(false)),
        "{sub}"
    );

    installation(&t, PROBE, "enable").await;
    drained(&t, PROBE).await;
    let a = delivered(&t, PROBE).await;
    // The held record events arrive in order (and the other plugin's own lifecycle
    // is not among the probe's subscriptions).
    assert_eq!(ids(&a), ids(&b));

    // The lifecycle steps are in the event log.
    let steps: Vec<(String, String)> = event_log(&t)
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
        steps,
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
    let (s, t) = installed_probe(5).await;
    let id = new_opportunity(&t, "Caused").await;
    let emit = |name: &str| format!("/api/v1/plugins/{PROBE}/emit/{name}");

    // A write through the plugin's records capability, from its endpoint.
    t.post(
        &format!("/api/v1/plugins/{PROBE}/touch/{id}"),
        json!({ "stage": "proposal" }),
    )
    .await
    .expect(200);
    // A write made while handling an event: one hop deeper.
    t.post(&emit("touch"), json!({ "id": id, "stage": "negotiation" }))
        .await
        .expect(200);
    drained(&t, PROBE).await;
    let got = delivered(&t, PROBE).await;
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
    t.post(&emit("loop"), json!({})).await.expect(200);
    drained(&t, PROBE).await;
    let depths: Vec<i64> = delivered(&t, PROBE)
        .await
        .iter()
        .filter(|e| e["name"] == "event-probe.loop")
        .map(|e| e["depth"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(depths, (0..=8).collect::<Vec<_>>());
    let stops = t.audit_events(&[("action", "event.chain_stopped")]).await;
    assert_eq!(stops.len(), 1, "{stops:?}");
    let after = &stops[0]["after"];
    assert_eq!(
        (after["name"].as_str(), after["cause"].as_str(), after["depth"].as_i64()),
        (Some("event-probe.loop"), Some(PROBE), Some(9)),
        "{}",
        stops[0]
    );
    assert!(
        event_log(&t).await.iter().all(|e| e["depth"].as_i64() <= Some(8)),
        "nothing deeper than the limit is logged"
    );

    // Emits are validated: names, payload size.
    t.post(&emit("Bad%20Name"), json!({})).await.expect(400);
    let big = json!({ "blob": "x".repeat(300 * 1024) });
    t.post(&emit("big"), big).await.expect(429);
    s.stop().await;
}

#[tokio::test]
async fn patterns_and_records_not_granted_are_not_delivered() {
    let (s, t, p) = server_with_probe(5).await;
    p.publish(&s, &probe_as("event-probe-b", &["record.opportunity.*"]))
        .await
        .expect(201);
    // The probe without the record subscription: only its own events.
    let grants = json!([
        "storage",
        "config",
        "emit",
        "events:event-probe.*",
        "records:opportunity:read"
    ]);
    s.install(&t, PROBE, grants).await.expect(201);
    // The other with the subscription but without record access: no `record` shown.
    let grants = json!(["storage", "config", "events:record.opportunity.*"]);
    s.install(&t, "event-probe-b", grants).await.expect(201);
    let id = new_opportunity(&t, "Private").await;
    set_amount(&t, &id, 3).await;
    t.post(&format!("/api/v1/plugins/{PROBE}/emit/ping"), json!({}))
        .await
        .expect(200);
    drained(&t, PROBE).await;
    drained(&t, "event-probe-b").await;

    assert_eq!(names(&delivered(&t, PROBE).await), ["event-probe.ping"]);
    let b = delivered(&t, "event-probe-b").await;
    assert_eq!(b.len(), 2, "{b:?}");
    assert_eq!(b[1]["payload"]["id"], id.as_str());
    assert_eq!(b[1]["payload"]["changed"], json!(["amount"]));
    assert!(b.iter().all(|e| e["payload"].get("record").is_none()), "{b:?}");
    assert!(b.iter().all(|e| e["payload"].get("previous").is_none()), "{b:?}");

    // Emitting without the `emit` grant is a `denied` error the plugin sees (it
    // answers 403), not a trap; nothing is logged.
    let before = event_log(&t).await.len();
    let r = t
        .post("/api/v1/plugins/event-probe-b/emit/ping", json!({}))
        .await
        .expect(403);
    assert!(r.text.contains("emit"), "{}", r.text);
    assert_eq!(event_log(&t).await.len(), before);
    s.stop().await;
}

#[tokio::test]
async fn uninstall_drops_pending_events_and_a_reinstall_starts_afresh() {
    let (s, t) = installed_probe(5).await;
    installation(&t, PROBE, "disable").await;
    let id = new_opportunity(&t, "Pending").await;
    set_amount(&t, &id, 1).await;
    assert_eq!(subscription(&t, PROBE).await["caught_up"], false);

    t.delete(&format!("/api/v1/installations/{PROBE}")).await.expect(204);
    let subs = t.get("/api/v1/events/subscriptions").await.expect(200).json();
    assert_eq!(subs["data"], json!([]), "the cursor went with the installation");

    // Re-installed (its storage kept): only what happens from now on arrives.
    s.install(&t, PROBE, json!("all")).await.expect(201);
    set_amount(&t, &id, 2).await;
    drained(&t, PROBE).await;
    let got = delivered(&t, PROBE).await;
    let amounts: Vec<i64> = got.iter().map(amount).collect();
    assert_eq!(amounts, [2], "{got:?}");
    s.stop().await;
}

#[tokio::test]
async fn tenants_never_see_each_others_events() {
    let (s, a, _) = server_with_probe(5).await;
    let b = s.tenant("Beta").await;
    s.install(&a, PROBE, json!("all")).await.expect(201);
    s.install(&b, PROBE, json!("all")).await.expect(201);
    let id = new_opportunity(&a, "A's deal").await;
    set_amount(&a, &id, 9).await;
    drained(&a, PROBE).await;
    drained(&b, PROBE).await;
    assert_eq!(delivered(&a, PROBE).await.len(), 2);
    assert_eq!(received(&b, PROBE).await, Vec::<Value>::new());
    // B's log holds only its own install.
    assert_eq!(names(&event_log(&b).await), ["plugin.installed"]);

    // The log endpoint: admins only, parameters checked.
    let member = s.user(&a, "Max Member", "member").await;
    member.get("/api/v1/events").await.expect(403);
    // Every problem at once: the unknown parameter and both bad known values.
    let bad = a.get("/api/v1/events?after=-1&limit=9999&x=1").await.expect(400);
    let mut fields = bad.problem_fields();
    fields.sort();
    assert_eq!(fields, ["after", "limit", "x"], "{}", bad.text);
    let page = a.get("/api/v1/events?limit=1").await.expect(200).json();
    assert_eq!(
        (page["data"][0]["seq"].as_i64(), page["next_after"].as_i64()),
        (Some(1), Some(1)),
        "{page}"
    );
    s.stop().await;
}

#[tokio::test]
async fn two_hosts_on_one_postgres_deliver_each_event_once_in_order() {
    if database_kind() != "postgres" {
        eprintln!("skipped: needs PostgreSQL (PLINTH_TEST_DATABASE_URL)");
        return;
    }
    let (s, t, _) = server_with_probe(5).await;
    let second = s.another_host().await;
    second.server.state.events.set_config(s.server.state.events.config());

    s.install(&t, PROBE, json!("all")).await.expect(201);
    let id = new_opportunity(&t, "Shared").await;
    for amount in 1..=30 {
        set_amount(&t, &id, amount).await;
        // Wake the other host too, so both race for every event.
        second.server.state.events.wake();
    }
    drained(&t, PROBE).await;
    let all = received(&t, PROBE).await;
    assert_eq!(all.len(), 31, "each event delivered once");
    let amounts: Vec<i64> = all[1..].iter().map(amount).collect();
    assert_eq!(amounts, (1..=30).collect::<Vec<_>>());
    second.stop().await;
    s.stop().await;
}

#[tokio::test]
async fn delivered_events_past_their_retention_are_pruned_and_needed_ones_are_kept() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    for name in ["a", "b", "c", "d"] {
        t.post("/api/v1/records/account", json!({ "fields": { "name": name } }))
            .await
            .expect(201);
    }
    let seqs = || async {
        event_log(&t)
            .await
            .iter()
            .map(|e| e["seq"].as_i64().unwrap_or(-1))
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs().await, [1, 2, 3, 4]);
    // Raw SQL below sets up what no API can: old events, a lagging subscriber and a
    // dead letter. Events 1-3 are old; a subscriber is only past event 1; a dead
    // letter needs event 3.
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
    assert_eq!(seqs().await, [2, 3, 4]);
    // The subscriber catches up: event 2 goes; 3 stays for its dead letter, 4 is recent.
    s.sql(
        "UPDATE event_cursors SET position = 4 WHERE tenant_id = $1 AND plugin_id = 'holder'",
        &[&t.id],
    )
    .await;
    assert_eq!(prune(s.db(), day).await, 1);
    assert_eq!(seqs().await, [3, 4]);
    s.sql("DELETE FROM event_dead_letters WHERE tenant_id = $1", &[&t.id])
        .await;
    assert_eq!(prune(s.db(), day).await, 1);
    assert_eq!(seqs().await, [4]);
    // Zero retention keeps everything.
    assert_eq!(prune(s.db(), Duration::ZERO).await, 0);
    s.stop().await;
}
