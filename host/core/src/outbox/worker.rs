//! The delivery worker: claims due outbox rows, sends them (email through the
//! [`Mailer`], webhooks through the guarded HTTP client, signed), and settles each
//! attempt — sent, retried later with exponential backoff, or failed for good.

use std::time::Instant;

use lettre::message::Mailbox;
use rand::Rng;
use serde_json::Value;

use super::mail::{Mailer, SendError};
use super::{OutboxConfig, email, signing, webhooks};
use crate::outbound::{Allowed, FetchRequest, HttpClient};
use crate::secrets::{Owner, Vault};
use crate::store::outbox::{self, Claimed, Outcome};
use crate::store::webhooks::{self as hooks, Delivery};
use crate::store::{Db, StoreResult, time};

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The sender address is not an address.
    #[error("invalid sender address `{0}`")]
    From(String),
    /// The SMTP settings are unusable.
    #[error("{0}")]
    Smtp(String),
}

/// Sends what the outbox holds.
#[derive(Debug, Clone)]
pub struct Worker {
    db: Db,
    vault: Vault,
    http: HttpClient,
    mailer: Mailer,
    from: Mailbox,
    config: OutboxConfig,
}

/// How one attempt ended, before it is written.
enum Attempt {
    Sent(String),
    Failed { error: String, permanent: bool },
}

impl Worker {
    /// A worker over `db`, writing `.eml` files under `data_dir/outbox` when no SMTP
    /// server is configured.
    pub fn new(
        db: Db,
        vault: Vault,
        http: HttpClient,
        data_dir: &std::path::Path,
        config: OutboxConfig,
    ) -> Result<Worker, WorkerError> {
        let from: Mailbox = config
            .from
            .parse()
            .map_err(|_| WorkerError::From(config.from.clone()))?;
        let mailer = Mailer::new(config.smtp_url.as_ref(), data_dir.join("outbox"), config.smtp_timeout)
            .map_err(WorkerError::Smtp)?;
        Ok(Worker {
            db,
            vault,
            http,
            mailer,
            from,
            config,
        })
    }

    /// Where email goes (for the startup log).
    pub fn describe(&self) -> String {
        match (&self.mailer, &self.config.smtp_url) {
            (Mailer::Smtp(_), Some(url)) => format!("SMTP {}", url.redacted()),
            (Mailer::Files(dir), _) => format!(".eml files in {}", dir.display()),
            (Mailer::Smtp(_), None) => "SMTP".into(),
        }
    }

