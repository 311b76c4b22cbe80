//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the API, per API version
//! (the request's `Accept-Version`, or `?version=`). For an authenticated caller it is
//! the tenant's document: typed record operations for every standard and custom
//! object, and the endpoints of the tenant's enabled plugins with their body schemas.
//!
//! The fixed operations come from the route registrations themselves (`routes.rs`:
//! every route is registered with its description), so the document cannot fall
//! behind the code; record operations are generated per object and plugin endpoints
//! per installation.

use std::sync::OnceLock;

use axum::extract::{RawQuery, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::routes::Access::{self, Operator, Public, Publisher, Tenant};
use super::routes::{Body, Op, Routes, doc};
use super::{ApiError, ApiResult, AppState, Auth};
use plinth_core::manifest::Role;
use plinth_core::records::schema::{FieldDef, FieldType, ObjectSchema};
use plinth_core::store::installations::state as installation_state;
use plinth_core::versioning::ApiVersion;
use plinth_runtime::plugins::Resolved;

/// Routes of this module.
pub fn routes() -> Routes {
    Routes::new().get("/api/v1/openapi.json", document, doc("system", "This document", Public))
}

/// The plugin gateway's own entries: each installed plugin's endpoints are added per
/// tenant from its manifest.
const GATEWAY: [(&str, &str, &str); 2] = [
    (
        "get",
        "/api/v1/plugins/{plugin}",
        "A plugin endpoint at the plugin's root path",
    ),
    (
        "get",
        "/api/v1/plugins/{plugin}/{path}",
        "Plugin endpoints (see each installed plugin's own operations)",
    ),
];

/// Every fixed operation, from the route registrations (`super::routes`); built once.
fn operations() -> &'static [Op] {
    static OPS: OnceLock<Vec<Op>> = OnceLock::new();
    OPS.get_or_init(|| super::routes().ops().to_vec())
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
                "locked_by": { "type": "object", "description": "Present while a plugin locks the record (single reads)",
                    "properties": { "plugin": { "type": "string" }, "reason": { "type": "string" },
                                    "since": { "type": "string", "format": "date-time" } } },
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
    // Writes to one record may meet a plugin's lock: 423, or an admin's override.
    let override_lock = json!({ "name": "override_lock", "in": "query", "schema": { "type": "boolean" },
        "description": "Admins: write even though a plugin locked the record (audited as record.lock_override)" });
    let locked = json!({ "description": "A plugin locked the record; `locked_by` names it and its reason",
        "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } });
    for (path, method) in [(&one, "patch"), (&one, "delete"), (&restore, "post")] {
        if let Some(op) = paths.get_mut(path.as_str()).and_then(|p| p.get_mut(method)) {
            if let Some(params) = op["parameters"].as_array_mut() {
                params.push(override_lock.clone());
            }
            op["responses"]["423"] = locked.clone();
        }
    }
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
        let d = o.doc;
        let request = match d.body {
            Body::None => None,
            Body::Json => Some(json!({ "application/json": { "schema": { "type": "object" } } })),
            Body::Binary => Some(
                json!({ "application/octet-stream": { "schema": { "type": "string", "contentEncoding": "binary" } } }),
            ),
        };
        insert(
            &mut paths,
            o.path,
            o.method,
            operation(d.summary, d.tag, d.access, o.path, request, d.status, None),
        );
    }
    for (method, path, summary) in GATEWAY {
        let op = operation(summary, "plugins", Tenant(Role::Member), path, None, 200, None);
        insert(&mut paths, path, method, op);
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
    use std::collections::BTreeSet;

    use super::*;

    /// The record operations `record_operations` describes per object.
    const PER_OBJECT: [&str; 5] = [
        "/api/v1/records/{object}",
        "/api/v1/records/{object}/{id}",
        "/api/v1/records/{object}/{id}/restore",
        "/api/v1/records/{object}/bulk",
        "/api/v1/records/{object}/aggregate",
    ];

    #[test]
    fn every_operation_is_registered_once_with_a_description() {
        let mut seen = BTreeSet::new();
        for o in operations() {
            assert!(
                seen.insert((o.method, o.path)),
                "{} {} is registered twice",
                o.method,
                o.path
            );
            assert!(
                !o.doc.summary.is_empty() && !o.doc.tag.is_empty(),
                "{} {}",
                o.method,
                o.path
            );
            assert!((200..300).contains(&o.doc.status), "{} {}", o.method, o.path);
        }
        assert!(operations().len() > 80, "found only {} operations", operations().len());
    }

    #[test]
    fn routes_described_elsewhere_are_the_ones_generated_elsewhere() {
        let routes = super::super::routes();
        let per_object: BTreeSet<&str> = routes.per_object_paths().iter().copied().collect();
        assert_eq!(per_object, PER_OBJECT.into_iter().collect(), "per-object record routes");
        let gateways: BTreeSet<&str> = routes
            .gateways()
            .iter()
            .map(|p| p.trim_end_matches('/'))
            .map(|p| p.replace("{*path}", "{path}"))
            .map(|p| {
                GATEWAY
                    .iter()
                    .find(|(_, g, _)| *g == p)
                    .map(|(_, g, _)| *g)
                    .unwrap_or("?")
            })
            .collect();
        assert_eq!(gateways, GATEWAY.iter().map(|(_, p, _)| *p).collect(), "gateway routes");
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
