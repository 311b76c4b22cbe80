//! `log`: plugin log lines into the host's structured log. Needs no capability, but
//! is bounded: lines are truncated and a call's line count is capped.

use crate::bindings::plinth::plugin::log::{Host, Level};

use super::CapCtx;

/// Longest line kept, in bytes.
const MAX_LINE: usize = 8 * 1024;
/// Lines kept per call; the rest are counted and dropped.
const MAX_LINES: u32 = 1000;

impl Host for CapCtx {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        self.stats.host_calls += 1;
        self.stats.log_lines += 1;
        if self.stats.log_lines > MAX_LINES {
            if self.stats.log_lines == MAX_LINES + 1 {
                tracing::warn!(plugin = %self.plugin.id, request_id = %self.caller.request_id,
                    "plugin exceeded {MAX_LINES} log lines in one call; dropping the rest");
            }
            return Ok(());
        }
        let message = truncate(&message, MAX_LINE);
        let (tenant, plugin, request_id) = (&self.caller.tenant_id, &self.plugin.id, &self.caller.request_id);
        match level {
            Level::Trace => tracing::trace!(target: "plugin", %tenant, %plugin, %request_id, "{message}"),
            Level::Debug => tracing::debug!(target: "plugin", %tenant, %plugin, %request_id, "{message}"),
            Level::Info => tracing::info!(target: "plugin", %tenant, %plugin, %request_id, "{message}"),
            Level::Warn => tracing::warn!(target: "plugin", %tenant, %plugin, %request_id, "{message}"),
            Level::Error => tracing::error!(target: "plugin", %tenant, %plugin, %request_id, "{message}"),
        }
        Ok(())
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
