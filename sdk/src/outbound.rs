//! Outbound HTTP to the origins the manifest lists under `[capabilities] http` and the
//! tenant granted (WIT `http`, 1.2). The host checks every request on what it
//! resolves to: unlisted origins, private or loopback addresses (unless the operator
//! allows them) and redirects to other origins fail with `denied`; timeouts and
//! oversized responses with `limit`.

use crate::__private::wit::plinth::plugin::http as wit;
use crate::Error;

/// A response, read completely. Any status is a successful fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers, lowercase names, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl FetchResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }
}

/// A request; build with [`Fetch::get`], [`Fetch::post`] or [`Fetch::new`], then
/// [`Fetch::send`].
///
/// ```no_run
/// use plinth_sdk::outbound::Fetch;
/// let token = plinth_sdk::secrets::get("api_token")?.unwrap_or_default();
/// let r = Fetch::get("https://api.example.com/v1/rates")
///     .header("authorization", &format!("Bearer {token}"))
///     .timeout_ms(5_000)
///     .send()?;
/// let rates: serde_json::Value = r.json()?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout_ms: Option<u32>,
}

impl Fetch {
    /// A request with any method.
    pub fn new(method: &str, url: &str) -> Fetch {
        Fetch {
            method: method.to_string(),
            url: url.to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout_ms: None,
        }
    }

    /// A `GET`.
    pub fn get(url: &str) -> Fetch {
        Fetch::new("GET", url)
    }

    /// A `POST`.
    pub fn post(url: &str) -> Fetch {
        Fetch::new("POST", url)
    }

    /// Add a header (`host` and hop-by-hop headers are refused by the host).
    pub fn header(mut self, name: &str, value: &str) -> Fetch {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: Vec<u8>) -> Fetch {
        self.body = body;
        self
    }

    /// Set a JSON body and its content type.
    pub fn json<T: serde::Serialize + ?Sized>(self, value: &T) -> Result<Fetch, Error> {
        let body = serde_json::to_vec(value)?;
        Ok(self.header("content-type", "application/json").body(body))
    }

    /// Total time allowed (capped by the host; default 10 s).
    pub fn timeout_ms(mut self, ms: u32) -> Fetch {
        self.timeout_ms = Some(ms);
        self
    }

    /// Send and read the whole response.
    pub fn send(self) -> Result<FetchResponse, Error> {
        let r = wit::fetch(&wit::OutgoingRequest {
            method: self.method,
            url: self.url,
            headers: self.headers,
            body: self.body,
            timeout_ms: self.timeout_ms,
        })?;
        Ok(FetchResponse {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }
}
