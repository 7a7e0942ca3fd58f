//! `safelight-backfill`: the migration of existing originals from an operator's machine, with a
//! progress bar. The same code as the `backfill` function, run here instead of in Lambda.
//!
//! ```text
//! safelight-backfill [--dry-run] [--force] [--stack-env FILE] [--concurrency N] [--json]
//! safelight-backfill --estimate N --megapixels MP      (cost model only; touches nothing)
//! ```
//!
//! Resources come from `--stack-env FILE` (the `.local/stack.env` that `make dev` writes) or from
//! the functions' variables: `BUCKET`, `IMAGES_TABLE`, `CONTROL_TABLE`, `THUMBNAILS_QUEUE_URL`,
//! `VARIANTS_QUEUE_URL` (and the usual AWS credentials). Ctrl-C stops after the page in hand and
//! records the checkpoint; running it again resumes there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use backfill::{settings_from, Backfill};
use indicatif::{ProgressBar, ProgressStyle};
use safelight::aws::{DynamoControl, DynamoImages, S3Store, SqsQueues};
use safelight::ops::backfill::{BackfillCounts, BackfillReport, BackfillRequest, CostModel};

const USAGE: &str = "usage: safelight-backfill [--dry-run] [--force] [--stack-env FILE] \
[--concurrency N] [--json] | --estimate N --megapixels MP";

