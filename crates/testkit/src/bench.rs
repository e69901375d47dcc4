//! What the benchmarks share: what a process costs, read from `/proc`
//! (resident memory, now and at its peak, and CPU time: the kernel's own
//! accounting rather than anything the process says about itself), what
//! machine and build a run measured, and rows added to the tables of
//! `BENCHMARKS.md`, so that figures stay next to the command that made
//! them.

use std::{fs, io, path::Path, process::Command};

/// Clock ticks per second in `/proc/<pid>/stat`: Linux's `USER_HZ`, which
/// is 100 on every architecture it exposes to user space.
const TICKS_PER_SECOND: f64 = 100.0;

/// Resident set size of `pid` in kilobytes (`VmRSS`).
pub fn rss_kb(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no VmRSS for process {pid}")))
}

/// The most resident memory `pid` has held, in kilobytes (`VmHWM`): since
/// it started, or since the last [`reset_peak_rss`].
pub fn peak_rss_kb(pid: u32) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| io::Error::other(format!("no VmHWM for process {pid}")))
}

/// Sets the peak resident memory of `pid` back to what it holds now
/// (Linux's `clear_refs` value 5), so that [`peak_rss_kb`] afterwards
/// tells the most held since this call.
pub fn reset_peak_rss(pid: u32) -> io::Result<()> {
    fs::write(format!("/proc/{pid}/clear_refs"), "5")
}

/// What one operation cost a process in resident memory, in megabytes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryCost {
    /// How far its peak rose above what it held before.
    pub peak_rise_mb: f64,
    /// How much more than before it still holds.
    pub held_after_mb: f64,
}

/// Starts measuring what `pid` holds: resets its peak and returns its
/// resident memory now, for [`memory_cost`] afterwards.
pub fn memory_before(pid: u32) -> io::Result<u64> {
    reset_peak_rss(pid)?;
    rss_kb(pid)
}

/// What `pid` gained since [`memory_before`] returned `before_kb`.
pub fn memory_cost(pid: u32, before_kb: u64) -> io::Result<MemoryCost> {
    let mb = |kb: u64| kb as f64 / 1024.0;
    let peak = peak_rss_kb(pid)?;
    let held = rss_kb(pid)?;
    Ok(MemoryCost {
        peak_rise_mb: mb(peak.saturating_sub(before_kb)),
        held_after_mb: mb(held.saturating_sub(before_kb)),
    })
}

/// The build a benchmark that starts `binary` measures: `variable` names
/// another one (an older build, measured side by side), else it is the
/// `default` binary beside the benchmark's own; `BENCH_LABEL` names it in
/// the rows, else the working tree's commit.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The binary to start.
    pub binary: std::path::PathBuf,
    /// Which build it is, for the rows.
    pub label: String,
    /// The command that ran the benchmark, as the rows quote it.
    pub command: String,
}

impl Measured {
    /// Adds a row for one run of this build to the table `header` under
    /// `heading` in `BENCH_OUTPUT` (by default `BENCHMARKS.md`; `-`:
    /// nowhere): the date and the build, then `cells`, then what the run
    /// cost in `memory`, the `load` read before it, the machine and the
    /// command.
    pub fn record_memory(
        &self,
        heading: &str,
        header: &str,
        cells: &[String],
        memory: &MemoryCost,
        load: &str,
    ) -> io::Result<()> {
        let path = std::env::var("BENCH_OUTPUT").unwrap_or_else(|_| "BENCHMARKS.md".to_owned());
        if path == "-" {
            return Ok(());
        }
        let row = format!(
            "| {} | {} | {} | {:.1} | {:.1} | {load} | {} | `{}` |",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
            self.label,
            cells.join(" | "),
            memory.peak_rise_mb,
            memory.held_after_mb,
            machine(),
            self.command,
        );
        append_row(Path::new(&path), heading, header, &row)
    }
}

/// See [`Measured`]: `make_target` is the `make` target that runs the
/// benchmark.
pub fn measured(variable: &str, default: &str, make_target: &str) -> io::Result<Measured> {
    let named = std::env::var_os(variable);
    let binary = match &named {
        Some(path) => std::path::PathBuf::from(path),
        None => std::env::current_exe()?.with_file_name(default),
    };
    if !binary.is_file() {
        return Err(io::Error::other(format!(
            "no {default} binary at {} (build it, or set {variable})",
            binary.display()
        )));
    }
    let label = std::env::var("BENCH_LABEL").unwrap_or_else(|_| build());
    let mut command = format!("make {make_target}");
    if let Some(path) = named {
        command.push_str(&format!(" {variable}={}", path.to_string_lossy()));
    }
    Ok(Measured {
        binary,
        label,
        command,
    })
}

/// CPU time (user + system) `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_seconds(&stat).ok_or_else(|| io::Error::other(format!("unreadable /proc/{pid}/stat")))
}

fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    // The command name (field 2) may hold spaces and parentheses: count
    // fields from the last ')'. utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / TICKS_PER_SECOND)
}

