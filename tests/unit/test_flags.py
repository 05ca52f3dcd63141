"""Boolean flags as kingpin switches: ``--name`` on, ``--no-name`` off, the variable a boolean
word, the earlier ``--name BOOL`` deprecated with one line that names the new form."""

from __future__ import annotations

import argparse
import os
import re
import socket
import warnings

import pytest

from exporter.config import settings_from_args
from exporter.flags import (
    DeprecatedFlag,
    Switch,
    boolean,
    build_parser,
    dest_name,
    env_name,
    parse_flags,
)
from tests.support.cli import switches

# Every switch and its default; a new boolean flag must be added here, which
# test_every_boolean_is_listed_here enforces.
DEFAULTS = {
    "--collector.op-types": True,
    "--collector.op-state": False,
    "--collector.sessions": True,
    "--collector.sessions.durations": False,
    "--collector.feeds": True,
    "--registry-compat": False,
}
SITE = ["--site-hub", "ws://127.0.0.1:1/ws", "--site-realm", "r", "--address-root", "obs"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("OCS_EXPORTER_") or key == "OCS_CONFIG_DIR":
            monkeypatch.delenv(key)
    return monkeypatch


def value(flag: str, *argv: str) -> bool:
    """The switch's value with ``argv``, checking that no deprecation was warned."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecatedFlag)
        return getattr(parse_flags(list(argv)), dest_name(flag))


def deprecations(*argv: str) -> tuple[argparse.Namespace, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        args = parse_flags(list(argv))
    return args, [str(w.message) for w in caught if issubclass(w.category, DeprecatedFlag)]


def test_every_boolean_is_listed_here_and_is_a_switch():
    actions = build_parser()._actions
    booleans = [a for a in actions if a.type is boolean]
    assert booleans and all(isinstance(a, Switch) for a in booleans)
    assert set(switches()) == set(DEFAULTS)
    assert not any(a.metavar == "BOOL" for a in actions)


@pytest.mark.parametrize("flag", DEFAULTS)
def test_on_off_and_default(flag):
    off = switches()[flag]
    assert off == "--no-" + flag[2:]
    assert value(flag) is DEFAULTS[flag]
    assert value(flag, flag) is True
    assert value(flag, off) is False


@pytest.mark.parametrize("flag", DEFAULTS)
def test_the_later_one_wins(flag):
    off = switches()[flag]
    assert value(flag, off, flag) is True
    assert value(flag, flag, off) is False
    assert value(flag, flag, off, flag, off) is False


@pytest.mark.parametrize("flag", DEFAULTS)
@pytest.mark.parametrize("word, on", [("true", True), ("false", False), ("1", True), ("0", False)])
def test_the_variable_takes_a_boolean_word(clean_env, flag, word, on):
    clean_env.setenv(env_name(flag), word)
    assert value(flag) is on
    # The command line wins over the variable, either way.
    assert value(flag, flag if not on else switches()[flag]) is not on


@pytest.mark.parametrize("flag", DEFAULTS)
def test_an_empty_variable_is_unset(clean_env, flag):
    clean_env.setenv(env_name(flag), "")
    assert value(flag) is DEFAULTS[flag]


def test_switches_side_by_side_take_no_value_from_each_other():
    args = parse_flags(["--collector.op-state", "--registry-compat", "--no-collector.op-types"])
    assert (args.collector_op_state, args.registry_compat, args.collector_op_types) == (
        True,
        True,
        False,
    )
    s = settings_from_args([*SITE, "--collector.op-state", "--registry-compat"])
    assert (s.op_state, s.registry_compat, s.op_types) == (True, True, True)
    s = settings_from_args(["--collector.op-state", "--registry-compat", *SITE])
    assert (s.op_state, s.registry_compat, s.realm) == (True, True, "r")


def test_no_positional_argument_for_a_switch_to_swallow():
    """A switch's optional value (the deprecated BOOL) could take a positional argument's
    word; there is none, so a word after a switch can only be meant for it."""
    assert all(action.option_strings for action in build_parser()._actions)


@pytest.mark.parametrize(
    "argv, on, instead",
    [
        (["--collector.op-state", "true"], True, "write --collector.op-state"),
        (["--collector.op-state", "yes"], True, "write --collector.op-state"),
        (["--collector.op-state=on"], True, "write --collector.op-state"),
        (["--registry-compat", "false"], False, "write --no-registry-compat"),
        (["--registry-compat=0"], False, "write --no-registry-compat"),
        (["--collector.op-types", "no"], False, "write --no-collector.op-types"),
    ],
)
def test_the_deprecated_value_still_works_and_warns_once(argv, on, instead):
    args, warned = deprecations(*argv)
    flag = argv[0].partition("=")[0]
    assert getattr(args, dest_name(flag)) is on
    assert len(warned) == 1 and "\n" not in warned[0]
    assert warned[0].startswith(f"{flag} {'true' if on else 'false'} is deprecated")
    assert warned[0].endswith(instead)


def test_a_deprecated_value_then_a_switch_the_later_wins():
    args, warned = deprecations("--collector.op-state", "true", "--no-collector.op-state")
    assert args.collector_op_state is False and len(warned) == 1


def test_the_variable_and_the_switches_warn_nothing(clean_env):
    clean_env.setenv("OCS_EXPORTER_COLLECTOR_OP_STATE", "true")
    args, warned = deprecations("--registry-compat", "--no-collector.op-types")
    assert args.collector_op_state is True and warned == []


def test_the_exporter_logs_one_line_for_a_deprecated_flag(run_exporter):
    """Through the log, as every startup warning; stopped by an occupied port right after."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = run_exporter(
            *SITE,
            *("--web.listen-address", f"127.0.0.1:{port}", "--registry-compat", "false"),
            *("--collector.op-state", "--registry-compat=no"),
        )
    assert code == 2 and out == ""
    lines = err.splitlines()
    [warning] = [line for line in lines if "deprecated" in line]
    assert warning.startswith("ts=") and "level=warn logger=exporter.flags" in warning
    assert "--registry-compat false is deprecated" in warning
    assert warning.endswith('write --no-registry-compat"')
    assert len(lines) == 2 and lines[1].startswith("ocs-exporter: error: --web.listen-address")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--collector.op-state", "maybe"], "argument --collector.op-state: 'maybe' is not true"),
        (["--registry-compat="], "argument --registry-compat: '' is not true or false"),
        (["--no-registry-compat=true"], "argument --no-registry-compat: ignored explicit"),
        (["--no-collector.op-types", "true"], "unrecognized arguments: true"),
    ],
)
def test_bad_values_are_one_line_errors(run_exporter, argv, message):
    code, out, err = run_exporter(*SITE, *argv)
    assert code == 2 and out == ""
    assert err.startswith("ocs-exporter: error: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err and "deprecated" not in err


def test_help_shows_each_switch_once_as_no_form(run_exporter):
    code, out, _err = run_exporter("--help")
    assert code == 0
    usage, _, listing = out.partition("\n\n")
    for flag, off in switches().items():
        shown = f"--[no-]{flag[2:]}"
        assert f"[{shown}]" in " ".join(usage.split())
        assert [line.split()[0] for line in listing.splitlines() if shown in line.split()] == [
            shown
        ]
        elsewhere = out.replace(shown, "")
        assert not re.search(rf"{re.escape(flag)}(?![\w.-])", elsewhere) and off not in out
    assert "BOOL" not in out
