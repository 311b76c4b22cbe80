//! Notifications end to end (docs/notifications.md): a plugin granted `notify` puts
//! notifications in a user's inbox, once per key — also when an event handler that
//! notified fails and is retried — and by email for the categories the user chose;
//! users read, page and mark their own inbox only.

use std::time::{Duration, Instant};

use plinth_host::workers::events::EventsConfig;
use plinth_tests::{Client, Guest, TestServer, TestTenant, TestUser};
use serde_json::{Value, json};

const PROBE: &str = "event-probe";

/// A server with the event probe (which may notify) installed in a tenant with every
/// grant, and a member, Max.
async fn world() -> (TestServer, TestTenant, TestUser) {
    let s = TestServer::start().await;
    let publisher = s.publisher("plinth-tests").await;
    publisher.publish(&s, &Guest::named(PROBE)).await.expect(201);
    let t = s.tenant("Acme").await;
    s.install(&t, PROBE, json!("all")).await.expect(201);
    let max = s.user(&t, "Max", "member").await;
    (s, t, max)
}

/// Have the probe notify `user`; whether the host sent it now.
async fn notify(t: &TestTenant, user: &str, key: &str, category: &str, title: &str) -> bool {
    let body = json!({ "user_id": user, "key": key, "category": category, "title": title,
                       "body": "Details inside.", "link": "/api/v1/records/account/01J" });
    let answer = t
        .post(&format!("/api/v1/plugins/{PROBE}/notify"), body)
        .await
        .expect(200)
        .json();
    answer["sent"].as_bool().expect("sent is a boolean")
}

/// Titles of a page of `who`'s inbox, with the answer.
async fn inbox(who: &Client, query: &str) -> (Vec<String>, Value) {
    let page = who
        .get(&format!("/api/v1/me/notifications{query}"))
        .await
        .expect(200)
        .json();
    let titles = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["title"].as_str().unwrap().to_string())
        .collect();
    (titles, page)
}

#[tokio::test]
async fn plugins_notify_once_per_key_and_users_work_their_inbox() {
    let (s, t, max) = world().await;
    assert!(notify(&t, &max.id, "deal-1", "deals.won", "Globex signed").await);
    assert!(notify(&t, &max.id, "deal-2", "deals.lost", "Initech walked away").await);
    assert!(notify(&t, &max.id, "deal-3", "deals.won", "Hooli signed").await);
    assert!(
        !notify(&t, &max.id, "deal-1", "deals.won", "Globex signed (again)").await,
        "same key: not again"
    );

    let (titles, page) = inbox(&max, "").await;
    assert_eq!(
        titles,
        ["Hooli signed", "Initech walked away", "Globex signed"],
        "newest first"
    );
    assert_eq!(page["unread"], 3);
    let first = &page["data"][2];
    assert_eq!(
        (first["plugin"].as_str(), first["category"].as_str()),
        (Some(PROBE), Some("deals.won"))
    );
    assert_eq!(first["link"], "/api/v1/records/account/01J");

    // Reading one moves it below the unread ones; pages follow that order.
    let globex = first["id"].as_str().unwrap().to_string();
    let read = max
        .request("POST", &format!("/api/v1/me/notifications/{globex}/read"))
        .await
        .expect(200)
        .json();
    assert!(read["read_at"].is_string());
    let (page1, p) = inbox(&max, "?limit=2").await;
    let cursor = p["next_cursor"].as_str().expect("a second page").to_string();
    let (page2, p2) = inbox(&max, &format!("?limit=2&cursor={cursor}")).await;
    assert_eq!(page1, ["Hooli signed", "Initech walked away"]);
    assert_eq!(page2, ["Globex signed"]);
    assert_eq!(
        (p2["next_cursor"].clone(), p2["unread"].clone()),
        (Value::Null, json!(2))
    );
    let (unread, _) = inbox(&max, "?unread=true").await;
    assert_eq!(unread, ["Hooli signed", "Initech walked away"]);

    // Nobody else reads or marks Max's notifications.
    t.request("POST", &format!("/api/v1/me/notifications/{globex}/read"))
        .await
        .expect_problem(404, "not-found");
    assert_eq!(
        inbox(&t, "").await.0,
        Vec::<String>::new(),
        "the owner's inbox is their own"
    );

    let all = max
        .request("POST", "/api/v1/me/notifications/read-all")
        .await
        .expect(200)
        .json();
    assert_eq!(all["marked"], 2);
    assert_eq!(inbox(&max, "").await.1["unread"], 0);

    // The host checks what a plugin sends and names every problem.
    let bad = json!({ "user_id": max.id, "key": "k", "category": "Bad Category", "title": "x",
                      "link": "https://evil.example/login" });
    let r = t.post(&format!("/api/v1/plugins/{PROBE}/notify"), bad).await;
    assert!(r.status >= 400 && r.status < 500, "{}", r.text);
    assert!(r.text.contains("category") && r.text.contains("link"), "{}", r.text);
    let stranger = json!({ "user_id": "no-such-user", "key": "k2", "category": "deals.won", "title": "x" });
    t.post(&format!("/api/v1/plugins/{PROBE}/notify"), stranger)
        .await
        .expect(404);
    s.stop().await;
}

