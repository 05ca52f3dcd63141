"""Basic auth in front of the web site: bcrypt checked once per credentials, in a thread.

The users and their bcrypt hashes come from the web config file (:mod:`exporter.http.webconfig`).
Passwords and hashes never appear in a message, a repr or the log.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping

import bcrypt
from twisted.internet import defer, threads
from twisted.python.failure import Failure
from twisted.web import resource, server

REALM = "ocs-exporter"
Key = bytes


class BasicAuth:
    """Checks basic-auth credentials against bcrypt hashes, each pair once per process.

    A bcrypt check takes ~100 ms, so it runs in a thread (``run_in_thread``, a
    ``deferToThread``-like callable) and its outcome, passed or failed, is cached under an
    HMAC of user and password with a key made at start, so neither the password nor an
    unsalted hash of it is kept. Both caches are bounded; failures cannot evict successes.
    """

    def __init__(
        self,
        users: Mapping[str, bytes],
        run_in_thread: Callable[..., defer.Deferred] = threads.deferToThread,
        cache_size: int = 1024,
    ) -> None:
        if not users:
            raise ValueError("no users")
        self.users = {user.encode(): hashed for user, hashed in users.items()}
        self.run_in_thread = run_in_thread
        self.cache_size = cache_size
        self._key = os.urandom(32)
        self._passed: OrderedDict[Key, None] = OrderedDict()
        self._failed: OrderedDict[Key, None] = OrderedDict()
        self.bcrypt_checks = 0

    def _cache_key(self, user: bytes, password: bytes) -> Key:
        return hmac.new(self._key, user + b":" + password, hashlib.sha256).digest()

    def cached(self, user: bytes, password: bytes) -> bool | None:
        """True or False if this pair was checked before, else None."""
        key = self._cache_key(user, password)
        for cache, outcome in ((self._passed, True), (self._failed, False)):
            if key in cache:
                cache.move_to_end(key)
                return outcome
        return None

    def check(self, user: bytes, password: bytes) -> defer.Deferred:
        """A Deferred firing with True or False; bcrypt in a thread unless cached."""
        known = self.cached(user, password)
        if known is not None:
            return defer.succeed(known)
        d = self.run_in_thread(self._bcrypt, user, password)
        d.addCallback(self._remember, self._cache_key(user, password))
        return d

    def _remember(self, passed: bool, key: Key) -> bool:
        cache = self._passed if passed else self._failed
        cache[key] = None
        cache.move_to_end(key)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)
        return passed

    def _bcrypt(self, user: bytes, password: bytes) -> bool:
        """In a thread. An unknown user costs the same check, against another user's hash."""
        self.bcrypt_checks += 1
        found = None
        for name, hashed in self.users.items():  # every name compared, in constant time
            if hmac.compare_digest(name, user):
                found = hashed
        try:
            passed = bcrypt.checkpw(password, found or next(iter(self.users.values())))
        except ValueError:  # longer than bcrypt's 72 bytes
            return False
        return passed and found is not None


def basic_credentials(header: bytes | None) -> tuple[bytes, bytes] | None:
    """(user, password) from an ``Authorization: Basic ...`` header, else None."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


def unauthorized(request: server.Request) -> bytes:
    request.setResponseCode(401)
    request.setHeader(b"WWW-Authenticate", f'Basic realm="{REALM}"'.encode())
    request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
    request.setHeader(b"Cache-Control", b"no-store")
    return b"Unauthorized\n"


class _Guarded(resource.Resource):
    """One request's target, rendered once its credentials pass."""

    isLeaf = True

    def __init__(self, target: resource.IResource, auth: BasicAuth) -> None:
        super().__init__()
        self.target = target
        self.auth = auth

    def render(self, request: server.Request) -> bytes | int:
        credentials = basic_credentials(request.getHeader(b"authorization"))
        if credentials is None:
            return unauthorized(request)
        known = self.auth.cached(*credentials)
        if known is not None:
            return self.target.render(request) if known else unauthorized(request)
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))
        d = self.auth.check(*credentials)
        d.addCallbacks(self._answer, self._failed, (request, gone), None, (request, gone))
        return server.NOT_DONE_YET

    def _answer(self, passed: bool, request: server.Request, gone: list[bool]) -> None:
        if gone:  # the client hung up while bcrypt ran
            return
        if passed:
            request.render(self.target)
        else:
            request.write(unauthorized(request))
            request.finish()

    def _failed(self, failure: Failure, request: server.Request, gone: list[bool]) -> None:
        if not gone:
            request.processingFailed(failure)


class BasicAuthResource(resource.Resource):
    """Wraps a site's root: every resource needs basic auth but the ``exempt`` ones.

    The request is routed first and the resource it reaches decides, so an exemption
    cannot be dodged by spelling the path differently, and an unknown path answers 401.
    """

    def __init__(
        self,
        root: resource.Resource,
        auth: BasicAuth,
        exempt: tuple[resource.IResource, ...] = (),
    ) -> None:
        super().__init__()
        self.root = root
        self.auth = auth
        self.exempt = exempt

    def getChildWithDefault(self, path: bytes, request: server.Request) -> resource.IResource:
        request.postpath.insert(0, request.prepath.pop())
        target = resource.getChildForRequest(self.root, request)
        if any(target is exempt for exempt in self.exempt):
            return target
        return _Guarded(target, self.auth)

    def render(self, request: server.Request) -> bytes | int:
        return _Guarded(self.root, self.auth).render(request)


def find_resource(root: resource.Resource, path: str) -> resource.IResource:
    """The resource of ``root``'s tree at ``path``, by its static children."""
    node: resource.IResource = root
    for part in path.strip("/").split("/"):
        child = node.getStaticEntity(part.encode()) if hasattr(node, "getStaticEntity") else None
        if child is None:
            raise LookupError(f"no resource at {path}")
        node = child
    return node
