//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the API, per API version
//! (the request's `Accept-Version`, or `?version=`). For an authenticated caller it is
//! the tenant's document: typed record operations for every standard and custom
//! object, and the endpoints of the tenant's enabled plugins with their body schemas.
//!
//! Operations are listed in one table ([`operations`]); a unit test checks that every
//! route the router registers appears in it, so the document cannot silently fall
//! behind the code.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use super::{ApiError, ApiResult, AppState, Auth};
use plinth_core::manifest::Role;
use plinth_core::records::schema::{FieldDef, FieldType, ObjectSchema};
use plinth_core::store::installations::state as installation_state;
use plinth_core::versioning::ApiVersion;
use plinth_runtime::plugins::Resolved;

/// Routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(document))
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    /// No credentials.
    Public,
    /// A tenant API key with at least this role.
    Tenant(Role),
    /// The operator token.
    Operator,
    /// A publisher upload token.
    Publisher,
}

/// What an operation takes and gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// Nothing.
    None,
    /// A JSON object (described by `schema`).
    Json,
    /// Raw bytes.
    Binary,
}

/// One operation of the fixed (non-record, non-plugin) API.
struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    access: Access,
    body: Body,
    /// Success status.
    status: u16,
}

const fn op(
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    access: Access,
    body: Body,
    status: u16,
) -> Op {
    Op {
        method,
        path,
        tag,
        summary,
        access,
        body,
        status,
    }
}

use Access::{Operator, Public, Publisher, Tenant};
use Body::{Binary, Json, None as NoBody};

