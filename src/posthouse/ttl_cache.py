"""A per-process cache of lookups that may be a moment stale."""

import time
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclass
class TtlCache(Generic[K, V]):
    """Values an api process looked up in the last ``ttl`` seconds. A change made
    elsewhere reaches every process within ``ttl``."""

    ttl: float = 1.0
    max_entries: int = 10_000
    _entries: dict[K, tuple[float, V]] = field(default_factory=dict)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            del self._entries[key]
            return None
        return entry[1]

    def put(self, key: K, value: V) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.clear()  # rare: more live keys than entries; refill on demand
        self._entries[key] = (time.monotonic() + self.ttl, value)
