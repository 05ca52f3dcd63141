"""The documentation tells the truth: every flag and its variable are in the reference."""

from __future__ import annotations

from pathlib import Path

from exporter.config import env_name
from tests.support.cli import all_flags

ROOT = Path(__file__).resolve().parents[2]


def test_readme_documents_every_flag_and_its_variable():
    readme = (ROOT / "README.md").read_text()
    for flag in all_flags():
        assert f"`{flag}" in readme, flag
        assert f"`{env_name(flag)}`" in readme, env_name(flag)
