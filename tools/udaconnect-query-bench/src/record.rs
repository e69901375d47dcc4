//! The run's report: the checks that the answers agree, the targets met
//! or missed, the table, and the "UdaConnect connections query" section of
//! BENCHMARKS.md (rows added to its table, the latest plan replaced).

use std::{fs, path::Path};

use serde_json::{Value, json};
use udaconnect_domain::PersonId;

use crate::sample::Measurement;

const SECTION: &str = "## UdaConnect connections query";
const PLAN: &str = "### v2 query plan, 30 days (latest run)";
const HEADER: &str = "| date | commit | machine | load avg (start / end) | data | question | asked | persons | p50 ms | p99 ms | rows: median / max | bytes: median / max | target | met | command |\n\
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |";
const INTRO: &str =
    "`make bench-queries` (`tools/udaconnect-query-bench`) starts its own PostgreSQL
with PostGIS, creates the schema with `udaconnect migrate`, loads a made-up
June 2020 conference with `udaconnect generate` (`BENCH_PERSONS`, default
1,000; `BENCH_LOCATIONS`, 1,000,000; 50 venues; seed 2020), runs `ANALYZE`,
reads the tables and indexes into shared buffers (`pg_prewarm`, as a
server that has been answering for a while has them), checkpoints and
starts `udaconnect api` on it twice: with `UDACONNECT_REPLICA=true`,
answering the connection queries from its in-memory replica of the
locations (caught up with the database before every query), and with
`UDACONNECT_REPLICA=false` (the default), answering them in SQL. For `BENCH_SAMPLE` (20) persons picked by a fixed
seed it times, one request after another after a few warm-up requests, on
each: the original's endpoint and v2 over HTTP (v2 with `limit=1000`,
every page), for 2020-06-10..2020-06-11 and 2020-06-01..2020-06-30 at 5 m,
and v2 with `within=10m` for the month; the embedded store with the same
data, in the benchmark's own process through the `Store` trait (the
binary's embedded store holds only its demo conference, so it is not
behind HTTP here); and the original's own query, its exact SQL text, one
statement per own location as `services.py` ran it, on the same data with
the original's btree on `creation_time` (migration 0002 drops it; the
benchmark creates it for the replay and drops it after). The original
takes far longer than a run can wait for the month (each statement scans
every location of June), so only the first `BENCH_ORIGINAL_MONTH` (3)
persons are replayed there, and any person's replay stops at
`BENCH_ORIGINAL_BUDGET` (30 s): its time is then projected from the
statements run to all of its own locations, and the row says so. p99 is the nearest
rank: with 20 persons, the slowest. Rows are the original's rows or v2's
contacts per answer. The run fails unless every measurement has answers
and the original, its endpoint, v2 (both ways) and the embedded store agree
(the same other locations, the same persons met). Load average: the 1-minute figure
at the start and at the end of the run.

Targets, for the API as it runs by default: v2 1-day p99 ≤ 20 ms and
≥ 5× faster than the original at p50; the original's endpoint over 30 days
p99 ≤ 1 s; v2 30-day p99 ≤ 150 ms; v2 `within=10m` p99 ≤ 50 ms.";

/// A target: what it asks, the figure, and whether it was met.
#[derive(Debug, Clone)]
pub struct TargetResult {
    /// The measurement it is about.
    pub key: &'static str,
    /// Its question.
    pub range: &'static str,
    /// What it asks.
    pub name: String,
    /// What was measured.
    pub measured: String,
    /// Met.
    pub met: bool,
}

/// Everything a run measured.
pub struct Report {
    /// When it started (UTC).
    pub date: String,
    /// Cores and memory.
    pub machine: String,
    /// 1-minute load average at the start and at the end.
    pub load: String,
    /// The build's commit.
    pub commit: String,
    /// The command that makes this run.
    pub command: String,
    /// The data set.
    pub data: String,
    /// Every measurement.
    pub measurements: Vec<Measurement>,
    /// `EXPLAIN (ANALYZE, BUFFERS)` of the v2 query.
    pub plan: String,
    /// Whose question the plan is of.
    pub plan_person: PersonId,
}

