#!/usr/bin/env python3
"""Scores texts with a candidate of the learned prompt-injection model before it ships.

A candidate is the output directory of scripts/train-injection-model.py (model.bin and
model.json). Each text gets what the Rust detector would say with those files shipped: the
rules' score from `agentscope scan` ($AGENTSCOPE_BIN; the rules do not depend on the model's
weights), the candidate's logit (with the source's offset), the candidate's calibrated score,
its verdict against the candidate's thresholds, and how far the score stands under the
`suspicious` threshold. The training script's own features and calibration inputs are used,
which the golden test (`model-golden.json`) holds equal to the Rust side's. One difference, the
training script's too: `scan` prints the rules' score with three decimals, so a lone rule of
weight 0.4 (0.39999998 in the detector's f32 sum, under the calibration's RULES_FROM) reads as
0.4 here and counts as rules evidence where the detector counts none.

The texts are JSON lines ({"text", "source", "name"}) or the graphs of the committed recordings
(recordings/*.graph.json): their tool results (read as `tool_result`, scored the same as
`mcp_tool_result`) and the descriptions of the tools offered (`tool_description`). Used to
check that a candidate keeps the ordinary recording's texts benign with a margin
(docs/detection.md); once a candidate ships, `cargo test --test e2e -- recordings::` is the check.

Usage: score-injection-candidate.py CANDIDATE_DIR FILE... (in the training venv)
"""

import importlib.util
import json
import os
import pathlib
import struct
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent


def load_training_script(buckets):
    """The training script as a module, with the candidate's feature space."""
    os.environ["INJECTION_MODEL_BUCKET_BITS"] = str(buckets.bit_length() - 1)
    spec = importlib.util.spec_from_file_location("train", HERE / "train-injection-model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def texts_of(path):
    """(name, text, source) of a JSON-lines file or of a recording's graph."""
    if path.suffix == ".jsonl":
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                v = json.loads(line)
                yield v.get("name", f"{path.name}:{number}"), v["text"], v.get("source", "unknown")
        return
    graph = json.loads(path.read_text(encoding="utf-8"))
    for call in graph.get("tool_calls", []):
        content = (call.get("result") or {}).get("content")
        if isinstance(content, str):
            yield f"{path.name} {call.get('gen_ai.tool.call.id', '?')} {call.get('gen_ai.tool.name', '?')}", content, "tool_result"
    for node in graph.get("graph", {}).get("nodes", []):
        description = (node.get("attributes") or {}).get("description")
        if isinstance(description, str):
            yield f"{path.name} description of {node.get('label', node.get('id'))}", description, "tool_description"


def main():
    candidate = pathlib.Path(sys.argv[1])
    header = json.loads((candidate / "model.json").read_text())
    blob = (candidate / "model.bin").read_bytes()
    magic, _version, buckets = blob[:4], *struct.unpack("<II", blob[4:12])
    if magic != b"ASIM" or buckets != header["buckets"]:
        raise SystemExit(f"{candidate}: not a model of the training script")
    train = load_training_script(buckets)
    bias = np.frombuffer(blob, "<f4", 1, 12)[0]
    offsets = np.frombuffer(blob, "<f4", len(train.SOURCES), 16)
    coef = np.frombuffer(blob, "<f4", buckets, 16 + 4 * len(train.SOURCES))
    cal = header["calibration"]
    weights = np.array([cal["rules_evidence"], cal["model_logit"], cal["model_judged"]], dtype=np.float32)
    thresholds = header["thresholds"]

    items = [t for path in sys.argv[2:] for t in texts_of(pathlib.Path(path))]
    rules = train.rules_scores("".join(json.dumps({"text": t, "source": s}) + "\n" for _, t, s in items).encode("utf-8"))
    for number, (name, text, source) in enumerate(items, start=1):
        x, judged = train.matrix([{"text": text, "source": source}])
        logit = float((x.astype(np.float32) @ coef)[0] + bias + offsets[train.SOURCES.index(source)])
        inputs = train.calibration_inputs(np.array([rules[number]]), np.array([logit]), judged, np.float32(cal["model_logit_floor"]))
        z = float(inputs.astype(np.float32)[0] @ weights + np.float32(cal["intercept"]))
        score = min(max(1.0 / (1.0 + np.exp(-z)), cal["score_margin"]), 1 - cal["score_margin"])
        verdict = "injection" if score >= thresholds["injection"] else "suspicious" if score >= thresholds["suspicious"] else "benign"
        print(json.dumps({
            "name": name, "source": source, "bytes": len(text.encode()), "rules_score": rules[number],
            "judged": bool(judged[0]), "logit": round(logit, 3), "score": round(score, 4), "verdict": verdict,
            "under_suspicious": round(thresholds["suspicious"] - score, 4),
        }))


if __name__ == "__main__":
    main()
