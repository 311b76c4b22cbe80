//! Trust: whether a package may be published or installed, given the registered
//! publishers and their keys. Every refusal names its precise reason.

use plinth_core::manifest::{Manifest, ManifestError};
use plinth_core::package::{Digest, Package, PackageError, PublicKey};
use plinth_core::store::Db;

/// What a package is checked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Publishing: only an **active** key may sign new packages.
    Publish,
    /// Installing or running: active or **retired** keys are fine; revoked are not.
    Install,
}

/// Why a package is not trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// Not a well-formed package.
    #[error("the package is malformed: {0}")]
    Malformed(#[from] PackageError),
    /// The manifest inside is invalid.
    #[error("the manifest is not valid:\n{0}")]
    Manifest(ManifestError),
    /// No such publisher registered.
    #[error("the publisher `{0}` is not registered on this server")]
    UnknownPublisher(String),
    /// The publisher is suspended.
    #[error("the publisher `{0}` is suspended")]
    PublisherSuspended(String),
    /// The signing key is not one of the publisher's.
    #[error("the package is signed by key {key_id}, which is not a key of publisher `{publisher}`")]
    UnknownKey {
        /// Publisher.
        publisher: String,
        /// Key id.
        key_id: String,
    },
    /// The key was revoked.
    #[error("the package is signed by key {0}, which has been revoked")]
    RevokedKey(String),
    /// The key is retired: it may not sign new packages.
    #[error("the package is signed by key {0}, which is retired and may no longer sign new packages")]
    RetiredKey(String),
    /// The signature does not verify with the registered key.
    #[error("the signature does not verify with the publisher's key {key_id}: {reason}")]
    BadSignature {
        /// Key id.
        key_id: String,
        /// Detail.
        reason: String,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] plinth_core::store::StoreError),
}

/// A package whose signature and publisher checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The package.
    pub package: Package,
    /// Its parsed manifest.
    pub manifest: Manifest,
    /// Its digest.
    pub digest: Digest,
}

/// Decode `bytes` and check them against the publisher registry for `purpose`.
pub async fn verify(db: &Db, bytes: &[u8], purpose: Purpose) -> Result<Verified, TrustError> {
    let package = Package::decode(bytes)?;
    let manifest = Manifest::from_bytes(&package.manifest).map_err(TrustError::Manifest)?;
    let publisher_id = manifest.plugin.publisher.clone();
    let publisher = db
        .publisher(&publisher_id)
        .await?
        .ok_or_else(|| TrustError::UnknownPublisher(publisher_id.clone()))?;
    if publisher.status != "active" {
        return Err(TrustError::PublisherSuspended(publisher_id));
    }
    let key_id = package.key_id.to_string();
    let key = publisher
        .keys
        .iter()
        .find(|k| k.key_id == key_id)
        .ok_or_else(|| TrustError::UnknownKey {
            publisher: publisher_id.clone(),
            key_id: key_id.clone(),
        })?;
    match (key.status.as_str(), purpose) {
        ("revoked", _) => return Err(TrustError::RevokedKey(key_id)),
        ("retired", Purpose::Publish) => return Err(TrustError::RetiredKey(key_id)),
        _ => {}
    }
    let public: PublicKey = key
        .public_key
        .parse()
        .map_err(|e: PackageError| TrustError::BadSignature {
            key_id: key_id.clone(),
            reason: e.to_string(),
        })?;
    package.verify(&public).map_err(|e| TrustError::BadSignature {
        key_id: key_id.clone(),
        reason: e.to_string(),
    })?;
    let digest = package.digest();
    Ok(Verified {
        package,
        manifest,
        digest,
    })
}
