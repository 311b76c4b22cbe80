//! A tenant's installations: install (with dependencies, after confirmation), grant,
//! enable/disable, upgrade (a capability expansion needs a fresh grant in the same
//! call), rollback, uninstall (data kept for a retention period unless purged).
//! Every step is audited in the tenant's ledger with the grants in its after-state.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::json;

use crate::bindings::Caller;
use crate::plugins::{PluginError, PluginHost};
use plinth_core::manifest::{Manifest, RollupSpec};
use plinth_core::records::rollup::{self as rollups, SyncError};
use plinth_core::store::audit::{self, Actor, NewEvent};
use plinth_core::store::installations::{Installation, state};
use plinth_core::store::marketplace::PackageRow;
use plinth_core::store::{Db, StoreError, time};

/// Days an uninstalled plugin's data is kept before it may be purged.
pub const RETENTION_DAYS: i64 = 30;

/// Which version to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionSpec {
    /// Exactly this one.
    Exact(semver::Version),
    /// The highest published version matching (default `*`: latest release).
    Range(semver::VersionReq),
}

/// What the admin grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Everything the manifest requests.
    All,
    /// Only these capability keys (a subset of what is requested).
    Only(BTreeSet<String>),
}

/// Who performs a lifecycle step: for audit, and as the caller of `on-install`.
#[derive(Debug, Clone)]
pub struct Steward {
    /// Tenant.
    pub tenant: String,
    /// Audit actor.
    pub actor: Actor,
    /// The caller `on-install` runs for.
    pub caller: Caller,
}

/// One installation a request would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// Plugin.
    pub plugin: String,
    /// Version.
    pub version: String,
    /// Package digest.
    #[serde(skip)]
    pub digest: String,
    /// Capabilities it requests.
    pub requested: Vec<String>,
    /// Capabilities it will be granted.
    pub granted: Vec<String>,
    /// The plugin that needs it (`None` for the one asked for).
    pub required_by: Option<String>,
}

/// Why a lifecycle step was refused.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// No such plugin or version in the catalog.
    #[error("{0}")]
    NotPublished(String),
    /// Dependencies form a cycle.
    #[error("the dependencies form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// A dependency cannot be satisfied.
    #[error("{plugin} {required} is needed ({}), but {found}", .chain.join(" -> "))]
    Conflict {
        /// The dependency.
        plugin: String,
        /// Range required.
        required: String,
        /// What stands in the way.
        found: String,
        /// Who requires it.
        chain: Vec<String>,
    },
    /// Dependencies would be installed too: resend with confirmation.
    #[error("installing this also installs {}; confirm with \"confirm_dependencies\": true", .0.iter().filter(|p| p.required_by.is_some()).map(|p| format!("{} {}", p.plugin, p.version)).collect::<Vec<_>>().join(", "))]
    NeedsConfirmation(Vec<Planned>),
    /// Grants name capabilities the manifest does not request.
    #[error("these capabilities are not requested by the plugin: {}", .0.join(", "))]
    UnknownGrant(Vec<String>),
    /// An upgrade requests new capabilities that were not granted in the call.
    #[error("the new version also requests {}; grant them in the same call to upgrade", .0.join(", "))]
    GrantRequired(Vec<String>),
    /// Already installed (use upgrade).
    #[error("{0} is already installed; use upgrade to change its version")]
    AlreadyInstalled(String),
    /// Not installed.
    #[error("{0} is not installed")]
    NotInstalled(String),
    /// The step does not apply in the current state.
    #[error("{0}")]
    InvalidState(String),
    /// Other installed plugins depend on it.
    #[error("cannot uninstall {plugin}: {} depend on it", .dependents.join(", "))]
    Dependents {
        /// The plugin.
        plugin: String,
        /// Installed plugins that require it.
        dependents: Vec<String>,
    },
    /// `on-install` failed; nothing changed.
    #[error("{plugin} {version} failed to install: {reason}")]
    HookFailed {
        /// Plugin.
        plugin: String,
        /// Version.
        version: String,
        /// Why.
        reason: String,
    },
    /// Another lifecycle step changed the installation meanwhile.
    #[error("the installation changed meanwhile; retry")]
    Concurrent,
    #[error("{plugin}'s roll-ups do not fit this tenant's records: {}", .problems.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Rollups {
        plugin: String,
        problems: Vec<plinth_core::problem::FieldProblem>,
    },
    /// The package could not be prepared (untrusted, unloadable).
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for LifecycleError {
    fn from(e: sqlx::Error) -> Self {
        LifecycleError::Store(StoreError::Database(e))
    }
}

