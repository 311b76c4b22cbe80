//! The tenant's people (capability `directory`): users, who they report to, their
//! reports, and the members of any group — what an approval needs to find an
//! approver and a forecast to roll up a management chain. Read-only.
//!
//! Deactivated users are returned with [`Person::active`] `false`, never left out:
//! the plugin decides what a deactivated approver or manager means for its work.
//!
//! ```no_run
//! use plinth_sdk::directory;
//! // Route an approval two levels up from the submitter.
//! let chain = directory::manager_chain("user-7", 2)?;
//! let approver = chain.iter().find(|p| p.active).ok_or_else(|| {
//!     plinth_sdk::Error::conflict("no active manager above the submitter")
//! })?;
//! plinth_sdk::info!("routing to {} <{}>", approver.name, approver.email);
//! # Ok::<(), plinth_sdk::Error>(())
//! ```
//!
//! Declare it in `plugin.toml` (`[capabilities] directory = true`); the tenant admin
//! grants it at install. Needs a host with `plinth:plugin@1.5.0` (`api = "^1.5"`).

use crate::__private::wit::plinth::plugin::directory as wit;
use crate::Error;

/// Largest page the list calls return.
pub const MAX_PAGE: u32 = 500;

/// A user as plugins see them.
///
/// ```
/// let p = plinth_sdk::directory::Person {
///     id: "u1".into(), name: "Mia".into(), email: "mia@acme.test".into(),
///     roles: vec!["manager".into()], active: true, locale: Some("de-DE".into()),
///     time_zone: Some("Europe/Berlin".into()), manager_id: Some("u0".into()),
/// };
/// assert!(p.active && p.roles.contains(&"manager".to_string()));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    /// User id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Email address.
    pub email: String,
    /// Roles in the tenant (`owner`, `admin`, `manager`, `member`, `read-only`).
    pub roles: Vec<String>,
    /// `false` for a deactivated user.
    pub active: bool,
    /// Language tag (`de-DE`), if set.
    pub locale: Option<String>,
    /// IANA time zone (`Europe/Berlin`), if set.
    pub time_zone: Option<String>,
    /// The user they report to, if any.
    pub manager_id: Option<String>,
}

impl From<wit::Person> for Person {
    fn from(p: wit::Person) -> Self {
        Person {
            id: p.id,
            name: p.name,
            email: p.email,
            roles: p.roles,
            active: p.active,
            locale: p.locale,
            time_zone: p.time_zone,
            manager_id: p.manager_id,
        }
    }
}

/// One page of people, by id; pass `next_cursor` back to get the next one.
///
/// ```
/// let page = plinth_sdk::directory::Page { people: vec![], next_cursor: None };
/// assert!(page.next_cursor.is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// The people.
    pub people: Vec<Person>,
    /// Cursor of the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

impl From<wit::PeoplePage> for Page {
    fn from(p: wit::PeoplePage) -> Self {
        Page {
            people: p.people.into_iter().map(Person::from).collect(),
            next_cursor: p.next_cursor,
        }
    }
}

/// One user; `not-found` when the tenant has no such user.
///
/// ```no_run
/// let max = plinth_sdk::directory::get("user-7")?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn get(id: &str) -> Result<Person, Error> {
    Ok(wit::get(id)?.into())
}

/// Every user of the tenant, by id, `limit` (1–[`MAX_PAGE`]) at a time.
///
/// ```no_run
/// let mut cursor = None;
/// loop {
///     let page = plinth_sdk::directory::list(cursor.as_deref(), 100)?;
///     for p in &page.people { plinth_sdk::info!("{}", p.name); }
///     match page.next_cursor { Some(c) => cursor = Some(c), None => break }
/// }
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn list(cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
    Ok(wit::list(cursor, limit)?.into())
}

/// The user's managers, nearest first, at most `levels` (1–100); empty for someone
/// who reports to nobody.
///
/// ```no_run
/// let skip_level = plinth_sdk::directory::manager_chain("user-7", 2)?.get(1).cloned();
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn manager_chain(id: &str, levels: u32) -> Result<Vec<Person>, Error> {
    Ok(wit::manager_chain(id, levels)?.into_iter().map(Person::from).collect())
}

/// The users who report to `id` directly, by id, `limit` (1–[`MAX_PAGE`]) at a time.
///
/// ```no_run
/// let team = plinth_sdk::directory::direct_reports("mia", None, 100)?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn direct_reports(id: &str, cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
    Ok(wit::direct_reports(id, cursor, limit)?.into())
}

/// Everyone below `id` in the management tree (reports, their reports, …), by id,
/// `limit` (1–[`MAX_PAGE`]) at a time.
///
/// ```no_run
/// let org = plinth_sdk::directory::all_reports("vp", None, 500)?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn all_reports(id: &str, cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
    Ok(wit::all_reports(id, cursor, limit)?.into())
}

/// The direct members of any group of the tenant, by id, `limit` (1–[`MAX_PAGE`]) at a
/// time; `not-found` when there is no such group.
///
/// ```no_run
/// let approvers = plinth_sdk::directory::group_members("legal-team", None, 100)?;
/// # Ok::<(), plinth_sdk::Error>(())
/// ```
pub fn group_members(group_id: &str, cursor: Option<&str>, limit: u32) -> Result<Page, Error> {
    Ok(wit::group_members(group_id, cursor, limit)?.into())
}
