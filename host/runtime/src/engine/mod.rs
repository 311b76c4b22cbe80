//! The WebAssembly runtime: one wasmtime [`Engine`] (component model, pooling
//! allocator, epoch interruption driven by one ticker thread), compiled components
//! cached in memory and on disk by package digest, an `InstancePre` per component, and
//! a fresh `Store` per call bound to the caller and the granted capabilities.
//!
//! A call that traps, runs out of time, exhausts its memory or returns an oversized
//! response fails alone, with a [`CallError`] naming which; the engine and every other
//! call carry on. This module knows nothing of HTTP.

mod cache;
mod error;
pub mod limits;
mod state;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap, UpdateDeadline};

pub use error::{CallError, LoadError};
pub use limits::{CallLimits, HostLimits};

use crate::bindings::{Caller, Event, Job, JobNext, JobStep, Plugin, PluginPre, Progress, Request, Response, WitError};
use crate::caps::{self, CallStats, CapCtx, PluginRef, Services};
use cache::DiskCache;
use plinth_core::manifest::Capabilities;
use plinth_core::package::Digest;
use state::CallState;

/// How often the epoch advances: a running guest yields to other tasks this often,
/// and deadlines are accurate to about this much.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Elements a guest table may hold (Rust guests use a few hundred).
const MAX_TABLE_ELEMENTS: usize = 20_000;
/// Bytes of each pooled linear memory whose dirty pages are reset in place rather
/// than decommitted between calls.
const MEMORY_KEEP_RESIDENT: usize = 4 * 1024 * 1024;
/// Extra wall-clock time a call gets beyond its deadline before the host abandons a
/// stuck host call (the epoch only interrupts guest code, not awaited host futures).
/// The export that runs a job step (WIT 1.5.0), looked up by name.
const JOB_STEP_EXPORT: &str = "on-job-step";

const HOST_CALL_GRACE: Duration = Duration::from_millis(500);

/// How to build a [`Runtime`].
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Where compiled components are cached; `None` disables the disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Host ceilings for calls.
    pub limits: HostLimits,
    /// Use the pooling instance allocator (faster instantiation; reserves address
    /// space up front). Off only for comparison benchmarks.
    pub pooling: bool,
    /// Most calls running at once; further calls wait for a slot.
    pub max_concurrent_calls: u32,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            cache_dir: None,
            limits: HostLimits::default(),
            pooling: true,
            max_concurrent_calls: 128,
        }
    }
}

/// A compiled and linked component, ready to instantiate.
pub struct LoadedComponent {
    digest: Digest,
    pre: PluginPre<CallState>,
    imports: Vec<String>,
    /// Whether it exports `on-job-step` (WIT 1.5.0; older components do not).
    job_steps: bool,
}

impl std::fmt::Debug for LoadedComponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedComponent")
            .field("digest", &self.digest)
            .finish_non_exhaustive()
    }
}

impl LoadedComponent {
    /// The package digest it was loaded under.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The names of the instances it imports (`plinth:plugin/storage@1.0.0`, `wasi:…`).
    pub fn imports(&self) -> &[String] {
        &self.imports
    }

    /// Whether it exports `on-job-step`, so that it can run jobs.
    pub fn runs_jobs(&self) -> bool {
        self.job_steps
    }
}

/// One call: who for, which plugin, with what capabilities and limits.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The caller, as authenticated by the host.
    pub caller: Caller,
    /// The plugin and version.
    pub plugin: PluginRef,
    /// Effective capabilities (declared ∩ granted).
    pub grants: Arc<Capabilities>,
    /// Limits for this call (already clamped by [`HostLimits::for_manifest`]).
    pub limits: CallLimits,
}

/// What a job step returned, its writes checked against the plugin's grants.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// Progress after the step.
    pub progress: Progress,
    /// The next state, or the result.
    pub next: JobNext,
    /// The writes to commit with the step.
    pub writes: caps::batch::CheckedWrites,
}

/// What happened during a call, successful or not, for execution tracking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallReport {
    /// Wall-clock time including instantiation.
    pub elapsed: Duration,
    /// Largest linear memory size reached, in bytes.
    pub peak_memory: u64,
    /// Host-call counters.
    pub stats: CallStats,
}

/// The result of a call plus its report.
#[derive(Debug)]
pub struct CallOutcome<T> {
    /// The value, or why the call failed.
    pub result: Result<T, CallError>,
    /// Measurements.
    pub report: CallReport,
}

