//! `sharing`: hierarchical groups, memberships and record shares for plugins
//! (capability `sharing`) — what a territory plugin drives. Everything goes through
//! the same audited tenancy services as the REST API, as the plugin:
//!
//! - a plugin sees and changes only the groups it created ([`GroupOwner::Plugin`]);
//!   any other group id answers `not-found`, so other managers' groups stay hidden;
//! - shares may name only those groups, and only records of objects the manifest
//!   declares under `[capabilities.records]` (`read-write` there for a `read-write`
//!   share), that the calling user — when there is one — can see.

use super::CapCtx;
use crate::bindings::WitError;
use crate::bindings::plinth::plugin::sharing::{Access, Group, GroupPage, Host, Member, Share, SharePage};
use plinth_core::manifest;
use plinth_core::manifest::registry;
use plinth_core::store::groups::{self as store, GroupAtDepth};
use plinth_core::store::records::Viewer;
use plinth_core::store::shares::{self as share_store, Access as StoreAccess};
use plinth_core::tenancy::TenancyError;
use plinth_core::tenancy::groups::{self, GroupOwner, GroupPatch};
use plinth_core::tenancy::shares::{self, MAX_SHARES_PER_CALL, NewShare, ShareActor};

/// Page size when the guest passes 0.
const DEFAULT_PAGE: u32 = 100;
/// Largest page.
const MAX_PAGE: u32 = 1_000;
/// Most members `members` returns.
const MAX_MEMBERS: i64 = 10_000;

fn page_size(limit: u32) -> Result<i64, WitError> {
    match limit {
        0 => Ok(i64::from(DEFAULT_PAGE)),
        n if n > MAX_PAGE => Err(WitError::Invalid(format!("limit must be at most {MAX_PAGE}"))),
        n => Ok(i64::from(n)),
    }
}

fn wit_group(g: &store::Group, depth: i64) -> Group {
    Group {
        id: g.id.clone(),
        name: g.name.clone(),
        parent_id: g.parent_id.clone(),
        depth: u32::try_from(depth).unwrap_or(u32::MAX),
    }
}

fn wit_access(a: &str) -> Access {
    if a == StoreAccess::ReadWrite.as_str() {
        Access::ReadWrite
    } else {
        Access::Read
    }
}

fn store_access(a: Access) -> StoreAccess {
    match a {
        Access::Read => StoreAccess::Read,
        Access::ReadWrite => StoreAccess::ReadWrite,
    }
}

