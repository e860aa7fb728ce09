//! deploy.yml: the model, loading with located errors, semantic validation, JSON Schema.
//!
//! Loading is three passes, each reporting every problem it finds before stopping:
//! 1. YAML syntax, parsed into a located tree ([`tree::Node`]);
//! 2. structure (unknown keys, wrong types, missing keys), by typed deserialization with
//!    error recovery: after an error, the offending value is cut out and deserialization runs
//!    again, so one run lists the problems of every section;
//! 3. meaning ([`validate`]): values that parse but cannot work (falling canary weights, an
//!    invalid Fargate CPU/memory pair, a secret in plain environment, …).

pub mod model;
pub mod tree;
pub mod validate;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub use model::*;
use tree::{Node, Seg, path_string};

use crate::diag::{Diagnostic, Diagnostics, Position, display_path};

/// A loaded, fully validated deploy.yml.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Config,
    pub source: Source,
}

/// The text of deploy.yml and its located tree: what turns a path into `file:line:column`.
#[derive(Debug, Clone)]
pub struct Source {
    /// The path as the user named it (for messages).
    pub file: PathBuf,
    /// The directory relative paths in the config are resolved against.
    pub dir: PathBuf,
    pub text: String,
    pub root: Node,
}

impl Source {
    /// A diagnostic about the value at `path` (or its nearest existing ancestor).
    pub fn diag(&self, path: &[Seg], message: impl Into<String>) -> Diagnostic {
        let (node, _) = self.root.locate(path);
        self.diag_at(Some(node.pos), path, message)
    }

    /// A diagnostic about the key that ends `path` (unknown or misplaced keys).
    pub fn diag_key(&self, path: &[Seg], message: impl Into<String>) -> Diagnostic {
        let pos = self
            .root
            .key_position(path)
            .or_else(|| Some(self.root.locate(path).0.pos));
        self.diag_at(pos, path, message)
    }

    fn diag_at(
        &self,
        pos: Option<Position>,
        path: &[Seg],
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::new(&self.file, message)
            .at(pos)
            .path(path_string(path))
            .with_source(&self.text)
    }

    /// Resolves a path written in deploy.yml against the file's directory.
    pub fn resolve(&self, relative: &str) -> PathBuf {
        if self.dir == Path::new(".") {
            PathBuf::from(relative)
        } else {
            self.dir.join(relative)
        }
    }
}

/// Why deploy.yml could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(
        "cannot read the config file {}: {source}\n  = help: run from the directory that holds deploy.yml, or pass --config PATH",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads, parses and validates deploy.yml.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        LoadError::Invalid(Diagnostics::single(not_utf8(
            display_path(path),
            e.as_bytes(),
            e.utf8_error().valid_up_to(),
        )))
    })?;
    let dir = path
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    load_str(display_path(path), dir, text)
}

/// A file that is not UTF-8, pointed at its first bad byte.
fn not_utf8(file: PathBuf, bytes: &[u8], at: usize) -> Diagnostic {
    let before = &bytes[..at];
    let line = String::from_utf8_lossy(before).lines().count().max(1)
        + usize::from(before.ends_with(b"\n"));
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&bytes[line_start..at])
        .chars()
        .count()
        + 1;
    Diagnostic::new(
        file,
        format!(
            "the file is not UTF-8 text: byte 0x{:02x} at line {line}, column {column} is not valid UTF-8",
            bytes[at]
        ),
    )
    .at(Some(Position { line, column }))
    .help("save the file as UTF-8 (YAML files are UTF-8); an editor's \"encoding\" setting or `iconv -f LATIN1 -t UTF-8` converts it")
}

/// A YAML parser message in the file's terms: no parser type or option names.
fn yaml_message(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("budget breached: ") {
        let (name, figure) = rest.split_once(' ').unwrap_or((rest, ""));
        let figure: String = figure.chars().filter(char::is_ascii_digit).collect();
        let what = match name {
            "Events" => "parser events",
            "Aliases" => "alias uses (`*name`)",
            "Anchors" => "anchors (`&name`)",
            "Depth" => "nesting depth",
            "Nodes" => "values, counting each alias expansion",
            "ScalarBytes" => "bytes of text",
            "Documents" => "documents",
            _ => "its size",
        };
        return format!(
            "the document is too large for a config: it reached {} {what}, past the safety limit (aliases that expand into one another, a \"YAML bomb\", do this)",
            if figure.is_empty() {
                "the limit of".to_owned()
            } else {
                figure
            }
        );
    }
    if let Some(rest) = message.strip_prefix("duplicate mapping key: ") {
        let key = rest.split(',').next().unwrap_or(rest).trim();
        return format!("the key `{key}` appears twice in the same mapping");
    }
    message.to_owned()
}

