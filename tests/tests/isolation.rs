//! The isolation matrix, driven by the OpenAPI document so that it covers every
//! endpoint the server documents — including ones added later: every operation whose
//! path names a tenant-owned thing is called with tenant A's real ids by tenant B's
//! owner (who passes every role check) and must answer 404, leak nothing of A's and
//! change nothing of A's. A documented path this test cannot fill fails the test, so
//! a new endpoint cannot skip the matrix.

mod support;

use plinth_tests::{Guest, TestServer, TestTenant};
use serde_json::{Value, json};
use support::{dump, id, record, request, rows};

/// Tenant A's ids, one per kind of path parameter.
struct Ids {
    member: String,
    key: String,
    group: String,
    child: String,
    record: String,
    /// A record of every other object, by object name.
    others: Vec<(String, String)>,
    policy: String,
    alert: String,
    outbox: String,
    webhook: String,
    dead_letter: String,
    notification: String,
    file: String,
    job: String,
}

/// Paths that do not address tenant-owned data: the operator's (operator token), the
/// public catalog, the API version registry, and the caller's own notification
/// settings (named by category, never by another user's id). Each is checked by its
/// own tests.
fn not_tenant_owned(path: &str) -> bool {
    path.starts_with("/api/v1/operator/")
        || path.starts_with("/api/v1/marketplace/plugins/{id}")
        || path.starts_with("/api/v1/me/notification-settings/")
}

/// Fill `path`'s parameters with tenant A's ids; `None` means the matrix does not
/// know the path — the test then fails and names it.
fn fill(path: &str, ids: &Ids) -> Option<String> {
    // Record operations are documented per object: `/api/v1/records/<object>/{id}`.
    if let Some(rest) = path.strip_prefix("/api/v1/records/")
        && let Some((object, tail)) = rest.split_once('/')
        && !object.starts_with('{')
    {
        let id = if object == "account" {
            &ids.record
        } else {
            &ids.others.iter().find(|(o, _)| o == object)?.1
        };
        let out = format!("/api/v1/records/{object}/{}", tail.replace("{id}", id));
        return (!out.contains('{')).then_some(out);
    }
    let rules: &[(&str, &[(&str, &str)])] = &[
        ("/api/v1/objects/{name}", &[("{name}", "project")]),
        (
            "/api/v1/records/{object}/",
            &[
                ("{object}", "account"),
                ("{id}", &ids.record),
                ("{group_id}", &ids.group),
            ],
        ),
        ("/api/v1/audit/policies/{id}", &[("{id}", &ids.policy)]),
        ("/api/v1/audit/alerts/{id}", &[("{id}", &ids.alert)]),
        ("/api/v1/outbox/{id}", &[("{id}", &ids.outbox)]),
        ("/api/v1/webhooks/{id}", &[("{id}", &ids.webhook)]),
        ("/api/v1/events/dead-letters/{id}", &[("{id}", &ids.dead_letter)]),
        (
            "/api/v1/installations/{plugin}",
            &[("{plugin}", "counter"), ("{name}", "token"), ("{key}", "k")],
        ),
        (
            "/api/v1/plugins/{plugin}",
            &[("{plugin}", "counter"), ("{path}", "version")],
        ),
        ("/api/v1/users/{id}", &[("{id}", &ids.member)]),
        ("/api/v1/me/notifications/{id}", &[("{id}", &ids.notification)]),
        ("/api/v1/files/{id}", &[("{id}", &ids.file)]),
        ("/api/v1/jobs/{id}", &[("{id}", &ids.job)]),
        ("/api/v1/keys/{id}", &[("{id}", &ids.key)]),
        (
            "/api/v1/groups/{id}",
            &[("{id}", &ids.child), ("{user_id}", &ids.member)],
        ),
    ];
    let (_, params) = rules.iter().find(|(prefix, _)| path.starts_with(prefix))?;
    let mut out = path.to_string();
    for (name, value) in *params {
        out = out.replace(name, value);
    }
    (!out.contains('{')).then_some(out)
}

/// A body that passes validation, so the request reaches the lookup of A's id.
fn body(method: &str, path: &str, ids: &Ids) -> Option<Value> {
    if method == "get" || method == "delete" {
        return None;
    }
    let b = if path.starts_with("/api/v1/objects/") {
        json!({ "label": "Pwned" })
    } else if path.ends_with("/shares") {
        json!({ "group_id": ids.group, "access": "read" })
    } else if path.starts_with("/api/v1/records/") {
        json!({ "fields": {} })
    } else if path.starts_with("/api/v1/audit/policies/") || path.starts_with("/api/v1/webhooks/") {
        json!({ "enabled": false })
    } else if path.ends_with("/upgrade") {
        json!({ "version": "1.0.0" })
    } else if path.contains("/secrets/") || path.contains("/settings/") {
        json!({ "value": "pwned" })
    } else if path.starts_with("/api/v1/users/") {
        json!({ "name": "Pwned" })
    } else if path.ends_with("/members") {
        json!({ "user_id": ids.member })
    } else if path.starts_with("/api/v1/groups/") {
        json!({ "name": "Pwned" })
    } else {
        json!({})
    };
    Some(b)
}

