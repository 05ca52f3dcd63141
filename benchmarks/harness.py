"""What every benchmark harness shares: the common part of its command line, its working
directory, SIGTERM taken as Ctrl-C (so that every process it started is stopped), and how
it writes its numbers."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.processes import add_exporter_python
from testbed import ROOT


def new_parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """A harness's parser, described by the first paragraph of its module's ``doc``."""
    return argparse.ArgumentParser(
        prog=prog,
        description=(doc or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def add_common_arguments(parser: argparse.ArgumentParser, out: str) -> None:
    """--serializer, --out (default ``out``), --crossbar, --exporter-python, --workdir."""
    parser.add_argument("--serializer", choices=("msgpack", "json", "cbor"), default="msgpack")
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument(
        "--crossbar", default=str(ROOT / ".venv-crossbar" / "bin" / "crossbar"), help="router"
    )
    add_exporter_python(parser)
    parser.add_argument("--workdir", type=Path, help="logs and counters (default: a temp dir)")


def prepare(args: argparse.Namespace, prefix: str) -> Path:
    """The run's working directory (a new temporary one without --workdir), made; from now
    on SIGTERM interrupts the run as Ctrl-C does."""
    if args.workdir is None:
        args.workdir = Path(tempfile.mkdtemp(prefix=prefix))
    args.workdir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _terminate)
    return args.workdir


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def write(out: Path, result: dict[str, Any]) -> None:
    """``result`` as JSON in ``out``, replaced whole (a reader never sees half a file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(out.suffix + ".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)


def run(main: Callable[[], Any]) -> None:
    """A harness's ``__main__``: Ctrl-C (or SIGTERM) exits 130, its processes stopped."""
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(130)
