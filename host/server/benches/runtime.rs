//! Instantiate + call of hello's greeting endpoint through the real runtime: a fresh
//! `Store` and instance per call from a cached `InstancePre`, with the pooling
//! allocator and, for comparison, without it.
//!
//! Run: `cargo bench -p plinth-host --bench runtime`

use criterion::{Criterion, criterion_group, criterion_main};
use plinth_core::manifest::{Manifest, Role};
use plinth_runtime::engine::RuntimeConfig;
use plinth_runtime::sandbox::{Sandbox, request};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio");
    let hello = plinth_host::bundled::find("hello").expect("hello is bundled");
    let mut group = c.benchmark_group("instantiate+call hello GET /greet/{name}");
    for (name, pooling) in [("pooling", true), ("on-demand", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (sandbox, plugin) = rt.block_on(async {
            // The server's configuration (128 slots), pooling on or off.
            let config = RuntimeConfig {
                pooling,
                ..RuntimeConfig::default()
            };
            let sandbox = Sandbox::open(dir.path(), config).await.expect("sandbox");
            let manifest = Manifest::parse(hello.manifest).expect("manifest");
            let plugin = sandbox.load(manifest, hello.component.to_vec()).await.expect("load");
            (sandbox, plugin)
        });
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| async {
                let req = request("GET", "/greet/Ada", vec![], vec![]);
                let out = sandbox.handle_raw(&plugin, Role::Member, req).await;
                assert_eq!(out.result.expect("call succeeds").status, 200);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
