"""`pip install .` (not editable) into a fresh venv gives a working `convmon`.

Run from outside the repository, so that nothing can be imported from the source tree:
the schemas, SQL migrations, Kafka scripts and sample data must come from the package.
"""

import subprocess
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow]


def test_plain_pip_install_gives_a_working_convmon(tmp_path, broker):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run([env_dir / "bin/python", "-m", "pip", "install", "-q", str(REPO)],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    site = subprocess.run([env_dir / "bin/python", "-c", "import convmon; print(convmon.__file__)"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert str(env_dir) in site.stdout and str(REPO) not in site.stdout

    exe = env_dir / "bin/convmon"
    env = {"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), "CONVMON_VAR": str(tmp_path / "var")}

    def run(*args):
        return subprocess.run([exe, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)

    r = run("db", "migrate")
    assert r.returncode == 0 and "applied 001_turns" in r.stdout, r.stderr
    r = run("db", "query", "SELECT name FROM system.tables WHERE database = 'convmon' ORDER BY name")
    assert "turns" in r.stdout.split()
    r = run("kafka", "status")  # the packaged infra/kafka/kafka.sh answers
    assert r.returncode in (0, 3) and ("running" in r.stdout or "stopped" in r.stdout), r.stderr
    r = subprocess.run([env_dir / "bin/python", "-c",
                        "from convmon.contract import json_schema; from convmon_dev.demo import sample_path;"
                        "import convmon_dev.modelsuite.public.prepare, convmon_dev.e2e_bench;"
                        "from convmon.alerting.rules import RuleSet; from convmon.grafana import dashboards;"
                        "from convmon.alerting.model import KINDS;"
                        "from convmon.scoring.suite import SuiteModel; SuiteModel();"
                        "print(json_schema()['title'], sample_path().is_file(), len(RuleSet.load().rules) == len(KINDS),"
                        " len(dashboards()))"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout.split() == ["ChatTurn", "True", "True", "3"], r.stderr  # a rule for every alert kind
