//! Files end to end (docs/files.md): streamed uploads (raw and multipart) with the size
//! limit enforced as bytes arrive and nothing left by a refused or interrupted upload,
//! downloads with ETag and Range, content stored once per tenant, visibility to the
//! owner and admins only, and signed links that work without a key until they expire.

use std::time::{Duration, Instant};

use futures_util::stream;
use plinth_tests::{TestServer, TestTenant};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// `n` bytes that are not all alike (so chunk boundaries matter).
fn content(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// Upload `bytes` as `name` through the raw-body form; the file's metadata.
async fn upload(t: &TestTenant, name: &str, bytes: Vec<u8>) -> Value {
    t.request("POST", &format!("/api/v1/files?name={name}"))
        .bytes("text/csv", bytes)
        .await
        .expect(201)
        .json()
}

/// Raw bytes of a download.
async fn download(
    s: &TestServer,
    key: Option<&str>,
    path: &str,
    range: Option<&str>,
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut req = s.http.get(format!("{}{path}", s.url));
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(range) = range {
        req = req.header("range", range);
    }
    let r = req.send().await.expect("sent");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, headers, r.bytes().await.expect("body").to_vec())
}

#[tokio::test]
async fn files_stream_in_and_out_with_etags_ranges_and_visibility() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    // Three and a half chunks, so reads cross chunk boundaries.
    let bytes = content(3 * (1 << 20) + 512 * 1024);
    let file = upload(&t, "pipeline%20Q4.csv", bytes.clone()).await;
    let id = file["id"].as_str().unwrap().to_string();
    assert_eq!(file["name"], "pipeline Q4.csv");
    assert_eq!(file["size"], bytes.len());
    assert_eq!(file["digest"], sha256(&bytes));
    assert_eq!(file["owner_id"], t.owner_id.as_str());
    assert_eq!(
        t.get(&format!("/api/v1/files/{id}/info")).await.expect(200).json(),
        file
    );

    let path = format!("/api/v1/files/{id}");
    let (status, headers, body) = download(&s, Some(&t.key), &path, None).await;
    assert_eq!(status, 200);
    assert!(body == bytes, "the download is the upload");
    assert_eq!(headers["etag"], format!("\"{}\"", sha256(&bytes)).as_str());
    assert_eq!(headers["content-type"], "text/csv");
    assert!(
        headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("pipeline Q4.csv")
    );

    // Ranges across a chunk boundary, open-ended and from the end; unsatisfiable.
    let boundary = 1 << 20;
    let from = format!("bytes={}-{}", boundary - 10, boundary + 9);
    let (status, headers, body) = download(&s, Some(&t.key), &path, Some(&from)).await;
    assert_eq!(status, 206);
    assert_eq!(body, bytes[boundary - 10..boundary + 10]);
    assert_eq!(
        headers["content-range"],
        format!("bytes {}-{}/{}", boundary - 10, boundary + 9, bytes.len()).as_str()
    );
    let (_, _, tail) = download(&s, Some(&t.key), &path, Some("bytes=-100")).await;
    assert_eq!(tail, bytes[bytes.len() - 100..]);
    let (status, _, _) = download(&s, Some(&t.key), &path, Some(&format!("bytes={}-", bytes.len()))).await;
    assert_eq!(status, 416);
    let (status, _, _) = {
        let r = s
            .http
            .get(format!("{}{path}", s.url))
            .bearer_auth(&t.key)
            .header("if-none-match", format!("\"{}\"", sha256(&bytes)))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), (), ())
    };
    assert_eq!(status, 304, "an unchanged file is not sent again");

    // The owner and admins see it; another member and another tenant do not.
    let max = s.user(&t, "Max", "member").await;
    max.get(&format!("/api/v1/files/{id}/info"))
        .await
        .expect_problem(404, "not-found");
    let (status, _, _) = download(&s, Some(&max.key), &path, None).await;
    assert_eq!(status, 404);
    let other = s.tenant("Other").await;
    other.get(&format!("/api/v1/files/{id}/info")).await.expect(404);
    let admin = s.user(&t, "Ada", "admin").await;
    admin.get(&format!("/api/v1/files/{id}/info")).await.expect(200);
    let everyone = admin.get("/api/v1/files?all=true").await.expect(200).json();
    assert_eq!(everyone["data"].as_array().unwrap().len(), 1);
    assert_eq!(max.get("/api/v1/files").await.expect(200).json()["data"], json!([]));
    max.get("/api/v1/files?all=true").await.expect(403);

    // Deleting the last file frees its chunks; the deletion is audited.
    t.delete(&path).await.expect(204);
    t.get(&format!("/api/v1/files/{id}/info")).await.expect(404);
    assert_eq!(s.db().chunk_count(&t.id).await.unwrap(), 0);
    assert_eq!(
        t.audit_events(&[("action", "file.delete"), ("entity_id", &id)])
            .await
            .len(),
        1
    );
    s.stop().await;
}

