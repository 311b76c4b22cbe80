//! Installed plugins at run time: for a (tenant, plugin) the active installation —
//! manifest, effective grants, compiled component — cached in memory; calls through
//! the runtime with the right caller and limits; execution tracking.
//!
//! The cache is invalidated by every lifecycle change made through this process, so
//! disable/enable/upgrade take effect on the next request; other hosts sharing the
//! database see changes within [`CACHE_TTL`]. Calls already running keep the
//! component they started with (in-flight calls finish).

pub mod metrics;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::bindings::{Caller, Event, Request, Response};
use crate::caps::{PluginRef, Services};
use crate::engine::{CallOutcome, Invocation, LoadedComponent, Runtime};
use crate::marketplace::trust::{self, Purpose, TrustError};
use metrics::{Entry, ExecMetrics};
use plinth_core::manifest::{Capabilities, Manifest};
use plinth_core::package::Digest;
use plinth_core::store::installations::{Installation, state};
use plinth_core::store::{Db, StoreError};

/// How long another host's lifecycle change may take to be seen here.
pub const CACHE_TTL: Duration = Duration::from_secs(2);

/// A tenant's installation, ready to call.
#[derive(Debug)]
pub struct Active {
    /// The installation row.
    pub installation: Installation,
    /// The package's manifest.
    pub manifest: Arc<Manifest>,
    /// Declared ∩ granted.
    pub grants: Arc<Capabilities>,
    /// Compiled component.
    pub component: Arc<LoadedComponent>,
}

/// Why an installed plugin could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The package is no longer trusted (e.g. its key was revoked).
    #[error(transparent)]
    Trust(#[from] TrustError),
    /// The component could not be loaded.
    #[error("the plugin's component cannot be loaded: {0}")]
    Load(String),
}

/// What a tenant has of a plugin.
#[derive(Debug, Clone)]
pub enum Resolved {
    /// Not installed (or uninstalled).
    NotInstalled,
    /// Installed but not serving (disabled, or its key revoked); nothing is loaded.
    Inactive(Box<Installation>),
    /// Enabled and ready to call.
    Active(Arc<Active>),
}

/// A cached lookup and when it was made.
type CacheEntry = (Resolved, Instant);

/// Resolves and runs tenants' installed plugins.
#[derive(Debug)]
pub struct PluginHost {
    db: Db,
    runtime: Runtime,
    services: Services,
    active: RwLock<HashMap<(String, String), CacheEntry>>,
    manifests: RwLock<HashMap<String, Arc<Manifest>>>,
    /// Execution figures.
    pub metrics: ExecMetrics,
}

impl PluginHost {
    /// A host over a database and runtime, with default [`Services`].
    pub fn new(db: Db, runtime: Runtime) -> PluginHost {
        PluginHost::with_services(Services::new(db), runtime)
    }

    /// A host whose plugins use `services` (the server's configured outbound HTTP
    /// client, secret key and timer clock).
    pub fn with_services(services: Services, runtime: Runtime) -> PluginHost {
        PluginHost {
            db: services.db.clone(),
            runtime,
            services,
            active: RwLock::new(HashMap::new()),
            manifests: RwLock::new(HashMap::new()),
            metrics: ExecMetrics::default(),
        }
    }

    /// The runtime.
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// The backends host calls use.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Drop every compiled package a key revocation untrusted and every cached
    /// installation, so the next call of a disabled plugin finds it disabled.
    pub fn forget_revoked(&self, revocation: &crate::marketplace::publishers::Revocation) {
        for digest in &revocation.packages {
            self.evict_package(digest);
        }
        self.invalidate_all();
    }

