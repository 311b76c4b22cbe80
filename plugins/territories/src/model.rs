//! Plugin-side territory metadata (in `storage`) and the in-memory model used by
//! assignment and realignment. Each territory is backed 1:1 by a host group with the
//! same id: the host owns the tree (hierarchy, visibility); the plugin keeps what
//! the host does not know about (type, access levels, rules, archived, members' roles).

use std::collections::{BTreeMap, HashMap};

use plinth_sdk::Error;
use plinth_sdk::storage::{Collection, Query};
use serde::{Deserialize, Serialize};

use crate::rules::Rule;

/// Territory documents, keyed by id (= the host group id).
pub const TERRITORIES: &str = "territories";
/// Account id → the territories it is assigned to.
pub const ASSIGNMENTS: &str = "assignments";
/// Assignment runs, by id.
pub const RUNS: &str = "runs";
/// Realignment proposals, by id.
pub const REALIGNMENTS: &str = "realignments";
/// Pages of large realignment diffs and account moves (`<id>/<list>/<n>`).
pub const REALIGNMENT_PAGES: &str = "realignment-pages";
/// `generation`: bumped by every change to the tree, rules, members or assignments, so a
/// realignment previewed on an older state is refused instead of applied blindly.
pub const META: &str = "meta";

/// Longest territory name (characters).
pub const MAX_NAME: usize = 200;
/// Territory roles.
pub const ROLES: [&str; 3] = ["owner", "member", "forecast-manager"];

/// Share level for one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// See.
    #[default]
    Read,
    /// See and change.
    ReadWrite,
}

impl Level {
    pub fn access(self) -> plinth_sdk::sharing::Access {
        match self {
            Level::Read => plinth_sdk::sharing::Access::Read,
            Level::ReadWrite => plinth_sdk::sharing::Access::ReadWrite,
        }
    }
}

/// Per-object access levels for records assigned to a territory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct AccessLevels {
    #[serde(default)]
    pub account: Level,
    #[serde(default)]
    pub opportunity: Level,
    #[serde(default)]
    pub contact: Level,
}

impl AccessLevels {
    pub fn for_object(&self, object: &str) -> Level {
        match object {
            "account" => self.account,
            "opportunity" => self.opportunity,
            _ => self.contact,
        }
    }
}

/// A territory as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Territory {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub parent_id: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub access: AccessLevels,
    /// user id → territory role.
    #[serde(default)]
    pub members: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Whether `rules` is non-empty, stored beside them so assignment can list just the
    /// territories with rules (a storage filter) instead of the whole tree. Set by
    /// [`insert`] and [`replace`]; never read from a request.
    #[serde(default)]
    pub ruled: bool,
}

pub fn territories() -> Collection<Territory> {
    Collection::new(TERRITORIES)
}

/// Store a new territory (keeping [`Territory::ruled`] in step with its rules).
pub fn insert(t: &mut Territory) -> Result<u64, Error> {
    t.ruled = !t.rules.is_empty();
    territories().insert(&t.id, t)
}

/// Replace a territory at `version` (keeping [`Territory::ruled`] in step).
pub fn replace(t: &mut Territory, version: u64) -> Result<u64, Error> {
    t.ruled = !t.rules.is_empty();
    territories().replace(&t.id, t, version)
}

/// `ruled-index` in [`META`]: present once every stored territory has its `ruled` flag
/// (from the first install, or after [`backfill_ruled`] on upgrade from 0.2).
const RULED_INDEX: &str = "ruled-index";

/// Set `ruled` on territories stored by a version that did not have it, then mark the
/// index complete. Idempotent; runs from `on-install` on upgrade.
pub fn backfill_ruled() -> Result<(), Error> {
    territories().for_each(Query::new().limit(1000), |doc| {
        let mut t = doc.value;
        if t.ruled == t.rules.is_empty() {
            replace(&mut t, doc.version)?;
        }
        Ok(())
    })?;
    Collection::<u64>::new(META).put(RULED_INDEX, &1)?;
    Ok(())
}

/// Stored assignment of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Assignment {
    pub territories: Vec<String>,
}

pub fn assignments() -> Collection<Assignment> {
    Collection::new(ASSIGNMENTS)
}

