"""Every package directory of the source tree is in pyproject's package list, so a wheel (not
only an editable install) carries it: agentkit.engines.llama_cpp.models was missing once."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_directory_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for name, directory in config["package-dir"].items():
        base = ROOT / directory
        for init in base.rglob("__init__.py"):
            found.add(".".join((name, *init.parent.relative_to(base).parts)))
    assert "agentkit.engines.llama_cpp.models" in found
    assert found - listed == set()