type Result<T> = std::result::Result<T, LifecycleError>;

fn manifest_of(row: &PackageRow) -> Result<Manifest> {
    Manifest::parse(&row.manifest)
        .map_err(|e| LifecycleError::Store(StoreError::Corrupt(format!("stored manifest: {e}"))))
}

/// The highest published version of `plugin` matching `spec` (pre-releases only when
/// asked for by an exact version or a range that names one).
async fn choose(db: &Db, plugin: &str, spec: &VersionSpec) -> Result<PackageRow> {
    let versions = db.package_versions(plugin).await?;
    if versions.is_empty() {
        return Err(LifecycleError::NotPublished(format!(
            "there is no plugin `{plugin}` in the catalog"
        )));
    }
    let found = versions.into_iter().find(|row| {
        let Ok(v) = row.version.parse::<semver::Version>() else {
            return false;
        };
        match spec {
            VersionSpec::Exact(want) => &v == want,
            VersionSpec::Range(req) => req.matches(&v),
        }
    });
    found.ok_or_else(|| {
        let want = match spec {
            VersionSpec::Exact(v) => v.to_string(),
            VersionSpec::Range(r) => r.to_string(),
        };
        LifecycleError::NotPublished(format!("no published version of `{plugin}` matches {want}"))
    })
}

struct Resolver<'a> {
    db: &'a Db,
    installed: BTreeMap<String, Installation>,
    planned: BTreeMap<String, (PackageRow, Manifest, Option<String>)>,
    order: Vec<String>,
}

impl Resolver<'_> {
    async fn visit(&mut self, plugin: &str, spec: VersionSpec, chain: Vec<String>) -> Result<()> {
        if chain.iter().any(|c| c == plugin) {
            let mut cycle = chain.clone();
            cycle.push(plugin.to_string());
            return Err(LifecycleError::Cycle(cycle));
        }
        let required = match &spec {
            VersionSpec::Exact(v) => format!("={v}"),
            VersionSpec::Range(r) => r.to_string(),
        };
        let satisfies = |version: &str| -> bool {
            let Ok(v) = version.parse::<semver::Version>() else {
                return false;
            };
            match &spec {
                VersionSpec::Exact(want) => &v == want,
                VersionSpec::Range(req) => req.matches(&v),
            }
        };
        if !chain.is_empty() {
            if let Some(i) = self.installed.get(plugin) {
                if satisfies(&i.version) {
                    return Ok(());
                }
                return Err(LifecycleError::Conflict {
                    plugin: plugin.into(),
                    required,
                    found: format!("{} is installed", i.version),
                    chain,
                });
            }
            if let Some((row, _, _)) = self.planned.get(plugin) {
                if satisfies(&row.version) {
                    return Ok(());
                }
                return Err(LifecycleError::Conflict {
                    plugin: plugin.into(),
                    required,
                    found: format!("{} is required elsewhere in the same install", row.version),
                    chain,
                });
            }
        }
        let row = choose(self.db, plugin, &spec).await?;
        let manifest = manifest_of(&row)?;
        let mut next = chain.clone();
        next.push(plugin.to_string());
        for (dep, req) in &manifest.dependencies {
            Box::pin(self.visit(dep, VersionSpec::Range(req.clone()), next.clone())).await?;
        }
        self.planned
            .insert(plugin.to_string(), (row, manifest, chain.last().cloned()));
        self.order.push(plugin.to_string());
        Ok(())
    }
}

