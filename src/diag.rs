//! User-facing diagnostics for invalid input: what is wrong, where (<file:line:column>), and how
//! to fix it. Every validation layer (config, templates, rendered output) reports through
//! [`Diagnostic`], and [`Diagnostics`] carries all of them at once so the user fixes a file in
//! one pass instead of one error per run.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};

/// A position in a source file, 1-based like every editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// One problem with the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in (deploy.yml, a template, or a rendered artifact).
    pub file: PathBuf,
    /// Where in that file, when known.
    pub position: Option<Position>,
    /// A dotted path into the document (`environments.production.strategy.steps[2]`), when the
    /// problem is about a value rather than about syntax.
    pub path: Option<String>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// The line of source the position points into, for the snippet.
    pub source_line: Option<String>,
}

impl Diagnostic {
    pub fn new(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self {
            file: file.into(),
            position: None,
            path: None,
            message: message.into(),
            help: None,
            source_line: None,
        }
    }

    #[must_use]
    pub fn at(mut self, position: Option<Position>) -> Self {
        self.position = position;
        self
    }

    #[must_use]
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.path = if path.is_empty() { None } else { Some(path) };
        self
    }

    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Drops the source line: for problems about values that may be secrets, the snippet
    /// would print the secret.
    #[must_use]
    pub fn redacted(mut self) -> Self {
        self.source_line = None;
        self
    }

    /// Attaches the source line under the position so the rendering can show a caret.
    #[must_use]
    pub fn with_source(mut self, source: &str) -> Self {
        if let Some(pos) = self.position {
            self.source_line = source
                .lines()
                .nth(pos.line.saturating_sub(1))
                .map(str::to_owned);
        }
        self
    }

    /// `file:line:column`, or just the file when the position is unknown.
    pub fn location(&self) -> String {
        match self.position {
            Some(p) => format!("{}:{}:{}", self.file.display(), p.line, p.column),
            None => self.file.display().to_string(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        write!(f, "  --> {}", self.location())?;
        if let Some(path) = &self.path {
            write!(f, " (at `{path}`)")?;
        }
        writeln!(f)?;
        if let (Some(pos), Some(line)) = (self.position, &self.source_line) {
            let num = pos.line.to_string();
            let pad = " ".repeat(num.len());
            writeln!(f, "{pad} |")?;
            writeln!(f, "{num} | {line}")?;
            // Columns count characters; tabs keep their width so the caret lines up.
            let lead: String = line
                .chars()
                .take(pos.column.saturating_sub(1))
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            writeln!(f, "{pad} | {lead}^")?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in one validation pass. Never empty when returned as an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn single(d: Diagnostic) -> Self {
        Self(vec![d])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    /// Sorted by file and position, so the output reads top to bottom like the file.
    #[must_use]
    pub fn sorted(mut self) -> Self {
        self.0.sort_by(|a, b| {
            (&a.file, a.position, &a.message).cmp(&(&b.file, b.position, &b.message))
        });
        self.0.dedup();
        self
    }

    /// GitHub Actions workflow commands, one `::error file=…,line=…,col=…::` line each.
    pub fn to_annotations(&self) -> String {
        let mut out = String::new();
        for d in &self.0 {
            let mut props = format!("file={}", escape_property(&d.file.display().to_string()));
            if let Some(p) = d.position {
                let _ = write!(props, ",line={},col={}", p.line, p.column);
            }
            let mut msg = d.message.clone();
            if let Some(h) = &d.help {
                let _ = write!(msg, " (help: {h})");
            }
            let _ = writeln!(out, "::error {props}::{}", escape_data(&msg));
        }
        out
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(
            f,
            "\n{n} problem{} found; nothing was changed.",
            if n == 1 { "" } else { "s" }
        )
    }
}

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Converts a byte offset in `source` to a 1-based line and column (in characters).
pub fn position_of_offset(source: &str, offset: usize) -> Position {
    let offset = offset.min(source.len());
    let before = &source[..source.floor_char_boundary(offset)];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    Position { line, column }
}

/// Display helper for paths relative to the current directory when possible, so messages say
/// `examples/movieverse/deploy.yml` rather than an absolute path.
pub fn display_path(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(&cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}

/// An error and its sources, `outer: inner: innermost`, for errors reported as text.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_map_to_lines_and_columns() {
        let src = "a: 1\nbb: 2\n";
        assert_eq!(position_of_offset(src, 0), Position { line: 1, column: 1 });
        assert_eq!(position_of_offset(src, 5), Position { line: 2, column: 1 });
        assert_eq!(position_of_offset(src, 9), Position { line: 2, column: 5 });
    }

    #[test]
    fn display_shows_caret_under_column() {
        let d = Diagnostic::new("deploy.yml", "weight must be within 1..=100, found 0")
            .at(Some(Position {
                line: 2,
                column: 10,
            }))
            .help("use a weight from 1 to 100")
            .with_source("x:\n  steps: [0, 10]\n");
        let s = d.to_string();
        assert!(s.contains("--> deploy.yml:2:10"), "{s}");
        assert!(s.contains("2 |   steps: [0, 10]\n  |          ^"), "{s}");
        assert!(s.contains("= help: use a weight"), "{s}");
    }

    #[test]
    fn annotations_escape_newlines_and_commas() {
        let ds = Diagnostics(vec![
            Diagnostic::new("a,b.yml", "bad\nvalue").at(Some(Position { line: 3, column: 1 })),
        ]);
        assert_eq!(
            ds.to_annotations(),
            "::error file=a%2Cb.yml,line=3,col=1::bad%0Avalue\n"
        );
    }
}
