//! Background workers that drive plugins: event delivery, the timer scheduler and the
//! job worker.
//! `server.rs` starts them with every other background loop.

pub mod events;
pub mod jobs;
pub mod timers;
