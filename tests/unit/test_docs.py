"""The documentation tells the truth and holds together: every flag and its variable are in the
configuration reference, the README stays short with a working table of contents, every page
is reachable, links resolve, and no dated lab notes creep back in."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from exporter import __version__
from exporter.flags import build_parser, env_name
from tests.support.cli import all_flags, switches

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
REFERENCE = DOCS / "configuration.md"
BENCHMARKS = ROOT / "benchmarks"
# Everything a reader reads as documentation; the changelog may carry release dates.
PAGES = [README, BENCHMARKS / "README.md", ROOT / "grafana" / "runbook.md", *DOCS.glob("*.md")]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def github_anchor(heading: str) -> str:
    """The id GitHub gives a Markdown heading: lower case, punctuation dropped, dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def headings(path: Path, levels: str = "1,6") -> list[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.MULTILINE | re.DOTALL)
    return re.findall(rf"^#{{{levels}}} +(.+?) *$", text, flags=re.MULTILINE)


def reference_rows() -> dict[str, list[str]]:
    """The flag table of the configuration reference: its rows' cells, by the flag they name
    (``--[no-]name`` by ``--name``)."""
    rows = {}
    for line in REFERENCE.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`--(\[no-\])?([\w.-]+)( [^`]*)?`", cells[0])
        if match and line.startswith("|"):
            rows["--" + match.group(2)] = cells  # a switch's row by its --name
    return rows


def test_reference_documents_every_flag_with_its_variable():
    rows = reference_rows()
    for flag in all_flags():
        assert flag in rows, f"{flag} has no row in {REFERENCE.name}"
        assert rows[flag][1] == f"`{env_name(flag)}`", f"{flag}: {rows[flag][1]}"


def test_reference_documents_no_flag_the_exporter_lacks():
    assert set(reference_rows()) == {*all_flags(), "--version"}


def test_reference_writes_switches_and_only_them_as_no_forms():
    written = {flag: cells[0] for flag, cells in reference_rows().items()}
    assert {flag for flag, cell in written.items() if "[no-]" in cell} == set(switches())
    for flag, off in switches().items():
        assert written[flag] == f"`--[no-]{flag[2:]}`" and off == f"--no-{flag[2:]}"


def test_reference_defaults_are_the_parsers(monkeypatch):
    for flag in all_flags():
        monkeypatch.delenv(env_name(flag), raising=False)
    rows = reference_rows()
    for action in build_parser()._actions:
        flag = next((o for o in action.option_strings if o.startswith("--")), None)
        if flag in rows and isinstance(action.default, str) and action.default != argparse.SUPPRESS:
            assert rows[flag][2] == f"`{action.default}`", f"{flag}: {rows[flag][2]}"


def test_readme_reads_in_five_minutes():
    assert len(README.read_text().splitlines()) <= 300


def test_readme_contents_link_to_every_section():
    text = README.read_text()
    contents = re.search(r"^## Contents\n+((?:- .*\n)+)", text, flags=re.MULTILINE)
    assert contents, "README has no '## Contents' list"
    listed = re.findall(r"\(#([^)]+)\)", contents.group(1))
    sections = [github_anchor(h) for h in headings(README, "2") if h != "Contents"]
    assert listed == sections


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        assert destination.exists(), f"{page.name}: {target}: no such file"
        if anchor and destination.suffix == ".md":
            anchors = {github_anchor(h) for h in headings(destination)}
            assert anchor in anchors, f"{page.name}: {target}: no such heading"


def test_every_docs_page_is_in_the_toctree():
    index = (DOCS / "index.md").read_text()
    toctree = re.search(r"```\{toctree\}\n(.*?)```", index, flags=re.DOTALL)
    assert toctree, "docs/index.md has no toctree"
    entries = [line.strip() for line in toctree.group(1).splitlines()]
    entries = [entry for entry in entries if entry and not entry.startswith(":")]
    pages = sorted(page.stem for page in DOCS.glob("*.md") if page.stem != "index")
    assert sorted(entries) == pages


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_dated_run_notes(page):
    dated = re.findall(r".*\b(?:19|20)\d\d-[01]\d\b.*", page.read_text())
    assert not dated, f"{page.name}: dated notes belong in git history: {dated[0].strip()}"


def test_benchmark_results_named_are_the_results_kept():
    kept = {path.name for path in BENCHMARKS.glob("*.json")}
    named = set(re.findall(r"[\w-]+\.json", (BENCHMARKS / "README.md").read_text()))
    assert named == kept
    for page in PAGES:
        for name in re.findall(r"benchmarks/([\w-]+\.json)", page.read_text()):
            assert name in kept, f"{page.name} names benchmarks/{name}, which is gone"


def test_changelog_has_the_current_version_and_unreleased_changes():
    changelog = headings(ROOT / "CHANGELOG.md", "2")
    assert changelog[0] == "[Unreleased]"
    assert f"[{__version__}]" in changelog


def test_license_is_the_one_setup_cfg_declares():
    assert "license = BSD-2-Clause" in (ROOT / "setup.cfg").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("BSD 2-Clause License\n")
