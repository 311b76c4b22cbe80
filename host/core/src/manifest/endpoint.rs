//! The `[[endpoints]]` model: HTTP methods, path templates and minimum roles.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::InvalidValue;

/// An HTTP endpoint served by the plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Endpoint {
    /// HTTP method.
    pub method: Method,
    /// Path template, relative to the plugin's mount point.
    pub path: PathTemplate,
    /// Minimum tenant role allowed to call it.
    pub role: Role,
    /// One-line summary for API docs.
    pub summary: Option<String>,
    /// Longer description for API docs.
    pub description: Option<String>,
    /// JSON Schema the request body must satisfy; already known to compile.
    pub body_schema: Option<serde_json::Value>,
}

/// HTTP methods an endpoint may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `PATCH`
    Patch,
    /// `DELETE`
    Delete,
}

impl Method {
    /// Every method, in manifest-documentation order.
    pub const ALL: [Method; 5] = [Method::Get, Method::Post, Method::Put, Method::Patch, Method::Delete];

    /// The upper-case wire name, e.g. `"GET"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl FromStr for Method {
    type Err = InvalidValue;

    /// Case-sensitive: manifests must spell methods in upper case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Method::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            InvalidValue(format!(
                "unknown method `{s}`; expected one of GET, POST, PUT, PATCH, DELETE (upper case)"
            ))
        })
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Tenant roles, from most to least privileged. Ordered by [`Role::rank`], so
/// `Role::Owner > Role::Member`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// `owner`
    Owner,
    /// `admin`
    Admin,
    /// `manager`
    Manager,
    /// `member` (the default minimum role of an endpoint)
    #[default]
    Member,
    /// `read-only`
    ReadOnly,
}

impl Role {
    /// Every role, most privileged first.
    pub const ALL: [Role; 5] = [Role::Owner, Role::Admin, Role::Manager, Role::Member, Role::ReadOnly];

    /// The manifest spelling, e.g. `"read-only"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Member => "member",
            Role::ReadOnly => "read-only",
        }
    }

    /// Privilege level: `owner` is 4, `read-only` is 0.
    pub fn rank(&self) -> u8 {
        match self {
            Role::Owner => 4,
            Role::Admin => 3,
            Role::Manager => 2,
            Role::Member => 1,
            Role::ReadOnly => 0,
        }
    }

    /// Whether this role is `min` or more privileged.
    pub fn at_least(&self, min: Role) -> bool {
        self.rank() >= min.rank()
    }
}

impl PartialOrd for Role {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Role {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl FromStr for Role {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            InvalidValue(format!(
                "unknown role `{s}`; expected one of owner, admin, manager, member, read-only"
            ))
        })
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated endpoint path such as `/territories/{id}/children`.
///
/// It starts with `/`; each segment is a literal of `[A-Za-z0-9._~-]` (but not `.` or
/// `..`) or a `{name}` parameter with `name` matching `^[a-z_][a-z0-9_]*$`. No empty
/// segments (the path `/` itself aside), no trailing `/`, no repeated parameter names, at
/// most 300 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PathTemplate {
    raw: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Segment {
    Literal(String),
    Param(String),
}

impl PathTemplate {
    /// Longest accepted template, in bytes (templates are ASCII).
    pub const MAX_LEN: usize = 300;

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Parameter names, in path order.
    pub fn params(&self) -> Vec<&str> {
        (self.segments.iter())
            .filter_map(|s| match s {
                Segment::Param(name) => Some(name.as_str()),
                Segment::Literal(_) => None,
            })
            .collect()
    }

    /// Matches a request path (without query string, not percent-decoded). Returns the
    /// parameter values in path order, or `None` if the path does not match. Each
    /// parameter matches exactly one non-empty segment; literals match case-sensitively.
    pub fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        let rest = path.strip_prefix('/')?;
        if self.segments.is_empty() {
            return rest.is_empty().then(Vec::new);
        }
        let parts: Vec<&str> = rest.split('/').collect();
        if parts.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in self.segments.iter().zip(parts) {
            match segment {
                Segment::Literal(lit) if lit == part => {}
                Segment::Param(name) if !part.is_empty() => {
                    params.push((name.clone(), part.to_owned()));
                }
                _ => return None,
            }
        }
        Some(params)
    }

    /// Whether both templates would route the same requests ambiguously: equal once every
    /// parameter is treated as the same wildcard (`/a/{id}` vs `/a/{key}`).
    pub fn conflicts_with(&self, other: &PathTemplate) -> bool {
        self.segments.len() == other.segments.len()
            && self.segments.iter().zip(&other.segments).all(|pair| match pair {
                (Segment::Literal(a), Segment::Literal(b)) => a == b,
                (Segment::Param(_), Segment::Param(_)) => true,
                _ => false,
            })
    }
}

impl fmt::Display for PathTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for PathTemplate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.raw)
    }
}

impl FromStr for PathTemplate {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_segments(s)
            .map(|segments| PathTemplate {
                raw: s.to_owned(),
                segments,
            })
            .map_err(InvalidValue)
    }
}

fn parse_segments(path: &str) -> Result<Vec<Segment>, String> {
    if path.len() > PathTemplate::MAX_LEN {
        return Err(format!(
            "must be at most {} characters (found {})",
            PathTemplate::MAX_LEN,
            path.len()
        ));
    }
    let Some(rest) = path.strip_prefix('/') else {
        return Err(format!("`{path}` must start with `/`"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    if rest.ends_with('/') {
        return Err(format!("`{path}` must not end with `/`"));
    }
    let mut segments = Vec::new();
    let mut names = BTreeSet::new();
    for seg in rest.split('/') {
        if seg.is_empty() {
            return Err(format!("`{path}` contains an empty segment (`//`)"));
        }
        if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            if !is_param_name(name) {
                return Err(format!(
                    "invalid parameter name `{name}`; must match ^[a-z_][a-z0-9_]*$"
                ));
            }
            if !names.insert(name) {
                return Err(format!("duplicate parameter `{{{name}}}`"));
            }
            segments.push(Segment::Param(name.to_owned()));
        } else if seg == "." || seg == ".." {
            // Proxies and clients normalise these away, so such a route could never be hit.
            return Err(format!("`{path}` must not contain `.` or `..` segments"));
        } else if seg.bytes().all(is_literal_byte) {
            segments.push(Segment::Literal(seg.to_owned()));
        } else {
            return Err(format!(
                "invalid segment `{seg}`; use literal characters [A-Za-z0-9._~-] or a `{{name}}` parameter"
            ));
        }
    }
    Ok(segments)
}

fn is_literal_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'~' | b'-')
}

fn is_param_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Most schema violations reported for one request body.
pub const MAX_BODY_PROBLEMS: usize = 50;

/// Where a request body breaks an endpoint's JSON Schema: `(JSON pointer, message)`
/// pairs, at most [`MAX_BODY_PROBLEMS`]. The server and `plinth plugin call` both use
/// this, so a body the sandbox accepts is one the server accepts.
pub fn body_problems(validator: &jsonschema::Validator, body: &serde_json::Value) -> Vec<(String, String)> {
    validator
        .iter_errors(body)
        .take(MAX_BODY_PROBLEMS)
        .map(|e| (e.instance_path.to_string(), e.to_string()))
        .collect()
}
