//! Tenant services for operators: rename, suspend and reactivate a tenant, audited
//! in that tenant's own ledger. (Creation is [`super::create_tenant`].) Suspension
//! takes effect on the tenant's keys at once once the caller clears the auth cache.

use super::error::{TenancyError, TenancyResult};
use super::validate::{self, Problems};
use super::{event, snapshot};
use crate::store::Db;
use crate::store::audit::{self, Actor};
use crate::store::tenancy::{self as store, Tenant};

/// Tenant statuses.
pub const STATUSES: [&str; 2] = ["active", "suspended"];

/// Change a tenant's name and/or status (`active` or `suspended`); no change → no
/// event. Audited as `tenant.update`.
pub async fn update_tenant(
    db: &Db,
    actor: &Actor,
    id: &str,
    name: Option<&str>,
    status: Option<&str>,
) -> TenancyResult<Tenant> {
    let mut problems = Problems::default();
    let name = name.and_then(|n| problems.check("name", validate::name(n)));
    if let Some(s) = status.filter(|s| !STATUSES.contains(s)) {
        problems.push("status", format!("must be `active` or `suspended`, not `{s}`"));
    }
    problems.finish()?;
    let mut tx = db.writer().begin().await?;
    let before = store::lock_tenant(&mut tx, id)
        .await?
        .ok_or_else(|| TenancyError::NotFound(format!("tenant {id} not found")))?;
    let new_name = name.unwrap_or_else(|| before.name.clone());
    let new_status = status.map_or_else(|| before.status.clone(), str::to_string);
    if new_name == before.name && new_status == before.status {
        return Ok(before);
    }
    let after = store::update_tenant(&mut tx, id, &new_name, &new_status).await?;
    let (b, a) = (snapshot(&before), snapshot(&after));
    audit::append(
        &mut tx,
        db.dialect(),
        id,
        actor,
        event("tenant.update", "tenant", id, Some(&b), Some(&a)),
    )
    .await?;
    tx.commit().await?;
    Ok(after)
}