fn check_grant(requested: &BTreeSet<String>, grant: &Grant) -> Result<BTreeSet<String>> {
    match grant {
        Grant::All => Ok(requested.clone()),
        Grant::Only(keys) => {
            let unknown: Vec<String> = keys.difference(requested).cloned().collect();
            if unknown.is_empty() {
                Ok(keys.clone())
            } else {
                Err(LifecycleError::UnknownGrant(unknown))
            }
        }
    }
}

fn snapshot(i: &Installation) -> serde_json::Value {
    json!({ "plugin": i.plugin_id, "version": i.version, "digest": i.digest, "state": i.state, "grants": i.grants })
}

async fn record(
    db: &Db,
    tx: &mut plinth_core::store::Tx<'_>,
    who: &Steward,
    action: &str,
    plugin: &str,
    before: Option<&Installation>,
    after: Option<&Installation>,
) -> Result<()> {
    let (b, a) = (before.map(snapshot), after.map(snapshot));
    let event = NewEvent {
        action,
        entity_type: "plugin",
        entity_id: Some(plugin),
        before: b.as_ref(),
        after: a.as_ref(),
    };
    audit::append(tx, db.dialect(), &who.tenant, &who.actor, event).await?;
    // Events: `plugin.installed|upgraded|…` in this transaction; starts/drops the cursor.
    plinth_core::events::lifecycle(tx, db, &who.tenant, &who.actor, action, plugin, before, after).await?;
    Ok(())
}

/// Keep the installation's roll-ups in step with its manifest, in `tx`.
async fn sync_rollups(
    db: &Db,
    tx: &mut plinth_core::store::Tx<'_>,
    row: &Installation,
    specs: &[RollupSpec],
) -> Result<()> {
    rollups::sync(db, tx, &row.tenant_id, &row.plugin_id, specs, &row.grants)
        .await
        .map_err(|e| match e {
            SyncError::Invalid(problems) => LifecycleError::Rollups {
                plugin: row.plugin_id.clone(),
                problems,
            },
            SyncError::Store(e) => e.into(),
        })
}

async fn installed(db: &Db, tenant: &str) -> Result<BTreeMap<String, Installation>> {
    Ok(db
        .installations(tenant)
        .await?
        .into_iter()
        .filter(|i| i.state != state::UNINSTALLED)
        .map(|i| (i.plugin_id.clone(), i))
        .collect())
}

/// Install `plugin` (and, with confirmation, its missing dependencies, which are
/// granted what they request). Runs `on-install` of each, dependencies first, and
/// records nothing unless all succeed. Returns what was installed.
pub async fn install(
    db: &Db,
    host: &PluginHost,
    who: &Steward,
    plugin: &str,
    spec: VersionSpec,
    grant: Grant,
    confirm_dependencies: bool,
) -> Result<Vec<Planned>> {
    let current = installed(db, &who.tenant).await?;
    if current.contains_key(plugin) {
        return Err(LifecycleError::AlreadyInstalled(plugin.into()));
    }
    let mut resolver = Resolver {
        db,
        installed: current,
        planned: BTreeMap::new(),
        order: Vec::new(),
    };
    resolver.visit(plugin, spec, Vec::new()).await?;

    let mut plan = Vec::new();
    for id in &resolver.order {
        let (row, manifest, required_by) = &resolver.planned[id];
        let requested = manifest.capabilities.keys();
        let granted = if id == plugin {
            check_grant(&requested, &grant)?
        } else {
            requested.clone()
        };
        plan.push(Planned {
            plugin: id.clone(),
            version: row.version.clone(),
            digest: row.digest.clone(),
            requested: requested.into_iter().collect(),
            granted: granted.into_iter().collect(),
            required_by: required_by.clone(),
        });
    }
    if plan.len() > 1 && !confirm_dependencies {
        return Err(LifecycleError::NeedsConfirmation(plan));
    }

    let now = time::now();
    let mut rows = Vec::new();
    for p in &plan {
        let previous = db.installation(None, &who.tenant, &p.plugin).await?;
        let row = Installation {
            tenant_id: who.tenant.clone(),
            plugin_id: p.plugin.clone(),
            version: p.version.clone(),
            digest: p.digest.clone(),
            state: state::ENABLED.into(),
            grants: p.granted.clone(),
            previous_version: None,
            previous_digest: None,
            previous_grants: None,
            installed_at: now.clone(),
            updated_at: now.clone(),
            uninstalled_at: None,
            purge_after: None,
            row_version: previous.map_or(0, |r| r.row_version),
        };
        let active = host.prepare(row.clone()).await?;
        let outcome = host.install_hook(&active, who.caller.clone(), None).await;
        if let Err(e) = outcome.result {
            return Err(LifecycleError::HookFailed {
                plugin: p.plugin.clone(),
                version: p.version.clone(),
                reason: e.to_string(),
            });
        }
        rows.push(row);
    }
    let mut tx = db.writer().begin().await?;
    for row in &rows {
        db.put_installation(&mut tx, row).await?;
        let specs = &resolver.planned[&row.plugin_id].1.rollups;
        sync_rollups(db, &mut tx, row, specs).await?;
        record(db, &mut tx, who, "plugin.install", &row.plugin_id, None, Some(row)).await?;
    }
    tx.commit().await?;
    for row in &rows {
        host.invalidate(&who.tenant, &row.plugin_id);
    }
    Ok(plan)
}

