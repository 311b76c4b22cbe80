//! The host side of the plugin capabilities: one file per WIT interface.
//!
//! Every host call runs against a [`CapCtx`]: the caller the host authenticated, the
//! plugin identity, and the *effective* capabilities (what the manifest declares
//! intersected with what the tenant granted). Each call checks its capability first
//! and answers `denied` — never a trap — when it is missing. Every data access is
//! scoped by `caller.tenant_id`, which the plugin cannot choose.

mod audit;
pub mod batch;
mod config;
mod directory;
mod email;
mod events;
pub(crate) mod files;
mod http;
mod jobs;
mod log;
mod notify;
mod records;
mod schedule;
mod secrets;
mod sharing;
mod storage;

use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker};

use crate::bindings::{self, Caller, WitError};
use plinth_core::manifest::{Capabilities, Capability};
use plinth_core::problem::{IntoProblem, ProblemKind};
use plinth_core::store::{Db, StoreError};

/// The backends capabilities use. Cheap to clone; shared by every call.
#[derive(Clone, Debug)]
pub struct Services {
    /// The database.
    pub db: Db,
    /// The clock timers go by, and the scheduler's wake-up.
    pub timers: plinth_core::timers::Timers,
    /// The guarded outbound HTTP client (WIT `http`).
    pub http: plinth_core::outbound::HttpClient,
    /// Seals and opens plugin secrets (WIT `secrets`).
    pub vault: plinth_core::secrets::Vault,
    /// File size limit and tenant quota (WIT `files`).
    pub files: plinth_core::files::FilesConfig,
    /// Wakes the job worker when a job starts (WIT `jobs`).
    pub jobs: plinth_core::jobs::Signal,
}

impl Services {
    /// Services over `db` with the strict outbound policy and a per-process secret
    /// key (secrets set through it do not survive a restart). Servers build theirs
    /// from the operator's configuration instead.
    pub fn new(db: Db) -> Services {
        Services {
            db,
            timers: plinth_core::timers::Timers::default(),
            http: plinth_core::outbound::HttpClient::strict(),
            vault: plinth_core::secrets::Vault::ephemeral(),
            files: plinth_core::files::FilesConfig::default(),
            jobs: plinth_core::jobs::Signal::default(),
        }
    }
}

/// Which plugin version a call runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PluginRef {
    /// Plugin id from the manifest.
    pub id: String,
    /// Its version.
    pub version: String,
}

/// Counters a call accumulates, reported for execution tracking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Host calls made by the guest.
    pub host_calls: u32,
    /// Log lines written (including dropped ones).
    pub log_lines: u32,
    /// Host calls refused with `denied`.
    pub denied: u32,
}

/// Everything a host call may use, bound to one call of one plugin for one caller.
#[derive(Debug)]
pub struct CapCtx {
    /// Who the call is for (tenant, user, roles, request id).
    pub caller: Caller,
    /// The plugin being run.
    pub plugin: PluginRef,
    /// Effective capabilities: declared by the manifest and granted by the tenant.
    pub grants: Arc<Capabilities>,
    /// Backends.
    pub services: Services,
    /// Counters for this call.
    pub stats: CallStats,
    /// Resources the guest holds during the call (file readers and writers).
    pub resources: wasmtime::component::ResourceTable,
    /// The user whose visibility narrows reads of `read-as` objects (`records.read-as`),
    /// with their role.
    pub read_as: Option<(String, plinth_core::manifest::Role)>,
}

/// Record metadata that any granted object exposes, whatever its field list.
pub(crate) const RECORD_META: &[&str] = &["id", "owner_id", "created_at", "updated_at", "version"];

impl CapCtx {
    /// Count a host call and check that `cap` is granted.
    pub(crate) fn require(&mut self, cap: &Capability) -> Result<(), WitError> {
        self.stats.host_calls += 1;
        self.granted(cap)
    }

    /// Check that `cap` is granted, without counting a host call (one call checking
    /// several writes).
    pub(crate) fn granted(&mut self, cap: &Capability) -> Result<(), WitError> {
        if self.grants.has(cap) {
            Ok(())
        } else {
            self.stats.denied += 1;
            Err(WitError::Denied(format!(
                "capability `{}` is not available: the manifest must declare it and the tenant must grant it",
                cap.key
            )))
        }
    }

    /// The records-service identity of this call: the calling user with their role,
    /// or — for calls with no user — the plugin itself, seeing all records of the
    /// objects it was granted.
    pub(crate) fn who(&self) -> plinth_core::records::Who {
        let role = self.caller.roles.first().and_then(|r| r.parse().ok());
        match (&self.caller.user_id, role) {
            (Some(user), Some(role)) => plinth_core::records::Who {
                tenant: self.caller.tenant_id.clone(),
                user_id: user.clone(),
                role,
                actor: self.actor(),
                override_lock: false,
            },
            _ => plinth_core::records::Who {
                tenant: self.caller.tenant_id.clone(),
                user_id: format!("plugin:{}", self.plugin.id),
                role: plinth_core::manifest::Role::Admin,
                actor: self.actor(),
                // A plugin never writes through another plugin's lock.
                override_lock: false,
            },
        }
    }

