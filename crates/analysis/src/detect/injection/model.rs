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
//! The model file is parsed once (checked: magic, version, size); a damaged file is a build
//! defect caught by the unit tests, and `scan` then runs on the rules alone.

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
    weights: Vec<f32>,
    /// Feature occurrences below which a text is scaled as if it had this many: a handful of
    /// features is too little evidence for a confident score (the script's `MIN_COUNT`).
    min_count: usize,
    /// Feature occurrences from which the model judges a text (about 150 bytes); shorter texts
    /// are left to the rules.
    judge_from: usize,
    /// Probabilities from which the model alone says `suspicious` and `injection`, chosen on
    /// the validation split for a target false-positive rate (model.json).
    pub thresholds: Thresholds,
}

/// The model's decision thresholds (probabilities).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct Thresholds {
    pub suspicious: f32,
    pub injection: f32,
}

#[derive(Deserialize)]
struct Header {
    thresholds: Thresholds,
    buckets: usize,
    min_count: usize,
    judge_from: usize,
}

/// What the model said about one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelScore {
    /// Estimated probability that the text is an injection (logistic regression output).
    pub probability: f32,
    /// The probability mapped onto the verdict scale: the model's `suspicious` threshold maps
    /// to the verdict's 0.4 and its `injection` threshold to 0.7, linearly in between. 0 for
    /// texts too short for the model to judge (fewer feature occurrences than the model's
    /// `judge_from`, about 150 bytes): the rules alone judge those.
    pub score: f32,
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
        if floats.len() != 1 + 8 + BUCKETS {
            return None;
        }
        let mut source = [0.0; 8];
        source.copy_from_slice(&floats[1..9]);
        Some(Model {
            bias: floats[0],
            source,
            weights: floats[9..].to_vec(),
            min_count: header.min_count.max(1),
            judge_from: header.judge_from,
            thresholds: header.thresholds,
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
        let mut contributions: Vec<(f32, usize, usize)> = Vec::new();
        let mut ngram_sum = 0.0f32;
        let mut word_sum = 0.0f32;
        let data = model_bytes(normalised);
        let count = for_each_feature(&data, |index, span| {
            let w = self.weights[index];
            match span {
                Some((start, end)) => {
                    word_sum += w;
                    contributions.push((w, start, end));
                }
                None => ngram_sum += w,
            }
        });
        let scale = 1.0 / (count.max(self.min_count) as f32).sqrt();
        let logit = self.bias + self.source_bias(source) + (word_sum + ngram_sum) * scale;
        let probability = 1.0 / (1.0 + (-logit).exp());
        ModelScore {
            probability,
            // Short texts (fewer feature occurrences than `judge_from`, about 150 bytes) are
            // left to the rules: a sentence of ordinary second-person prose ("follow the
            // instructions in the previous section") is too little context for the model.
            score: if count < self.judge_from {
                0.0
            } else {
                self.verdict_scale(probability)
            },
            top_features: top_features(&data, contributions, scale),
            ngram_contribution: ngram_sum * scale,
        }
    }

    /// Maps a probability onto the verdict scale (monotone, piecewise linear): the model's
    /// thresholds land on the verdict thresholds so one set of verdict thresholds serves rules
    /// and model.
    fn verdict_scale(&self, p: f32) -> f32 {
        let Thresholds {
            suspicious: s,
            injection: i,
        } = self.thresholds;
        let (sv, iv) = (super::SUSPICIOUS_THRESHOLD, super::INJECTION_THRESHOLD);
        let y = if p < s {
            p / s * sv
        } else if p < i {
            sv + (p - s) / (i - s).max(f32::EPSILON) * (iv - sv)
        } else {
            iv + (p - i) / (1.0 - i).max(f32::EPSILON) * (1.0 - iv)
        };
        y.clamp(0.0, 1.0)
    }
}

fn top_features(
    data: &[u8],
    mut c: Vec<(f32, usize, usize)>,
    scale: f32,
) -> Vec<FeatureContribution> {
    c.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut out: Vec<FeatureContribution> = Vec::new();
    for (w, start, end) in c {
        if w <= 0.0 || out.len() >= TOP_FEATURES {
            break;
        }
        let feature = String::from_utf8_lossy(&data[start..end]).into_owned();
        if out.iter().any(|f| f.feature == feature) {
            continue;
        }
        out.push(FeatureContribution {
            feature,
            weight: w * scale,
        });
    }
    out
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

/// Runs of one ASCII punctuation byte longer than three cut to three: rulers, tables and
/// padding (`-----`, `=====`) read the same whatever their length.
fn collapse_runs(data: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(data.len());
    let mut run = 0usize;
    for &b in data {
        let punct = b < 0x80
            && !b.is_ascii_alphanumeric()
            && !matches!(b, b' ' | b'\t' | b'\n' | 0x0C | b'\r');
        run = if punct && out.last() == Some(&b) {
            run + 1
        } else {
            1
        };
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
pub fn model_bytes(normalised: &str) -> Vec<u8> {
    collapse_runs(&normalised.as_bytes()[..normalised.len().min(MAX_MODEL_BYTES)])
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
    for n in 3..=5usize {
        let seed = fnv1a(&[b'c', b'0' + n as u8], FNV_OFFSET);
        if end < n {
            continue;
        }
        for start in 0..=end - n {
            let h = fnv1a(&data[start..start + n], seed);
            f((h & mask) as usize, None);
            count += 1;
        }
    }
    count
}

#[cfg(test)]
mod tests;