#[tokio::test]
async fn the_same_content_is_stored_once_and_freed_with_its_last_file() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let bytes = content((1 << 20) + 7);
    let first = upload(&t, "a.csv", bytes.clone()).await;
    // The same bytes as a multipart upload under another name.
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bytes.clone())
            .file_name("b.csv")
            .mime_str("text/csv")
            .unwrap(),
    );
    let r = s
        .http
        .post(format!("{}/api/v1/files", s.url))
        .bearer_auth(&t.key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let second: Value = r.json().await.unwrap();
    assert_eq!(second["name"], "b.csv");
    assert_eq!(second["digest"], first["digest"]);
    assert_eq!(s.db().chunk_count(&t.id).await.unwrap(), 2, "one copy: two chunks");

    t.delete(&format!("/api/v1/files/{}", first["id"].as_str().unwrap()))
        .await
        .expect(204);
    let (status, _, body) = download(
        &s,
        Some(&t.key),
        &format!("/api/v1/files/{}", second["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(
        (status, body == bytes),
        (200, true),
        "the other file still has the content"
    );
    t.delete(&format!("/api/v1/files/{}", second["id"].as_str().unwrap()))
        .await
        .expect(204);
    assert_eq!(s.db().chunk_count(&t.id).await.unwrap(), 0);
    s.stop().await;
}

#[tokio::test]
async fn too_large_and_interrupted_uploads_leave_nothing() {
    let s = TestServer::start_configured(|c| c.api.files.max_size = 2 << 20).await;
    let t = s.tenant("Acme").await;

    // Declared too large: refused before the body is read.
    let r = t
        .request("POST", "/api/v1/files?name=big.bin")
        .bytes("application/octet-stream", content(3 << 20))
        .await
        .expect_problem(413, "payload-too-large");
    assert!(r.text.contains("limit"), "{}", r.text);

    // Not declared (streamed): refused as soon as the bytes pass the limit.
    let pieces = (0..6).map(|_| Ok::<_, std::io::Error>(content(1 << 19)));
    let r = s
        .http
        .post(format!("{}/api/v1/files?name=stream.bin", s.url))
        .bearer_auth(&t.key)
        .body(reqwest::Body::wrap_stream(stream::iter(pieces)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);

    // Cut off midway by the client: nothing is kept.
    let broken = stream::iter(vec![
        Ok(content(1 << 20)),
        Ok(content(1 << 19)),
        Err(std::io::Error::other("the client went away")),
    ]);
    let sent = s
        .http
        .post(format!("{}/api/v1/files?name=cut.bin", s.url))
        .bearer_auth(&t.key)
        .body(reqwest::Body::wrap_stream(broken))
        .send()
        .await;
    assert!(sent.is_err() || sent.is_ok_and(|r| r.status().as_u16() >= 400));

    let started = Instant::now();
    while s.db().chunk_count(&t.id).await.unwrap() != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "refused uploads left chunks behind"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(t.get("/api/v1/files").await.expect(200).json()["data"], json!([]));
    s.stop().await;
}

#[tokio::test]
async fn signed_links_work_without_a_key_until_they_expire() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    let bytes = content(1000);
    let file = upload(&t, "invoice.csv", bytes.clone()).await;
    let id = file["id"].as_str().unwrap();

    let link = t
        .post(&format!("/api/v1/files/{id}/links"), json!({ "expires_in": 600 }))
        .await
        .expect(201)
        .json();
    let url = link["url"].as_str().unwrap().to_string();
    let (status, _, body) = download(&s, None, &url, None).await;
    assert_eq!((status, body == bytes), (200, true), "no key needed");

    // A changed signature, another file's id and an expired link are refused.
    // The signature's last character changed (to one it is not).
    let last = if url.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &url[..url.len() - 1]);
    assert_eq!(download(&s, None, &forged, None).await.0, 403);
    let other = upload(&t, "other.csv", content(10)).await;
    let moved = url.replace(id, other["id"].as_str().unwrap());
    assert_eq!(download(&s, None, &moved, None).await.0, 403);
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 1;
    let message = plinth_core::files::link_message(&t.id, id, past);
    let sig = s.server.state.vault.sign_link(&message);
    let expired = format!("/api/v1/files/{id}?t={}&exp={past}&sig={sig}", t.id);
    let (status, _, body) = download(&s, None, &expired, None).await;
    assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));

    // Without a key or a link: 401.
    assert_eq!(download(&s, None, &format!("/api/v1/files/{id}"), None).await.0, 401);
    t.post(&format!("/api/v1/files/{id}/links"), json!({ "expires_in": 5 }))
        .await
        .expect_problem(422, "validation");
    s.stop().await;
}

