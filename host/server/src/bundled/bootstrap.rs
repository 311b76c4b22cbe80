//! First-party publishing for embedded and demo mode: on start, make sure publisher
//! `plinth` exists with a local key kept in the data directory (created once, mode
//! 0600), and that every bundled plugin is signed with it and published. Idempotent:
//! packages already published (same digest) are left alone.

use std::path::Path;

use anyhow::Context;

use super::BUNDLED;
use plinth_core::manifest::Manifest;
use plinth_core::package::{Package, SecretKey};
use plinth_core::store::{Db, StoreError};
use plinth_runtime::engine::Runtime;

/// The first-party publisher id.
pub const FIRST_PARTY: &str = "plinth";
/// File name of the local first-party key in the data directory.
pub const KEY_FILE: &str = "first-party.key";

/// What happened to each bundled plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Newly published.
    Published,
    /// Already in the catalog.
    Present,
    /// Not published (reason).
    Skipped(String),
}

/// Ensure publisher `plinth`, its local key and every bundled plugin are in place.
pub async fn publish_first_party(
    db: &Db,
    runtime: &Runtime,
    data_dir: &Path,
) -> anyhow::Result<Vec<(String, String, Outcome)>> {
    let key_path = data_dir.join(KEY_FILE);
    let key = if key_path.exists() {
        SecretKey::read(&key_path).with_context(|| format!("could not read {}", key_path.display()))?
    } else {
        let key = SecretKey::generate();
        key.write_new(&key_path)
            .with_context(|| format!("could not write {}", key_path.display()))?;
        key
    };
    match db.insert_publisher(FIRST_PARTY, "Plinth").await {
        Ok(()) | Err(StoreError::Conflict(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let public = key.public_key();
    let publisher = db.publisher(FIRST_PARTY).await?.context("publisher plinth vanished")?;
    if !publisher.keys.iter().any(|k| k.key_id == public.key_id().as_str()) {
        db.insert_publisher_key(FIRST_PARTY, public.key_id().as_str(), &public.to_text())
            .await?;
    }

    let mut outcomes = Vec::new();
    for bundled in BUNDLED {
        let manifest =
            Manifest::parse(bundled.manifest).with_context(|| format!("bundled {} manifest", bundled.crate_name))?;
        let (id, version) = (manifest.plugin.id.clone(), manifest.plugin.version.to_string());
        if manifest.plugin.publisher != FIRST_PARTY {
            outcomes.push((id, version, Outcome::Skipped("not published by `plinth`".into())));
            continue;
        }
        let package = Package::sign(bundled.manifest.as_bytes().to_vec(), bundled.component.to_vec(), &key)?;
        let digest = package.digest().to_hex();
        if db.package(&digest).await?.is_some() {
            outcomes.push((id, version, Outcome::Present));
            continue;
        }
        if let Some(existing) = db.package_version(&id, &version).await? {
            let why = format!(
                "{id} {version} is already published with digest {}; the bundled build differs — bump its version",
                existing.digest
            );
            tracing::warn!("{why}");
            outcomes.push((id, version, Outcome::Skipped(why)));
            continue;
        }
        match plinth_runtime::marketplace::publish::publish(db, runtime, &package.encode(), None).await {
            Ok(_) => outcomes.push((id, version, Outcome::Published)),
            Err(e) => {
                tracing::warn!(plugin = %id, %version, error = %e, "could not publish a bundled plugin");
                outcomes.push((id, version, Outcome::Skipped(e.to_string())));
            }
        }
    }
    Ok(outcomes)
}