async fn current(db: &Db, tenant: &str, plugin: &str) -> Result<Installation> {
    match db.installation(None, tenant, plugin).await? {
        Some(i) if i.state != state::UNINSTALLED => Ok(i),
        _ => Err(LifecycleError::NotInstalled(plugin.into())),
    }
}

async fn save(
    db: &Db,
    host: &PluginHost,
    who: &Steward,
    action: &str,
    before: &Installation,
    after: &Installation,
    rollup_specs: Option<&[RollupSpec]>,
) -> Result<()> {
    let mut tx = db.writer().begin().await?;
    if !db.update_installation(&mut tx, after).await? {
        return Err(LifecycleError::Concurrent);
    }
    if let Some(specs) = rollup_specs {
        sync_rollups(db, &mut tx, after, specs).await?;
    }
    record(db, &mut tx, who, action, &after.plugin_id, Some(before), Some(after)).await?;
    tx.commit().await?;
    host.invalidate(&who.tenant, &after.plugin_id);
    Ok(())
}

/// Switch an installation on (`true`) or off.
pub async fn set_enabled(
    db: &Db,
    host: &PluginHost,
    who: &Steward,
    plugin: &str,
    enabled: bool,
) -> Result<Installation> {
    let before = current(db, &who.tenant, plugin).await?;
    let target = if enabled { state::ENABLED } else { state::DISABLED };
    if before.state == state::REVOKED && enabled {
        return Err(LifecycleError::InvalidState(format!(
            "{plugin} {} was disabled because its signing key was revoked; upgrade to a trusted version",
            before.version
        )));
    }
    if before.state == target {
        return Ok(before);
    }
    let after = Installation {
        state: target.into(),
        ..before.clone()
    };
    save(
        db,
        host,
        who,
        if enabled { "plugin.enable" } else { "plugin.disable" },
        &before,
        &after,
        None,
    )
    .await?;
    Ok(after)
}

