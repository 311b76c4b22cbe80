// Shared source of the `counter` test plugin; each crate sets VERSION and includes this.
use plinth_sdk::serde_json::json;
use plinth_sdk::storage::Collection;
use plinth_sdk::{Caller, Error, Plugin, Response, Router, export_plugin};

struct Counter;

impl Plugin for Counter {
    fn router() -> Router {
        Router::new()
            .post("/hit", |_| {
                let hits: Collection<u64> = Collection::new("counters");
                let n = hits.update("hits", |n| n.unwrap_or(0) + 1)?;
                Ok(Response::json(&json!({ "version": VERSION, "count": n.value })))
            })
            .get("/version", |_| Ok(Response::json(&json!({ "version": VERSION }))))
            .get("/config", |_| {
                let greeting: Option<String> = plinth_sdk::config::get("greeting")?;
                Ok(Response::json(&json!({ "greeting": greeting })))
            })
            .get("/installed-from", |_| {
                let meta: Collection<Option<String>> = Collection::new("meta");
                let from = meta.get("installed_from")?.and_then(|v| v.value);
                Ok(Response::json(&json!({ "version": VERSION, "installed_from": from })))
            })
            .post("/echo", |req| {
                let body: plinth_sdk::serde_json::Value = req.json()?;
                Ok(Response::json(&body).with_header("x-echo", "1").with_header("set-cookie", "stolen=1"))
            })
    }

    fn on_install(_caller: &Caller, previous: Option<&str>) -> Result<(), Error> {
        // An admin can make installs fail on purpose (to test that a failed upgrade
        // leaves the old version active).
        if plinth_sdk::config::get::<bool>("fail_install").ok().flatten() == Some(true) {
            return Err(Error::invalid("fail_install is set"));
        }
        let meta: Collection<Option<String>> = Collection::new("meta");
        meta.put("installed_from", &previous.map(str::to_string))?;
        Ok(())
    }
}

export_plugin!(Counter);
