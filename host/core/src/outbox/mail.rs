//! Where emails go: the operator's SMTP server (lettre; `smtp://` plain,
//! `smtp://…?tls=required` STARTTLS, `smtps://` implicit TLS, credentials as URL
//! userinfo), or — with no SMTP configured — `.eml` files in `<data-dir>/outbox/`.

use std::path::PathBuf;
use std::time::Duration;

use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// An SMTP URL. Its `Debug` hides credentials, so it can sit in logged configs.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl(String);

impl SmtpUrl {
    /// Check and wrap an SMTP URL.
    pub fn parse(text: &str) -> Result<SmtpUrl, String> {
        let url = url::Url::parse(text).map_err(|_| "the SMTP URL is not a URL".to_string())?;
        if url.scheme() != "smtp" && url.scheme() != "smtps" {
            return Err("the SMTP URL must start with smtp:// or smtps://".into());
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("the SMTP URL has no host".into());
        }
        match url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned()) {
            None => {}
            Some(v) if v == "required" || v == "opportunistic" => {}
            Some(_) => return Err("the SMTP URL's tls= must be `required` or `opportunistic`".into()),
        }
        Ok(SmtpUrl(text.to_string()))
    }

    /// Scheme, host and port only: what may be logged.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(u) => format!(
                "{}://{}:{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port().map_or_else(|| "default".to_string(), |p| p.to_string())
            ),
            Err(_) => "smtp://?".into(),
        }
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SmtpUrl({})", self.redacted())
    }
}

/// A failed send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// Retrying cannot help (an SMTP 5xx reply).
    pub permanent: bool,
    /// What happened.
    pub message: String,
}

/// Delivers built messages.
#[derive(Clone)]
pub enum Mailer {
    /// Through an SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// As `.eml` files in this directory.
    Files(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Mailer::Smtp(_) => f.write_str("Mailer::Smtp"),
            Mailer::Files(dir) => write!(f, "Mailer::Files({})", dir.display()),
        }
    }
}

impl Mailer {
    /// The SMTP mailer for `url`, or the `.eml` directory when `url` is `None`.
    pub fn new(url: Option<&SmtpUrl>, eml_dir: PathBuf, timeout: Duration) -> Result<Mailer, String> {
        match url {
            Some(url) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url.0)
                    .map_err(|e| format!("invalid SMTP URL {}: {e}", url.redacted()))?;
                Ok(Mailer::Smtp(builder.timeout(Some(timeout)).build()))
            }
            None => Ok(Mailer::Files(eml_dir)),
        }
    }

    /// Send one message; returns a note on where it went.
    pub async fn send(&self, outbox_id: &str, message: lettre::Message) -> Result<String, SendError> {
        match self {
            Mailer::Smtp(transport) => match transport.send(message).await {
                Ok(response) => Ok(format!(
                    "accepted by the SMTP server: {} {}",
                    response.code(),
                    response.first_line().unwrap_or("")
                )),
                Err(e) => Err(SendError {
                    permanent: e.is_permanent(),
                    message: format!("SMTP: {e}"),
                }),
            },
            Mailer::Files(dir) => write_eml(dir, outbox_id, &message.formatted()).await,
        }
    }
}

/// Write `<dir>/<id>.eml` atomically (a temporary file renamed into place), so a
/// reader never sees half a message and a retry overwrites cleanly.
async fn write_eml(dir: &std::path::Path, id: &str, bytes: &[u8]) -> Result<String, SendError> {
    let transient = |e: std::io::Error| SendError {
        permanent: false,
        message: format!("could not write the .eml file: {e}"),
    };
    // Outbox ids are ULIDs; anything else must not become a path.
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SendError {
            permanent: true,
            message: "invalid outbox id".into(),
        });
    }
    tokio::fs::create_dir_all(dir).await.map_err(transient)?;
    let name = format!("{id}.eml");
    let tmp = dir.join(format!(".{id}.eml.tmp"));
    tokio::fs::write(&tmp, bytes).await.map_err(transient)?;
    tokio::fs::rename(&tmp, dir.join(&name)).await.map_err(transient)?;
    Ok(format!("written to outbox/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        let u = SmtpUrl::parse("smtps://mailer:s3cret@smtp.example.com:465").unwrap();
        let shown = format!("{u:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("mailer"), "{shown}");
        assert_eq!(u.redacted(), "smtps://smtp.example.com:465");
        assert!(SmtpUrl::parse("smtp://localhost:2525?tls=required").is_ok());
        assert!(SmtpUrl::parse("smtp://localhost:2525?tls=maybe").is_err());
        assert!(SmtpUrl::parse("http://localhost").is_err());
        assert!(SmtpUrl::parse("localhost:25").is_err());
    }

    #[tokio::test]
    async fn eml_files_are_written_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let note = write_eml(dir.path(), "01ABC", b"Subject: x\r\n\r\nhi").await.unwrap();
        assert_eq!(note, "written to outbox/01ABC.eml");
        assert_eq!(
            std::fs::read(dir.path().join("01ABC.eml")).unwrap(),
            b"Subject: x\r\n\r\nhi"
        );
        assert!(write_eml(dir.path(), "../x", b"").await.unwrap_err().permanent);
    }
}
