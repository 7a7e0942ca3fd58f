//! `make simulate`: runs seeded schedules of the pipeline (see `safelight_sim`) and reports any
//! broken invariant with its seed, its shrunk scenario and its trace.
//!
//! ```text
//! safelight-simulate [--seeds N] [--from S]     N schedules from seed S (default 2000 from 1)
//! safelight-simulate --seed X [--trace]         replay one seed (its trace with --trace)
//! ```

use std::process::ExitCode;
use std::time::Instant;

use safelight_sim::{run_seed, shrink, Outcome};

fn arg(args: &[String], name: &str) -> Option<u64> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
}

fn report(o: &Outcome, trace: bool) {
    println!("seed {} FAILED: {:?}", o.seed, o.scenario);
    for v in &o.violations {
        println!("  violation: {v}");
    }
    if trace {
        for e in &o.trace {
            println!("  {:>10.3}s  {}", e.at as f64 / 1000.0, e.what);
        }
    }
    println!(
        "  replay: cargo run -p safelight-sim -- --seed {} --trace",
        o.seed
    );
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let trace = args.iter().any(|a| a == "--trace");
    if let Some(seed) = arg(&args, "--seed") {
        let o = run_seed(seed);
        if o.violations.is_empty() {
            println!(
                "seed {seed} passed: {} completed, {} failed, {:.1} virtual hours",
                o.completed,
                o.failed,
                o.virtual_ms as f64 / 3.6e6
            );
            if trace {
                for e in &o.trace {
                    println!("  {:>10.3}s  {}", e.at as f64 / 1000.0, e.what);
                }
            }
            return ExitCode::SUCCESS;
        }
        report(&shrink(o), true);
        return ExitCode::FAILURE;
    }
    let seeds = arg(&args, "--seeds").unwrap_or(2000);
    let from = arg(&args, "--from").unwrap_or(1);
    let started = Instant::now();
    let (mut failed, mut images, mut virtual_ms) = (0u64, 0usize, 0i64);
    for seed in from..from + seeds {
        let o = run_seed(seed);
        images += o.scenario.images;
        virtual_ms += o.virtual_ms;
        if !o.violations.is_empty() {
            failed += 1;
            report(&shrink(o), trace);
        }
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{seeds} schedules ({images} images, {:.0} virtual hours) in {secs:.1} s: {:.0} schedules/s; {failed} failed",
        virtual_ms as f64 / 3.6e6,
        seeds as f64 / secs.max(1e-9)
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
