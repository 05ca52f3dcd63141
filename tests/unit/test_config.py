"""Configuration: flags, environment, the OCS site config file, and the errors."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from exporter.config import ConfigError, settings_from_args
from exporter.flags import duration, env_name
from tests.support.cli import all_flags, switches

HUB = {
    "wamp_server": "ws://127.0.0.1:8001/ws",
    "wamp_http": "http://127.0.0.1:8001/call",
    "wamp_realm": "test_realm",
    "address_root": "observatory",
}


def site(tmp_path: Path, data, name: str = "default.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for key in list(__import__("os").environ):
        if key.startswith("OCS_EXPORTER_") or key == "OCS_CONFIG_DIR":
            monkeypatch.delenv(key)


def test_defaults_from_the_site_file(tmp_path):
    s = settings_from_args(["--site-file", str(site(tmp_path, {"hub": HUB}))])
    assert (s.wamp_url, s.realm, s.address_root) == (
        HUB["wamp_server"],
        "test_realm",
        "observatory",
    )
    assert s.agent_timeout == 5.0
    assert (s.listen_host, s.listen_port) == ("", 10020)
    assert s.telemetry_path == "/metrics"
    assert (s.log_level, s.log_format) == ("info", "text")
    assert s.serializers == ("msgpack", "cbor", "json")


def test_ocs_config_dir_and_site_name(tmp_path, monkeypatch):
    site(tmp_path, {"hub": HUB})
    site(tmp_path, {"hub": {**HUB, "wamp_realm": "other"}}, "north.yaml")
    monkeypatch.setenv("OCS_CONFIG_DIR", str(tmp_path))
    assert settings_from_args([]).realm == "test_realm"
    assert settings_from_args(["--site", "north"]).realm == "other"


def test_ocs_override_flags_win_over_the_file(tmp_path):
    path = site(tmp_path, {"hub": HUB})
    s = settings_from_args(
        [
            "--site-file",
            str(path),
            "--site-hub",
            "wss://router:8443/ws",
            "--site-realm",
            "r2",
            "--address-root",
            "south",
        ]
    )
    assert (s.wamp_url, s.realm, s.address_root) == ("wss://router:8443/ws", "r2", "south")


def test_no_file_needed_when_every_hub_setting_is_given():
    s = settings_from_args(
        ["--site-hub", "ws://h:1/ws", "--site-realm", "r", "--address-root", "observatory"]
    )
    assert s.site_file is None and s.realm == "r"


def test_environment_sets_flags_and_flags_win(tmp_path, monkeypatch):
    path = site(tmp_path, {"hub": HUB})
    monkeypatch.setenv("OCS_EXPORTER_AGENT_TIMEOUT", "7.5")
    monkeypatch.setenv("OCS_EXPORTER_WEB_LISTEN_ADDRESS", "127.0.0.1:9999")
    monkeypatch.setenv("OCS_EXPORTER_LOG_FORMAT", "json")
    s = settings_from_args(["--site-file", str(path), "--log.format", "text"])
    assert s.agent_timeout == 7.5
    assert (s.listen_host, s.listen_port) == ("127.0.0.1", 9999)
    assert s.log_format == "text"


def test_env_names():
    assert env_name("--web.listen-address") == "OCS_EXPORTER_WEB_LISTEN_ADDRESS"
    assert env_name("--agent-timeout") == "OCS_EXPORTER_AGENT_TIMEOUT"


@pytest.mark.parametrize(
    "value, expected",
    [(":10020", ("", 10020)), ("0.0.0.0:1", ("0.0.0.0", 1)), ("[::1]:80", ("::1", 80))],
)
def test_listen_addresses(tmp_path, value, expected):
    path = site(tmp_path, {"hub": HUB})
    s = settings_from_args(["--site-file", str(path), "--web.listen-address", value])
    assert (s.listen_host, s.listen_port) == expected


BAD = {
    "no site at all": (None, [], "no site config"),
    "missing file": ("MISSING", [], "no such file"),
    "yaml syntax": ("hub: [unclosed\n", [], "YAML syntax error at line"),
    "not a mapping": ("- a\n- b\n", [], "not a mapping"),
    "no hub": ({"hosts": {}}, [], "missing key 'hub'"),
    "hub not a mapping": ({"hub": "x"}, [], "'hub' is not a mapping"),
    "no realm": ({"hub": {**HUB, "wamp_realm": None}}, [], "missing key 'hub.wamp_realm'"),
    "realm a number": ({"hub": {**HUB, "wamp_realm": 5}}, [], "'hub.wamp_realm' is not"),
    "bad scheme": ({"hub": {**HUB, "wamp_server": "http://x/ws"}}, [], "hub.wamp_server: bad URL"),
    "bad port": ({"hub": {**HUB, "wamp_server": "ws://x:99999/ws"}}, [], "bad URL"),
    "bad flag URL": ({"hub": HUB}, ["--site-hub", "nonsense"], "--site-hub: bad URL"),
    "bad timeout": ({"hub": HUB}, ["--agent-timeout", "-1"], "--agent-timeout"),
    "bad listen": ({"hub": HUB}, ["--web.listen-address", "nope"], "--web.listen-address"),
    "bad level": ({"hub": HUB}, ["--log.level", "loud"], "--log.level"),
    "bad serializer": ({"hub": HUB}, ["--wamp.serializers", "xml"], "--wamp.serializers"),
    "bad path": ({"hub": HUB}, ["--web.telemetry-path", "metrics"], "--web.telemetry-path"),
}


@pytest.mark.parametrize("data, flags, message", BAD.values(), ids=BAD.keys())
def test_config_errors(tmp_path, data, flags, message):
    args = list(flags)
    if data == "MISSING":
        args += ["--site-file", str(tmp_path / "absent.yaml")]
    elif data is not None:
        args += ["--site-file", str(site(tmp_path, data))]
    with pytest.raises(ConfigError, match=None) as raised:
        settings_from_args(args)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "data, flags, message",
    [BAD["missing file"], BAD["yaml syntax"], BAD["no hub"], BAD["bad scheme"]],
    ids=["missing file", "yaml syntax", "no hub", "bad url"],
)
def test_config_errors_exit_with_one_line(tmp_path, run_exporter, data, flags, message):
    path = tmp_path / "absent.yaml" if data == "MISSING" else site(tmp_path, data)
    code, out, err = run_exporter("--site-file", str(path), *flags)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("ocs-exporter: error: ")
    assert message in err and str(path) in err
    assert "Traceback" not in err and out == ""


def test_occupied_port_exits_with_one_line(tmp_path, run_exporter):
    path = site(tmp_path, {"hub": HUB})
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _out, err = run_exporter(
            "--site-file", str(path), "--web.listen-address", f"127.0.0.1:{port}"
        )
    assert code == 2
    assert err.count("\n") == 1, err
    assert f"127.0.0.1:{port}" in err and "in use" in err
    assert "Traceback" not in err


def test_help_documents_every_flag_and_its_variable(run_exporter):
    code, out, _err = run_exporter("--help")
    assert code == 0
    text = " ".join(out.split())
    switched = switches()
    for flag in all_flags():
        assert (f"--[no-]{flag[2:]}" if flag in switched else flag) in text
        assert env_name(flag) in text.replace(" ", ""), flag


@pytest.mark.parametrize(
    "value, seconds",
    [
        ("0", 0),
        ("90", 90),
        ("30s", 30),
        ("15m", 900),
        ("24h", 86400),
        ("7d", 604800),
        ("1.5h", 5400),
    ],
)
def test_durations(value, seconds):
    assert duration(value) == seconds


@pytest.mark.parametrize("value", ["-1", "abc", "10x", "", "nan"])
def test_bad_durations(tmp_path, value):
    path = site(tmp_path, {"hub": HUB})
    with pytest.raises(ConfigError, match="--forget-after"):
        settings_from_args(["--site-file", str(path), "--forget-after", value])


def test_forget_after_and_max_agents(tmp_path):
    path = site(tmp_path, {"hub": HUB})
    s = settings_from_args(["--site-file", str(path)])
    assert (s.forget_after, s.max_agents) == (86400, 20000)
    s = settings_from_args(["--site-file", str(path), "--forget-after", "0", "--max-agents", "5"])
    assert (s.forget_after, s.max_agents) == (0, 5)
    with pytest.raises(ConfigError, match="--max-agents"):
        settings_from_args(["--site-file", str(path), "--max-agents", "many"])


def test_feeds_and_max_feeds_per_agent(tmp_path, monkeypatch):
    path = site(tmp_path, {"hub": HUB})
    s = settings_from_args(["--site-file", str(path)])
    assert (s.feeds, s.max_feeds_per_agent) == (True, 64)
    s = settings_from_args(
        ["--site-file", str(path), "--no-collector.feeds", "--max-feeds-per-agent", "1"]
    )
    assert (s.feeds, s.max_feeds_per_agent) == (False, 1)
    monkeypatch.setenv("OCS_EXPORTER_MAX_FEEDS_PER_AGENT", "7")
    assert settings_from_args(["--site-file", str(path)]).max_feeds_per_agent == 7
    for bad in ("0", "-1", "many"):
        with pytest.raises(ConfigError, match="--max-feeds-per-agent"):
            settings_from_args(["--site-file", str(path), "--max-feeds-per-agent", bad])


ENV_BAD = {
    "typed": ("OCS_EXPORTER_AGENT_TIMEOUT", "-1", "--agent-timeout"),
    "listen address": ("OCS_EXPORTER_WEB_LISTEN_ADDRESS", "nope", "--web.listen-address"),
    "a choice": ("OCS_EXPORTER_LOG_LEVEL", "loud", "--log.level"),
    "a boolean": ("OCS_EXPORTER_COLLECTOR_OP_STATE", "maybe", "--collector.op-state"),
}


@pytest.mark.parametrize("variable, value, flag", ENV_BAD.values(), ids=ENV_BAD.keys())
def test_a_bad_value_in_the_environment_names_the_flag(
    tmp_path, monkeypatch, variable, value, flag
):
    path = site(tmp_path, {"hub": HUB})
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as raised:
        settings_from_args(["--site-file", str(path)])
    assert f"{flag}: " in str(raised.value) and repr(value) in str(raised.value)
    assert "\n" not in str(raised.value)


def test_the_command_line_wins_over_bad_values_in_the_environment(tmp_path, monkeypatch):
    path = site(tmp_path, {"hub": HUB})
    for variable, value, _flag in ENV_BAD.values():
        monkeypatch.setenv(variable, value)
    s = settings_from_args(
        [
            *("--site-file", str(path), "--agent-timeout", "3", "--web.listen-address", ":1"),
            *("--log.level", "warn", "--collector.op-state"),
        ]
    )
    assert (s.agent_timeout, s.listen_port, s.log_level, s.op_state) == (3.0, 1, "warn", True)


def test_an_empty_variable_counts_as_unset(tmp_path, monkeypatch):
    path = site(tmp_path, {"hub": HUB})
    for flag in all_flags():
        monkeypatch.setenv(env_name(flag), "")
    s = settings_from_args(["--site-file", str(path)])
    assert (s.agent_timeout, s.listen_port, s.log_level, s.wamp_tls) == (5.0, 10020, "info", None)


def test_environment_values_are_converted_like_flags(tmp_path, monkeypatch):
    path = site(tmp_path, {"hub": HUB})
    monkeypatch.setenv("OCS_EXPORTER_FORGET_AFTER", "90m")
    monkeypatch.setenv("OCS_EXPORTER_MAX_AGENTS", "7")
    monkeypatch.setenv("OCS_EXPORTER_WAMP_SERIALIZERS", "json,msgpack")
    monkeypatch.setenv("OCS_EXPORTER_WAMP_MAX_RETRY_DELAY", "2.5")
    monkeypatch.setenv("OCS_EXPORTER_COLLECTOR_OP_TYPES", "off")
    s = settings_from_args(["--site-file", str(path)])
    assert (s.forget_after, s.max_agents, s.serializers) == (5400, 7, ("json", "msgpack"))
    assert (s.max_retry_delay, s.op_types) == (2.5, False)


def test_every_flag_is_read_as_an_attribute():
    from exporter.flags import dest_name, parse_flags

    args = vars(parse_flags([]))
    assert sorted(args) == sorted(dest_name(flag) for flag in all_flags())
    assert all(name.isidentifier() for name in args)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--log.level", "loud"], "argument --log.level: invalid choice: 'loud'"),
        (["--wamp.authmethod", "kerberos"], "argument --wamp.authmethod: invalid choice"),
        (["--max-agents", "many"], "argument --max-agents: 'many' is not a whole number"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--agent-timeout"], "argument --agent-timeout: expected one argument"),
    ],
)
def test_command_line_errors_are_one_line_without_usage(run_exporter, args, message):
    code, out, err = run_exporter(*args)
    assert code == 2 and out == ""
    assert err.startswith("ocs-exporter: error: ")
    assert err.count("\n") == 1 and message in err, err
    assert "usage:" not in err and "Traceback" not in err


def test_help_works_with_a_bad_value_in_the_environment(run_exporter):
    code, out, _err = run_exporter("--help", env={"OCS_EXPORTER_LOG_LEVEL": "loud"})
    assert code == 0 and "--log.level" in out


def test_the_router_flags_are_grouped_together(run_exporter):
    _code, out, _err = run_exporter("--help")
    groups = {}
    for line in out.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            group = line[:-1]
        elif line.startswith("  --"):
            groups[line.split()[0]] = group
    assert groups["--wamp.max-retry-delay"] == groups["--wamp.authid"] == "router connection"
    assert {flag for flag, name in groups.items() if name == "router connection"} == {
        flag for flag in all_flags() if flag.startswith("--wamp.")
    }


def test_the_log_levels_offered_are_the_ones_logging_knows():
    from exporter.flags import LOG_LEVELS
    from exporter.logs import LEVELS

    assert tuple(LEVELS) == LOG_LEVELS


def test_sessions_flags_default_to_on_every_30s_with_the_documented_keys(tmp_path):
    from exporter.flags import DURATION_BUCKETS
    from exporter.sessions import DATA_KEYS

    s = settings_from_args(["--site-file", str(site(tmp_path, {"hub": HUB}))])
    assert (s.sessions, s.sessions_interval, s.sessions_durations) == (True, 30.0, False)
    assert s.sessions_data_keys == DATA_KEYS == ("timestamp", "last_updated", "last_update")
    assert s.sessions_duration_buckets == tuple(map(float, DURATION_BUCKETS))
    assert s.sessions_duration_buckets[0] <= 1 and s.sessions_duration_buckets[-1] >= 7 * 86400


def test_sessions_flags_and_their_variables(tmp_path, monkeypatch):
    path = str(site(tmp_path, {"hub": HUB}))
    monkeypatch.setenv("OCS_EXPORTER_COLLECTOR_SESSIONS_DURATION_BUCKETS", "0.5, 60,3600")
    s = settings_from_args(
        [
            *("--site-file", path, "--no-collector.sessions", "--collector.sessions.durations"),
            *("--collector.sessions.interval", "5m"),
            *("--collector.sessions.data-keys", " ts ,stamp"),
        ]
    )
    assert (s.sessions, s.sessions_interval, s.sessions_durations) == (False, 300.0, True)
    assert s.sessions_data_keys == ("ts", "stamp")
    assert s.sessions_duration_buckets == (0.5, 60.0, 3600.0)


@pytest.mark.parametrize(
    "flag, value, message",
    [
        ("--collector.sessions.interval", "0", "must be more than 0"),
        ("--collector.sessions.interval", "soon", "is not a duration"),
        ("--collector.sessions.data-keys", "timestamp,,x", "has an empty item"),
        ("--collector.sessions.data-keys", "a,a", "lists an item twice"),
        ("--collector.sessions.duration-buckets", "60,1", "increasing order"),
        ("--collector.sessions.duration-buckets", "1,1.0", "increasing order"),
        ("--collector.sessions.duration-buckets", "0,1", "positive number of seconds"),
        ("--collector.sessions.duration-buckets", "1,inf", "positive number of seconds"),
        ("--collector.sessions.duration-buckets", "1,a day", "not a list of numbers"),
    ],
)
def test_bad_sessions_flags_name_the_flag(tmp_path, flag, value, message):
    path = str(site(tmp_path, {"hub": HUB}))
    with pytest.raises(ConfigError) as raised:
        settings_from_args(["--site-file", path, flag, value])
    assert f"argument {flag}: " in str(raised.value) and message in str(raised.value)
