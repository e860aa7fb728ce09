//! #14's fault matrices: every (call, fault) cell run through the real binary, a few at a
//! time, then the table (call × fault → outcome) checked against ARCHITECTURE.md.

/// The back-off of the binary in the fault matrices' runs (`MVD_RETRY_BASE`), a tenth of the
/// real one's, 100 ms to 1.6 s: the same retries, and a fault that lasts for good is given up
/// after 3.1 s instead of 31 s.
pub const RETRY_BASE: (&str, &str) = ("MVD_RETRY_BASE", "100ms");

/// One cell's outcome: the words the table shows, and what went wrong when it neither
/// completed nor failed safe (the run's output, for the failure message).
pub struct Cell {
    pub words: String,
    pub wrong: Option<String>,
}

impl Cell {
    /// A cell whose words start with "promoted" (or "completed") or "failed safe" is good;
    /// any other is wrong, with `dump` (the runs' output) to show why.
    pub fn judged(words: String, dump: impl FnOnce() -> String) -> Self {
        let good = ["promoted", "completed", "failed safe"]
            .iter()
            .any(|w| words.starts_with(w));
        let wrong = (!good).then(|| format!("{words}\n{}", dump()));
        Self { words, wrong }
    }
}

/// Runs `cell(row, column)` for every cell, `at_once` together (threads; the cells wait
/// mostly), the last column first: the faults that last for good take longest, and start
/// first. Each thread takes the next cell as soon as its own is done (no waves that wait for
/// their slowest cell).
pub fn run<C: Send, F>(rows: usize, columns: usize, at_once: usize, cell: F) -> Vec<Vec<C>>
where
    F: Fn(usize, usize) -> C + Sync,
{
    let order: Vec<(usize, usize)> = (0..columns)
        .rev()
        .flat_map(|c| (0..rows).map(move |r| (r, c)))
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: std::sync::Mutex<Vec<((usize, usize), C)>> = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..at_once.clamp(1, order.len().max(1)) {
            s.spawn(|| {
                while let Some(&(r, c)) =
                    order.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
                {
                    let out = cell(r, c);
                    done.lock().unwrap().push(((r, c), out));
                }
            });
        }
    });
    let done = done.into_inner().unwrap();
    let mut table: Vec<Vec<Option<C>>> = (0..rows)
        .map(|_| (0..columns).map(|_| None).collect())
        .collect();
    for ((r, c), cell) in done {
        table[r][c] = Some(cell);
    }
    table
        .into_iter()
        .map(|row| row.into_iter().map(Option::unwrap).collect())
        .collect()
}

/// The `table` of cells (rows named by `rows`, columns by `faults`) with its count line,
/// printed; fails with every wrong cell's story; then checks (or, with `MVD_UPDATE_DOCS=1`,
/// writes) ARCHITECTURE.md's section `section`. `command` regenerates it.
pub fn check(section: &str, rows: &[&str], faults: &[&str], table: &[Vec<Cell>], command: &str) {
    use std::fmt::Write as _;
    let mut text = format!(
        "| call | {} |\n|---|{}\n",
        faults.join(" | "),
        "---|".repeat(faults.len())
    );
    for (call, row) in rows.iter().zip(table) {
        let _ = write!(text, "| {call} |");
        for cell in row {
            let _ = write!(text, " {} |", cell.words);
        }
        text.push('\n');
    }
    let all: Vec<&Cell> = table.iter().flatten().collect();
    let wrong: Vec<&str> = all.iter().filter_map(|c| c.wrong.as_deref()).collect();
    let _ = writeln!(
        text,
        "\n{} faults injected through the real binary, {} completed or failed safe (`{command}`).",
        all.len(),
        all.len() - wrong.len()
    );
    eprintln!("{text}");
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    super::doc_section(section, &text, command);
}

/// Where a kill as a step begins ([`kill_at_step`]) leaves something the step changes (traffic
/// weights, the image): as it was before the step, for the kill lands before the step's first
/// platform call leaves; shown with `show`.
pub fn as_before<T: PartialEq + std::fmt::Debug>(
    step: u32,
    seen: &T,
    before: &T,
    show: impl Fn(&T) -> String,
) -> String {
    assert!(
        seen == before,
        "killed at step {step}: {seen:?}, not what was before the step ({before:?}): the step acted before its line was written"
    );
    show(seen)
}

/// Kills the real binary (`cmd`, spawned here) with SIGKILL as step `step` of `of` begins,
/// before the step's first platform call leaves ([`super::gate`]): "step/of (the step's
/// words)", and all it wrote on stderr.
pub fn kill_at_step(cmd: &mut std::process::Command, step: u32, of: u32) -> (String, String) {
    let (code, seen) = super::gate::kill_at(cmd, &format!("step {step}/{of}:"));
    assert_eq!(code, None, "killed at step {step}: {seen}");
    let words = seen
        .lines()
        .find_map(|l| {
            l.split_once(&format!("step {step}/{of}: "))
                .map(|(_, t)| t.to_owned())
        })
        .unwrap_or_default();
    (format!("{step}/{of} ({words})"), seen)
}

/// A kill table: `row(step)` for every step of `of` (a bed each, together), under `header`,
/// with its count line; checked against (or, with `MVD_UPDATE_DOCS=1`, written to)
/// ARCHITECTURE.md's section `section`. `command` regenerates it.
pub fn kill_table<const N: usize, F>(
    section: &str,
    header: [&str; N],
    of: u32,
    command: &str,
    row: F,
) where
    F: Fn(u32) -> [String; N] + Sync,
{
    use std::fmt::Write as _;
    let row = &row;
    let rows: Vec<[String; N]> = std::thread::scope(|s| {
        let handles: Vec<_> = (1..=of).map(|step| s.spawn(move || row(step))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut table = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(N));
    for r in &rows {
        let _ = writeln!(table, "| {} |", r.join(" | "));
    }
    let _ = writeln!(table, "\n{} kill points (`{command}`).", rows.len());
    super::doc_section(section, &table, command);
}

/// "promoted", or "promoted after N retries" as a run's stderr counts them (`retrying in`),
/// and ", credentials renewed" when it renewed its role's credentials after AWS said they
/// expired.
pub fn promoted_after(stderr: &str) -> String {
    let renewed = super::codedeploy::renewed(stderr);
    match stderr.matches("retrying in").count() {
        0 => format!("promoted{renewed}"),
        1 => format!("promoted after 1 retry{renewed}"),
        n => format!("promoted after {n} retries{renewed}"),
    }
}