/// Upgrade to a newer version. New capabilities need `new_grants` to include them;
/// grants the new version no longer requests are dropped. `on-install` runs with the
/// previous version first; on failure the old version stays active.
pub async fn upgrade(
    db: &Db,
    host: &PluginHost,
    who: &Steward,
    plugin: &str,
    spec: VersionSpec,
    new_grants: BTreeSet<String>,
    confirm_dependencies: bool,
) -> Result<Installation> {
    let before = current(db, &who.tenant, plugin).await?;
    let row = choose(db, plugin, &spec).await?;
    let (old_v, new_v): (semver::Version, semver::Version) = (
        before
            .version
            .parse()
            .map_err(|_| LifecycleError::InvalidState("bad installed version".into()))?,
        row.version
            .parse()
            .map_err(|_| LifecycleError::InvalidState("bad published version".into()))?,
    );
    if new_v <= old_v {
        return Err(LifecycleError::InvalidState(format!(
            "{plugin} {new_v} is not newer than the installed {old_v}; use rollback to go back"
        )));
    }
    let old_manifest = manifest_of(
        &db.package(&before.digest)
            .await?
            .ok_or_else(|| StoreError::NotFound("installed package".into()))?,
    )?;
    let manifest = manifest_of(&row)?;
    let requested = manifest.capabilities.keys();
    let expansion: Vec<String> = requested
        .difference(&old_manifest.capabilities.keys())
        .cloned()
        .collect();
    let unknown: Vec<String> = new_grants.difference(&requested).cloned().collect();
    if !unknown.is_empty() {
        return Err(LifecycleError::UnknownGrant(unknown));
    }
    let missing: Vec<String> = expansion.iter().filter(|k| !new_grants.contains(*k)).cloned().collect();
    if !missing.is_empty() {
        return Err(LifecycleError::GrantRequired(missing));
    }
    // Dependencies of the new version must be satisfied (or installed, if confirmed).
    let mut resolver = Resolver {
        db,
        installed: installed(db, &who.tenant).await?,
        planned: BTreeMap::new(),
        order: Vec::new(),
    };
    for (dep, req) in &manifest.dependencies {
        resolver
            .visit(dep, VersionSpec::Range(req.clone()), vec![plugin.to_string()])
            .await?;
    }
    if !resolver.order.is_empty() {
        if !confirm_dependencies {
            let plan = resolver
                .order
                .iter()
                .map(|id| {
                    let (r, m, by) = &resolver.planned[id];
                    let keys: Vec<String> = m.capabilities.keys().into_iter().collect();
                    Planned {
                        plugin: id.clone(),
                        version: r.version.clone(),
                        digest: r.digest.clone(),
                        requested: keys.clone(),
                        granted: keys,
                        required_by: by.clone(),
                    }
                })
                .collect();
            return Err(LifecycleError::NeedsConfirmation(plan));
        }
        for id in resolver.order.clone() {
            let version = resolver.planned[&id]
                .0
                .version
                .parse()
                .map_err(|_| LifecycleError::InvalidState("bad version".into()))?;
            Box::pin(install(
                db,
                host,
                who,
                &id,
                VersionSpec::Exact(version),
                Grant::All,
                true,
            ))
            .await?;
        }
    }
    let carried: BTreeSet<String> = before
        .grants
        .iter()
        .filter(|g| requested.contains(*g))
        .cloned()
        .collect();
    let grants: Vec<String> = carried.union(&new_grants).cloned().collect();
    let after = Installation {
        version: row.version.clone(),
        digest: row.digest.clone(),
        state: if before.state == state::DISABLED {
            state::DISABLED.into()
        } else {
            state::ENABLED.into()
        },
        grants,
        previous_version: Some(before.version.clone()),
        previous_digest: Some(before.digest.clone()),
        previous_grants: Some(before.grants.clone()),
        ..before.clone()
    };
    let active = host.prepare(after.clone()).await?;
    let outcome = host
        .install_hook(&active, who.caller.clone(), Some(before.version.clone()))
        .await;
    if let Err(e) = outcome.result {
        return Err(LifecycleError::HookFailed {
            plugin: plugin.into(),
            version: row.version,
            reason: e.to_string(),
        });
    }
    save(
        db,
        host,
        who,
        "plugin.upgrade",
        &before,
        &after,
        Some(&manifest.rollups),
    )
    .await?;
    Ok(after)
}

