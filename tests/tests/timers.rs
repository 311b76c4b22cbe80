//! Durable timers and cron end to end: the `timer-probe` guest schedules through its
//! endpoints and records every `on-timer` call in its storage (`GET /fires`), on a
//! real server over SQLite or PostgreSQL.
//!
//! Only the 200 ms timer and the multi-host test use real time; everything else
//! drives a manual clock and waits for the scheduler to catch up with it.

use std::time::{Duration, Instant};

use plinth_core::timers::Clock;
use plinth_tests::{Client, Guest, TestServer, TestTenant, database_kind};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::macros::datetime;

/// The probe's own endpoints.
const PROBE: &str = "/api/v1/plugins/timer-probe";
/// The tenant admin's view of the probe's timers.
const TIMERS: &str = "/api/v1/installations/timer-probe/timers";
/// Where the manual clock of most tests starts.
const NOON: OffsetDateTime = datetime!(2026-11-24 12:00:00 UTC);

/// Publish the probe and install it in a new tenant with `grants`.
async fn install_probe(s: &TestServer, grants: Value) -> TestTenant {
    let publisher = s.publisher("plinth-tests").await;
    publisher.publish(s, &Guest::named("timer-probe")).await.expect(201);
    let t = s.tenant("Timers").await;
    s.install(&t, "timer-probe", grants).await.expect(201);
    t
}

/// A server whose timers go by a manual clock set to `at`, with the probe installed
/// (all grants) in a tenant.
async fn driven_probe(at: OffsetDateTime) -> (TestServer, TestTenant) {
    let s = TestServer::start_with_clock(Clock::manual(at)).await;
    let t = install_probe(&s, json!("all")).await;
    (s, t)
}

/// Schedule a one-shot timer `millis` from now.
async fn after(c: &Client, key: &str, millis: u64, payload: &str) {
    let body = json!({ "key": key, "millis": millis, "payload": payload });
    c.post(&format!("{PROBE}/after"), body).await.expect(200);
}

/// Schedule a cron timer; its first fire time.
async fn cron(c: &Client, key: &str, expression: &str, zone: &str) -> String {
    let body = json!({ "key": key, "expression": expression, "time_zone": zone, "payload": key });
    let r = c.post(&format!("{PROBE}/cron"), body).await.expect(200).json();
    r["next_fire"].as_str().expect("next_fire").to_string()
}

/// Fires recorded by the probe: key → {count, payloads, user, roles}.
async fn fires(c: &Client) -> Value {
    c.get(&format!("{PROBE}/fires")).await.expect(200).json()
}

/// How often each of `keys` fired (0: never).
async fn counts<const N: usize>(c: &Client, keys: [&str; N]) -> [u64; N] {
    let f = fires(c).await;
    keys.map(|key| f[key]["count"].as_u64().unwrap_or(0))
}

/// The plugin's own view of its pending timers.
async fn pending(c: &Client) -> Vec<Value> {
    let timers = c.get(&format!("{PROBE}/timers")).await.expect(200).json();
    timers.as_array().cloned().unwrap_or_default()
}

/// The plugin cancels its timer `key`; whether there was one.
async fn cancel(c: &Client, key: &str) -> Value {
    c.delete(&format!("{PROBE}/timers/{key}")).await.expect(200).json()["cancelled"].clone()
}

/// The tenant admin's view.
async fn admin_timers(c: &Client) -> Value {
    c.get(TIMERS).await.expect(200).json()
}

async fn advance(s: &TestServer, by: Duration) {
    s.clock().advance(by);
    s.timers_caught_up().await;
}

