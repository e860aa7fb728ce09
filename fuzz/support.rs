//! What the fuzz targets share (each includes this file as a module): the messages a user
//! would see, a fixed commit, and the example config with one template replaced.
#![allow(dead_code)] // each target uses part of it

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use movieverse_deploy::config::{self, Loaded};
use movieverse_deploy::diag::Diagnostics;
use movieverse_deploy::git::GitInfo;

/// Formats diagnostics as the binary prints them (text, annotations, scrubbed).
pub fn shown(d: &Diagnostics) {
    let text = d.to_string();
    let _ = movieverse_deploy::report::scrub(&text);
    let _ = d.to_annotations();
}

/// Renders every environment of `loaded` with `image` (the commit's default image when
/// `None`), formatting whatever diagnostics come back.
pub fn render_all(loaded: &Loaded, image: Option<&str>) {
    let renderer = match movieverse_deploy::render::Renderer::new(loaded) {
        Ok(r) => r,
        Err(d) => {
            shown(&d);
            return;
        }
    };
    let git = git();
    let image = image.map_or_else(
        || movieverse_deploy::render::default_image(&loaded.config, &git),
        str::to_owned,
    );
    for name in loaded.config.environments.keys() {
        if let Err(d) = renderer.render(name, &image, &git) {
            shown(&d);
        }
    }
}

/// A commit, as GitHub Actions gives it.
pub fn git() -> GitInfo {
    GitInfo {
        sha: "4f2b9c1e8d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c".into(),
        sha7: "4f2b9c1".into(),
        branch: Some("main".into()),
        tag: None,
        pr: None,
        origin: "github-actions",
    }
}

/// A directory of this process for the template files.
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir =
            std::env::temp_dir().join(format!("movieverse-deploy-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    })
}

/// The example deploy.yml with `templates.<id>` pointing at `source`; `None` when it does not
/// load (a template that is not UTF-8 is read as an error before rendering).
pub fn example_with_template(id: &str, source: &[u8]) -> Option<Loaded> {
    static EXAMPLE: &str = include_str!("../examples/movieverse/deploy.yml");
    let dir = scratch();
    let file = id.replace('/', "_");
    std::fs::write(dir.join(&file), source).ok()?;
    let text = format!("templates:\n  {id}: {file}\n{EXAMPLE}");
    config::load_str(dir.join("deploy.yml"), dir.to_path_buf(), text).ok()
}