/// Every fixed operation. Record operations are generated per object and plugin
/// endpoints per installation.
fn operations() -> Vec<Op> {
    let member = Tenant(Role::Member);
    let reader = Tenant(Role::ReadOnly);
    let admin = Tenant(Role::Admin);
    let manager = Tenant(Role::Manager);
    vec![
        op(
            "get",
            "/healthz",
            "system",
            "Liveness: the process is up",
            Public,
            NoBody,
            200,
        ),
        op(
            "get",
            "/readyz",
            "system",
            "Readiness: the database answers",
            Public,
            NoBody,
            200,
        ),
        op(
            "get",
            "/metrics",
            "system",
            "Prometheus metrics (text exposition)",
            Public,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/versions",
            "versions",
            "The API versions, their lifecycle and changelog",
            Public,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/openapi.json",
            "system",
            "This document",
            Public,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/objects",
            "objects",
            "Schemas of every standard and custom object",
            reader,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/objects",
            "objects",
            "Define a custom object",
            admin,
            Json,
            201,
        ),
        op(
            "get",
            "/api/v1/objects/{name}",
            "objects",
            "One object's schema",
            reader,
            NoBody,
            200,
        ),
        op(
            "patch",
            "/api/v1/objects/{name}",
            "objects",
            "Relabel a custom object or add fields",
            admin,
            Json,
            200,
        ),
        op(
            "delete",
            "/api/v1/objects/{name}",
            "objects",
            "Delete a custom object without records",
            admin,
            NoBody,
            204,
        ),
        op(
            "get",
            "/api/v1/records/{object}/{id}/history",
            "records",
            "The audit events of one record",
            member,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/audit/events",
            "audit",
            "Query the audit ledger",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/audit/verify",
            "audit",
            "Verify the tenant's hash chain",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/audit/export",
            "audit",
            "Stream the ledger as CSV or JSON Lines",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/audit/policies",
            "audit",
            "List audit policies",
            admin,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/audit/policies",
            "audit",
            "Create an audit policy",
            admin,
            Json,
            201,
        ),
        op(
            "get",
            "/api/v1/audit/policies/{id}",
            "audit",
            "One audit policy",
            admin,
            NoBody,
            200,
        ),
        op(
            "patch",
            "/api/v1/audit/policies/{id}",
            "audit",
            "Change an audit policy",
            admin,
            Json,
            200,
        ),
        op(
            "delete",
            "/api/v1/audit/policies/{id}",
            "audit",
            "Delete an audit policy",
            admin,
            NoBody,
            204,
        ),
        op(
            "get",
            "/api/v1/audit/alerts",
            "audit",
            "Alerts raised by policies and the host",
            admin,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/audit/alerts/{id}/acknowledge",
            "audit",
            "Acknowledge an alert",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/audit/compliance",
            "audit",
            "Compliance report for a period (JSON or CSV)",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/outbox",
            "outbox",
            "Queued and delivered emails and webhook calls, newest first",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/outbox/{id}",
            "outbox",
            "One outbox item: status, attempts, last error",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/webhooks",
            "webhooks",
            "The tenant's webhooks (never their secrets)",
            admin,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/webhooks",
            "webhooks",
            "Register a webhook; its signing secret is returned once",
            admin,
            Json,
            201,
        ),
        op(
            "get",
            "/api/v1/webhooks/{id}",
            "webhooks",
            "One webhook",
            admin,
            NoBody,
            200,
        ),
        op(
            "patch",
            "/api/v1/webhooks/{id}",
            "webhooks",
            "Change a webhook's URL, events, alerts, enabled flag or secret",
            admin,
            Json,
            200,
        ),
        op(
            "delete",
            "/api/v1/webhooks/{id}",
            "webhooks",
            "Delete a webhook and its delivery log",
            admin,
            NoBody,
            204,
        ),
        op(
            "get",
            "/api/v1/webhooks/{id}/deliveries",
            "webhooks",
            "Delivery attempts of a webhook, newest first",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/installations/{plugin}/secrets",
            "secrets",
            "Names and times of a plugin's secrets (never values)",
            admin,
            NoBody,
            200,
        ),
        op(
            "put",
            "/api/v1/installations/{plugin}/secrets/{name}",
            "secrets",
            "Set a plugin secret (stored encrypted; never returned)",
            admin,
            Json,
            204,
        ),
        op(
            "delete",
            "/api/v1/installations/{plugin}/secrets/{name}",
            "secrets",
            "Remove a plugin secret",
            admin,
            NoBody,
            204,
        ),
        op(
            "get",
            "/api/v1/events",
            "events",
            "The tenant's event log in commit order",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/events/subscriptions",
            "events",
            "Delivery progress of each installation",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/events/dead-letters",
            "events",
            "Events a plugin failed to handle",
            admin,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/events/dead-letters/{id}/replay",
            "events",
            "Re-queue a dead letter for delivery",
            admin,
            NoBody,
            202,
        ),
        op(
            "delete",
            "/api/v1/events/dead-letters/{id}",
            "events",
            "Discard a dead letter",
            admin,
            NoBody,
            204,
        ),
        op(
            "get",
            "/api/v1/usage",
            "usage",
            "Request analytics by version, client or route",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/usage/deprecated-clients",
            "usage",
            "Clients still on deprecated versions",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/operator/versions",
            "operator",
            "API versions with operator overrides",
            Operator,
            NoBody,
            200,
        ),
        op(
            "put",
            "/api/v1/operator/versions/{version}",
            "operator",
            "Change a version's lifecycle",
            Operator,
            Json,
            200,
        ),
        op(
            "get",
            "/api/v1/operator/publishers",
            "operator",
            "Registered publishers",
            Operator,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/operator/publishers",
            "operator",
            "Register a publisher",
            Operator,
            Json,
            201,
        ),
        op(
            "get",
            "/api/v1/operator/publishers/{id}",
            "operator",
            "One publisher and its keys",
            Operator,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/operator/publishers/{id}/keys",
            "operator",
            "Add a key (rotation)",
            Operator,
            Json,
            201,
        ),
        op(
            "post",
            "/api/v1/operator/publishers/{id}/keys/{key_id}/retire",
            "operator",
            "Retire a key",
            Operator,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/operator/publishers/{id}/keys/{key_id}/revoke",
            "operator",
            "Revoke a key",
            Operator,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/operator/publishers/{id}/tokens",
            "operator",
            "Issue an upload token",
            Operator,
            NoBody,
            201,
        ),
        op(
            "post",
            "/api/v1/marketplace/packages",
            "marketplace",
            "Publish a signed package",
            Publisher,
            Binary,
            201,
        ),
        op(
            "get",
            "/api/v1/marketplace/plugins",
            "marketplace",
            "The catalog: search, category, sort",
            Public,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/marketplace/plugins/{id}",
            "marketplace",
            "One plugin: versions, capabilities, ratings",
            Public,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/marketplace/plugins/{id}/versions/{version}",
            "marketplace",
            "One published version",
            Public,
            NoBody,
            200,
        ),
        op(
            "put",
            "/api/v1/marketplace/plugins/{id}/review",
            "marketplace",
            "Rate and review (installers)",
            admin,
            Json,
            200,
        ),
        op(
            "delete",
            "/api/v1/marketplace/plugins/{id}/review",
            "marketplace",
            "Delete this tenant's review",
            admin,
            NoBody,
            204,
        ),
        op(
            "get",
            "/api/v1/installations",
            "installations",
            "This tenant's plugins",
            reader,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/installations",
            "installations",
            "Install a plugin (and, confirmed, its dependencies)",
            admin,
            Json,
            201,
        ),
        op(
            "get",
            "/api/v1/installations/{plugin}",
            "installations",
            "One installation: version, state, grants, history, kept roll-ups",
            reader,
            NoBody,
            200,
        ),
        op(
            "delete",
            "/api/v1/installations/{plugin}",
            "installations",
            "Uninstall (`?purge=true` deletes its data)",
            admin,
            NoBody,
            204,
        ),
        op(
            "post",
            "/api/v1/installations/{plugin}/enable",
            "installations",
            "Switch on",
            admin,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/installations/{plugin}/disable",
            "installations",
            "Switch off (endpoints 404; events and timers held)",
            admin,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/installations/{plugin}/upgrade",
            "installations",
            "Upgrade (new capabilities need a grant)",
            admin,
            Json,
            200,
        ),
        op(
            "post",
            "/api/v1/installations/{plugin}/rollback",
            "installations",
            "Back to the previous version",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/installations/{plugin}/metrics",
            "installations",
            "Execution metrics",
            admin,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/installations/{plugin}/settings",
            "installations",
            "Plugin settings",
            admin,
            NoBody,
            200,
        ),
        op(
            "put",
            "/api/v1/installations/{plugin}/settings/{key}",
            "installations",
            "Set a setting (JSON value)",
            admin,
            Json,
            204,
        ),
        op(
            "delete",
            "/api/v1/installations/{plugin}/settings/{key}",
            "installations",
            "Remove a setting",
            admin,
            NoBody,
            204,
        ),
        op(
            "get",
            "/api/v1/installations/{plugin}/timers",
            "installations",
            "The plugin's timers: next fire, cron, state, last error",
            admin,
            NoBody,
            200,
        ),
        op(
            "delete",
            "/api/v1/installations/{plugin}/timers/{key}",
            "installations",
            "Cancel one of the plugin's timers",
            admin,
            NoBody,
            204,
        ),
        op(
            "get",
            "/api/v1/plugins/{plugin}",
            "plugins",
            "A plugin endpoint at the plugin's root path",
            member,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/plugins/{plugin}/{path}",
            "plugins",
            "Plugin endpoints (see each installed plugin's own operations)",
            member,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/operator/tenants",
            "operator",
            "Tenants",
            Operator,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/operator/tenants",
            "operator",
            "Create a tenant with its owner (key shown once)",
            Operator,
            Json,
            201,
        ),
        op(
            "get",
            "/api/v1/operator/tenants/{id}",
            "operator",
            "One tenant",
            Operator,
            NoBody,
            200,
        ),
        op(
            "patch",
            "/api/v1/operator/tenants/{id}",
            "operator",
            "Rename, suspend or reactivate a tenant",
            Operator,
            Json,
            200,
        ),
        op(
            "get",
            "/api/v1/me",
            "identity",
            "The caller: user, role, tenant",
            reader,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/users",
            "identity",
            "Users of the tenant",
            reader,
            NoBody,
            200,
        ),
        op("post", "/api/v1/users", "identity", "Add a user", admin, Json, 201),
        op("get", "/api/v1/users/{id}", "identity", "One user", reader, NoBody, 200),
        op(
            "patch",
            "/api/v1/users/{id}",
            "identity",
            "Change a user's name, role or status",
            admin,
            Json,
            200,
        ),
        op(
            "get",
            "/api/v1/users/{id}/groups",
            "groups",
            "Groups a user belongs to",
            reader,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/keys",
            "identity",
            "API keys (all for admins, own otherwise)",
            reader,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/keys",
            "identity",
            "Create an API key (secret shown once)",
            reader,
            Json,
            201,
        ),
        op(
            "get",
            "/api/v1/keys/{id}",
            "identity",
            "One API key (never its secret)",
            reader,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/keys/{id}/revoke",
            "identity",
            "Revoke an API key",
            reader,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/groups",
            "groups",
            "Groups (`?parent_id=`, `?root=true`)",
            reader,
            NoBody,
            200,
        ),
        op("post", "/api/v1/groups", "groups", "Create a group", manager, Json, 201),
        op("get", "/api/v1/groups/{id}", "groups", "One group", reader, NoBody, 200),
        op(
            "patch",
            "/api/v1/groups/{id}",
            "groups",
            "Rename or move a group (with its subtree)",
            manager,
            Json,
            200,
        ),
        op(
            "delete",
            "/api/v1/groups/{id}",
            "groups",
            "Delete a leaf group without shares",
            manager,
            NoBody,
            204,
        ),
        op(
            "get",
            "/api/v1/groups/{id}/ancestors",
            "groups",
            "Path from the root",
            reader,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/groups/{id}/descendants",
            "groups",
            "Subtree, paginated",
            reader,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/groups/{id}/tree",
            "groups",
            "Subtree as a nested tree",
            reader,
            NoBody,
            200,
        ),
        op(
            "get",
            "/api/v1/groups/{id}/members",
            "groups",
            "Members of a group",
            reader,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/groups/{id}/members",
            "groups",
            "Add a member",
            manager,
            Json,
            201,
        ),
        op(
            "delete",
            "/api/v1/groups/{id}/members/{user_id}",
            "groups",
            "Remove a member",
            manager,
            NoBody,
            204,
        ),
        op(
            "get",
            "/api/v1/records/{object}/{id}/shares",
            "records",
            "Groups a record is shared with",
            member,
            NoBody,
            200,
        ),
        op(
            "post",
            "/api/v1/records/{object}/{id}/shares",
            "records",
            "Share a record with a group",
            member,
            Json,
            201,
        ),
        op(
            "delete",
            "/api/v1/records/{object}/{id}/shares/{group_id}",
            "records",
            "Stop sharing a record with a group",
            member,
            NoBody,
            204,
        ),
    ]
}