#[tokio::test]
async fn a_timer_runs_as_the_user_who_set_it_and_waits_while_they_are_deactivated() {
    let (s, t) = driven_probe(NOON).await;
    let max = s.user(&t, "Max", "member").await;
    after(&max, "report", 60_000, "weekly").await;
    let user = format!("/api/v1/users/{}", max.id);
    t.patch(&user, json!({ "status": "disabled" })).await.expect(200);

    // Due, but its user is deactivated: held, shown as paused, never run with stale rights.
    advance(&s, Duration::from_secs(120)).await;
    assert_eq!(counts(&t, ["report"]).await, [0]);
    let listed = admin_timers(&t).await;
    assert_eq!(
        (listed["data"][0]["state"].clone(), listed["data"][0]["run_as"].clone()),
        (json!("paused"), json!(max.id))
    );

    // Active again (and promoted meanwhile): it fires, as Max with his roles of now.
    t.patch(&user, json!({ "status": "active", "role": "manager" }))
        .await
        .expect(200);
    advance(&s, Duration::from_secs(1)).await;
    let f = fires(&t).await;
    assert_eq!(f["report"]["count"], 1, "{f}");
    assert_eq!(
        (f["report"]["user"].clone(), f["report"]["roles"].clone()),
        (json!(max.id), json!(["manager"]))
    );
    s.stop().await;
}

