//! Scenario results and RELIABILITY.md.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;

/// A figure that must hold (usually: must be 0).
#[derive(Debug, Clone)]
pub struct Check {
    /// What is counted.
    pub name: String,
    /// The measured value.
    pub value: String,
    /// What it must be.
    pub must: String,
    /// Whether it holds.
    pub ok: bool,
}

impl Check {
    /// A count that must be 0.
    pub fn zero(name: &str, value: usize) -> Check {
        Check {
            name: name.to_owned(),
            value: value.to_string(),
            must: "0".into(),
            ok: value == 0,
        }
    }

    /// Any other condition.
    pub fn holds(name: &str, value: String, must: &str, ok: bool) -> Check {
        Check {
            name: name.to_owned(),
            value,
            must: must.to_owned(),
            ok,
        }
    }
}

/// One scenario's outcome.
#[derive(Debug, Clone)]
pub struct Section {
    /// Short id (`seed`, `burst`, …).
    pub id: String,
    /// Heading.
    pub title: String,
    /// Figures, in order.
    pub figures: Vec<(String, String)>,
    /// Must-hold figures.
    pub checks: Vec<Check>,
    /// Free notes (what was observed, what is different from AWS).
    pub notes: Vec<String>,
    /// Wall time.
    pub seconds: f64,
    /// Set when the scenario could not run to its end.
    pub error: Option<String>,
}

impl Section {
    /// An empty section.
    pub fn new(id: &str, title: &str) -> Section {
        Section {
            id: id.to_owned(),
            title: title.to_owned(),
            figures: Vec::new(),
            checks: Vec::new(),
            notes: Vec::new(),
            seconds: 0.0,
            error: None,
        }
    }

    /// A scenario that failed to run.
    pub fn errored(id: &str, e: &anyhow::Error) -> Section {
        let mut s = Section::new(id, id);
        s.error = Some(format!("{e:#}"));
        s
    }

    /// Adds a figure.
    pub fn figure(&mut self, name: &str, value: String) {
        self.figures.push((name.to_owned(), value));
    }

    /// Adds a must-hold figure.
    pub fn check(&mut self, c: Check) {
        self.checks.push(c);
    }

    /// Adds a note.
    pub fn note(&mut self, n: String) {
        self.notes.push(n);
    }

    /// Every check holds and it ran to the end.
    pub fn ok(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.ok)
    }

    /// For the terminal.
    pub fn console(&self) -> String {
        let mut out = format!("[proof] {} ({:.0} s)\n", self.title, self.seconds);
        for (k, v) in &self.figures {
            let _ = writeln!(out, "  {k}: {v}");
        }
        for c in &self.checks {
            let _ = writeln!(
                out,
                "  [{}] {}: {} (must be {})",
                if c.ok { "ok" } else { "BROKEN" },
                c.name,
                c.value,
                c.must
            );
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        if let Some(e) = &self.error {
            let _ = writeln!(out, "  ERROR: {e}");
        }
        out
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        if let Some(e) = &self.error {
            let _ = writeln!(out, "**Did not run to its end:** `{e}`\n");
        }
        if !self.figures.is_empty() {
            out.push_str("| figure | value |\n|---|---|\n");
            for (k, v) in &self.figures {
                let _ = writeln!(out, "| {k} | {v} |");
            }
            out.push('\n');
        }
        if !self.checks.is_empty() {
            out.push_str("| must hold | measured | must be | |\n|---|---|---|---|\n");
            for c in &self.checks {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    c.name,
                    c.value,
                    c.must,
                    if c.ok { "holds" } else { "**BROKEN**" }
                );
            }
            out.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(out, "- {n}");
        }
        if !self.notes.is_empty() {
            out.push('\n');
        }
        let _ = writeln!(out, "_Scenario wall time: {:.0} s._\n", self.seconds);
        out
    }
}

/// About the run.
#[derive(Debug, Clone)]
pub struct Run {
    /// The command that produced the report.
    pub command: String,
    /// Machine description.
    pub machine: String,
    /// Cargo profile of the functions.
    pub profile: String,
    /// Wall time of all scenarios.
    pub wall: f64,
}