/// JSON Schema of one field value.
fn field_schema(f: &FieldDef) -> Value {
    let mut s = match f.field_type {
        FieldType::Text => {
            json!({ "type": "string", "maxLength": f.max_length.unwrap_or(plinth_core::records::schema::DEFAULT_MAX_TEXT) })
        }
        FieldType::LongText => json!({ "type": "string", "maxLength": f.max_length.unwrap_or(100_000) }),
        FieldType::Number => json!({ "type": "number" }),
        FieldType::Integer => json!({ "type": "integer" }),
        FieldType::Percent => json!({ "type": "number", "minimum": 0, "maximum": 100 }),
        FieldType::Boolean => json!({ "type": "boolean" }),
        FieldType::Date => json!({ "type": "string", "format": "date" }),
        FieldType::Datetime => json!({ "type": "string", "format": "date-time" }),
        FieldType::Email => json!({ "type": "string", "format": "email" }),
        FieldType::Url => json!({ "type": "string", "format": "uri" }),
        FieldType::Phone => json!({ "type": "string", "maxLength": 32 }),
        FieldType::Enum => json!({ "type": "string", "enum": f.values }),
        FieldType::Currency => json!({ "type": "string", "pattern": "^[A-Za-z]{3}$" }),
        FieldType::Country => json!({ "type": "string", "pattern": "^[A-Za-z]{2}$" }),
        FieldType::Money => json!({
            "type": "object",
            "required": ["value", "currency"],
            "additionalProperties": false,
            "properties": { "value": { "type": "number" }, "currency": { "type": "string", "pattern": "^[A-Za-z]{3}$" } }
        }),
        FieldType::Reference => {
            json!({ "type": "string", "description": format!("id of a {}", f.reference.as_deref().unwrap_or("record")) })
        }
        FieldType::User => json!({ "type": "string", "description": "id of a user" }),
    };
    if let (Some(obj), true) = (
        s.as_object_mut(),
        f.field_type.is_numeric() && f.field_type != FieldType::Money,
    ) {
        if let Some(min) = f.min {
            obj.insert("minimum".into(), json!(min));
        }
        if let Some(max) = f.max {
            obj.insert("maximum".into(), json!(max));
        }
    }
    if !f.label.is_empty()
        && let Some(obj) = s.as_object_mut()
    {
        obj.entry("title").or_insert_with(|| json!(f.label));
    }
    s
}

