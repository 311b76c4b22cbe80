//! Outbound HTTP for plugins (the WIT `http` interface) and webhook delivery: one
//! guarded client that enforces the operator's rules on the *resolved* request.
//!
//! - The URL is parsed strictly (absolute, `http`/`https`, no userinfo, no control
//!   characters or backslashes) and, for plugins, its scheme, host and port must
//!   match an origin the manifest lists and the tenant granted. IP-literal URLs match
//!   only an origin naming that exact address.
//! - The host resolves names itself ([`resolver`]) and connects only to addresses the
//!   [`AddressRules`] allow; an IP literal is checked the same way. The connection
//!   goes to the checked address, so DNS rebinding cannot swap it afterwards.
//! - The `Host` header comes from the URL; callers cannot set it or other
//!   hop-by-hop headers. No proxy from the environment is used.
//! - Redirects are followed only to the same origin, at most [`HttpPolicy::max_redirects`]
//!   hops; a redirect elsewhere fails the request as `denied`.
//! - Connect and total timeouts (the caller's, capped), a streamed response-size cap,
//!   header count and size caps.

pub mod address;
mod fetch;
mod resolver;

use std::sync::Arc;
use std::time::Duration;

pub use address::{AddressRules, Class};
pub use fetch::{Allowed, FetchError, FetchRequest, FetchResponse, parse_url};

/// The operator's outbound HTTP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPolicy {
    /// Which addresses may be reached besides public unicast ones.
    pub addresses: AddressRules,
    /// Time to establish a connection (TCP and TLS).
    pub connect_timeout: Duration,
    /// Total time of a request when the caller gives none.
    pub default_timeout: Duration,
    /// Ceiling on any caller's total time.
    pub max_timeout: Duration,
    /// Largest response body; a larger one fails the request.
    pub max_response_bytes: usize,
    /// Largest request body.
    pub max_request_bytes: usize,
    /// Same-origin redirects followed before giving up.
    pub max_redirects: usize,
}

impl Default for HttpPolicy {
    fn default() -> Self {
        HttpPolicy {
            addresses: AddressRules::default(),
            connect_timeout: Duration::from_secs(5),
            default_timeout: Duration::from_secs(10),
            max_timeout: Duration::from_secs(30),
            max_response_bytes: 8 * 1024 * 1024,
            max_request_bytes: 8 * 1024 * 1024,
            max_redirects: 3,
        }
    }
}

/// The guarded HTTP client. Cheap to clone (one connection pool, shared).
#[derive(Debug, Clone)]
pub struct HttpClient {
    /// `None` only if the client could not be built: every request then fails.
    client: Option<reqwest::Client>,
    policy: Arc<HttpPolicy>,
}

/// The client could not be built (TLS backend initialisation failed).
#[derive(Debug, thiserror::Error)]
#[error("could not build the outbound HTTP client: {0}")]
pub struct ClientBuildError(String);

impl HttpClient {
    /// A client enforcing `policy`.
    pub fn new(policy: HttpPolicy) -> Result<HttpClient, ClientBuildError> {
        let policy = Arc::new(policy);
        let max_redirects = policy.max_redirects;
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            let Some(first) = attempt.previous().first() else {
                return attempt.stop();
            };
            if !fetch::same_origin(first, attempt.url()) {
                let to = fetch::origin_of(attempt.url());
                return attempt.error(fetch::RedirectDenied(format!("redirect to another origin ({to})")));
            }
            if attempt.previous().len() > max_redirects {
                return attempt.error(fetch::RedirectDenied(format!("more than {max_redirects} redirects")));
            }
            attempt.follow()
        });
        let client = reqwest::Client::builder()
            .no_proxy()
            .redirect(redirect)
            .dns_resolver(Arc::new(resolver::GuardedResolver::new(policy.addresses.clone())))
            .connect_timeout(policy.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(4)
            .user_agent(concat!("plinth/", env!("CARGO_PKG_VERSION")))
            .referer(false)
            .build()
            .map_err(|e| ClientBuildError(e.to_string()))?;
        Ok(HttpClient {
            client: Some(client),
            policy,
        })
    }

    /// A client with the default (strict) policy. Should building fail (it does not
    /// with the bundled TLS backend), the client refuses every request rather than
    /// fall back to an unguarded one.
    pub fn strict() -> HttpClient {
        HttpClient::new(HttpPolicy::default()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "outbound HTTP is unavailable");
            HttpClient {
                client: None,
                policy: Arc::new(HttpPolicy::default()),
            }
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &HttpPolicy {
        &self.policy
    }
}
