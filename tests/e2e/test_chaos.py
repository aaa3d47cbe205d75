"""The chaos run in the suite (issue 20): three workers in one group, random SIGKILLs and restarts, one broker
restart, 20,000 turns, malformed records, 40 incidents paged through a webhook and a Slack stand-in; then two
idle minutes in which the finished group must neither warn of a stall nor rejoin. The longer, seeded variant is
`convmon bench chaos` (bench/chaos-report.json); the run itself is convmon_dev/chaos.py."""

from __future__ import annotations

import pytest

from convmon_dev.chaos import ChaosPlan, run_chaos, summary

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_three_workers_under_kills_and_a_broker_restart_lose_nothing_page_once_and_idle_quietly(broker, tmp_path):
    r = run_chaos(ChaosPlan(seed=20, turns=20_000, chaos_s=60, idle_s=120, incidents=40), broker, tmp_path / "chaos",
                  log=lambda m: None)
    text = summary(r)
    assert r["chaos"]["kills"] >= 3 and r["chaos"]["broker_restarts"] == 1, text
    assert r["turns"]["lost"] == 0 and r["turns"]["stored_union"] == 20_000, text
    assert r["turns"]["doubled_within_a_store"] == 0, text
    assert r["dlq"]["complete"], text
    assert r["pages"]["paged_once"] == 40 and not r["pages"]["missing"] and not r["pages"]["paged_more_than_once"], text
    assert r["pages"]["slack_bad_payloads"] == 0 and r["pages"]["slack_posts"] >= 40, text
    assert r["watchdog"]["while_idle"] == {"stalls": 0, "rejoins": 0, "escalations": 0}, (text, r["watchdog"])
    assert r["ok"], text
