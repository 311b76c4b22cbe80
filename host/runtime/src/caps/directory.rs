//! `directory`: the tenant's people, read-only (capability `directory`). Everything is
//! read in the caller's tenant; deactivated users come back flagged, not filtered.

use crate::bindings::WitError;
use crate::bindings::plinth::plugin::directory::{Host, PeoplePage, Person};
use plinth_core::manifest::registry;
use plinth_core::store::tenancy::{MAX_CHAIN, User};

use super::CapCtx;

/// Largest page a call may ask for.
const MAX_PAGE: u32 = 500;

fn person(u: User) -> Person {
    Person {
        active: u.status == "active",
        roles: vec![u.role],
        id: u.id,
        name: u.name,
        email: u.email,
        locale: u.locale,
        time_zone: u.time_zone,
        manager_id: u.manager_id,
    }
}

/// A page of up to `limit` people from `limit + 1` read: the extra one only says more.
fn page(mut users: Vec<User>, limit: u32) -> PeoplePage {
    let more = users.len() > limit as usize;
    users.truncate(limit as usize);
    let next_cursor = if more { users.last().map(|u| u.id.clone()) } else { None };
    PeoplePage {
        people: users.into_iter().map(person).collect(),
        next_cursor,
    }
}

fn check_limit(limit: u32) -> Result<i64, WitError> {
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(i64::from(limit) + 1)
    } else {
        Err(WitError::Invalid(format!("limit must be 1–{MAX_PAGE}, not {limit}")))
    }
}

impl CapCtx {
    /// The user `id` of the caller's tenant, or `not-found`.
    async fn known_user(&mut self, id: &str) -> Result<User, WitError> {
        let db = self.services.db.clone();
        match db.user(&self.caller.tenant_id, id).await {
            Ok(Some(u)) => Ok(u),
            Ok(None) => Err(WitError::NotFound(format!("no user {id}"))),
            Err(e) => Err(self.store_error(e)),
        }
    }
}

impl Host for CapCtx {
    async fn get(&mut self, id: String) -> wasmtime::Result<Result<Person, WitError>> {
        if let Err(e) = self.require(&registry::DIRECTORY) {
            return Ok(Err(e));
        }
        Ok(self.known_user(&id).await.map(person))
    }

    async fn list(&mut self, cursor: Option<String>, limit: u32) -> wasmtime::Result<Result<PeoplePage, WitError>> {
        if let Err(e) = self.require(&registry::DIRECTORY) {
            return Ok(Err(e));
        }
        let fetch = match check_limit(limit) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        let db = self.services.db.clone();
        let users = db.users(&self.caller.tenant_id, cursor.as_deref(), fetch).await;
        Ok(users.map(|u| page(u, limit)).map_err(|e| self.store_error(e)))
    }

    async fn manager_chain(&mut self, id: String, levels: u32) -> wasmtime::Result<Result<Vec<Person>, WitError>> {
        if let Err(e) = self.require(&registry::DIRECTORY) {
            return Ok(Err(e));
        }
        if !(1..=MAX_CHAIN).contains(&levels) {
            return Ok(Err(WitError::Invalid(format!(
                "levels must be 1–{MAX_CHAIN}, not {levels}"
            ))));
        }
        if let Err(e) = self.known_user(&id).await {
            return Ok(Err(e));
        }
        let db = self.services.db.clone();
        let chain = db.manager_chain(&self.caller.tenant_id, &id, levels).await;
        Ok(chain
            .map(|c| c.into_iter().map(person).collect())
            .map_err(|e| self.store_error(e)))
    }

    async fn direct_reports(
        &mut self,
        id: String,
        cursor: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<PeoplePage, WitError>> {
        if let Err(e) = self.require(&registry::DIRECTORY) {
            return Ok(Err(e));
        }
        let fetch = match check_limit(limit) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self.known_user(&id).await {
            return Ok(Err(e));
        }
        let db = self.services.db.clone();
        let users = db
            .direct_reports(&self.caller.tenant_id, &id, cursor.as_deref(), fetch)
            .await;
        Ok(users.map(|u| page(u, limit)).map_err(|e| self.store_error(e)))
    }

    async fn all_reports(
        &mut self,
        id: String,
        cursor: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<PeoplePage, WitError>> {
        if let Err(e) = self.require(&registry::DIRECTORY) {
            return Ok(Err(e));
        }
        let fetch = match check_limit(limit) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        if let Err(e) = self.known_user(&id).await {
            return Ok(Err(e));
        }
        let db = self.services.db.clone();
        let users = db
            .all_reports(&self.caller.tenant_id, &id, cursor.as_deref(), fetch)
            .await;
        Ok(users.map(|u| page(u, limit)).map_err(|e| self.store_error(e)))
    }

    async fn group_members(
        &mut self,
        group_id: String,
        cursor: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<PeoplePage, WitError>> {
        if let Err(e) = self.require(&registry::DIRECTORY) {
            return Ok(Err(e));
        }
        let fetch = match check_limit(limit) {
            Ok(n) => n,
            Err(e) => return Ok(Err(e)),
        };
        let db = self.services.db.clone();
        Ok(
            match db
                .group_people(&self.caller.tenant_id, &group_id, cursor.as_deref(), fetch)
                .await
            {
                Ok(Some(users)) => Ok(page(users, limit)),
                Ok(None) => Err(WitError::NotFound(format!("no group {group_id}"))),
                Err(e) => Err(self.store_error(e)),
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, status: &str) -> User {
        User {
            tenant_id: "t".into(),
            id: id.into(),
            email: format!("{id}@x.test"),
            name: id.into(),
            role: "member".into(),
            status: status.into(),
            manager_id: Some("boss".into()),
            locale: None,
            time_zone: Some("Europe/Berlin".into()),
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }

    #[test]
    fn pages_flag_deactivated_people_and_say_when_there_is_more() {
        let p = page(vec![user("a", "active"), user("b", "disabled"), user("c", "active")], 2);
        let flags: Vec<(&str, bool)> = p.people.iter().map(|p| (p.id.as_str(), p.active)).collect();
        assert_eq!(flags, [("a", true), ("b", false)]);
        assert_eq!(p.next_cursor.as_deref(), Some("b"));
        assert_eq!(p.people[0].manager_id.as_deref(), Some("boss"));
        assert_eq!(page(vec![user("a", "active")], 2).next_cursor, None);
        assert!(check_limit(0).is_err() && check_limit(501).is_err());
        assert_eq!(check_limit(500).ok(), Some(501));
    }
}
