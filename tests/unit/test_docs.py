"""The README and committed reports stay in step with the shipped models."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_readme_quotes_the_shipped_suite():
    manifest = json.loads((ROOT / "models/manifest.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert manifest["suite"]["version"] in readme, "README model numbers are from another build: update them"
    ev = manifest["metrics"]["eval"]
    for task in ("toxicity", "jailbreak", "climate_science"):
        assert f"AUC {ev['public:' + task]['auc']:.3f}" in readme, task
    assert f"macro-F1 {ev['public:sentiment']['macro_f1']:.3f}" in readme
    assert "make demo" in readme and "make test" in readme


def test_model_card_is_generated_from_the_manifest():
    from convmon_dev.modelsuite.card import false_pages_of, render

    manifest = json.loads((ROOT / "models/manifest.json").read_text())
    false_pages = false_pages_of(ROOT / "models", manifest)
    assert false_pages is not None, "bench/false-pages.json is not of the shipped suite: run `convmon bench false-pages`"
    assert (ROOT / "models/MODEL_CARD.md").read_text() == render(manifest, false_pages)


def test_committed_models_eval_report_is_from_the_shipped_suite():
    report = json.loads((ROOT / "bench/models-eval.json").read_text())
    manifest = json.loads((ROOT / "models/manifest.json").read_text())
    assert report["suite_version"] == manifest["suite"]["version"]
    assert report["eval"] == manifest["metrics"]["eval"]
    assert {"toxicity", "sentiment", "jailbreak", "climate_science"} <= set(report["targets"])


def test_committed_models_report_has_the_promised_fields():
    report = json.loads((ROOT / "bench/models-report.json").read_text())
    manifest = json.loads((ROOT / "models/manifest.json").read_text())
    assert report["suite_version"] == manifest["suite"]["version"]
    assert report["command"].startswith("convmon bench models")
    for length in ("short", "long"):
        r = report[length]
        for key in ("suite_turns_per_s", "encoder_turns_per_s", "fp32_turns_per_s", "per_check_baseline_turns_per_s"):
            assert r[key] > 0


def test_committed_e2e_report_has_the_promised_fields_and_the_readme_quotes_it():
    report = json.loads((ROOT / "bench/e2e-report.json").read_text())
    for key in ("turns_per_s", "encoder_ceiling_turns_per_s", "e2e_fraction", "produce_to_row_p99_s",
                "alert_latency_p99_s", "cpu_cores", "command"):
        assert key in report, key
    assert report["command"].startswith("convmon bench e2e")
    readme = (ROOT / "README.md").read_text()
    assert f"**{report['turns_per_s']} turns/s**" in readme and f"**{report['e2e_fraction']}**" in readme
