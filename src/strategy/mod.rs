//! Strategies: pure functions of the config, of observations and of the current time passed in
//! as data. No I/O, no clock reads, no SDK types.
//!
//! - [`rolling`]: the rolling deploy state machine (the engine blue-green and canary extend).
//! - [`timeline`]: the timeline `plan` prints.

pub mod rolling;
pub mod timeline;
