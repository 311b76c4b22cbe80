//! The `plinth` command. Everything lives in the library (`plinth_host::cli`).

fn main() -> std::process::ExitCode {
    plinth_host::cli::main()
}
