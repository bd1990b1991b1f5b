//! Renders benchmark results (the JSON files the benchmarks write with `--json`) as
//! Markdown, and with `--docs FILE` puts it between `<!-- bench:begin -->` and
//! `<!-- bench:end -->` in that file, leaving everything else (the method text, the
//! gas table of scripts/gas-report) as it is. `scripts/bench --write-docs` runs it.
//! Files of the same benchmark (repeated runs of one that measures once per process)
//! are merged: each figure's runs are pooled and its value is their median.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde::Deserialize;
use springmail_bench::fmt_num;

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

#[derive(Parser, Debug)]
#[command(about = "Render benchmark results into docs/BENCHMARKS.md")]
struct Args {
    /// Result files (`target/bench/results/*.json`).
    results: Vec<PathBuf>,
    /// `key=value` lines about the machine (scripts/bench writes them).
    #[arg(long)]
    machine: Option<PathBuf>,
    /// Rewrite the generated part of this Markdown file.
    #[arg(long)]
    docs: Option<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct Figure {
    key: String,
    label: String,
    value: f64,
    unit: String,
    runs: Vec<f64>,
    target: Option<String>,
    met: Option<bool>,
}

#[derive(Debug, Deserialize)]
struct Results {
    bench: String,
    command: String,
    at: u64,
    notes: Vec<(String, String)>,
    figures: Vec<Figure>,
}

const ORDER: [(&str, &str); 11] = [
    ("pipeline", "Verification throughput on one core"),
    (
        "pipeline_history",
        "The whole watcher on one core, its journal holding 100,000 handled messages",
    ),
    (
        "memory",
        "Memory and startup with 100,000 deposits and 10,000 journal messages",
    ),
    ("index", "Indexing `Deposited` events from anvil"),
    (
        "latency",
        "Mail-to-transaction latency on the dev stack, claims back to back",
    ),
    (
        "latency_poisson",
        "Mail-to-transaction latency on the dev stack, claims at Poisson arrival times",
    ),
    (
        "latency_ingress",
        "Mail-to-transaction latency, the watcher's own SMTP ingress beside IMAP",
    ),
    ("load", "Sustained load on the dev stack"),
    (
        "load_smtp",
        "Sustained load on the dev stack, claims through the watcher's SMTP ingress",
    ),
    (
        "load_mta",
        "Sustained load on the dev stack, replies through Postfix",
    ),
    (
        "load_smtp_mta",
        "Sustained load on the dev stack, claims through the watcher's SMTP ingress, replies through Postfix",
    ),
];

fn date(unix: u64) -> String {
    springmail_sdk::date::utc_day(unix)
}

fn render(results: &[Results], machine: &[(String, String)]) -> String {
    let mut out = String::new();
    out.push_str(
        "Written by `scripts/bench --write-docs` from the results in `target/bench/results/`.\n\n",
    );
    if !machine.is_empty() {
        out.push_str("**Machine.** ");
        out.push_str(
            &machine
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join("; "),
        );
        out.push_str(".\n\n");
    }
    // The targets first.
    let with_target: Vec<(&Results, &Figure)> = results
        .iter()
        .flat_map(|r| r.figures.iter().map(move |f| (r, f)))
        .filter(|(_, f)| f.target.is_some())
        .collect();
    if !with_target.is_empty() {
        out.push_str("| target | measured (median) | goal | |\n|---|---:|---:|---|\n");
        for (_, f) in &with_target {
            out.push_str(&format!(
                "| {} | {} {} | {} | {} |\n",
                f.label,
                fmt_num(f.value),
                f.unit,
                f.target.as_deref().unwrap_or(""),
                match f.met {
                    Some(true) => "**met**",
                    Some(false) => "**missed**",
                    None => "",
                }
            ));
        }
        out.push('\n');
    }
    let by_name: BTreeMap<&str, &Results> = results.iter().map(|r| (r.bench.as_str(), r)).collect();
    for (name, title) in ORDER {
        let Some(r) = by_name.get(name) else {
            continue;
        };
        out.push_str(&format!("### {title}\n\n"));
        out.push_str(&format!(
            "`target/release/{}` ({}).\n\n",
            r.command,
            date(r.at)
        ));
        out.push_str("| figure | median | unit | runs | target |\n|---|---:|---|---|---|\n");
        for f in &r.figures {
            let runs = if f.runs.len() > 1 {
                f.runs
                    .iter()
                    .map(|v| fmt_num(*v))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                String::new()
            };
            let target = match (&f.target, f.met) {
                (Some(t), Some(true)) => format!("{t} met"),
                (Some(t), Some(false)) => format!("{t} **missed**"),
                (Some(t), None) => t.clone(),
                (None, _) => String::new(),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} |\n",
                f.label,
                fmt_num(f.value),
                f.unit,
                runs,
                target
            ));
            let _ = &f.key;
        }
        if !r.notes.is_empty() {
            out.push('\n');
            for (k, v) in &r.notes {
                out.push_str(&format!("- {k}: {v}\n"));
            }
        }
        out.push('\n');
    }
    out
}

