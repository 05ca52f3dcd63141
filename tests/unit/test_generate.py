"""grafana/generate.py: the committed dashboards and rules are exactly what it writes, and
its one setting, the scrape job, reaches the dashboards' `job` variable and the rules.

Regenerate-and-diff, as monitoring mixins do: a hand edit of a generated file, or a change
to the program without regenerating, fails here.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.dashboards import DASHBOARDS, DEFAULT_JOB, FILES, GENERATE, ROOT, generate

GRAFANA = ROOT / "grafana"
RULES = Path("alerts/ocs-rules.yml")
GENERATED = [DASHBOARDS.relative_to(GRAFANA) / name for name in FILES] + [RULES]


def generated(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "out"
    result = generate("--out", str(out), *args)
    assert result.returncode == 0, result.stderr
    assert sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file()) == sorted(GENERATED)
    return out


def job_rule(rules_text: str) -> dict:
    data = yaml.safe_load(rules_text)
    (rule,) = [
        r for g in data["groups"] for r in g["rules"] if r.get("record") == "ocs:exporter_job"
    ]
    return rule


def test_committed_files_are_what_the_program_writes(tmp_path):
    out = generated(tmp_path)
    differ = [str(p) for p in GENERATED if (out / p).read_bytes() != (GRAFANA / p).read_bytes()]
    assert not differ, f"regenerate with `python grafana/generate.py`: {differ}"


def test_output_is_stable_sorted_json_ending_with_a_newline(tmp_path):
    first = generated(tmp_path / "a")
    second = generated(tmp_path / "b")
    for relative in GENERATED:
        text = (first / relative).read_text()
        assert text == (second / relative).read_text(), relative
        assert text.endswith("\n") and not text.endswith("\n\n"), relative
        if relative.suffix == ".json":
            data = json.loads(text)
            assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
            assert data["id"] is None
            assert "__inputs" not in data


def test_check_passes_on_the_repository():
    result = generate("--check")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_check_names_every_file_that_differs(tmp_path):
    out = generated(tmp_path)
    agent = out / DASHBOARDS.relative_to(GRAFANA) / "ocs-agent.json"
    agent.write_text(agent.read_text().replace('"OCS agent"', '"Edited by hand"'))
    (out / RULES).unlink()
    stray = agent.with_name("copy.json")
    shutil.copy(agent, stray)
    result = generate("--check", "--out", str(out))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any(line.startswith(str(agent)) and "differs" in line for line in lines), lines
    assert any(line.startswith(str(out / RULES)) and "missing" in line for line in lines), lines
    assert any(line.startswith(str(stray)) and "not generated" in line for line in lines), lines
    assert "regenerate with: python" in lines[-1]
    # Checking writes nothing.
    assert not (out / RULES).exists()


def test_job_sets_the_dashboards_default_job_and_the_rules_job_and_nothing_else(tmp_path):
    default = generated(tmp_path / "default")
    ocs = generated(tmp_path / "ocs", "--job", "ocs")
    for name in FILES:
        relative = DASHBOARDS.relative_to(GRAFANA) / name
        before = json.loads((default / relative).read_text())
        after = json.loads((ocs / relative).read_text())
        job = next(v for v in after["templating"]["list"] if v["name"] == "job")
        assert job["current"] == {"selected": True, "text": "ocs", "value": "ocs"}, name
        job["current"] = {"selected": True, "text": DEFAULT_JOB, "value": DEFAULT_JOB}
        assert after == before, name
    before, after = (default / RULES).read_text(), (ocs / RULES).read_text()
    assert job_rule(after)["labels"] == {"job": "ocs"}
    assert len(before.splitlines()) == len(after.splitlines())
    lines = zip(before.splitlines(), after.splitlines(), strict=True)
    changed = [(old, new) for old, new in lines if old != new]
    assert changed == [(f'          job: "{DEFAULT_JOB}"', '          job: "ocs"')]


@pytest.mark.parametrize("job", ["ocs", "true", "12", "site a: ocs #1", 'quo"te'])
def test_any_job_name_stays_a_string(tmp_path, job):
    out = generated(tmp_path, "--job", job)
    assert job_rule((out / RULES).read_text())["labels"] == {"job": job}


def test_an_empty_job_is_refused(tmp_path):
    result = generate("--job", "", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "--job" in result.stderr
    assert not any(tmp_path.iterdir())


def rules_for(source: str, job: str) -> str:
    spec = importlib.util.spec_from_file_location("ocs_generate", GENERATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.rules_for(source, job)


RULE = """groups:
  - name: g
    rules:
      - record: ocs:exporter_job
        expr: vector(1)
{labels}
      - alert: A
        expr: up == 0
        labels:
          job: "other"
"""


def test_rules_for_sets_only_the_job_rule_label():
    source = RULE.format(labels='        labels:\n          job: "x"  # a comment')
    assert rules_for(source, "ocs") == source.replace('job: "x"  # a comment', 'job: "ocs"')


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (RULE.format(labels=""), "no job label"),
        (RULE.replace("ocs:exporter_job", "ocs:other").format(labels=""), "expected one"),
        (RULE.format(labels="        labels: {job: x}"), "no job label"),
        (
            RULE.replace("vector(1)", "|-\n          vector(1)\n          job: x").format(
                labels='        labels:\n          job: "x"'
            ),
            "changed more than its label",
        ),
    ],
    ids=["no labels", "no job rule", "labels in flow style", "job: in the expression"],
)
def test_rules_for_refuses_rules_it_cannot_set(source, error):
    with pytest.raises(ValueError, match=error):
        rules_for(source, "ocs")
