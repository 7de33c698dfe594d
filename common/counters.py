"""Counters: named integers that only grow, one class per owner, published as a dict.

Every process keeps its figures this one way: a subclass lists its names in
__slots__ (attribute access stays as cheap as a local on the hot path) and
as_dict() is what /status and /metrics show.
"""

from __future__ import annotations


class Counters:
    __slots__ = ()

    def __init__(self) -> None:
        for cls in type(self).__mro__:
            for name in getattr(cls, "__slots__", ()):
                setattr(self, name, 0)

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for cls in type(self).__mro__ for name in getattr(cls, "__slots__", ())}
