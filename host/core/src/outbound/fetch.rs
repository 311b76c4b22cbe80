//! One outbound request: validation of the URL, origin, method and headers, the send
//! with its timeout, and the capped read of the response.

use std::net::IpAddr;
use std::time::Duration;

use reqwest::Url;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::HttpClient;
use super::resolver::AddressDenied;
use crate::manifest::HttpOrigin;

/// Most request headers a caller may send, and their total size.
const MAX_REQUEST_HEADERS: usize = 64;
const MAX_REQUEST_HEADER_BYTES: usize = 16 * 1024;
/// Most response headers accepted, and their total size.
const MAX_RESPONSE_HEADERS: usize = 100;
const MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;
/// Longest URL accepted.
const MAX_URL: usize = 8 * 1024;

const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// Headers the host owns: the target is the URL's, the framing is the client's.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "proxy-authorization",
    "proxy-connection",
    "proxy-authenticate",
];

/// A request to send.
#[derive(Debug, Clone, Default)]
pub struct FetchRequest {
    /// Upper-case method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Headers (names case-insensitive).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// Total time allowed; `None` for the policy's default. Capped by the policy.
    pub timeout: Option<Duration>,
}

/// A response read completely.
#[derive(Debug, Clone)]
pub struct FetchResponse {
    /// Status code.
    pub status: u16,
    /// Headers, lowercase names, in order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

/// Which targets a request may reach.
#[derive(Debug, Clone, Copy)]
pub enum Allowed<'a> {
    /// A plugin's effective `http` grants: the URL must match one of these origins
    /// (IP literals only an origin naming that exact address).
    Origins(&'a [HttpOrigin]),
    /// Any URL the caller registered (webhooks); the address rules still apply.
    Registered,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The target is not allowed: origin not granted, forbidden address, redirect
    /// to another origin.
    #[error("{0}")]
    Denied(String),
    /// The request is malformed.
    #[error("{0}")]
    Invalid(String),
    /// A timeout or a size cap.
    #[error("{0}")]
    Limit(String),
    /// The connection or the exchange failed.
    #[error("{0}")]
    Network(String),
}

/// A redirect the policy refused.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RedirectDenied(pub(crate) String);

/// Scheme, host and port of a URL, for messages.
pub(crate) fn origin_of(url: &Url) -> String {
    let host = url.host_str().unwrap_or("");
    match url.port_or_known_default() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    }
}

/// Whether two URLs share scheme, host and port.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme() && a.host() == b.host() && a.port_or_known_default() == b.port_or_known_default()
}

/// Parse and check a URL: absolute http(s), a host, no userinfo, nothing a lenient
/// parser would silently repair.
pub fn parse_url(raw: &str) -> Result<Url, FetchError> {
    let invalid = |m: &str| Err(FetchError::Invalid(format!("invalid URL: {m}")));
    if raw.len() > MAX_URL {
        return invalid("longer than 8 KiB");
    }
    if raw.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'\\') {
        return invalid("it contains spaces, control characters or backslashes");
    }
    let url = match Url::parse(raw) {
        Ok(url) => url,
        Err(e) => return invalid(&e.to_string()),
    };
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(FetchError::Denied(format!(
            "only http and https URLs are allowed, not `{}`",
            url.scheme()
        )));
    }
    // The WHATWG parser repairs `http:/host` and `http:///host` into `http://host`;
    // a URL that needs repairing is refused instead, so what is checked is what
    // was written.
    match raw.split_once("://") {
        Some((_, rest)) if !rest.starts_with('/') => {}
        _ => return invalid("it must be `scheme://host/…`"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return invalid("credentials in the URL are not allowed; send an Authorization header");
    }
    if url.host_str().is_none_or(str::is_empty) {
        return invalid("it has no host");
    }
    Ok(url)
}

/// The IP address of an IP-literal URL.
fn literal_ip(url: &Url) -> Option<IpAddr> {
    match url.host()? {
        url::Host::Ipv4(v4) => Some(IpAddr::V4(v4)),
        url::Host::Ipv6(v6) => Some(IpAddr::V6(v6)),
        url::Host::Domain(_) => None,
    }
}

