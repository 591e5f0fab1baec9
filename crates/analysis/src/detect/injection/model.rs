//! The learned prompt-injection model that runs beside the rules: a logistic regression over
//! hashed features of the normalised text, trained offline by `scripts/train-injection-model.py`
//! (DEVELOPERS.md says how) and shipped in the repository (`model.bin`, with its metrics,
//! thresholds and input hashes in `model.json`).
//!
//! Features, bit for bit as the training script computes them: words (runs of ASCII letters and
//! digits or non-ASCII bytes; digits inside a word with letters read as leetspeak: `1gn0re` is
//! `ignore`), word bigrams, and byte 3-, 4- and 5-grams of the normalised text, each hashed with
//! 32-bit FNV-1a into [`BUCKETS`] buckets. Every occurrence adds its bucket's weight; the sum is
//! scaled by `1/sqrt(max(occurrences, min_count))` so long texts are not favoured and a few
//! words are not enough for a confident score, and the source adds a fixed offset (negative for
//! user messages and tool descriptions, where directives are expected; zero for data channels). The probability is `1 / (1 + e^-(bias + source + sum))`. One pass over the
//! text, no allocation per feature besides the word list: a few microseconds per KiB.
//!
//! [`Calibration`] turns the rules' score and the model's logit into the verdict's score, a
//! probability fitted on the validation split by the same script; the default
//! [`Thresholds`] on that probability were chosen there for target false-positive rates.
//!
//! The model file is parsed once (checked: magic, version, size); a damaged file is a build
//! defect caught by the unit tests, and `scan` then runs on the rules alone.

use std::borrow::Cow;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use super::IngestSource;

/// Buckets of the hashed feature space (2^18).
pub const BUCKETS: usize = 1 << 18;
/// Bytes of normalised text the model reads, at most (the scan window bounds it already).
pub const MAX_MODEL_BYTES: usize = 256 * 1024;
/// Features named in a verdict's explanation, at most.
pub const TOP_FEATURES: usize = 5;

const MODEL_BIN: &[u8] = include_bytes!("model.bin");
const MODEL_JSON: &str = include_str!("model.json");
const FNV_OFFSET: u32 = 0x811C_9DC5;
const FNV_PRIME: u32 = 0x0100_0193;

/// The shipped weights.
pub struct Model {
    bias: f32,
    /// One logit offset per [`IngestSource`], in [`IngestSource::ALL`] order.
    source: [f32; 8],
    /// A fixed-size array: a bucket index is masked to `BUCKETS - 1`, so lookups need no
    /// bounds check.
    weights: Box<[f32; BUCKETS]>,
    /// Feature occurrences below which a text is scaled as if it had this many: a handful of
    /// features is too little evidence for a confident score (the script's `MIN_COUNT`).
    min_count: usize,
    /// Feature occurrences from which the model judges a text (about 150 bytes); shorter texts
    /// are left to the rules.
    judge_from: usize,
    /// How the rules' score and the model's logit become the verdict's probability.
    pub calibration: Calibration,
    /// The shipped thresholds on the calibrated score, chosen on the validation split for
    /// target false-positive rates (model.json `target_fpr`).
    pub thresholds: Thresholds,
}

/// Scores (calibrated probabilities) from which a text is `suspicious` and an `injection`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct Thresholds {
    pub suspicious: f32,
    pub injection: f32,
}

impl Thresholds {
    /// Checked thresholds: both in `0..=1`, `suspicious` not above `injection`.
    pub fn new(suspicious: f32, injection: f32) -> Result<Thresholds, String> {
        let valid = |t: f32| (0.0..=1.0).contains(&t);
        if !valid(suspicious) || !valid(injection) {
            return Err(format!(
                "thresholds are probabilities from 0 to 1 (suspicious {suspicious}, injection {injection})"
            ));
        }
        if suspicious > injection {
            return Err(format!(
                "the suspicious threshold ({suspicious}) is above the injection threshold ({injection})"
            ));
        }
        Ok(Thresholds {
            suspicious,
            injection,
        })
    }
}