#[derive(Debug, Default)]
struct Args {
    request: BackfillRequest,
    stack_env: Option<String>,
    concurrency: Option<String>,
    json: bool,
    estimate: Option<(u64, f64)>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args::default();
    let mut it = std::env::args().skip(1);
    let mut estimate_n = None;
    let mut megapixels = None;
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .with_context(|| format!("{name} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--dry-run" => args.request.dry_run = true,
            "--force" => args.request.force = true,
            "--json" => args.json = true,
            "--stack-env" => args.stack_env = Some(value("--stack-env")?),
            "--concurrency" => args.concurrency = Some(value("--concurrency")?),
            "--estimate" => estimate_n = Some(value("--estimate")?.parse::<u64>()?),
            "--megapixels" => megapixels = Some(value("--megapixels")?.parse::<f64>()?),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    if let Some(n) = estimate_n {
        args.estimate = Some((n, megapixels.unwrap_or(12.0)));
    }
    Ok(args)
}

/// The variables of a stack env file (`KEY=value` lines), mapped to the functions' names.
fn stack_env(path: &str) -> Result<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{path} is missing: run `make dev` first"))?;
    let raw = safelight::aws::stack_env::parse(&text);
    let mut vars = raw.clone();
    for (from, to) in [
        ("SAFELIGHT_BUCKET", "BUCKET"),
        ("SAFELIGHT_IMAGES_TABLE", "IMAGES_TABLE"),
        ("SAFELIGHT_CONTROL_TABLE", "CONTROL_TABLE"),
        ("SAFELIGHT_THUMBNAILS_QUEUE_URL", "THUMBNAILS_QUEUE_URL"),
        ("SAFELIGHT_VARIANTS_QUEUE_URL", "VARIANTS_QUEUE_URL"),
    ] {
        if let Some(v) = raw.get(from) {
            vars.insert(to.to_owned(), v.clone());
        }
    }
    Ok(vars)
}

fn describe(c: &BackfillCounts) -> String {
    format!(
        "{} originals: {} rows created, {} repaired, {} re-queued, {} stages enqueued; \
         {} completed, {} in progress, {} failed left alone",
        c.images_found,
        c.rows_created,
        c.rows_repaired,
        c.rows_requeued,
        c.stages_enqueued,
        c.completed,
        c.in_progress,
        c.failed
    )
}

fn print_report(r: &BackfillReport, elapsed: Duration) {
    let c = &r.counts;
    let (create, repair) = if r.dry_run {
        ("rows to create", "rows to repair")
    } else {
        ("rows created", "rows repaired")
    };
    println!();
    if let Some(why) = &r.refused {
        println!(
            "{} {why}",
            if r.dry_run {
                "A real run would be refused:"
            } else {
                "Refused:"
            }
        );
    }
    if let Some(id) = &r.run_id {
        println!(
            "run {id} ({}){}",
            r.start,
            if r.done {
                ", complete"
            } else {
                ", stopped: run again to resume"
            }
        );
    }
    println!("originals found           {}", c.images_found);
    println!("{create:<26}{}", c.rows_created);
    println!("{repair:<26}{}", c.rows_repaired);
    println!("rows re-queued            {}", c.rows_requeued);
    println!(
        "stages enqueued           {} (thumbnail {}, variant {})",
        c.stages_enqueued, r.stages.0, r.stages.1
    );
    println!("derivatives missing       {}", c.derivatives_missing);
    println!("left alone                {} completed, {} in progress, {} failed, {} changed during the run", c.completed, c.in_progress, c.failed, c.changed_during_run);
    println!(
        "refused                   {} not images, {} of another owner",
        c.not_images, c.foreign_owner
    );
    println!("megapixels to process     {:.1}", c.megapixels.get());
    let e = &r.estimate;
    println!(
        "estimate                  {:.0} s of processor compute ({:.0} GB-s), ~{:.0} s wall at {} invocations per stage, Lambda ≈ ${:.2}",
        e.compute_secs, e.gb_seconds, e.wall_secs, e.concurrency, e.lambda_usd
    );
    let secs = elapsed.as_secs_f64().max(1e-3);
    println!(
        "this pass                 {:.1} s, {:.1} originals/s",
        secs,
        c.images_found as f64 / secs
    );
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = parse_args()?;
    let vars = match &args.stack_env {
        Some(path) => stack_env(path)?,
        None => std::env::vars().collect(),
    };
    let env = safelight::config::Env::from_vars(vars.iter().map(|(k, v)| (k.as_str(), v)));
    let mut settings = settings_from(&env)?;
    if let Some(n) = &args.concurrency {
        settings.concurrency = n.parse().context("--concurrency")?;
    }

    if let Some((n, mp)) = args.estimate {
        let counts = BackfillCounts {
            rows_created: n,
            megapixels: safelight::ops::backfill::f64_bits::F64::from_f64(n as f64 * mp),
            ..BackfillCounts::default()
        };
        let model: CostModel = settings.cost;
        let e = model.estimate(&counts, n, n);
        println!(
            "{n} originals of {mp} MP, both stages: {:.0} s of processor compute ({:.0} GB-s at {} MB), \
             ~{:.1} h wall at {} invocations per stage, Lambda ≈ ${:.2}",
            e.compute_secs,
            e.gb_seconds,
            model.memory_mb,
            e.wall_secs / 3600.0,
            e.concurrency,
            e.lambda_usd
        );
        return Ok(());
    }

    let config = safelight::Config::read(&env)?;
    let need = |v: &Option<String>, name: &'static str| {
        safelight::Config::require(v, name).map(str::to_owned)
    };
    let control = need(&config.control_table, "CONTROL_TABLE")?;
    let thumbnails = need(&config.thumbnails_queue_url, "THUMBNAILS_QUEUE_URL")?;
    let variants = need(&config.variants_queue_url, "VARIANTS_QUEUE_URL")?;

    let sdk = if args.stack_env.is_some() {
        // The local stack's env file: its endpoint, region and test credentials.
        safelight::aws::stack_env::sdk_config(&vars).await
    } else {
        aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
    };
    let handler = Backfill::new(
        S3Store::new(&sdk, &config.bucket),
        DynamoImages::new(&sdk, &config.images_table),
        SqsQueues::new(&sdk, Some(thumbnails), Some(variants)),
        DynamoControl::new(&sdk, control),
        settings,
    );

    let interrupted = Arc::new(AtomicBool::new(false));
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {pos} originals ({per_sec}) {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    {
        let interrupted = interrupted.clone();
        let bar = bar.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                interrupted.store(true, Ordering::Relaxed);
                bar.set_message(
                    "interrupted: finishing the page in hand and recording the checkpoint…",
                );
            }
        });
    }
    let started = Instant::now();
    let report = handler
        .run(args.request, None, &interrupted, |c| {
            bar.set_position(c.images_found);
            if !interrupted.load(Ordering::Relaxed) {
                bar.set_message(describe(c));
            }
        })
        .await;
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report, started.elapsed());
    }
    if !report.done {
        std::process::exit(3);
    }
    Ok(())
}