/// Tenant A with one of everything a path can name: a member and their key, groups,
/// memberships, an account shared with a group and a record of every other object, an
/// audit policy, a webhook, the `counter` plugin installed, and rows only background
/// work creates (an alert, a failed outbox message, a dead letter).
async fn setup_a(s: &TestServer, a: &TestTenant) -> Ids {
    let member = s.user(a, "Member", "member").await;
    let key = id(&member.get("/api/v1/me").await.expect(200).json()["key"]);
    let create = |path: &'static str, body: Value| {
        let a = a.api.clone();
        async move { id(&a.post(path, body).await.expect(201).json()) }
    };

    let project = json!({ "name": "project", "label": "Project", "fields": [{ "name": "title", "type": "text" }] });
    a.post("/api/v1/objects", project).await.expect(201);
    let group = create("/api/v1/groups", json!({ "name": "Sales" })).await;
    let child = create("/api/v1/groups", json!({ "name": "EMEA", "parent_id": group })).await;
    a.post(
        &format!("/api/v1/groups/{child}/members"),
        json!({ "user_id": member.id }),
    )
    .await
    .expect(201);
    // A record of every object, made before the webhook so that no delivery is queued.
    let mut others = Vec::new();
    for (object, fields) in [
        ("contact", json!({ "last_name": "Doe" })),
        ("lead", json!({ "last_name": "Roe" })),
        (
            "opportunity",
            json!({ "name": "Deal", "stage": "prospecting", "close_date": "2026-12-31" }),
        ),
        ("activity", json!({ "subject": "Call", "type": "call" })),
        ("project", json!({ "title": "Apollo" })),
    ] {
        others.push((object.to_string(), record(a, object, json!({ "fields": fields })).await));
    }
    let record = record(a, "account", json!({ "fields": { "name": "Secret Corp" } })).await;
    a.post(
        &format!("/api/v1/records/account/{record}/shares"),
        json!({ "group_id": group, "access": "read" }),
    )
    .await
    .expect(201);
    let policy = create(
        "/api/v1/audit/policies",
        json!({"name": "p", "kind": "field-change", "object": "account", "field": "name"}),
    )
    .await;
    let webhook = create(
        "/api/v1/webhooks",
        json!({"url": "https://hooks.example.com/a", "events": ["record.*"]}),
    )
    .await;

    // The marketplace: A installs `counter` (B does not).
    let acme = s.publisher("acme").await;
    acme.publish(s, &Guest::named("counter-v1")).await.expect(201);
    s.install(a, "counter", json!("all")).await.expect(201);

    // Rows that only background work creates, written directly.
    let now = "2026-11-24T00:00:00.000Z";
    let alert = ulid::Ulid::new().to_string();
    s.sql(
        "INSERT INTO audit_alerts (tenant_id, id, policy_id, policy_name, kind, event_seq, event_id, event_at, \
         message, created_at) VALUES ($1, $2, $3, 'p', 'field-change', 1, 'e', $4, 'm', $4)",
        &[&a.id, &alert, &policy, now],
    )
    .await;
    let outbox = ulid::Ulid::new().to_string();
    s.sql(
        "INSERT INTO outbox (id, tenant_id, kind, payload, status, next_attempt_at, created_at) \
         VALUES ($1, $2, 'email', '{}', 'failed', $3, $3)",
        &[&outbox, &a.id, now],
    )
    .await;
    let dead_letter = ulid::Ulid::new().to_string();
    s.sql(
        "INSERT INTO event_dead_letters (tenant_id, id, plugin_id, event_seq, event_id, event_name, attempts, \
         error, state, failed_at) VALUES ($1, $2, 'counter', 1, 'e', 'record.account.created', 5, 'x', 'dead', $3)",
        &[&a.id, &dead_letter, now],
    )
    .await;
    let file = a
        .request("POST", "/api/v1/files?name=secret.csv")
        .bytes("text/csv", b"Secret Corp,1".to_vec())
        .await
        .expect(201)
        .json()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Only a plugin with `notify` writes notifications; `counter` has none.
    let notification = ulid::Ulid::new().to_string();
    s.sql(
        "INSERT INTO notifications (tenant_id, id, user_id, plugin_id, dedupe_key, category, title, body, \
         created_at) VALUES ($1, $2, $3, 'counter', 'k', 'c', 'Secret Corp news', '', $4)",
        &[&a.id, &notification, &member.id, now],
    )
    .await;
    // A job that waits (due far ahead), run as the member.
    let job = ulid::Ulid::new().to_string();
    s.sql(
        "INSERT INTO jobs (tenant_id, id, plugin_id, kind, input, run_as, status, steps, attempt, done, \
         cancel_requested, due_at, created_at, updated_at) VALUES ($1, $2, 'counter', 'export', \
         '{\"of\": \"Secret Corp\"}', $3, 'queued', 0, 0, 0, 0, '2999-01-01T00:00:00.000Z', $4, $4)",
        &[&a.id, &job, &member.id, now],
    )
    .await;
    Ids {
        member: member.id,
        key,
        group,
        child,
        record,
        others,
        policy,
        alert,
        outbox,
        webhook,
        dead_letter,
        notification,
        file,
        job,
    }
}

