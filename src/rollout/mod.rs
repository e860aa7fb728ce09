//! Progressive delivery: one engine for every strategy.
//!
//! - [`script`]: a strategy compiled to a script of steps (deploy a track, set a weight,
//!   analyse, pause at a gate, scale down), with what abort plays;
//! - [`engine`]: the pure engine that plays any script, given absolute time as data;
//! - [`analysis`]: how one check is judged (bounds, no data, errors, minimum traffic);
//! - [`simulate`]: the engine against a simulated world on virtual time.
//! - [`lease`]: one rollout per service at a time, the lease's rules.
//!
//! Architecture Invariant: nothing here does I/O, reads a clock, or names tokio, an SDK or
//! kube (tested in `tests/engine.rs`); the edges run the effects.

pub mod analysis;
pub mod engine;
pub mod lease;
pub mod script;
pub mod simulate;
