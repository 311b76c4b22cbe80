//! The outbox end to end: a plugin's email (WIT `email`) and an audit alert reach a
//! real SMTP receiver on loopback with attachments intact, or become `.eml` files
//! without SMTP; failing SMTP is retried with backoff then recorded as failed;
//! webhooks receive HMAC-signed events and alerts, with retries and a delivery log;
//! every listing is the tenant's own.

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use mail_parser::MimeHeaders;
use plinth_core::outbox::webhooks::{WebhookEvent, enqueue_event};
use plinth_host::server::ServerConfig;
use plinth_tests::receivers::{SmtpMode, SmtpReceiver, eventually, serve_http};
use plinth_tests::{Client, Guest, TestServer, TestTenant};
use serde_json::{Value, json};

const PROBE: &str = "integrations-probe";

/// Fast delivery for tests: poll every 50 ms, retry after 100 ms, 200 ms, …
fn fast_outbox(config: &mut ServerConfig) {
    config.outbox.poll_interval = Duration::from_millis(50);
    config.outbox.backoff_base = Duration::from_millis(100);
    config.outbox.backoff_max = Duration::from_millis(400);
    config.outbox.max_attempts = 3;
    config.outbox.from = "Plinth Test <plinth@test.example>".into();
}

/// A server with fast delivery, over SMTP at `smtp` (else to `.eml` files), with the
/// integrations probe published as written and a tenant Acme to install it in.
async fn server_with_probe(smtp: Option<&str>) -> (TestServer, TestTenant) {
    let s = TestServer::start_configured(|c| {
        fast_outbox(c);
        c.outbox.smtp_url = smtp.map(|url| plinth_core::outbox::SmtpUrl::parse(url).unwrap());
    })
    .await;
    let publisher = s.publisher("plinth-tests").await;
    publisher.publish(&s, &Guest::named(PROBE)).await.expect(201);
    let a = s.tenant("Acme").await;
    (s, a)
}

/// The generated attachment bytes the probe sends (see its `FileSpec`).
fn pattern(size: usize, seed: u8) -> Vec<u8> {
    (0..size)
        .map(|i| (i.wrapping_mul(31) as u8).wrapping_add(seed))
        .collect()
}

/// A text attachment with non-ASCII characters and CRLF/LF line ends.
const CSV: &str = "region,owner,amount\r\nEMEA,Zoë,1200.50\nAPAC,李,99\n";

/// Ask the probe to send an email (WIT `email`); its answer (`ok`, `result` or `kind`).
async fn probe_email(c: &Client, body: Value) -> Value {
    c.post(&format!("/api/v1/plugins/{PROBE}/email"), body)
        .await
        .expect(200)
        .json()
}

async fn outbox_item(c: &Client, id: &str) -> Value {
    c.get(&format!("/api/v1/outbox/{id}")).await.expect(200).json()
}

/// The tenant's outbox rows matching `query` (`kind=email`, `status=failed`, …).
async fn outbox(c: &Client, query: &str) -> Vec<Value> {
    let page = c.get(&format!("/api/v1/outbox?{query}")).await.expect(200).json();
    page["data"].as_array().cloned().unwrap_or_default()
}

async fn settled(c: &Client, id: &str) -> Value {
    eventually("the outbox row to settle", || async {
        let item = outbox_item(c, id).await;
        (item["status"] == "sent" || item["status"] == "failed").then_some(item)
    })
    .await
}

