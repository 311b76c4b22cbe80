//! The capability registry: one row per capability, read by manifest validation (which
//! `[capabilities]` keys exist and what shape each takes), by grants (the keys a tenant
//! grants and how a grant restricts a request), by the publish-time import check (which
//! WIT interface a declaration unlocks) and by every host call (the name in a `denied`
//! answer). Adding a capability is its WIT file, a row here, its module in the
//! runtime's `caps/`, the SDK wrapper and its docs; `registry_covers_the_wit_world`
//! fails when a WIT import has no row.

/// What a declaration looks like in the manifest and how it is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grant {
    /// Always available: not declared, not granted (`log`, `types`).
    Always,
    /// `key = true` under `[capabilities]`; granted as `key`.
    Flag,
    /// `events = ["pattern", …]`; each pattern granted as `events:<pattern>`.
    Subscriptions,
    /// `http = ["https://host[:port]", …]`; each origin granted as `http:<origin>`.
    Origins,
    /// `[capabilities.records.<object>]`; granted as `records:<object>:read` and, for
    /// read-write objects, `records:<object>:write`.
    Objects,
}

/// One capability.
#[derive(Debug, PartialEq, Eq)]
pub struct Capability {
    /// Its key under `[capabilities]`, and its grant key (or grant-key prefix).
    pub key: &'static str,
    /// The `plinth:plugin` interface it unlocks; `None` for capabilities that shape
    /// what the host calls rather than what the plugin imports (subscriptions).
    pub interface: Option<&'static str>,
    /// How it is declared and granted.
    pub grant: Grant,
    /// What it allows, in one line (docs and error messages).
    pub summary: &'static str,
}

impl Capability {
    /// How a manifest declares it, for error messages.
    pub fn declaration(&self) -> String {
        match self.grant {
            Grant::Always => "nothing (always available)".to_string(),
            Grant::Flag => format!("`[capabilities] {} = true`", self.key),
            Grant::Subscriptions => format!("`[capabilities] {} = [\"<pattern>\", …]`", self.key),
            Grant::Origins => format!("`[capabilities] {} = [\"https://<host>\", …]`", self.key),
            Grant::Objects => format!("`[capabilities.{}.<object>]`", self.key),
        }
    }

    /// The row whose WIT interface is `interface` (`storage`, `records`, …).
    pub fn for_interface(interface: &str) -> Option<&'static Capability> {
        REGISTRY.iter().find(|c| c.interface == Some(interface))
    }

    /// The row whose manifest key is `key`.
    pub fn for_key(key: &str) -> Option<&'static Capability> {
        REGISTRY.iter().find(|c| c.grant != Grant::Always && c.key == key)
    }

    /// The flag capabilities (`key = true`), in registry order.
    pub fn flags() -> impl Iterator<Item = &'static Capability> {
        REGISTRY.iter().filter(|c| c.grant == Grant::Flag)
    }
}

