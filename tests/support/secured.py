"""A test bed whose router also has a secured transport for the exporter."""

from __future__ import annotations

from pathlib import Path

import testbed
from tests.support.bed import Testbed
from tests.support.tls import Authority, make_authority


def secured_bed(
    workdir: Path,
    role_file: Path = testbed.EXPORTER_ROLE_FILE,
    client_certificates: bool = False,
    **principals: dict[str, str],
) -> tuple[Testbed, Authority]:
    """A bed (not started) whose router has, beside the agents' plain transport, a TLS
    transport for the exporter with WAMP authentication (``tickets``, ``wampcra``: authid
    -> secret) into the crossbar role of ``role_file``; with ``client_certificates``, only
    clients with a certificate of the returned authority get in. The authority signed the
    router's certificate."""
    ca = make_authority(workdir, "router-ca")
    server = ca.issue_server(workdir, "router")
    secured = testbed.Secured(
        port=testbed.free_port(),
        key=server.key,
        certificate=server.cert,
        client_ca=ca.cert if client_certificates else None,
        role_file=role_file,
        **principals,
    )
    return Testbed(workdir, secured=secured), ca