/// Cores and total memory of this machine, for the results table.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory_gib = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("MemTotal:"))
                .and_then(|value| {
                    value
                        .trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<f64>()
                        .ok()
                })
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!("{cores} cores, {memory_gib:.1} GiB")
}

/// The 1-minute load average, to tell a quiet machine from a busy one.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|load| load.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".to_owned())
}

/// The commit the working tree is at, short, with `+` when it has changes
/// (other than to BENCHMARKS.md, which the benchmarks write themselves:
/// of two builds run in turn, the second is not marked for the first's
/// rows).
pub fn build() -> String {
    build_in(Path::new("."))
}

/// [`build`] of the working tree that holds `dir`.
fn build_in(dir: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .current_dir(dir)
            .args(args)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let Some(commit) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "?".to_owned();
    };
    let dirty = git(&[
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        ":/",
        ":(top,exclude)BENCHMARKS.md",
    ])
    .is_some_and(|changes| !changes.is_empty());
    if dirty { format!("{commit}+") } else { commit }
}

/// Adds `row` at the end of the table in `path` whose first line is
/// `header`, creating the file or starting the table (under `heading`) when
/// missing; text after the table stays where it is.
pub fn append_row(path: &Path, heading: &str, header: &str, row: &str) -> io::Result<()> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err),
    };
    fs::write(path, insert_row(&text, heading, header, row))
}

fn insert_row(text: &str, heading: &str, header: &str, row: &str) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    match lines.iter().position(|line| *line == header) {
        Some(start) => {
            let end = lines[start..]
                .iter()
                .position(|line| !line.starts_with('|'))
                .map_or(lines.len(), |offset| start + offset);
            lines.insert(end, row);
        }
        None => {
            let rule = rule(header);
            if !lines.is_empty() {
                lines.push("");
            }
            if !heading.is_empty() {
                lines.extend([heading, ""]);
            }
            lines.extend([header, rule.as_str(), row]);
            let mut out = lines.join("\n");
            out.push('\n');
            return out;
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// `| --- | --- |` with as many columns as `header`.
fn rule(header: &str) -> String {
    let columns = header.matches('|').count().saturating_sub(1);
    format!("|{}", " --- |".repeat(columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "| date | figure |";

    /// A change to BENCHMARKS.md, which the benchmarks write, leaves the
    /// build unmarked; a change to anything else marks it.
    #[test]
    fn the_build_is_marked_for_changes_but_not_for_benchmark_rows() {
        let repo = tempfile::tempdir().expect("a directory");
        let git = |args: &[&str]| {
            let status = std::process::Command::new("git")
                .current_dir(repo.path())
                .args([
                    "-c",
                    "user.name=bench",
                    "-c",
                    "user.email=bench@example.com",
                ])
                .args(args)
                .output()
                .expect("git runs");
            assert!(status.status.success(), "git {args:?}: {status:?}");
        };
        git(&["init", "-q"]);
        std::fs::create_dir(repo.path().join("src")).expect("src");
        std::fs::write(repo.path().join("BENCHMARKS.md"), "rows\n").expect("write");
        std::fs::write(repo.path().join("src/lib.rs"), "code\n").expect("write");
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "first"]);
        let clean = build_in(repo.path());
        assert!(!clean.is_empty() && !clean.ends_with('+'), "{clean}");
        std::fs::write(repo.path().join("BENCHMARKS.md"), "rows\nmore\n").expect("write");
        // Asked from below the top, as a tool run in a subdirectory would.
        assert_eq!(build_in(&repo.path().join("src")), clean);
        std::fs::write(repo.path().join("src/lib.rs"), "changed\n").expect("write");
        assert_eq!(build_in(repo.path()), format!("{clean}+"));
    }

    #[test]
    fn rows_go_at_the_end_of_their_table_and_text_after_it_stays() {
        let text = format!("# Benchmarks\n\n{HEADER}\n| --- | --- |\n| a | 1 |\n\n## Notes\n");
        let out = insert_row(&text, "## Ours", HEADER, "| b | 2 |");
        assert_eq!(
            out,
            format!("# Benchmarks\n\n{HEADER}\n| --- | --- |\n| a | 1 |\n| b | 2 |\n\n## Notes\n")
        );
    }

    #[test]
    fn a_missing_table_is_started_under_its_heading() {
        let out = insert_row("# Benchmarks\n", "## Ours", HEADER, "| b | 2 |");
        assert_eq!(
            out,
            format!("# Benchmarks\n\n## Ours\n\n{HEADER}\n| --- | --- |\n| b | 2 |\n")
        );
    }

    #[test]
    fn reads_user_and_system_time_after_an_odd_name() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 5 0 0";
        assert_eq!(parse_cpu_seconds(stat), Some(3.0));
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(rss_kb(pid).expect("rss") > 0);
        reset_peak_rss(pid).expect("reset the peak");
        assert!(peak_rss_kb(pid).expect("peak") > 0);
        assert!(cpu_seconds(pid).expect("cpu") >= 0.0);
    }
}