#[tokio::test]
async fn plugin_email_reaches_smtp_with_attachments_intact() {
    let smtp = SmtpReceiver::start(SmtpMode::Accept).await;
    let (s, a) = server_with_probe(Some(&format!("smtp://mailer:s3cret@{}", smtp.addr))).await;
    let b = s.tenant("Globex").await;
    s.install(&a, PROBE, json!("all")).await.expect(201);
    s.install(&b, PROBE, json!(["secrets"])).await.expect(201);

    let big = 3 * 1024 * 1024 + 17;
    let sent = probe_email(
        &a,
        json!({
            "to": ["Ada Lovelace <ada@example.com>"], "cc": ["grace@example.org"],
            "subject": "Quarterly report ✓", "text": "See attached.", "html": "<p>See <b>attached</b>.</p>",
            "attachments": [
                {"filename": "report.pdf", "content_type": "application/pdf", "size": big, "seed": 7},
                {"filename": "rows.csv", "content_type": "text/csv; charset=utf-8", "text": CSV},
            ],
        }),
    )
    .await;
    assert_eq!(sent["ok"], true, "{sent}");
    let id = sent["result"]["id"].as_str().unwrap().to_string();

    let item = settled(&a, &id).await;
    assert_eq!(item["status"], "sent", "{item}");
    assert_eq!(item["attempts"], 1);
    assert_eq!(item["source"], "plugin:integrations-probe");
    assert_eq!(item["email"]["subject"], "Quarterly report ✓");
    assert_eq!(item["email"]["attachments"][0]["size"], big);

    let got = smtp.received();
    assert_eq!(got.len(), 1);
    let mail = &got[0];
    assert_eq!(mail.from, "plinth@test.example");
    let mut rcpt = mail.rcpt.clone();
    rcpt.sort();
    assert_eq!(rcpt, ["ada@example.com", "grace@example.org"]);
    assert!(
        mail.auth.as_deref().is_some_and(|a| a.starts_with("AUTH")),
        "{:?}",
        mail.auth
    );
    let parsed = mail_parser::MessageParser::default()
        .parse(&mail.data)
        .expect("a MIME message");
    assert_eq!(parsed.subject(), Some("Quarterly report ✓"));
    assert_eq!(parsed.body_text(0).as_deref().map(str::trim), Some("See attached."));
    assert!(parsed.body_html(0).is_some_and(|h| h.contains("<b>attached</b>")));
    let files: Vec<(String, String, Vec<u8>)> = parsed
        .attachments()
        .map(|p| {
            let ct = p
                .content_type()
                .map(|c| format!("{}/{}", c.ctype(), c.subtype().unwrap_or("")))
                .unwrap_or_default();
            (p.attachment_name().unwrap_or("").to_string(), ct, p.contents().to_vec())
        })
        .collect();
    assert_eq!(files.len(), 2);
    assert_eq!(files[0].0, "report.pdf");
    assert_eq!(files[0].1, "application/pdf");
    assert!(files[0].2 == pattern(big, 7), "the PDF arrives byte for byte");
    assert_eq!((files[1].0.as_str(), files[1].1.as_str()), ("rows.csv", "text/csv"));
    assert_eq!(String::from_utf8_lossy(&files[1].2), CSV);

    // Caps and validation come back as WIT errors.
    let over = probe_email(
        &a,
        json!({"to": ["a@example.com"], "subject": "x", "text": "x", "attachments": [
            {"filename": "a.bin", "content_type": "application/octet-stream", "size": 6 << 20, "seed": 0},
            {"filename": "b.bin", "content_type": "application/octet-stream", "size": 5 << 20, "seed": 0}]}),
    )
    .await;
    assert_eq!(
        (over["ok"].clone(), over["kind"].clone()),
        (json!(false), json!("limit")),
        "{over}"
    );
    let bad = probe_email(
        &a,
        json!({"to": ["a@b.c\r\nBcc: x@evil.example"], "subject": "x", "text": "x"}),
    )
    .await;
    assert_eq!(bad["kind"], "invalid", "{bad}");
    assert!(bad["message"].as_str().unwrap().contains("to[0]"), "{bad}");
    // Without the grant: denied, nothing queued.
    let denied = probe_email(&b, json!({"to": ["a@example.com"], "subject": "x", "text": "x"})).await;
    assert_eq!(denied["kind"], "denied", "{denied}");

    // The listing: the tenant admin's own rows only; members may not look.
    let listed = outbox(&a, "kind=email").await;
    let ids: Vec<&str> = listed.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, [id.as_str()]);
    assert!(listed[0].get("payload").is_none(), "no bodies in the listing");
    assert_eq!(outbox(&b, "").await, Vec::<Value>::new());
    b.get(&format!("/api/v1/outbox/{id}")).await.expect(404);
    let member = s.user(&a, "Mia", "member").await;
    member.get("/api/v1/outbox").await.expect(403);
    a.get("/api/v1/outbox?status=bogus").await.expect(422);
    s.stop().await;
}

