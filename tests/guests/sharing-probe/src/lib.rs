//! Drives the `sharing` capability from inside a component: `POST /op/{name}` with a
//! JSON body of arguments calls one `plinth_sdk::sharing` function and answers its
//! result as JSON; a host error comes back as the matching HTTP status.

use plinth_sdk::serde_json::{Value, json};
use plinth_sdk::sharing::{self, Access, Group, GroupPage, Share};
use plinth_sdk::{Error, Plugin, Request, Response, Router, export_plugin};

struct Probe;

impl Plugin for Probe {
    fn router() -> Router {
        Router::new().post("/op/{name}", op)
    }
}

fn group(g: &Group) -> Value {
    json!({ "id": g.id, "name": g.name, "parent_id": g.parent_id, "depth": g.depth })
}

fn page(p: &GroupPage) -> Value {
    json!({ "groups": p.groups.iter().map(group).collect::<Vec<_>>(), "next_cursor": p.next_cursor })
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

fn req_s(v: &Value, k: &str) -> Result<String, Error> {
    s(v, k).ok_or_else(|| Error::invalid(format!("`{k}` is required")))
}

fn u(v: &Value, k: &str) -> u32 {
    v.get(k).and_then(Value::as_u64).map_or(0, |n| n as u32)
}

fn access(v: &Value) -> Access {
    if v.get("access").and_then(Value::as_str) == Some("read-write") {
        Access::ReadWrite
    } else {
        Access::Read
    }
}

fn op(req: &Request) -> Result<Response, Error> {
    let a: Value = req.json()?;
    let out = match req.param("name")? {
        "create" => group(&sharing::create_group(&req_s(&a, "name")?, s(&a, "parent").as_deref())?),
        "rename" => group(&sharing::rename_group(&req_s(&a, "id")?, &req_s(&a, "name")?)?),
        "move" => group(&sharing::move_group(&req_s(&a, "id")?, s(&a, "parent").as_deref())?),
        "delete" => {
            sharing::delete_group(&req_s(&a, "id")?)?;
            json!(null)
        }
        "get" => group(&sharing::get_group(&req_s(&a, "id")?)?),
        "children" => page(&sharing::children(
            s(&a, "parent").as_deref(),
            s(&a, "cursor").as_deref(),
            u(&a, "limit"),
        )?),
        "descendants" => page(&sharing::descendants(
            &req_s(&a, "id")?,
            a.get("max_depth").and_then(Value::as_u64).map(|n| n as u32),
            s(&a, "cursor").as_deref(),
            u(&a, "limit"),
        )?),
        "ancestors" => json!(
            sharing::ancestors(&req_s(&a, "id")?)?
                .iter()
                .map(group)
                .collect::<Vec<_>>()
        ),
        "add-member" => {
            sharing::add_member(&req_s(&a, "group")?, &req_s(&a, "user")?, &req_s(&a, "role")?)?;
            json!(null)
        }
        "remove-member" => json!(sharing::remove_member(&req_s(&a, "group")?, &req_s(&a, "user")?)?),
        "members" => json!(
            sharing::members(&req_s(&a, "group")?)?
                .into_iter()
                .map(|(user, role)| json!({ "user": user, "role": role }))
                .collect::<Vec<_>>()
        ),
        "add-shares" => {
            let list: Vec<Share> = a
                .get("shares")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::invalid("`shares` is required"))?
                .iter()
                .map(|v| {
                    Ok(Share::new(
                        &req_s(v, "object")?,
                        &req_s(v, "record")?,
                        &req_s(v, "group")?,
                        access(v),
                    ))
                })
                .collect::<Result<_, Error>>()?;
            sharing::add_shares(&list)?;
            json!(null)
        }
        "remove-shares" => {
            let list: Vec<(String, String, String)> = a
                .get("shares")
                .and_then(Value::as_array)
                .ok_or_else(|| Error::invalid("`shares` is required"))?
                .iter()
                .map(|v| Ok((req_s(v, "object")?, req_s(v, "record")?, req_s(v, "group")?)))
                .collect::<Result<_, Error>>()?;
            let refs: Vec<(&str, &str, &str)> = list
                .iter()
                .map(|(o, r, g)| (o.as_str(), r.as_str(), g.as_str()))
                .collect();
            json!(sharing::remove_shares(&refs)?)
        }
        "group-shares" => {
            let p = sharing::group_shares(&req_s(&a, "group")?, s(&a, "cursor").as_deref(), u(&a, "limit"))?;
            json!({
                "shares": p.shares.iter().map(|s| json!({
                    "object": s.object, "record": s.record_id, "group": s.group_id,
                    "access": if s.access == Access::ReadWrite { "read-write" } else { "read" },
                })).collect::<Vec<_>>(),
                "next_cursor": p.next_cursor,
            })
        }
        other => return Err(Error::not_found(format!("no operation {other}"))),
    };
    Ok(Response::json(&out))
}

export_plugin!(Probe);