/// A territory, or 404.
pub fn load(id: &str) -> Result<plinth_sdk::storage::Versioned<Territory>, Error> {
    territories()
        .get(id)?
        .ok_or_else(|| Error::not_found(format!("no territory `{id}`")))
}

/// Validated, trimmed name: 1–200 characters, no `/` (paths use it), no control characters.
pub fn valid_name(name: &str) -> Result<String, Error> {
    let n = name.trim();
    let bad = |m: &str| Error::invalid(format!("invalid name: {m}")).with_field("name", m);
    if n.is_empty() {
        return Err(bad("must not be empty"));
    }
    if n.chars().count() > MAX_NAME {
        return Err(bad("must be at most 200 characters"));
    }
    if n.contains('/') || n.chars().any(char::is_control) {
        return Err(bad("must not contain `/` or control characters"));
    }
    Ok(n.to_string())
}

pub fn valid_type(kind: &str) -> Result<String, Error> {
    let k = kind.trim();
    if k.is_empty() || k.chars().count() > 50 || k.chars().any(char::is_control) {
        return Err(Error::invalid("invalid type: 1–50 characters").with_field("type", "1–50 characters"));
    }
    Ok(k.to_string())
}

/// Every territory, in memory: what assignment and realignment evaluate.
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub by_id: HashMap<String, Territory>,
}

impl Model {
    pub fn load() -> Result<Model, Error> {
        let mut by_id = HashMap::new();
        territories().for_each(Query::new().limit(1000), |t| {
            by_id.insert(t.key, t.value);
            Ok(())
        })?;
        Ok(Model { by_id })
    }

    /// What assignment needs: every territory with rules and their ancestors (whose
    /// archived flags and apply-to-children rules gate them). With 100k territories and
    /// a few hundred carrying rules, this is a few hundred documents, not the tree. Falls
    /// back to [`Model::load`] until the `ruled` flags are known to be complete.
    pub fn load_for_assignment() -> Result<Model, Error> {
        if Collection::<u64>::new(META).get(RULED_INDEX)?.is_none() {
            return Model::load();
        }
        let mut by_id: HashMap<String, Territory> = HashMap::new();
        let ruled = Query::new()
            .filter("ruled", plinth_sdk::storage::Op::Eq, true)
            .limit(1000);
        territories().for_each(ruled, |t| {
            by_id.insert(t.key, t.value);
            Ok(())
        })?;
        let mut wanted: Vec<String> = by_id.values().filter_map(|t| t.parent_id.clone()).collect();
        while let Some(id) = wanted.pop() {
            if by_id.contains_key(&id) {
                continue;
            }
            if let Some(doc) = territories().get(&id)? {
                wanted.extend(doc.value.parent_id.clone());
                by_id.insert(id, doc.value);
            }
        }
        Ok(Model { by_id })
    }

    /// `id` and its ancestors, nearest first (stops at a cycle, which the host forbids).
    pub fn ancestors_or_self(&self, id: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let mut cur = self.by_id.get_key_value(id).map(|(k, _)| k.as_str());
        while let Some(c) = cur {
            if out.contains(&c) {
                break;
            }
            out.push(c);
            cur = self.by_id.get(c).and_then(|t| t.parent_id.as_deref());
        }
        out
    }

    /// Whether `a` is `b` or one of its ancestors.
    pub fn is_ancestor_or_self(&self, a: &str, b: &str) -> bool {
        self.ancestors_or_self(b).contains(&a)
    }
}

/// Current generation.
pub fn generation() -> Result<u64, Error> {
    Ok(Collection::<u64>::new(META).get("generation")?.map_or(0, |v| v.value))
}

/// Record that the alignment changed.
pub fn bump() -> Result<u64, Error> {
    Ok(Collection::<u64>::new(META)
        .update("generation", |g| g.unwrap_or(0) + 1)?
        .value)
}

/// Load every stored assignment.
pub fn all_assignments() -> Result<HashMap<String, Vec<String>>, Error> {
    let mut out = HashMap::new();
    assignments().for_each(Query::new().limit(1000), |a| {
        out.insert(a.key, a.value.territories);
        Ok(())
    })?;
    Ok(out)
}