#[tokio::test]
async fn without_smtp_emails_become_eml_files_and_audit_alerts_share_the_path() {
    let (s, a) = server_with_probe(None).await;
    // An audit policy that emails on a secrets grant: the install below raises it.
    let body = json!({"name": "Secrets", "kind": "capability-grant", "capability": "secrets",
                      "notify": {"emails": ["sec@acme.example"]}});
    a.post("/api/v1/audit/policies", body).await.expect(201);
    s.install(&a, PROBE, json!("all")).await.expect(201);

    let sent = probe_email(
        &a,
        json!({"to": ["ada@example.com"], "subject": "Saved to disk", "text": "hello",
               "attachments": [{"filename": "a.bin", "content_type": "application/octet-stream", "size": 1000, "seed": 3}]}),
    )
    .await;
    let id = sent["result"]["id"].as_str().unwrap().to_string();
    let item = settled(&a, &id).await;
    assert_eq!(item["status"], "sent", "{item}");
    assert_eq!(item["result"], format!("written to outbox/{id}.eml"));
    let eml = std::fs::read(s.data_dir().join("outbox").join(format!("{id}.eml"))).expect("the .eml file");
    let parsed = mail_parser::MessageParser::default().parse(&eml).expect("MIME");
    assert_eq!(parsed.subject(), Some("Saved to disk"));
    let file = parsed.attachments().next().expect("attachment");
    assert_eq!(file.contents(), pattern(1000, 3).as_slice());

    // The alert email: queued by the evaluator, delivered by the same worker.
    plinth_core::audit::policy::evaluate_pending(s.db())
        .await
        .expect("evaluate");
    let alert = eventually("the alert email", || async {
        outbox(&a, "kind=email")
            .await
            .into_iter()
            .find(|i| i["source"] == "audit.alert" && i["status"] == "sent")
    })
    .await;
    assert_eq!(alert["email"]["to"], json!(["sec@acme.example"]));
    let alert_id = alert["id"].as_str().unwrap();
    let eml = std::fs::read_to_string(s.data_dir().join("outbox").join(format!("{alert_id}.eml"))).unwrap();
    assert!(eml.contains("Plinth audit alert: Secrets"), "{eml}");
    s.stop().await;
}

#[tokio::test]
async fn failing_smtp_is_retried_with_backoff_then_recorded_as_failed() {
    let smtp = SmtpReceiver::start(SmtpMode::TempFail).await;
    let (s, a) = server_with_probe(Some(&smtp.url())).await;
    s.install(&a, PROBE, json!("all")).await.expect(201);
    let sent = probe_email(&a, json!({"to": ["ada@example.com"], "subject": "x", "text": "x"})).await;
    let id = sent["result"]["id"].as_str().unwrap().to_string();

    // A retry is visible while it waits.
    let pending = eventually("a failed first attempt", || async {
        let item = outbox_item(&a, &id).await;
        (item["attempts"] == 1 && item["status"] == "pending").then_some(item)
    })
    .await;
    assert!(pending["last_error"].as_str().unwrap().contains("451"), "{pending}");
    assert!(pending["next_attempt_at"].is_string());

    let item = settled(&a, &id).await;
    assert_eq!(item["status"], "failed", "{item}");
    assert_eq!(item["attempts"], 3);
    assert!(item["finished_at"].is_string());
    assert!(item["last_error"].as_str().unwrap().contains("451"), "{item}");
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(smtp.attempt_count(), 3, "no attempts after the last");
    assert!(smtp.received().is_empty());
    assert_eq!(outbox(&a, "status=failed").await[0]["id"], id.as_str());
    s.stop().await;
}