impl Report {
    fn find(&self, key: &str, range: &str) -> Option<&Measurement> {
        self.measurements
            .iter()
            .find(|m| m.key == key && m.range.key == range)
    }

    /// Each check and whether it passed.
    pub fn checks(&self) -> Vec<(String, bool)> {
        let mut checks: Vec<(String, bool)> = self
            .measurements
            .iter()
            .map(|m| {
                (
                    format!("{} {}: some person has answers", m.key, m.range.key),
                    m.answered(),
                )
            })
            .collect();
        let same = |a: &str, b: &str, range: &str, locations: bool| -> Option<(String, bool)> {
            let what = if locations {
                "the same other locations"
            } else {
                "the same persons met"
            };
            let name = format!("{a} and {b} {range}: {what} for every person asked both");
            let (Some(a), Some(b)) = (self.find(a, range), self.find(b, range)) else {
                return Some((name, false));
            };
            // An answer cut short at its time budget has only some rows.
            let whole: Vec<_> = b.samples.iter().filter(|s| s.projected.is_none()).collect();
            if whole.is_empty() {
                return None;
            }
            let agree = whole.iter().all(|theirs| {
                a.of(theirs.person).is_some_and(|ours| {
                    if locations {
                        ours.locations == theirs.locations
                    } else {
                        ours.persons == theirs.persons
                    }
                })
            });
            Some((name, agree))
        };
        for range in ["1d", "30d"] {
            checks.extend(same("compat", "v2", range, false));
            checks.extend(same("compat", "original", range, true));
            checks.extend(same("compat", "embedded_compat", range, true));
            checks.extend(same("v2", "embedded_v2", range, false));
            checks.extend(same("compat", "sql_compat", range, true));
            checks.extend(same("v2", "sql_v2", range, false));
        }
        checks.extend(same(
            "v2_within_10m",
            "embedded_v2_within_10m",
            "30d",
            false,
        ));
        checks.extend(same("v2_within_10m", "sql_v2_within_10m", "30d", false));
        checks
    }

    /// The targets, each met or missed.
    pub fn targets(&self) -> Vec<TargetResult> {
        let p99 = |key: &'static str, range: &'static str, limit_ms: f64, name: &str| {
            let measured = self.find(key, range).map(Measurement::p99_ms);
            TargetResult {
                key,
                range,
                name: name.to_owned(),
                measured: measured.map_or_else(|| "—".to_owned(), |ms| format!("{ms} ms")),
                met: measured.is_some_and(|ms| ms <= limit_ms),
            }
        };
        let speedup = match (self.find("original", "1d"), self.find("v2", "1d")) {
            (Some(original), Some(v2)) if v2.p50_ms() > 0.0 => {
                Some(original.p50_ms() / v2.p50_ms())
            }
            _ => None,
        };
        vec![
            p99("v2", "1d", 20.0, "p99 ≤ 20 ms"),
            TargetResult {
                key: "v2",
                range: "1d",
                name: "≥ 5× the original at p50".to_owned(),
                measured: speedup.map_or_else(|| "—".to_owned(), |x| format!("{x:.1}×")),
                met: speedup.is_some_and(|x| x >= 5.0),
            },
            p99("compat", "30d", 1000.0, "p99 ≤ 1 s"),
            p99("v2", "30d", 150.0, "p99 ≤ 150 ms"),
            p99("v2_within_10m", "30d", 50.0, "p99 ≤ 50 ms"),
        ]
    }

    fn target_cells(&self, m: &Measurement) -> (String, String) {
        let targets: Vec<TargetResult> = self
            .targets()
            .into_iter()
            .filter(|t| t.key == m.key && t.range == m.range.key)
            .collect();
        if targets.is_empty() {
            return (String::new(), String::new());
        }
        let names = targets
            .iter()
            .map(|t| format!("{} ({})", t.name, t.measured))
            .collect::<Vec<_>>()
            .join("; ");
        let met = targets
            .iter()
            .map(|t| if t.met { "met" } else { "missed" })
            .collect::<Vec<_>>()
            .join("; ");
        (names, met)
    }

