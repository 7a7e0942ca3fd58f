//! `make proof`: the reliability scenarios against a local stack built with a release-like
//! profile, each printing its figures, and RELIABILITY.md regenerated from them.
//!
//! `proof --out RELIABILITY.md --corpus bench/corpus/proof [--only seed,burst,breaker,scale]`
//! (bench/proof.sh brings up the stack and passes the rest: the command, the machine).

mod breaker;
mod burst;
mod client;
mod fleet;
mod report;
mod scale;
mod seed;
mod stack;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use report::Section;

/// A photo of the corpus.
#[derive(Debug, Clone)]
pub struct Photo {
    /// File name.
    pub name: String,
    /// Its bytes.
    pub bytes: std::sync::Arc<Vec<u8>>,
    /// Its size class (`1280`, `1920`, `2560`, `4000`: the longest edge).
    pub class: u32,
}

fn load_corpus(dir: &Path) -> Result<Vec<Photo>> {
    let mut photos = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("{}", dir.display()))? {
        let path = entry?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.ends_with(".jpg") {
            continue;
        }
        // <source>-<edge>.jpg
        let class = name
            .trim_end_matches(".jpg")
            .rsplit('-')
            .next()
            .and_then(|e| e.parse().ok())
            .unwrap_or(0);
        photos.push(Photo {
            name,
            bytes: std::sync::Arc::new(std::fs::read(&path)?),
            class,
        });
    }
    photos.sort_by(|a, b| a.name.cmp(&b.name));
    anyhow::ensure!(
        !photos.is_empty(),
        "no photos in {}: run bench/proof.sh (it builds the corpus)",
        dir.display()
    );
    Ok(photos)
}

/// A size knob for quick trial runs (`PROOF_BURST_UPLOADS=100`); the report says when one is set.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out = PathBuf::from(arg(&args, "--out").unwrap_or_else(|| "RELIABILITY.md".into()));
    let corpus =
        PathBuf::from(arg(&args, "--corpus").unwrap_or_else(|| "bench/corpus/proof".into()));
    let only = arg(&args, "--only").unwrap_or_else(|| "seed,burst,breaker,scale".into());
    let command = arg(&args, "--command").unwrap_or_else(|| "make proof".into());
    let machine = arg(&args, "--machine").unwrap_or_default();
    let profile = arg(&args, "--profile").unwrap_or_else(|| "local".into());

    let photos = load_corpus(&corpus)?;
    let ctx = stack::Ctx::load(photos).await?;
    let started = Instant::now();
    let mut sections: Vec<Section> = Vec::new();
    for name in only.split(',').map(str::trim) {
        let t = Instant::now();
        eprintln!("\n[proof] ===== {name} =====");
        let section = match name {
            "seed" => seed::run(&ctx).await,
            "burst" => burst::run(&ctx).await,
            "breaker" => breaker::run(&ctx).await,
            "scale" => scale::run(&ctx, &sections).await,
            other => anyhow::bail!("unknown scenario {other}"),
        };
        let mut section = section.unwrap_or_else(|e| Section::errored(name, &e));
        section.seconds = t.elapsed().as_secs_f64();
        eprintln!("{}", section.console());
        sections.push(section);
        // Whatever a scenario did to the stack's configuration, the next starts clean.
        if let Err(e) = ctx.restore().await {
            eprintln!("[proof] restoring the stack's configuration failed: {e:#}");
        }
    }
    let failed = sections.iter().filter(|s| !s.ok()).count();
    report::write(
        &out,
        &sections,
        &report::Run {
            command,
            machine,
            profile,
            wall: started.elapsed().as_secs_f64(),
        },
    )?;
    eprintln!("[proof] wrote {}", out.display());
    anyhow::ensure!(failed == 0, "{failed} scenario(s) broke a must-hold figure");
    Ok(())
}
