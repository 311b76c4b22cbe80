//! `plinth keygen`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use plinth_core::package::SecretKey;

#[derive(Debug, clap::Args)]
pub(crate) struct KeygenArgs {
    /// Where to write the private key (must not exist; created with mode 0600).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub(crate) fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let key = SecretKey::generate();
    key.write_new(&args.out)
        .with_context(|| format!("could not write {}", args.out.display()))?;
    let public = key.public_key();
    println!("private key: {} (mode 0600 — keep it secret)", args.out.display());
    println!("public key:  {}", public.to_text());
    println!("key id:      {}", public.key_id());
    Ok(ExitCode::SUCCESS)
}