/// Parses and validates deploy.yml text. `file` names it in messages; `dir` resolves relative
/// paths.
pub fn load_str(file: PathBuf, dir: PathBuf, text: String) -> Result<Loaded, LoadError> {
    let root = parse_tree(&file, &text).map_err(LoadError::Invalid)?;
    let source = Source {
        file,
        dir,
        text,
        root,
    };
    let config = deserialize(&source).map_err(LoadError::Invalid)?;
    let problems = validate::validate(&config, &source);
    if !problems.is_empty() {
        return Err(LoadError::Invalid(Diagnostics(problems).sorted()));
    }
    Ok(Loaded { config, source })
}

fn parse_tree(file: &Path, text: &str) -> Result<Node, Diagnostics> {
    if text.trim().is_empty() {
        return Err(Diagnostics::single(
            Diagnostic::new(file, "the config file is empty")
                .at(Some(Position { line: 1, column: 1 }))
                .help("start from examples/movieverse/deploy.yml, or run `movieverse-deploy schema` for the full format"),
        ));
    }
    serde_saphyr::from_str::<Node>(text).map_err(|e| {
        let position = e.location().map(tree::to_position);
        let message = serde_saphyr::render_options! { snippets: serde_saphyr::SnippetMode::Off };
        let mut message = e.render_with_options(message);
        // The plain rendering ends with " at line L column C"; we show the location ourselves.
        if let Some(i) = message.find(" at line ") {
            message.truncate(i);
        }
        let help = if message.starts_with("duplicate mapping key") {
            "keep one of the two: YAML would silently drop one, so both are refused"
        } else if message.starts_with("budget breached") {
            "write the values out, or use fewer nested aliases"
        } else {
            "fix the YAML syntax here or on the line above: indentation, a missing `:`, an unclosed `[`, `{` or quote"
        };
        Diagnostics::single(
            Diagnostic::new(file, format!("invalid YAML: {}", yaml_message(&message)))
                .at(position)
                .help(help)
                .with_source(text),
        )
    })
}

/// Typed deserialization with error recovery. Each structural error is recorded, the value it
/// is about is cut out of the document, and deserialization runs again; "missing key" errors
/// caused by a cut are not reported.
fn deserialize(source: &Source) -> Result<Config, Diagnostics> {
    const MAX_ROUNDS: usize = 64;
    let mut value = source.root.to_json();
    if !value.is_object() {
        return Err(Diagnostics::single(
            source
                .diag(
                    &[],
                    "the config must be a mapping of keys (app, region, image, environments, …)",
                )
                .help("start from examples/movieverse/deploy.yml"),
        ));
    }
    short_forms(&mut value);
    let schema = json_schema();
    let mut problems = Vec::new();
    let mut cut: HashSet<Vec<Seg>> = HashSet::new();
    for _ in 0..MAX_ROUNDS {
        let err = match serde_path_to_error::deserialize::<_, Config>(&value) {
            Ok(config) if problems.is_empty() => return Ok(fill_defaults(config)),
            Ok(_) => break,
            Err(err) => err,
        };
        let path = convert_path(err.path());
        let message = err.inner().to_string();
        let (diagnostic, remove) = if message.starts_with("missing field") {
            // Every required key missing from this mapping at once, not one per run.
            describe_missing(source, &schema, &value, &path, &message)
        } else {
            describe(source, &path, &message)
        };
        let missing_after_cut = message.starts_with("missing field")
            && cut
                .iter()
                .any(|c| missing_field_path(&path, &message).as_ref() == Some(c));
        // A value that fails only because a part of it was cut (an enum whose variant lost a
        // required sequence) is a consequence of the error already reported there.
        let around_cut = cut
            .iter()
            .any(|c| c.len() > path.len() && c.starts_with(&path));
        if !missing_after_cut && !around_cut {
            problems.push(diagnostic);
        }
        // Cut what the error is about, or, for errors about a whole struct (missing keys),
        // the struct itself. A sequence item is not removed (indexes would shift): the whole
        // sequence is.
        let mut remove = remove;
        if let Some(pos) = remove.iter().position(|s| matches!(s, Seg::Index(_))) {
            remove.truncate(pos);
        }
        if remove.is_empty() || !remove_path(&mut value, &remove) {
            break;
        }
        cut.insert(remove);
    }
    // What remains may still make a config (cut keys were unknown or had defaults): then the
    // semantic checks run too, so the user sees those problems in the same run. Problems about
    // a cut value, inside it, or about an object that contains it are left out: the cut value
    // is already reported, and its absence would cause false ones ("no canary schedule").
    if let Ok(partial) = serde_json::from_value::<Config>(value).map(fill_defaults) {
        let paths: Vec<String> = cut.iter().map(|c| path_string(c)).collect();
        let related = |a: &str, b: &str| {
            a == b
                || [".", "["]
                    .iter()
                    .any(|sep| a.starts_with(&format!("{b}{sep}")))
        };
        problems.extend(
            validate::validate(&partial, source)
                .into_iter()
                .filter(|d| {
                    let p = d.path.clone().unwrap_or_default();
                    !paths.iter().any(|c| related(&p, c) || related(c, &p))
                }),
        );
    }
    Err(Diagnostics(problems).sorted())
}