    /// Forget what is cached for one tenant's plugin. Called on every lifecycle
    /// change; it also wakes the timer scheduler, so timers held while the plugin was
    /// disabled fire right after it is enabled rather than at the next poll.
    pub fn invalidate(&self, tenant: &str, plugin: &str) {
        self.active
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(tenant.to_string(), plugin.to_string()));
        self.services.timers.wake();
    }

    /// Forget everything cached (after a key revocation).
    pub fn invalidate_all(&self) {
        self.active.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// What the tenant has of `plugin`: only an enabled installation is loaded.
    pub async fn resolve(&self, tenant: &str, plugin: &str) -> Result<Resolved, PluginError> {
        let key = (tenant.to_string(), plugin.to_string());
        if let Some((found, at)) = self.active.read().unwrap_or_else(|p| p.into_inner()).get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(found.clone());
        }
        let found = match self.db.installation(None, tenant, plugin).await? {
            None => Resolved::NotInstalled,
            Some(i) if i.state == state::UNINSTALLED => Resolved::NotInstalled,
            Some(i) if i.state == state::ENABLED => Resolved::Active(Arc::new(self.prepare(i).await?)),
            Some(i) => Resolved::Inactive(Box::new(i)),
        };
        self.active
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, (found.clone(), Instant::now()));
        Ok(found)
    }

    /// Load (trust-checked, compiled) the package `digest` and build an `Active` for
    /// an installation of it with `grants`.
    pub async fn prepare(&self, installation: Installation) -> Result<Active, PluginError> {
        let (manifest, component) = self.load(&installation.digest).await?;
        let granted = installation.grants.iter().cloned().collect();
        let grants = Arc::new(manifest.capabilities.restrict(&granted));
        Ok(Active {
            installation,
            manifest,
            grants,
            component,
        })
    }

    /// The manifest and compiled component of a published package, verifying its
    /// signature against the publisher registry (once per digest per process).
    pub async fn load(&self, digest_hex: &str) -> Result<(Arc<Manifest>, Arc<LoadedComponent>), PluginError> {
        let digest: Digest = digest_hex
            .parse()
            .map_err(|e| PluginError::Load(format!("bad digest: {e}")))?;
        let cached_manifest = self
            .manifests
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest_hex)
            .cloned();
        if let (Some(manifest), Some(component)) = (cached_manifest, self.runtime.cached(&digest)) {
            return Ok((manifest, component));
        }
        let bytes = self
            .db
            .package_file(digest_hex)
            .await?
            .ok_or_else(|| PluginError::Load(format!("package {digest_hex} is not in the catalog")))?;
        let verified = trust::verify(&self.db, &bytes, Purpose::Install).await?;
        let runtime = self.runtime.clone();
        let component = verified.package.component;
        let loaded = tokio::task::spawn_blocking(move || runtime.load(digest, &component))
            .await
            .map_err(|e| PluginError::Load(e.to_string()))?
            .map_err(|e| PluginError::Load(e.to_string()))?;
        let manifest = Arc::new(verified.manifest);
        self.manifests
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest_hex.to_string(), manifest.clone());
        Ok((manifest, loaded))
    }

    /// Forget a package's compiled component and manifest (after a revocation).
    pub fn evict_package(&self, digest_hex: &str) {
        self.manifests
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest_hex);
        if let Ok(d) = digest_hex.parse::<Digest>() {
            self.runtime.evict(&d);
        }
    }

    fn invocation(&self, active: &Active, caller: Caller) -> Invocation {
        Invocation {
            caller,
            plugin: PluginRef {
                id: active.installation.plugin_id.clone(),
                version: active.installation.version.clone(),
            },
            grants: active.grants.clone(),
            limits: self.runtime.limits().for_manifest(&active.manifest.limits),
        }
    }

    fn track<T>(&self, active: &Active, tenant: &str, entry: Entry, outcome: &CallOutcome<T>) {
        let err = outcome.result.as_ref().map(|_| ());
        let kind = metrics::error_kind(&err, outcome.report.stats.denied);
        self.metrics.record(
            tenant,
            &active.installation.plugin_id,
            &active.installation.version,
            entry,
            &outcome.report,
            kind,
        );
    }

    /// Serve an endpoint request.
    pub async fn handle(&self, active: &Active, caller: Caller, request: Request) -> CallOutcome<Response> {
        let tenant = caller.tenant_id.clone();
        let outcome = self
            .runtime
            .handle(
                &active.component,
                self.invocation(active, caller),
                &self.services,
                request,
            )
            .await;
        self.track(active, &tenant, Entry::Endpoint, &outcome);
        outcome
    }

    /// Run `on-install` (with `previous` on upgrade).
    pub async fn install_hook(&self, active: &Active, caller: Caller, previous: Option<String>) -> CallOutcome<()> {
        let tenant = caller.tenant_id.clone();
        let outcome = self
            .runtime
            .on_install(
                &active.component,
                self.invocation(active, caller),
                &self.services,
                previous,
            )
            .await;
        self.track(active, &tenant, Entry::Install, &outcome);
        outcome
    }

    /// Deliver an event to `on-event`.
    pub async fn event(&self, active: &Active, caller: Caller, event: Event) -> CallOutcome<()> {
        let tenant = caller.tenant_id.clone();
        let outcome = self
            .runtime
            .on_event(
                &active.component,
                self.invocation(active, caller),
                &self.services,
                event,
            )
            .await;
        self.track(active, &tenant, Entry::Event, &outcome);
        outcome
    }

    /// Fire `on-timer` (the scheduler's entry point).
    pub async fn timer(&self, active: &Active, caller: Caller, key: String, payload: String) -> CallOutcome<()> {
        let tenant = caller.tenant_id.clone();
        let outcome = self
            .runtime
            .on_timer(
                &active.component,
                self.invocation(active, caller),
                &self.services,
                key,
                payload,
            )
            .await;
        self.track(active, &tenant, Entry::Timer, &outcome);
        outcome
    }

    /// Run one step of a job (the job worker's entry point).
    pub async fn job_step(
        &self,
        active: &Active,
        caller: Caller,
        job: crate::bindings::Job,
        state: Option<String>,
    ) -> CallOutcome<crate::engine::StepOutcome> {
        let tenant = caller.tenant_id.clone();
        let outcome = self
            .runtime
            .on_job_step(
                &active.component,
                self.invocation(active, caller),
                &self.services,
                job,
                state,
            )
            .await;
        self.track(active, &tenant, Entry::JobStep, &outcome);
        outcome
    }
}
