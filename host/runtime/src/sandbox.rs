//! An in-process host for one plugin: the same runtime and capabilities the server
//! uses, with its own SQLite storage. Backs `plinth plugin call` and the runtime tests.

use std::path::Path;
use std::sync::Arc;

use sha2::Digest as _;

use crate::admission::{self, SchemaCache};
use crate::bindings::{Caller, Request, Response};
use crate::caps::{PluginRef, Services};
use crate::engine::{CallOutcome, Invocation, LoadedComponent, Runtime, RuntimeConfig};
use plinth_core::manifest::{Manifest, Role};
use plinth_core::package::Digest;
use plinth_core::store::Db;

/// Name of the tenant a sandbox creates on first use.
pub const SANDBOX_TENANT: &str = "Sandbox";

/// A plugin loaded into a [`Sandbox`].
#[derive(Debug, Clone)]
pub struct SandboxPlugin {
    /// Its manifest.
    pub manifest: Arc<Manifest>,
    /// The compiled component.
    pub component: Arc<LoadedComponent>,
    /// Digest of the component (keys its compiled body schemas).
    digest: String,
}

/// Runtime + storage for running plugins locally.
#[derive(Debug, Clone)]
pub struct Sandbox {
    runtime: Runtime,
    services: Services,
    tenant: String,
    user: Option<String>,
    schemas: Arc<SchemaCache>,
}

