"""One bounded intern table: values made once per key and shared by everyone who asks."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class InternTable(dict[K, V]):
    """``table[key]`` is the value ``make(key)`` made on first use, the same object after,
    so that thousands of agents share the few values they have in common (operation
    names, their rendered labels, the operation types of a class). A dict, so that the
    common case, a key seen before, costs a lookup and no call.

    The keys come from the network: when ``max_size`` are held the table is cleared, so
    that it never grows without bound; values handed out before stay valid, only the
    sharing starts again.
    """

    __slots__ = ("_make", "_max_size")

    def __init__(self, make: Callable[[K], V] | None, max_size: int) -> None:
        super().__init__()
        self._make = make
        self._max_size = max_size

    def __missing__(self, key: K) -> V:
        if self._make is None:
            raise KeyError(key)
        return self.share(key, self._make(key))

    def share(self, key: K, value: V) -> V:
        """The value held for ``key``; ``value`` if none is, held from now on."""
        held = self.get(key)
        if held is None:
            if len(self) >= self._max_size:
                self.clear()
            held = self[key] = value
        return held