enum Entry {
    Handle(Request),
    Event(Event),
    Timer { key: String, payload: String },
    Install { previous: Option<String> },
    JobStep { job: Job, state: Option<String> },
}

enum Output {
    Response(Response),
    Step(Result<Box<StepOutcome>, WitError>),
    Hook(Result<(), WitError>),
}

/// The plugin runtime. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Runtime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    engine: Engine,
    linker: Linker<CallState>,
    config: RuntimeConfig,
    loaded: Mutex<HashMap<Digest, Arc<LoadedComponent>>>,
    disk: Option<DiskCache>,
    slots: Semaphore,
    ticker_stop: Arc<AtomicBool>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.ticker_stop.store(true, Ordering::Relaxed);
    }
}

impl Runtime {
    /// Build the engine, the linker with every Plinth and WASI interface, the epoch
    /// ticker and (if configured) the disk cache.
    pub fn new(config: RuntimeConfig) -> anyhow::Result<Runtime> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .cranelift_opt_level(wasmtime::OptLevel::Speed);
        if config.pooling {
            let n = config.max_concurrent_calls.max(1);
            let mut pool = PoolingAllocationConfig::default();
            pool.total_component_instances(n)
                .total_core_instances(n * 8)
                .total_memories(n)
                .total_tables(n * 8)
                .total_stacks(n)
                .max_core_instances_per_component(16)
                .max_memories_per_component(2)
                .max_tables_per_component(8)
                .max_memory_size(usize::try_from(config.limits.max_memory_bytes)?)
                // Table slots are reset on every call: keep them no bigger than guests
                // need (100k elements cost ~8 µs per call in madvise; 20k is free).
                .table_elements(MAX_TABLE_ELEMENTS)
                // …and reset them with memset rather than madvise, so a reused slot
                // does not fault its table pages back in on every call.
                .table_keep_resident(MAX_TABLE_ELEMENTS * std::mem::size_of::<usize>())
                // Reset reused memory slots by rewriting only their dirty pages
                // (Linux PAGEMAP_SCAN) instead of madvise + page faults on the next
                // call, and batch the remaining decommits to amortise TLB shootdowns.
                // Measured: 31 µs -> 21 µs per hello call (docs/benchmarks/runtime.md).
                .pagemap_scan(wasmtime::Enabled::Auto)
                .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
                .decommit_batch_size((n as usize / 8).clamp(1, 16));
            wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&wasm)?;

        let mut linker: Linker<CallState> = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        caps::add_to_linker(&mut linker, |s: &mut CallState| &mut s.caps)?;

        let disk = match &config.cache_dir {
            Some(dir) => Some(DiskCache::new(dir, &engine)?),
            None => None,
        };

