"""The exporter's command line as tests read it."""

from __future__ import annotations

import argparse


def all_flags() -> list[str]:
    """Every flag by its name; a switch by its ``--name`` (its ``--no-name`` is in
    :func:`switches`)."""
    from exporter.flags import build_parser

    flags = [
        option
        for action in build_parser()._actions
        if action.help is not argparse.SUPPRESS
        for option in action.option_strings
        if option.startswith("--") and option not in ("--help", "--version")
    ]
    assert len(flags) > 20
    return flags


def switches() -> dict[str, str]:
    """Every boolean flag, ``--name`` -> ``--no-name``, as the parser takes them."""
    from exporter.flags import Switch, SwitchOff, build_parser

    parser = build_parser()
    off = {a.dest: a.option_strings[0] for a in parser._actions if isinstance(a, SwitchOff)}
    found = {a.option_strings[0]: off[a.dest] for a in parser._actions if isinstance(a, Switch)}
    assert len(found) >= 3
    return found
