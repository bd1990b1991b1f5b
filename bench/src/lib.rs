//! Spring Mail benchmarks. Each binary in `src/bin` measures one thing and prints
//! its figures, and with `--json FILE` writes them for `scripts/bench --write-docs`,
//! which renders docs/BENCHMARKS.md (`src/bin/report.rs`).
//!
//! | binary | measures | needs |
//! |---|---|---|
//! | `pipeline` | verification throughput on one core, per stage | nothing |
//! | `claim_api` | `POST /api/claims` verification (parse, check, simulate) on one core | nothing |
//! | `memory` | watcher RSS and startup with 100k deposits and 10k journal messages | nothing |
//! | `index` | indexing 100k `Deposited` events from anvil | anvil binary |
//! | `latency` | SMTP accept → claim transaction accepted by anvil | dev stack |
//! | `load` | 2,000 claims at once: drain time, peak queue, exactly once | dev stack |
//!
//! Run them with `scripts/bench` (release build, one core where it matters).
#![forbid(unsafe_code)]

pub mod anvil;
pub mod corpus;
pub mod instant;
pub mod rig;
pub mod stack;
pub mod timed;

use std::time::Duration;

use serde::Serialize;

/// Logs of the watcher on stderr when `RUST_LOG` is set (e.g. `RUST_LOG=info`).
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
}

/// Median of a non-empty sample.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The `p`-th percentile (0–100) by nearest rank.
pub fn percentile(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * s.len() as f64).ceil() as usize;
    s[rank.clamp(1, s.len()) - 1]
}

/// Milliseconds of a duration.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A value read from `/proc/<pid>/status` in kB (`VmRSS`, `VmHWM`, ...).
pub fn proc_status_kb(pid: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
}

/// CPU time this process has used so far: user and system, all its threads (ended
/// ones included), from `/proc/self/stat`, in the kernel's clock ticks (USER_HZ, 100
/// a second on Linux). On a shared machine, work per CPU second is steadier than per
/// wall-clock second: time the process waits for the core does not count.
pub fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces), from the third on.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<u64>().ok();
    // utime and stime are fields 14 and 15 (1-based), so 11 and 12 here.
    let total = ticks(11)? + ticks(12)?;
    Some(Duration::from_millis(total * 10))
}

/// One measured figure, as written to the JSON results.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// Stable key, e.g. `pipeline.total`.
    pub key: String,
    /// What it is, for people.
    pub label: String,
    /// The value (median over runs where there are several).
    pub value: f64,
    /// Its unit (`mails/s`, `ms`, `MB`, ...).
    pub unit: String,
    /// Every run's value.
    pub runs: Vec<f64>,
    /// The target, if any, as text (`≥ 2000`).
    pub target: Option<String>,
    /// Whether the target is met (`None` without a target).
    pub met: Option<bool>,
}

/// A benchmark's results.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Results {
    /// The benchmark (`pipeline`, `memory`, ...).
    pub bench: String,
    /// The command line that produced it.
    pub command: String,
    /// Unix seconds.
    pub at: u64,
    /// Parameters and facts about the run (corpus sizes, versions, ...).
    pub notes: Vec<(String, String)>,
    /// The figures.
    pub figures: Vec<Figure>,
}

/// Which way a target goes.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// No target.
    None,
    /// At least this much.
    AtLeast(f64),
    /// At most this much.
    AtMost(f64),
}

impl Results {
    /// Results of `bench`, with the command line of this process.
    pub fn new(bench: &str) -> Self {
        // The command line without the output file.
        let mut args = Vec::new();
        let mut it = std::env::args();
        // The binary's name (one binary may write results of several benchmarks).
        let program = it
            .next()
            .and_then(|p| {
                std::path::Path::new(&p)
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| bench.to_string());
        while let Some(a) = it.next() {
            if a == "--json" {
                it.next();
            } else if !a.starts_with("--json=") {
                args.push(a);
            }
        }
        Results {
            bench: bench.into(),
            command: format!("{program} {}", args.join(" ")).trim().to_string(),
            at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            ..Default::default()
        }
    }

    /// Adds a note.
    pub fn note(&mut self, key: &str, value: impl ToString) {
        self.notes.push((key.into(), value.to_string()));
    }

    /// Adds a figure from its runs (the value is their median) and prints it.
    pub fn figure(
        &mut self,
        key: &str,
        label: &str,
        unit: &str,
        runs: Vec<f64>,
        target: Target,
    ) -> f64 {
        let value = median(runs.clone());
        // Smoke runs (debug builds, tiny sizes) do not judge targets.
        let target = if std::env::var_os("SPRINGMAIL_BENCH_SMOKE").is_some() {
            Target::None
        } else {
            target
        };
        let (target, met) = match target {
            Target::None => (None, None),
            Target::AtLeast(t) => (Some(format!("≥ {}", fmt_num(t))), Some(value >= t)),
            Target::AtMost(t) => (Some(format!("≤ {}", fmt_num(t))), Some(value <= t)),
        };
        let verdict = match met {
            Some(true) => "  PASS",
            Some(false) => "  MISS",
            None => "",
        };
        let runs_text = if runs.len() > 1 {
            format!(
                "  (runs: {})",
                runs.iter()
                    .map(|r| fmt_num(*r))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        };
        println!(
            "{label:<58} {:>12} {unit:<8}{}{verdict}{runs_text}",
            fmt_num(value),
            target
                .as_deref()
                .map(|t| format!(" target {t}"))
                .unwrap_or_default()
        );
        self.figures.push(Figure {
            key: key.into(),
            label: label.into(),
            value,
            unit: unit.into(),
            runs,
            target,
            met,
        });
        value
    }

    /// Writes the results as JSON when `path` is given.
    pub fn write(&self, path: Option<&std::path::Path>) -> anyhow::Result<()> {
        if let Some(p) = path {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(p, serde_json::to_string_pretty(self)?)?;
            eprintln!("results written to {}", p.display());
        }
        Ok(())
    }
}

/// A number for tables: thousands separated, sensible decimals.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    let decimals = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.decimals$}");
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i.to_string(), Some(f.to_string())),
        None => (s.clone(), None),
    };
    let (sign, digits) = match int.strip_prefix('-') {
        Some(d) => ("-", d.to_string()),
        None => ("", int),
    };
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

/// Where benchmarks keep caches (RSA keys) and scratch data: `$SPRINGMAIL_BENCH_DIR`,
/// else `target/bench` of the workspace.
pub fn work_dir() -> std::path::PathBuf {
    if let Ok(d) = std::env::var("SPRINGMAIL_BENCH_DIR") {
        return d.into();
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
        });
    target.join("bench")
}
