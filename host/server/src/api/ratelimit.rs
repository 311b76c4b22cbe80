//! Per-API-key rate limits: a token bucket per key (`burst` requests at once, refilled
//! at `per_second`), so one client cannot take the server from every other. Each
//! answer carries the IETF draft's `RateLimit-Policy` and `RateLimit` headers; a
//! request over the limit gets `429` with `Retry-After` and a problem document.
//! Requests without an API key (health, the catalog, operator calls) are not counted.
//! The buckets live in each host: with N hosts behind a balancer a key may make up to
//! N times the rate.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Auth;
use super::{ApiError, AppState};

/// A key's allowance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_second: f64,
    /// Requests that may come at once.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            per_second: 50.0,
            burst: 100,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The buckets of every API key seen recently.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// What a key may still do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Go on; this many requests are left right now.
    Allowed {
        /// Whole requests left.
        remaining: u32,
    },
    /// Wait this long.
    Refused {
        /// Until one request is allowed again.
        retry_after: Duration,
    },
}

impl RateLimiter {
    /// Take one request from `key`'s bucket at `now`.
    pub fn take(&self, key: &str, limit: RateLimit, now: Instant) -> Verdict {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let burst = f64::from(limit.burst.max(1));
        let bucket = buckets
            .entry(key.to_string())
            .or_insert(Bucket { tokens: burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * limit.per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Verdict::Allowed {
                remaining: bucket.tokens.floor() as u32,
            }
        } else {
            let wait = (1.0 - bucket.tokens) / limit.per_second.max(f64::MIN_POSITIVE);
            Verdict::Refused {
                retry_after: Duration::from_secs_f64(wait.min(3600.0)),
            }
        }
    }

    /// Forget buckets untouched for `idle` (full again by then anyway).
    pub fn prune(&self, idle: Duration, now: Instant) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        buckets.retain(|_, b| now.saturating_duration_since(b.at) < idle);
    }
}

/// Middleware (inside authentication): count the request against its API key.
pub async fn rate_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (Some(limit), Some(auth)) = (state.config.rate_limit, request.extensions().get::<Auth>()) else {
        return next.run(request).await;
    };
    let window = (f64::from(limit.burst) / limit.per_second.max(f64::MIN_POSITIVE)).ceil() as u64;
    let policy = format!("\"per-key\";q={};w={window}", limit.burst);
    let verdict = state.rate_limiter.take(&auth.key_id, limit, Instant::now());
    let mut response = match verdict {
        Verdict::Allowed { .. } => next.run(request).await,
        Verdict::Refused { retry_after } => {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            let mut r = ApiError::too_many(format!(
                "this API key may make {} requests at once and {} a second; retry in {seconds} s",
                limit.burst, limit.per_second
            ))
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&seconds.to_string()) {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
    };
    let (remaining, reset) = match verdict {
        Verdict::Allowed { remaining } => (remaining, 0),
        Verdict::Refused { retry_after } => (0, retry_after.as_secs_f64().ceil() as u64),
    };
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&policy) {
        headers.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"per-key\";r={remaining};t={reset}")) {
        headers.insert("ratelimit", v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_the_rate() {
        let limiter = RateLimiter::default();
        let limit = RateLimit {
            per_second: 2.0,
            burst: 3,
        };
        let t0 = Instant::now();
        for left in [2, 1, 0] {
            assert_eq!(limiter.take("k", limit, t0), Verdict::Allowed { remaining: left });
        }
        let Verdict::Refused { retry_after } = limiter.take("k", limit, t0) else {
            panic!("the fourth request at once must wait");
        };
        assert!((retry_after.as_secs_f64() - 0.5).abs() < 1e-9, "{retry_after:?}");
        // Half a second later one more request is allowed; other keys are unaffected.
        assert!(matches!(
            limiter.take("k", limit, t0 + Duration::from_millis(500)),
            Verdict::Allowed { .. }
        ));
        assert_eq!(limiter.take("other", limit, t0), Verdict::Allowed { remaining: 2 });
        limiter.prune(Duration::from_secs(1), t0 + Duration::from_secs(5));
        assert!(limiter.buckets.lock().unwrap().is_empty());
    }
}
