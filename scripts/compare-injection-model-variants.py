#!/usr/bin/env python3
"""Leave-one-author-out recall of variants of the learned prompt-injection model that were
measured and not shipped (docs/detection.md, "Variants measured against unseen authors").

The protocol is scripts/select-injection-model.py's (its folds, its thresholds: 1 % false
positives on the validation split's benign texts without the left-out author; texts too short
for the model are not counted), so the shipped settings' line reproduces its figure. Each
variant changes one thing:

- `shipped`: C 16, every feature family, no class weights (the shipped model's settings);
- `balanced`, `c64`, `c256`, `balanced_c64`: class weights inverse to the classes' shares, and
  weaker regularisation;
- `nb`: naive-Bayes log-count ratios (of the training fold) scale the features before the
  regression (NBSVM); the product folds into one weight per bucket, so the Rust side would not
  change;
- `words_bigrams`, `words_bigrams_byte3`, `no_byte5`: fewer feature families (texts are still
  judged by all families' occurrences, as the shipped model judges them);
- `window256`, `window512`: the text's score is the larger of the whole text's logit and the
  best window's, a window being two consecutive pieces of about N bytes cut at line breaks (an
  injected paragraph is not diluted by a long document around it); `window512_trained` also
  trains on the benign training texts' windows as negatives;
- `wordllama_only`, `wordllama_with_ngrams`: pretrained knowledge, the one kind a package ships
  that this budget could run: WordLlama's static token embeddings (wordllama 0.4.0.post1 on PyPI,
  MIT: 32,000 LLaMA-2 tokens, 256 dimensions), each text the normalised mean of its tokens'
  embeddings and the per-dimension maximum of its 48-token windows' (stride 24), alone (C 1) or
  beside the hashed features (C 16). Needs `pip install --no-deps wordllama==0.4.0.post1
  tokenizers==0.23.3 safetensors==0.8.0` in the venv (its files are read, it is not imported;
  tokenizers and safetensors pull huggingface_hub and others with them).

The `heldout` split is never read. Usage (in the training venv, which
scripts/train-injection-model.sh prepares):
compare-injection-model-variants.py CORPUS.jsonl [VARIANT,...]
"""

import importlib.util
import json
import pathlib
import sys

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

HERE = pathlib.Path(__file__).resolve().parent


