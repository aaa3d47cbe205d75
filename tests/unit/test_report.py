"""`convmon report` renders in a real headless browser (Debian's chromium): no console errors, every
chart drawn with data, on the dashboards' demo data (tests/unit/test_dashboards.py builds it through
convmon's own scoring, alerting and model-state code). A screenshot is kept as an artifact."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from convmon.report import SECTIONS, build

from .test_dashboards import demo  # noqa: F401 - the fixture

ARTIFACTS = Path(os.environ.get("CONVMON_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "var/test-artifacts"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=20000"]


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "Debian's chromium is needed (apt-get install chromium; .ci/run installs it)"
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def report(demo, tmp_path_factory):  # noqa: F811
    client, _ = demo
    out = tmp_path_factory.mktemp("report") / "report.html"
    counts = build(client, out)
    return out, counts


def test_every_section_has_data_and_the_page_is_self_contained(report):
    out, counts = report
    assert all(counts[s.title] > 0 for s in SECTIONS), {t: n for t, n in counts.items() if not n}
    page = out.read_text()
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=\"?http", page)  # nothing fetched: works offline
    assert "[EMAIL]" in page or "[PHONE]" in page or "text_redacted" in page  # the turns table shows redacted text


def test_report_renders_in_headless_chromium_without_console_errors(report, tmp_path):
    out, counts = report
    dom = chromium(tmp_path, "--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, "\n".join(console)
    charts = [s for s in SECTIONS if s.kind != "table"]
    for i, sec in enumerate(SECTIONS):
        if sec.kind == "table":
            continue
        div = dom.stdout.split(f'id="chart-{i}"', 1)
        assert len(div) == 2, f"chart {sec.title!r} missing"
        body = div[1].split('data-section="', 1)[0]
        assert 'class="main-svg"' in body, f"chart {sec.title!r} not drawn"
        drawn = len(re.findall(r'class="(?:trace scatter|trace bars|point)', body))
        assert drawn > 0, f"chart {sec.title!r} drawn empty"
    assert len(charts) == 5 and html.escape("Mean toxicity by model version") in dom.stdout
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "report.png"
    r = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1300,4200", out.as_uri())
    assert r.returncode == 0 and shot.stat().st_size > 50_000, r.stderr[-2000:]
