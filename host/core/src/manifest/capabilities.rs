//! The `[capabilities]` model: what a plugin asks for, the string keys that tenants grant,
//! and outbound HTTP origins.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::InvalidValue;
use super::registry::{Capability, EVENTS, Grant, HTTP, RECORDS};

/// Everything a plugin requests. Anything not requested is denied.
///
/// The capabilities that are simple flags (`storage = true`, …) are kept by their
/// [`Capability`] row; the structured ones (`events`, `http`, `records`) by value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// Keys of the flag capabilities requested.
    flags: BTreeSet<&'static str>,
    /// Event subscription patterns, in manifest order.
    pub events: Vec<String>,
    /// Outbound HTTP origins, in manifest order.
    pub http: Vec<HttpOrigin>,
    /// Per CRM object record access.
    pub records: BTreeMap<String, RecordAccess>,
}

impl Capabilities {
    /// These capabilities with the flag capability `cap` requested too.
    ///
    /// ```
    /// use plinth_core::manifest::{Capabilities, registry};
    /// let caps = Capabilities::default().with(&registry::STORAGE);
    /// assert!(caps.has(&registry::STORAGE) && !caps.has(&registry::EMAIL));
    /// ```
    pub fn with(mut self, cap: &'static Capability) -> Capabilities {
        debug_assert_eq!(cap.grant, Grant::Flag, "`with` takes flag capabilities");
        self.flags.insert(cap.key);
        self
    }

    /// Whether `cap` is requested (for the structured ones: at least one pattern,
    /// origin or object). Always-available capabilities always are.
    pub fn has(&self, cap: &Capability) -> bool {
        match cap.grant {
            Grant::Always => true,
            Grant::Flag => self.flags.contains(cap.key),
            Grant::Subscriptions => !self.events.is_empty(),
            Grant::Origins => !self.http.is_empty(),
            Grant::Objects => !self.records.is_empty(),
        }
    }

    /// Record a flag read from a manifest.
    pub(super) fn set_flag(&mut self, cap: &'static Capability, on: bool) {
        if on {
            self.flags.insert(cap.key);
        } else {
            self.flags.remove(cap.key);
        }
    }

    /// One key per requested capability, the unit of per-tenant grants and upgrade diffs:
    /// `storage` … `emit`, `events:<pattern>`, `http:<origin>`, `records:<object>:read` and,
    /// for read-write objects, also `records:<object>:write`, and for objects it may lock
    /// `records:<object>:lock`.
    pub fn keys(&self) -> BTreeSet<String> {
        let mut keys: BTreeSet<String> = self.flags.iter().map(|k| (*k).to_owned()).collect();
        keys.extend(self.events.iter().map(|e| event_key(e)));
        keys.extend(self.http.iter().map(http_key));
        for (object, access) in &self.records {
            keys.insert(record_key(object, "read"));
            if access.access == Access::ReadWrite {
                keys.insert(record_key(object, "write"));
            }
            if access.lock {
                keys.insert(record_key(object, "lock"));
            }
            if access.read_as {
                keys.insert(record_key(object, "read-as"));
            }
            if access.system_write {
                keys.insert(record_key(object, "system-write"));
            }
        }
        keys
    }

    /// The effective capabilities: those requested whose keys are in `granted`. A records
    /// object stays read-write only if both its read and write keys are granted, becomes
    /// read-only if only read is, and is dropped without read.
    pub fn restrict(&self, granted: &BTreeSet<String>) -> Capabilities {
        let has = |key: &str| granted.contains(key);
        let records = self
            .records
            .iter()
            .filter(|(object, _)| has(&record_key(object, "read")))
            .map(|(object, requested)| {
                let access = if requested.access == Access::ReadWrite && has(&record_key(object, "write")) {
                    Access::ReadWrite
                } else {
                    Access::Read
                };
                let fields = requested.fields.clone();
                let lock = requested.lock && has(&record_key(object, "lock"));
                let read_as = requested.read_as && has(&record_key(object, "read-as"));
                let system_write = requested.system_write && has(&record_key(object, "system-write"));
                (
                    object.clone(),
                    RecordAccess {
                        access,
                        fields,
                        lock,
                        read_as,
                        system_write,
                    },
                )
            })
            .collect();
        Capabilities {
            flags: self.flags.iter().copied().filter(|k| has(k)).collect(),
            events: (self.events.iter()).filter(|e| has(&event_key(e))).cloned().collect(),
            http: (self.http.iter()).filter(|o| has(&http_key(o))).cloned().collect(),
            records,
        }
    }
}

/// The manifest's shape: every flag capability as a boolean (in registry order), then
/// `events`, `http` and `records`.
impl Serialize for Capabilities {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(None)?;
        for cap in Capability::flags() {
            map.serialize_entry(cap.key, &self.flags.contains(cap.key))?;
        }
        map.serialize_entry(EVENTS.key, &self.events)?;
        map.serialize_entry(HTTP.key, &self.http)?;
        map.serialize_entry(RECORDS.key, &self.records)?;
        map.end()
    }
}

fn event_key(pattern: &str) -> String {
    format!("events:{pattern}")
}

fn http_key(origin: &HttpOrigin) -> String {
    format!("http:{origin}")
}

fn record_key(object: &str, op: &str) -> String {
    format!("records:{object}:{op}")
}

