"""models/MODEL_CARD.md, written from models/manifest.json by every build (numbers come from the run)."""

from __future__ import annotations

import json
from pathlib import Path

# Targets on evaluation sources that never entered training or threshold choice (issue 9).
TARGETS = {"toxicity": ("auc", 0.88), "sentiment": ("macro_f1", 0.68), "jailbreak": ("auc", 0.95),
           "climate_science": ("auc", 0.85)}
REBUTTAL_TARGET = 0.15


def _fmt(v, digits=3) -> str:
    return "—" if v is None else f"{v:.{digits}f}"


def _binary_row(name: str, r: dict) -> str:
    c = r["confusion"]
    return (f"| {name} | {r['n']} | {_fmt(r['auc'])} | {r['threshold']:.2f} | {r['f1']:.3f} | {r['precision']:.3f} | "
            f"{r['recall']:.3f} | {r['flag_rate']:.3f} | tp {c['tp']} · fp {c['fp']} · fn {c['fn']} · tn {c['tn']} |")


def _target(task: str, r: dict) -> str:
    metric, goal = TARGETS.get(task, (None, None))
    if metric is None:
        return ""
    v = r.get(metric)
    return f"{metric} {_fmt(v)} vs target ≥ {goal} — **{'met' if v is not None and v >= goal else 'NOT met'}**"


def _decisions(s: dict, b: dict) -> list[str]:
    d, choice = s.get("decisions") or {}, b.get("decision_choice") or {}
    lines = [
        "## Decisions (one per signal, used by alerts, rates and windows alike)",
        "",
        "Chosen by `convmon models build` on benign tuning traffic (the dev half of the benign tuning sources: real "
        f"assistant replies, user requests, people in distress, mainstream climate statements; "
        f"{choice.get('benign_tuning_turns', '?')} turns), never on the benign evaluation sources that "
        "`convmon bench false-pages` measures (convmon_dev/modelsuite/calibrate.py):",
        "- **threshold** at a false-hit **budget** per 1,000 benign tuning turns (jailbreak: per 1,000 user turns);",
        "- **length correction** alpha: a text of n pieces scores sigmoid(max piece logit − alpha · ln n), the smallest "
        "alpha that keeps texts over 150 words within 2x the flag rate of texts of at most 40 words;",
        f"- jailbreak is decided on {' and '.join(d.get('jailbreak_roles', []))} turns only; other roles keep the score;",
        f"- languages judged: {', '.join(d.get('languages', []))} (py3langid); other languages keep their scores and get "
        "no decision.",
        "",
        "| signal | threshold | budget / 1,000 | flagged on tuning | alpha |",
        "|---|---|---|---|---|",
    ]
    for sig, c in (choice.get("signals") or {}).items():
        lines.append(f"| {sig} | {c['threshold']:.4f} | {c['budget_per_1000']} | {c['flagged']} of {c['tuning_turns']} "
                     f"| {c['alpha']} |")
    for pid, g in (choice.get("gates") or {}).items():
        lines += ["", f"Topic gate of `{pid}` (logistic regression on the drift embedding of each piece; a piece below "
                  f"the gate never becomes a hit): trained on {g['on_topic_texts']} on-topic and {g['ordinary_texts']} "
                  f"ordinary texts; threshold {g['threshold']} keeps {g['passes_positive_tuning']:.3f} of the policy's "
                  f"{g['positive_tuning_rows']} positive tuning rows and lets {g['passes_ordinary_training']:.3f} of the "
                  "ordinary training texts through."]
    return lines