/// The calibration fitted on the validation split (model.json `calibration`): a logistic
/// regression over the rules' evidence, the model's logit and whether the model judged the text.
///
/// `score = 1 / (1 + e^-(intercept + rules_evidence × r + model_logit × max(logit, floor) × j
/// + model_judged × j))`, where `r = -ln(1 - rules_score)` (capped at `max_rules_evidence`) when
/// `rules_score >= rules_from`, else 0, and `j` is 1 when the model judged the text; kept
/// `score_margin` away from 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct Calibration {
    pub intercept: f32,
    pub rules_evidence: f32,
    pub model_logit: f32,
    pub model_judged: f32,
    /// Below this the model's logit counts as this: a benign-looking text (padding included)
    /// does not outvote the rules.
    pub model_logit_floor: f32,
    /// Rules scores below this (the rules' own `suspicious` band) add no evidence.
    pub rules_from: f32,
    pub max_rules_evidence: f32,
    /// The score stays this far from 0 and 1: a few thousand validation texts cannot support
    /// a probability closer to certainty.
    pub score_margin: f32,
}

impl Calibration {
    /// The calibrated probability of a text the rules scored `rules_score` and the model
    /// `model` (`None`: not judged by the model).
    pub fn probability(&self, rules_score: f32, model: Option<&ModelScore>) -> f32 {
        let rules = if rules_score >= self.rules_from {
            (-(1.0 - rules_score).max(0.0).ln()).min(self.max_rules_evidence)
        } else {
            0.0
        };
        let mut z = self.intercept + self.rules_evidence * rules;
        if let Some(m) = model.filter(|m| m.judged) {
            z += self.model_logit * m.logit.max(self.model_logit_floor) + self.model_judged;
        }
        let p = 1.0 / (1.0 + (-z).exp());
        let margin = self.score_margin.clamp(0.0, 0.5);
        if p.is_finite() {
            p.clamp(margin, 1.0 - margin)
        } else {
            margin
        }
    }
}

#[derive(Deserialize)]
struct Header {
    thresholds: Thresholds,
    calibration: Calibration,
    buckets: usize,
    min_count: usize,
    judge_from: usize,
}

/// What the model said about one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelScore {
    /// The model's own probability that the text is an injection (its logistic regression
    /// output, before the calibration that combines it with the rules).
    pub probability: f32,
    /// The model's logit (bias, source offset and scaled feature sum).
    pub logit: f32,
    /// Whether the text was long enough for the model to judge (at least `judge_from` feature
    /// occurrences, about 150 bytes); shorter texts are left to the rules.
    pub judged: bool,
    /// Words and word pairs that pushed the score up most, with their contribution to the
    /// logit (byte n-grams are summed in `ngram_contribution`).
    pub top_features: Vec<FeatureContribution>,
    /// What the byte n-grams contributed to the logit together.
    pub ngram_contribution: f32,
}

/// One word or word pair and what it added to the logit.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureContribution {
    pub feature: String,
    pub weight: f32,
}

/// The shipped model, parsed once; `None` only if the committed file is damaged.
pub static MODEL: LazyLock<Option<Model>> = LazyLock::new(|| Model::parse(MODEL_BIN, MODEL_JSON));

impl Model {
    fn parse(bin: &[u8], json: &str) -> Option<Model> {
        let header: Header = serde_json::from_str(json).ok()?;
        let word = |i: usize| -> Option<[u8; 4]> { bin.get(i..i + 4)?.try_into().ok() };
        if bin.get(..4)? != b"ASIM" || u32::from_le_bytes(word(4)?) != 1 {
            return None;
        }
        let buckets = u32::from_le_bytes(word(8)?) as usize;
        if buckets != BUCKETS || header.buckets != BUCKETS {
            return None;
        }
        let floats: Vec<f32> = bin[12..]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        // Finite numbers only: a NaN would make every score NaN.
        if floats.len() != 1 + 8 + BUCKETS || !floats.iter().all(|w| w.is_finite()) {
            return None;
        }
        let mut source = [0.0; 8];
        source.copy_from_slice(&floats[1..9]);
        let weights: Box<[f32; BUCKETS]> =
            floats[9..].to_vec().into_boxed_slice().try_into().ok()?;
        Some(Model {
            bias: floats[0],
            source,
            weights,
            min_count: header.min_count.max(1),
            judge_from: header.judge_from,
            calibration: header.calibration,
            thresholds: Thresholds::new(header.thresholds.suspicious, header.thresholds.injection)
                .ok()?,
        })
    }

    fn source_bias(&self, source: IngestSource) -> f32 {
        let i = IngestSource::ALL
            .iter()
            .position(|s| *s == source)
            .unwrap_or(IngestSource::ALL.len() - 1);
        self.source[i]
    }

