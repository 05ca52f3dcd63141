"""Sphinx configuration: the exporter's documentation, Markdown pages through myst-parser."""

from __future__ import annotations

import re
from pathlib import Path

# The version is read, not imported: building the documentation needs no exporter installed.
_INIT = (Path(__file__).resolve().parent.parent / "exporter" / "__init__.py").read_text()
release = version = re.search(r'__version__ = "([^"]+)"', _INIT).group(1)

project = "OCS Prometheus exporter"
author = "the OCS exporter authors"
copyright = author

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build"]
# Section ids as GitHub makes them, so that links into a page read the same on both.
myst_heading_anchors = 3
html_theme = "alabaster"
html_title = f"{project} {release}"
