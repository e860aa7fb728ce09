//! Hostile deploy.yml: loading (syntax, structure with error recovery, semantics) answers a
//! config or located diagnostics, and never panics; every environment of a config that loads
//! renders with the built-in templates (or says why not); the messages and annotations a user
//! would see are formatted and scrubbed as the binary does.
#![no_main]

#[path = "../support.rs"]
mod support;

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use movieverse_deploy::config::{self, LoadError};
use support::{render_all, shown};

fuzz_target!(|data: &[u8]| {
    // `config::load` reads bytes and refuses what is not UTF-8 before parsing.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = match config::load_str(
        PathBuf::from("deploy.yml"),
        PathBuf::from("/nonexistent/movieverse-deploy-fuzz"),
        text.to_owned(),
    ) {
        Ok(loaded) => loaded,
        Err(LoadError::Invalid(d)) => {
            shown(&d);
            return;
        }
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    render_all(&loaded, None);
});
