"""The process as a Twisted service tree: the web server and the heartbeat (and feed)
listener."""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from twisted.application import service
from twisted.internet import threads
from twisted.internet.interfaces import IListeningPort, IReactorSSL, IReactorTCP
from twisted.python.threadpool import ThreadPool
from twisted.web import server

from exporter.config import ConfigError, Settings, expected_agents, load_site_file
from exporter.http.basicauth import BcryptChecker, GuardedRoot, find_resource
from exporter.http.web import MetricsPage, make_site
from exporter.http.webconfig import ServerContextFactory, WebConfig, load_web_config
from exporter.render.collector import ExporterCollector
from exporter.render.exposition import AgentExposition
from exporter.render.memory import heap_trimmer
from exporter.state import AgentState
from exporter.wamp.listener import HeartbeatListener
from exporter.wamp.registry_compat import RegistryCompat

log = logging.getLogger(__name__)

# Liveness and readiness probes (Docker's HEALTHCHECK, Kubernetes) work without secrets.
AUTH_EXEMPT = ("/-/healthy", "/-/ready")


class WebService(service.Service):
    """Listens as soon as it starts, so that a port in use fails there and then.

    With a web config file (loaded here, so a bad one is a ConfigError at construction):
    HTTPS with its TLS context, and basic auth on everything but ``AUTH_EXEMPT``, checked
    with bcrypt on a pool of its own so that a flood of wrong passwords cannot hold up the
    reactor's pool, where the scrapes run.
    """

    def __init__(
        self,
        site: server.Site,
        host: str,
        port: int,
        reactor: IReactorTCP | IReactorSSL,
        web_config_file: Path | None = None,
    ) -> None:
        self.site = site
        self.host = host
        self.port = port
        self.reactor = reactor
        self.listening: IListeningPort | None = None
        self.web_config: WebConfig | None = None
        self.bcrypt_pool: ThreadPool | None = None  # started and stopped by ExporterService
        if web_config_file is not None:
            self.web_config = load_web_config(web_config_file)
        if self.web_config is not None and self.web_config.users:
            self.bcrypt_pool = ThreadPool(0, 2, name="bcrypt")
            run = partial(threads.deferToThreadPool, reactor, self.bcrypt_pool)
            root = site.resource
            exempt = tuple(find_resource(root, path) for path in AUTH_EXEMPT)
            site.resource = GuardedRoot(root, BcryptChecker(self.web_config.users, run), exempt)

    def startService(self) -> None:
        context = self.web_config and self.web_config.context
        if context is not None:
            self.listening = self.reactor.listenSSL(
                self.port, self.site, ServerContextFactory(context), interface=self.host
            )
        else:
            self.listening = self.reactor.listenTCP(self.port, self.site, interface=self.host)
        if self.web_config is not None:
            log.info("%s", self.web_config.describe())
            if self.web_config.users and context is None:
                log.warning("basic auth without TLS: passwords cross the network in clear")
        super().startService()

    def stopService(self):  # noqa: ANN201 - a Deferred, as Twisted wants
        super().stopService()
        if self.listening is not None:
            return self.listening.stopListening()
        return None


class ThreadPoolService(service.Service):
    """Starts and stops a thread pool with the service tree."""

    def __init__(self, pool: ThreadPool) -> None:
        self.pool = pool

    def startService(self) -> None:
        self.pool.start()
        super().startService()

    def stopService(self) -> None:
        super().stopService()
        if self.pool.started:
            self.pool.stop()


class ExporterService(service.MultiService):
    """Everything the exporter runs; ``state``, ``listener`` and ``registry`` for inspection."""

    def __init__(self, settings: Settings, reactor: IReactorTCP | None = None) -> None:
        super().__init__()
        if reactor is None:
            from twisted.internet import reactor  # noqa: PLC0415
        self.settings = settings
        self.state = AgentState(
            settings.address_root,
            settings.agent_timeout,
            forget_after=settings.forget_after,
            max_agents=settings.max_agents,
            data_keys=settings.sessions_data_keys,
            durations=settings.sessions_duration_buckets if settings.sessions_durations else None,
            max_feeds=settings.max_feeds_per_agent,
        )
        self.state.set_expected(list(settings.expected_agents))
        self.listener = HeartbeatListener(
            self.state,
            url=settings.wamp_url,
            realm=settings.realm,
            address_root=settings.address_root,
            serializers=settings.serializers,
            max_retry_delay=settings.max_retry_delay,
            reactor=reactor,
            tls=settings.wamp_tls,
            auth=settings.wamp_auth,
            op_types=settings.op_types,
            sessions_interval=settings.sessions_interval if settings.sessions else None,
            calls_per_second=settings.max_calls_per_second,
            feeds=settings.feeds,
        )
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.registry.register(ExporterCollector(self.state, self.ready))
        # The agent series are rendered by AgentExposition, which caches blocks of agents,
        # on one thread of their own.
        render_pool = ThreadPool(0, 1, name="metrics")
        metrics = MetricsPage(
            self.registry,
            AgentExposition(self.state, settings.op_state),
            partial(threads.deferToThreadPool, reactor, render_pool),
            after=heap_trimmer(),
        )
        site = make_site(metrics, self.state, self.ready, settings.telemetry_path)
        self.web = WebService(
            site, settings.listen_host, settings.listen_port, reactor, settings.web_config_file
        )
        # The thread pools (no thread until there is work), then web: a port in use stops
        # the start before anything connects. Stopped in the reverse order.
        ThreadPoolService(render_pool).setServiceParent(self)
        if self.web.bcrypt_pool is not None:
            ThreadPoolService(self.web.bcrypt_pool).setServiceParent(self)
        self.web.setServiceParent(self)
        self.listener.setServiceParent(self)
        if self.listener.session_queries is not None:
            self.listener.session_queries.setServiceParent(self)
        self.registry_compat: RegistryCompat | None = None
        if settings.registry_compat:
            self.registry_compat = RegistryCompat(
                self.state,
                settings.address_root,
                settings.registry_compat_instance_id,
                reactor=reactor,
            )
            self.listener.join_hooks.append(self.registry_compat.on_join)
            self.registry_compat.setServiceParent(self)

    def ready(self) -> bool:
        """Joined to the realm and subscribed to heartbeats."""
        return self.listener.connected

    def reload_site_config(self) -> bool:
        """Re-read the expected agents from the site config file (on SIGHUP); a broken file
        keeps the previous list. Other settings need a restart."""
        path = self.settings.site_file
        if path is None:
            log.warning("SIGHUP: no site config file to reload")
            return False
        try:
            data = load_site_file(path)
            agents = expected_agents(data, path, self.settings.site_host)
        except ConfigError as exc:
            log.error("SIGHUP: kept the previous site config: %s", exc)
            return False
        self.state.set_expected(list(agents))
        log.info("SIGHUP: reloaded %s: %d agent instances expected", path, len(agents))
        return True
