//! The marketplace: publishers and trust, publishing, the catalog and reviews, and
//! each tenant's installations with their capability grants and lifecycle.

pub mod install;
pub mod publish;
pub mod publishers;
pub mod trust;
