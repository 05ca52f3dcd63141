"""The process as a Twisted service tree: the web server and the heartbeat listener."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from twisted.application import service
from twisted.internet.interfaces import IListeningPort, IReactorTCP
from twisted.web import server

from exporter.collector import AgentCollector, ExporterCollector
from exporter.config import Settings
from exporter.listener import HeartbeatListener
from exporter.state import AgentState
from exporter.web import make_site


class WebService(service.Service):
    """Listens as soon as it starts, so that a port in use fails there and then."""

    def __init__(self, site: server.Site, host: str, port: int, reactor: IReactorTCP) -> None:
        self.site = site
        self.host = host
        self.port = port
        self.reactor = reactor
        self.listening: IListeningPort | None = None

    def startService(self) -> None:
        self.listening = self.reactor.listenTCP(self.port, self.site, interface=self.host)
        super().startService()

    def stopService(self):  # noqa: ANN201 - a Deferred, as Twisted wants
        super().stopService()
        if self.listening is not None:
            return self.listening.stopListening()
        return None


class ExporterService(service.MultiService):
    """Everything the exporter runs; ``state``, ``listener`` and ``registry`` for inspection."""

    def __init__(self, settings: Settings, reactor: IReactorTCP | None = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415
        self.settings = settings
        self.state = AgentState(settings.address_root, settings.agent_timeout)
        self.listener = HeartbeatListener(
            self.state,
            url=settings.wamp_url,
            realm=settings.realm,
            address_root=settings.address_root,
            serializers=settings.serializers,
            max_retry_delay=settings.max_retry_delay,
            reactor=reactor,
        )
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(AgentCollector(self.state))
        self.registry.register(ExporterCollector(self.state, self.ready))
        site = make_site(self.registry, self.state, self.ready, settings.telemetry_path)
        self.web = WebService(site, settings.listen_host, settings.listen_port, reactor)
        # Web first: a port in use stops the start before anything connects.
        self.web.setServiceParent(self)
        self.listener.setServiceParent(self)

    def ready(self) -> bool:
        """Joined to the realm and subscribed to heartbeats."""
        return self.listener.connected
