"""The worker profile: py-spy really samples a process, and the summary adds up."""

import subprocess
import sys
import time

from convmon_dev.bench_profile import Recorder, summarize, text

RAW = """\
process 1:"python -m convmon.cli worker";thread (101): MainThread;_run_once (asyncio/base_events.py:1884);finish (convmon/agents/turns.py:60);write (convmon/store/sink.py:80) 30
process 1:"python -m convmon.cli worker";thread (101): MainThread;_run_once (asyncio/base_events.py:1884);send (faust/topics.py:200) 20
process 1:"python -m convmon.cli worker";process 2:"python -c spawn_main";thread (2): MainThread;_run (convmon/scoring/encoder_process.py:40);run (convmon/scoring/suite.py:120);run (onnxruntime/session.py:220) 50
"""


def test_summary_shares_by_thread_leaf_and_convmon_function(tmp_path):
    raw = tmp_path / "p.txt"
    raw.write_text(RAW)
    s = summarize(raw)
    assert s["samples"] == 100
    assert dict(map(tuple, s["threads"])) == {"scoring process: MainThread": 0.5, "MainThread": 0.5}
    assert s["self"][0] == ["run (onnxruntime/session.py)", 0.5]
    inc = dict(map(tuple, s["convmon_inclusive"]))
    assert inc["_run (convmon/scoring/encoder_process.py)"] == 0.5 and inc["finish (convmon/agents/turns.py)"] == 0.3
    assert "send (faust/topics.py)" not in inc
    assert "50.0%  run (onnxruntime/session.py)" in text(s)


def test_py_spy_records_a_running_python_process(tmp_path):
    busy = subprocess.Popen([sys.executable, "-c", "def spin():\n    while True: sum(range(1000))\nspin()"])
    try:
        time.sleep(0.5)
        rec = Recorder(busy.pid, tmp_path / "busy.txt", rate=100)
        time.sleep(2)
        rec.stop()
    finally:
        busy.kill()
    s = summarize(tmp_path / "busy.txt")
    assert s["samples"] > 50
    assert s["self"][0][0].startswith("spin (")