/// A's state as text: the tenancy tables plus everything else B might touch. The
/// audit count alone catches any audited change.
async fn state_of(s: &TestServer, tenant: &str) -> Vec<String> {
    let mut out = dump(s, tenant).await;
    let more = [
        "SELECT id || '|' || CAST(version AS TEXT) || '|' || COALESCE(deleted_at, '-') FROM records \
         WHERE tenant_id = $1 ORDER BY id",
        "SELECT plugin_id || '|' || state || '|' || version FROM installations WHERE tenant_id = $1 ORDER BY plugin_id",
        "SELECT id || '|' || CAST(enabled AS TEXT) FROM webhooks WHERE tenant_id = $1 ORDER BY id",
        "SELECT id || '|' || COALESCE(acknowledged_at, '-') FROM audit_alerts WHERE tenant_id = $1 ORDER BY id",
        "SELECT id || '|' || state FROM event_dead_letters WHERE tenant_id = $1 ORDER BY id",
        "SELECT id || '|' || COALESCE(read_at, '-') FROM notifications WHERE tenant_id = $1 ORDER BY id",
        "SELECT id || '|' || digest FROM files WHERE tenant_id = $1 ORDER BY id",
        "SELECT id || '|' || status || '|' || CAST(cancel_requested AS TEXT) FROM jobs WHERE tenant_id = $1 ORDER BY id",
    ];
    out.extend(rows(s, tenant, &more).await);
    out
}

#[tokio::test]
async fn every_documented_endpoint_answers_another_tenants_ids_with_404_and_changes_nothing() {
    let s = TestServer::start().await;
    let a = s.tenant("Tenant A").await;
    let ids = setup_a(&s, &a).await;
    let b = s.tenant("Tenant B").await;
    let before = state_of(&s, &a.id).await;

    let doc = a.get("/api/v1/openapi.json").await.expect(200).json();
    let paths = doc["paths"].as_object().unwrap();
    let mut secrets = vec![
        ids.member.as_str(),
        &ids.key,
        &ids.group,
        &ids.child,
        &ids.record,
        &ids.policy,
        &ids.alert,
        &ids.outbox,
        &ids.webhook,
        &ids.dead_letter,
        &ids.notification,
        &ids.file,
        &ids.job,
        "Secret Corp",
        "hooks.example.com",
    ];
    secrets.extend(ids.others.iter().map(|(_, id)| id.as_str()));
    let (mut checked, mut unknown) = (0, Vec::new());
    for (template, ops) in paths {
        if !template.contains('{') || not_tenant_owned(template) {
            continue;
        }
        // A's own plugin endpoints are documented per installation; B calls the
        // generic gateway path for them.
        let Some(path) = fill(template, &ids) else {
            unknown.push(template.clone());
            continue;
        };
        for method in ops.as_object().unwrap().keys() {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let body = body(method, template, &ids);
            let sent = format!("{path} {}", body.as_ref().map(Value::to_string).unwrap_or_default());
            let r = request(&b, &method.to_uppercase(), &path, body).await.expect(404);
            for secret in &secrets {
                if !sent.contains(secret) {
                    assert!(
                        !r.text.contains(secret),
                        "{method} {template} leaked {secret}: {}",
                        r.text
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(
        unknown.is_empty(),
        "add these documented paths to the matrix: {unknown:?}"
    );
    assert!(checked >= 60, "only {checked} operations checked");
    assert_eq!(state_of(&s, &a.id).await, before, "tenant B changed tenant A");

    // Lists and searches of B show nothing of A's.
    for path in [
        "/api/v1/users",
        "/api/v1/keys",
        "/api/v1/groups",
        "/api/v1/records/account",
        "/api/v1/objects",
        "/api/v1/audit/events",
        "/api/v1/audit/policies",
        "/api/v1/audit/alerts",
        "/api/v1/outbox",
        "/api/v1/webhooks",
        "/api/v1/installations",
        "/api/v1/events",
        "/api/v1/events/dead-letters",
        "/api/v1/jobs",
    ] {
        let r = b.get(path).await.expect(200);
        for secret in &secrets {
            assert!(!r.text.contains(secret), "{path} leaked {secret}: {}", r.text);
        }
    }
    s.stop().await;
}