def _false_pages(fp: dict | None) -> list[str]:
    if not fp:
        return ["## False pages on benign real chat", "", "Not measured for this suite: run `convmon bench false-pages`.", ""]
    lines = [
        "## False pages on benign real chat (`convmon bench false-pages`, bench/false-pages.json)",
        "",
        f"{fp['turns']} turns of held-out benign sources (never trained on, never used for a decision), through the "
        f"worker's scoring and the default alert rules: **{fp['per_1000']} pages per 1,000 turns** (target ≤ "
        f"{fp['targets']['overall_per_1000']}); by signal: "
        + (", ".join(f"{k} {v}" for k, v in fp["per_1000_by_signal"].items()) or "none") + ".",
        "",
        "| role | ≤ 40 words | 41–150 words | > 150 words |",
        "|---|---|---|---|",
    ]
    for role, t in fp["per_1000_by_role_and_length"].items():
        lines.append(f"| {role} | " + " | ".join(f"{c['per_1000']} ({c['turns']})" if c["turns"] else "—"
                                               for c in t.values()) + " |")
    lines += ["", f"Pages per 1,000 turns (turns in brackets). Long / short ratio: {fp['long_to_short']} (target ≤ 2). "
              f"Targets (≤ {fp['targets']['overall_per_1000']} overall and ≤ "
              f"{fp['targets']['every_role_and_length_per_1000']} in every role × length cell): "
              f"**{'met' if fp['meets_targets'] else 'NOT met'}**."]
    for pid, g in (fp.get("topic_gate") or {}).items():
        lines.append(f"Topic gate `{pid}` on these turns: {g['off_topic_passing']:.3f} of {g['off_topic_turns']} "
                     f"off-topic turns pass it, {g['mainstream_climate_passing']:.3f} of {g['mainstream_climate_turns']} "
                     "mainstream climate statements do.")
    return lines + [""]


def _cpu(b: dict) -> list[str]:
    cpu = b.get("cpu")
    if not cpu:
        return []
    vnni = "with VNNI" if cpu.get("avx512_vnni") or cpu.get("avx_vnni") else "without VNNI"
    return [f"Quantization: {b['quantization']}. Built and probed on {cpu.get('model') or 'an unnamed CPU'} ({vnni}); "
            "`bench/cpu_consistency.py` compares a suite's probe outputs on another CPU with the ones recorded here.", ""]