/// The files probe published and installed in `t` with `grants`.
async fn files_probe(s: &TestServer, t: &TestTenant, grants: Value) {
    let publisher = s.publisher("plinth-tests").await;
    publisher
        .publish(s, &plinth_tests::Guest::named("files-probe"))
        .await
        .expect(201);
    s.install(t, "files-probe", grants).await.expect(201);
}

#[tokio::test]
async fn plugins_read_and_write_files_in_pieces_as_their_caller() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    files_probe(&s, &t, json!("all")).await;
    let probe = |path: &str| format!("/api/v1/plugins/files-probe{path}");
    let max = s.user(&t, "Max", "member").await;
    let eve = s.user(&t, "Eve", "member").await;

    // Max's 2.5 MiB file, copied by the plugin 64 KiB at a time, for Max.
    let bytes = content(5 * (1 << 19));
    let original = max
        .request("POST", "/api/v1/files?name=leads.csv")
        .bytes("text/csv", bytes.clone())
        .await
        .expect(201)
        .json();
    let id = original["id"].as_str().unwrap();
    let copied = max
        .post(&probe(&format!("/copy/{id}")), json!({}))
        .await
        .expect(200)
        .json();
    assert_eq!(copied["copied"], bytes.len());
    let copy = &copied["file"];
    assert_eq!(
        (copy["digest"].clone(), copy["owner_id"].clone()),
        (original["digest"].clone(), json!(max.id))
    );
    assert_eq!(copy["name"], "copy of leads.csv");
    let copy_id = copy["id"].as_str().unwrap();
    let (status, _, body) = download(&s, Some(&max.key), &format!("/api/v1/files/{copy_id}"), None).await;
    assert_eq!((status, body == bytes), (200, true));
    let shown = max
        .get(&format!("/api/v1/files/{copy_id}/info"))
        .await
        .expect(200)
        .json();
    assert_eq!(shown["plugin"], "files-probe");

    // Eve's calls read only what Eve may read: not Max's file.
    eve.post(&probe(&format!("/copy/{id}")), json!({})).await.expect(404);

    // Written for someone else: that user reads it, the writer does not.
    let note = max
        .post(
            &probe("/write"),
            json!({ "name": "for-eve.txt", "text": "hello ", "repeat": 3, "owner_id": eve.id }),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(
        (note["size"].clone(), note["owner_id"].clone()),
        (json!(18), json!(eve.id))
    );
    let note_id = note["id"].as_str().unwrap();
    let (_, _, text) = download(&s, Some(&eve.key), &format!("/api/v1/files/{note_id}"), None).await;
    assert_eq!(text, b"hello hello hello ");
    max.get(&format!("/api/v1/files/{note_id}/info")).await.expect(404);

    // A file dropped unfinished keeps nothing.
    let chunks_before = s.db().chunk_count(&t.id).await.unwrap();
    max.post(&probe("/abandon"), json!({ "name": "gone.bin" }))
        .await
        .expect(200);
    let started = Instant::now();
    while s.db().chunk_count(&t.id).await.unwrap() != chunks_before {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "an abandoned file left chunks"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    // The plugin lists and deletes only the files it made.
    let listed = max.get(&probe("/files")).await.expect(200).json();
    let mut names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["copy of leads.csv", "for-eve.txt"]);
    let refused = max.delete(&probe(&format!("/files/{id}"))).await.expect(200).json();
    assert_eq!(refused["deleted"], false, "Max's upload is not the plugin's to delete");
    let deleted = max
        .delete(&probe(&format!("/files/{copy_id}")))
        .await
        .expect(200)
        .json();
    assert_eq!(deleted["deleted"], true);
    max.get(&format!("/api/v1/files/{id}/info")).await.expect(200);
    s.stop().await;
}

#[tokio::test]
async fn the_files_capability_needs_its_grant() {
    let s = TestServer::start().await;
    let t = s.tenant("Acme").await;
    files_probe(&s, &t, json!([])).await;
    let r = t
        .post(
            "/api/v1/plugins/files-probe/write",
            json!({ "name": "x.txt", "text": "x" }),
        )
        .await
        .expect(403);
    assert!(r.text.contains("files"), "{}", r.text);
    s.stop().await;
}
