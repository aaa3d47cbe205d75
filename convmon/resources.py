"""Where convmon's data files are: the schemas, SQL migrations, service scripts, dashboards, rules and the
model suite.

They live once, at the top of the repository (schemas/, infra/, models/). An installed package carries
copies under convmon/_data/ (made by setup.py when the package is built); a source checkout, including an
editable install, reads the top-level folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGED = Path(__file__).resolve().parent / "_data"
_SOURCE = Path(__file__).resolve().parents[1]


def data_path(relative: str) -> Path:
    """The file or folder `relative` (e.g. "schemas/clickhouse") of convmon's data."""
    for root in (_PACKAGED, _SOURCE):
        path = root / relative
        if path.exists():
            return path
    raise FileNotFoundError(f"convmon data {relative!r} is neither in {_PACKAGED} (an installed package) nor in "
                            f"{_SOURCE} (a source checkout): reinstall convmon")
