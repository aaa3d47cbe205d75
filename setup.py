"""Package data, built from the top-level sources (pyproject.toml holds everything else).

schemas/ (the language-neutral contracts), infra/ (service scripts and configuration) and models/
(the model suite) live once, at the top of the repository. Building the package copies the files
below into `convmon/_data/`, keeping their paths, so that a plain `pip install .` ships them; a
source checkout reads the top-level folders themselves (convmon/resources.py finds either).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
PACKAGE_DATA = [  # relative to the repository root
    "schemas/*.json",
    "schemas/clickhouse/*.sql",
    "infra/kafka/*.sh",
    "infra/kafka/*.xml",
    "infra/kafka/*.properties",
    "infra/grafana/dashboards/*.json",
    "infra/grafana/provisioning/*/*.yaml",
    "infra/alerting/*.toml",
    "models/manifest.json",
    "models/suite.onnx",
    "models/tokenizer.json",
    "models/data/conversations/*.jsonl",
]


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's own folders
        dest = Path(self.build_lib) / "convmon" / "_data"
        for pattern in PACKAGE_DATA:
            found = [p for p in sorted(ROOT.glob(pattern)) if p.is_file()]
            if not found:
                raise SystemExit(f"package data: nothing matches {pattern} under {ROOT}")
            for src in found:
                out = dest / src.relative_to(ROOT)
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, out)  # keeps the mode: kafka.sh stays executable


setup(cmdclass={"build_py": BuildPyWithData})
