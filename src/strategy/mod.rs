//! Strategies: pure functions of the config (and, with the deployment engine, of observations
//! and the current time passed in as data). No I/O, no clock reads, no SDK types.

pub mod timeline;
