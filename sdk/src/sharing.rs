//! Hierarchical groups, their members and record shares (capability `sharing`).
//!
//! A record shared with a group is visible to the group's members *and* to the
//! members of every ancestor group — the host enforces that on every REST read, list
//! and aggregate and in every other plugin. That is what a territory hierarchy needs:
//! share an account with the `Berlin` group and the `DACH` and `EMEA` managers see it.
//!
//! A plugin sees and manages only the groups it created. Shares may name only those
//! groups, and only records of objects the manifest declares under
//! `[capabilities.records]` (`read-write` there for a [`Access::ReadWrite`] share).
//! Every change is audited as the plugin's.
//!
//! ```no_run
//! use plinth_sdk::sharing::{self, Access, Share};
//! let emea = sharing::create_group("EMEA", None)?;
//! let dach = sharing::create_group("DACH", Some(&emea.id))?;
//! sharing::add_member(&dach.id, "user-1", "owner")?;
//! sharing::add_shares(&[Share::new("account", "acc-1", &dach.id, Access::Read)])?;
//! # Ok::<(), plinth_sdk::Error>(())
//! ```

use crate::__private::wit::plinth::plugin::sharing as wit;
use crate::Error;

/// Most shares [`add_shares`] and [`remove_shares`] take per call.
pub const MAX_SHARES_PER_CALL: usize = 1_000;

/// A group.
///
/// ```
/// let g = plinth_sdk::sharing::Group { id: "g1".into(), name: "EMEA".into(), parent_id: None, depth: 0 };
/// assert!(g.parent_id.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Parent; `None` for a root.
    pub parent_id: Option<String>,
    /// For [`descendants`]: levels below the group the query started at; otherwise
    /// levels below the group's root (0 for a root).
    pub depth: u32,
}

impl From<wit::Group> for Group {
    fn from(g: wit::Group) -> Self {
        Group {
            id: g.id,
            name: g.name,
            parent_id: g.parent_id,
            depth: g.depth,
        }
    }
}

/// A page of groups; pass `next_cursor` back to get the next one.
///
/// ```
/// let p = plinth_sdk::sharing::GroupPage { groups: vec![], next_cursor: None };
/// assert!(p.next_cursor.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPage {
    /// The groups.
    pub groups: Vec<Group>,
    /// Cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

/// What a share allows.
///
/// ```
/// assert_ne!(plinth_sdk::sharing::Access::Read, plinth_sdk::sharing::Access::ReadWrite);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// See the record.
    Read,
    /// See and change it.
    ReadWrite,
}

impl From<Access> for wit::Access {
    fn from(a: Access) -> Self {
        match a {
            Access::Read => wit::Access::Read,
            Access::ReadWrite => wit::Access::ReadWrite,
        }
    }
}

impl From<wit::Access> for Access {
    fn from(a: wit::Access) -> Self {
        match a {
            wit::Access::Read => Access::Read,
            wit::Access::ReadWrite => Access::ReadWrite,
        }
    }
}

/// A record shared with a group.
///
/// ```
/// use plinth_sdk::sharing::{Access, Share};
/// let s = Share::new("account", "acc-1", "g1", Access::ReadWrite);
/// assert_eq!(s.object, "account");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    /// Object of the record, e.g. `account`.
    pub object: String,
    /// Record id.
    pub record_id: String,
    /// Group (one of this plugin's).
    pub group_id: String,
    /// What it allows.
    pub access: Access,
}

impl Share {
    /// A share of `object` record `record_id` with `group_id`.
    ///
    /// ```
    /// let s = plinth_sdk::sharing::Share::new("opportunity", "o-1", "g-1", plinth_sdk::sharing::Access::Read);
    /// assert_eq!(s.group_id, "g-1");
    /// ```
    pub fn new(object: &str, record_id: &str, group_id: &str, access: Access) -> Self {
        Share {
            object: object.to_string(),
            record_id: record_id.to_string(),
            group_id: group_id.to_string(),
            access,
        }
    }
}

/// A page of shares; pass `next_cursor` back to get the next one.
///
/// ```
/// let p = plinth_sdk::sharing::SharePage { shares: vec![], next_cursor: None };
/// assert!(p.shares.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharePage {
    /// The shares.
    pub shares: Vec<Share>,
    /// Cursor of the next page, if there is one.
    pub next_cursor: Option<String>,
}

fn page(p: wit::GroupPage) -> GroupPage {
    GroupPage {
        groups: p.groups.into_iter().map(Group::from).collect(),
        next_cursor: p.next_cursor,
    }
}

/// Create a group (1–200 characters) under `parent_id` (one of this plugin's) or as a root.
///
/// ```no_run
/// let root = plinth_sdk::sharing::create_group("Global", None)?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn create_group(name: &str, parent_id: Option<&str>) -> Result<Group, Error> {
    Ok(wit::create_group(name, parent_id)?.into())
}

/// Rename a group.
///
/// ```no_run
/// plinth_sdk::sharing::rename_group("g1", "EMEA North")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn rename_group(id: &str, name: &str) -> Result<Group, Error> {
    Ok(wit::rename_group(id, name)?.into())
}