def load(name, file):
    spec = importlib.util.spec_from_file_location(name, HERE / file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


train = load("train", "train-injection-model.py")
select = load("select", "select-injection-model.py")
MIN_COUNT = 300

VARIANTS = {
    "shipped": {},
    "balanced": {"class_weight": "balanced"},
    "c64": {"c": 64.0},
    "c256": {"c": 256.0},
    "balanced_c64": {"class_weight": "balanced", "c": 64.0},
    "nb": {"nb": True},
    "words_bigrams": {"families": ("word", "bigram")},
    "words_bigrams_byte3": {"families": ("word", "bigram", "byte3")},
    "no_byte5": {"families": ("word", "bigram", "byte3", "byte4")},
    "window256": {"window": 256},
    "window512": {"window": 512},
    "window512_trained": {"window": 512, "train_windows": True},
    "wordllama_only": {"embedding": "only", "c": 1.0},
    "wordllama_with_ngrams": {"embedding": "with_ngrams"},
}
EMBEDDING_WINDOW = 48


def wordllama(records):
    """Per record, the normalised mean of its tokens' WordLlama embeddings and the
    per-dimension maximum over its windows' normalised means (the mean again when it has no
    whole window)."""
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    root = pathlib.Path(importlib.util.find_spec("wordllama").origin).parent
    tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
    table = load_file(str(root / "weights" / "l2_supercat_256.safetensors"))["embedding.weight"].astype(np.float32)
    dims = table.shape[1]
    out = np.zeros((len(records), 2 * dims), dtype=np.float32)
    encodings = tokenizer.encode_batch([r["text"][:65536] for r in records], add_special_tokens=False)
    for i, encoding in enumerate(encodings):
        if not encoding.ids:
            continue
        vectors = table[np.array(encoding.ids)]
        mean = vectors.mean(0)
        out[i, :dims] = mean / (np.linalg.norm(mean) + 1e-6)
        out[i, dims:] = out[i, :dims]
        if len(vectors) > EMBEDDING_WINDOW:
            sums = np.cumsum(np.r_[np.zeros((1, dims), np.float32), vectors], 0)
            starts = np.arange(0, len(vectors) - EMBEDDING_WINDOW + 1, EMBEDDING_WINDOW // 2)
            means = (sums[starts + EMBEDDING_WINDOW] - sums[starts]) / EMBEDDING_WINDOW
            out[i, dims:] = (means / (np.linalg.norm(means, axis=1, keepdims=True) + 1e-6)).max(0)
    return out


def pieces(data, size):
    """`data` cut into pieces of at most about `size` bytes: whole lines packed together, a
    longer line cut at its last space before `size` (or at `size`)."""
    out, current = [], b""
    for line in data.split(b"\n"):
        while len(line) > size:
            cut = line.rfind(b" ", 0, size)
            cut = cut if cut > size // 2 else size
            if current:
                out.append(current)
                current = b""
            out.append(line[:cut])
            line = line[cut:].lstrip(b" ")
        if current and len(current) + 1 + len(line) > size:
            out.append(current)
            current = line
        else:
            current = current + b"\n" + line if current else line
    if current:
        out.append(current)
    return out


def windows(records, size):
    """Every window (two consecutive pieces) of every record of more than one piece: the
    unscaled count matrix, each window's record and occurrence count."""
    piece_rows, piece_cols, piece_record, piece_count = [], [], [], []
    for r, rec in enumerate(records):
        data = train.collapse_runs(train.normalise(rec["text"]).encode("utf-8")[: train.MAX_BYTES])
        parts = pieces(data, size)
        if len(parts) < 2:
            continue
        for part in parts:
            idx = train.features_of_bytes(part)
            piece_rows += [len(piece_record)] * len(idx)
            piece_cols += idx
            piece_record.append(r)
            piece_count.append(len(idx))
    counts = sp.csr_matrix(
        (np.ones(len(piece_rows)), (piece_rows, piece_cols)), shape=(len(piece_record), train.BUCKETS)
    )
    first = np.array([i for i in range(len(piece_record) - 1) if piece_record[i + 1] == piece_record[i]], dtype=int)
    record = np.array(piece_record, dtype=int)[first] if len(first) else np.zeros(0, dtype=int)
    n = np.array(piece_count, dtype=np.float64)
    return (counts[first] + counts[first + 1]).tocsr(), record, n[first] + n[first + 1]


def best_window(z_windows, record, count):
    """Per record, its best window's logit (-inf without windows)."""
    best = np.full(count, -np.inf)
    np.maximum.at(best, record, z_windows)
    return best


def main():
    corpus = pathlib.Path(sys.argv[1])
    wanted = sys.argv[2].split(",") if len(sys.argv) > 2 else list(VARIANTS)
    tune, test = select.training_splits(corpus)
    mats_tune, totals_tune = select.family_counts(tune)
    mats_test, totals_test = select.family_counts(test)
    _, n_tune = select.build(mats_tune, totals_tune, select.FAMILIES, MIN_COUNT)
    _, n_test = select.build(mats_test, totals_test, select.FAMILIES, MIN_COUNT)
    y_tune, origin_tune, offsets_tune = select.labels_origins_offsets(tune)
    y_test, origin_test, offsets_test = select.labels_origins_offsets(test)
    judged_tune, judged_test = n_tune >= train.JUDGE_FROM, n_test >= train.JUDGE_FROM
    # Windows and embeddings: computed once, for the variants that use them.
    derived = {}
    for name in wanted:
        v = VARIANTS[name]
        x_tune, _ = select.build(mats_tune, totals_tune, v.get("families", select.FAMILIES), MIN_COUNT)
        x_test, _ = select.build(mats_test, totals_test, v.get("families", select.FAMILIES), MIN_COUNT)
        if v.get("embedding"):
            if "embedding" not in derived:
                derived["embedding"] = (sp.csr_matrix(wordllama(tune)), sp.csr_matrix(wordllama(test)))
            e_tune, e_test = derived["embedding"]
            x_tune, x_test = (e_tune, e_test) if v["embedding"] == "only" else (
                sp.hstack([x_tune, e_tune]).tocsr(), sp.hstack([x_test, e_test]).tocsr())
        size = v.get("window")
        if size and size not in derived:
            derived[size] = (windows(tune, size), windows(test, size))
        per_fold = {}
        for fold, origins in select.FOLDS.items():
            out_tune, out_test = np.isin(origin_tune, origins), np.isin(origin_test, origins)
            x_fit, y_fit = x_tune[~out_tune], y_tune[~out_tune]
            if v.get("train_windows"):
                (w_counts, w_record, w_n), _ = derived[size]
                keep = (y_tune[w_record] == 0) & ~out_tune[w_record]
                w_x = sp.diags(1.0 / np.sqrt(np.maximum(w_n[keep], MIN_COUNT))) @ w_counts[keep]
                x_fit = sp.vstack([x_fit, w_x]).tocsr()
                y_fit = np.r_[y_fit, np.zeros(w_x.shape[0], dtype=int)]
            ratio = 1.0
            if v.get("nb"):
                present = (x_fit > 0).astype(np.float64)
                p = np.asarray(present[y_fit == 1].sum(0)).ravel() + 1
                q = np.asarray(present[y_fit == 0].sum(0)).ravel() + 1
                ratio = np.log((p / p.sum()) / (q / q.sum()))
                x_fit = (x_fit @ sp.diags(ratio)).tocsr()
            model = LogisticRegression(
                C=v.get("c", 16.0), solver="liblinear", max_iter=1000, random_state=train.SEED,
                class_weight=v.get("class_weight"),
            ).fit(x_fit, y_fit)
            coef, bias = model.coef_[0] * ratio, model.intercept_[0]
            z_tune = x_tune @ coef + bias + offsets_tune
            z_test = x_test @ coef + bias + offsets_test
            if size:
                for (w_counts, w_record, w_n), z, rs in zip(derived[size], (z_tune, z_test), (tune, test)):
                    z_w = (w_counts @ coef) / np.sqrt(np.maximum(w_n, MIN_COUNT))
                    offsets = np.array([train.SOURCE_OFFSETS.get(rs[r]["source"], 0.0) for r in w_record])
                    np.maximum(z, best_window(z_w + bias + offsets, w_record, len(z)), out=z)
            reference = (y_test == 0) & ~out_test & judged_test
            t = train.threshold_for(z_test[reference], train.INJECTION_FPR)
            z_out = np.r_[z_tune[out_tune], z_test[out_test]]
            y_out = np.r_[y_tune[out_tune], y_test[out_test]]
            j_out = np.r_[judged_tune[out_tune], judged_test[out_test]]
            inj, ben = (y_out == 1) & j_out, (y_out == 0) & j_out
            per_fold[fold] = (float((z_out[inj] >= t).mean()), int(ben.sum()), int((z_out[ben] >= t).sum()))
        recalls = [f[0] for f in per_fold.values()]
        earlier = [per_fold[f][0] for f in list(select.FOLDS)[:7]]
        benign = sum(f[1] for f in per_fold.values())
        flagged = sum(f[2] for f in per_fold.values())
        print(json.dumps({
            "variant": name,
            "mean_recall": round(float(np.mean(recalls)), 4),
            "mean_recall_seven_earlier": round(float(np.mean(earlier)), 4),
            "left_out_benign_flagged": f"{flagged}/{benign}",
            "folds": {f: round(r[0], 4) for f, r in per_fold.items()},
        }), flush=True)


if __name__ == "__main__":
    main()
