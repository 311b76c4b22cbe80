//! Idempotency keys (`idempotency_keys`, migration 0024): the stored first response of
//! a request sent with an `Idempotency-Key`, per tenant, API key and key.

use sqlx::Row;

use super::{Db, StoreResult};

/// A response kept for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// The headers worth replaying (`[name, value]` pairs as JSON).
    pub headers: String,
    /// The body.
    pub body: Vec<u8>,
}

/// What a key holds when a request claims it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free: this request runs and then records its response.
    Fresh,
    /// The same request already finished: replay its response.
    Replay(StoredResponse),
    /// The key was used for a different request.
    Mismatch,
    /// The same request is running now.
    InFlight,
}

/// Who a key belongs to.
#[derive(Debug, Clone, Copy)]
pub struct KeyScope<'a> {
    /// Tenant.
    pub tenant: &'a str,
    /// The API key the request came with.
    pub key_id: &'a str,
    /// The client's idempotency key.
    pub key: &'a str,
}

impl Db {
    /// Claim `scope` for a request hashing to `hash` at `now` (stored form), keeping
    /// it until `expires`. An expired row counts as free.
    pub async fn claim_idempotency_key(
        &self,
        scope: KeyScope<'_>,
        hash: &str,
        now: &str,
        expires: &str,
    ) -> StoreResult<Claim> {
        for _ in 0..2 {
            let inserted = sqlx::query(
                "INSERT INTO idempotency_keys (tenant_id, key_id, idem_key, request_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(scope.tenant)
            .bind(scope.key_id)
            .bind(scope.key)
            .bind(hash)
            .bind(now)
            .bind(expires)
            .execute(self.writer())
            .await;
            match inserted {
                Ok(_) => return Ok(Claim::Fresh),
                Err(e) if super::is_unique_violation(&e) => {}
                Err(e) => return Err(e.into()),
            }
            let row = sqlx::query(
                "SELECT request_hash, status, headers, body, expires_at FROM idempotency_keys \
                 WHERE tenant_id = $1 AND key_id = $2 AND idem_key = $3",
            )
            .bind(scope.tenant)
            .bind(scope.key_id)
            .bind(scope.key)
            .fetch_optional(self.writer())
            .await?;
            let Some(row) = row else { continue };
            let expires_at: String = row.try_get("expires_at")?;
            if expires_at.as_str() <= now {
                sqlx::query(
                    "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key_id = $2 AND idem_key = $3 \
                     AND expires_at <= $4",
                )
                .bind(scope.tenant)
                .bind(scope.key_id)
                .bind(scope.key)
                .bind(now)
                .execute(self.writer())
                .await?;
                continue;
            }
            let stored_hash: String = row.try_get("request_hash")?;
            if stored_hash != hash {
                return Ok(Claim::Mismatch);
            }
            let status: Option<i64> = row.try_get("status")?;
            return Ok(match status {
                None => Claim::InFlight,
                Some(status) => Claim::Replay(StoredResponse {
                    status: u16::try_from(status).unwrap_or(500),
                    headers: row.try_get::<Option<String>, _>("headers")?.unwrap_or_default(),
                    body: row.try_get::<Option<Vec<u8>>, _>("body")?.unwrap_or_default(),
                }),
            });
        }
        Ok(Claim::InFlight)
    }

    /// Record the response of a claimed key.
    pub async fn finish_idempotency_key(&self, scope: KeyScope<'_>, response: &StoredResponse) -> StoreResult<()> {
        sqlx::query(
            "UPDATE idempotency_keys SET status = $4, headers = $5, body = $6 \
             WHERE tenant_id = $1 AND key_id = $2 AND idem_key = $3",
        )
        .bind(scope.tenant)
        .bind(scope.key_id)
        .bind(scope.key)
        .bind(i64::from(response.status))
        .bind(&response.headers)
        .bind(&response.body)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Give a claimed key up (the request failed on the server's side: a retry may run).
    pub async fn release_idempotency_key(&self, scope: KeyScope<'_>) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key_id = $2 AND idem_key = $3 AND status IS NULL",
        )
        .bind(scope.tenant)
        .bind(scope.key_id)
        .bind(scope.key)
        .execute(self.writer())
        .await?;
        Ok(())
    }

    /// Delete keys that expired before `now`, across tenants.
    pub async fn sweep_idempotency_keys(&self, now: &str) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM idempotency_keys WHERE expires_at <= $1")
            .bind(now)
            .execute(self.writer())
            .await?;
        Ok(done.rows_affected())
    }
}