/// Why a sandbox request did not reach the plugin or failed in it.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// Refused by the same admission check the server makes (no such endpoint, method
    /// not declared, role too low, body not matching the schema).
    #[error(transparent)]
    Refused(#[from] crate::admission::Refusal),
    /// The runtime refused or failed the call.
    #[error(transparent)]
    Call(#[from] crate::engine::CallError),
}

impl Sandbox {
    /// A sandbox whose storage lives in `data_dir/sandbox.db`.
    pub async fn open(data_dir: &Path, config: RuntimeConfig) -> anyhow::Result<Sandbox> {
        std::fs::create_dir_all(data_dir)?;
        let db = Db::open_sqlite(&data_dir.join("sandbox.db")).await?;
        let (tenant, user) = sandbox_tenant(&db).await?;
        Ok(Sandbox {
            runtime: Runtime::new(config)?,
            services: Services::new(db),
            tenant,
            user: Some(user),
            schemas: Arc::default(),
        })
    }

    /// A sandbox over an existing runtime and database, acting for `tenant` and
    /// `user` (`None`: a system call, as for timers and events).
    pub fn with(runtime: Runtime, db: Db, tenant: &str, user: Option<&str>) -> Sandbox {
        Sandbox {
            runtime,
            services: Services::new(db),
            tenant: tenant.to_string(),
            user: user.map(str::to_string),
            schemas: Arc::default(),
        }
    }

    /// The same sandbox acting for another tenant and user (sharing runtime and database).
    pub fn acting_as(&self, tenant: &str, user: Option<&str>) -> Sandbox {
        Sandbox {
            tenant: tenant.to_string(),
            user: user.map(str::to_string),
            ..self.clone()
        }
    }

    /// The tenant calls run in.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The database.
    pub fn db(&self) -> &Db {
        &self.services.db
    }

    /// Compile and link a plugin from its manifest and component bytes.
    pub async fn load(&self, manifest: Manifest, component: Vec<u8>) -> anyhow::Result<SandboxPlugin> {
        // Content-addressed by the component itself: the same bytes share one compilation.
        let digest = Digest::from_bytes(sha2::Sha256::digest(&component).into());
        let runtime = self.runtime.clone();
        let digest_text = digest.to_string();
        let loaded = tokio::task::spawn_blocking(move || runtime.load(digest, &component)).await??;
        // Its roll-ups, kept as the server keeps them for an installation that was
        // granted everything the manifest asks for.
        let db = &self.services.db;
        let grants: Vec<String> = manifest.capabilities.keys().into_iter().collect();
        let mut tx = db.writer().begin().await?;
        plinth_core::records::rollup::sync(
            db,
            &mut tx,
            &self.tenant,
            &manifest.plugin.id,
            &manifest.rollups,
            &grants,
        )
        .await?;
        tx.commit().await?;
        Ok(SandboxPlugin {
            manifest: Arc::new(manifest),
            component: loaded,
            digest: digest_text,
        })
    }

    /// The invocation for a sandbox caller with `role`, granting everything the
    /// manifest declares.
    pub fn invocation(&self, plugin: &SandboxPlugin, role: Role) -> Invocation {
        Invocation {
            caller: Caller {
                tenant_id: self.tenant.clone(),
                user_id: self.user.clone(),
                roles: vec![role.as_str().to_string()],
                api_version: "2026-11-01".into(),
                request_id: ulid::Ulid::new().to_string(),
            },
            plugin: PluginRef {
                id: plugin.manifest.plugin.id.clone(),
                version: plugin.manifest.plugin.version.to_string(),
            },
            grants: Arc::new(plugin.manifest.capabilities.clone()),
            limits: self.runtime.limits().for_manifest(&plugin.manifest.limits),
        }
    }

    /// Route a request as the server does: it must match a declared endpoint, the
    /// role must meet the endpoint's minimum and the body its schema
    /// ([`crate::admission`]).
    pub async fn request(
        &self,
        plugin: &SandboxPlugin,
        role: Role,
        request: Request,
    ) -> Result<CallOutcome<Response>, SandboxError> {
        let endpoint = admission::endpoint(&plugin.manifest, &request.method, &request.path, role)?;
        self.schemas.check_body(&plugin.digest, endpoint, &request.body)?;
        let invocation = self.invocation(plugin, role);
        Ok(self
            .runtime
            .handle(&plugin.component, invocation, &self.services, request)
            .await)
    }

    /// Call the plugin's `handle` export directly, without endpoint routing (for tests
    /// of hostile guests whose manifests declare nothing).
    pub async fn handle_raw(&self, plugin: &SandboxPlugin, role: Role, request: Request) -> CallOutcome<Response> {
        let invocation = self.invocation(plugin, role);
        self.runtime
            .handle(&plugin.component, invocation, &self.services, request)
            .await
    }
}

/// The sandbox's own tenant and its owner, created on first use.
async fn sandbox_tenant(db: &Db) -> anyhow::Result<(String, String)> {
    if let Some(t) = db.tenants().await?.into_iter().find(|t| t.name == SANDBOX_TENANT) {
        let owner = db.users(&t.id, None, 1).await?.into_iter().next();
        if let Some(owner) = owner {
            return Ok((t.id, owner.id));
        }
    }
    let created = plinth_core::tenancy::create_tenant(
        db,
        SANDBOX_TENANT,
        "developer@sandbox.local",
        "Developer",
        plinth_core::versioning::DEFAULT_VERSION,
        &plinth_core::store::audit::Actor::system(),
    )
    .await?;
    Ok((created.tenant.id, created.owner.id))
}

/// Build a WIT request from a method, a path with an optional `?query`, and a body.
pub fn request(method: &str, path_and_query: &str, headers: Vec<(String, String)>, body: Vec<u8>) -> Request {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    Request {
        method: method.to_ascii_uppercase(),
        path: path.to_string(),
        query: form_pairs(query),
        headers,
        body,
    }
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decode `%XX` escapes and `+` (as space); invalid escapes are kept literally.
pub fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_is_total() {
        assert_eq!(percent_decode("a%20b+c"), "a b c");
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("é%C3%A9"), "éé");
    }

    #[test]
    fn request_splits_query() {
        let r = request("get", "/greet/ada?lang=de&x", vec![], vec![]);
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/greet/ada");
        assert_eq!(r.query, vec![("lang".into(), "de".into()), ("x".into(), String::new())]);
    }
}