#[tokio::test]
async fn a_timer_due_in_200ms_fires_once() {
    let s = TestServer::start().await;
    let t = install_probe(&s, json!("all")).await;
    let set = Instant::now();
    after(&t, "soon", 200, "hello").await;
    let deadline = set + Duration::from_secs(10);
    let fired_after = loop {
        let f = fires(&t).await;
        if f["soon"]["count"].as_u64() == Some(1) {
            break set.elapsed();
        }
        assert!(Instant::now() < deadline, "the timer did not fire within 10 s: {f}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        fired_after >= Duration::from_millis(200),
        "fired early: {fired_after:?}"
    );
    // Another full pass later it has still fired once, and the one-shot timer is gone.
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.timers_caught_up().await;
    let f = fires(&t).await;
    assert_eq!(f["soon"]["count"], 1, "{f}");
    assert_eq!(f["soon"]["payloads"], json!(["hello"]));
    // It ran as the user whose call set it: the tenant's owner.
    assert_eq!(
        (f["soon"]["user"].clone(), f["soon"]["roles"].clone()),
        (json!(t.owner_id), json!(["owner"]))
    );
    assert!(pending(&t).await.is_empty());
    assert_eq!(admin_timers(&t).await["data"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn timers_due_while_stopped_fire_once_after_restart() {
    let (s, t) = driven_probe(NOON).await;
    after(&t, "once", 60_000, "while-down").await;
    assert_eq!(
        cron(&t, "every5", "*/5 * * * *", "UTC").await,
        "2026-11-24T12:05:00.000Z"
    );
    s.timers_caught_up().await;
    assert_eq!(fires(&t).await, json!({}), "nothing is due yet");

    // Down for 52 minutes: the one-shot timer came due, the cron missed 10 times.
    let stopped = s.stop_keeping_data().await;
    let s = stopped.start().await;
    // The restarted server listens elsewhere: the same key, on its address.
    let t = s.client(&t.key);
    s.clock().advance(Duration::from_secs(52 * 60));
    s.timers_caught_up().await;
    assert_eq!(counts(&t, ["once", "every5"]).await, [1, 1]);
    let timers = pending(&t).await;
    assert_eq!(timers.len(), 1, "{timers:?}");
    assert_eq!(
        timers[0]["next_fire"], "2026-11-24T12:55:00.000Z",
        "the cron continues on schedule"
    );

    // And it carries on: 12:55 fires once more, nothing else does.
    advance(&s, Duration::from_secs(3 * 60)).await;
    s.timers_caught_up().await;
    assert_eq!(counts(&t, ["once", "every5"]).await, [1, 2]);
    s.stop().await;
}

#[tokio::test]
async fn cron_fires_on_schedule_with_a_driven_clock() {
    let (s, t) = driven_probe(NOON).await;
    cron(&t, "every5", "*/5 * * * *", "UTC").await;
    let mut fired_at = Vec::new();
    for minute in 1..=60 {
        advance(&s, Duration::from_secs(60)).await;
        if counts(&t, ["every5"]).await[0] > fired_at.len() as u64 {
            fired_at.push(minute);
        }
    }
    assert_eq!(fired_at, (1..=12).map(|i| i * 5).collect::<Vec<_>>());
    assert_eq!(counts(&t, ["every5"]).await, [12]);
    let listed = admin_timers(&t).await;
    assert_eq!(listed["data"][0]["fires"], 12, "{listed}");
    assert_eq!(listed["data"][0]["next_fire"], "2026-11-24T13:05:00.000Z");
    assert_eq!(listed["data"][0]["kind"], "cron");
    s.stop().await;
}

#[tokio::test]
async fn cron_in_a_time_zone_follows_daylight_saving() {
    // Europe/Berlin springs forward on 2026-03-29: 02:00 local becomes 03:00.
    let (s, t) = driven_probe(datetime!(2026-03-27 23:00:00 UTC)).await;
    let first = cron(&t, "nightly", "30 2 * * *", "Europe/Berlin").await;
    assert_eq!(first, "2026-03-28T01:30:00.000Z");
    let mut fired_at = Vec::new();
    for _ in 0..(3 * 24 * 4) {
        advance(&s, Duration::from_secs(15 * 60)).await;
        if counts(&t, ["nightly"]).await[0] > fired_at.len() as u64 {
            fired_at.push(plinth_core::store::time::format(s.clock().now()));
        }
    }
    assert_eq!(
        fired_at,
        [
            "2026-03-28T01:30:00.000Z", // 02:30 CET
            "2026-03-29T01:00:00.000Z", // 02:30 does not exist: right after the gap, 03:00 CEST
            "2026-03-30T00:30:00.000Z", // 02:30 CEST
        ]
    );
    s.stop().await;
}

#[tokio::test]
async fn setting_a_key_again_replaces_the_timer() {
    let (s, t) = driven_probe(NOON).await;
    cron(&t, "k", "* * * * *", "UTC").await;
    after(&t, "k", 60_000, "first").await;
    after(&t, "k", 120_000, "second").await;
    assert_eq!(
        pending(&t).await,
        [
            json!({ "key": "k", "next_fire": "2026-11-24T12:02:00.000Z", "cron": null, "time_zone": null, "payload": "second" })
        ]
    );
    advance(&s, Duration::from_secs(90)).await;
    assert_eq!(fires(&t).await, json!({}), "the replaced timers do not fire");
    advance(&s, Duration::from_secs(60)).await;
    advance(&s, Duration::from_secs(600)).await;
    let f = fires(&t).await;
    assert_eq!(
        (f["k"]["count"].clone(), f["k"]["payloads"].clone()),
        (json!(1), json!(["second"]))
    );
    s.stop().await;
}

#[tokio::test]
async fn cancel_removes_a_pending_timer() {
    let (s, t) = driven_probe(NOON).await;
    after(&t, "doomed", 1_000, "x").await;
    after(&t, "kept", 1_000, "y").await;
    assert_eq!(cancel(&t, "doomed").await, true);
    assert_eq!(cancel(&t, "doomed").await, false);
    advance(&s, Duration::from_secs(5)).await;
    let f = fires(&t).await;
    assert_eq!(
        (f["doomed"].clone(), f["kept"]["count"].clone()),
        (Value::Null, json!(1)),
        "{f}"
    );
    s.stop().await;
}

#[tokio::test]
async fn disabled_plugins_timers_are_held_and_fire_once_on_enable() {
    let (s, t) = driven_probe(NOON).await;
    after(&t, "once", 60_000, "held").await;
    cron(&t, "every5", "*/5 * * * *", "UTC").await;
    t.request("POST", "/api/v1/installations/timer-probe/disable")
        .await
        .expect(200);

    advance(&s, Duration::from_secs(30 * 60)).await;
    advance(&s, Duration::from_secs(60)).await;
    let listed = admin_timers(&t).await;
    assert_eq!(listed["installation_state"], "disabled");
    let states: Vec<&str> = (listed["data"].as_array().expect("data").iter())
        .map(|t| t["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, ["held", "held"], "{listed}");
    assert_eq!(
        listed["data"][0]["next_fire"], "2026-11-24T12:05:00.000Z",
        "not lost either"
    );

    t.request("POST", "/api/v1/installations/timer-probe/enable")
        .await
        .expect(200);
    s.timers_caught_up().await;
    s.timers_caught_up().await;
    assert_eq!(counts(&t, ["once", "every5"]).await, [1, 1]);
    let timers = pending(&t).await;
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0]["next_fire"], "2026-11-24T12:35:00.000Z");
    s.stop().await;
}

#[tokio::test]
async fn uninstall_drops_the_plugins_timers() {
    let (s, t) = driven_probe(NOON).await;
    after(&t, "a", 60_000, "a").await;
    cron(&t, "b", "0 * * * *", "UTC").await;
    t.delete("/api/v1/installations/timer-probe").await.expect(204);
    s.install(&t, "timer-probe", json!("all")).await.expect(201);
    assert!(pending(&t).await.is_empty(), "a re-install starts without timers");
    advance(&s, Duration::from_secs(2 * 3600)).await;
    assert_eq!(fires(&t).await, json!({}));
    s.stop().await;
}

#[tokio::test]
async fn failures_are_recorded_and_not_retried() {
    let (s, t) = driven_probe(NOON).await;
    after(&t, "bad", 1_000, "fail").await;
    // A fire may schedule its own key again: the new timer survives the fire.
    after(&t, "again", 1_000, "again:60000").await;
    advance(&s, Duration::from_secs(2)).await;
    advance(&s, Duration::from_secs(600)).await;
    let f = fires(&t).await;
    assert_eq!(f["bad"]["count"], 1, "not retried: {f}");
    assert_eq!(f["again"]["payloads"], json!(["again:60000", "again-done"]), "{f}");
    let listed = admin_timers(&t).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    let bad = &listed["data"][0];
    assert_eq!(
        (bad["key"].as_str(), bad["state"].as_str()),
        (Some("bad"), Some("failed")),
        "{listed}"
    );
    assert_eq!(bad["failures"], 1);
    assert!(
        bad["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("asked this timer to fail")),
        "{bad}"
    );
    assert!(
        pending(&t).await.is_empty(),
        "a failed one-shot timer is no longer pending"
    );
    s.stop().await;
}

#[tokio::test]
async fn invalid_timers_and_limits_are_refused() {
    let (s, t) = driven_probe(NOON).await;
    let cases = [
        (
            "/cron",
            json!({ "key": "c", "expression": "* * * *", "time_zone": "UTC", "payload": "" }),
            400,
        ),
        (
            "/cron",
            json!({ "key": "c", "expression": "* * * * *", "time_zone": "Mars/Base", "payload": "" }),
            400,
        ),
        ("/at", json!({ "key": "a", "time": "next tuesday", "payload": "" }), 400),
        (
            "/at",
            json!({ "key": "a", "time": "2040-01-01T00:00:00Z", "payload": "" }),
            400,
        ),
        ("/after", json!({ "key": "", "millis": 1, "payload": "" }), 400),
        (
            "/after",
            json!({ "key": "k".repeat(201), "millis": 1, "payload": "" }),
            400,
        ),
        (
            "/after",
            json!({ "key": "big", "millis": 1, "payload": "x".repeat(64 * 1024 + 1) }),
            429,
        ),
    ];
    for (path, body, status) in cases {
        t.post(&format!("{PROBE}{path}"), body).await.expect(status);
    }
    assert!(pending(&t).await.is_empty());
    s.stop().await;
}

#[tokio::test]
async fn a_plugin_without_the_schedule_grant_is_denied() {
    let s = TestServer::start().await;
    let t = install_probe(&s, json!(["storage"])).await;
    for (method, path, body) in [
        (
            "POST",
            "/after",
            Some(json!({ "key": "k", "millis": 10, "payload": "" })),
        ),
        (
            "POST",
            "/cron",
            Some(json!({ "key": "k", "expression": "* * * * *", "time_zone": "UTC", "payload": "" })),
        ),
        ("GET", "/timers", None),
        ("DELETE", "/timers/k", None),
    ] {
        let call = t.request(method, &format!("{PROBE}{path}"));
        let call = match body {
            Some(body) => call.json(body),
            None => call,
        };
        let r = call.await.expect(403);
        assert!(r.text.contains("schedule"), "{}", r.text);
    }
    s.stop().await;
}

#[tokio::test]
async fn a_component_importing_schedule_must_declare_it() {
    let s = TestServer::start().await;
    let publisher = s.publisher("plinth-tests").await;
    let undeclared = Guest::named("timer-probe").remove("capabilities.schedule");
    let r = publisher.publish(&s, &undeclared).await.expect(422);
    assert!(r.text.contains("plinth:plugin/schedule"), "{}", r.text);
    s.stop().await;
}

/// 100 timers due at the same instant. On PostgreSQL two hosts share the database
/// and race to claim them; on SQLite — one process by design — a single host fires
/// them (the same assertion, without the second host: noted in the output).
#[tokio::test]
async fn hundred_timers_fire_exactly_once_across_hosts() {
    let a = TestServer::start().await;
    let t = install_probe(&a, json!("all")).await;
    let two_hosts = database_kind() == "postgres";
    let b = if two_hosts {
        Some(a.another_host().await)
    } else {
        eprintln!("SQLite: a single host fires the 100 timers (several hosts need PostgreSQL)");
        None
    };
    // The tenant's owner on host b as well, when there is one.
    let on_b = b.as_ref().map(|b| b.client(&t.key));
    let due = OffsetDateTime::now_utc() + Duration::from_millis(1500);
    let due = plinth_core::store::time::format(due);
    for i in 0..100 {
        let host: &Client = match (&on_b, i % 2) {
            (Some(on_b), 1) => on_b,
            _ => &t,
        };
        let body = json!({ "key": format!("t{i:03}"), "time": due, "payload": format!("p{i}") });
        host.post(&format!("{PROBE}/at"), body).await.expect(200);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let f = fires(&t).await;
        let total: u64 = f
            .as_object()
            .map_or(0, |m| m.values().filter_map(|v| v["count"].as_u64()).sum());
        if total >= 100 {
            break;
        }
        assert!(Instant::now() < deadline, "only {total} of 100 fired within 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    a.timers_caught_up().await;
    if let Some(b) = &b {
        b.timers_caught_up().await;
    }
    let f = fires(&t).await;
    let counts = f.as_object().expect("fires");
    assert_eq!(counts.len(), 100, "{f}");
    for i in 0..100 {
        let v = &counts[&format!("t{i:03}")];
        assert_eq!(
            (v["count"].clone(), v["payloads"].clone()),
            (json!(1), json!([format!("p{i}")])),
            "t{i:03}"
        );
    }
    let fired_by = |s: &TestServer| -> u64 {
        s.server
            .state
            .plugins
            .metrics
            .for_plugin(&t.id, "timer-probe")
            .iter()
            .filter(|x| x.entry == plinth_runtime::plugins::metrics::Entry::Timer)
            .map(|x| x.invocations)
            .sum()
    };
    let by_a = fired_by(&a);
    let by_b = b.as_ref().map_or(0, fired_by);
    eprintln!("fired by host a: {by_a}, by host b: {by_b}");
    assert_eq!(by_a + by_b, 100);
    assert!(pending(&t).await.is_empty());
    if let Some(b) = b {
        b.stop().await;
    }
    a.stop().await;
}

#[tokio::test]
async fn tenants_are_isolated_and_admins_can_list_and_cancel() {
    let (s, a) = driven_probe(NOON).await;
    let b = s.tenant("Other").await;
    s.install(&b, "timer-probe", json!("all")).await.expect(201);
    // The same key in two tenants names two timers.
    after(&a, "shared", 60_000, "a").await;
    after(&b, "shared", 120_000, "b").await;
    let (mine, theirs) = (pending(&a).await, pending(&b).await);
    assert_eq!((mine.len(), theirs.len()), (1, 1));
    assert_eq!(
        (mine[0]["payload"].as_str(), theirs[0]["payload"].as_str()),
        (Some("a"), Some("b"))
    );
    let listed = admin_timers(&b).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed["data"][0]["payload"], "b");

    // A tenant without the plugin sees nothing, and cannot cancel anything.
    let c = s.tenant("Third").await;
    let shared = format!("{TIMERS}/shared");
    c.get(TIMERS).await.expect_problem(404, "not-found");
    c.delete(&shared).await.expect(404);

    // Listing and cancelling are for admins.
    let member = s.user(&a, "Mia Member", "member").await;
    member.get(TIMERS).await.expect(403);
    member.delete(&shared).await.expect(403);

    // B's admin cancels B's timer; A's is untouched. Cancelling again is a 404.
    b.delete(&shared).await.expect(204);
    b.delete(&shared).await.expect(404);
    assert!(pending(&b).await.is_empty());
    assert_eq!(pending(&a).await.len(), 1);
    let cancels = b.audit_events(&[("action", "plugin_timer.cancel")]).await;
    let cancelled: Vec<(&str, &str)> = cancels
        .iter()
        .map(|e| {
            (
                e["entity_id"].as_str().unwrap_or("?"),
                e["actor"]["user"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(cancelled, [("timer-probe/shared", b.owner_id.as_str())], "{cancels:?}");
    assert_eq!(
        a.audit_events(&[("action", "plugin_timer.cancel")]).await,
        Vec::<Value>::new()
    );

    advance(&s, Duration::from_secs(180)).await;
    let (fa, fb) = (fires(&a).await, fires(&b).await);
    assert_eq!(fa["shared"]["payloads"], json!(["a"]), "{fa}");
    assert_eq!(fb, json!({}), "the cancelled timer does not fire");
    s.stop().await;
}

/// The per-plugin cap, at the store (the capability passes `spec::MAX_TIMERS`, 10,000,
/// too many to set over HTTP in a test): new keys beyond it are refused with `Limit`,
/// replacing an existing key still works, and other plugins and tenants have their own.
#[tokio::test]
async fn the_timer_count_limit_refuses_new_keys_only() {
    use plinth_core::store::StoreError;
    use plinth_core::store::timers::{NewTimer, SetOutcome};
    let dir = tempfile::tempdir().expect("temp dir");
    let db = plinth_tests::fresh_db(dir.path()).await;
    let now = "2026-11-24T12:00:00.000Z";
    let timer = |key: &'static str| NewTimer {
        key,
        payload: "",
        cron: None,
        due_at: "2026-11-24T13:00:00.000Z",
        run_as: None,
    };
    for key in ["a", "b", "c"] {
        let set = db.set_timer("t1", "p", timer(key), now, 3).await.expect("set");
        assert_eq!(set, SetOutcome::Created);
    }
    let over = db.set_timer("t1", "p", timer("d"), now, 3).await;
    assert!(matches!(over, Err(StoreError::Limit(_))), "{over:?}");
    assert_eq!(
        db.set_timer("t1", "p", timer("a"), now, 3).await.expect("replace"),
        SetOutcome::Replaced
    );
    db.set_timer("t1", "other-plugin", timer("d"), now, 3)
        .await
        .expect("another plugin");
    db.set_timer("t2", "p", timer("d"), now, 3)
        .await
        .expect("another tenant");
    assert!(db.cancel_timer("t1", "p", "b").await.expect("cancel"));
    db.set_timer("t1", "p", timer("d"), now, 3)
        .await
        .expect("room again after a cancel");
    let keys: Vec<String> = db
        .pending_timers("t1", "p")
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.key)
        .collect();
    assert_eq!(keys, ["a", "c", "d"]);
}