        let ticker_stop = Arc::new(AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = ticker_stop.clone();
            std::thread::Builder::new().name("plinth-epoch".into()).spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })?;
        }

        let slots = Semaphore::new(config.max_concurrent_calls.max(1) as usize);
        Ok(Runtime {
            inner: Arc::new(Inner {
                engine,
                linker,
                config,
                loaded: Mutex::new(HashMap::new()),
                disk,
                slots,
                ticker_stop,
            }),
        })
    }

    /// The host limits this runtime enforces.
    pub fn limits(&self) -> &HostLimits {
        &self.inner.config.limits
    }

    /// Compile (or fetch from cache) and link a component. CPU-heavy on first load:
    /// call it from a blocking context (`spawn_blocking`) in async code.
    pub fn load(&self, digest: Digest, component: &[u8]) -> Result<Arc<LoadedComponent>, LoadError> {
        if let Some(loaded) = self.cached(&digest) {
            return Ok(loaded);
        }
        let engine = &self.inner.engine;
        let compiled = match self.inner.disk.as_ref().and_then(|d| d.load(engine, &digest)) {
            Some(c) => c,
            None => {
                let c = Component::new(engine, component).map_err(|e| LoadError::Compile(format!("{e:#}")))?;
                if let Some(disk) = &self.inner.disk {
                    disk.store(&digest, &c);
                }
                c
            }
        };
        let imports = compiled
            .component_type()
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let job_steps = compiled
            .component_type()
            .exports(engine)
            .any(|(name, _)| name == JOB_STEP_EXPORT);
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&compiled)
            .map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let pre = PluginPre::new(instance_pre).map_err(|e| LoadError::Link(format!("{e:#}")))?;
        let loaded = Arc::new(LoadedComponent {
            digest,
            pre,
            imports,
            job_steps,
        });
        self.inner
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(digest, loaded.clone());
        Ok(loaded)
    }

    /// A component already loaded under `digest`.
    pub fn cached(&self, digest: &Digest) -> Option<Arc<LoadedComponent>> {
        self.inner
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(digest)
            .cloned()
    }

    /// Forget a loaded component (it stays in the disk cache).
    pub fn evict(&self, digest: &Digest) {
        self.inner
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(digest);
    }

    /// Serve an endpoint request.
    pub async fn handle(
        &self,
        component: &LoadedComponent,
        invocation: Invocation,
        services: &Services,
        request: Request,
    ) -> CallOutcome<Response> {
        let max = self.inner.config.limits.max_response_bytes;
        let outcome = self.call(component, invocation, services, Entry::Handle(request)).await;
        let result = outcome.result.and_then(|out| match out {
            Output::Response(r) if r.body.len() > max => Err(CallError::ResponseTooLarge {
                size: r.body.len(),
                limit: max,
            }),
            Output::Response(r) if !(100..=599).contains(&r.status) => Err(CallError::InvalidResponse(format!(
                "status {} is not between 100 and 599",
                r.status
            ))),
            Output::Response(r) => Ok(r),
            Output::Hook(_) | Output::Step(_) => Err(CallError::Host("wrong export result".into())),
        });
        CallOutcome {
            result,
            report: outcome.report,
        }
    }

    /// Deliver an event to `on-event`.
    pub async fn on_event(
        &self,
        component: &LoadedComponent,
        invocation: Invocation,
        services: &Services,
        event: Event,
    ) -> CallOutcome<()> {
        hook(self.call(component, invocation, services, Entry::Event(event)).await)
    }

    /// Fire `on-timer`.
    pub async fn on_timer(
        &self,
        component: &LoadedComponent,
        invocation: Invocation,
        services: &Services,
        key: String,
        payload: String,
    ) -> CallOutcome<()> {
        hook(
            self.call(component, invocation, services, Entry::Timer { key, payload })
                .await,
        )
    }

    /// Run `on-install` (previous version `None` on first install).
    pub async fn on_install(
        &self,
        component: &LoadedComponent,
        invocation: Invocation,
        services: &Services,
        previous: Option<String>,
    ) -> CallOutcome<()> {
        hook(
            self.call(component, invocation, services, Entry::Install { previous })
                .await,
        )
    }

    /// Run one step of a job (`on-job-step`). A component that does not export it
    /// (built before WIT 1.5.0) fails with a host error naming the reason.
    pub async fn on_job_step(
        &self,
        component: &LoadedComponent,
        invocation: Invocation,
        services: &Services,
        job: Job,
        state: Option<String>,
    ) -> CallOutcome<StepOutcome> {
        if !component.job_steps {
            return CallOutcome {
                result: Err(CallError::Host(
                    "the plugin does not export `on-job-step` (built against WIT before 1.5.0): it cannot run jobs"
                        .into(),
                )),
                report: CallReport::default(),
            };
        }
        let outcome = self
            .call(component, invocation, services, Entry::JobStep { job, state })
            .await;
        let result = outcome.result.and_then(|out| match out {
            Output::Step(Ok(step)) => Ok(*step),
            Output::Step(Err(e)) => Err(CallError::Plugin(e)),
            _ => Err(CallError::Host("wrong export result".into())),
        });
        CallOutcome {
            result,
            report: outcome.report,
        }
    }

    async fn call(
        &self,
        component: &LoadedComponent,
        invocation: Invocation,
        services: &Services,
        entry: Entry,
    ) -> CallOutcome<Output> {
        let started = Instant::now();
        let Ok(_slot) = self.inner.slots.acquire().await else {
            return CallOutcome {
                result: Err(CallError::Host("the runtime is shutting down".into())),
                report: CallReport::default(),
            };
        };
        let limits = invocation.limits;
        let caller = invocation.caller.clone();
        let caps = CapCtx {
            caller: invocation.caller,
            plugin: invocation.plugin,
            grants: invocation.grants,
            services: services.clone(),
            stats: CallStats::default(),
            resources: wasmtime::component::ResourceTable::new(),
            read_as: None,
        };
        let mut store = Store::new(&self.inner.engine, CallState::new(caps, limits.memory_bytes));
        store.limiter(|s| &mut s.limiter);
        // Every epoch tick the guest yields to the executor, so a spinning plugin
        // shares its worker thread instead of holding it; once the wall-clock
        // deadline has passed the next tick traps it instead.
        let deadline = started + limits.timeout;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            if Instant::now() >= deadline {
                Ok(UpdateDeadline::Interrupt)
            } else {
                Ok(UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())))
            }
        });

        let run = async {
            let instance = component.pre.instance_pre().instantiate_async(&mut store).await?;
            let plugin = Plugin::new(&mut store, &instance)?;
            Ok::<_, wasmtime::Error>(match entry {
                Entry::Handle(request) => Output::Response(plugin.call_handle(&mut store, &caller, &request).await?),
                Entry::Event(event) => Output::Hook(plugin.call_on_event(&mut store, &caller, &event).await?),
                Entry::Timer { key, payload } => {
                    Output::Hook(plugin.call_on_timer(&mut store, &caller, &key, &payload).await?)
                }
                Entry::Install { previous } => {
                    Output::Hook(plugin.call_on_install(&mut store, &caller, previous.as_deref()).await?)
                }
                Entry::JobStep { job, state } => {
                    // Looked up by name: the bindings' world predates this export.
                    let step = instance.get_typed_func::<(Caller, Job, Option<String>), (Result<JobStep, WitError>,)>(
                        &mut store,
                        JOB_STEP_EXPORT,
                    )?;
                    let (result,) = step.call_async(&mut store, (caller.clone(), job, state)).await?;
                    // The step's writes are checked against the grants here, while
                    // the call's context exists; the worker commits them.
                    Output::Step(result.and_then(|s| {
                        let writes = store.data_mut().caps.check_writes(s.writes)?;
                        Ok(Box::new(StepOutcome {
                            progress: s.progress,
                            next: s.next,
                            writes,
                        }))
                    }))
                }
            })
        };
        let result = match tokio::time::timeout(limits.timeout + HOST_CALL_GRACE, run).await {
            Err(_elapsed) => Err(CallError::Timeout { limit: limits.timeout }),
            Ok(Ok(output)) => Ok(output),
            Ok(Err(e)) => Err(classify(e, &store, limits)),
        };
        let state = store.data();
        let report = CallReport {
            elapsed: started.elapsed(),
            peak_memory: state.limiter.peak,
            stats: state.caps.stats.clone(),
        };
        if let Err(e) = &result {
            log_failure(e, state, &report);
        }
        CallOutcome { result, report }
    }
}

