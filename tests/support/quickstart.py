"""The Docker quick start of docs/deployment.md, read as the commands the image test runs.

The block is written once, after :data:`MARKER`: build, run with the site config directory
mounted at ``/config``, scrape. README.md carries a copy of it, which a test compares.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from string import Template

from testbed import ROOT

DEPLOYMENT = ROOT / "docs" / "deployment.md"
MARKER = "<!-- The Docker quick start: tests/integration/test_image.py runs this block. -->"


def quickstart_block(path: Path = DEPLOYMENT) -> str:
    """The fenced block (fences included) right after the marker."""
    text = path.read_text()
    assert text.count(MARKER) == 1, f"{path.name}: the quick start marker, once"
    match = re.match(r"\s*(```sh\n.*?\n```)\n", text.split(MARKER, 1)[1], flags=re.DOTALL)
    assert match, f"{path.name}: a ```sh block right after the quick start marker"
    return match.group(1)


@dataclass(frozen=True)
class QuickStart:
    build: list[str]  # after `docker build`
    run: list[str]  # after `docker run`
    url: str  # what curl fetches
    pattern: str  # what grep keeps of it

    @property
    def name(self) -> str:
        """The container's name (``--name``)."""
        return self.run[self.run.index("--name") + 1]


def quickstart(block: str | None = None) -> QuickStart:
    """The block's three commands: ``docker build``, ``docker run``, ``curl URL | grep RE``."""
    lines = (block or quickstart_block()).splitlines()[1:-1]
    assert len(lines) == 3, lines
    build, run = (shlex.split(line) for line in lines[:2])
    assert build[:2] == ["docker", "build"] and run[:2] == ["docker", "run"], lines[:2]
    curl, grep = (shlex.split(part) for part in lines[2].split(" | "))
    assert curl[0] == "curl" and grep[0] == "grep", lines[2]
    url = curl[-1] if "://" in curl[-1] else f"http://{curl[-1]}"
    return QuickStart(build[2:], run[2:], url, grep[-1])


def container_args(
    start: QuickStart, name: str, image: str, config_dir: Path, env: dict[str, str]
) -> list[str]:
    """The block's ``docker run`` arguments with this run's container name, image, site config
    directory (``$OCS_CONFIG_DIR``) and ``-e`` variables before the image."""
    config = {"OCS_CONFIG_DIR": str(config_dir)}
    args = [Template(token).safe_substitute(config) for token in start.run]
    args[args.index("--name") + 1] = name
    *options, _image = args  # the block runs the image with no arguments
    return [*options, *(f"--env={key}={value}" for key, value in env.items()), image]
