//! `plinth serve --demo`: create, once, a demo tenant with a user and API key for
//! every role, the demo data set ([`crate::demo_data`]) and a sales-region group
//! hierarchy its records are shared with:
//!
//! ```text
//! Global Sales                      Rita Reader (read-only) — sees everything, read only
//! ├── EMEA                          Mia Manager — sees DACH, Western Europe, UK & Ireland
//! │   ├── DACH            DE AT CH  Max Member — sees DACH (and what he owns)
//! │   ├── Western Europe  FR NL
//! │   └── UK & Ireland    GB IE
//! └── Americas
//!     └── North America   US CA
//! ```
//!
//! Everything goes through the audited services, so the demo ledger shows how it was
//! built. The keys are kept in `<data dir>/demo-keys.json` (mode 0600) so that every
//! later start can print them again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use plinth_core::manifest::Role;
use plinth_core::store::Db;
use plinth_core::store::audit::Actor;
use plinth_core::store::shares::Access;
use plinth_core::tenancy::groups::{self, GroupOwner};
use plinth_core::tenancy::keys::{self, KeyRequest};
use plinth_core::tenancy::shares::{self, MAX_SHARES_PER_CALL, NewShare, ShareActor};
use plinth_core::tenancy::{Caller, users};
use plinth_core::versioning::DEFAULT_VERSION;

/// Name of the demo tenant.
pub const DEMO_TENANT: &str = "Plinth Demo";

/// The demo tenant's id and a key per role.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoInfo {
    /// Tenant id.
    pub tenant_id: String,
    /// `(role, email, api key)` per demo user.
    pub users: Vec<(String, String, String)>,
}

impl DemoInfo {
    /// Print the keys for the person who started the server.
    pub fn print(&self) {
        eprintln!("demo tenant {} — API keys:", self.tenant_id);
        for (role, email, key) in &self.users {
            eprintln!("  {role:<10} {email:<28} {key}");
        }
    }
}

fn keys_file(data_dir: &Path) -> PathBuf {
    data_dir.join("demo-keys.json")
}

/// Create the demo tenant unless it exists; return its keys.
pub async fn ensure(db: &Db, data_dir: &Path) -> anyhow::Result<DemoInfo> {
    let file = keys_file(data_dir);
    if file.exists() {
        let text = std::fs::read_to_string(&file).with_context(|| format!("could not read {}", file.display()))?;
        return serde_json::from_str(&text).with_context(|| format!("{} is damaged", file.display()));
    }
    let created = plinth_core::tenancy::create_tenant(
        db,
        DEMO_TENANT,
        "owner@demo.plinth.dev",
        "Olivia Owner",
        DEFAULT_VERSION,
        &Actor::system(),
    )
    .await?;
    let tenant = created.tenant.id.clone();
    let mut user_ids: Vec<(&str, String)> = Vec::new();
    let mut listed = vec![(
        "owner".to_string(),
        created.owner.email.clone(),
        created.api_key.clone(),
    )];
    // Through the audited services, so the demo ledger shows who created whom.
    let actor = Actor::system();
    let owner = Caller {
        user_id: &created.owner.id,
        role: Role::Owner,
    };
    // The management chain the directory shows: Max (a rep) and Rita report to Mia
    // (sales manager), Mia to Adam (director), Adam to Olivia (VP).
    for (role, email, name, reports_to, locale, time_zone) in [
        (
            "admin",
            "admin@demo.plinth.dev",
            "Adam Admin",
            "owner",
            "en-GB",
            "Europe/London",
        ),
        (
            "manager",
            "manager@demo.plinth.dev",
            "Mia Manager",
            "admin",
            "de-DE",
            "Europe/Berlin",
        ),
        (
            "member",
            "member@demo.plinth.dev",
            "Max Member",
            "manager",
            "de-DE",
            "Europe/Berlin",
        ),
        (
            "read-only",
            "readonly@demo.plinth.dev",
            "Rita Reader",
            "manager",
            "de-AT",
            "Europe/Vienna",
        ),
    ] {
        let manager_id = if reports_to == "owner" {
            created.owner.id.clone()
        } else {
            user_ids
                .iter()
                .find(|(r, _)| *r == reports_to)
                .map(|(_, id)| id.clone())
                .context("the demo creates managers before their reports")?
        };
        let profile = users::Profile {
            manager_id: Some(manager_id),
            locale: Some(locale.into()),
            time_zone: Some(time_zone.into()),
        };
        let user = users::create_user(db, &tenant, &actor, owner, email, name, role, &profile).await?;
        let key = keys::create_key(
            db,
            &tenant,
            &actor,
            owner,
            KeyRequest {
                name: "demo key",
                user_id: Some(&user.id),
                ..KeyRequest::default()
            },
        )
        .await?;
        listed.push((role.to_string(), email.to_string(), key.secret));
        user_ids.push((role, user.id));
    }
    let info = DemoInfo {
        tenant_id: tenant,
        users: listed,
    };
    populate(db, &info.tenant_id, &created.owner.id, &user_ids).await?;
    write_private(&file, &serde_json::to_vec_pretty(&info)?)?;
    Ok(info)
}