/// Record, input, page and bulk schemas of one object, in `version`'s shape.
fn object_schemas(o: &ObjectSchema, version: &str, schemas: &mut Map<String, Value>) {
    let mut props: Map<String, Value> = o.fields.iter().map(|f| (f.name.clone(), field_schema(f))).collect();
    plinth_core::versioning::change::fields_schema_out(version, &o.name, &mut props);
    let required: Vec<&str> = o
        .fields
        .iter()
        .filter(|f| f.required)
        .map(|f| f.name.as_str())
        .collect();
    let n = &o.name;
    schemas.insert(
        format!("Fields_{n}"),
        json!({ "type": "object", "additionalProperties": false, "properties": props }),
    );
    schemas.insert(
        format!("Record_{n}"),
        json!({
            "type": "object",
            "title": o.label,
            "required": ["id", "object", "owner_id", "version", "created_at", "updated_at", "fields"],
            "properties": {
                "id": { "type": "string" },
                "object": { "const": n },
                "owner_id": { "type": "string" },
                "version": { "type": "integer", "description": "Also the ETag; send it in If-Match to update safely" },
                "created_at": { "type": "string", "format": "date-time" },
                "updated_at": { "type": "string", "format": "date-time" },
                "created_by": { "type": ["string", "null"] },
                "updated_by": { "type": ["string", "null"] },
                "deleted_at": { "type": ["string", "null"], "format": "date-time" },
                "fields": { "$ref": format!("#/components/schemas/Fields_{n}") }
            }
        }),
    );
    let input_fields =
        json!({ "allOf": [{ "$ref": format!("#/components/schemas/Fields_{n}") }], "required": required });
    schemas.insert(
        format!("Create_{n}"),
        json!({ "type": "object", "additionalProperties": false, "required": ["fields"],
                "properties": { "fields": input_fields, "owner_id": { "type": "string" } } }),
    );
    schemas.insert(
        format!("Update_{n}"),
        json!({ "type": "object", "additionalProperties": false, "required": ["fields"],
                "properties": { "fields": { "$ref": format!("#/components/schemas/Fields_{n}") }, "owner_id": { "type": "string" } } }),
    );
    schemas.insert(
        format!("Page_{n}"),
        json!({ "type": "object", "properties": {
            "data": { "type": "array", "items": { "$ref": format!("#/components/schemas/Record_{n}") } },
            "next_cursor": { "type": ["string", "null"] } } }),
    );
}