/// Move a group with its whole subtree under `new_parent_id` (or to the root). Moving a
/// group under itself or its own descendant fails with a `conflict` naming the path.
/// Shares and memberships stay on their groups, so access follows the new ancestry.
///
/// ```no_run
/// plinth_sdk::sharing::move_group("berlin", Some("dach"))?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn move_group(id: &str, new_parent_id: Option<&str>) -> Result<Group, Error> {
    Ok(wit::move_group(id, new_parent_id)?.into())
}

/// Delete a group with no child groups and no shares (`conflict` otherwise); its
/// memberships go with it.
///
/// ```no_run
/// plinth_sdk::sharing::delete_group("g1")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn delete_group(id: &str) -> Result<(), Error> {
    Ok(wit::delete_group(id)?)
}

/// One of this plugin's groups (`not-found` for any other id).
///
/// ```no_run
/// let g = plinth_sdk::sharing::get_group("g1")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn get_group(id: &str) -> Result<Group, Error> {
    Ok(wit::get_group(id)?.into())
}

/// Direct children of `parent_id` (`None`: this plugin's roots), in creation order.
/// `limit` 0 means 100; at most 1,000.
///
/// ```no_run
/// let page = plinth_sdk::sharing::children(Some("emea"), None, 50)?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn children(parent_id: Option<&str>, cursor: Option<&str>, limit: u32) -> Result<GroupPage, Error> {
    Ok(page(wit::children(parent_id, cursor, limit)?))
}

/// The subtree below `id` (not `id` itself), nearest first, down to `max_depth` levels.
///
/// ```no_run
/// let page = plinth_sdk::sharing::descendants("emea", Some(2), None, 100)?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn descendants(id: &str, max_depth: Option<u32>, cursor: Option<&str>, limit: u32) -> Result<GroupPage, Error> {
    Ok(page(wit::descendants(id, max_depth, cursor, limit)?))
}

/// The path from the root down to `id`, both included, root first.
///
/// ```no_run
/// let path: Vec<String> = plinth_sdk::sharing::ancestors("berlin")?.into_iter().map(|g| g.name).collect();
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn ancestors(id: &str) -> Result<Vec<Group>, Error> {
    Ok(wit::ancestors(id)?.into_iter().map(Group::from).collect())
}

/// Add `user_id` to a group with `role` (e.g. `owner`, `member`, `forecast-manager`),
/// or change the role of an existing membership.
///
/// ```no_run
/// plinth_sdk::sharing::add_member("dach", "user-7", "forecast-manager")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn add_member(group_id: &str, user_id: &str, role: &str) -> Result<(), Error> {
    Ok(wit::add_member(
        group_id,
        &wit::Member {
            user_id: user_id.to_string(),
            role: role.to_string(),
        },
    )?)
}

/// Remove a member; `false` if they were not one.
///
/// ```no_run
/// let was_member = plinth_sdk::sharing::remove_member("dach", "user-7")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn remove_member(group_id: &str, user_id: &str) -> Result<bool, Error> {
    Ok(wit::remove_member(group_id, user_id)?)
}

/// Members of a group as `(user id, role)`, by user id.
///
/// ```no_run
/// for (user, role) in plinth_sdk::sharing::members("dach")? { let _ = (user, role); }
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn members(group_id: &str) -> Result<Vec<(String, String)>, Error> {
    Ok(wit::members(group_id)?
        .into_iter()
        .map(|m| (m.user_id, m.role))
        .collect())
}

/// Create or update up to [`MAX_SHARES_PER_CALL`] shares, atomically.
///
/// ```no_run
/// use plinth_sdk::sharing::{add_shares, Access, Share};
/// add_shares(&[Share::new("account", "a1", "dach", Access::ReadWrite)])?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn add_shares(shares: &[Share]) -> Result<(), Error> {
    let list: Vec<wit::Share> = shares
        .iter()
        .map(|s| wit::Share {
            object: s.object.clone(),
            record_id: s.record_id.clone(),
            group_id: s.group_id.clone(),
            access: s.access.into(),
        })
        .collect();
    Ok(wit::add_shares(&list)?)
}

/// Remove up to [`MAX_SHARES_PER_CALL`] shares given as `(object, record id, group id)`,
/// atomically; returns how many existed.
///
/// ```no_run
/// let n = plinth_sdk::sharing::remove_shares(&[("account", "a1", "dach")])?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn remove_shares(shares: &[(&str, &str, &str)]) -> Result<u32, Error> {
    let list: Vec<(String, String, String)> = shares
        .iter()
        .map(|(o, r, g)| (o.to_string(), r.to_string(), g.to_string()))
        .collect();
    Ok(wit::remove_shares(&list)?)
}

/// Shares made directly with one of this plugin's groups, by record id.
///
/// ```no_run
/// let page = plinth_sdk::sharing::group_shares("dach", None, 1000)?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn group_shares(group_id: &str, cursor: Option<&str>, limit: u32) -> Result<SharePage, Error> {
    let p = wit::group_shares(group_id, cursor, limit)?;
    Ok(SharePage {
        shares: p
            .shares
            .into_iter()
            .map(|s| Share {
                object: s.object,
                record_id: s.record_id,
                group_id: s.group_id,
                access: s.access.into(),
            })
            .collect(),
        next_cursor: p.next_cursor,
    })
}