    /// Scores normalised text from `source`.
    pub fn score(&self, normalised: &str, source: IngestSource) -> ModelScore {
        let mut top = TopFeatures::default();
        let mut ngram_sum = 0.0f32;
        let mut word_sum = 0.0f32;
        let data = model_bytes(normalised);
        // The sums run in the script's feature order, one addition after another, so the
        // logit is the same float whatever else changes here.
        let count = for_each_feature(&data, |index, span| {
            let w = self.weights[index & (BUCKETS - 1)];
            match span {
                Some((start, end)) => {
                    word_sum += w;
                    top.offer(&data, w, start, end);
                }
                None => ngram_sum += w,
            }
        });
        let scale = 1.0 / (count.max(self.min_count) as f32).sqrt();
        let logit = self.bias + self.source_bias(source) + (word_sum + ngram_sum) * scale;
        let probability = 1.0 / (1.0 + (-logit).exp());
        ModelScore {
            probability,
            logit,
            // Short texts (fewer feature occurrences than `judge_from`, about 150 bytes) are
            // left to the rules: a sentence of ordinary second-person prose ("follow the
            // instructions in the previous section") is too little context for the model.
            judged: count >= self.judge_from,
            top_features: top.into_contributions(scale),
            ngram_contribution: ngram_sum * scale,
        }
    }
}

/// The [`TOP_FEATURES`] words and word pairs with the largest positive weights, each text
/// once (at its first occurrence), largest first and, among equal weights, first in the text:
/// kept while the features stream by, instead of collecting every word and sorting them (that
/// sort was a fifth of a scan).
#[derive(Default)]
struct TopFeatures {
    /// (weight, feature text), ranked.
    best: Vec<(f32, String)>,
}

impl TopFeatures {
    fn offer(&mut self, data: &[u8], w: f32, start: usize, end: usize) {
        // Weights are finite (checked when the model is parsed).
        if w <= 0.0 {
            return;
        }
        // A later feature ranks below an earlier one of the same weight.
        if self.best.len() >= TOP_FEATURES && self.best.last().is_some_and(|(l, _)| w <= *l) {
            return;
        }
        let Some(bytes) = data.get(start..end) else {
            return;
        };
        let feature = String::from_utf8_lossy(bytes);
        if let Some(i) = self.best.iter().position(|(_, f)| *f == feature) {
            // The same text again: it ranks once, at its best occurrence.
            if w <= self.best[i].0 {
                return;
            }
            self.best.remove(i);
        }
        let at = self
            .best
            .iter()
            .position(|(b, _)| w > *b)
            .unwrap_or(self.best.len());
        self.best.insert(at, (w, feature.into_owned()));
        self.best.truncate(TOP_FEATURES);
    }

    fn into_contributions(self, scale: f32) -> Vec<FeatureContribution> {
        self.best
            .into_iter()
            .map(|(w, feature)| FeatureContribution {
                feature,
                weight: w * scale,
            })
            .collect()
    }
}

fn fnv1a(data: &[u8], mut h: u32) -> u32 {
    for &b in data {
        h = (h ^ u32::from(b)).wrapping_mul(FNV_PRIME);
    }
    h
}

fn leet(b: u8) -> u8 {
    match b {
        b'0' => b'o',
        b'1' => b'i',
        b'3' => b'e',
        b'4' => b'a',
        b'5' => b's',
        b'7' => b't',
        b'8' => b'b',
        other => other,
    }
}

/// ASCII punctuation: the bytes [`collapse_runs`] shortens runs of (whitespace and word bytes
/// are left as they are).
fn is_collapsed(b: u8) -> bool {
    b < 0x80 && !b.is_ascii_alphanumeric() && !matches!(b, b' ' | b'\t' | b'\n' | 0x0C | b'\r')
}

/// Where the first byte [`collapse_runs`] cuts is: the fourth of a run of one punctuation
/// byte. Ordinary text has none, and the model then reads it as it is, uncopied.
fn first_collapsed(data: &[u8]) -> Option<usize> {
    // The comparisons first (a byte rarely repeats four times), the class last.
    (3..data.len()).find(|&i| {
        let b = data[i];
        b == data[i - 1] && b == data[i - 2] && b == data[i - 3] && is_collapsed(b)
    })
}

/// Runs of one ASCII punctuation byte longer than three cut to three: rulers, tables and
/// padding (`-----`, `=====`) read the same whatever their length.
fn collapse_runs(data: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(data.len());
    let mut run = 0usize;
    // The byte before (pushed or cut: a cut byte equals the last one pushed).
    let mut previous: Option<u8> = None;
    for &b in data {
        let punct = is_collapsed(b);
        run = if punct && previous == Some(b) {
            run + 1
        } else {
            1
        };
        previous = Some(b);
        if run <= 3 {
            out.push(b);
        }
    }
    out
}

