//! Name resolution for outbound requests: resolve with the system resolver, then
//! keep only the addresses the operator's rules allow. reqwest connects to what this
//! returns, so the checked address is the one used.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address::AddressRules;

/// Every address a name resolved to was refused.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to addresses outbound requests may not reach ({reason})")]
pub(crate) struct AddressDenied {
    pub(crate) host: String,
    pub(crate) reason: &'static str,
}

/// The resolver reqwest uses.
pub(crate) struct GuardedResolver {
    rules: AddressRules,
}

impl GuardedResolver {
    pub(crate) fn new(rules: AddressRules) -> Self {
        GuardedResolver { rules }
    }
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let rules = self.rules.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port on the addresses.
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut reason = "it has no addresses";
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match rules.check(a.ip()) {
                    Ok(()) => true,
                    Err(class) => {
                        reason = class.describe();
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(AddressDenied { host, reason }) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}