/// Whether `url` is covered by one of `origins`. An IP literal must be named exactly
/// (a wildcard origin never covers an address).
fn origin_allowed(url: &Url, origins: &[HttpOrigin]) -> bool {
    let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
        return false;
    };
    let is_ip = literal_ip(url).is_some();
    origins.iter().any(|o| {
        if is_ip {
            !o.host.starts_with("*.") && o.host == host && o.matches(url.scheme(), host, port)
        } else {
            o.matches(url.scheme(), host, port)
        }
    })
}

fn request_headers(headers: &[(String, String)]) -> Result<HeaderMap, FetchError> {
    if headers.len() > MAX_REQUEST_HEADERS {
        return Err(FetchError::Limit(format!(
            "at most {MAX_REQUEST_HEADERS} request headers"
        )));
    }
    let total: usize = headers.iter().map(|(n, v)| n.len() + v.len()).sum();
    if total > MAX_REQUEST_HEADER_BYTES {
        return Err(FetchError::Limit("request headers exceed 16 KiB".into()));
    }
    let mut map = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| FetchError::Invalid(format!("invalid header name `{name}`")))?;
        if FORBIDDEN_HEADERS.contains(&name.as_str()) {
            return Err(FetchError::Invalid(format!(
                "the `{name}` header is set by the host and may not be given"
            )));
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| FetchError::Invalid(format!("invalid value for header `{name}`")))?;
        map.append(name, value);
    }
    Ok(map)
}

/// The reason a reqwest error carries, found by walking its sources.
fn classify(e: &reqwest::Error, timeout: Duration) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(denied) = err.downcast_ref::<AddressDenied>() {
            return FetchError::Denied(denied.to_string());
        }
        if let Some(redirect) = err.downcast_ref::<RedirectDenied>() {
            return FetchError::Denied(redirect.0.clone());
        }
        source = err.source();
    }
    if e.is_timeout() {
        return FetchError::Limit(format!("no complete response within {} ms", timeout.as_millis()));
    }
    // The innermost message says what happened (refused, reset, TLS…) without
    // naming anything of the host's.
    let mut innermost: &dyn std::error::Error = e;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    if e.is_connect() {
        FetchError::Network(format!("could not connect: {innermost}"))
    } else {
        FetchError::Network(format!("the request failed: {innermost}"))
    }
}

impl HttpClient {
    /// Send `request` to a target `allowed` covers and read the whole response.
    pub async fn fetch(&self, request: FetchRequest, allowed: Allowed<'_>) -> Result<FetchResponse, FetchError> {
        let policy = &*self.policy;
        let url = parse_url(&request.url)?;
        if let Allowed::Origins(origins) = allowed
            && !origin_allowed(&url, origins)
        {
            let what = if literal_ip(&url).is_some() {
                "IP-literal URLs must be listed exactly in the manifest; "
            } else {
                ""
            };
            return Err(FetchError::Denied(format!(
                "{} is not an origin this plugin may call ({what}the manifest must list it under \
                 [capabilities] http and the tenant must grant it)",
                origin_of(&url)
            )));
        }
        if let Some(ip) = literal_ip(&url) {
            policy
                .addresses
                .check(ip)
                .map_err(|class| FetchError::Denied(format!("{ip} is {}", class.describe())))?;
        }
        let method = request.method.to_ascii_uppercase();
        if !METHODS.contains(&method.as_str()) {
            return Err(FetchError::Invalid(format!(
                "method `{}` is not supported (use one of {})",
                request.method,
                METHODS.join(", ")
            )));
        }
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).map_err(|_| FetchError::Invalid("invalid method".into()))?;
        if request.body.len() > policy.max_request_bytes {
            return Err(FetchError::Limit(format!(
                "the request body exceeds {} bytes",
                policy.max_request_bytes
            )));
        }
        let headers = request_headers(&request.headers)?;
        let timeout = request
            .timeout
            .unwrap_or(policy.default_timeout)
            .min(policy.max_timeout)
            .max(Duration::from_millis(1));
        let Some(client) = &self.client else {
            return Err(FetchError::Network("outbound HTTP is unavailable on this host".into()));
        };
        let mut req = client.request(method, url).headers(headers).timeout(timeout);
        if !request.body.is_empty() {
            req = req.body(request.body);
        }
        let mut response = req.send().await.map_err(|e| classify(&e, timeout))?;
        let headers = response_headers(response.headers())?;
        let cap = policy.max_response_bytes;
        let too_large = || FetchError::Limit(format!("the response body exceeds the {cap}-byte cap"));
        if response.content_length().is_some_and(|n| n > cap as u64) {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e, timeout))? {
            if body.len() + chunk.len() > cap {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchResponse {
            status: response.status().as_u16(),
            headers,
            body,
        })
    }
}

