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
    """Every boolean flag, ``--name`` -> ``--no-name``, checked to switch the same setting."""
    from exporter.flags import Switch, build_parser

    parser = build_parser()
    found = {}
    for action in parser._actions:
        if isinstance(action, Switch):
            flag = action.option_strings[0]
            off = parser._option_string_actions["--no-" + flag[2:]]
            assert (off.dest, off.const, off.nargs) == (action.dest, False, 0)
            found[flag] = off.option_strings[0]
    assert len(found) >= 3
    return found
