"""A small Alertmanager webhook receiver that records what it is sent."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import testbed


class WebhookReceiver:
    def __init__(self) -> None:
        self.notifications: list[dict] = []
        self.arrivals: list[float] = []  # time.monotonic() of each notification
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                with receiver._lock:
                    receiver.notifications.append(body)
                    receiver.arrivals.append(time.monotonic())
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def alerts(self) -> list[dict]:
        """Every alert of every notification so far, in arrival order."""
        return [alert for _, alert in self._arrived()]

    def _arrived(self) -> list[tuple[float, dict]]:
        with self._lock:
            pairs = list(zip(self.arrivals, self.notifications, strict=True))
        return [(at, alert) for at, n in pairs for alert in n["alerts"]]

    def wait_for_alert(self, status: str, timeout: float, **labels: str) -> dict:
        return self.wait_for_arrival(status, timeout, **labels)[1]

    def wait_for_arrival(self, status: str, timeout: float, **labels: str) -> tuple[float, dict]:
        """The first alert with this status and labels, and when (time.monotonic()) it came."""

        def find() -> tuple[float, dict] | None:
            for at, alert in self._arrived():
                if alert["status"] == status and all(
                    alert["labels"].get(k) == v for k, v in labels.items()
                ):
                    return at, alert
            return None

        return testbed.wait_for(find, timeout, f"a {status} alert {labels} at the webhook")
