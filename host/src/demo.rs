//! `plinth serve --demo`: create, once, a demo tenant with a user and API key for
//! every role. The keys are kept in `<data dir>/demo-keys.json` (mode 0600) so that
//! every later start can print them again.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::manifest::Role;
use crate::store::Db;
use crate::store::audit::Actor;
use crate::tenancy::keys::{self, KeyRequest};
use crate::tenancy::{Caller, users};
use crate::versioning::DEFAULT_VERSION;

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
    let created = crate::tenancy::create_tenant(
        db,
        DEMO_TENANT,
        "owner@demo.plinth.dev",
        "Olivia Owner",
        DEFAULT_VERSION,
        &Actor::system(),
    )
    .await?;
    let tenant = created.tenant.id.clone();
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
    for (role, email, name) in [
        ("admin", "admin@demo.plinth.dev", "Adam Admin"),
        ("manager", "manager@demo.plinth.dev", "Mia Manager"),
        ("member", "member@demo.plinth.dev", "Max Member"),
        ("read-only", "readonly@demo.plinth.dev", "Rita Reader"),
    ] {
        let user = users::create_user(db, &tenant, &actor, owner, email, name, role).await?;
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
    }
    let info = DemoInfo {
        tenant_id: tenant,
        users: listed,
    };
    write_private(&file, &serde_json::to_vec_pretty(&info)?)?;
    Ok(info)
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
