//! `sqlx::migrate!` embeds the migration files that existed when this crate was last
//! built, but does not tell cargo about the folders: without this, a new migration file
//! would not be embedded until something else changed.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