impl CapCtx {
    fn owner(&self) -> GroupOwner<'_> {
        GroupOwner::Plugin(&self.plugin.id)
    }

    /// The visibility share changes are limited to: the calling user's, or none for
    /// calls without a user (events, timers), which act for the plugin.
    pub(super) fn share_viewer(&self) -> Option<Viewer> {
        self.caller.user_id.as_ref()?;
        let who = self.who();
        Some(Viewer {
            all: who.role.at_least(manifest::Role::Admin),
            user_id: who.user_id,
        })
    }

    fn tenancy_error(&self, e: TenancyError) -> WitError {
        match e {
            TenancyError::NotFound(m) => WitError::NotFound(m),
            // Another manager's group is not this plugin's to see.
            TenancyError::ManagedElsewhere { group, .. } => WitError::NotFound(format!("group {group} not found")),
            TenancyError::Forbidden(m) => WitError::Denied(m),
            TenancyError::Conflict(m) | TenancyError::LastOwner(m) => WitError::Conflict(m),
            e @ TenancyError::ManagerCycle { .. } => WitError::Conflict(e.to_string()),
            TenancyError::VersionMismatch { current } => {
                WitError::Conflict(format!("the group changed meanwhile (now at version {current})"))
            }
            TenancyError::Cycle {
                group,
                new_parent,
                path,
            } => WitError::Conflict(format!(
                "moving group {group} under {new_parent} would create a cycle: {new_parent} is below it ({})",
                path.join(" > ")
            )),
            TenancyError::Invalid(problems) => WitError::Invalid(
                problems
                    .iter()
                    .map(|(f, m)| format!("{f}: {m}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            TenancyError::Store(e) => self.store_error(e),
        }
    }

    /// One of this plugin's groups, with its depth below its root.
    async fn own_group(&mut self, id: &str) -> Result<(store::Group, i64), WitError> {
        let db = self.services.db.clone();
        let tenant = self.caller.tenant_id.clone();
        let mut conn = db.reader().acquire().await.map_err(|e| self.store_error(e.into()))?;
        let g = store::group(&mut conn, &tenant, id)
            .await
            .map_err(|e| self.store_error(e))?
            .filter(|g| g.owner_plugin.as_deref() == Some(self.plugin.id.as_str()))
            .ok_or_else(|| WitError::NotFound(format!("group {id} not found")))?;
        let depth = store::depth_of(&mut conn, &tenant, id)
            .await
            .map_err(|e| self.store_error(e))?;
        Ok((g, depth))
    }

    /// The record grant a share on `object` at `access` needs: the object declared,
    /// read-write for a read-write share (a plugin cannot grant more than it has).
    pub(super) fn share_grant(&mut self, object: &str, access: Access) -> Result<(), WitError> {
        self.granted_records(object, access == Access::ReadWrite).map(|_| ())
    }

    async fn after_change(&mut self, id: &str) -> Result<Group, WitError> {
        let (g, depth) = self.own_group(id).await?;
        Ok(wit_group(&g, depth))
    }
}

impl Host for CapCtx {
    async fn create_group(
        &mut self,
        name: String,
        parent_id: Option<String>,
    ) -> wasmtime::Result<Result<Group, WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            let db = self.services.db.clone();
            let actor = self.actor();
            let g = groups::create_group(
                &db,
                &self.caller.tenant_id,
                &actor,
                self.owner(),
                &name,
                parent_id.as_deref(),
            )
            .await
            .map_err(|e| self.tenancy_error(e))?;
            self.after_change(&g.id).await
        };
        Ok(run.await)
    }

    async fn rename_group(&mut self, id: String, name: String) -> wasmtime::Result<Result<Group, WitError>> {
        let patch = GroupPatch {
            name: Some(name),
            parent_id: None,
        };
        Ok(self.patch_group(id, patch).await)
    }

    async fn move_group(
        &mut self,
        id: String,
        new_parent_id: Option<String>,
    ) -> wasmtime::Result<Result<Group, WitError>> {
        let patch = GroupPatch {
            name: None,
            parent_id: Some(new_parent_id),
        };
        Ok(self.patch_group(id, patch).await)
    }

    async fn delete_group(&mut self, id: String) -> wasmtime::Result<Result<(), WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            let db = self.services.db.clone();
            let actor = self.actor();
            groups::delete_group(&db, &self.caller.tenant_id, &actor, self.owner(), &id, None)
                .await
                .map_err(|e| self.tenancy_error(e))?;
            Ok(())
        };
        Ok(run.await)
    }

    async fn get_group(&mut self, id: String) -> wasmtime::Result<Result<Group, WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            let (g, depth) = self.own_group(&id).await?;
            Ok(wit_group(&g, depth))
        };
        Ok(run.await)
    }

    async fn children(
        &mut self,
        parent_id: Option<String>,
        cursor: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<GroupPage, WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            let limit = page_size(limit)?;
            let depth = match &parent_id {
                Some(p) => self.own_group(p).await?.1 + 1,
                None => 0,
            };
            let db = self.services.db.clone();
            let tenant = self.caller.tenant_id.clone();
            let mut conn = db.reader().acquire().await.map_err(|e| self.store_error(e.into()))?;
            let found = match &parent_id {
                // A plugin group's children are the plugin's (parents share the manager).
                Some(p) => store::children(&mut conn, &tenant, Some(p), cursor.as_deref(), limit).await,
                None => store::plugin_roots(&mut conn, &tenant, &self.plugin.id, cursor.as_deref(), limit).await,
            }
            .map_err(|e| self.store_error(e))?;
            let next_cursor = (found.len() as i64 == limit)
                .then(|| found.last().map(|g| g.id.clone()))
                .flatten();
            Ok(GroupPage {
                groups: found.iter().map(|g| wit_group(g, depth)).collect(),
                next_cursor,
            })
        };
        Ok(run.await)
    }

    async fn descendants(
        &mut self,
        id: String,
        max_depth: Option<u32>,
        cursor: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<GroupPage, WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            let limit = page_size(limit)?;
            self.own_group(&id).await?;
            let after = match &cursor {
                Some(c) => {
                    let parsed = c
                        .split_once(':')
                        .and_then(|(d, id)| Some((d.parse::<i64>().ok()?, id.to_string())));
                    Some(parsed.ok_or_else(|| WitError::Invalid("the cursor is not one this query returned".into()))?)
                }
                None => None,
            };
            let db = self.services.db.clone();
            let tenant = self.caller.tenant_id.clone();
            let mut conn = db.reader().acquire().await.map_err(|e| self.store_error(e.into()))?;
            let rows: Vec<GroupAtDepth> = store::descendants(
                &mut conn,
                &tenant,
                &id,
                max_depth.map(i64::from),
                after.as_ref().map(|(d, id)| (*d, id.as_str())),
                limit,
            )
            .await
            .map_err(|e| self.store_error(e))?;
            let next_cursor = (rows.len() as i64 == limit)
                .then(|| rows.last().map(|r| format!("{}:{}", r.depth, r.group.id)))
                .flatten();
            Ok(GroupPage {
                groups: rows.iter().map(|r| wit_group(&r.group, r.depth)).collect(),
                next_cursor,
            })
        };
        Ok(run.await)
    }

    async fn ancestors(&mut self, id: String) -> wasmtime::Result<Result<Vec<Group>, WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            let (g, depth) = self.own_group(&id).await?;
            let db = self.services.db.clone();
            let tenant = self.caller.tenant_id.clone();
            let mut conn = db.reader().acquire().await.map_err(|e| self.store_error(e.into()))?;
            let rows = store::ancestors(&mut conn, &tenant, &id)
                .await
                .map_err(|e| self.store_error(e))?;
            // `depth` here is each group's own depth below the root, root (0) first.
            let mut path: Vec<Group> = rows.iter().map(|r| wit_group(&r.group, depth - r.depth)).collect();
            path.push(wit_group(&g, depth));
            Ok(path)
        };
        Ok(run.await)
    }

    async fn add_member(&mut self, group_id: String, member: Member) -> wasmtime::Result<Result<(), WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            let db = self.services.db.clone();
            let actor = self.actor();
            let tenant = self.caller.tenant_id.clone();
            groups::set_member(
                &db,
                &tenant,
                &actor,
                self.owner(),
                &group_id,
                &member.user_id,
                &member.role,
            )
            .await
            .map_err(|e| self.tenancy_error(e))?;
            Ok(())
        };
        Ok(run.await)
    }

    async fn remove_member(&mut self, group_id: String, user_id: String) -> wasmtime::Result<Result<bool, WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            self.own_group(&group_id).await?;
            let db = self.services.db.clone();
            let actor = self.actor();
            let tenant = self.caller.tenant_id.clone();
            match groups::remove_member(&db, &tenant, &actor, self.owner(), &group_id, &user_id).await {
                Ok(_) => Ok(true),
                Err(TenancyError::NotFound(_)) => Ok(false),
                Err(e) => Err(self.tenancy_error(e)),
            }
        };
        Ok(run.await)
    }

    async fn members(&mut self, group_id: String) -> wasmtime::Result<Result<Vec<Member>, WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            self.own_group(&group_id).await?;
            let db = self.services.db.clone();
            let tenant = self.caller.tenant_id.clone();
            let mut conn = db.reader().acquire().await.map_err(|e| self.store_error(e.into()))?;
            let rows = store::members_of(&mut conn, &tenant, &group_id, None, MAX_MEMBERS + 1)
                .await
                .map_err(|e| self.store_error(e))?;
            if rows.len() as i64 > MAX_MEMBERS {
                return Err(WitError::Limit(format!(
                    "group {group_id} has more than {MAX_MEMBERS} members"
                )));
            }
            Ok(rows
                .into_iter()
                .map(|m| Member {
                    user_id: m.user_id,
                    role: m.role,
                })
                .collect())
        };
        Ok(run.await)
    }

    async fn add_shares(&mut self, list: Vec<Share>) -> wasmtime::Result<Result<(), WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            if list.len() > MAX_SHARES_PER_CALL {
                return Err(WitError::Limit(format!(
                    "at most {MAX_SHARES_PER_CALL} shares per call, got {}",
                    list.len()
                )));
            }
            for s in &list {
                self.share_grant(&s.object, s.access)?;
            }
            let wanted: Vec<NewShare> = list
                .into_iter()
                .map(|s| NewShare {
                    object: s.object,
                    record_id: s.record_id,
                    group_id: s.group_id,
                    access: store_access(s.access),
                })
                .collect();
            let db = self.services.db.clone();
            let actor = self.actor();
            let viewer = self.share_viewer();
            let who = ShareActor {
                owner: GroupOwner::Plugin(&self.plugin.id),
                viewer: viewer.as_ref(),
                actor: &actor,
            };
            shares::set_shares(&db, &self.caller.tenant_id, who, &wanted)
                .await
                .map_err(|e| self.tenancy_error(e))
        };
        Ok(run.await)
    }

    async fn remove_shares(&mut self, list: Vec<(String, String, String)>) -> wasmtime::Result<Result<u32, WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            if list.len() > MAX_SHARES_PER_CALL {
                return Err(WitError::Limit(format!(
                    "at most {MAX_SHARES_PER_CALL} shares per call, got {}",
                    list.len()
                )));
            }
            for (object, _, _) in &list {
                self.share_grant(object, Access::Read)?;
            }
            let db = self.services.db.clone();
            let actor = self.actor();
            let viewer = self.share_viewer();
            let who = ShareActor {
                owner: GroupOwner::Plugin(&self.plugin.id),
                viewer: viewer.as_ref(),
                actor: &actor,
            };
            shares::remove_shares(&db, &self.caller.tenant_id, who, &list)
                .await
                .map_err(|e| self.tenancy_error(e))
        };
        Ok(run.await)
    }

    async fn group_shares(
        &mut self,
        group_id: String,
        cursor: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<SharePage, WitError>> {
        let run = async {
            self.require(&registry::SHARING)?;
            let limit = page_size(limit)?;
            self.own_group(&group_id).await?;
            let db = self.services.db.clone();
            let tenant = self.caller.tenant_id.clone();
            let mut conn = db.reader().acquire().await.map_err(|e| self.store_error(e.into()))?;
            let rows = share_store::shares_of_group(&mut conn, &tenant, &group_id, cursor.as_deref(), limit)
                .await
                .map_err(|e| self.store_error(e))?;
            let out: Vec<Share> = rows
                .iter()
                .map(|(object, s)| Share {
                    object: object.clone(),
                    record_id: s.record_id.clone(),
                    group_id: s.group_id.clone(),
                    access: wit_access(&s.access),
                })
                .collect();
            let next_cursor = (rows.len() as i64 == limit)
                .then(|| rows.last().map(|(_, s)| s.record_id.clone()))
                .flatten();
            Ok(SharePage {
                shares: out,
                next_cursor,
            })
        };
        Ok(run.await)
    }
}

impl CapCtx {
    async fn patch_group(&mut self, id: String, patch: GroupPatch) -> Result<Group, WitError> {
        self.require(&registry::SHARING)?;
        let db = self.services.db.clone();
        let actor = self.actor();
        groups::update_group(&db, &self.caller.tenant_id, &actor, self.owner(), &id, None, patch)
            .await
            .map_err(|e| self.tenancy_error(e))?;
        self.after_change(&id).await
    }
}