fn problem_responses() -> Value {
    let problem = json!({ "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } });
    json!({
        "400": { "description": "Bad request", "content": problem },
        "401": { "description": "Missing or invalid credentials", "content": problem },
        "403": { "description": "Role or grant insufficient", "content": problem },
        "404": { "description": "Not found (also for other tenants' ids)", "content": problem },
        "422": { "description": "Validation failed, with field problems", "content": problem },
    })
}

fn security(access: Access) -> Value {
    match access {
        Public => json!([]),
        Tenant(_) => json!([{ "apiKey": [] }]),
        Operator => json!([{ "operatorToken": [] }]),
        Publisher => json!([{ "publisherToken": [] }]),
    }
}

fn path_params(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({ "name": name.trim_start_matches('*'), "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect()
}

fn operation(
    summary: &str,
    tag: &str,
    access: Access,
    path: &str,
    request: Option<Value>,
    status: u16,
    response: Option<Value>,
) -> Value {
    let mut responses = problem_responses();
    let ok = match response {
        Some(schema) => json!({ "description": "Success", "content": { "application/json": { "schema": schema } } }),
        None => json!({ "description": "Success" }),
    };
    responses[status.to_string()] = ok;
    let mut op = json!({
        "summary": summary,
        "tags": [tag],
        "security": security(access),
        "parameters": path_params(path),
        "responses": responses,
    });
    if let Tenant(role) = access {
        op["x-minimum-role"] = json!(role.as_str());
    }
    if let Some(body) = request {
        op["requestBody"] = json!({ "required": true, "content": body });
    }
    op
}

fn insert(paths: &mut Map<String, Value>, path: &str, method: &str, op: Value) {
    let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
    entry[method] = op;
}

fn record_operations(o: &ObjectSchema, paths: &mut Map<String, Value>) {
    let n = &o.name;
    let reference = |name: &str| json!({ "$ref": format!("#/components/schemas/{name}_{n}") });
    let json_body = |schema: Value| json!({ "application/json": { "schema": schema } });
    let list = format!("/api/v1/records/{n}");
    let one = format!("/api/v1/records/{n}/{{id}}");
    let member = Tenant(Role::Member);
    let reader = Tenant(Role::ReadOnly);
    let mut get_list = operation(
        &format!("List {n} records you may see"),
        "records",
        reader,
        &list,
        None,
        200,
        Some(reference("Page")),
    );
    get_list["parameters"] = json!([
        { "name": "filter[field][op]", "in": "query", "description": "eq (default), ne, lt, lte, gt, gte, in (comma list), contains, prefix, is_null", "schema": { "type": "string" } },
        { "name": "sort", "in": "query", "description": "Up to three fields, `-` for descending", "schema": { "type": "string" } },
        { "name": "fields", "in": "query", "schema": { "type": "string" } },
        { "name": "cursor", "in": "query", "schema": { "type": "string" } },
        { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 500 } },
        { "name": "deleted", "in": "query", "schema": { "enum": ["exclude", "include", "only"] } }
    ]);
    insert(paths, &list, "get", get_list);
    insert(
        paths,
        &list,
        "post",
        operation(
            &format!("Create a {n}"),
            "records",
            member,
            &list,
            Some(json_body(reference("Create"))),
            201,
            Some(reference("Record")),
        ),
    );
    insert(
        paths,
        &one,
        "get",
        operation(
            &format!("Read a {n} (`?as_of=` for its past state)"),
            "records",
            reader,
            &one,
            None,
            200,
            Some(reference("Record")),
        ),
    );
    insert(
        paths,
        &one,
        "patch",
        operation(
            &format!("Change a {n} (If-Match for safety)"),
            "records",
            member,
            &one,
            Some(json_body(reference("Update"))),
            200,
            Some(reference("Record")),
        ),
    );
    insert(
        paths,
        &one,
        "delete",
        operation(
            &format!("Soft-delete a {n}"),
            "records",
            member,
            &one,
            None,
            200,
            Some(reference("Record")),
        ),
    );
    let restore = format!("{one}/restore");
    insert(
        paths,
        &restore,
        "post",
        operation(
            &format!("Restore a deleted {n}"),
            "records",
            member,
            &restore,
            None,
            200,
            Some(reference("Record")),
        ),
    );
    let bulk = format!("{list}/bulk");
    let bulk_body = json!({ "type": "object", "properties": {
        "create": { "type": "array", "maxItems": 1000, "items": reference("Create") },
        "update": { "type": "array", "maxItems": 1000, "items": { "type": "object", "required": ["id"], "properties": {
            "id": { "type": "string" }, "version": { "type": "integer" }, "fields": reference("Fields"), "owner_id": { "type": "string" } } } } } });
    insert(
        paths,
        &bulk,
        "post",
        operation(
            &format!("Create or update up to 1,000 {n} records in one transaction"),
            "records",
            member,
            &bulk,
            Some(json_body(bulk_body)),
            200,
            None,
        ),
    );
    let agg = format!("{list}/aggregate");
    insert(
        paths,
        &agg,
        "post",
        operation(
            &format!("Group and measure {n} records in SQL"),
            "records",
            reader,
            &agg,
            Some(json_body(json!({ "$ref": "#/components/schemas/Aggregate" }))),
            200,
            None,
        ),
    );
}

fn base_components() -> Value {
    json!({
        "securitySchemes": {
            "apiKey": { "type": "http", "scheme": "bearer", "description": "A tenant API key (`plk_…`)" },
            "operatorToken": { "type": "http", "scheme": "bearer", "description": "An operator token (`plo_…`, `plinth admin token`)" },
            "publisherToken": { "type": "http", "scheme": "bearer", "description": "A publisher upload token (`plp_…`)" }
        },
        "schemas": {
            "Problem": {
                "type": "object",
                "description": "RFC 9457 problem details; `type` is stable, `errors` lists field problems",
                "required": ["type", "title", "status", "detail"],
                "properties": {
                    "type": { "type": "string", "format": "uri" },
                    "title": { "type": "string" },
                    "status": { "type": "integer" },
                    "detail": { "type": "string" },
                    "errors": { "type": "array", "items": { "type": "object", "properties": { "field": { "type": "string" }, "message": { "type": "string" } } } }
                }
            },
            "Aggregate": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "group_by": { "type": "array", "maxItems": 4, "items": { "type": "string", "description": "field, or date field with :day|:month|:quarter|:year" } },
                    "measures": { "type": "array", "maxItems": 10, "items": { "type": "object", "required": ["fn"], "properties": {
                        "fn": { "enum": ["count", "sum", "avg", "min", "max", "count_distinct"] }, "field": { "type": "string" }, "as": { "type": "string" },
                        "where": { "type": "array", "maxItems": 20, "description": "filters for this measure only (SQL FILTER (WHERE …)), on top of `filters`", "items": { "$ref": "#/components/schemas/Filter" } } } } },
                    "filters": { "type": "array", "maxItems": 20, "items": { "$ref": "#/components/schemas/Filter" } }
                }
            },
            "Filter": {
                "type": "object",
                "required": ["field"],
                "properties": {
                    "field": { "type": "string", "description": "a field of the object, a record column, or `shared_within` (a group id)" },
                    "op": { "enum": ["eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "prefix", "is_null"] },
                    "value": { "description": "JSON value; an array for `in`, a boolean for `is_null`" }
                }
            }
        }
    })
}

/// The document for `version`, for the caller's tenant when authenticated.
pub async fn build(state: &AppState, version: &str, auth: Option<&Auth>) -> ApiResult<Value> {
    let mut paths = Map::new();
    for o in operations() {
        let request = match o.body {
            NoBody => None,
            Json => Some(json!({ "application/json": { "schema": { "type": "object" } } })),
            Binary => Some(
                json!({ "application/octet-stream": { "schema": { "type": "string", "contentEncoding": "binary" } } }),
            ),
        };
        insert(
            &mut paths,
            o.path,
            o.method,
            operation(o.summary, o.tag, o.access, o.path, request, o.status, None),
        );
    }
    let mut components = base_components();
    let objects = match auth {
        Some(a) => plinth_core::records::schemas(&state.db, &a.tenant_id).await?,
        None => plinth_core::records::schema::standard_objects(),
    };
    let schemas = components["schemas"]
        .as_object_mut()
        .ok_or_else(|| ApiError::internal("components"))?;
    for o in &objects {
        object_schemas(o, version, schemas);
        record_operations(o, &mut paths);
    }
    if let Some(a) = auth {
        for installation in state.db.installations(&a.tenant_id).await? {
            if installation.state != installation_state::ENABLED {
                continue;
            }
            let Ok(Resolved::Active(active)) = state.plugins.resolve(&a.tenant_id, &installation.plugin_id).await
            else {
                continue;
            };
            for e in &active.manifest.endpoints {
                let path = format!("/api/v1/plugins/{}{}", installation.plugin_id, e.path.as_str());
                let body = e
                    .body_schema
                    .as_ref()
                    .map(|s| json!({ "application/json": { "schema": s } }));
                let summary = e
                    .summary
                    .clone()
                    .unwrap_or_else(|| format!("{} endpoint", installation.plugin_id));
                let mut op = operation(
                    &summary,
                    &format!("plugin:{}", installation.plugin_id),
                    Tenant(e.role),
                    &path,
                    body,
                    200,
                    None,
                );
                if let Some(d) = &e.description {
                    op["description"] = json!(d);
                }
                op["x-plugin"] = json!({ "id": installation.plugin_id, "version": installation.version });
                insert(&mut paths, &path, &e.method.as_str().to_ascii_lowercase(), op);
            }
        }
    }
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Plinth API",
            "version": version,
            "description": "Multi-tenant CRM platform. Choose the API version with `Accept-Version`; errors are RFC 9457 problems; lists use cursors."
        },
        "servers": [{ "url": "/" }],
        "components": components,
        "paths": paths,
    }))
}