    /// The identity a read of `object` runs as: the user `records.read-as` named, when
    /// the object is granted `read-as`; else [`CapCtx::who`].
    pub(crate) fn reader_of(&self, object: &str) -> plinth_core::records::Who {
        match &self.read_as {
            Some((user, role)) if self.grants.records.get(object).is_some_and(|g| g.read_as) => {
                plinth_core::records::Who {
                    tenant: self.caller.tenant_id.clone(),
                    user_id: user.clone(),
                    role: *role,
                    actor: self.actor(),
                    override_lock: false,
                }
            }
            _ => self.who(),
        }
    }

    /// The identity a write of `object` runs as: the plugin itself when the object is
    /// granted `system-write` (the audit actor still names the calling user), else
    /// [`CapCtx::who`].
    pub(crate) fn writer_of(&self, object: &str) -> plinth_core::records::Who {
        if self.grants.records.get(object).is_some_and(|g| g.system_write) {
            plinth_core::records::Who {
                tenant: self.caller.tenant_id.clone(),
                user_id: format!("plugin:{}", self.plugin.id),
                role: plinth_core::manifest::Role::Admin,
                actor: self.actor(),
                override_lock: false,
            }
        } else {
            self.who()
        }
    }

    /// The audit actor: this plugin (and version), for the calling user if any.
    pub(crate) fn actor(&self) -> plinth_core::store::audit::Actor {
        plinth_core::store::audit::Actor {
            user_id: self.caller.user_id.clone(),
            key_id: None,
            plugin: Some(format!("{}@{}", self.plugin.id, self.plugin.version)),
            request_id: Some(self.caller.request_id.clone()),
            api_version: Some(self.caller.api_version.clone()),
            client: None,
        }
    }

    /// The one mapping from a problem to the guest-visible WIT error. Internal
    /// details are logged with the request id and replaced by a generic message.
    pub(crate) fn wit_error(&self, p: impl IntoProblem) -> WitError {
        let p = p.into_problem();
        match p.kind {
            ProblemKind::NotFound => WitError::NotFound(p.flattened()),
            ProblemKind::BadRequest | ProblemKind::Invalid => WitError::Invalid(p.flattened()),
            ProblemKind::Denied => WitError::Denied(p.flattened()),
            ProblemKind::Conflict | ProblemKind::Stale | ProblemKind::Locked => WitError::Conflict(p.flattened()),
            ProblemKind::Limit | ProblemKind::TooLarge => WitError::Limit(p.flattened()),
            ProblemKind::Internal => {
                tracing::error!(
                    cause = %p.detail,
                    tenant = %self.caller.tenant_id,
                    plugin = %self.plugin.id,
                    request_id = %self.caller.request_id,
                    "host call failed"
                );
                WitError::Internal(format!(
                    "the host could not complete the call (request {})",
                    self.caller.request_id
                ))
            }
        }
    }

    /// A store failure as the guest sees it.
    pub(crate) fn store_error(&self, e: StoreError) -> WitError {
        self.wit_error(e)
    }
}

impl bindings::plinth::plugin::types::Host for CapCtx {}

/// Check that a component imports only interfaces its manifest may use: the Plinth
/// interfaces of the capabilities it declares (read from the capability registry; `log`
/// and `types` are always allowed) and WASI (sandboxed: no files, sockets or
/// environment are provided). Returns every offending import with the reason.
pub fn check_imports(imports: &[String], declared: &Capabilities) -> Result<(), Vec<String>> {
    let problems: Vec<String> = imports
        .iter()
        .filter_map(|import| {
            if import.starts_with("wasi:") {
                return None;
            }
            let Some(rest) = import.strip_prefix("plinth:plugin/") else {
                return Some(format!("`{import}` is not an interface Plinth provides"));
            };
            let interface = rest.split('@').next().unwrap_or(rest);
            match Capability::for_interface(interface) {
                None => Some(format!(
                    "`plinth:plugin/{interface}` is not an interface this host provides"
                )),
                Some(cap) if declared.has(cap) => None,
                Some(cap) => Some(format!(
                    "the component imports `{import}` but the manifest does not declare {}",
                    cap.declaration()
                )),
            }
        })
        .collect();
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// Add every Plinth interface to `linker`, reaching the [`CapCtx`] through `get`.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    get: fn(&mut T) -> &mut CapCtx,
) -> wasmtime::Result<()> {
    bindings::Plugin::add_to_linker::<T, HasSelf<CapCtx>>(linker, get)
}