/// What each scenario proves and what it does not.
fn meaning(id: &str) -> (&'static str, &'static str) {
    match id {
        "seed" => (
            "the seed's headline on this stack: a gallery of 137 photos is uploaded straight to storage with 6 requests in flight, and every photo's thumbnails and variants exist and its owner was told, within the stated times",
            "AWS latencies: here the API, storage, queues and functions share 2 cores with the load generator (on AWS each runs on its own capacity, so processing parallelises further); the uploads cross no network",
        ),
        "burst" => (
            "under concurrent load, transient faults in every dependency the functions use, duplicate deliveries and processes killed mid-record, no accepted upload is lost, none is left unfinished, none is processed or announced twice, and the only messages in a DLQ are the intended poison files, each with a failed row",
            "AWS's own failure modes (throttling shapes, partial network failures, a Lambda host dying with its whole batch) are stood in for by injected errors and SIGKILL; the emulator's DynamoDB stream does not retry failed batches (AWS does), so notices whose post failed are recovered here by the clients' `resume`, which every client does after a reconnect anyway",
        ),
        "breaker" => (
            "a dependency outage opens the circuit at the configured 5th failure, the backlog waits instead of burning receives (nothing dead-lettered, no row failed), one probe at a time runs after each cool-down, and the backlog drains once the dependency is back",
            "how quickly real SQS redelivers delayed copies at scale, and the breaker row's behaviour under thousands of concurrent readers (see the scale model)",
        ),
        "scale" => (
            "what one image costs in Lambda time and requests, measured on the functions' release-like build, and what that implies for cost and concurrency",
            "Graviton (arm64) speed: timings are x86_64 native builds on this machine; the cost uses list prices and no free tier",
        ),
        _ => ("", ""),
    }
}

/// Writes RELIABILITY.md.
pub fn write(path: &Path, sections: &[Section], run: &Run) -> Result<()> {
    let mut out = String::new();
    out.push_str("# Reliability\n\n");
    out.push_str(
        "Regenerated by `make proof` (not part of `make test`): a local stack (the pinned emulator \
         running `infra/template.yaml` unchanged) with the functions built natively with a \
         release-like profile, driven by `e2e/src/bin/proof` over real photos (a corpus rebuilt \
         reproducibly from a Debian wallpaper package by `bench/proof.sh`). Every figure below is \
         from the last run; nothing is edited by hand.\n\n",
    );
    let _ = writeln!(out, "- command: `{}`", run.command);
    let _ = writeln!(out, "- machine: {}", run.machine);
    let profile = match run.profile.as_str() {
        "local" => "`local`: `release` optimisations (opt-level 3) without LTO, 16 codegen units; the AWS zips use `release`",
        "release" => "`release`, as the AWS zips",
        "dev" => "`dev` (NOT release-like: only the image codecs are optimised; timings are pessimistic)",
        _ => "see Cargo.toml",
    };
    let _ = writeln!(out, "- functions: native x86_64, cargo profile {profile}");
    let _ = writeln!(out, "- scenarios' wall time: {:.1} min\n", run.wall / 60.0);
    out.push_str("| scenario | must-hold figures |\n|---|---|\n");
    for s in sections {
        let held = s.checks.iter().filter(|c| c.ok).count();
        let _ = writeln!(
            out,
            "| [{}](#{}) | {} of {} hold{} |",
            s.title,
            s.id,
            held,
            s.checks.len(),
            if s.error.is_some() {
                ", did not finish"
            } else {
                ""
            }
        );
    }
    out.push('\n');
    for s in sections {
        let (proves, not) = meaning(&s.id);
        let _ = writeln!(out, "<a id=\"{}\"></a>\n## {}\n", s.id, s.title);
        out.push_str(&s.markdown());
        if !proves.is_empty() {
            let _ = writeln!(out, "**What this proves:** {proves}.\n");
            let _ = writeln!(out, "**What it does not:** {not}.\n");
        }
    }
    out.push_str(EMULATOR);
    std::fs::write(path, out)?;
    Ok(())
}

const EMULATOR: &str = "## The emulator is not AWS\n\n\
The stack is MiniStack, pinned in `infra/local/requirements.txt`. Where it is known to differ \
from AWS (see docs/ARCHITECTURE.md), the differences that bear on these figures:\n\n\
- functions run as local processes with no memory limit and no per-function CPU share; all \
  functions, the emulator and the load generator share the machine's cores;\n\
- DynamoDB stream sources ignore `batchItemFailures` (AWS retries the batch): a notice whose \
  post failed is not re-posted here, only replayed by `resume`;\n\
- any non-2xx `$connect` answer becomes 403 (AWS passes the status);\n\
- TTL deletion is not run (readers filter expired items on AWS too);\n\
- SQS, S3 and DynamoDB are in-process Python: their latency is not AWS's, and none of AWS's \
  per-partition or per-account limits apply (the scale model covers those).\n";
