#!/usr/bin/env python3
"""Write the provisioned OCS dashboards and the alert rules for one Prometheus scrape job.

    python grafana/generate.py                # regenerate grafana/ in place
    python grafana/generate.py --check        # exit 1, naming the files that differ
    python grafana/generate.py --job ocs --out /etc/ocs-monitoring

The dashboards are built from the `dashboards` package beside this file with Grafana's
foundation SDK (`pip install -e '.[test]'` installs it). The rules' source is the hand-written
grafana/alerts/ocs-rules.yml: only the job label of its `ocs:exporter_job` rule, the rules'
one reference to the job, is set. The job name is the program's one setting: the default of
every dashboard's `job` variable and the job whose targets the exporter alerts watch.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the dashboards package, also when run from elsewhere

from dashboards import BUILDERS, models, render  # noqa: E402
from dashboards.common import DEFAULT_JOB  # noqa: E402

DASHBOARDS = Path("provisioning/dashboards/ocs")
RULES = Path("alerts/ocs-rules.yml")
JOB_RULE = "ocs:exporter_job"


def job_rule(rules: dict) -> dict:
    """The recording rule that names the exporter's job."""
    found = [r for g in rules["groups"] for r in g["rules"] if r.get("record") == JOB_RULE]
    if len(found) != 1:
        raise ValueError(f"expected one rule {JOB_RULE}, found {len(found)}")
    return found[0]


def rules_for(source: str, job: str) -> str:
    """`source` (the rule file's text) with the job label of `ocs:exporter_job` set to `job`,
    comments and everything else as they are."""
    lines = source.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.strip() == f"- record: {JOB_RULE}"]
    if len(starts) != 1:
        raise ValueError(f"expected one `- record: {JOB_RULE}` line, found {len(starts)}")
    index = starts[0] + 1
    # The rule's own lines end where the next rule (or group) starts.
    while index < len(lines) and not lines[index].lstrip().startswith(("- ", "job:")):
        index += 1
    if index == len(lines) or not lines[index].lstrip().startswith("job:"):
        raise ValueError(f"rule {JOB_RULE} has no job label on a line of its own")
    indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
    # A JSON string is a YAML double-quoted scalar: any job name stays a string.
    lines[index] = f"{indent}job: {json.dumps(job)}\n"
    result = "".join(lines)
    expected, written = yaml.safe_load(source), yaml.safe_load(result)
    job_rule(expected).setdefault("labels", {})["job"] = job
    if written != expected:
        raise ValueError(f"setting the job of {JOB_RULE} changed more than its label")
    return result


def outputs(job: str) -> dict[Path, str]:
    """Every generated file's text by its path relative to the output directory."""
    files = {DASHBOARDS / name: render(data) for name, data in models(job).items()}
    files[RULES] = rules_for((HERE / RULES).read_text(), job)
    return files


def shown(path: Path) -> str:
    """`path` as the user would type it: relative to the working directory if inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def differences(out: Path, files: dict[Path, str]) -> list[str]:
    """What differs between `files` and the files under `out`, one line per file."""
    found = []
    for relative, text in files.items():
        path = out / relative
        if not path.exists():
            found.append(f"{shown(path)}: missing")
        elif path.read_text() != text:
            found.append(f"{shown(path)}: differs from the generated file")
    # File provisioning loads every JSON file of the folder, generated or not.
    for path in sorted((out / DASHBOARDS).glob("*.json")):
        if path.name not in BUILDERS:
            found.append(f"{shown(path)}: not generated, yet provisioned")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--job",
        default=DEFAULT_JOB,
        help="Prometheus scrape job of the exporter: the dashboards' default job and the job"
        " the rules watch (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=HERE,
        help="directory to write provisioning/ and alerts/ into (default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and name the files under --out that differ",
    )
    args = parser.parse_args(argv)
    if not args.job:
        parser.error("--job: the job name may not be empty")
    files = outputs(args.job)
    if args.check:
        found = differences(args.out, files)
        for line in found:
            print(line, file=sys.stderr)
        if found:
            command = ["python", shown(HERE / "generate.py"), "--job", args.job]
            if args.out.resolve() != HERE:
                command += ["--out", shown(args.out)]
            print(f"regenerate with: {shlex.join(command)}", file=sys.stderr)
        return 1 if found else 0
    for relative, text in files.items():
        path = args.out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
