//! `plinth serve` and `plinth admin …`: run the server, and operator tasks that work
//! directly on its database.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Deserialize;

use super::block_on;
use crate::server::{self, ServerConfig};
use plinth_core::store::audit::Actor;
use plinth_core::versioning::DEFAULT_VERSION;

/// Where the server keeps its data; shared by `serve` and `admin`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DataArgs {
    /// Data directory (SQLite database, compiled-component cache, keys).
    #[arg(long, env = "PLINTH_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://user:pass@host/db`); default: SQLite in the data dir.
    #[arg(long, env = "PLINTH_DATABASE_URL", value_name = "URL")]
    database_url: Option<String>,
    /// TOML file with any of: listen, data_dir, database_url, body_limit,
    /// plugin_timeout_ms (the longest deadline a manifest may ask for; default 60000),
    /// plugin_memory_mib (default 64), request_log_retention_days (default 30,
    /// 0 keeps the request log forever), rate_limit_per_second and rate_limit_burst
    /// (per API key; default 50 and 100; a rate of 0 turns the limit off), smtp_url, smtp_from, http_allow_private,
    /// http_allow_networks. Flags and environment win over it.
    #[arg(long, env = "PLINTH_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PLINTH_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    data: DataArgs,
    /// Also create (once) a demo tenant with users of every role and a realistic data
    /// set, and print its API keys.
    #[arg(long, env = "PLINTH_DEMO")]
    demo: bool,
    #[command(flatten)]
    integrations: IntegrationArgs,
}

