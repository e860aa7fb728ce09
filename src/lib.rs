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

/// The SHA-256 of `data`, in lowercase hex (64 characters).
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    use std::fmt::Write as _;
    sha2::Sha256::digest(data)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