/// What the webhook receiver saw: headers and raw body of each POST.
type Seen = std::sync::Arc<std::sync::Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A webhook receiver on loopback recording every POST to `/hook` (it answers 500 to
/// the first `failures` calls, then 204), and a server with fast delivery that may
/// reach it (the operator allows private addresses).
async fn server_with_receiver(failures: usize) -> (TestServer, SocketAddr, Seen) {
    let seen: Seen = Seen::default();
    let log = seen.clone();
    let router = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let log = log.clone();
            async move {
                let mut l = log.lock().unwrap();
                l.push((headers, body.to_vec()));
                if l.len() <= failures {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let addr = serve_http(router).await;
    let s = TestServer::start_configured(|c| {
        fast_outbox(c);
        c.http.addresses.allow_private = true;
    })
    .await;
    (s, addr, seen)
}

/// Recompute the signature as a receiver would, independently of the host's code.
fn signature_ok(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let ts = headers["plinth-timestamp"].to_str().unwrap();
    let sig = headers["plinth-signature"].to_str().unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{ts}.").as_bytes());
    mac.update(body);
    let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
    let age = time::OffsetDateTime::now_utc().unix_timestamp() - ts.parse::<i64>().unwrap();
    sig == expected && (0..300).contains(&age)
}

#[tokio::test]
async fn webhooks_get_signed_events_and_alerts_with_retries_and_a_log() {
    // The receiver fails its first call, then accepts.
    let (s, addr, seen) = server_with_receiver(1).await;
    let a = s.tenant("Acme").await;
    let b = s.tenant("Globex").await;

    let body = json!({"url": format!("http://{addr}/hook"), "events": ["record.account.*"], "alerts": true});
    let created = a.post("/api/v1/webhooks", body).await.expect(201).json();
    let hook = created["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"));
    // The secret is shown once: never by a read, and not stored in clear.
    for path in ["/api/v1/webhooks".to_string(), format!("/api/v1/webhooks/{hook}")] {
        let r = a.get(&path).await.expect(200);
        assert!(
            !r.text.contains(&secret) && !r.text.contains("\"secret\""),
            "{}",
            r.text
        );
    }
    // Raw SQL: what the database holds is the point here.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT secret FROM webhooks WHERE id = $1")
        .bind(&hook)
        .fetch_one(s.db().reader())
        .await
        .unwrap();
    assert!(!stored.windows(secret.len()).any(|w| w == secret.as_bytes()));
    // Members may not manage webhooks; other tenants do not see them.
    let member = s.user(&a, "Mia", "member").await;
    member.get("/api/v1/webhooks").await.expect(403);
    assert_eq!(b.get("/api/v1/webhooks").await.expect(200).json()["data"], json!([]));
    for path in [
        format!("/api/v1/webhooks/{hook}"),
        format!("/api/v1/webhooks/{hook}/deliveries"),
    ] {
        b.get(&path).await.expect(404);
    }
    a.post(
        "/api/v1/webhooks",
        json!({"url": "http://x.example/", "events": ["Bad Pattern"]}),
    )
    .await
    .expect(422);

    // The events service's entry point: one subscribed event, one not.
    let mut tx = s.db().writer().begin().await.unwrap();
    let payload = json!({"id": "acc-1", "changed": {"name": ["Old", "New"]}});
    let event = WebhookEvent {
        id: "evt-1",
        name: "record.account.updated",
        occurred_at: "2026-11-23T10:00:00Z",
        payload: &payload,
    };
    assert_eq!(enqueue_event(&mut tx, &a.id, &event).await.unwrap(), 1);
    let other = WebhookEvent {
        name: "record.contact.created",
        ..event
    };
    assert_eq!(enqueue_event(&mut tx, &a.id, &other).await.unwrap(), 0);
    // Tenant B has no webhooks: its events go nowhere.
    assert_eq!(enqueue_event(&mut tx, &b.id, &event).await.unwrap(), 0);
    tx.commit().await.unwrap();

    eventually("a retried delivery", || async {
        (seen.lock().unwrap().len() >= 2).then_some(())
    })
    .await;
    let calls = seen.lock().unwrap().clone();
    for (headers, body) in &calls {
        assert!(signature_ok(&secret, headers, body), "signature verifies");
        assert!(!signature_ok("whsec_wrong-secret-000000", headers, body));
        let doc: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(doc["type"], "record.account.updated");
        assert_eq!(doc["id"], "evt-1");
        assert_eq!(doc["tenant_id"], a.id.as_str());
        assert_eq!(doc["data"], payload);
        assert_eq!(headers["plinth-event"], "record.account.updated");
    }
    // The same delivery id on the retry, so receivers can deduplicate.
    assert_eq!(calls[0].0["plinth-delivery"], calls[1].0["plinth-delivery"]);

    let deliveries = eventually("the delivery log", || async {
        let page = a
            .get(&format!("/api/v1/webhooks/{hook}/deliveries"))
            .await
            .expect(200)
            .json();
        let d = page["data"].as_array().cloned().unwrap_or_default();
        (d.len() == 2).then_some(d)
    })
    .await;
    assert_eq!(deliveries[0]["status_code"], 204, "{deliveries:?}");
    assert_eq!(deliveries[1]["status_code"], 500);
    assert_eq!(deliveries[1]["error"], "HTTP 500");

    // An audit alert (as the policy evaluator queues it) fans out to webhooks that take alerts.
    let mut tx = s.db().writer().begin().await.unwrap();
    let alert = json!({"type": "audit.alert", "tenant_id": a.id, "alert": {"policy_name": "Mass delete", "created_at": "2026-11-23T10:00:00Z"}});
    plinth_core::store::audit_policy::enqueue_outbox(
        &mut tx,
        &a.id,
        "webhook",
        &alert.to_string(),
        &plinth_core::store::time::now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    eventually("the alert webhook", || async {
        (seen.lock().unwrap().len() >= 3).then_some(())
    })
    .await;
    let (headers, body) = seen.lock().unwrap()[2].clone();
    assert!(signature_ok(&secret, &headers, &body));
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["type"], "audit.alert");
    assert_eq!(doc["data"]["policy_name"], "Mass delete");

    // Disabled webhooks get nothing new.
    a.patch(&format!("/api/v1/webhooks/{hook}"), json!({"enabled": false}))
        .await
        .expect(200);
    let mut tx = s.db().writer().begin().await.unwrap();
    assert_eq!(enqueue_event(&mut tx, &a.id, &event).await.unwrap(), 0);
    tx.commit().await.unwrap();
    a.delete(&format!("/api/v1/webhooks/{hook}")).await.expect(204);
    s.stop().await;
}

#[tokio::test]
async fn webhook_urls_on_private_addresses_are_refused_by_default() {
    let s = TestServer::start().await;
    let a = s.tenant("Acme").await;
    for url in [
        "http://127.0.0.1:9/hook",
        "http://169.254.169.254/latest",
        "http://[::1]/x",
        "ftp://example.com/",
    ] {
        let r = a
            .post("/api/v1/webhooks", json!({"url": url}))
            .await
            .expect_problem(422, "validation");
        assert_eq!(r.problem_fields(), ["url"], "{url}: {}", r.text);
    }
    s.stop().await;
}

#[tokio::test]
async fn a_record_write_reaches_a_subscribed_webhook_through_the_event_log() {
    let (s, addr, seen) = server_with_receiver(0).await;
    let a = s.tenant("Acme").await;
    let body = json!({"url": format!("http://{addr}/hook"), "events": ["record.account.*"]});
    let created = a.post("/api/v1/webhooks", body).await.expect(201).json();
    let secret = created["secret"].as_str().unwrap().to_string();

    // A contact (not subscribed) and then an account, through the core REST API.
    a.post("/api/v1/records/contact", json!({"fields": {"last_name": "Doe"}}))
        .await
        .expect(201);
    let account = json!({"fields": {"name": "Acme GmbH", "country": "DE"}});
    let account = a.post("/api/v1/records/account", account).await.expect(201).json();
    let id = account["id"].as_str().unwrap().to_string();

    eventually("the webhook call", || async {
        (!seen.lock().unwrap().is_empty()).then_some(())
    })
    .await;
    // Give a wrongly subscribed contact event the chance to arrive, then check.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "only the account event is subscribed");
    let (headers, body) = &calls[0];
    assert!(signature_ok(&secret, headers, body));
    let doc: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(doc["type"], "record.account.created");
    assert_eq!(doc["data"]["id"], id.as_str());
    assert_eq!(doc["tenant_id"], a.id.as_str());
    s.stop().await;
}
