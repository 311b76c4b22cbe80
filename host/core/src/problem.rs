//! What can go wrong, said once for every surface: a [`Problem`] has a [`ProblemKind`],
//! a detail for the caller and, for validation failures, every [`FieldProblem`].
//!
//! Domain errors (`StoreError`, `RecordError`, …) say which problem they are by
//! implementing [`IntoProblem`]. The REST API maps a kind to an HTTP status and problem
//! `type` in one place (`api/error.rs`), the plugin runtime maps it to the WIT `error`
//! variant in one place (`caps`); neither matches on domain errors itself.

use serde::Serialize;

/// A problem with one field of the input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// Field path, e.g. `amount` or `records[3].name`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

impl FieldProblem {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> FieldProblem {
        FieldProblem {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The kinds of failure a caller can act on. Each maps to one HTTP status and one WIT
/// `error` case:
///
/// | kind | HTTP | WIT |
/// |---|---|---|
/// | `NotFound` | 404 | `not-found` |
/// | `BadRequest` | 400 | `invalid` |
/// | `Invalid` | 422 (with the field problems) | `invalid` |
/// | `Denied` | 403 | `denied` |
/// | `Conflict` | 409 | `conflict` |
/// | `Stale` | 412 | `conflict` |
/// | `Locked` | 423 | `conflict` |
/// | `TooLarge` | 413 | `limit` |
/// | `Limit` | 429 | `limit` |
/// | `Internal` | 500 (detail logged, never shown) | `internal` |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The thing named does not exist, or is not visible to the caller.
    NotFound,
    /// The request is malformed (shape, limits, conflicting options).
    BadRequest,
    /// Well-formed but invalid: the field problems say where.
    Invalid,
    /// The caller may not do this.
    Denied,
    /// Conflicts with the current state (duplicate, concurrent change).
    Conflict,
    /// An expected version (`If-Match`) no longer matches.
    Stale,
    /// The thing is locked by someone else (a plugin's record lock).
    Locked,
    /// Larger than a size limit or a quota allows.
    TooLarge,
    /// A size, count or rate limit was exceeded.
    Limit,
    /// The host failed; the detail is for the log only.
    Internal,
}

/// A failure as callers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Which kind.
    pub kind: ProblemKind,
    /// What happened, for the caller — except for `Internal`, where it is the cause to
    /// log and callers get a generic message.
    pub detail: String,
    /// For `Invalid`: every offending field.
    pub fields: Vec<FieldProblem>,
}

impl Problem {
    /// A problem of `kind`.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            detail: detail.into(),
            fields: Vec::new(),
        }
    }

    /// An `Invalid` problem listing `fields`.
    pub fn invalid(detail: impl Into<String>, fields: Vec<FieldProblem>) -> Problem {
        Problem {
            kind: ProblemKind::Invalid,
            detail: detail.into(),
            fields,
        }
    }

    /// The detail followed by each field problem (`detail: a: …; b: …`), for surfaces
    /// that carry one string (the WIT error).
    pub fn flattened(&self) -> String {
        if self.fields.is_empty() {
            return self.detail.clone();
        }
        let fields: Vec<String> = self
            .fields
            .iter()
            .map(|p| format!("{}: {}", p.field, p.message))
            .collect();
        format!("{}: {}", self.detail, fields.join("; "))
    }
}

/// A domain error that knows which [`Problem`] it is.
pub trait IntoProblem {
    /// The problem callers see.
    fn into_problem(self) -> Problem;
}

impl IntoProblem for Problem {
    fn into_problem(self) -> Problem {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_lists_every_field_after_the_detail() {
        let p = Problem::invalid(
            "the record is not valid",
            vec![
                FieldProblem::new("name", "is required"),
                FieldProblem::new("amount", "must be a number"),
            ],
        );
        assert_eq!(
            p.flattened(),
            "the record is not valid: name: is required; amount: must be a number"
        );
        assert_eq!(
            Problem::new(ProblemKind::NotFound, "no such record").flattened(),
            "no such record"
        );
    }
}