fn response_headers(map: &HeaderMap) -> Result<Vec<(String, String)>, FetchError> {
    if map.len() > MAX_RESPONSE_HEADERS {
        return Err(FetchError::Limit(format!(
            "the response has more than {MAX_RESPONSE_HEADERS} headers"
        )));
    }
    let mut total = 0;
    let mut out = Vec::with_capacity(map.len());
    for (name, value) in map {
        total += name.as_str().len() + value.len();
        if total > MAX_RESPONSE_HEADER_BYTES {
            return Err(FetchError::Limit("the response headers exceed 64 KiB".into()));
        }
        out.push((
            name.as_str().to_string(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origins(list: &[&str]) -> Vec<HttpOrigin> {
        list.iter().map(|o| o.parse().unwrap()).collect()
    }

    fn allowed(url: &str, list: &[&str]) -> bool {
        origin_allowed(&parse_url(url).unwrap(), &origins(list))
    }

    #[test]
    fn strict_url_parsing() {
        for bad in [
            "/relative",
            "https://user:pw@example.com/",
            "https://example.com\\@evil.com/",
            "https://exa mple.com/",
            "https://example.com/\n",
            "http:///nohost",
            "http:/example.com/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(matches!(parse_url("ftp://example.com/"), Err(FetchError::Denied(_))));
        assert!(matches!(parse_url("file:///etc/passwd"), Err(FetchError::Denied(_))));
        assert!(parse_url("https://api.example.com/v1?x=1").is_ok());
    }

    #[test]
    fn origins_match_scheme_host_and_port() {
        let list = [
            "https://api.example.com",
            "https://*.example.org:8443",
            "http://127.0.0.2:9000",
        ];
        assert!(allowed("https://api.example.com/x", &list));
        assert!(allowed("https://API.example.com:443/x", &list));
        assert!(!allowed("http://api.example.com/x", &list));
        assert!(!allowed("https://api.example.com:8443/x", &list));
        assert!(!allowed("https://evil.com/?https://api.example.com", &list));
        assert!(allowed("https://a.b.example.org:8443/", &list));
        assert!(!allowed("https://example.org:8443/", &list));
        assert!(allowed("http://127.0.0.2:9000/", &list));
        // The same address spelled differently is the same literal.
        assert!(allowed("http://2130706434:9000/", &list));
        assert!(!allowed("http://127.0.0.1:9000/", &list));
        assert!(!allowed("http://[::1]:9000/", &list));
        // A wildcard never covers an address.
        assert!(!allowed("https://1.2.3.4:8443/", &["https://*.3.4:8443"]));
    }

    #[test]
    fn host_owned_headers_are_refused() {
        for name in ["Host", "content-length", "Transfer-Encoding", "connection"] {
            assert!(request_headers(&[(name.into(), "x".into())]).is_err(), "{name}");
        }
        assert!(request_headers(&[("x-a".into(), "line\r\nbreak".into())]).is_err());
        assert!(request_headers(&[("authorization".into(), "Bearer t".into())]).is_ok());
        let many: Vec<_> = (0..65).map(|i| (format!("x-{i}"), "v".into())).collect();
        assert!(matches!(request_headers(&many), Err(FetchError::Limit(_))));
    }
}
