//! What a wasmtime `Store` holds for one call: the capability context, WASI state
//! (no files, no network, no environment; stdout/stderr captured for diagnostics)
//! and the memory limiter.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::limits::MemoryLimiter;
use crate::caps::CapCtx;

/// Bytes of guest stdout/stderr kept per call (the tail shows panic messages).
const OUTPUT_CAPTURE_BYTES: usize = 16 * 1024;

/// The data of a per-call `Store`.
pub(crate) struct CallState {
    pub(crate) caps: CapCtx,
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: MemoryLimiter,
    pub(crate) output: TailPipe,
}

impl CallState {
    pub(crate) fn new(caps: CapCtx, memory_limit: u64) -> Self {
        let output = TailPipe::default();
        let wasi = WasiCtxBuilder::new()
            .stdout(output.clone())
            .stderr(output.clone())
            .build();
        CallState {
            caps,
            wasi,
            table: ResourceTable::new(),
            limiter: MemoryLimiter::new(memory_limit),
            output,
        }
    }

    /// What the guest wrote to stdout/stderr, lossily decoded.
    pub(crate) fn captured_output(&self) -> String {
        self.output.contents()
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Guest stdout/stderr: always accepts writes (so a chatty guest never fails on a
/// full buffer) and keeps only the last [`OUTPUT_CAPTURE_BYTES`].
#[derive(Clone, Default)]
pub(crate) struct TailPipe {
    buffer: Arc<Mutex<VecDeque<u8>>>,
}

impl TailPipe {
    fn contents(&self) -> String {
        let buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let (a, b) = buffer.as_slices();
        String::from_utf8_lossy(&[a, b].concat()).into_owned()
    }
}

impl IsTerminal for TailPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for TailPipe {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for TailPipe {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let mut buffer = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let keep = &buf[buf.len().saturating_sub(OUTPUT_CAPTURE_BYTES)..];
        buffer.extend(keep);
        let excess = buffer.len().saturating_sub(OUTPUT_CAPTURE_BYTES);
        buffer.drain(..excess);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