def render(m: dict, false_pages: dict | None = None) -> str:
    s, ev, agree, b = m["suite"], m["metrics"]["eval"], m["int8_vs_fp32"], m["build"]
    tr = b["training"]
    lines = [
        "# convmon model card",
        "",
        f"Suite **{s['version']}** — generated by `convmon models build` from `models/manifest.json`; do not edit by hand.",
        "",
        "## What it is",
        f"One ONNX graph (`{s['file']}`), one onnxruntime session, int8 (dynamic, per channel), no torch at run time. "
        f"Encoder: {b['encoder']}. Heads on the mean-pooled output: toxicity (0–1), sentiment "
        "(negative/neutral/positive; score = p(pos) − p(neg)), jailbreak/prompt injection (0–1), and one head per "
        "topic policy (`models/policies/<id>/`). Drift embedding: " + b["drift_embedding"] + ".",
        "",
        f"Long messages (over {s['window']['above_tokens']} word pieces): scored in windows of "
        f"{s['window']['tokens']} word pieces starting every {s['window']['step']} (up to "
        f"{s['window']['max_windows']} windows); {s['window']['reduce']}.",
        "",
        "## Training data and protocol",
        "Public labelled sources with pinned repository, commit, licence and label mapping "
        "(`models/data/public/DATA_CARD.md`, rebuilt by `convmon models data`), plus our hand-written sets "
        "(chat style and hard cases). Each public source is either a *training* source (about 15% of it, by text "
        "hash, is a tuning split for early stopping; half of each benign chat source is the tuning traffic the "
        "decisions are chosen on) or an *evaluation-only* source: never trained on, "
        "never used to choose an epoch, a threshold or anything else; an evaluation text that also feeds training "
        "or threshold choice anywhere is dropped from evaluation (`dropped_as_seen_in_training`). Hand-written dev "
        "sets are evaluated the same way, with disclosed exceptions. (1) After a first training run lowered them, the "
        "hand-written training rows were repeated more often (×2 → ×6). (2) Gaps that evaluation showed were filled "
        "with new hand-written, training-only rows, written without reading the evaluation texts: personal insults, "
        "threats, harassment requests and hostile assistant replies with their look-alike negatives "
        "(`models/data/tools/raw/train_tox_*.txt`: the misses of the hand-written toxicity dev set; any row with "
        "word or character-4-gram Jaccard ≥ 0.35 to a dev row is dropped), and direct security and systems requests "
        "as jailbreak negatives with matched override attempts (`models/data/jailbreak/train_security.jsonl`: the "
        "benign security-coding requests of the CyberSecEval evaluation source were flagged as attacks). Targeting a "
        "category seen failing in evaluation flatters those numbers. The climate policy's public evaluation is "
        "a held-out part of its two training sources (no other permissively licensed source was found), so it is "
        "same-source, not cross-source.",
        "",
        f"Training (`convmon models train`, torch, build-time only): {tr.get('config', {}).get('epochs')} epochs, "
        f"kept epoch {tr.get('kept_epoch')}, {round((tr.get('seconds') or 0) / 60, 1)} min on this project's 2-core "
        f"machine; rows per head: " + ", ".join(f"{k} {v}" for k, v in (tr.get("rows") or {}).items()) + ".",
        "",
        *_decisions(s, b),
    ]
    lines += [
        "",
        "## Results on evaluation-only sources (cross-source: never trained on, never tuned on)",
        "",
        "| set | n | AUC | threshold | F1 | precision | recall | flag rate | confusion |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    sentiment_lines, target_lines = [], []
    for name, r in ev.items():
        if r["task"] == "sentiment":
            sentiment_lines.append(
                f"- `{name}` (n={r['n']}): macro-F1 **{r['macro_f1']:.3f}**, accuracy {r['accuracy']:.3f}, per class "
                + ", ".join(f"{k} {v:.3f}" for k, v in r["f1_per_class"].items()))
        else:
            lines.append(_binary_row(f"`{name}`", r))
            for src, sr in r.get("by_source", {}).items():
                lines.append(_binary_row(f"  ↳ `{src}`", sr))
        if name.startswith("public:"):
            target_lines.append(f"- {r['task']}: {_target(r['task'], r)}")
    lines += ["", "Sentiment (3 classes):", *sentiment_lines, "", "Against the targets (public evaluation-only sources):",
              *target_lines]
    for pid in s["policies"]:
        r = ev.get(f"handwritten:{pid}")
        if r and "fpr_quote_rebut" in r:
            ok = "met" if r["fpr_quote_rebut"] <= REBUTTAL_TARGET else "NOT met"
            lines.append(f"- policy `{pid}`: flagged {r['fpr_quote_rebut']:.3f} of the {r['n_quote_rebut']} hand-written "
                         f"messages that quote, question or report a myth in order to rebut it (target ≤ "
                         f"{REBUTTAL_TARGET}: **{ok}**)")
    lines += [
        "",
        "Flag rates by tag (the hard cases) are in `manifest.json` (`metrics.eval.<set>.flag_rate_by_tag`).",
        "",
        *_false_pages(false_pages),
        "## int8 vs fp32",
        f"On {agree['n_texts']} evaluation texts: drift-embedding cosine mean **{agree['embedding_cosine_mean']:.4f}**, "
        f"min {agree['embedding_cosine_min']:.4f}. Score differences (mean / max absolute): "
        + ", ".join(f"{k} {v['mean_abs']:.3f} / {v['max_abs']:.3f}" for k, v in agree["head_score_diff"].items()) + ".",
        "",
        *_cpu(b),
        "## Limits — read before relying on a score",
        "- English only. Public sources differ in what they call toxic, negative or an attack; the mappings are in "
        "the data card, and errors concentrate where definitions differ (e.g. abuse aimed at a bot vs group hate).",
        "- Several evaluation-only sources hold one class only (all attacks, or all benign); their AUC comes from the "
        "task's evaluation sources together, so it partly measures how different those sources' styles are.",
        "- The climate policy's public data is one positive-only and one negative-only source; its hand-written dev set "
        "is the check on stance (endorse vs rebut).",
        "- Sarcasm, polite contempt and stance are the weakest cases (see flag rates by tag).",
        "",
    ]
    return "\n".join(lines)


FALSE_PAGES = Path("bench/false-pages.json")


def false_pages_of(models_dir: Path, manifest: dict) -> dict | None:
    """bench/false-pages.json next to models/, if it measured this suite with these thresholds."""
    path = models_dir.parent / FALSE_PAGES
    report = json.loads(path.read_text()) if path.is_file() else None
    shipped = {**manifest["suite"]["thresholds"], **manifest["suite"]["policy_thresholds"]}
    if report and report.get("suite") == manifest["suite"]["version"] and report.get("thresholds") == shipped:
        return report
    return None


def write(models_dir: Path, manifest: dict, false_pages: dict | None = None) -> Path:
    """The card; `false_pages`: that report (default: bench/false-pages.json next to models/, if it is of this suite)."""
    if false_pages is None:
        false_pages = false_pages_of(models_dir, manifest)
    out = models_dir / "MODEL_CARD.md"
    out.write_text(render(manifest, false_pages))
    return out
