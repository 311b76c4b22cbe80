//! `http`: outbound requests to the origins the manifest lists and the tenant granted
//! (capability keys `http:<origin>`). The rules themselves — strict URL parsing,
//! resolved-address checks, same-origin redirects, timeouts and size caps — live in
//! `plinth_core::outbound`, shared with webhook delivery.
//!
//! An own interface rather than `wasi:http/outgoing-handler`: one synchronous-looking
//! call with a buffered, capped body is what integrations need; a single host
//! function is the only place a request can leave, so every rule is checked there on
//! the final request (wasi:http lets a guest set the authority and headers on a
//! resource it builds piecemeal, which would all need the same guards), and the
//! capability maps one-to-one onto a Plinth import that `check_imports` can judge.

use plinth_core::manifest::registry;
use std::time::Duration;

use crate::bindings::WitError;
use crate::bindings::plinth::plugin::http::{Host, IncomingResponse, OutgoingRequest};
use plinth_core::outbound::{Allowed, FetchError, FetchRequest};

use super::CapCtx;

impl Host for CapCtx {
    async fn fetch(&mut self, request: OutgoingRequest) -> wasmtime::Result<Result<IncomingResponse, WitError>> {
        if let Err(e) = self.require(&registry::HTTP) {
            return Ok(Err(e));
        }
        let grants = self.grants.clone();
        let client = self.services.http.clone();
        let req = FetchRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout: request.timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))),
        };
        let result = client.fetch(req, Allowed::Origins(&grants.http)).await;
        Ok(match result {
            Ok(r) => Ok(IncomingResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(e) => {
                if matches!(e, FetchError::Denied(_)) {
                    self.stats.denied += 1;
                }
                tracing::info!(
                    tenant = %self.caller.tenant_id,
                    plugin = %self.plugin.id,
                    request_id = %self.caller.request_id,
                    error = %e,
                    "plugin outbound request failed"
                );
                Err(match e {
                    FetchError::Denied(m) => WitError::Denied(m),
                    FetchError::Invalid(m) => WitError::Invalid(m),
                    FetchError::Limit(m) => WitError::Limit(m),
                    FetchError::Network(m) => WitError::Internal(m),
                })
            }
        })
    }
}
