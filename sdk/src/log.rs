//! Logging into the host's structured log (always available, no capability needed).
//!
//! Use the macros: `plinth_sdk::info!("assigned {} accounts", n);`

use crate::__private::wit::plinth::plugin::log as wit;

/// Severity of a log line.
///
/// ```
/// plinth_sdk::log::write(plinth_sdk::log::Level::Info, "hello");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed diagnostics.
    Trace,
    /// Development diagnostics.
    Debug,
    /// Normal operation.
    Info,
    /// Handled surprises.
    Warn,
    /// Failures.
    Error,
}

/// Write one line to the host log. Outside a host (unit tests on the build machine)
/// the line goes to stderr instead.
///
/// ```
/// plinth_sdk::log::write(plinth_sdk::log::Level::Warn, "rule r-1 matches nothing");
/// ```
pub fn write(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        wit::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = wit::Level::Info;
        eprintln!("[{level:?}] {message}");
    }
}

/// Log at info level with `format!` syntax.
///
/// ```
/// plinth_sdk::info!("{} territories moved", 3);
/// ```
#[macro_export]
macro_rules! info {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Info, &format!($($arg)*)) };
}

/// Log at warn level with `format!` syntax.
///
/// ```
/// plinth_sdk::warn!("retrying {}", "x");
/// ```
#[macro_export]
macro_rules! warn {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Warn, &format!($($arg)*)) };
}

/// Log at error level with `format!` syntax.
///
/// ```
/// plinth_sdk::error!("failed: {}", "why");
/// ```
#[macro_export]
macro_rules! error {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Error, &format!($($arg)*)) };
}

/// Log at debug level with `format!` syntax.
///
/// ```
/// plinth_sdk::debug!("state = {:?}", (1, 2));
/// ```
#[macro_export]
macro_rules! debug {
    ($($arg:tt)*) => { $crate::log::write($crate::log::Level::Debug, &format!($($arg)*)) };
}
