"""A local OCS testbed for the tests, the benchmarks and the demo; not part of the package.

Every child runs as a :class:`Process` (``testbed.process``): in its own process group, on
free loopback ports, its output in a log file, stopped with SIGTERM and then SIGKILL.
``testbed.crossbar`` has the router, ``testbed.agents`` the OCS agents and their site config
file, ``testbed.exporter`` the exporter, ``testbed.prometheus`` Prometheus and Alertmanager.
"""

from testbed.agents import (
    ADDRESS_ROOT,
    REALM,
    SITE_HOST,
    Agent,
    fake_agent_entry,
    ocs_heartbeat,
    site_config,
    start_agent,
    write_site_file,
)
from testbed.crossbar import EXPORTER_ROLE_FILE, Router, Secured, crossbar_config
from testbed.exporter import Exporter, Metrics, http_get
from testbed.process import (
    ROOT,
    Process,
    ProcessExited,
    free_port,
    port_open,
    stop_process,
    stop_processes,
    wait_for,
)
from testbed.prometheus import Alertmanager, Prometheus

__all__ = [
    "ADDRESS_ROOT",
    "EXPORTER_ROLE_FILE",
    "REALM",
    "ROOT",
    "SITE_HOST",
    "Agent",
    "Alertmanager",
    "Exporter",
    "Metrics",
    "Process",
    "ProcessExited",
    "Prometheus",
    "Router",
    "Secured",
    "crossbar_config",
    "fake_agent_entry",
    "free_port",
    "http_get",
    "ocs_heartbeat",
    "port_open",
    "site_config",
    "start_agent",
    "stop_process",
    "stop_processes",
    "wait_for",
    "write_site_file",
]
