//! Bulkheads for plugin endpoints: at most `per_plugin` calls of one plugin in one
//! tenant run at once, and at most `per_tenant` calls of all of a tenant's plugins; a
//! call finding its compartment full waits up to `queue_wait`, then gets `503` with
//! `Retry-After`. One tenant's flood of an expensive endpoint therefore fills only its
//! own compartments: other tenants — and the tenant's other plugins, up to the tenant's
//! bound — keep being served. The runtime's own slot limit (`max_concurrent_calls`)
//! bounds the whole server below these.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ApiError;

/// Bulkhead sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkheadConfig {
    /// Calls of one plugin in one tenant at once.
    pub per_plugin: usize,
    /// Calls of all plugins of one tenant at once.
    pub per_tenant: usize,
    /// Longest wait for a place before answering 503.
    pub queue_wait: Duration,
}

impl Default for BulkheadConfig {
    fn default() -> Self {
        BulkheadConfig {
            per_plugin: 16,
            per_tenant: 32,
            queue_wait: Duration::from_secs(2),
        }
    }
}

/// The compartments of every tenant and plugin seen.
#[derive(Debug, Default)]
pub struct Bulkheads {
    plugins: Mutex<HashMap<(String, String), Arc<Semaphore>>>,
    tenants: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Places held while a call runs.
#[derive(Debug)]
pub struct Places {
    _plugin: OwnedSemaphorePermit,
    _tenant: OwnedSemaphorePermit,
}

impl Bulkheads {
    fn plugin(&self, tenant: &str, plugin: &str, size: usize) -> Arc<Semaphore> {
        let mut map = self.plugins.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((tenant.to_string(), plugin.to_string()))
            .or_insert_with(|| Arc::new(Semaphore::new(size.max(1))))
            .clone()
    }

    fn tenant(&self, tenant: &str, size: usize) -> Arc<Semaphore> {
        let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(tenant.to_string())
            .or_insert_with(|| Arc::new(Semaphore::new(size.max(1))))
            .clone()
    }

    /// Take a place for a call of `plugin` in `tenant`, waiting up to the queue time.
    /// The plugin's place is taken first, so calls queued behind a flooded plugin do
    /// not hold the tenant's places that its other plugins need.
    pub async fn enter(&self, config: BulkheadConfig, tenant: &str, plugin: &str) -> Result<Places, ApiError> {
        let plugin_sem = self.plugin(tenant, plugin, config.per_plugin);
        let tenant_sem = self.tenant(tenant, config.per_tenant);
        let take = async {
            let p = plugin_sem.acquire_owned().await.ok()?;
            let t = tenant_sem.acquire_owned().await.ok()?;
            Some(Places { _plugin: p, _tenant: t })
        };
        match tokio::time::timeout(config.queue_wait, take).await {
            Ok(Some(places)) => Ok(places),
            _ => Err(ApiError::unavailable(format!(
                "`{plugin}` is busy in this tenant (at most {} calls at once, {} for all its plugins); retry shortly",
                config.per_plugin, config.per_tenant
            ))
            .with_header(HeaderName::from_static("retry-after"), HeaderValue::from_static("1"))),
        }
    }
}