fn hook(outcome: CallOutcome<Output>) -> CallOutcome<()> {
    let result = outcome.result.and_then(|out| match out {
        Output::Hook(Ok(())) => Ok(()),
        Output::Hook(Err(e)) => Err(CallError::Plugin(e)),
        Output::Response(_) | Output::Step(_) => Err(CallError::Host("wrong export result".into())),
    });
    CallOutcome {
        result,
        report: outcome.report,
    }
}

/// Name the failure precisely: the limiter and the trap code tell a memory bomb, a
/// runaway loop and a crash apart.
fn classify(error: wasmtime::Error, store: &Store<CallState>, limits: CallLimits) -> CallError {
    let state = store.data();
    if state.limiter.exceeded {
        return CallError::MemoryExhausted {
            limit_bytes: limits.memory_bytes,
        };
    }
    let trap = error.downcast_ref::<Trap>().copied();
    if trap == Some(Trap::Interrupt) {
        return CallError::Timeout { limit: limits.timeout };
    }
    let output = state.captured_output();
    let reason = match trap {
        _ if output.contains("panicked at") => "panic".to_string(),
        Some(Trap::StackOverflow) => "stack overflow".to_string(),
        Some(Trap::UnreachableCodeReached) => "unreachable".to_string(),
        Some(t) => t.to_string(),
        None => "host error".to_string(),
    };
    let tail: String = output
        .chars()
        .rev()
        .take(2000)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    CallError::Trap {
        reason,
        detail: format!("{error:?}\n--- guest output (tail) ---\n{tail}"),
    }
}

fn log_failure(error: &CallError, state: &CallState, report: &CallReport) {
    let caps = &state.caps;
    let detail = match error {
        CallError::Trap { detail, .. } => detail.as_str(),
        _ => "",
    };
    tracing::warn!(
        tenant = %caps.caller.tenant_id,
        plugin = %caps.plugin.id,
        version = %caps.plugin.version,
        request_id = %caps.caller.request_id,
        kind = error.kind(),
        elapsed_ms = report.elapsed.as_millis() as u64,
        "plugin call failed: {error}\n{detail}"
    );
}