/// The shared types of the world.
pub const TYPES: Capability = Capability {
    key: "types",
    interface: Some("types"),
    grant: Grant::Always,
    summary: "the shared types (caller, request, response, error)",
};
/// Logging.
pub const LOG: Capability = Capability {
    key: "log",
    interface: Some("log"),
    grant: Grant::Always,
    summary: "write log lines (rate-limited, tagged with the plugin and request)",
};
/// Plugin-scoped document storage.
pub const STORAGE: Capability = Capability {
    key: "storage",
    interface: Some("storage"),
    grant: Grant::Flag,
    summary: "document collections scoped to the tenant and plugin",
};
/// Tenant settings for the plugin.
pub const CONFIG: Capability = Capability {
    key: "config",
    interface: Some("config"),
    grant: Grant::Flag,
    summary: "read the tenant's settings for this plugin",
};
/// Tenant secrets for the plugin.
pub const SECRETS: Capability = Capability {
    key: "secrets",
    interface: Some("secrets"),
    grant: Grant::Flag,
    summary: "read and write the tenant's secrets for this plugin",
};
/// Groups and record shares.
pub const SHARING: Capability = Capability {
    key: "sharing",
    interface: Some("sharing"),
    grant: Grant::Flag,
    summary: "manage groups, memberships and record shares",
};
/// Plugin audit events.
pub const AUDIT: Capability = Capability {
    key: "audit",
    interface: Some("audit"),
    grant: Grant::Flag,
    summary: "append plugin events to the tenant's audit chain",
};
/// Durable timers and cron.
pub const SCHEDULE: Capability = Capability {
    key: "schedule",
    interface: Some("schedule"),
    grant: Grant::Flag,
    summary: "durable one-shot, interval and cron timers",
};
/// Email through the outbox.
pub const EMAIL: Capability = Capability {
    key: "email",
    interface: Some("email"),
    grant: Grant::Flag,
    summary: "send email through the outbox",
};
/// Emitting events.
pub const EMIT: Capability = Capability {
    key: "emit",
    interface: Some("events"),
    grant: Grant::Flag,
    summary: "emit events (named under the plugin's id)",
};
/// The tenant's people: users, managers, reports, group members.
pub const DIRECTORY: Capability = Capability {
    key: "directory",
    interface: Some("directory"),
    grant: Grant::Flag,
    summary: "read the tenant's people: users, their managers and reports, group members",
};
/// Notifying users in their inbox (and by email, as they choose).
pub const NOTIFY: Capability = Capability {
    key: "notify",
    interface: Some("notify"),
    grant: Grant::Flag,
    summary: "notify the tenant's users in their inbox (and by email where they chose it)",
};
/// Large files, read and written in pieces.
pub const FILES: Capability = Capability {
    key: "files",
    interface: Some("files"),
    grant: Grant::Flag,
    summary: "read the caller's files and the plugin's own, and write files, in pieces",
};
/// Background jobs run in steps through `on-job-step`.
pub const JOBS: Capability = Capability {
    key: "jobs",
    interface: Some("jobs"),
    grant: Grant::Flag,
    summary: "start background jobs the host runs in committed steps, with progress users can follow",
};
/// Atomic batches: each write needs its own grant, the batch itself none.
pub const BATCH: Capability = Capability {
    key: "batch",
    interface: Some("batch"),
    grant: Grant::Always,
    summary: "apply record, share and storage writes in one transaction (each write needs its own grant)",
};
/// Event subscriptions (the host calls `on-event`).
pub const EVENTS: Capability = Capability {
    key: "events",
    interface: None,
    grant: Grant::Subscriptions,
    summary: "receive the events matching these patterns through `on-event`",
};
/// Outbound HTTP to allow-listed origins.
pub const HTTP: Capability = Capability {
    key: "http",
    interface: Some("http"),
    grant: Grant::Origins,
    summary: "outbound HTTP to these origins",
};
/// Core CRM records, per object and field.
pub const RECORDS: Capability = Capability {
    key: "records",
    interface: Some("records"),
    grant: Grant::Objects,
    summary: "read (or read and write) records of these objects and fields",
};

/// Every capability. The order is the order of `[capabilities]` keys in documents the
/// host writes (installation views, OpenAPI descriptions).
pub static REGISTRY: &[Capability] = &[
    TYPES, LOG, BATCH, STORAGE, CONFIG, SECRETS, SHARING, AUDIT, SCHEDULE, EMAIL, EMIT, DIRECTORY, NOTIFY, FILES, JOBS,
    EVENTS, HTTP, RECORDS,
];

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn keys_and_interfaces_are_unique() {
        let keys: BTreeSet<_> = REGISTRY.iter().map(|c| c.key).collect();
        assert_eq!(keys.len(), REGISTRY.len(), "two rows share a manifest key");
        let interfaces: Vec<_> = REGISTRY.iter().filter_map(|c| c.interface).collect();
        let unique: BTreeSet<_> = interfaces.iter().collect();
        assert_eq!(unique.len(), interfaces.len(), "two rows share a WIT interface");
    }

    /// Every interface the `plugin` world imports has a row, and every row's interface
    /// is imported: a capability cannot be added to the WIT and forgotten here.
    #[test]
    fn registry_covers_the_wit_world() {
        let world = include_str!("../../../../wit/world.wit");
        let imported: BTreeSet<&str> = world
            .lines()
            .filter_map(|l| l.trim().strip_prefix("import "))
            .map(|rest| rest.trim_end_matches(';').trim())
            .map(|name| name.split('@').next().unwrap_or(name))
            .collect();
        assert!(imported.contains("storage"), "read the world's imports: {imported:?}");
        let rows: BTreeSet<&str> = REGISTRY.iter().filter_map(|c| c.interface).collect();
        let missing: Vec<_> = imported.difference(&rows).collect();
        assert!(missing.is_empty(), "WIT imports without a registry row: {missing:?}");
        let stale: Vec<_> = rows.difference(&imported).filter(|i| **i != "types").collect();
        assert!(stale.is_empty(), "registry rows the world does not import: {stale:?}");
    }

    #[test]
    fn declarations_name_the_manifest_syntax() {
        assert_eq!(STORAGE.declaration(), "`[capabilities] storage = true`");
        assert_eq!(RECORDS.declaration(), "`[capabilities.records.<object>]`");
        assert_eq!(Capability::for_interface("events"), Some(&EMIT));
        assert_eq!(Capability::for_key("events"), Some(&EVENTS));
        assert_eq!(
            Capability::for_key("log"),
            None,
            "always-available rows are not declared"
        );
    }
}