/// Defaults that depend on other keys: the container is named after the app.
fn fill_defaults(mut config: Config) -> Config {
    if config.container.name.is_empty() {
        config.container.name.clone_from(&config.app);
    }
    // On ECS an analysis that names no metric judges the ALB's (the spec's three).
    for env in config.environments.values_mut() {
        let analysis = match (env.target, &mut env.strategy) {
            (Target::Ecs, Strategy::BlueGreen(b)) => b.analysis.as_deref_mut(),
            (Target::Ecs, Strategy::Canary(c)) => Some(&mut c.analysis),
            _ => None,
        };
        if let Some(a) = analysis
            && a.metrics.is_empty()
        {
            a.metrics = defaults::alb_metrics();
        }
    }
    config
}

/// Short forms accepted for readability: `strategy: rolling` is `strategy: {rolling: {}}`
/// (rolling is the only strategy whose every setting has a default).
fn short_forms(value: &mut serde_json::Value) {
    let Some(envs) = value
        .get_mut("environments")
        .and_then(serde_json::Value::as_object_mut)
    else {
        return;
    };
    for env in envs.values_mut() {
        if let Some(strategy) = env.get_mut("strategy")
            && strategy.as_str() == Some("rolling")
        {
            *strategy = serde_json::json!({"rolling": {}});
        }
    }
}

/// The schema of the value at `path`, through references, options and variants.
fn schema_at<'a>(
    root: &'a serde_json::Value,
    mut node: &'a serde_json::Value,
    path: &[Seg],
) -> Option<&'a serde_json::Value> {
    fn resolve<'a>(
        root: &'a serde_json::Value,
        mut n: &'a serde_json::Value,
    ) -> &'a serde_json::Value {
        for _ in 0..32 {
            match n.get("$ref").and_then(serde_json::Value::as_str) {
                Some(r) => match r
                    .strip_prefix("#/$defs/")
                    .and_then(|d| root["$defs"].get(d))
                {
                    Some(next) => n = next,
                    None => break,
                },
                None => break,
            }
        }
        n
    }
    fn step<'a>(
        root: &'a serde_json::Value,
        n: &'a serde_json::Value,
        seg: &Seg,
        depth: usize,
    ) -> Option<&'a serde_json::Value> {
        let n = resolve(root, n);
        if depth > 8 {
            return None;
        }
        let direct = match seg {
            Seg::Key(k) => n
                .get("properties")
                .and_then(|p| p.get(k))
                .or_else(|| n.get("additionalProperties").filter(|a| a.is_object())),
            Seg::Index(_) => n.get("items"),
        };
        if direct.is_some() {
            return direct;
        }
        ["anyOf", "oneOf", "allOf"]
            .iter()
            .filter_map(|k| n.get(*k).and_then(serde_json::Value::as_array))
            .flatten()
            .find_map(|alt| step(root, alt, seg, depth + 1))
    }
    for seg in path {
        node = step(root, node, seg, 0)?;
    }
    Some(resolve(root, node))
}

