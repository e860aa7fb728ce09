//! movieverse-deploy: takes a release from commit to traffic. See ARCHITECTURE.md for the map.

pub mod aws;
pub mod cli;
pub mod config;
pub mod diag;
pub mod driver;
pub mod git;
pub mod image;
pub mod metrics;
pub mod plan;
pub mod platform;
pub mod render;
pub mod report;
pub mod rollout;
pub mod run;
pub mod strategy;