    /// The figures of one measurement, as table cells.
    fn cells(&self, m: &Measurement) -> Vec<String> {
        let (rows_median, rows_max) = m.rows();
        let (target, met) = self.target_cells(m);
        let asked = match m.projected() {
            Some((run, of)) => format!(
                "{} (cut at its time budget: {run} of {of} statements run, time projected to all {of}, rows of those run)",
                m.label
            ),
            None => m.label.to_owned(),
        };
        vec![
            m.range.label.to_owned(),
            asked,
            m.samples.len().to_string(),
            format!("{:.2}", m.p50_ms()),
            format!("{:.2}", m.p99_ms()),
            format!("{rows_median} / {rows_max}"),
            m.bytes().map_or_else(
                || "—".to_owned(),
                |(median, max)| format!("{median} / {max}"),
            ),
            target,
            met,
        ]
    }

    /// The table printed at the end of a run.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{} · {} · commit {} · load {} · {}\n\n| question | asked | persons | p50 ms | p99 ms | rows: median / max | bytes: median / max | target | met |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
            self.date, self.machine, self.commit, self.load, self.data
        );
        out.insert_str(
            0,
            "The embedded store is measured in this process through the Store trait \
             (`udaconnect api` without DATABASE_URL serves only its demo conference).\n",
        );
        for m in &self.measurements {
            out.push_str(&format!("| {} |\n", self.cells(m).join(" | ")));
        }
        out.push_str("\nchecks:\n");
        for (name, passed) in self.checks() {
            out.push_str(&format!(
                "  {} {name}\n",
                if passed { "ok    " } else { "FAILED" }
            ));
        }
        out
    }

    /// This run's rows of the BENCHMARKS.md table: a question asked of
    /// nobody (`BENCH_ORIGINAL_MONTH=0`) measured nothing and has none.
    fn rows(&self) -> String {
        self.measurements
            .iter()
            .filter(|m| !m.samples.is_empty())
            .map(|m| {
                let mut cells = vec![
                    self.date.clone(),
                    format!("`{}`", self.commit),
                    self.machine.clone(),
                    self.load.clone(),
                    self.data.clone(),
                ];
                cells.extend(self.cells(m));
                cells.push(format!("`{}`", self.command));
                format!("| {} |\n", cells.join(" | "))
            })
            .collect()
    }

    fn plan_block(&self) -> String {
        format!(
            "{PLAN}\n\n`EXPLAIN (ANALYZE, BUFFERS)` of the v2 query in SQL, as the API sends it with `UDACONNECT_REPLICA=false` (`apps/udaconnect/udaconnect-store/src/pg/sql.rs`, `CONNECTIONS`), for person {}, 2020-06-01..2020-06-30, 5 m, at {} (`{}`):\n\n```text\n{}\n```\n",
            self.plan_person, self.date, self.commit, self.plan
        )
    }

    /// Adds the rows to the section of `path` (creating the section if it
    /// is not there) and replaces its plan with this run's.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = fs::read_to_string(path).unwrap_or_default();
        let rows = self.rows();
        let updated = match text.find(&format!("\n{SECTION}\n")) {
            None => {
                let before = text.trim_end();
                format!(
                    "{before}{}{SECTION}\n\n{INTRO}\n\n{HEADER}\n{rows}\n{}",
                    if before.is_empty() { "" } else { "\n\n" },
                    self.plan_block()
                )
            }
            Some(at) => {
                let body_start = at + 1;
                let end = text[body_start + SECTION.len()..]
                    .find("\n## ")
                    .map_or(text.len(), |i| body_start + SECTION.len() + i + 1);
                let section = &text[body_start..end];
                let table = section
                    .find(&format!("\n{PLAN}\n"))
                    .map_or(section, |i| &section[..i]);
                let rest = &text[end..];
                format!(
                    "{}{}\n{rows}\n{}{}{}",
                    &text[..body_start],
                    table.trim_end(),
                    self.plan_block(),
                    if rest.is_empty() { "" } else { "\n" },
                    rest
                )
            }
        };
        fs::write(path, updated)?;
        Ok(())
    }
}

impl TargetResult {
    /// For the `RESULT` line.
    pub fn json(&self) -> Value {
        json!({
            "measurement": self.key,
            "range": self.range,
            "target": self.name,
            "measured": self.measured,
            "met": self.met,
        })
    }
}