/// The required keys of an object schema (or of the object alternative of an option).
fn required_keys(root: &serde_json::Value, schema: &serde_json::Value) -> Vec<String> {
    let direct: Vec<String> = schema
        .get("required")
        .and_then(serde_json::Value::as_array)
        .map(|r| {
            r.iter()
                .filter_map(|k| k.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if !direct.is_empty() {
        return direct;
    }
    ["anyOf", "oneOf"]
        .iter()
        .filter_map(|k| schema.get(*k).and_then(serde_json::Value::as_array))
        .flatten()
        .filter_map(|alt| schema_at(root, alt, &[]))
        .map(|alt| required_keys(root, alt))
        .find(|r| !r.is_empty())
        .unwrap_or_default()
}

/// A missing-key error, widened to every required key this mapping lacks.
fn describe_missing(
    source: &Source,
    schema: &serde_json::Value,
    value: &serde_json::Value,
    path: &[Seg],
    message: &str,
) -> (Diagnostic, Vec<Seg>) {
    let first = between_backticks(message).unwrap_or_default();
    let mut here = value;
    for seg in path {
        here = match seg {
            Seg::Key(k) => &here[k.as_str()],
            Seg::Index(i) => &here[*i],
        };
    }
    let mut missing: Vec<String> = schema_at(schema, schema, path)
        .map(|s| required_keys(schema, s))
        .unwrap_or_default()
        .into_iter()
        .filter(|k| here.get(k).is_none())
        .collect();
    if !missing.contains(&first) {
        missing.insert(0, first);
    }
    if missing.len() == 1 {
        return describe(source, path, message);
    }
    let list = missing
        .iter()
        .map(|k| format!("`{k}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let d = source
        .diag(path, format!("missing required keys {list}"))
        .help(format!(
            "add {} here; `movieverse-deploy schema` describes every key",
            missing
                .iter()
                .map(|k| format!("`{k}:`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    (d, path.to_vec())
}

fn convert_path(path: &serde_path_to_error::Path) -> Vec<Seg> {
    use serde_path_to_error::Segment;
    path.iter()
        .filter_map(|seg| match seg {
            Segment::Seq { index } => Some(Seg::Index(*index)),
            Segment::Map { key } => Some(Seg::Key(key.clone())),
            Segment::Enum { variant } => Some(Seg::Key(variant.clone())),
            Segment::Unknown => None,
        })
        .collect()
}

fn missing_field_path(path: &[Seg], message: &str) -> Option<Vec<Seg>> {
    let name = between_backticks(message)?;
    let mut p = path.to_vec();
    p.push(Seg::Key(name));
    Some(p)
}

fn between_backticks(message: &str) -> Option<String> {
    let start = message.find('`')? + 1;
    let len = message[start..].find('`')?;
    Some(message[start..start + len].to_owned())
}

/// Turns a serde error into a diagnostic with a location and advice, and says what to cut.
fn describe(source: &Source, path: &[Seg], message: &str) -> (Diagnostic, Vec<Seg>) {
    if message.starts_with("unknown field") {
        let name = between_backticks(message).unwrap_or_default();
        // serde_path_to_error's path may already end with the unknown key.
        let mut key_path = path.to_vec();
        if key_path.last() != Some(&Seg::Key(name.clone())) {
            key_path.push(Seg::Key(name.clone()));
        }
        let expected = message
            .split_once("expected ")
            .map(|(_, e)| e.replace('`', ""));
        let suggestion = expected.as_deref().and_then(|list| {
            closest(
                &name,
                list.split([',', ' '])
                    .filter(|s| !s.is_empty() && *s != "one" && *s != "of" && *s != "or"),
            )
        });
        let help = match (suggestion, &expected) {
            (Some(s), _) => format!(
                "did you mean `{s}`? ({})",
                expected.clone().unwrap_or_default()
            ),
            (None, Some(list)) => format!("remove it; valid keys here: {list}"),
            (None, None) => "remove it".to_owned(),
        };
        let d = source
            .diag_key(&key_path, format!("unknown key `{name}`"))
            .help(help);
        return (d, key_path);
    }
    if message.starts_with("unknown variant") {
        let name = between_backticks(message).unwrap_or_default();
        let expected = message
            .split_once("expected ")
            .map_or_else(String::new, |(_, e)| {
                e.replace('`', "").replace("one of ", "")
            });
        // An externally tagged enum names its variant as a key: point at the key.
        let (node, whole) = source.root.locate(path);
        let is_key = whole
            && matches!(&node.kind, tree::Kind::Map(e) if e.iter().any(|(k, _, _)| *k == name));
        let d = if is_key {
            let mut key_path = path.to_vec();
            key_path.push(Seg::Key(name.clone()));
            source.diag_key(&key_path, format!("unknown value `{name}`"))
        } else {
            source.diag(path, format!("unknown value `{name}`"))
        };
        return (d.help(format!("use one of: {expected}")), path.to_vec());
    }
    if message.starts_with("missing field") {
        let name = between_backticks(message).unwrap_or_default();
        let d = source
            .diag(path, format!("missing required key `{name}`"))
            .help(format!(
                "add `{name}:` here; `movieverse-deploy schema` describes every key"
            ));
        return (d, path.to_vec());
    }
    if message.contains("unit variant")
        && let Some(Seg::Key(variant)) = path.last()
    {
        let d = source
            .diag(path, format!("`strategy: {variant}` names the strategy without its settings"))
            .help(format!(
                "write it as a mapping: `strategy: {{{variant}: {{…}}}}` with its keys (`movieverse-deploy schema` lists them); only `strategy: rolling` works alone"
            ));
        return (d, path.to_vec());
    }
    let d = source
        .diag(path, describe_type_error(message))
        .help(type_help(message));
    (d, path.to_vec())
}

fn describe_type_error(message: &str) -> String {
    if message.contains("untagged enum CanaryStep") {
        return "a canary step is a weight (a number from 1 to 100) or a pause (`{pause: manual}`, or `{pause: 10m}` with a duration)".to_owned();
    }
    // serde says "invalid type: string \"x\", expected u32"; say it in the file's terms.
    message
        .replace("invalid type: ", "wrong type: found ")
        .replace("u8", "a whole number from 0 to 255")
        .replace("u16", "a whole number from 0 to 65535")
        .replace("u32", "a whole number")
        .replace("u64", "a whole number")
        .replace("a sequence", "a list")
        .replace("map", "mapping")
}

fn type_help(message: &str) -> String {
    if message.contains("untagged enum CanaryStep") {
        return "write for example `steps: [10, 25, {pause: manual}, 50, 75, 100]`".into();
    }
    if (message.contains("type: integer") || message.contains("type: floating point"))
        && message.contains("expected a string")
    {
        let number = between_backticks(message).unwrap_or_default();
        format!("quote it: `\"{number}\"` (as a number, YAML would drop leading zeros)")
    } else if message.contains("expected a sequence") {
        "write a list, for example `[a, b]` or one `- item` per line".into()
    } else if message.contains("expected struct") || message.contains("expected a map") {
        "write a mapping of keys here".into()
    } else if message.contains("string") && message.contains("expected u") {
        "write the number without quotes".into()
    } else {
        "change the value to the expected type; `movieverse-deploy schema` describes every key"
            .into()
    }
}

/// Removes the value at `path`; false if there was nothing to remove.
fn remove_path(value: &mut serde_json::Value, path: &[Seg]) -> bool {
    let Some((last, parents)) = path.split_last() else {
        return false;
    };
    let mut v = value;
    for seg in parents {
        v = match (seg, v) {
            (Seg::Key(k), serde_json::Value::Object(m)) => match m.get_mut(k) {
                Some(n) => n,
                None => return false,
            },
            (Seg::Index(i), serde_json::Value::Array(a)) => match a.get_mut(*i) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, v) {
        (Seg::Key(k), serde_json::Value::Object(m)) => m.shift_remove(k).is_some(),
        _ => false,
    }
}

/// The candidate nearest to `word` by edit distance, if it is plausibly a typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let candidates: Vec<&str> = candidates.into_iter().collect();
    // An abbreviation (`prod` for `production`) is as good a hint as a typo.
    let lower = word.to_lowercase();
    if lower.len() >= 3
        && let Some(shortest) = candidates
            .iter()
            .filter(|c| c.to_lowercase().starts_with(&lower))
            .min_by_key(|c| c.len())
    {
        return Some(shortest);
    }
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word.to_lowercase(), &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The JSON Schema of deploy.yml, for editors (`# yaml-language-server: $schema=…`).
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Config)).expect("the schema serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggestions() {
        assert_eq!(
            closest("stepweight", ["steps", "step_weight", "max_weight"]),
            Some("step_weight")
        );
        assert_eq!(closest("zzz", ["steps", "analysis"]), None);
    }
}
