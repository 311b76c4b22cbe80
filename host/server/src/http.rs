//! Serving HTTP: the accept loop, with limits on slow clients that `axum::serve` does
//! not offer. A connection that does not finish sending a request's headers within
//! [`ConnectionLimits::header_read`] — or sits idle that long between requests — is
//! closed; a request body that sends nothing for [`ConnectionLimits::body_idle`] is cut
//! off (the API layer answers it with a problem; see `api::app`). Each cut-off is logged
//! once, at debug level, with the peer. Shutdown stops accepting, lets requests in
//! flight finish (up to [`ConnectionLimits::drain`]), then returns.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Limits on what a connection may take its time over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Longest wait for a request's complete headers (and for the next request on a
    /// kept-alive connection).
    pub header_read: Duration,
    /// Longest silence while reading a request body.
    pub body_idle: Duration,
    /// Largest request head (request line and headers) in bytes.
    pub max_head_bytes: usize,
    /// How long shutdown waits for requests in flight.
    pub drain: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read: Duration::from_secs(10),
            body_idle: Duration::from_secs(30),
            max_head_bytes: 64 * 1024,
            drain: Duration::from_secs(30),
        }
    }
}

/// Serve `app` on `listener` until `shutdown` is cancelled.
pub async fn serve(listener: TcpListener, app: Router, limits: ConnectionLimits, shutdown: CancellationToken) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read)
        .max_buf_size(limits.max_head_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_read))
        .keep_alive_timeout(limits.header_read);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log_cut_off(peer, e.as_ref());
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(
            "requests still in flight after {:?}; closing their connections",
            limits.drain
        );
    }
}

fn log_cut_off(peer: SocketAddr, error: &(dyn std::error::Error + 'static)) {
    let timed_out = error.downcast_ref::<hyper::Error>().is_some_and(|e| e.is_timeout());
    if timed_out {
        tracing::debug!(%peer, "closed a connection that was too slow to send its request");
    } else {
        tracing::debug!(%peer, error = %error, "connection ended with an error");
    }
}
