//! The decode-budget sample and its memory figure: writes the one-colour 10000x10000 16-bit RGBA
//! PNG (`--write PATH`), or renders it with the processors' specs under the decode budget of a
//! function with `--memory-mb N` (default 1024) and prints the outcome and the process's peak RSS
//! (`VmHWM`). `--memory-mb 100000` lifts the budget to show what decoding it costs.
//!
//! `cargo run --release -p safelight-e2e --bin bomb -- --memory-mb 1024`

use anyhow::{bail, Context, Result};
use safelight::engine::{default_thumbnail_specs, default_variant_specs, render, Limits};

fn peak_rss_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmHWM in /proc/self/status")
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut memory_mb = 1024u64;
    let mut write = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--memory-mb" => memory_mb = it.next().context("--memory-mb N")?.parse()?,
            "--write" => write = Some(it.next().context("--write PATH")?.clone()),
            other => bail!("unknown argument {other:?} (--memory-mb N | --write PATH)"),
        }
    }
    let bytes =
        safelight::testing::png_rgba16_one_colour(10_000, 10_000, [0xffff, 0x8000, 0, 0xffff]);
    if let Some(path) = write {
        std::fs::write(&path, &bytes)?;
        println!("wrote {path}: {} bytes", bytes.len());
        return Ok(());
    }
    let before = peak_rss_kib()?;
    let mut specs = default_thumbnail_specs();
    specs.extend(default_variant_specs());
    let outcome = match render(&bytes, &specs, &Limits::for_memory_mb(memory_mb)) {
        Ok(r) => format!("rendered {} outputs", r.outputs.len()),
        Err(e) => format!("refused ({}): {e}", e.code()),
    };
    let peak = peak_rss_kib()?;
    println!(
        "file {} bytes; memory {memory_mb} MB; {outcome}; peak RSS {:.1} MiB (before rendering {:.1} MiB)",
        bytes.len(),
        peak as f64 / 1024.0,
        before as f64 / 1024.0
    );
    Ok(())
}
