//! Hostile user templates: the first byte picks which built-in template the rest replaces
//! (`templates.<id>` in deploy.yml); the example config then renders every environment with
//! it. Rendering answers artifacts or diagnostics located in the template, and never panics.
#![no_main]

#[path = "../support.rs"]
mod support;

use libfuzzer_sys::fuzz_target;
use movieverse_deploy::render::templates::BUILTINS;
use support::{example_with_template, render_all};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, source)) = data.split_first() else {
        return;
    };
    let id = BUILTINS[usize::from(pick) % BUILTINS.len()].id;
    let Some(loaded) = example_with_template(id, source) else {
        return;
    };
    render_all(
        &loaded,
        Some(
            "registry.test/movieverse@sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ),
    );
});
