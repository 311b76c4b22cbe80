//! One error type for everything a plugin can fail at, and how it becomes an HTTP
//! problem response (RFC 9457) or a WIT `error` for the host.

use std::fmt;

use crate::__private::wit::plinth::plugin::types::Error as WitError;

/// What went wrong, in the host's vocabulary. Each kind has one HTTP status and one
/// stable problem `type` URI, so clients can branch on it.
///
/// ```
/// use plinth_sdk::{Error, ErrorKind};
/// let e = Error::not_found("no territory t-1");
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// assert_eq!(e.kind().status(), 404);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request or an argument is malformed or fails validation (400).
    Invalid,
    /// The caller may not do this, or a capability is not granted (403).
    Denied,
    /// The thing named does not exist or is not visible (404).
    NotFound,
    /// A concurrent change or a duplicate (409).
    Conflict,
    /// A size, count or rate limit was exceeded (429).
    Limit,
    /// Something failed inside the plugin or the host (500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status this kind maps to.
    ///
    /// ```
    /// assert_eq!(plinth_sdk::ErrorKind::Conflict.status(), 409);
    /// ```
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::Invalid => 400,
            ErrorKind::Denied => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict => 409,
            ErrorKind::Limit => 429,
            ErrorKind::Internal => 500,
        }
    }

    /// The stable slug used in the problem `type` URI (`https://plinth.dev/problems/<slug>`).
    ///
    /// ```
    /// assert_eq!(plinth_sdk::ErrorKind::NotFound.slug(), "not-found");
    /// ```
    pub fn slug(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "invalid",
            ErrorKind::Denied => "denied",
            ErrorKind::NotFound => "not-found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Limit => "limit",
            ErrorKind::Internal => "internal",
        }
    }

    fn title(self) -> &'static str {
        match self {
            ErrorKind::Invalid => "Invalid request",
            ErrorKind::Denied => "Not allowed",
            ErrorKind::NotFound => "Not found",
            ErrorKind::Conflict => "Conflict",
            ErrorKind::Limit => "Limit exceeded",
            ErrorKind::Internal => "Internal error",
        }
    }
}

/// A problem with one field of the input, reported alongside an [`Error`].
///
/// ```
/// let e = plinth_sdk::Error::invalid("the territory is not valid")
///     .with_field("name", "must not be empty");
/// assert_eq!(e.fields()[0].field, "name");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Field path, e.g. `name` or `criteria[0].value`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// A failure that a handler or hook returns. It carries a kind (which picks the HTTP
/// status), a message safe to show the caller, and optional per-field problems.
///
/// Host-call failures convert into it with `?`, so a handler can write
/// `let doc = collection.get("k")?;` and a `denied` from the host becomes a 403.
///
/// ```
/// use plinth_sdk::Error;
/// fn check(name: &str) -> Result<(), Error> {
///     if name.trim().is_empty() {
///         return Err(Error::invalid("name must not be empty").with_field("name", "empty"));
///     }
///     Ok(())
/// }
/// assert_eq!(check(" ").unwrap_err().kind().status(), 400);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    fields: Vec<FieldError>,
}

impl Error {
    /// An error of any kind.
    ///
    /// ```
    /// let e = plinth_sdk::Error::new(plinth_sdk::ErrorKind::Limit, "at most 100 rules");
    /// assert_eq!(e.message(), "at most 100 rules");
    /// ```
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            fields: Vec::new(),
        }
    }

    /// Bad input (400).
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Error::invalid("bad").kind().status(), 400);
    /// ```
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// Not allowed (403).
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Error::denied("admins only").kind().status(), 403);
    /// ```
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Denied, message)
    }

    /// Not found (404).
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Error::not_found("no such thing").kind().status(), 404);
    /// ```
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// Conflict (409).
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Error::conflict("changed meanwhile").kind().status(), 409);
    /// ```
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// A limit was exceeded (429).
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Error::limit("too many").kind().status(), 429);
    /// ```
    pub fn limit(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Limit, message)
    }

    /// Internal failure (500). The message is shown to the caller: keep secrets out of it.
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Error::internal("broken").kind().status(), 500);
    /// ```
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// An I/O failure of [`crate::files`] readers and writers (or any `std::io` user),
    /// as an internal failure carrying its message.
    ///
    /// ```
    /// let e = plinth_sdk::Error::from_io(std::io::Error::other("disk full"));
    /// assert_eq!(e.kind().status(), 500);
    /// ```
    pub fn from_io(error: std::io::Error) -> Self {
        Self::internal(error.to_string())
    }

    /// Add a problem with one input field.
    ///
    /// ```
    /// let e = plinth_sdk::Error::invalid("bad rule").with_field("criteria[0].op", "unknown operator");
    /// assert_eq!(e.fields().len(), 1);
    /// ```
    pub fn with_field(mut self, field: impl Into<String>, message: impl Into<String>) -> Self {
        self.fields.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
        self
    }

    /// The kind of error.
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Error::conflict("x").kind(), plinth_sdk::ErrorKind::Conflict);
    /// ```
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The caller-facing message.
    ///
    /// ```
    /// assert_eq!(plinth_sdk::Error::invalid("x").message(), "x");
    /// ```
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Problems with individual fields, in the order added.
    ///
    /// ```
    /// assert!(plinth_sdk::Error::invalid("x").fields().is_empty());
    /// ```
    pub fn fields(&self) -> &[FieldError] {
        &self.fields
    }

    /// The RFC 9457 problem document for this error.
    ///
    /// ```
    /// let p = plinth_sdk::Error::not_found("no territory t-9").to_problem();
    /// assert_eq!(p["status"], 404);
    /// assert_eq!(p["type"], "https://plinth.dev/problems/not-found");
    /// ```
    pub fn to_problem(&self) -> serde_json::Value {
        let mut problem = serde_json::json!({
            "type": format!("https://plinth.dev/problems/{}", self.kind.slug()),
            "title": self.kind.title(),
            "status": self.kind.status(),
            "detail": self.message,
        });
        if !self.fields.is_empty() {
            problem["errors"] = self
                .fields
                .iter()
                .map(|f| serde_json::json!({ "field": f.field, "message": f.message }))
                .collect();
        }
        problem
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.slug(), self.message)
    }
}

impl std::error::Error for Error {}

impl From<WitError> for Error {
    fn from(e: WitError) -> Self {
        match e {
            WitError::NotFound(m) => Error::not_found(m),
            WitError::Invalid(m) => Error::invalid(m),
            WitError::Denied(m) => Error::denied(m),
            WitError::Conflict(m) => Error::conflict(m),
            WitError::Limit(m) => Error::limit(m),
            WitError::Internal(m) => Error::internal(m),
        }
    }
}

impl From<Error> for WitError {
    fn from(e: Error) -> Self {
        let m = e.message;
        match e.kind {
            ErrorKind::NotFound => WitError::NotFound(m),
            ErrorKind::Invalid => WitError::Invalid(m),
            ErrorKind::Denied => WitError::Denied(m),
            ErrorKind::Conflict => WitError::Conflict(m),
            ErrorKind::Limit => WitError::Limit(m),
            ErrorKind::Internal => WitError::Internal(m),
        }
    }
}

impl From<serde_json::Error> for Error {
    /// Serialisation of the plugin's own values failing is a plugin bug (500); request
    /// bodies go through [`crate::Request::json`], which reports 400 instead.
    fn from(e: serde_json::Error) -> Self {
        Error::internal(format!("JSON error: {e}"))
    }
}
