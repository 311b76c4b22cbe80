//! Publishing: a package that is trusted, valid, compiles with this host's engine,
//! targets a supported plugin API, imports nothing its manifest does not declare and
//! is newer than every published version of its plugin is stored, content-addressed.

use crate::caps;
use crate::engine::Runtime;
use plinth_core::store::marketplace::{NewPackage, PackageRow};
use plinth_core::store::{Db, StoreError};

use super::trust::{self, Purpose, TrustError};

/// Why a publish was refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Not trusted (signature, publisher, key).
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The uploader is not the manifest's publisher.
    #[error("this token belongs to publisher `{token}`, but the package is published by `{manifest}`")]
    WrongPublisher {
        /// Publisher of the token.
        token: String,
        /// Publisher in the manifest.
        manifest: String,
    },
    /// The plugin API range excludes this host.
    #[error("plugin.api = \"{wanted}\" does not accept this host's plugin API {host}")]
    UnsupportedApi {
        /// The manifest's range.
        wanted: String,
        /// The host's version.
        host: String,
    },
    /// The component does not compile or link.
    #[error("the component cannot run on this host: {0}")]
    Component(String),
    /// The component imports interfaces the manifest does not declare.
    #[error("the component does not match its manifest: {}", .0.join("; "))]
    UndeclaredImports(Vec<String>),
    /// A roll-up over a standard object names fields that do not fit it.
    #[error("the manifest's roll-ups do not fit the records they read: {}", .0.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Rollups(Vec<plinth_core::problem::FieldProblem>),
    /// Same id and version already published.
    #[error("{plugin} {version} is already published")]
    Duplicate {
        /// Plugin.
        plugin: String,
        /// Version.
        version: String,
    },
    /// Not newer than the latest version.
    #[error("{plugin} {version} is not newer than the latest published version {latest}")]
    NotNewer {
        /// Plugin.
        plugin: String,
        /// Version.
        version: String,
        /// Latest published.
        latest: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Check and store a package. `uploader` is the publisher that authenticated the
/// upload (`None` for the host's own first-party publishing).
pub async fn publish(
    db: &Db,
    runtime: &Runtime,
    bytes: &[u8],
    uploader: Option<&str>,
) -> Result<PackageRow, PublishError> {
    let verified = trust::verify(db, bytes, Purpose::Publish).await?;
    let m = &verified.manifest;
    if let Some(uploader) = uploader
        && uploader != m.plugin.publisher
    {
        return Err(PublishError::WrongPublisher {
            token: uploader.into(),
            manifest: m.plugin.publisher.clone(),
        });
    }
    if !m.plugin.api.matches(&crate::WIT_VERSION) {
        return Err(PublishError::UnsupportedApi {
            wanted: m.plugin.api.to_string(),
            host: crate::WIT_VERSION.to_string(),
        });
    }
    let problems = plinth_core::records::rollup::check_standard(&m.rollups);
    if !problems.is_empty() {
        return Err(PublishError::Rollups(problems));
    }
    let (id, version) = (m.plugin.id.clone(), m.plugin.version.clone());
    if db.package_version(&id, &version.to_string()).await?.is_some() {
        return Err(PublishError::Duplicate {
            plugin: id,
            version: version.to_string(),
        });
    }
    if let Some(latest) = db.package_versions(&id).await?.into_iter().next() {
        let newer = latest
            .version
            .parse::<semver::Version>()
            .map(|l| version > l)
            .unwrap_or(true);
        if !newer {
            return Err(PublishError::NotNewer {
                plugin: id,
                version: version.to_string(),
                latest: latest.version,
            });
        }
    }

    // Compile with this host's engine (also warms the cache for the first install).
    let runtime = runtime.clone();
    let (digest, component) = (verified.digest, verified.package.component.clone());
    let loaded = tokio::task::spawn_blocking(move || runtime.load(digest, &component))
        .await
        .map_err(|e| PublishError::Component(format!("compilation task failed: {e}")))?
        .map_err(|e| PublishError::Component(e.to_string()))?;
    if let Err(problems) = caps::check_imports(loaded.imports(), &m.capabilities) {
        return Err(PublishError::UndeclaredImports(problems));
    }

    let manifest_text = String::from_utf8_lossy(&verified.package.manifest).into_owned();
    let digest_hex = verified.digest.to_hex();
    let key_id = verified.package.key_id.to_string();
    let result = db
        .insert_package(NewPackage {
            digest: &digest_hex,
            plugin_id: &id,
            version: &version,
            publisher_id: &m.plugin.publisher,
            key_id: &key_id,
            name: &m.plugin.name,
            description: m.plugin.description.as_deref().unwrap_or(""),
            categories: &m.plugin.categories,
            manifest: &manifest_text,
            file: bytes,
        })
        .await;
    match result {
        Ok(()) => {}
        // A concurrent publish of the same version won the race.
        Err(StoreError::Conflict(_)) => {
            return Err(PublishError::Duplicate {
                plugin: id,
                version: version.to_string(),
            });
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(plugin = %id, %version, digest = %digest_hex, "package published");
    db.package(&digest_hex)
        .await?
        .ok_or_else(|| PublishError::Store(StoreError::NotFound("just published".into())))
}
