"""`convmon bench gil` runs all three arrangements and reports each."""

from convmon_dev.gil_bench import run_gil_bench


def test_gil_bench_reports_the_three_arrangements():
    r = run_gil_bench(48, log=lambda m: None)
    rates = r["turns_per_s"]
    assert set(rates) == {"alone", "in_process_busy_thread", "child_process_busy_thread"}
    assert all(v > 0 for v in rates.values())
    assert r["command"] == "convmon bench gil --turns 48" and r["cpu_cores"] >= 1
