//! Reporters: what people see of a deployment. Today the terminal (live progress on a TTY,
//! plain lines in CI); the GitHub reporter (PR comment, deployments, summary) consumes the same
//! events.

pub mod terminal;