/// Pools the runs of result files of the same benchmark, in file order.
fn merge_runs(results: Vec<Results>) -> Vec<Results> {
    let mut merged: Vec<Results> = Vec::new();
    for r in results {
        let Some(into) = merged.iter_mut().find(|m| m.bench == r.bench) else {
            merged.push(r);
            continue;
        };
        into.at = into.at.max(r.at);
        for f in r.figures {
            match into.figures.iter_mut().find(|g| g.key == f.key) {
                Some(g) => g.runs.extend(f.runs),
                None => into.figures.push(f),
            }
        }
        for (k, v) in r.notes {
            if !into.notes.iter().any(|(k2, v2)| *k2 == k && *v2 == v) {
                into.notes.push((k, v));
            }
        }
    }
    for r in &mut merged {
        for f in &mut r.figures {
            if f.runs.len() > 1 {
                f.value = springmail_bench::median(f.runs.clone());
                f.met = f.target.as_deref().and_then(|t| meets(t, f.value));
            }
        }
    }
    merged
}

/// Whether `value` meets a target written as `≤ N` or `≥ N` (N may have commas).
fn meets(target: &str, value: f64) -> Option<bool> {
    let (at_most, rest) = if let Some(r) = target.strip_prefix('≤') {
        (true, r)
    } else if let Some(r) = target.strip_prefix('≥') {
        (false, r)
    } else {
        return None;
    };
    let n: f64 = rest.trim().replace(',', "").parse().ok()?;
    Some(if at_most { value <= n } else { value >= n })
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut results = Vec::new();
    for p in &args.results {
        let text = std::fs::read_to_string(p).with_context(|| p.display().to_string())?;
        let r: Results = serde_json::from_str(&text)
            .with_context(|| format!("{}: not benchmark results", p.display()))?;
        results.push(r);
    }
    let machine = match &args.machine {
        Some(p) => std::fs::read_to_string(p)
            .with_context(|| p.display().to_string())?
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .filter(|(_, v)| !v.is_empty())
            .collect(),
        None => Vec::new(),
    };
    let results = merge_runs(results);
    let md = render(&results, &machine);
    match &args.docs {
        None => print!("{md}"),
        Some(path) => {
            let doc = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
            let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
                bail!("{} has no {BEGIN} … {END} markers", path.display());
            };
            if e < b {
                bail!("{}: {END} comes before {BEGIN}", path.display());
            }
            let new = format!("{}{BEGIN}\n{md}{END}{}", &doc[..b], &doc[e + END.len()..]);
            std::fs::write(path, new)?;
            eprintln!("updated {}", path.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results(bench: &str, runs: &[f64]) -> Results {
        Results {
            bench: bench.into(),
            command: bench.into(),
            at: 1,
            notes: vec![("checked".into(), "ok".into())],
            figures: vec![Figure {
                key: format!("{bench}.drain"),
                label: "drain".into(),
                value: runs[0],
                unit: "s".into(),
                runs: runs.to_vec(),
                target: Some("≤ 40".into()),
                met: Some(runs[0] <= 40.0),
            }],
        }
    }

    #[test]
    fn runs_of_one_benchmark_are_pooled_and_judged_by_their_median() {
        let merged = merge_runs(vec![
            results("load", &[50.0]),
            results("latency", &[1.0]),
            results("load", &[30.0]),
            results("load", &[35.0]),
        ]);
        assert_eq!(merged.len(), 2);
        let load = &merged[0].figures[0];
        assert_eq!(load.runs, vec![50.0, 30.0, 35.0]);
        assert_eq!(load.value, 35.0);
        assert_eq!(load.met, Some(true));
        assert_eq!(merged[0].notes.len(), 1);
        assert_eq!(merged[1].figures[0].runs, vec![1.0]);
    }

    #[test]
    fn targets_are_read_with_thousands_separators() {
        assert_eq!(meets("≤ 1,000", 999.0), Some(true));
        assert_eq!(meets("≥ 2,000", 1_999.0), Some(false));
        assert_eq!(meets("about 5", 1.0), None);
    }
}
