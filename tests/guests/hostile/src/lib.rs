//! A guest that misbehaves on purpose. Each endpoint is one attack on the host; the
//! runtime tests check that each fails alone, with its own error, and that `/ok`
//! still works afterwards.

use plinth_sdk::serde_json::json;
use plinth_sdk::storage::Collection;
use plinth_sdk::{Error, ErrorKind, Plugin, Request, Response, Router, export_plugin};

struct Hostile;

impl Plugin for Hostile {
    fn router() -> Router {
        Router::new()
            .get("/ok", |_| Ok(Response::json(&json!({ "ok": true }))))
            .get("/loop", spin)
            .get("/memory-bomb", memory_bomb)
            .get("/recurse", |_| Ok(Response::json(&recurse(0, &mut [0u8; 64]))))
            .get("/panic", |_| panic!("the hostile guest panics on purpose"))
            .get("/respond/{mib}", respond)
            .get("/undeclared", undeclared)
            .post("/conflict", conflict)
            .get("/bad-status", |_| Ok(Response::text("x").with_status(1000)))
            .get("/chatty", chatty)
    }
}

fn spin(_: &Request) -> Result<Response, Error> {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
    }
}

fn memory_bomb(_: &Request) -> Result<Response, Error> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        // Touch every page so the allocation is real.
        hoard.push(vec![0xAB; 1024 * 1024]);
        std::hint::black_box(&hoard);
    }
}

#[allow(unconditional_recursion)] // the point: recursion without end
fn recurse(depth: u64, pad: &mut [u8; 64]) -> u64 {
    pad[(depth % 64) as usize] = depth as u8;
    // Not a tail call: the addition after the call keeps every frame alive.
    recurse(depth + 1, std::hint::black_box(pad)) + u64::from(pad[0])
}

fn respond(req: &Request) -> Result<Response, Error> {
    let mib: usize = req
        .param("mib")?
        .parse()
        .map_err(|_| Error::invalid("mib must be a number"))?;
    Ok(Response {
        status: 200,
        headers: vec![],
        body: vec![b'x'; mib * 1024 * 1024],
    })
}

fn undeclared(_: &Request) -> Result<Response, Error> {
    // The manifest does not declare `config`: the host must answer `denied`, not trap.
    match plinth_sdk::config::get::<String>("anything") {
        Err(e) if e.kind() == ErrorKind::Denied => Ok(Response::json(&json!({ "denied": e.message() }))),
        Err(e) => Err(Error::internal(format!("expected denied, got {e}"))),
        Ok(_) => Err(Error::internal("expected denied, got a value")),
    }
}

fn conflict(req: &Request) -> Result<Response, Error> {
    let docs: Collection<u32> = Collection::new("race");
    let key = req.caller.request_id.clone();
    let v1 = docs.insert(&key, &1)?;
    // A second insert of the same key and a write against a stale version must both conflict.
    let dup = docs.insert(&key, &2).err().map(|e| e.kind());
    let v2 = docs.replace(&key, &3, v1)?;
    let stale = docs.replace(&key, &4, v1).err().map(|e| e.kind());
    Ok(Response::json(&json!({
        "first": v1,
        "second": v2,
        "duplicate_insert": dup.map(|k| k.slug()),
        "stale_replace": stale.map(|k| k.slug()),
    })))
}

fn chatty(_: &Request) -> Result<Response, Error> {
    for i in 0..5000 {
        eprintln!("line {i}: a guest that writes far more than the host keeps");
        plinth_sdk::info!("log line {i}");
    }
    Ok(Response::json(&json!({ "survived": true })))
}

export_plugin!(Hostile);
