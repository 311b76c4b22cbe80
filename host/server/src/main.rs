//! The `plinth` command. Everything lives in the library (`plinth_host::cli`).

/// mimalloc rather than glibc malloc: under concurrent requests glibc spent ~8% of the
/// gateway benchmark in malloc/free and `malloc_consolidate` stalls; with mimalloc the
/// same benchmark serves 33–41% more requests per second (docs/benchmarks/gateway.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    plinth_host::cli::main()
}
