//! Per-call resource limits: the manifest asks, the host caps.

use std::time::Duration;

use wasmtime::ResourceLimiter;

use plinth_core::manifest;

/// Wall-clock deadline of a call whose manifest does not ask for one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// The host's default ceiling on a deadline a manifest asks for (`plugin_timeout_ms`
/// in the server's config changes it). Endpoints are interactive and most plugins
/// never ask for more than the 2 s default; administrative work such as a
/// territories realignment over thousands of accounts needs tens of seconds, and
/// with the old 2 s ceiling it failed with a timeout on a default server whatever its
/// manifest asked for.
pub const DEFAULT_MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// Default memory cap per call, and the default host maximum.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 * 1024 * 1024;
/// Default cap on a response body.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// The host's ceilings; a manifest may ask for less, never for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Longest deadline any call gets.
    pub max_timeout: Duration,
    /// Most linear memory any call gets, in bytes.
    pub max_memory_bytes: u64,
    /// Largest response body, in bytes.
    pub max_response_bytes: usize,
}

impl Default for HostLimits {
    fn default() -> Self {
        HostLimits {
            max_timeout: DEFAULT_MAX_TIMEOUT,
            max_memory_bytes: DEFAULT_MEMORY_BYTES,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

/// The limits one call runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLimits {
    /// Wall-clock deadline.
    pub timeout: Duration,
    /// Linear memory cap in bytes.
    pub memory_bytes: u64,
}

impl HostLimits {
    /// What a manifest's `[limits]` get on this host: the requested values (or the
    /// defaults) clamped to the host maxima.
    pub fn for_manifest(&self, limits: &manifest::Limits) -> CallLimits {
        let timeout = limits.timeout_ms.map_or(DEFAULT_TIMEOUT, Duration::from_millis);
        let memory = limits
            .memory_mib
            .map_or(DEFAULT_MEMORY_BYTES, |m| m.saturating_mul(1024 * 1024));
        CallLimits {
            timeout: timeout.min(self.max_timeout),
            memory_bytes: memory.min(self.max_memory_bytes),
        }
    }
}

/// Enforces the memory cap of one call and remembers whether the guest hit it (so a
/// later abort is reported as memory exhaustion, not as a generic trap) and its peak.
#[derive(Debug)]
pub(crate) struct MemoryLimiter {
    limit: u64,
    pub(crate) exceeded: bool,
    pub(crate) peak: u64,
}

impl MemoryLimiter {
    pub(crate) fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit,
            exceeded: false,
            peak: 0,
        }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        let desired = desired as u64;
        if desired > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= super::MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_limits_are_clamped_to_host_maxima() {
        let host = HostLimits::default();
        let asked = manifest::Limits {
            timeout_ms: Some(600_000),
            memory_mib: Some(1024),
        };
        let got = host.for_manifest(&asked);
        assert_eq!(got.timeout, DEFAULT_MAX_TIMEOUT);
        assert_eq!(got.memory_bytes, DEFAULT_MEMORY_BYTES);
        // A manifest may ask for up to the host's ceiling, above the default.
        let long = manifest::Limits {
            timeout_ms: Some(45_000),
            memory_mib: None,
        };
        assert_eq!(host.for_manifest(&long).timeout, Duration::from_secs(45));

        let small = manifest::Limits {
            timeout_ms: Some(100),
            memory_mib: Some(8),
        };
        let got = host.for_manifest(&small);
        assert_eq!(got.timeout, Duration::from_millis(100));
        assert_eq!(got.memory_bytes, 8 * 1024 * 1024);

        let none = manifest::Limits {
            timeout_ms: None,
            memory_mib: None,
        };
        assert_eq!(host.for_manifest(&none).timeout, DEFAULT_TIMEOUT);
    }

    #[test]
    fn limiter_refuses_and_remembers() {
        let mut l = MemoryLimiter::new(1024);
        assert!(l.memory_growing(0, 512, None).unwrap());
        assert!(!l.exceeded);
        assert!(!l.memory_growing(512, 2048, None).unwrap());
        assert!(l.exceeded);
        assert_eq!(l.peak, 512);
    }
}