/// Checks an event subscription pattern: `*`, or dot-separated `[a-z0-9_-]+` segments with
/// an optional final `.*`.
pub(super) fn check_event_pattern(pattern: &str) -> Result<String, String> {
    if pattern == "*" {
        return Ok(pattern.to_owned());
    }
    let body = pattern.strip_suffix(".*").unwrap_or(pattern);
    let segment_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if body.split('.').all(segment_ok) {
        return Ok(pattern.to_owned());
    }
    Err(if body.contains('*') {
        format!("`{pattern}`: a wildcard is only allowed as the whole pattern `*` or a final `.*`")
    } else {
        format!("`{pattern}` must be dot-separated segments of [a-z0-9_-], optionally ending in `.*`")
    })
}

/// How a plugin may use records of one CRM object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordAccess {
    /// Read, or read and write.
    pub access: Access,
    /// Which fields the plugin sees (and, with write access, may change).
    pub fields: FieldSet,
    /// It may lock records of the object (`lock = true`; grant key
    /// `records:<object>:lock`): while locked, only it writes them.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lock: bool,
    /// It may narrow its reads of the object to another user's visibility
    /// (`read_as = true`; grant key `records:<object>:read-as`, audited per use).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub read_as: bool,
    /// Its writes of the object run as the plugin, not as the calling user — for
    /// updates the process owns, like an approval's outcome fields, that the deciding
    /// user may not write themselves (`system_write = true`, read-write objects only;
    /// grant key `records:<object>:system-write`). The audit entry still names the user.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub system_write: bool,
}

/// Access level to a CRM object's records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Access {
    /// `read`
    Read,
    /// `read-write`
    ReadWrite,
}

impl Access {
    /// The manifest spelling: `read` or `read-write`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Access::Read => "read",
            Access::ReadWrite => "read-write",
        }
    }
}

impl FromStr for Access {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "read" => Ok(Access::Read),
            "read-write" => Ok(Access::ReadWrite),
            _ => Err(InvalidValue(format!(
                "unknown access `{s}`; expected `read` or `read-write`"
            ))),
        }
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of an object a plugin may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldSet {
    /// Every field (`["*"]`).
    All,
    /// Only the listed fields.
    Only(BTreeSet<String>),
}

impl FieldSet {
    /// Whether `field` is in the set.
    pub fn allows(&self, field: &str) -> bool {
        match self {
            FieldSet::All => true,
            FieldSet::Only(fields) => fields.contains(field),
        }
    }
}

impl Serialize for FieldSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            FieldSet::All => serializer.serialize_str("*"),
            FieldSet::Only(fields) => fields.serialize(serializer),
        }
    }
}

/// An outbound HTTP origin a plugin may call: `https://api.example.com`,
/// `https://*.example.org:8443`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HttpOrigin {
    /// `http` or `https`.
    pub scheme: String,
    /// Lowercase host name or IPv4 address; may start with a `*.` wildcard label.
    pub host: String,
    /// Explicit port; `None` means the scheme's default.
    pub port: Option<u16>,
}

impl HttpOrigin {
    /// The port requests go to: the explicit one or the scheme's default.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(if self.scheme == "https" { 443 } else { 80 })
    }

    /// Whether a request to `scheme://host:port` is covered by this origin. A wildcard
    /// `*.example.org` covers any subdomain at any depth but not `example.org` itself.
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if !self.scheme.eq_ignore_ascii_case(scheme) || self.effective_port() != port {
            return false;
        }
        // A trailing dot names the same host, so it must not dodge the comparison.
        let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
        match self.host.strip_prefix("*.") {
            None => host == self.host,
            Some(base) => host
                .strip_suffix(base)
                .and_then(|rest| rest.strip_suffix('.'))
                .is_some_and(|sub| !sub.is_empty() && !sub.starts_with('.') && !sub.ends_with('.')),
        }
    }
}

impl fmt::Display for HttpOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

impl Serialize for HttpOrigin {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl FromStr for HttpOrigin {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_origin(s).map_err(|reason| InvalidValue(format!("`{s}`: {reason}")))
    }
}

fn parse_origin(s: &str) -> Result<HttpOrigin, String> {
    let (scheme, rest) = s.split_once("://").ok_or("must look like `https://host[:port]`")?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("scheme must be `http` or `https`, not `{scheme}`"));
    }
    if rest.contains('@') {
        return Err("must not contain userinfo (`user@`)".into());
    }
    if rest.contains('/') {
        return Err("must not contain a path (not even a trailing `/`)".into());
    }
    if rest.contains('?') {
        return Err("must not contain a query".into());
    }
    if rest.contains('#') {
        return Err("must not contain a fragment".into());
    }
    if rest.starts_with('[') {
        return Err("IPv6 literal hosts are not supported".into());
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) => (host, Some(parse_port(port)?)),
        None => (rest, None),
    };
    let host = host.to_ascii_lowercase();
    check_host(&host)?;
    Ok(HttpOrigin { scheme, host, port })
}

fn parse_port(port: &str) -> Result<u16, String> {
    match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("invalid port `{port}`; must be 1–65535")),
    }
}

fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("missing host".into());
    }
    if host.len() > 253 {
        return Err("host must be at most 253 characters".into());
    }
    let (wildcard, base) = match host.strip_prefix("*.") {
        Some(base) => (true, base),
        None => (false, host),
    };
    if base.contains('*') {
        return Err("a wildcard is only allowed as a leading `*.` label".into());
    }
    for label in base.split('.') {
        let valid = (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !valid {
            return Err(format!(
                "invalid host label `{label}`; use letters, digits and `-` (punycode for \
                 international names)"
            ));
        }
    }
    // `*.com` would open a whole TLD; one registrable name is the narrowest useful scope.
    if wildcard && base.split('.').count() < 2 {
        return Err("a wildcard must be followed by at least two labels (`*.example.org`)".into());
    }
    Ok(())
}
