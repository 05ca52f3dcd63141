"""The exporter's command line as tests read it."""

from __future__ import annotations


def all_flags() -> list[str]:
    from exporter.flags import build_parser

    flags = [
        option
        for action in build_parser()._actions
        for option in action.option_strings
        if option.startswith("--") and option not in ("--help", "--version")
    ]
    assert len(flags) > 20
    return flags