/// The sales regions: `(name, parent, countries)`, parents first.
const REGIONS: &[(&str, Option<&str>, &[&str])] = &[
    ("Global Sales", None, &[]),
    ("EMEA", Some("Global Sales"), &[]),
    ("DACH", Some("EMEA"), &["DE", "AT", "CH"]),
    ("Western Europe", Some("EMEA"), &["FR", "NL"]),
    ("UK & Ireland", Some("EMEA"), &["GB", "IE"]),
    ("Americas", Some("Global Sales"), &[]),
    ("North America", Some("Americas"), &["US", "CA"]),
];

/// Who belongs to which region: `(role of the demo user, region, role in the group)`.
const MEMBERSHIPS: &[(&str, &str, &str)] = &[
    ("manager", "EMEA", "owner"),
    ("member", "DACH", "member"),
    ("read-only", "Global Sales", "member"),
];

/// The data set, the regions, their members, and a read-write share of every record
/// with the region of its account's country.
async fn populate(db: &Db, tenant: &str, owner: &str, users: &[(&str, String)]) -> anyhow::Result<()> {
    let user = |role: &str| {
        users
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, id)| id.clone())
            .with_context(|| format!("no demo user with role {role}"))
    };
    // Records are owned by the admin, the manager and the member in turn.
    let owners = vec![user("admin")?, user("manager")?, user("member")?];
    let records = crate::demo_data::seed(db, tenant, owner, &owners).await?;

    let actor = Actor::system();
    let mut ids: HashMap<&str, String> = HashMap::new();
    for (name, parent, _) in REGIONS {
        let parent = parent.and_then(|p| ids.get(p)).map(String::as_str);
        let g = groups::create_group(db, tenant, &actor, GroupOwner::Rest, name, parent).await?;
        ids.insert(name, g.id);
    }
    for (role, region, group_role) in MEMBERSHIPS {
        groups::add_member(
            db,
            tenant,
            &actor,
            GroupOwner::Rest,
            &ids[region],
            &user(role)?,
            Some(group_role),
        )
        .await?;
    }
    let region_of: HashMap<&str, &str> = REGIONS
        .iter()
        .flat_map(|(name, _, countries)| countries.iter().map(move |c| (*c, *name)))
        .collect();
    let wanted: Vec<NewShare> = records
        .iter()
        .filter_map(|r| {
            let region = region_of.get(r.country)?;
            Some(NewShare {
                object: r.object.to_string(),
                record_id: r.id.clone(),
                group_id: ids[region].clone(),
                access: Access::ReadWrite,
            })
        })
        .collect();
    let who = ShareActor {
        owner: GroupOwner::Rest,
        viewer: None,
        actor: &actor,
    };
    for batch in wanted.chunks(MAX_SHARES_PER_CALL) {
        shares::set_shares(db, tenant, who, batch).await?;
    }
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .with_context(|| format!("could not create {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}