/// Return to the version active before the last upgrade (a second rollback goes
/// forward again). Data migrations are not reversed: plugins keep data readable by
/// their previous version.
pub async fn rollback(db: &Db, host: &PluginHost, who: &Steward, plugin: &str) -> Result<Installation> {
    let before = current(db, &who.tenant, plugin).await?;
    let (Some(version), Some(digest), Some(grants)) = (
        before.previous_version.clone(),
        before.previous_digest.clone(),
        before.previous_grants.clone(),
    ) else {
        return Err(LifecycleError::InvalidState(format!(
            "{plugin} has no previous version to roll back to"
        )));
    };
    let after = Installation {
        version,
        digest,
        grants,
        previous_version: Some(before.version.clone()),
        previous_digest: Some(before.digest.clone()),
        previous_grants: Some(before.grants.clone()),
        ..before.clone()
    };
    host.prepare(after.clone()).await?;
    let manifest = manifest_of(
        &db.package(&after.digest)
            .await?
            .ok_or_else(|| StoreError::NotFound("previous package".into()))?,
    )?;
    save(
        db,
        host,
        who,
        "plugin.rollback",
        &before,
        &after,
        Some(&manifest.rollups),
    )
    .await?;
    Ok(after)
}

/// Uninstall: refused while other installed plugins depend on it. Without `purge`
/// the plugin's data is kept for [`RETENTION_DAYS`] (a re-install finds it again);
/// with `purge` it is deleted now.
pub async fn uninstall(db: &Db, host: &PluginHost, who: &Steward, plugin: &str, purge: bool) -> Result<()> {
    let existing = db
        .installation(None, &who.tenant, plugin)
        .await?
        .ok_or_else(|| LifecycleError::NotInstalled(plugin.into()))?;
    if existing.state == state::UNINSTALLED && !purge {
        return Err(LifecycleError::NotInstalled(plugin.into()));
    }
    let mut dependents = Vec::new();
    for (id, other) in installed(db, &who.tenant).await? {
        if id == plugin {
            continue;
        }
        if let Some(row) = db.package(&other.digest).await?
            && manifest_of(&row)?.dependencies.contains_key(plugin)
        {
            dependents.push(id);
        }
    }
    if !dependents.is_empty() {
        return Err(LifecycleError::Dependents {
            plugin: plugin.into(),
            dependents,
        });
    }
    let mut tx = db.writer().begin().await?;
    // Timers are dropped either way: a re-install starts without the old schedule.
    db.drop_timers(&mut tx, &who.tenant, plugin).await?;
    // Its record locks go with it: nothing would ever release them.
    plinth_core::store::locks::release_all(&mut tx, &who.tenant, plugin).await?;
    // Its unfinished jobs end: nothing would ever run their steps.
    let now = plinth_core::store::time::now();
    db.cancel_plugin_jobs(&mut tx, &who.tenant, plugin, "the plugin was uninstalled", &now)
        .await?;
    // So are roll-ups: derived data, rebuilt on a re-install.
    rollups::drop_all(&mut tx, &who.tenant, plugin)
        .await
        .map_err(|e| match e {
            SyncError::Store(e) => LifecycleError::Store(e),
            SyncError::Invalid(problems) => LifecycleError::Rollups {
                plugin: plugin.into(),
                problems,
            },
        })?;
    if purge {
        db.purge_plugin_data(&mut tx, &who.tenant, plugin).await?;
        db.delete_installation(&mut tx, &who.tenant, plugin).await?;
        record(db, &mut tx, who, "plugin.purge", plugin, Some(&existing), None).await?;
    } else {
        let purge_after = time::format(
            time::parse(&time::now()).unwrap_or(::time::OffsetDateTime::now_utc())
                + ::time::Duration::days(RETENTION_DAYS),
        );
        let after = Installation {
            state: state::UNINSTALLED.into(),
            uninstalled_at: Some(time::now()),
            purge_after: Some(purge_after),
            ..existing.clone()
        };
        if !db.update_installation(&mut tx, &after).await? {
            return Err(LifecycleError::Concurrent);
        }
        record(
            db,
            &mut tx,
            who,
            "plugin.uninstall",
            plugin,
            Some(&existing),
            Some(&after),
        )
        .await?;
    }
    tx.commit().await?;
    host.invalidate(&who.tenant, plugin);
    Ok(())
}
