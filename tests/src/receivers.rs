//! Receivers for outbox and outbound-HTTP tests, on loopback: a minimal SMTP server
//! (enough of RFC 5321 for lettre: EHLO, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET,
//! QUIT) and an axum HTTP server for webhooks and outbound requests.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One message an [`SmtpReceiver`] accepted.
#[derive(Debug, Clone, Default)]
pub struct ReceivedMail {
    /// `MAIL FROM` address.
    pub from: String,
    /// `RCPT TO` addresses.
    pub rcpt: Vec<String>,
    /// The message as sent (dot-unstuffed).
    pub data: Vec<u8>,
    /// The `AUTH` line, if the client authenticated.
    pub auth: Option<String>,
}

/// How the SMTP receiver answers `MAIL FROM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpMode {
    /// Accept every message.
    Accept,
    /// `451` (transient) to every message.
    TempFail,
}

/// A minimal SMTP server on 127.0.0.1:0.
#[derive(Debug, Clone)]
pub struct SmtpReceiver {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Messages accepted so far.
    pub messages: Arc<Mutex<Vec<ReceivedMail>>>,
    /// `MAIL FROM` commands seen (accepted or not): one per delivery attempt.
    pub attempts: Arc<Mutex<u32>>,
}

impl SmtpReceiver {
    /// Start one answering as `mode`.
    pub async fn start(mode: SmtpMode) -> SmtpReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind SMTP");
        let r = SmtpReceiver {
            addr: listener.local_addr().expect("addr"),
            messages: Arc::default(),
            attempts: Arc::default(),
        };
        let shared = r.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let _ = session(stream, mode, shared).await;
                });
            }
        });
        r
    }

    /// `smtp://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The messages accepted so far.
    pub fn received(&self) -> Vec<ReceivedMail> {
        self.messages.lock().expect("lock").clone()
    }

    /// Delivery attempts so far.
    pub fn attempt_count(&self) -> u32 {
        *self.attempts.lock().expect("lock")
    }
}

async fn session(stream: tokio::net::TcpStream, mode: SmtpMode, shared: SmtpReceiver) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 plinth-test ESMTP\r\n").await?;
    let mut current = ReceivedMail::default();
    let mut auth = None;
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-plinth-test\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            b"250 ok\r\n"
        } else if upper.starts_with("AUTH") {
            auth = Some(cmd.clone());
            b"235 authenticated\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            *shared.attempts.lock().expect("lock") += 1;
            current = ReceivedMail {
                from: cmd[10..].trim().trim_matches(['<', '>']).to_string(),
                auth: auth.clone(),
                ..ReceivedMail::default()
            };
            match mode {
                SmtpMode::Accept => b"250 ok\r\n",
                SmtpMode::TempFail => b"451 4.3.0 try again later\r\n",
            }
        } else if upper.starts_with("RCPT TO:") {
            current.rcpt.push(cmd[8..].trim().trim_matches(['<', '>']).to_string());
            b"250 ok\r\n"
        } else if upper == "DATA" {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = Vec::new();
            loop {
                let mut l = Vec::new();
                if lines.read_until(b'\n', &mut l).await? == 0 {
                    return Ok(());
                }
                if l == b".\r\n" {
                    break;
                }
                let l = if l.starts_with(b"..") { &l[1..] } else { &l[..] };
                data.extend_from_slice(l);
            }
            current.data = data;
            shared.messages.lock().expect("lock").push(std::mem::take(&mut current));
            b"250 queued\r\n"
        } else if upper == "RSET" {
            current = ReceivedMail::default();
            b"250 ok\r\n"
        } else if upper == "QUIT" {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            b"502 not implemented\r\n"
        };
        write.write_all(reply).await?;
    }
}

/// Serve `router` on 127.0.0.1:0; returns the address.
pub async fn serve_http(router: axum::Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

/// Wait (up to 20 s, checking every 50 ms) until `check` returns `Some`.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
