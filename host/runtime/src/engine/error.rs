//! How a plugin call or a component load can fail. Each failure has its own variant,
//! so the API can answer with a precise status and execution tracking can count them.

use std::time::Duration;

use crate::bindings::WitError;

/// Why a single call failed. The host and other calls are unaffected by any of these.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest ran past its wall-clock deadline and was stopped.
    #[error("the plugin did not finish within {}ms", .limit.as_millis())]
    Timeout {
        /// The deadline that applied.
        limit: Duration,
    },
    /// The guest tried to grow its memory past the cap.
    #[error("the plugin exceeded its memory limit of {} MiB", .limit_bytes / (1024 * 1024))]
    MemoryExhausted {
        /// The cap that applied, in bytes.
        limit_bytes: u64,
    },
    /// The guest trapped: a panic, a stack overflow, an unreachable instruction…
    #[error("the plugin crashed ({reason})")]
    Trap {
        /// Short, caller-safe reason: `panic`, `stack overflow`, `unreachable`, …
        reason: String,
        /// Full detail (trap message, backtrace, the guest's stderr tail) for logs only.
        detail: String,
    },
    /// The response body is larger than the host's cap.
    #[error("the plugin's response is {size} bytes, more than the limit of {limit}")]
    ResponseTooLarge {
        /// Bytes the guest returned.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// The response is malformed (for example a status outside 100–599).
    #[error("the plugin returned an invalid response: {0}")]
    InvalidResponse(String),
    /// The hook returned an error (on-event, on-timer, on-install).
    #[error("the plugin reported an error: {0:?}")]
    Plugin(WitError),
    /// The host could not run the call (instance pool exhausted, internal failure).
    #[error("the host could not run the plugin: {0}")]
    Host(String),
}

impl CallError {
    /// A stable short name for metrics and problem types.
    pub fn kind(&self) -> &'static str {
        match self {
            CallError::Timeout { .. } => "timeout",
            CallError::MemoryExhausted { .. } => "memory",
            CallError::Trap { .. } => "trap",
            CallError::ResponseTooLarge { .. } => "response-too-large",
            CallError::InvalidResponse(_) => "invalid-response",
            CallError::Plugin(_) => "plugin-error",
            CallError::Host(_) => "host",
        }
    }
}

/// Why a component could not be loaded (compiled and linked).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a valid WebAssembly component for this engine.
    #[error("the component does not compile: {0}")]
    Compile(String),
    /// The component imports something this host does not provide.
    #[error("the component imports something this host does not provide: {0}")]
    Link(String),
}