/// Email delivery and outbound HTTP (`docs/outbox.md`, `docs/integrations.md`). The
/// secret key sealing plugin and webhook secrets comes from `PLINTH_SECRET_KEY`
/// (never a flag: command lines are visible to other users), else from
/// `<data-dir>/secret.key`, created on first start.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct IntegrationArgs {
    /// SMTP server for outgoing email: `smtp://[user:pass@]host:port` (add
    /// `?tls=required` for STARTTLS), or `smtps://…` for implicit TLS. Without it,
    /// emails are written as .eml files to `<data-dir>/outbox/`.
    #[arg(long, env = "PLINTH_SMTP_URL", value_name = "URL", hide_env_values = true)]
    smtp_url: Option<String>,
    /// Sender of every email (`Plinth <plinth@example.com>`).
    #[arg(long, env = "PLINTH_SMTP_FROM", value_name = "MAILBOX")]
    smtp_from: Option<String>,
    /// Let plugins' outbound HTTP and webhooks reach loopback, private and
    /// link-local addresses (development, or integrations inside your network).
    #[arg(long, env = "PLINTH_HTTP_ALLOW_PRIVATE")]
    http_allow_private: bool,
    /// Networks outbound HTTP may reach whatever their kind (`10.20.0.0/16`);
    /// repeat the flag or separate with commas.
    #[arg(long, env = "PLINTH_HTTP_ALLOW_NETWORKS", value_name = "CIDR", value_delimiter = ',')]
    http_allow_network: Vec<ipnet::IpNet>,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AdminCommand {
    /// Create a tenant with an owner user; prints the owner's API key once.
    CreateTenant(CreateTenantArgs),
    /// Create an operator token for the operator REST endpoints; printed once.
    Token(TokenArgs),
    /// Marketplace publishers: register, rotate/retire/revoke keys, upload tokens.
    #[command(subcommand)]
    Publisher(PublisherCommand),
    /// API versions: list them, change a version's lifecycle.
    #[command(subcommand)]
    Version(VersionCommand),
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum PublisherCommand {
    /// Register a publisher with its first public key.
    Add {
        /// Publisher id (what manifests name in `plugin.publisher`).
        name: String,
        /// Its public key (`ed25519:…`, from `plinth keygen`).
        #[arg(long)]
        public_key: String,
        /// Display name.
        #[arg(long)]
        display_name: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Add another key (rotation: several keys may be active).
    AddKey {
        /// Publisher id.
        name: String,
        /// The new public key.
        #[arg(long)]
        public_key: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Retire a key: it signs nothing new; packages it signed stay valid.
    RetireKey {
        /// Publisher id.
        name: String,
        /// Key id.
        key_id: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Revoke a key: its packages become untrusted and installed versions are disabled.
    RevokeKey {
        /// Publisher id.
        name: String,
        /// Key id.
        key_id: String,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Create an upload token for `plinth plugin publish`; printed once.
    Token {
        /// Publisher id.
        name: String,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct CreateTenantArgs {
    /// Tenant name.
    name: String,
    /// The owner's email.
    #[arg(long, default_value = "owner@example.com")]
    owner_email: String,
    /// The owner's name.
    #[arg(long, default_value = "Owner")]
    owner_name: String,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    data: DataArgs,
}

/// The config file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    body_limit: Option<usize>,
    plugin_timeout_ms: Option<u64>,
    plugin_memory_mib: Option<u64>,
    request_log_retention_days: Option<u32>,
    rate_limit_per_second: Option<f64>,
    rate_limit_burst: Option<u32>,
    smtp_url: Option<String>,
    smtp_from: Option<String>,
    http_allow_private: Option<bool>,
    http_allow_networks: Option<Vec<String>>,
}

fn config(data: &DataArgs, listen: Option<SocketAddr>) -> anyhow::Result<ServerConfig> {
    config_with(data, listen, &IntegrationArgs::default())
}

fn config_with(data: &DataArgs, listen: Option<SocketAddr>, int: &IntegrationArgs) -> anyhow::Result<ServerConfig> {
    let file: FileConfig = match &data.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("{} is not a valid config file", path.display()))?
        }
        None => FileConfig::default(),
    };
    let data_dir = data
        .data_dir
        .clone()
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("plinth-data"));
    let mut config = ServerConfig::new(data_dir);
    if let Some(addr) = listen.or(file.listen) {
        config.listen = addr;
    }
    config.database_url = data.database_url.clone().or(file.database_url);
    // Embedded mode publishes the bundled plugins itself; with PostgreSQL the
    // operator loads packages signed elsewhere (or passes --demo).
    config.first_party = config.database_url.is_none();
    if let Some(limit) = file.body_limit {
        config.api.body_limit = limit;
    }
    if let Some(ms) = file.plugin_timeout_ms {
        config.limits.max_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(mib) = file.plugin_memory_mib {
        config.limits.max_memory_bytes = mib * 1024 * 1024;
    }
    if let Some(days) = file.request_log_retention_days {
        config.api.request_log.retention_days = days;
    }
    // Per API key; a rate of 0 turns the limit off.
    if file.rate_limit_per_second.is_some() || file.rate_limit_burst.is_some() {
        let default = crate::api::ratelimit::RateLimit::default();
        let per_second = file.rate_limit_per_second.unwrap_or(default.per_second);
        config.api.rate_limit = (per_second > 0.0).then_some(crate::api::ratelimit::RateLimit {
            per_second,
            burst: file.rate_limit_burst.unwrap_or(default.burst).max(1),
        });
    }
    if let Some(url) = int.smtp_url.clone().or(file.smtp_url) {
        let url = plinth_core::outbox::SmtpUrl::parse(&url).map_err(|e| anyhow::anyhow!("--smtp-url: {e}"))?;
        config.outbox.smtp_url = Some(url);
    }
    if let Some(from) = int.smtp_from.clone().or(file.smtp_from) {
        config.outbox.from = from;
    }
    config.http.addresses.allow_private = int.http_allow_private || file.http_allow_private.unwrap_or(false);
    config.http.addresses.allow_networks = if int.http_allow_network.is_empty() {
        let parse = |n: &String| {
            n.parse()
                .map_err(|e| anyhow::anyhow!("http_allow_networks: `{n}`: {e}"))
        };
        file.http_allow_networks
            .unwrap_or_default()
            .iter()
            .map(parse)
            .collect::<anyhow::Result<_>>()?
    } else {
        int.http_allow_network.clone()
    };
    if let Ok(key) = std::env::var(plinth_core::secrets::KEY_ENV)
        && !key.trim().is_empty()
    {
        config.secret_key = Some(plinth_core::secrets::KeyText::new(key));
    }
    Ok(config)
}

pub(crate) fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let mut config = config_with(&args.data, args.listen, &args.integrations)?;
    config.first_party |= args.demo;
    block_on(async move {
        let db = config.open_db().await?;
        if args.demo {
            crate::demo::ensure(&db, &config.data_dir).await?.print();
        }
        let running = server::start_with_db(config.clone(), db).await?;
        let store = match &config.database_url {
            Some(_) => "PostgreSQL".to_string(),
            None => config.data_dir.join("plinth.db").display().to_string(),
        };
        tracing::info!(addr = %running.addr, %store, "plinth is serving");
        eprintln!("plinth is serving on {} (data: {store})", running.url());
        let stop = running.shutdown_token();
        tokio::spawn(async move {
            server::shutdown_signal().await;
            tracing::info!("shutting down: finishing in-flight requests");
            stop.cancel();
        });
        running.wait().await?;
        Ok(ExitCode::SUCCESS)
    })?
}

pub(crate) fn admin(cmd: AdminCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdminCommand::CreateTenant(args) => {
            let config = config(&args.data, None)?;
            block_on(async move {
                let db = config.open_db().await?;
                let created = plinth_core::tenancy::create_tenant(
                    &db,
                    &args.name,
                    &args.owner_email,
                    &args.owner_name,
                    DEFAULT_VERSION,
                    &Actor::system(),
                )
                .await?;
                println!("tenant:   {} ({})", created.tenant.name, created.tenant.id);
                println!("owner:    {} ({})", created.owner.email, created.owner.id);
                println!("api key:  {}   (shown once: store it now)", created.api_key);
                db.close().await;
                Ok(ExitCode::SUCCESS)
            })?
        }
        AdminCommand::Publisher(cmd) => publisher(cmd),
        AdminCommand::Token(args) => {
            let config = config(&args.data, None)?;
            block_on(async move {
                let db = config.open_db().await?;
                let token = plinth_core::tenancy::create_operator_token(&db).await?;
                println!("operator token: {token}   (shown once: store it now)");
                db.close().await;
                Ok(ExitCode::SUCCESS)
            })?
        }
        AdminCommand::Version(cmd) => version(cmd),
    }
}

fn publisher(cmd: PublisherCommand) -> anyhow::Result<ExitCode> {
    use plinth_runtime::marketplace::publishers as p;
    let key = |text: &str| -> anyhow::Result<plinth_core::package::PublicKey> {
        text.parse().map_err(|e| anyhow::anyhow!("--public-key: {e}"))
    };
    let data = match &cmd {
        PublisherCommand::Add { data, .. }
        | PublisherCommand::AddKey { data, .. }
        | PublisherCommand::RetireKey { data, .. }
        | PublisherCommand::RevokeKey { data, .. }
        | PublisherCommand::Token { data, .. } => data.clone(),
    };
    let config = config(&data, None)?;
    block_on(async move {
        let db = config.open_db().await?;
        match cmd {
            PublisherCommand::Add {
                name,
                public_key,
                display_name,
                ..
            } => {
                let k = key(&public_key)?;
                let publisher = p::register(&db, &name, display_name.as_deref().unwrap_or(&name), Some(&k)).await?;
                println!("publisher {} registered with key {}", publisher.id, k.key_id());
            }
            PublisherCommand::AddKey { name, public_key, .. } => {
                let k = key(&public_key)?;
                p::add_key(&db, &name, &k).await?;
                println!("key {} added to {name}", k.key_id());
            }
            PublisherCommand::RetireKey { name, key_id, .. } => {
                p::retire_key(&db, &name, &key_id).await?;
                println!("key {key_id} of {name} retired");
            }
            PublisherCommand::RevokeKey { name, key_id, .. } => {
                let r = p::revoke_key(&db, &name, &key_id).await?;
                println!(
                    "key {key_id} of {name} revoked: {} packages untrusted, {} installations disabled \
                     (running servers notice within {}s)",
                    r.packages.len(),
                    r.disabled.len(),
                    plinth_runtime::plugins::CACHE_TTL.as_secs()
                );
            }
            PublisherCommand::Token { name, .. } => {
                let token = p::issue_token(&db, &name).await?;
                println!("upload token for {name}: {token}   (shown once: store it now)");
            }
        }
        db.close().await;
        Ok(ExitCode::SUCCESS)
    })?
}

// --- plinth admin version … ------------------------------------------------------

#[derive(Debug, clap::Subcommand)]
pub(crate) enum VersionCommand {
    /// List the API versions with their lifecycle, dates and successor.
    List(VersionListArgs),
    /// Change a version's lifecycle. Running servers pick it up within 10 s.
    Set(VersionSetArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct VersionListArgs {
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct VersionSetArgs {
    /// The version, e.g. 2026-11-01.
    #[arg(value_name = "VERSION")]
    api_version: String,
    /// preview, current, deprecated or retired.
    #[arg(long)]
    lifecycle: plinth_core::versioning::Lifecycle,
    /// Deprecation date (YYYY-MM-DD; default: today, or the date already set).
    #[arg(long, value_parser = parse_date)]
    deprecation: Option<time::Date>,
    /// Sunset date (YYYY-MM-DD; default: 180 days after deprecation, or today when retiring).
    #[arg(long, value_parser = parse_date)]
    sunset: Option<time::Date>,
    /// Successor version (default: the next version).
    #[arg(long)]
    successor: Option<String>,
    #[command(flatten)]
    data: DataArgs,
}

fn parse_date(s: &str) -> Result<time::Date, String> {
    plinth_core::versioning::lifecycle::parse_date(s).ok_or_else(|| format!("`{s}` is not a date YYYY-MM-DD"))
}

fn version(cmd: VersionCommand) -> anyhow::Result<ExitCode> {
    use plinth_core::versioning::lifecycle::format_date;
    use plinth_core::versioning::{LifecycleChange, Versions};

    let data = match &cmd {
        VersionCommand::List(a) => &a.data,
        VersionCommand::Set(a) => &a.data,
    };
    let config = config(data, None)?;
    block_on(async move {
        let db = config.open_db().await?;
        let versions = Versions::default();
        if let VersionCommand::Set(a) = cmd {
            let change = LifecycleChange {
                lifecycle: a.lifecycle,
                deprecation: a.deprecation,
                sunset: a.sunset,
                successor: a.successor,
            };
            versions.set(&db, &a.api_version, change).await?;
        } else {
            versions.reload(&db).await?;
        }
        println!(
            "{:<12} {:<11} {:<12} {:<12} {:<12} CHANGED",
            "VERSION", "LIFECYCLE", "DEPRECATION", "SUNSET", "SUCCESSOR"
        );
        let date = |d: Option<time::Date>| d.map_or_else(|| "-".to_string(), format_date);
        for v in versions.snapshot().versions() {
            println!(
                "{:<12} {:<11} {:<12} {:<12} {:<12} {}",
                v.version,
                v.status.lifecycle.as_str(),
                date(v.status.deprecation),
                date(v.status.sunset),
                v.status.successor.as_deref().unwrap_or("-"),
                v.overridden_at.as_deref().unwrap_or("built-in"),
            );
        }
        db.close().await;
        Ok(ExitCode::SUCCESS)
    })?
}