async fn document(State(state): State<AppState>, parts: Parts, RawQuery(raw): RawQuery) -> ApiResult<Response> {
    let auth = parts.extensions.get::<Auth>().cloned();
    let version = match raw.as_deref().and_then(|q| q.strip_prefix("version=")) {
        Some(v) => {
            if !state.versions.snapshot().versions().iter().any(|x| x.version == v) {
                return Err(ApiError::bad_request(format!("unknown API version `{v}`")));
            }
            v.to_string()
        }
        None => parts
            .extensions
            .get::<ApiVersion>()
            .map(|v| v.0.clone())
            .unwrap_or_else(|| plinth_core::versioning::DEFAULT_VERSION.to_string()),
    };
    let doc = build(&state, &version, auth.as_ref()).await?;
    Ok(axum::Json(doc).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `(method, path)` registered with `.route("…", get(…).post(…))` in the API
    /// modules, read from their source files (all of `src/api`, so a new module is
    /// checked without being listed here). `any(…)` routes yield method `*`.
    fn registered_routes() -> Vec<(String, String)> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api");
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let src = std::fs::read_to_string(&path).unwrap();
            // This module's own tests mention `.route(` in prose; stop at the tests.
            let src = src.split("#[cfg(test)]").next().unwrap_or_default();
            let mut rest = src;
            while let Some(i) = rest.find(".route(") {
                rest = &rest[i + 7..];
                let Some(start) = rest.find('"') else { break };
                let after = &rest[start + 1..];
                let Some(end) = after.find('"') else { break };
                // `{*path}` is axum's catch-all; OpenAPI spells it `{path}`.
                let route = after[..end].replace("{*path}", "{path}");
                // The handler expression runs to the parenthesis closing `.route(`.
                let tail = &after[end + 1..];
                let expr = tail;
                let mut depth = 1;
                let close = expr
                    .char_indices()
                    .find(|&(_, c)| {
                        match c {
                            '(' => depth += 1,
                            ')' => depth -= 1,
                            _ => {}
                        }
                        depth == 0
                    })
                    .map_or(expr.len(), |(i, _)| i);
                let expr = &expr[..close];
                for method in ["get", "post", "put", "patch", "delete", "any"] {
                    let token = format!("{method}(");
                    let found = expr
                        .match_indices(&token)
                        .any(|(i, _)| i == 0 || !expr[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_'));
                    if found {
                        let method = if method == "any" { "*" } else { method };
                        out.push((method.to_string(), route.clone()));
                    }
                }
                rest = &tail[close..];
            }
        }
        assert!(out.len() > 50, "route scan found too little: {out:?}");
        out
    }

    /// Record operations are generated per object from these templates.
    const GENERATED: [(&str, &str); 8] = [
        ("get", "/api/v1/records/{object}"),
        ("post", "/api/v1/records/{object}"),
        ("get", "/api/v1/records/{object}/{id}"),
        ("patch", "/api/v1/records/{object}/{id}"),
        ("delete", "/api/v1/records/{object}/{id}"),
        ("post", "/api/v1/records/{object}/{id}/restore"),
        ("post", "/api/v1/records/{object}/bulk"),
        ("post", "/api/v1/records/{object}/aggregate"),
    ];

    #[test]
    fn every_registered_route_is_documented() {
        let documented: Vec<(&str, &str)> = operations().iter().map(|o| (o.method, o.path)).collect();
        let mut missing = Vec::new();
        for (method, route) in registered_routes() {
            if method == "*" {
                // The plugin gateway: documented per installation from the manifests.
                assert!(route.starts_with("/api/v1/plugins/{plugin}"), "{route}");
                continue;
            }
            let pair = (method.as_str(), route.as_str());
            if !documented.contains(&pair) && !GENERATED.contains(&pair) {
                missing.push(format!("{method} {route}"));
            }
        }
        assert!(
            missing.is_empty(),
            "routed but not in the OpenAPI operation table: {missing:?}"
        );
    }

    #[test]
    fn every_documented_operation_is_routed() {
        let routed = registered_routes();
        let missing: Vec<String> = operations()
            .iter()
            .filter(|o| !routed.iter().any(|(m, p)| (m == o.method || m == "*") && p == o.path))
            .map(|o| format!("{} {}", o.method, o.path))
            .collect();
        assert!(missing.is_empty(), "documented but not routed: {missing:?}");
    }

    #[test]
    fn money_fields_take_each_versions_shape() {
        let opp = plinth_core::records::schema::standard_objects()
            .into_iter()
            .find(|o| o.name == "opportunity")
            .unwrap();
        let mut newest = Map::new();
        object_schemas(&opp, "2027-01-15", &mut newest);
        assert_eq!(newest["Fields_opportunity"]["properties"]["amount"]["type"], "object");
        let mut old = Map::new();
        object_schemas(&opp, "2026-11-01", &mut old);
        assert_eq!(old["Fields_opportunity"]["properties"]["amount"]["type"], "number");
        assert_eq!(old["Fields_opportunity"]["properties"]["currency"]["type"], "string");
    }
}
