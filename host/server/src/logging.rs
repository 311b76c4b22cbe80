//! The process's log output: one line per event, whatever the event's text holds.
//!
//! Plugin panics, plugin log lines, client-chosen names and error messages all end up
//! in log messages. A newline in such text would let its author start a forged line
//! (`…\n2026-12-07T19:40:00Z INFO plinth_host::audit: FORGED`). Every event therefore
//! goes through [`Escaping`], which writes control characters inside the event as
//! visible escapes (`\n`, `\r`, `\u{1b}`…) and keeps only the final newline. In JSON
//! format the encoder escapes them already.

use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable text, one line per event.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields).
    Json,
}

/// Install the global subscriber: `PLINTH_LOG` filter (default `info`), text with
/// colour only on a terminal, or JSON; every event on one line.
pub fn init(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("PLINTH_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,wasmtime=warn,cranelift=warn"));
    // Colour only on a terminal: redirected logs stay plain text for grep and collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Text => builder
            .with_writer(EscapingWriter::new(io::stderr, ansi))
            .with_ansi(ansi)
            .try_init(),
        LogFormat::Json => builder.json().with_writer(io::stderr).try_init(),
    };
}

/// A [`MakeWriter`] whose writers escape control characters inside each event.
#[derive(Debug, Clone)]
pub struct EscapingWriter<M> {
    inner: M,
    /// Keep ESC (colour codes) because the writer adds them itself on a terminal.
    keep_esc: bool,
}

impl<M> EscapingWriter<M> {
    /// Wrap `inner`; `keep_esc` when colour codes are on.
    pub fn new(inner: M, keep_esc: bool) -> Self {
        EscapingWriter { inner, keep_esc }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for EscapingWriter<M> {
    type Writer = Escaping<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaping {
            inner: self.inner.make_writer(),
            keep_esc: self.keep_esc,
        }
    }
}

/// Writes one formatted event with its inner control characters escaped.
#[derive(Debug)]
pub struct Escaping<W> {
    inner: W,
    keep_esc: bool,
}

/// `text` with control characters (but a trailing newline, and ESC when kept) escaped.
pub fn escape_event(text: &str, keep_esc: bool) -> String {
    let (body, tail) = match text.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (text, ""),
    };
    let mut out = String::with_capacity(body.len() + 1);
    for c in body.chars() {
        match c {
            '\x1b' if keep_esc => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&c.escape_unicode().to_string());
            }
            c => out.push(c),
        }
    }
    out.push_str(tail);
    out
}

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // The formatter writes each event whole, in one call.
        let text = String::from_utf8_lossy(buf);
        self.inner.write_all(escape_event(&text, self.keep_esc).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_from_a_plugin_cannot_start_a_forged_line() {
        let out = Buffer::default();
        let sink = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(EscapingWriter::new(move || sink.clone(), false))
            .finish();
        let forged = "oops\n2026-12-07T19:40:00Z  INFO plinth_host::audit: FORGED\r\u{1b}[2K";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(plugin = "evil", "plugin call failed: {forged}");
            tracing::info!("next");
        });
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].contains("oops\\n2026-12-07T19:40:00Z  INFO plinth_host::audit: FORGED\\r"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}') && !text.contains('\r'), "{text}");
        assert!(lines[1].ends_with("next"));
    }

    #[test]
    fn colour_codes_survive_only_when_colour_is_on() {
        assert_eq!(escape_event("\u{1b}[1mhi\n", true), "\u{1b}[1mhi\n");
        assert_eq!(escape_event("\u{1b}[1mhi\n", false), "\\u{1b}[1mhi\n");
        assert_eq!(escape_event("tab\there", false), "tab\\there");
    }
}