fn is_word_byte(b: u8) -> bool {
    b >= 0x80 || b.is_ascii_alphanumeric()
}

/// The bytes the model reads from normalised text: at most [`MAX_MODEL_BYTES`] (cut where the
/// training script cuts; a UTF-8 sequence may be split, both sides hash bytes), long
/// punctuation runs cut ([`collapse_runs`]).
pub fn model_bytes(normalised: &str) -> Cow<'_, [u8]> {
    let data = &normalised.as_bytes()[..normalised.len().min(MAX_MODEL_BYTES)];
    match first_collapsed(data) {
        None => Cow::Borrowed(data),
        // Everything before the run that reaches four is as it was; from the run's start,
        // collapsing sees the same bytes it would have seen from the beginning (a run is
        // one byte repeated, and the byte before it differs).
        Some(at) => {
            let mut out = data[..at - 3].to_vec();
            out.extend_from_slice(&collapse_runs(&data[at - 3..]));
            Cow::Owned(out)
        }
    }
}

/// Calls `f(bucket, span)` for every feature occurrence of `data` ([`model_bytes`]) in the
/// training script's order (words, bigrams, then byte 3-, 4- and 5-grams); `span` is the byte
/// range of a word or word pair, `None` for byte n-grams. Returns the number of occurrences.
pub fn for_each_feature(data: &[u8], mut f: impl FnMut(usize, Option<(usize, usize)>)) -> usize {
    let end = data.len();
    let mask = (BUCKETS - 1) as u32;
    let mut count = 0usize;
    // Words, with leetspeak folded where a word mixes letters and digits.
    let mut words: Vec<(usize, usize, u32)> = Vec::new();
    let mut leeted = Vec::new();
    let word_seed = fnv1a(b"w", FNV_OFFSET);
    let mut i = 0;
    while i < end {
        if !is_word_byte(data[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < end && is_word_byte(data[i]) {
            i += 1;
        }
        let word = &data[start..i];
        let mixed = word.iter().any(u8::is_ascii_alphabetic) && word.iter().any(u8::is_ascii_digit);
        let h = if mixed {
            leeted.clear();
            leeted.extend(word.iter().map(|&b| leet(b)));
            fnv1a(&leeted, word_seed)
        } else {
            fnv1a(word, word_seed)
        };
        words.push((start, i, h));
    }
    // The hash of a word's (folded) bytes is needed again for bigrams: recompute from the
    // stored span so the word list stays three numbers per word.
    let folded = |start: usize, end: usize, seed: u32| -> u32 {
        let word = &data[start..end];
        let mixed = word.iter().any(u8::is_ascii_alphabetic) && word.iter().any(u8::is_ascii_digit);
        if mixed {
            word.iter().fold(seed, |h, &b| {
                (h ^ u32::from(leet(b))).wrapping_mul(FNV_PRIME)
            })
        } else {
            fnv1a(word, seed)
        }
    };
    for &(start, stop, h) in &words {
        f((h & mask) as usize, Some((start, stop)));
        count += 1;
    }
    let bigram_seed = fnv1a(b"b", FNV_OFFSET);
    for pair in words.windows(2) {
        let (a_start, a_end, _) = pair[0];
        let (b_start, b_end, _) = pair[1];
        let h = folded(a_start, a_end, bigram_seed);
        let h = fnv1a(b" ", h);
        let h = folded(b_start, b_end, h);
        f((h & mask) as usize, Some((a_start, b_end)));
        count += 1;
    }
    count += byte_ngrams::<3>(data, &mut f);
    count += byte_ngrams::<4>(data, &mut f);
    count += byte_ngrams::<5>(data, &mut f);
    count
}

/// Calls `f(bucket, None)` for every byte `N`-gram of `data`, in order; returns how many.
/// One function per `N` so each hash is a fixed, unrolled run of `N` steps.
fn byte_ngrams<const N: usize>(
    data: &[u8],
    f: &mut impl FnMut(usize, Option<(usize, usize)>),
) -> usize {
    let seed = fnv1a(&[b'c', b'0' + N as u8], FNV_OFFSET);
    let mask = (BUCKETS - 1) as u32;
    let mut count = 0;
    for window in data.windows(N) {
        let h = window
            .iter()
            .fold(seed, |h, &b| (h ^ u32::from(b)).wrapping_mul(FNV_PRIME));
        f((h & mask) as usize, None);
        count += 1;
    }
    count
}

#[cfg(test)]
mod tests;