#[tokio::test]
async fn an_email_copy_goes_only_for_chosen_categories() {
    let (s, t, max) = world().await;
    let settings = "/api/v1/me/notification-settings";
    max.put(&format!("{settings}/deals.won"), json!({ "email": true }))
        .await
        .expect(200);
    max.put(&format!("{settings}/deals.lost"), json!({ "email": true }))
        .await
        .expect(200);
    max.put(&format!("{settings}/deals.lost"), json!({ "email": false }))
        .await
        .expect(200);
    assert_eq!(
        max.get(settings).await.expect(200).json()["email"],
        json!(["deals.won"])
    );
    max.put(&format!("{settings}/Not%20A%20Category"), json!({ "email": true }))
        .await
        .expect_problem(422, "validation");

    notify(&t, &max.id, "deal-1", "deals.won", "Globex signed").await;
    notify(&t, &max.id, "deal-2", "deals.lost", "Initech walked away").await;
    notify(&t, &max.id, "deal-1", "deals.won", "Globex signed").await;
    let emails = t.get("/api/v1/outbox?kind=email").await.expect(200).json();
    let subjects: Vec<(Value, Value)> = emails["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["email"]["subject"].clone(), e["email"]["to"].clone()))
        .collect();
    let max_email = t.get(&format!("/api/v1/users/{}", max.id)).await.expect(200).json()["email"].clone();
    assert_eq!(
        subjects,
        [(json!("Globex signed"), json!([max_email]))],
        "one email, for the chosen category"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_retried_event_handler_notifies_once() {
    let (s, t, max) = world().await;
    s.server.state.events.set_config(EventsConfig {
        poll_interval: Duration::from_millis(25),
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        ..EventsConfig::default()
    });
    // The probe notifies, then fails the first two deliveries of each event.
    t.put(&format!("/api/v1/installations/{PROBE}/settings/fail_times"), json!(2))
        .await
        .expect(204);
    t.post(
        &format!("/api/v1/plugins/{PROBE}/emit/notify"),
        json!({ "user_id": max.id, "title": "Forecast submitted" }),
    )
    .await
    .expect(200);
    let started = Instant::now();
    let delivered = loop {
        let received = t
            .get(&format!("/api/v1/plugins/{PROBE}/received"))
            .await
            .expect(200)
            .json();
        let attempts: Vec<&Value> = received
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["name"] == "event-probe.notify")
            .collect();
        if attempts.iter().any(|e| e["failed"] == false) {
            break attempts.len();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never delivered: {received}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(delivered, 3, "two failed attempts, then one that succeeded");
    let (titles, _) = inbox(&max, "").await;
    assert_eq!(titles, ["Forecast submitted"], "three attempts, one notification");
    s.stop().await;
}