    /// Poll and deliver until `shutdown` resolves; an attempt in progress finishes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut tick = tokio::time::interval(self.config.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = self.drain().await {
                        tracing::warn!(error = ?e, "outbox delivery failed; retrying");
                    }
                }
                () = &mut shutdown => return,
            }
        }
    }

    /// Deliver everything due now, batch after batch; returns how many attempts
    /// were made.
    pub async fn drain(&self) -> StoreResult<usize> {
        let mut total = 0;
        loop {
            let n = self.run_once().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Claim one batch of due rows and attempt each (concurrently); returns how many.
    pub async fn run_once(&self) -> StoreResult<usize> {
        let now = time::now();
        let lease = time::format(time::parse(&now).unwrap_or_else(time_now) + self.config.lease);
        let claimed = outbox::claim(&self.db, &now, &lease, self.config.batch).await?;
        let n = claimed.len();
        let results = futures_util::future::join_all(claimed.iter().map(|row| self.attempt(row))).await;
        for (row, result) in claimed.iter().zip(results) {
            if let Err(e) = result {
                tracing::warn!(error = ?e, outbox_id = %row.id, "could not record an outbox attempt");
            }
        }
        Ok(n)
    }

    async fn attempt(&self, row: &Claimed) -> StoreResult<()> {
        if row.attempt > i64::from(self.config.max_attempts) {
            // A worker died holding it after the last attempt.
            let error = format!("gave up after {} attempts", self.config.max_attempts);
            outbox::settle(
                &self.db,
                &row.id,
                row.attempt,
                Outcome::Failed { error: &error },
                &time::now(),
            )
            .await?;
            return Ok(());
        }
        let result = match (row.kind.as_str(), &row.webhook_id) {
            (outbox::kind::EMAIL, _) => self.send_email(row).await?,
            (outbox::kind::WEBHOOK, None) => return self.fan_out(row).await,
            (outbox::kind::WEBHOOK, Some(hook)) => self.call_webhook(row, hook).await?,
            (other, _) => Attempt::Failed {
                error: format!("unknown outbox kind `{other}`"),
                permanent: true,
            },
        };
        self.settle(row, result).await.map(|_| ())
    }

    /// Write the attempt's outcome: sent, failed for good (a permanent failure or
    /// the last attempt), or pending again after the backoff.
    async fn settle(&self, row: &Claimed, attempt: Attempt) -> StoreResult<bool> {
        let now = time::now();
        let last_try = row.attempt >= i64::from(self.config.max_attempts);
        let next = self.next_attempt(row.attempt);
        let (outcome, label) = match &attempt {
            Attempt::Sent(result) => (Outcome::Sent { result }, "sent"),
            Attempt::Failed { error, permanent } if *permanent || last_try => {
                tracing::warn!(outbox_id = %row.id, kind = %row.kind, attempt = row.attempt, %error, "delivery failed for good");
                (Outcome::Failed { error }, "failed")
            }
            Attempt::Failed { error, .. } => {
                tracing::info!(outbox_id = %row.id, kind = %row.kind, attempt = row.attempt, %error, "delivery failed; will retry");
                (
                    Outcome::Retry {
                        error,
                        next_attempt_at: &next,
                    },
                    "retry",
                )
            }
        };
        metrics::counter!("plinth_outbox_attempts_total", "kind" => row.kind.clone(), "outcome" => label).increment(1);
        outbox::settle(&self.db, &row.id, row.attempt, outcome, &now).await
    }

    fn next_attempt(&self, attempt: i64) -> String {
        let exp = u32::try_from(attempt.clamp(1, 30) - 1).unwrap_or(0);
        let delay = self
            .config
            .backoff_base
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.config.backoff_max);
        // Up to 10% jitter so rows that failed together do not retry in lockstep.
        let jitter = delay.mul_f64(rand::thread_rng().gen_range(0.0..0.1));
        time::format(time_now() + delay + jitter)
    }

    async fn send_email(&self, row: &Claimed) -> StoreResult<Attempt> {
        let Some(payload) = email::summary(&row.payload) else {
            return Ok(Attempt::Failed {
                error: "the stored message is not readable".into(),
                permanent: true,
            });
        };
        let files = outbox::attachments(&self.db, &row.tenant_id, &row.id).await?;
        let message = match email::build(&self.from, &row.id, &payload, files) {
            Ok(m) => m,
            Err(error) => return Ok(Attempt::Failed { error, permanent: true }),
        };
        Ok(match self.mailer.send(&row.id, message).await {
            Ok(note) => Attempt::Sent(note),
            Err(SendError { permanent, message }) => Attempt::Failed {
                error: message,
                permanent,
            },
        })
    }

    async fn fan_out(&self, row: &Claimed) -> StoreResult<()> {
        let now = time::now();
        let mut tx = self.db.writer().begin().await?;
        let n = webhooks::fan_out_alert(&mut tx, &row.tenant_id, &row.id, &row.payload, &now).await?;
        let note = format!("queued for {n} webhook(s) that take alerts");
        if outbox::settle_in(&mut tx, &row.id, row.attempt, Outcome::Sent { result: &note }, &now).await? {
            tx.commit().await?;
        }
        Ok(())
    }

    async fn call_webhook(&self, row: &Claimed, hook_id: &str) -> StoreResult<Attempt> {
        let tenant = &row.tenant_id;
        let Some(hook) = hooks::get(&self.db, tenant, hook_id).await? else {
            return Ok(Attempt::Failed {
                error: "the webhook was deleted".into(),
                permanent: true,
            });
        };
        if !hook.enabled {
            return Ok(Attempt::Failed {
                error: "the webhook is disabled".into(),
                permanent: true,
            });
        }
        let owner = Owner::Webhook {
            tenant,
            webhook: hook_id,
        };
        let secret = match self.vault.open(owner, &hook.secret) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(webhook = %hook_id, %tenant, error = %e, "webhook secret unreadable: is the secret key the one it was stored with?");
                return Ok(Attempt::Failed {
                    error: "the signing secret cannot be decrypted on this host".into(),
                    permanent: false,
                });
            }
        };
        let mut body: Value = serde_json::from_str(&row.payload).unwrap_or(Value::Null);
        let topic = body["type"].as_str().unwrap_or("unknown").to_string();
        if let Some(obj) = body.as_object_mut() {
            obj.insert("tenant_id".into(), Value::from(tenant.as_str()));
            obj.insert("delivery_id".into(), Value::from(row.id.as_str()));
        }
        let body = body.to_string().into_bytes();
        let timestamp = time_now().unix_timestamp();
        let signature = signing::sign(&secret, timestamp, &body);
        let request = FetchRequest {
            method: "POST".into(),
            url: hook.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (signing::TIMESTAMP_HEADER.into(), timestamp.to_string()),
                (signing::SIGNATURE_HEADER.into(), signature),
                (signing::DELIVERY_HEADER.into(), row.id.clone()),
                (signing::TYPE_HEADER.into(), topic.clone()),
            ],
            body,
            timeout: Some(self.config.webhook_timeout),
        };
        let started = Instant::now();
        let result = self.http.fetch(request, Allowed::Registered).await;
        let latency_ms = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
        let (status_code, attempt) = match result {
            Ok(r) if (200..300).contains(&r.status) => {
                (Some(i64::from(r.status)), Attempt::Sent(format!("HTTP {}", r.status)))
            }
            Ok(r) => (
                Some(i64::from(r.status)),
                Attempt::Failed {
                    error: format!("HTTP {}", r.status),
                    permanent: false,
                },
            ),
            Err(e) => {
                // A target the address rules refuse stays refused: fail at once.
                let permanent = matches!(
                    e,
                    crate::outbound::FetchError::Denied(_) | crate::outbound::FetchError::Invalid(_)
                );
                (
                    None,
                    Attempt::Failed {
                        error: e.to_string(),
                        permanent,
                    },
                )
            }
        };
        let is_final = match &attempt {
            Attempt::Sent(_) => true,
            Attempt::Failed { permanent, .. } => *permanent || row.attempt >= i64::from(self.config.max_attempts),
        };
        let delivery = Delivery {
            id: ulid::Ulid::new().to_string(),
            outbox_id: row.id.clone(),
            topic,
            attempt: row.attempt,
            status_code,
            latency_ms,
            error: match &attempt {
                Attempt::Sent(_) => None,
                Attempt::Failed { error, .. } => Some(error.clone()),
            },
            is_final,
            at: time::now(),
        };
        hooks::insert_delivery(&self.db, tenant, hook_id, &delivery).await?;
        Ok(attempt)
    }
}

fn time_now() -> ::time::OffsetDateTime {
    ::time::OffsetDateTime::now_utc()
}
