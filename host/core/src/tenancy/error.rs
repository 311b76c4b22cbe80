//! The tenancy services' error: what went wrong in terms a REST problem or a WIT
//! `error` variant can be made from, without either layer parsing messages.

use crate::store::StoreError;

/// A failed tenancy operation.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// The addressed thing does not exist in the caller's tenant (or may not be seen).
    #[error("{0}")]
    NotFound(String),
    /// The caller's role does not allow this.
    #[error("{0}")]
    Forbidden(String),
    /// The change conflicts with the current state (duplicate, still in use…).
    #[error("{0}")]
    Conflict(String),
    /// Input failed validation: `(field, message)` pairs, all reported at once.
    #[error("invalid input: {}", .0.iter().map(|(f, m)| format!("{f}: {m}")).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<(String, String)>),
    /// `If-Match` named another version than the current one.
    #[error("the entity is at version {current}, not the version given in If-Match")]
    VersionMismatch {
        /// The current version.
        current: i64,
    },
    /// A move would put a group under itself or one of its descendants.
    #[error("moving group {group} under {new_parent} would create a cycle")]
    Cycle {
        /// The group being moved.
        group: String,
        /// The requested new parent (the group itself or one of its descendants).
        new_parent: String,
        /// Group ids from `group` down to `new_parent`.
        path: Vec<String>,
    },
    /// A user would end up managing themselves through the management chain.
    #[error("making {manager} the manager of {user} would create a cycle")]
    ManagerCycle {
        /// The user being changed.
        user: String,
        /// The requested manager.
        manager: String,
        /// User ids from the requested manager up the chain to `user`.
        path: Vec<String>,
    },
    /// The group is managed by a plugin (or by REST, when a plugin asks) and may
    /// not be changed by this caller.
    #[error("group {group} is managed by {manager}; change it there")]
    ManagedElsewhere {
        /// The group.
        group: String,
        /// `plugin <id>` or `the REST API`.
        manager: String,
    },
    /// The change would leave the tenant without an active owner.
    #[error("{0}")]
    LastOwner(String),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for TenancyError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(m) => TenancyError::NotFound(m),
            StoreError::Conflict(m) => TenancyError::Conflict(m),
            other => TenancyError::Store(other),
        }
    }
}

impl From<sqlx::Error> for TenancyError {
    fn from(e: sqlx::Error) -> Self {
        TenancyError::Store(StoreError::Database(e))
    }
}

impl TenancyError {
    /// A single-field validation failure.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        TenancyError::Invalid(vec![(field.into(), message.into())])
    }
}

/// Result alias for tenancy services.
pub type TenancyResult<T> = Result<T, TenancyError>;
