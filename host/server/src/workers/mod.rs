//! Background workers that drive plugins: event delivery and the timer scheduler.
//! `server.rs` starts them with every other background loop.

pub mod events;
pub mod timers;
