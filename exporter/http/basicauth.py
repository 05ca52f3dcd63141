"""Basic auth in front of the web site: ``twisted.web.guard``, with each user and password
checked by bcrypt once, on a thread pool.

The users and their bcrypt hashes come from the web config file (:mod:`exporter.http.webconfig`).
Passwords and hashes never appear in a message, a repr or the log.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable, Mapping

import bcrypt
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, threads
from twisted.web import guard, resource, server, util

# The guard's own 401 resource, which twisted.web.guard does not export: replaced by ours.
from twisted.web._auth.wrapper import UnauthorizedResource
from zope.interface import implementer

from exporter.http.web import client_gone

REALM = "ocs-exporter"
Key = bytes


@implementer(ICredentialsChecker)
class BcryptChecker:
    """Checks user names and passwords against bcrypt hashes, each pair once per process.

    A bcrypt check is slow by design, so it runs in a thread (``run_in_thread``, a
    ``deferToThread``-like callable) and its outcome, passed or failed, is cached under an
    HMAC of user and password with a key made at start, so neither the password nor an
    unsalted hash of it is kept. Both caches are bounded; failures cannot evict successes.
    """

    credentialInterfaces = (IUsernamePassword,)

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

    def requestAvatarId(self, credentials: IUsernamePassword) -> defer.Deferred:
        """The user name once the password passes; else UnauthorizedLogin."""
        user = credentials.username
        return self.check(user, credentials.password).addCallback(_avatar_id, user)

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


def _avatar_id(passed: bool, user: bytes) -> bytes:
    if not passed:
        raise UnauthorizedLogin()
    return user


@implementer(IRealm)
class _WholeSite:
    """Every user who passes gets the whole site."""

    def __init__(self, root: resource.IResource) -> None:
        self.root = root

    def requestAvatar(self, avatar_id: bytes, mind: object, *interfaces: object) -> tuple:
        if resource.IResource not in interfaces:
            raise NotImplementedError("only web resources here")
        return resource.IResource, self.root, lambda: None


class Unauthorized(resource.Resource):
    """The 401 answer, for any method: the challenge, and nothing cached."""

    isLeaf = True

    def render(self, request: server.Request) -> bytes:
        request.setResponseCode(401)
        request.setHeader(b"WWW-Authenticate", f'Basic realm="{REALM}"'.encode())
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return b"" if request.method == b"HEAD" else b"Unauthorized\n"


class _Abandoned(resource.Resource):
    """For a request whose client hung up while its password was checked: no answer."""

    isLeaf = True

    def render(self, request: server.Request) -> int:
        return server.NOT_DONE_YET


UNAUTHORIZED = Unauthorized()
ABANDONED = _Abandoned()


def _ours(found: resource.IResource) -> resource.IResource:
    return UNAUTHORIZED if isinstance(found, UnauthorizedResource) else found


class GuardedRoot(resource.Resource):
    """The root of a site with basic auth: ``twisted.web.guard`` in front of ``root``, but
    for the ``exempt`` resources (the health and readiness probes).

    The request is routed first and the resource it reaches decides, so an exemption
    cannot be dodged by spelling the path differently, and an unknown path answers 401.
    """

    def __init__(
        self,
        root: resource.Resource,
        checker: ICredentialsChecker,
        exempt: tuple[resource.IResource, ...] = (),
    ) -> None:
        super().__init__()
        self.root = root
        self.exempt = exempt
        portal = Portal(_WholeSite(root), [checker])
        self.guard = guard.HTTPAuthSessionWrapper(portal, [guard.BasicCredentialFactory(REALM)])

    def getChildWithDefault(self, path: bytes, request: server.Request) -> resource.IResource:
        prepath, postpath = list(request.prepath), list(request.postpath)
        request.postpath.insert(0, request.prepath.pop())
        target = resource.getChildForRequest(self.root, request)
        if any(target is exempt for exempt in self.exempt):
            return target
        request.prepath, request.postpath = prepath, postpath  # the guard routes it again
        gone = client_gone(request)
        found = self.guard.getChildWithDefault(path, request)
        if isinstance(found, util.DeferredResource):  # the login, maybe waiting for bcrypt
            found.d.addCallback(lambda avatar: ABANDONED if gone() else _ours(avatar))
        return _ours(found)

    def render(self, request: server.Request) -> bytes:
        """Not reached: a Site always leaves the root a path segment to route."""
        return UNAUTHORIZED.render(request)


def find_resource(root: resource.Resource, path: str) -> resource.IResource:
    """The resource of ``root``'s tree at ``path``, by its static children."""
    node: resource.IResource = root
    for part in path.strip("/").split("/"):
        child = node.getStaticEntity(part.encode()) if hasattr(node, "getStaticEntity") else None
        if child is None:
            raise LookupError(f"no resource at {path}")
        node = child
    return node
